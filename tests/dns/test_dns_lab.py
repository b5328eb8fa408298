"""DNS checks against the lab's two PowerDNS servers: green when healthy, red per fault.

Each run executes only checks/test_dns.py from the client namespace and
reads the JUnit XML. Preflight runs share one reports directory (and so one
baseline) across this module, so the suite sees the 3600 s TTLs before
`lower-ttl` and knows the old TTL afterwards. The lab inventory is dual stack:
A and AAAA records are judged alike (the IPv6-only inventory is run too).
"""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Lab
from tests.dns.inventories import ipv6_inventory
from tests.suite import REPO, SuiteRun, run_suite

NS1, NS2 = "198.51.100.53", "198.51.100.54"
OLD_IP, NEW_IP = "198.51.100.10", "198.51.100.20"
OLD_IP6, NEW_IP6 = "2001:db8:5100::10", "2001:db8:5100::20"
ZONES = ("example.test", "shop.test", "blog.test")
ACKNOWLEDGEMENT = "lab: TTLs lowered by `lab lower-ttl`; no resolver in the lab caches them"
CHECKS = str(REPO / "checks" / "test_dns.py")
# Set once the suite has observed the lab's 3600 s TTLs into the shared baseline.
HISTORY: dict[str, bool] = {}


@pytest.fixture(scope="session")
def preflight_reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Session-wide: the story order interleaves modules, and later tests need
    # the TTL history the first preflight run recorded here.
    return tmp_path_factory.mktemp("dns-preflight")


def dns_suite(lab: Lab, phase: str, reports: Path, inventory: Path | None = None) -> SuiteRun:
    return run_suite(phase, inventory or lab.inventory, reports, CHECKS, namespace="cutover-client")


def acknowledged(lab: Lab, directory: Path) -> Path:
    """A copy of the lab inventory that states the TTL lowering."""
    return lab.inventory_variant(
        directory, lambda data: data["dns"].update(lowering_acknowledged=ACKNOWLEDGEMENT)
    )


def dns_cases(run: SuiteRun) -> list[Any]:
    cases = [c for c in run.cases if c.check_id.startswith("DNS")]
    assert cases, run.summary()
    return cases


def failing(run: SuiteRun) -> set[str]:
    return {c.check_id for c in dns_cases(run) if c.outcome in ("failed", "error")}


def case(run: SuiteRun, test: str, zone: str) -> Any:
    return run.by_name(f"{test}[{zone}]")


def test_preflight_before_lower_ttl_lists_every_offender(
    up_lab: Lab, preflight_reports: Path
) -> None:
    run = dns_suite(up_lab, "preflight", preflight_reports)
    assert failing(run) == {"DNS02"}, run.summary()
    for zone in ZONES:
        message = case(run, "test_ttl_lowered", zone).message
        for server in (NS1, NS2):
            for name, rdtype in (
                (zone, "A"),
                (zone, "MX"),
                (f"www.{zone}", "CNAME"),
                (f"mail.{zone}", "CNAME"),
            ):
                line = rf"{re.escape(server)}[^:\n]*: {re.escape(name)} {rdtype} TTL 3600"
                assert re.search(line, message), f"{server} {name} {rdtype} missing:\n{message}"
    HISTORY["seen_high"] = True


def test_preflight_waits_for_the_old_ttl_unless_acknowledged(
    preflight_lab: Lab, preflight_reports: Path, tmp_path: Path
) -> None:
    known = HISTORY.get("seen_high", False)
    run = dns_suite(preflight_lab, "preflight", preflight_reports)
    assert failing(run) == {"DNS03"}, run.summary()
    message = case(run, "test_ttl_lowered_long_enough", "example.test").message
    expected = "old TTL 3600 s" if known else "no TTL above 300 s was ever observed"
    assert expected in message and "left (until" in message, message
    assert "example.test A: TTL 300" in message, message

    acked = dns_suite(
        preflight_lab, "preflight", preflight_reports, acknowledged(preflight_lab, tmp_path)
    )
    assert failing(acked) == set(), acked.summary()
    for zone in ZONES:
        props = case(acked, "test_ttl_lowered_long_enough", zone).properties
        assert props["lowering_acknowledged"] == ACKNOWLEDGEMENT

    # Once the old TTL has passed since the first lowered sighting, no acknowledgement is
    # needed: age the whole recorded history (high and lowered sightings) by that much.
    baseline = preflight_reports / "baseline.json"
    data = json.loads(baseline.read_text(encoding="utf-8"))
    age = timedelta(seconds=(3600 if known else 86400) + 1)
    sections = data["sections"]
    for entry in [*sections["dns_lowered"].values(), *sections.get("dns_ttl_high", {}).values()]:
        for stamp in ("first_seen", "seen"):
            if stamp in entry:
                entry[stamp] = (datetime.fromisoformat(entry[stamp]) - age).isoformat()
    baseline.write_text(json.dumps(data), encoding="utf-8")
    later = dns_suite(preflight_lab, "preflight", preflight_reports)
    assert failing(later) == set(), later.summary()


def test_ttl_raised_on_one_server_fails_only_the_ttl_check(
    preflight_lab: Lab, tmp_path: Path
) -> None:
    with preflight_lab.fault("dns-ttl-high:ns2"):
        run = dns_suite(preflight_lab, "preflight", tmp_path, acknowledged(preflight_lab, tmp_path))
    assert failing(run) == {"DNS02"}, run.summary()
    message = case(run, "test_ttl_lowered", "shop.test").message
    assert f"{NS2}" in message and "shop.test A TTL 3600" in message, message
    assert NS1 not in message, message


def test_serial_mismatch_fails_only_the_serial_check(preflight_lab: Lab, tmp_path: Path) -> None:
    with preflight_lab.fault("dns-serial-mismatch"):
        run = dns_suite(preflight_lab, "preflight", tmp_path, acknowledged(preflight_lab, tmp_path))
        # The serials the check read are the ones dig reads (zonemaster-cli is not run: its
        # undelegated mode recurses from the real root servers to find the parent zone).
        dig_serials = {s: int(_dig(s, "example.test", "SOA")[1][2]) for s in (NS1, NS2)}
    assert failing(run) == {"DNS04"}, run.summary()
    bad = [c.name for c in dns_cases(run) if c.outcome == "failed"]
    assert bad == ["test_soa_serials_agree[example.test]"], bad
    message = case(run, "test_soa_serials_agree", "example.test").message
    assert re.search(rf"{re.escape(NS1)}[^:\n]*: serial \d+, newest \d+: behind by 1", message), (
        message
    )
    props = case(run, "test_soa_serials_agree", "example.test").properties
    assert {s: int(props[f"serial@{s}"]) for s in (NS1, NS2)} == dig_serials
    assert dig_serials[NS2] == dig_serials[NS1] + 1


def test_record_disabled_in_sql_fails_only_the_sql_check(
    preflight_lab: Lab, tmp_path: Path
) -> None:
    # No lab fault exists for this yet: disable shop.test's SPF TXT row on ns1 by hand.
    where = "name = 'shop.test' AND type = 'TXT'"
    preflight_lab.exec(
        "ns1", "mariadb", "pdns", "-e", f"UPDATE records SET disabled = 1 WHERE {where}"
    )
    try:
        run = dns_suite(preflight_lab, "preflight", tmp_path, acknowledged(preflight_lab, tmp_path))
    finally:
        preflight_lab.exec(
            "ns1", "mariadb", "pdns", "-e", f"UPDATE records SET disabled = 0 WHERE {where}"
        )
    assert failing(run) == {"DNS06"}, run.summary()
    message = case(run, "test_sql_rows_are_served", "shop.test").message
    assert re.search(
        rf"{re.escape(NS1)}[^:\n]*: shop.test TXT 300 .*records\.id=\d+\): disabled in the "
        "database, not served",
        message,
    ), message
    assert NS2 not in message, message


def _dig(server: str, name: str, rdtype: str) -> tuple[int, list[str]]:
    """TTL and data of `name rdtype` as `dig +norecurse @server` shows it (from the client)."""
    completed = subprocess.run(
        ["ip", "netns", "exec", "cutover-client", "dig", "+norecurse", "+noall", "+answer",
         "+time=5", "+tries=1", f"@{server}", name, rdtype],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    for line in completed.stdout.splitlines():
        owner, ttl, _class, found_type, *data = line.split()
        if owner.rstrip(".").lower() == name and found_type == rdtype:
            return int(ttl), data
    raise AssertionError(f"dig @{server} {name} {rdtype} printed no such record:\n{completed}")


def test_ttls_agree_with_dig_norecurse(preflight_lab: Lab, tmp_path: Path) -> None:
    run = dns_suite(preflight_lab, "preflight", tmp_path, acknowledged(preflight_lab, tmp_path))
    compared = 0
    aaaa: set[tuple[str, str]] = set()
    for zone in ZONES:
        props = case(run, "test_ttl_lowered", zone).properties
        for server in (NS1, NS2):
            for item in props[f"ttl@{server}"].split():
                key, ttl = item.split("=")
                name, rdtype = key.split("/")
                assert _dig(server, name, rdtype)[0] == int(ttl), (server, name, rdtype)
                compared += 1
                if rdtype == "AAAA":
                    aaaa.add((server, name))
    assert compared >= len(ZONES) * 2 * 5
    # Every zone's apex AAAA was among them, on both servers (dual stack).
    assert {(s, z) for s in (NS1, NS2) for z in ZONES} <= aaaa, aaaa


def test_cutover_accepts_old_or_new(cutover_lab: Lab, tmp_path: Path) -> None:
    run = dns_suite(cutover_lab, "cutover", tmp_path, acknowledged(cutover_lab, tmp_path))
    assert failing(run) == set(), run.summary()


def test_acceptance_passes_after_dns_switch_and_catches_a_stale_record(
    acceptance_lab: Lab, tmp_path: Path
) -> None:
    run = dns_suite(acceptance_lab, "acceptance", tmp_path)
    assert failing(run) == set(), run.summary()
    for zone in ZONES:
        assert (
            case(run, "test_records_point_to_the_expected_server", zone).properties["points_to"]
            == f"{NEW_IP},{NEW_IP6}"
        )

    with acceptance_lab.fault("dns-a-stale"):
        stale = dns_suite(acceptance_lab, "acceptance", tmp_path)
    assert failing(stale) == {"DNS05"}, stale.summary()
    bad = [c.name for c in dns_cases(stale) if c.outcome == "failed"]
    assert bad == ["test_records_point_to_the_expected_server[shop.test]"], bad
    message = case(stale, "test_records_point_to_the_expected_server", "shop.test").message
    for server in (NS1, NS2):
        assert re.search(
            rf"{re.escape(server)}[^:\n]*: shop.test A is {re.escape(OLD_IP)} \(old IP\)", message
        ), message


# --- dual stack: AAAA records judged as A records ------------------------------------


def test_aaaa_records_agree_with_dig_norecurse_and_point_at_new(
    acceptance_lab: Lab, tmp_path: Path
) -> None:
    # What DNS05 saw of each zone's AAAA is what `dig +norecurse AAAA` gets from both servers.
    run = dns_suite(acceptance_lab, "acceptance", tmp_path)
    assert failing(run) == set(), run.summary()
    for zone in ZONES:
        points = case(run, "test_records_point_to_the_expected_server", zone).properties
        v6 = {a for a in points["points_to"].split(",") if ":" in a}
        for server in (NS1, NS2):
            assert set(_dig(server, zone, "AAAA")[1]) == v6 == {NEW_IP6}, (server, zone)


def test_aaaa_left_at_old_fails_only_the_pointing_check(
    acceptance_lab: Lab, tmp_path: Path
) -> None:
    with acceptance_lab.fault("aaaa-stale"):
        run = dns_suite(acceptance_lab, "acceptance", tmp_path)
        dug = {s: _dig(s, "shop.test", "AAAA")[1] for s in (NS1, NS2)}
    assert failing(run) == {"DNS05"}, run.summary()
    bad = [c.name for c in dns_cases(run) if c.outcome == "failed"]
    assert bad == ["test_records_point_to_the_expected_server[shop.test]"], bad
    message = case(run, "test_records_point_to_the_expected_server", "shop.test").message
    for server in (NS1, NS2):
        assert dug[server] == [OLD_IP6]
        assert re.search(
            rf"{re.escape(server)}[^:\n]*: shop.test AAAA is {re.escape(OLD_IP6)} \(old IP\)",
            message,
        ), message
    assert "shop.test A is" not in message, message


def test_aaaa_ttl_raised_on_one_server_fails_only_the_ttl_check(
    preflight_lab: Lab, tmp_path: Path
) -> None:
    with preflight_lab.fault("aaaa-ttl-high:ns2"):
        run = dns_suite(preflight_lab, "preflight", tmp_path, acknowledged(preflight_lab, tmp_path))
        dug = {s: _dig(s, "shop.test", "AAAA")[0] for s in (NS1, NS2)}
    assert failing(run) == {"DNS02"}, run.summary()
    assert dug == {NS1: 300, NS2: 3600}
    message = case(run, "test_ttl_lowered", "shop.test").message
    assert f"{NS2}" in message and "shop.test AAAA TTL 3600" in message, message
    assert NS1 not in message and "shop.test A TTL" not in message, message


def test_a_name_that_lost_its_aaaa_is_reported(preflight_lab: Lab, tmp_path: Path) -> None:
    # No lab fault removes an AAAA record: delete shop.test's on both servers, then restore.
    where = "name = 'shop.test' AND type = 'AAAA'"
    columns = "domain_id, name, type, content, ttl, prio, disabled, auth"
    saved = {}
    for ns in ("ns1", "ns2"):
        rows = preflight_lab.exec(
            ns,
            "mariadb", "pdns", "-N", "-B", "-e", f"SELECT {columns} FROM records WHERE {where}",
        ).stdout  # fmt: skip
        saved[ns] = [line.split("\t") for line in rows.splitlines() if line.strip()]
        assert saved[ns], f"{ns}: no AAAA row for shop.test"
    try:
        for ns in saved:
            preflight_lab.exec(ns, "mariadb", "pdns", "-e", f"DELETE FROM records WHERE {where}")
        run = dns_suite(preflight_lab, "preflight", tmp_path, acknowledged(preflight_lab, tmp_path))
    finally:
        for ns, rows in saved.items():
            values = ", ".join("(" + ", ".join(f"'{v}'" for v in row) + ")" for row in rows)
            preflight_lab.exec(
                ns, "mariadb", "pdns", "-e", f"INSERT INTO records ({columns}) VALUES {values}"
            )
    assert _dig(NS1, "shop.test", "AAAA")[1] == [OLD_IP6]  # restored
    assert failing(run) == {"DNS05"}, run.summary()
    bad = [c.name for c in dns_cases(run) if c.outcome == "failed"]
    assert bad == ["test_records_point_to_the_expected_server[shop.test]"], bad
    message = case(run, "test_records_point_to_the_expected_server", "shop.test").message
    for server in (NS1, NS2):
        assert re.search(
            rf"{re.escape(server)}[^:\n]*: shop.test A is {re.escape(OLD_IP)} \(old IP\) but it "
            "has no AAAA record, while example.test AAAA",
            message,
        ), message


def test_an_ipv6_only_inventory_judges_the_aaaa_records(
    acceptance_lab: Lab, tmp_path: Path
) -> None:
    inventory = ipv6_inventory(acceptance_lab, tmp_path, ACKNOWLEDGEMENT)
    run = dns_suite(acceptance_lab, "acceptance", tmp_path / "reports", inventory)
    assert failing(run) == set(), run.summary()
    for zone in ZONES:
        props = case(run, "test_records_point_to_the_expected_server", zone).properties
        assert props["points_to"] == NEW_IP6  # the A records are not its to judge
    with acceptance_lab.fault("aaaa-stale"):
        stale = dns_suite(acceptance_lab, "acceptance", tmp_path / "stale", inventory)
    assert failing(stale) == {"DNS05"}, stale.summary()
