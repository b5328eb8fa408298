"""The legacy profile's MyDNS zone rows and views, checked without a lab."""

from __future__ import annotations

import pytest

from cutover.probes.dns.sql import mydns_record, pdns_record
from lab import mydns, profiles, scale, story
from lab.run import LabError
from lab.topology import NS1, OLD, REVERSE_ZONE, REVERSE_ZONE6, ZONES
from lab.zones import Record, reverse_records, reverse_records6, zone_records

DKIM = "M" * 400  # longer than one TXT string: stored and served as two


def _zones() -> list[tuple[str, list[Record]]]:
    zones = [(z, zone_records(z, OLD.address, 3600, 7, DKIM, OLD.address6)) for z in ZONES]
    return [
        *zones,
        (REVERSE_ZONE, reverse_records(3600, 7)),
        (REVERSE_ZONE6, reverse_records6(3600, 7)),
    ]


@pytest.mark.parametrize(("zone", "records"), _zones(), ids=[z for z, _ in _zones()])
def test_mydns_rows_stand_for_the_default_profiles_records(
    zone: str, records: list[Record]
) -> None:
    """Read as DNS06 reads them, the MyDNS rows are the PowerDNS rows of the default profile."""
    rows = mydns.rr_rows(zone, records)
    as_mydns = sorted(
        (r.name, r.rdtype, r.ttl, r.value)
        for i, (name, rtype, data, aux, ttl) in enumerate(rows)
        for r in [mydns_record(i, f"{zone}.", name, rtype, data, aux, ttl)]
    )
    as_pdns = sorted(
        (r.name, r.rdtype, r.ttl, r.value)
        for i, rec in enumerate(records)
        if rec.type != "SOA"
        for r in [pdns_record(i, rec.name, rec.type, rec.content, rec.ttl, rec.prio, 0)]
    )
    assert None not in {value for *_, value in as_mydns}
    assert as_mydns == as_pdns


def test_the_add_domain_script_rows_are_relative() -> None:
    rows = mydns.rr_rows("shop.test", zone_records("shop.test", OLD.address, 3600, 7, DKIM))
    assert ("", "A", OLD.address, 0, 3600) in rows
    assert ("www", "CNAME", "shop.test.", 0, 3600) in rows
    assert ("mail", "CNAME", "shop.test.", 0, 3600) in rows
    assert ("", "MX", "mail", 10, 3600) in rows  # priority in aux
    assert ("", "NS", "ns1.example.test.", 0, 3600) in rows  # another zone's name: dotted
    (spf,) = [data for _, rtype, data, *_ in rows if rtype == "TXT" and "spf1" in data]
    assert spf.startswith("v=spf1 ")  # one string: unquoted, as MyDNS stores TXT
    sql = mydns.zone_sql("shop.test", zone_records("shop.test", OLD.address, 3600, 7))
    assert "'shop.test.', 'ns1.example.test.', 'hostmaster.shop.test.', 7," in sql


def test_the_views_filter_on_active_unless_misconfigured() -> None:
    assert "r.active = 'Y'" in mydns.views_sql() and "s.active = 'Y'" in mydns.views_sql()
    assert "active" not in mydns.views_sql(honour_active=False)


def test_story_edits_the_mydns_tables_on_a_legacy_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []
    monkeypatch.setattr(profiles, "legacy", lambda: True)
    monkeypatch.setattr(story, "dns_sql", lambda ns, sql: sent.append(sql) or "")
    story.bump_serials(NS1, "1,3")
    assert sent == ["UPDATE soa SET serial = serial + 1 WHERE id IN (1,3);\n"]
    assert "UPDATE soa SET ttl = 300 WHERE ttl > 300;" in mydns.lower_ttl_sql(300)
    assert mydns.point_apex_sql("A", "198.51.100.10", "198.51.100.20") == (
        "UPDATE rr SET data = '198.51.100.20' "
        "WHERE type = 'A' AND name = '' AND data = '198.51.100.10';\n"
    )


def test_scale_refuses_a_legacy_lab_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profiles, "legacy", lambda: True)
    with pytest.raises(LabError, match=r"^scale: not on a lab of profile legacy \(.*\)$"):
        scale.scale(1, 1, 1, 1)
