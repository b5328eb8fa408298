"""Pure logic of the DNS probes and checks: names, serials, SQL rows, chains."""

from __future__ import annotations

import pymysql
import pytest

from checks.test_dns import _sql_problems
from cutover.model.inventory import DnsSql
from cutover.probes.connect import ProbeError
from cutover.probes.dns.engine import Answer, RRset, mx_targets
from cutover.probes.dns.names import absolute_text, below, rdata_key, zone_of
from cutover.probes.dns.sql import SqlRecord, SqlZone, mydns_record, pdns_record, read_zones
from cutover.probes.dns.zones import seconds_to_wait, serial_compare, zone_questions


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [
        (2024010101, 2024010101, 0),
        (2024010101, 2024010102, -1),
        (2024010102, 2024010101, 1),
        (4294967295, 0, -1),  # wrapped: 0 comes after 2^32-1
        (0, 4294967295, 1),
        (0, 2**31, None),  # exactly half the space apart: undefined (RFC 1982 3.2)
        (1, 2**31 + 2, 1),  # more than half ahead means behind
    ],
)
def test_serial_compare_follows_rfc1982(a: int, b: int, order: int | None) -> None:
    assert serial_compare(a, b) == order


def test_zone_questions_cover_apex_and_names_once() -> None:
    plan = zone_questions("Example.TEST.", ["www", "mail", "www", "@", "ftp.other.test."])
    assert plan[:4] == [
        ("example.test", "SOA"),
        ("example.test", "A"),
        ("example.test", "AAAA"),
        ("example.test", "MX"),
    ]
    assert ("www.example.test", "A") in plan and ("mail.example.test", "AAAA") in plan
    assert ("ftp.other.test", "A") in plan
    assert len(plan) == len(set(plan))


def test_names_are_relative_to_the_zone_unless_absolute() -> None:
    assert below("www", "example.test") == "www.example.test"
    assert below("@", "example.test") == "example.test"
    assert below("Host.Elsewhere.test.", "example.test") == "host.elsewhere.test"
    assert absolute_text("EXAMPLE.test.") == "example.test"


def test_zone_of_picks_the_longest_containing_zone() -> None:
    zones = {"example.test", "shop.example.test"}
    assert zone_of("www.shop.example.test", zones) == "shop.example.test"
    assert zone_of("mail.example.test", zones) == "example.test"
    assert zone_of("example.net", zones) is None


def _answer(qname: str, rdtype: str, *rrsets: RRset, rcode: str = "NOERROR", aa: bool = True):
    return Answer("198.51.100.53", qname, rdtype, rcode=rcode, authoritative=aa, answer=rrsets)


def test_chain_follows_cnames_inside_the_answer() -> None:
    answer = _answer(
        "mail.example.test",
        "A",
        RRset("mail.example.test", "CNAME", 300, ("example.test.",)),
        RRset("example.test", "A", 300, ("198.51.100.10",)),
    )
    names, rrsets = answer.chain()
    assert names == ["mail.example.test", "example.test"]
    assert [r.values for r in rrsets] == [("198.51.100.10",)]


def test_mx_targets_skip_the_null_mx() -> None:
    answer = _answer(
        "example.test", "MX", RRset("example.test", "MX", 300, ("10 Mail.example.test.", "0 ."))
    )
    assert mx_targets(answer) == ["mail.example.test"]


@pytest.mark.parametrize(
    ("rcode", "aa", "error", "problem"),
    [
        ("NOERROR", True, None, None),
        ("NOERROR", False, None, "without the AA flag"),
        ("REFUSED", False, None, "REFUSED"),
        ("NXDOMAIN", True, None, "NXDOMAIN"),
        (None, False, "timed out after 5 s asking 198.51.100.53:53", "timed out"),
    ],
)
def test_answer_problem_names_the_reason(
    rcode: str | None, aa: bool, error: str | None, problem: str | None
) -> None:
    answer = Answer(
        "198.51.100.53", "example.test", "A", rcode=rcode, authoritative=aa, error=error
    )
    if problem is None:
        assert answer.problem is None and answer.authoritative_answer
    else:
        assert answer.problem is not None and problem in answer.problem
    # NXDOMAIN from an authoritative server is a fact other checks can judge.
    assert answer.judgeable == (aa and rcode in ("NOERROR", "NXDOMAIN"))


def test_rdata_key_compares_names_case_insensitively_and_rejects_garbage() -> None:
    assert rdata_key("MX", "10 Mail.Example.test.") == rdata_key("MX", "10 mail.example.test.")
    assert rdata_key("A", "198.51.100.10") != rdata_key("A", "198.51.100.20")
    with pytest.raises(ValueError, match="not valid A data"):
        rdata_key("A", "not-an-address")


def test_powerdns_rows_become_served_data() -> None:
    # PowerDNS 4: priority inside content; PowerDNS 3: in the prio column.
    assert pdns_record(1, "example.test", "MX", "10 mail.example.test", 300, 0, 0).value == (
        "10 mail.example.test."
    )
    assert pdns_record(2, "example.test", "MX", "mail.example.test", 300, 10, 0).value == (
        "10 mail.example.test."
    )
    cname = pdns_record(3, "WWW.example.test", "cname", "example.test", 300, None, 1)
    assert (cname.name, cname.rdtype, cname.value, cname.disabled, cname.row) == (
        "www.example.test",
        "CNAME",
        "example.test.",
        True,
        "records.id=3",
    )
    broken = pdns_record(4, "example.test", "A", "198.51.100", 300, None, 0)
    assert broken.value is None and broken.problem and "not valid A data" in broken.problem


def test_mydns_rows_are_relative_to_the_origin() -> None:
    mx = mydns_record(7, "example.test.", "", "MX", "mail", 10, 300)
    assert (mx.name, mx.value, mx.row, mx.disabled) == (
        "example.test",
        "10 mail.example.test.",
        "rr.id=7",
        False,
    )
    www = mydns_record(8, "example.test.", "www", "CNAME", "example.test.", None, 300, "N")
    assert (www.name, www.value, www.disabled) == ("www.example.test", "example.test.", True)
    txt = mydns_record(9, "example.test.", "", "TXT", 'v=spf1 "a" -all', None, 300)
    assert txt.value == '"v=spf1 \\"a\\" -all"'


def test_waiting_time_is_the_old_ttl_after_the_first_lowered_sighting() -> None:
    assert seconds_to_wait(lowered_since=1000.0, old_ttl=3600, now=1000.0) == 3600
    assert seconds_to_wait(lowered_since=1000.0, old_ttl=3600, now=4600.0) == 0
    assert seconds_to_wait(lowered_since=1000.0, old_ttl=300, now=5000.0) < 0


@pytest.mark.parametrize(
    "row",
    [
        pdns_record(41, "x" * 64 + ".example.test", "TXT", '"hi"', 300, None, 0),
        mydns_record(42, "example.test.", "x" * 64, "TXT", "hi", None, 300),
    ],
    ids=["powerdns", "mydns"],
)
def test_a_row_with_a_64_octet_label_is_reported_as_that_row(row: SqlRecord) -> None:
    """One malformed row once made DNS06 error for every zone; now it is one finding."""
    assert row.value is None
    assert row.problem is not None and "is not a DNS name: A DNS label is > 63" in row.problem
    assert row.row in str(row) and ".id=4" in row.row


def test_sql_backend_connects_within_the_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connecting waits `connect_timeout`; statements wait the operation timeout."""
    seen: dict[str, object] = {}

    def connect(**kwargs: object) -> None:
        seen.update(kwargs)
        raise pymysql.err.OperationalError(2003, "Can't connect")

    monkeypatch.setattr(pymysql, "connect", connect)
    access = DnsSql(nameserver="198.51.100.53", host="127.0.0.1", user="pdns")
    with pytest.raises(ProbeError, match=r"cannot connect to DNS SQL .*\(2003\) Can't connect"):
        read_zones(access, ["Example.TEST."], connect_timeout=2.0, timeout=7.0)
    assert seen["connect_timeout"] == 2.0
    assert (seen["read_timeout"], seen["write_timeout"]) == (7.0, 7.0)


def _served(rows: SqlZone, *answers: Answer) -> list[str]:
    return _sql_problems(rows, {(rows.nameserver, (a.qname, a.rdtype)): a for a in answers}, "ns2")


@pytest.mark.parametrize(
    ("active", "served", "finding"),
    [
        ("Y", True, None),
        ("N", True, "rr.id=8): disabled in the database, served"),
        ("N", False, "rr.id=8): disabled in the database, not served"),
        ("Y", False, "rr.id=8): in the database, not served"),
    ],
    ids=["active-served", "inactive-served", "inactive-not-served", "active-not-served"],
)
def test_an_inactive_mydns_row_is_judged_by_what_is_served(
    active: str, served: bool, finding: str | None
) -> None:
    """DNS06: a MyDNS row with active='N' that the server still serves names that row."""
    www = mydns_record(8, "example.test.", "www", "CNAME", "example.test.", 0, 300, active)
    rows = SqlZone("example.test", "198.51.100.54", "mydns", True, (www,))
    rrsets = [RRset("www.example.test", "CNAME", 300, ("example.test.",))] if served else []
    problems = _served(rows, _answer("www.example.test", "CNAME", *rrsets))
    if finding is None:
        assert problems == []
    else:
        assert len(problems) == 1 and finding in problems[0], problems
        assert problems[0].startswith("ns2: www.example.test CNAME 300 example.test."), problems
