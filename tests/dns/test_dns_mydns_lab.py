"""The legacy lab's nameservers: zones in MyDNS's soa/rr tables, served by PowerDNS.

Agreement (issue #19): on both nameservers, what `dig +norecurse` answers is
exactly DNS06's view of the MyDNS rows (relative names resolved against the
origin, `aux` as the MX preference, TTL per row and the zone's TTL on the
SOA), and the DNS checks are green on the healthy legacy lab. An inactive row
that ns2 still serves (`mydns-row-inactive`) fails DNS06 alone, naming the row.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import dns.rdata
import dns.rdataclass
import dns.rdatatype

from tests.conftest import Lab
from tests.dns.test_dns_lab import NEW_IP, NS1, NS2, OLD_IP, acknowledged, case, dns_suite, failing
from tests.suite import REPO

# Row -> question: (name, type) -> (TTLs, values) of the active rows.
Expected = dict[tuple[str, str], tuple[set[int], set[str]]]


def sql_rows(inventory: Path) -> dict[str, list[list[object]]]:
    """DNS06's reader run from the client namespace: {nameserver: rows}."""
    completed = subprocess.run(
        ["ip", "netns", "exec", "cutover-client", sys.executable, "-m", "tests.dns.mydns_rows",
         str(inventory)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    found: dict[str, list[list[object]]] = json.loads(completed.stdout)
    return found


def expected(rows: list[list[object]]) -> Expected:
    questions: Expected = {}
    for row, name, rdtype, ttl, value, disabled in rows:
        assert value is not None, f"unparsable row {row}"
        assert not disabled, f"the healthy lab has no inactive row, but {row} is"
        ttls, values = questions.setdefault((str(name), str(rdtype)), (set(), set()))
        ttls.add(int(str(ttl)))
        values.add(canonical(str(rdtype), str(value)))
    return questions


def canonical(rdtype: str, text: str) -> str:
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), text)
    return rdata.to_text()


def dug(server: str, name: str, rdtype: str) -> tuple[set[int], set[str]]:
    """TTLs and data of `name rdtype` as `dig +norecurse @server` prints them."""
    completed = subprocess.run(
        ["ip", "netns", "exec", "cutover-client", "dig", "+norecurse", "+noall", "+answer",
         "+time=5", "+tries=1", f"@{server}", name, rdtype],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    ttls, values = set(), set()
    for line in completed.stdout.splitlines():
        owner, ttl, _class, found_type, data = line.split(None, 4)
        if owner.rstrip(".").lower() == name and found_type == rdtype:
            ttls.add(int(ttl))
            values.add(canonical(rdtype, data))
    return ttls, values


def agree(lab: Lab, phase: str, tmp_path: Path, apex: str) -> None:
    inventory = acknowledged(lab, tmp_path)
    run = dns_suite(lab, phase, tmp_path, inventory)
    assert failing(run) == set(), run.summary()
    for zone in ("example.test", "shop.test", "blog.test"):
        for server in (NS1, NS2):
            assert (
                "mydns " in case(run, "test_sql_rows_are_served", zone).properties[f"sql@{server}"]
            )
    rows = sql_rows(inventory)
    assert set(rows) == {NS1, NS2}
    compared = 0
    for server, server_rows in rows.items():
        questions = expected(server_rows)
        for (name, rdtype), want in sorted(questions.items()):
            assert dug(server, name, rdtype) == want, (server, name, rdtype)
            compared += 1
        # Relative names, aux and the zone's SOA, as read from the rows and served:
        assert questions[("example.test", "MX")][1] == {"10 mail.example.test."}
        assert questions[("www.shop.test", "CNAME")][1] == {"shop.test."}
        assert questions[("example.test", "A")][1] == {apex}
        assert questions[("example.test", "SOA")][0] == {300}
        assert any(rdtype == "PTR" and name.endswith(".ip6.arpa") for name, rdtype in questions)
    assert compared >= 2 * 40, compared


def test_mydns_rows_agree_with_dig_norecurse_in_preflight(
    legacy_preflight_lab: Lab, tmp_path: Path
) -> None:
    agree(legacy_preflight_lab, "preflight", tmp_path, OLD_IP)


def test_mydns_rows_agree_with_dig_norecurse_after_the_dns_switch(
    legacy_acceptance_lab: Lab, tmp_path: Path
) -> None:
    agree(legacy_acceptance_lab, "acceptance", tmp_path, NEW_IP)


def view(lab: Lab, host: str) -> str:
    """The definition of the `records` view PowerDNS reads on `host`."""
    return lab.exec(host, "mariadb", "pdns", "-e", "SHOW CREATE VIEW records").stdout


def test_an_inactive_row_still_served_fails_only_the_sql_check(
    legacy_preflight_lab: Lab, tmp_path: Path
) -> None:
    inventory = acknowledged(legacy_preflight_lab, tmp_path)
    with legacy_preflight_lab.fault("mydns-row-inactive"):
        run = dns_suite(legacy_preflight_lab, "preflight", tmp_path, inventory)
        rows = sql_rows(inventory)
        served = {s: dug(s, "www.example.test", "CNAME") for s in (NS1, NS2)}
        assert "active" not in view(legacy_preflight_lab, "ns2")
    # Undone: every row active again and ns2's views filter on the flag again.
    assert not any(r[5] for rows_of in sql_rows(inventory).values() for r in rows_of)
    assert "active" in view(legacy_preflight_lab, "ns2")
    assert failing(run) == {"DNS06"}, run.summary()
    inactive = [r for r in rows[NS2] if r[5]]
    assert [(r[1], r[2]) for r in inactive] == [("www.example.test", "CNAME")], inactive
    assert not any(r[5] for r in rows[NS1])
    # Served all the same, by both servers: only the rows say it should not be.
    assert served[NS1] == served[NS2] == ({300}, {"example.test."})
    message = case(run, "test_sql_rows_are_served", "example.test").message
    assert re.search(
        rf"{re.escape(NS2)}[^:\n]*: www.example.test CNAME 300 example.test. "
        rf"\({re.escape(str(inactive[0][0]))}\): disabled in the database, served",
        message,
    ), message
    assert NS1 not in message, message
