"""Outbound checks against the lab: green in every phase, red per fault, SPF as libspf2 sees it.

Each run executes checks/test_outbound.py and checks/test_dns.py (the whole
`dns` area, which MAIL belongs to) from the client namespace and reads the
JUnit XML. One reports directory (and so one baseline) serves the whole
module, so MAIL04 compares cutover and acceptance with what preflight recorded.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import dns.reversename
import pytest

from tests.conftest import Lab
from tests.dns.inventories import ipv6_inventory
from tests.suite import REPO, SuiteRun, run_suite

NS1, NS2 = "198.51.100.53", "198.51.100.54"
OLD_IP, NEW_IP = "198.51.100.10", "198.51.100.20"
OLD_IP6, NEW_IP6 = "2001:db8:5100::10", "2001:db8:5100::20"
# The lab inventory is dual stack: mail may leave from every address of each server.
SENDERS = (OLD_IP, NEW_IP, OLD_IP6, NEW_IP6)
ZONES = ("example.test", "shop.test", "blog.test")
CHECKS = [str(REPO / "checks" / "test_outbound.py"), str(REPO / "checks" / "test_dns.py")]
KEY_FILE = "/etc/ssl/private/dkim-{selector}.key"


@pytest.fixture(scope="session")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Session-wide: the story order interleaves modules, and the later phases
    # need the baseline the preflight tests recorded here.
    return tmp_path_factory.mktemp("outbound")


def outbound_inventory(lab: Lab, directory: Path) -> Path:
    """The lab inventory plus its outbound mail facts (paths made absolute).

    The lab's own inventory does not describe DKIM selectors or the reverse
    zone's servers yet; the TTL lowering is acknowledged so DNS03 does not wait.
    """

    def change(data: dict[str, Any]) -> None:
        data.setdefault(
            "outbound",
            {
                "dkim_selectors": ["mail"],
                "dkim_key_file": KEY_FILE,
                "reverse_nameservers": [NS1, NS2],
            },
        )
        data["dns"]["lowering_acknowledged"] = "lab: lowered by `lab lower-ttl`, no resolver caches"

    return lab.inventory_variant(directory / "inventory-outbound", change)


def suite(lab: Lab, phase: str, reports: Path) -> SuiteRun:
    return run_suite(
        phase, outbound_inventory(lab, reports), reports, *CHECKS, namespace="cutover-client"
    )


def mail_cases(run: SuiteRun) -> list[Any]:
    cases = [c for c in run.cases if c.check_id.startswith("MAIL")]
    assert cases, run.summary()
    return cases


def failing(run: SuiteRun) -> list[str]:
    return sorted(c.name for c in run.cases if c.outcome in ("failed", "error"))


def verdict(case: Any, ip: str) -> str:
    """The SPF result word the suite recorded for `ip` (`pass by ip4:... (...)` -> `pass`)."""
    return str(case.properties[f"spf@{ip}"]).split()[0]


def spfquery(domain: str, ip: str) -> str:
    """libspf2's result for mail from postmaster@domain sent by ip, from the client namespace.

    spfquery resolves through the namespace's resolv.conf, which names ns1: a
    PowerDNS authoritative server that answers its own zones with RD set. So
    libspf2 reads the same zones, but from ns1 only (the suite asks ns1 and ns2).
    """
    resolv = Path("/etc/netns/cutover-client/resolv.conf").read_text(encoding="utf-8")
    assert resolv.split() == ["nameserver", NS1], f"client resolv.conf is not ns1 only: {resolv}"
    completed = subprocess.run(
        ["ip", "netns", "exec", "cutover-client", "spfquery", "-ip", ip,
         "-sender", f"postmaster@{domain}", "-helo", domain],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    lines = [line.strip() for line in completed.stdout.splitlines()]
    if lines[:1] == ["StartError"]:
        # libspf2 explains an error first (StartError ... EndError), then the result.
        lines = lines[lines.index("EndError") + 1 :]
    assert lines, f"spfquery printed no result: {completed}"
    return lines[0]


def assert_spf_agrees_with_libspf2(run: SuiteRun) -> dict[tuple[str, str], str]:
    seen = {}
    for zone in ZONES:
        case = run.by_name(f"test_spf_authorises_the_senders[{zone}]")
        for ip in SENDERS:
            ours, theirs = verdict(case, ip), spfquery(zone, ip)
            assert ours == theirs, f"{zone} {ip}: pyspf {ours}, libspf2 {theirs}"
            seen[(zone, ip)] = ours
    return seen


# --- healthy lab -------------------------------------------------------------------


def test_preflight_green_and_spf_agrees_with_libspf2(preflight_lab: Lab, reports: Path) -> None:
    run = suite(preflight_lab, "preflight", reports)
    assert failing(run) == [], run.summary()
    names = sorted(c.name for c in mail_cases(run))
    assert names == sorted(
        [f"test_spf_authorises_the_senders[{z}]" for z in ZONES]
        + ["test_reverse_dns_matches_helo"]
        + [f"test_dkim_key_published_and_matching[mail._domainkey.{z}]" for z in ZONES]
        + [f"test_mx_preferences_unchanged[{z}]" for z in ZONES]
    ), names
    assert all(c.outcome == "passed" for c in mail_cases(run)), run.summary()
    helo = run.by_name("test_reverse_dns_matches_helo").properties
    assert helo["helo"] == "new.example.test", helo
    for ip in (NEW_IP, NEW_IP6):  # each address of the new server, PTR forward-confirmed
        assert helo[f"ptr@{ip}"] == "new.example.test", helo
    for zone in ZONES:
        dkim = run.by_name(f"test_dkim_key_published_and_matching[mail._domainkey.{zone}]")
        props = dkim.properties
        assert props["published_key"] == props["signing_key"], props
        assert props["dkim_asked"] == f"{NS1}, {NS2}"
        mx = run.by_name(f"test_mx_preferences_unchanged[{zone}]").properties
        assert mx["mx"] == f"10 mail.{zone}"
    assert set(assert_spf_agrees_with_libspf2(run).values()) == {"pass"}


# --- faults (preflight) ----------------------------------------------------------


def test_spf_missing_new_ip_fails_only_mail01_for_that_zone(
    preflight_lab: Lab, reports: Path
) -> None:
    with preflight_lab.fault("spf-missing-new-ip"):
        run = suite(preflight_lab, "preflight", reports)
        verdicts = assert_spf_agrees_with_libspf2(run)
    assert failing(run) == ["test_spf_authorises_the_senders[shop.test]"], run.summary()
    message = run.by_name("test_spf_authorises_the_senders[shop.test]").message
    assert f"mail from {NEW_IP} (new IP): fail by -all" in message, message
    assert f"record v=spf1 ip4:{OLD_IP} ip6:{OLD_IP6} ip6:{NEW_IP6} -all" in message, message
    assert f"mail from {OLD_IP}" not in message, message
    assert verdicts[("shop.test", NEW_IP)] == "fail"
    assert verdicts[("shop.test", OLD_IP)] == "pass"


def test_spf_too_many_lookups_fails_only_mail01_for_that_zone(
    preflight_lab: Lab, reports: Path
) -> None:
    with preflight_lab.fault("spf-too-many-lookups"):
        run = suite(preflight_lab, "preflight", reports)
        verdicts = assert_spf_agrees_with_libspf2(run)
    assert failing(run) == ["test_spf_authorises_the_senders[blog.test]"], run.summary()
    message = run.by_name("test_spf_authorises_the_senders[blog.test]").message
    for ip in (OLD_IP, NEW_IP):
        assert re.search(
            rf"mail from {re.escape(ip)} \([a-z]+ IP\): permerror \(SPF Permanent Error: "
            r"Too many DNS lookups; 11 DNS-causing terms",
            message,
        ), message
        assert verdicts[("blog.test", ip)] == "permerror"


def test_spf_missing_ip6_fails_only_mail01_for_that_zone(preflight_lab: Lab, reports: Path) -> None:
    with preflight_lab.fault("spf-missing-ip6"):
        run = suite(preflight_lab, "preflight", reports)
        verdicts = assert_spf_agrees_with_libspf2(run)
    assert failing(run) == ["test_spf_authorises_the_senders[shop.test]"], run.summary()
    message = run.by_name("test_spf_authorises_the_senders[shop.test]").message
    assert f"mail from {NEW_IP6} (new IP): fail by -all" in message, message
    for ip in (OLD_IP, NEW_IP, OLD_IP6):
        assert f"mail from {ip} " not in message, message
        assert verdicts[("shop.test", ip)] == "pass"
    assert verdicts[("shop.test", NEW_IP6)] == "fail"


def test_ptr6_missing_fails_only_mail02_naming_the_ipv6_address(
    preflight_lab: Lab, reports: Path
) -> None:
    pointer = dns.reversename.from_address(NEW_IP6).to_text(omit_final_dot=True)
    with preflight_lab.fault("ptr6-missing"):
        run = suite(preflight_lab, "preflight", reports)
    assert failing(run) == ["test_reverse_dns_matches_helo"], run.summary()
    message = run.by_name("test_reverse_dns_matches_helo").message
    assert f"{NEW_IP6}: {pointer} has no PTR record" in message, message
    assert f"\n  {NEW_IP}:" not in message, message  # the IPv4 address is fine


def test_ptr_mismatch_fails_only_mail02(preflight_lab: Lab, reports: Path) -> None:
    with preflight_lab.fault("ptr-mismatch"):
        run = suite(preflight_lab, "preflight", reports)
    assert failing(run) == ["test_reverse_dns_matches_helo"], run.summary()
    message = run.by_name("test_reverse_dns_matches_helo").message
    assert f"PTR name old.example.test resolves to {OLD_IP}" in message, message
    assert f"not to {NEW_IP}: not forward-confirmed" in message, message
    assert "HELO name new.example.test (SMTP greeting '220 new.example.test" in message, message
    assert f"{NEW_IP}:25" in message, message


def test_dkim_key_mismatch_fails_only_mail03_for_that_zone(
    preflight_lab: Lab, reports: Path
) -> None:
    with preflight_lab.fault("dkim-key-mismatch"):
        run = suite(preflight_lab, "preflight", reports)
    name = "test_dkim_key_published_and_matching[mail._domainkey.example.test]"
    assert failing(run) == [name], run.summary()
    message = run.by_name(name).message
    assert re.search(
        r"published key \(2048-bit RSA, modulus sha256:[0-9a-f]{16}, e=65537\) is not the "
        r"public half of /etc/ssl/private/dkim-mail\.key on the new host "
        rf"\(ssh://root@{re.escape(NEW_IP)}\) \(modulus sha256:[0-9a-f]{{16}}",
        message,
    ), message


def test_mx_preference_changed_fails_only_mail04(preflight_lab: Lab, reports: Path) -> None:
    # No lab fault for this: raise shop.test's MX preference on both servers by hand,
    # after a preflight run has recorded the preferences.
    recorded = suite(preflight_lab, "preflight", reports)
    assert failing(recorded) == [], recorded.summary()
    where = "type = 'MX' AND name = 'shop.test'"
    for ns in ("ns1", "ns2"):
        preflight_lab.exec(
            ns, "mariadb", "pdns", "-e", f"UPDATE records SET prio = 50 WHERE {where}"
        )
    try:
        run = run_suite(
            "cutover",
            outbound_inventory(preflight_lab, reports),
            reports,
            str(REPO / "checks" / "test_outbound.py"),
            namespace="cutover-client",
        )
    finally:
        for ns in ("ns1", "ns2"):
            preflight_lab.exec(
                ns, "mariadb", "pdns", "-e", f"UPDATE records SET prio = 10 WHERE {where}"
            )
    assert failing(run) == ["test_mx_preferences_unchanged[shop.test]"], run.summary()
    message = run.by_name("test_mx_preferences_unchanged[shop.test]").message
    assert "mail.shop.test: preference 10 -> 50" in message, message


def test_ipv6_only_inventory_green(preflight_lab: Lab, tmp_path: Path) -> None:
    # Every address, nameserver and reverse server by IPv6 only: MAIL01 passes the IPv6
    # senders, MAIL02 confirms the new server's IPv6 PTR through its AAAA record.
    inventory = ipv6_inventory(preflight_lab, tmp_path, "lab: lowered by `lab lower-ttl`")
    run = run_suite(
        "preflight", inventory, tmp_path / "reports", *CHECKS, namespace="cutover-client"
    )
    assert failing(run) == [], run.summary()
    helo = run.by_name("test_reverse_dns_matches_helo").properties
    assert helo["ptr"] == "new.example.test", helo
    spf = run.by_name("test_spf_authorises_the_senders[shop.test]").properties
    assert set(spf) >= {f"spf@{OLD_IP6}", f"spf@{NEW_IP6}"} and f"spf@{NEW_IP}" not in spf


# --- later phases ------------------------------------------------------------------


def test_cutover_green(cutover_lab: Lab, reports: Path) -> None:
    run = suite(cutover_lab, "cutover", reports)
    assert failing(run) == [], run.summary()
    checks = {c.check_id for c in mail_cases(run)}
    assert checks == {"MAIL04"}, checks
    assert all(c.outcome == "passed" for c in mail_cases(run)), run.summary()


def test_acceptance_green_and_faults_still_caught(acceptance_lab: Lab, reports: Path) -> None:
    run = suite(acceptance_lab, "acceptance", reports)
    assert failing(run) == [], run.summary()
    assert {c.check_id for c in mail_cases(run)} == {"MAIL01", "MAIL02", "MAIL03", "MAIL04"}
    assert all(c.outcome == "passed" for c in mail_cases(run)), run.summary()
    # The old IP still forwards (acceptance.old_ip: forward): it must stay authorised.
    assert verdict(run.by_name("test_spf_authorises_the_senders[example.test]"), OLD_IP) == "pass"
    assert set(assert_spf_agrees_with_libspf2(run).values()) == {"pass"}
    with acceptance_lab.fault("spf-missing-new-ip"):
        broken = suite(acceptance_lab, "acceptance", reports)
    assert failing(broken) == ["test_spf_authorises_the_senders[shop.test]"], broken.summary()
