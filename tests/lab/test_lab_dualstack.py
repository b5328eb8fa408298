"""The dual-stack lab (issue #18), seen with the tools an operator would use.

- `dig +norecurse AAAA` on both nameservers, asked over IPv4 and over IPv6:
  every zone's AAAA record with the TTL and the address the story state
  promises (3600 -> old at `up`, 300 after `lower-ttl`, new after `dns-switch`),
  and the same TTLs and targets in what DNS02 and DNS05 report;
  the ip6.arpa PTRs of old and new, forward-confirmed by their AAAA records.
- monitoring-plugins `check_tcp -6` and `check_imap -6`, run inside
  cutover-client against the old server's IPv6 address: they agree with the
  lab's state (forwarded after a cutover, refused under `forward-v4-only`)
  and with what the suite's PORT01 reports for the old side's IPv6 endpoints.
- `lab cutover --ipv4-only` (the playbook's script as written): old's IPv6
  address refuses every forwarded port, its IPv4 one forwards.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from pathlib import Path

import pytest

from cutover.model.inventory import load_inventory
from tests.conftest import Lab, lab_cli
from tests.lab.conftest import (
    NEW_IP6,
    NS1_IP,
    NS1_IP6,
    NS2_IP,
    NS2_IP6,
    OLD_IP,
    OLD_IP6,
    dig,
    observe,
)
from tests.suite import REPO, SuiteRun, run_suite

ZONES = ("example.test", "shop.test", "blog.test")
PORTS = (110, 995, 143, 993, 25, 465, 587, 80, 3306)
# Every nameserver, by each of its addresses: a dual-stack resolver may ask either.
NAMESERVERS = (NS1_IP, NS1_IP6, NS2_IP, NS2_IP6)
PLUGINS = "/usr/lib/nagios/plugins"


# --- DNS ------------------------------------------------------------------------------


def aaaa_answers(nameserver: str) -> dict[str, tuple[int, str]]:
    """Each zone's apex AAAA record as `dig +norecurse` gets it: zone -> (TTL, address)."""
    found = {}
    for zone in ZONES:
        answer = dig(nameserver, zone, "AAAA", "+noall", "+answer")
        records = re.findall(rf"^{re.escape(zone)}\.\s+(\d+)\s+IN\s+AAAA\s+(\S+)$", answer, re.M)
        assert len(records) == 1, f"@{nameserver} {zone} AAAA: {answer!r}"
        found[zone] = (int(records[0][0]), records[0][1])
    return found


def suite_dns(phase: str, directory: Path) -> dict[tuple[str, str], dict[str, str]]:
    """DNS02's and DNS05's JUnit properties per (check ID, zone), from one run of `phase`
    with the lab's dual-stack inventory (in `directory`: no other test's baseline)."""
    run = run_suite(
        phase,
        REPO / ".lab" / "inventory.yaml",
        directory,
        str(REPO / "checks" / "test_dns.py"),
        "-k",
        "DNS02 or DNS05",
        namespace="cutover-client",
    )
    found = {
        (case.check_id, case.properties["zone"]): case.properties
        for case in run.cases
        if case.check_id in ("DNS02", "DNS05") and "zone" in case.properties
    }
    assert found, run.summary()
    return found


def assert_aaaa(ttl: int, address: str, phase: str, directory: Path) -> None:
    """Both nameservers, over both families, give every zone's AAAA with `ttl` and
    `address`; what DNS02 (TTLs, where the phase runs it) and DNS05 (targets) saw agrees."""
    want = {zone: (ttl, address) for zone in ZONES}
    for nameserver in NAMESERVERS:
        assert aaaa_answers(nameserver) == want, f"@{nameserver}"
    seen = suite_dns(phase, directory)
    for zone in ZONES:
        points_to = seen[("DNS05", zone)]["points_to"].split(",")
        assert address in points_to, f"DNS05 {zone}: {points_to}"
        if phase == "acceptance":
            continue  # DNS02 runs in preflight and cutover
        for nameserver in (NS1_IP, NS2_IP):  # the inventory's nameservers
            ttls = seen[("DNS02", zone)][f"ttl@{nameserver}"].split()
            assert f"{zone}/AAAA={ttl}" in ttls, f"DNS02 {zone} @{nameserver}: {ttls}"


def test_aaaa_at_up_is_old_with_ttl_3600(lab: Lab, tmp_path: Path) -> None:
    lab.reach("up")
    assert_aaaa(3600, OLD_IP6, "preflight", tmp_path)


HOSTS6 = {
    "old": OLD_IP6,
    "new": NEW_IP6,
    "ns1": NS1_IP6,
    "ns2": NS2_IP6,
    "client": "2001:db8:5100::100",
}


def test_every_host_has_its_ipv6_address_and_the_root_has_the_guard_route(lab: Lab) -> None:
    lab.reach("up")
    for host, address in HOSTS6.items():
        shown = json.loads(observe(host, "ip", "-j", "-6", "addr", "show", "dev", "eth0"))
        infos = shown[0]["addr_info"]
        assert [
            (a["local"], a["prefixlen"], a.get("tentative", False))
            for a in infos
            if a["scope"] == "global"
        ] == [(address, 64, False)], infos
    lab_json = json.loads((REPO / ".lab" / "lab.json").read_text("utf-8"))
    assert {k: v["address6"] for k, v in lab_json["hosts"].items()} == HOSTS6
    routes = subprocess.run(
        ["ip", "-6", "route", "show", "type", "unreachable"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    assert "unreachable 2001:db8:5100::/64 " in routes, routes


def test_three_inventories_one_per_family(lab: Lab) -> None:
    lab.reach("up")
    both = load_inventory(REPO / ".lab" / "inventory.yaml")
    ipv4 = load_inventory(REPO / ".lab" / "inventory-ipv4.yaml")
    ipv6 = load_inventory(REPO / ".lab" / "inventory-ipv6.yaml")
    for side, v4, v6 in (("old", OLD_IP, OLD_IP6), ("new", "198.51.100.20", NEW_IP6)):
        assert [str(a) for a in getattr(both, side).addresses] == [v4, v6]
        assert [str(a) for a in getattr(ipv4, side).addresses] == [v4]
        assert [str(a) for a in getattr(ipv6, side).addresses] == [v6]
    text4 = (REPO / ".lab" / "inventory-ipv4.yaml").read_text("utf-8")
    text6 = (REPO / ".lab" / "inventory-ipv6.yaml").read_text("utf-8")
    assert "2001:db8" not in text4
    assert "198.51.100." not in text6


def test_aaaa_after_lower_ttl_is_old_with_ttl_300(preflight_lab: Lab, tmp_path: Path) -> None:
    assert_aaaa(300, OLD_IP6, "preflight", tmp_path)


def test_ipv6_ptr_is_forward_confirmed(preflight_lab: Lab) -> None:
    for address, name in ((OLD_IP6, "old.example.test"), (NEW_IP6, "new.example.test")):
        pointer = ipaddress.ip_address(address).reverse_pointer
        for nameserver in NAMESERVERS:
            assert dig(nameserver, pointer, "PTR", "+short") == f"{name}.", nameserver
            assert dig(nameserver, name, "AAAA", "+short") == address, nameserver


def test_spf_authorises_both_servers_on_both_families(preflight_lab: Lab) -> None:
    for zone in ZONES:
        spf = dig(NS1_IP6, zone, "TXT", "+short")
        for term in ("ip4:198.51.100.10", "ip4:198.51.100.20", f"ip6:{OLD_IP6}", f"ip6:{NEW_IP6}"):
            assert term in spf, f"{zone}: {spf}"


# --- ports: monitoring-plugins and PORT01 -----------------------------------------------


def plugin_outcomes(address: str) -> dict[int, bool]:
    """Per forwarded port of `address`: does monitoring-plugins' `check_tcp -6` say OK?

    Port 143 must also pass `check_imap -6` (an IMAP greeting, not just a TCP accept).
    Run inside cutover-client, as a Nagios/Icinga satellite in the clients' network would.
    """
    script = "; ".join(
        [
            *(
                f"{PLUGINS}/check_tcp -6 -H {address} -p {port} -t 5 >/dev/null 2>&1; "
                f"echo tcp {port} $?"
                for port in PORTS
            ),
            f"{PLUGINS}/check_imap -6 -H {address} -p 143 -t 5 >/dev/null 2>&1; echo imap 143 $?",
        ]
    )
    output = observe("client", "sh", "-c", script)
    codes: dict[tuple[str, int], int] = {}
    for line in output.splitlines():
        plugin, port, code = line.split()
        codes[(plugin, int(port))] = int(code)
    assert len(codes) == len(PORTS) + 1, output
    outcomes = {port: codes[("tcp", port)] == 0 for port in PORTS}
    outcomes[143] = outcomes[143] and codes[("imap", 143)] == 0
    return outcomes


def port01_old_v6(run: SuiteRun) -> dict[int, bool]:
    """What PORT01 reported for each port of the old side's IPv6 endpoints: port -> passed."""
    found = {}
    for case in run.cases:
        props = case.properties
        if (
            case.check_id == "PORT01"
            and props.get("side") == "old"
            and props.get("address") == OLD_IP6
        ):
            found[int(props["port"])] = case.outcome == "passed"
    return found


def assert_port01_agrees(lab: Lab, plugins: dict[int, bool]) -> None:
    run = lab.suite("cutover", str(REPO / "checks" / "test_ports.py"), "-k", "test_port_answers")
    suite = port01_old_v6(run)
    assert suite, f"PORT01 tested no IPv6 endpoint of the old side:\n{run.summary()}"
    assert suite == plugins, f"PORT01 {suite} vs check_tcp/check_imap {plugins}"


@pytest.mark.parametrize("address", [OLD_IP6, OLD_IP])
def test_old_serves_on_both_families_before_cutover(preflight_lab: Lab, address: str) -> None:
    family = "-6" if ":" in address else "-4"
    output = observe(
        "client", "sh", "-c", f"{PLUGINS}/check_imap {family} -H {address} -p 143 -t 5"
    )
    assert output.startswith("IMAP OK"), output


def test_cutover_ipv4_only_is_the_playbook_script(lab: Lab) -> None:
    lab.reach("preflight")
    try:
        said = lab_cli("cutover", "--ipv4-only").stdout
        assert "IPv4 only: nothing forwards the old server's IPv6 clients." in said, said
        assert plugin_outcomes(OLD_IP6) == dict.fromkeys(PORTS, False)
        assert plugin_outcomes(NEW_IP6) == dict.fromkeys(PORTS, True)
        ipv4 = observe("client", "sh", "-c", f"{PLUGINS}/check_imap -4 -H {OLD_IP} -p 143 -t 5")
        assert ipv4.startswith("IMAP OK"), ipv4
    finally:
        # This cutover is not the story's (no IPv6 forwards): the next test rebuilds.
        lab.state = "down"
        lab.rebuilds += 1


def test_plugins_see_the_ipv6_forwards_after_cutover(cutover_lab: Lab) -> None:
    plugins = plugin_outcomes(OLD_IP6)
    assert plugins == dict.fromkeys(PORTS, True), plugins
    assert_port01_agrees(cutover_lab, plugins)


def test_plugins_see_old_ipv6_refuse_under_forward_v4_only(cutover_lab: Lab) -> None:
    with cutover_lab.fault("forward-v4-only"):
        plugins = plugin_outcomes(OLD_IP6)
        assert plugins == dict.fromkeys(PORTS, False), plugins
        assert_port01_agrees(cutover_lab, plugins)
    assert plugin_outcomes(OLD_IP6) == dict.fromkeys(PORTS, True)


def test_aaaa_after_dns_switch_is_new(acceptance_lab: Lab, tmp_path: Path) -> None:
    assert_aaaa(300, NEW_IP6, "acceptance", tmp_path)
