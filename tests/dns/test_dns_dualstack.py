"""DNS05 and the DNS switch on a dual-stack migration, with hand-made answers (no servers).

A records are judged against the IPv4 addresses of the sides, AAAA records
against the IPv6 ones; a family the inventory lists no address of is not
judged; a name whose A points at the migration without an AAAA, where
another name has one, is reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from checks.dns_records import sides_of
from checks.observe.dns import address_types, pointed_addresses, record_dns_switch
from checks.record import Records
from checks.targets.dns import ZoneTarget
from checks.test_dns import test_records_point_to_the_expected_server as dns05
from cutover.model.baseline import Baseline
from cutover.model.inventory import DnsZone, Inventory
from cutover.model.phases import Phase, expectations
from cutover.probes.dns.engine import Answer, RRset
from cutover.probes.dns.zones import ZoneObservation

ZONE, OTHER = "example.test", "shop.test"
NS1, NS2 = "198.51.100.53", "198.51.100.54"
SERVERS = (NS1, NS2)
OLD4, NEW4 = "198.51.100.10", "198.51.100.20"
OLD6, NEW6 = "2001:db8:5100::10", "2001:db8:5100::20"
MAIL = f"mail.{ZONE}"


def inventory(old: Any, new: Any) -> Inventory:
    return Inventory.model_validate(
        {
            "old": {"address": old},
            "new": {"address": new},
            "dns": {"zones": [{"name": z, "nameservers": list(SERVERS)} for z in (ZONE, OTHER)]},
        }
    )


DUAL = inventory([OLD4, OLD6], [NEW4, NEW6])


def _answer(server: str, qname: str, rdtype: str, *rrsets: RRset) -> Answer:
    return Answer(server, qname, rdtype, rcode="NOERROR", authoritative=True, answer=rrsets)


def zone(
    name: str, a: str | None, aaaa: str | None, *, mail: bool = False, per_server: Any = None
) -> ZoneObservation:
    """The apex A/AAAA (None: no record) on both servers; `per_server` overrides (a, aaaa)."""
    answers = {}
    for server in SERVERS:
        v4, v6 = (per_server or {}).get(server, (a, aaaa))
        for rdtype, value in (("A", v4), ("AAAA", v6)):
            rrsets = (RRset(name, rdtype, 300, (value,)),) if value else ()
            answers[(server, (name, rdtype))] = _answer(server, name, rdtype, *rrsets)
        mx = (RRset(name, "MX", 300, (f"10 {MAIL}.",)),) if mail else ()
        answers[(server, (name, "MX"))] = _answer(server, name, "MX", *mx)
        if mail:
            alias = RRset(MAIL, "CNAME", 300, (f"{name}.",))
            for rdtype, value in (("A", v4), ("AAAA", v6)):
                end = (RRset(name, rdtype, 300, (value,)),) if value else ()
                answers[(server, (MAIL, rdtype))] = _answer(server, MAIL, rdtype, alias, *end)
    return ZoneObservation(name, SERVERS, "inventory", answers)


def judge(inv: Inventory, phase: Phase, *zones: ZoneObservation) -> dict[str, str]:
    """Run DNS05 on the first zone; its recorded properties (raises Failed on a failure)."""
    recorded: dict[str, str] = {}
    observations = {z.zone: z for z in zones}
    target = ZoneTarget(DnsZone(name=zones[0].zone, nameservers=list(SERVERS)))
    sides = sides_of(inv)
    dns05(target, observations, sides, expectations(phase), lambda **kw: recorded.update(kw))
    return recorded


def fails(inv: Inventory, phase: Phase, *zones: ZoneObservation) -> str:
    with pytest.raises(pytest.fail.Exception) as failed:
        judge(inv, phase, *zones)
    return str(failed.value)


def test_a_and_aaaa_at_the_new_server_pass_acceptance() -> None:
    seen = zone(ZONE, NEW4, NEW6, mail=True)
    assert judge(DUAL, Phase.ACCEPTANCE, seen)["points_to"] == f"{NEW4},{NEW6}"


def test_an_aaaa_left_at_the_old_ipv6_address_fails_acceptance() -> None:
    message = fails(DUAL, Phase.ACCEPTANCE, zone(ZONE, NEW4, OLD6, mail=True))
    assert f"{NS1}: {ZONE} AAAA is {OLD6} (old IP)" in message, message
    assert f"{NS2}: MX target {MAIL} AAAA (via {ZONE}) is {OLD6} (old IP)" in message, message
    assert f"{ZONE} A is" not in message, message
    assert f"do not point at {NEW4}, {NEW6} (new IP)" in message, message


def test_an_ipv4_address_in_an_aaaa_family_is_never_allowed() -> None:
    # A records hold IPv4 addresses of the sides, AAAA IPv6 ones: never across.
    message = fails(DUAL, Phase.CUTOVER, zone(ZONE, OLD4, "2001:db8:5100::99"))
    assert f"{ZONE} AAAA is 2001:db8:5100::99 (neither the old nor the new IP)" in message


def test_cutover_accepts_either_side_per_family() -> None:
    judge(DUAL, Phase.CUTOVER, zone(ZONE, OLD4, NEW6))
    judge(DUAL, Phase.PREFLIGHT, zone(ZONE, OLD4, OLD6))


def test_a_family_the_inventory_does_not_list_is_not_judged() -> None:
    seen = zone(ZONE, OLD4, OLD6)
    v4_only = inventory(OLD4, NEW4)
    assert judge(v4_only, Phase.PREFLIGHT, seen)["points_to"] == OLD4
    v6_only = inventory(OLD6, NEW6)
    assert judge(v6_only, Phase.PREFLIGHT, seen)["points_to"] == OLD6
    # ... but the family it lists is: an IPv6-only inventory still sees a stale AAAA.
    assert f"{ZONE} AAAA is {OLD6} (old IP)" in fails(v6_only, Phase.ACCEPTANCE, seen)
    assert address_types(v4_only) == ("A",) and address_types(DUAL) == ("A", "AAAA")


def test_a_name_without_aaaa_where_another_has_one_is_reported() -> None:
    other = zone(OTHER, OLD4, None)
    message = fails(DUAL, Phase.PREFLIGHT, other, zone(ZONE, OLD4, OLD6))
    for server in SERVERS:
        assert (
            f"{server}: {OTHER} A is {OLD4} (old IP) but it has no AAAA record, while "
            f"{ZONE} AAAA {OLD6}"
        ) in message, message
    # The other direction: the zone that has its AAAA passes.
    judge(DUAL, Phase.PREFLIGHT, zone(ZONE, OLD4, OLD6), other)


def test_one_server_missing_the_aaaa_is_named_alone() -> None:
    seen = zone(ZONE, NEW4, NEW6, per_server={NS2: (NEW4, None)})
    message = fails(DUAL, Phase.ACCEPTANCE, seen)
    assert f"{NS2}: {ZONE} A is {NEW4} (new IP) but it has no AAAA record" in message
    assert f"{NS1}: {ZONE} A" not in message, message


def test_no_aaaa_anywhere_is_not_an_error() -> None:
    # Many hosts are published over IPv4 only, whatever addresses they have.
    judge(DUAL, Phase.PREFLIGHT, zone(ZONE, OLD4, None, mail=True), zone(OTHER, OLD4, None))


def test_a_name_pointing_elsewhere_needs_no_aaaa() -> None:
    # Only names whose A record points at the migration (old or new) are the migration's.
    judge(DUAL, Phase.PREFLIGHT, zone(ZONE, OLD4, OLD6), zone(OTHER, "203.0.113.7", None))


def test_the_switch_counts_every_new_address_of_the_judged_families(tmp_path: Path) -> None:
    records = Records(Baseline(tmp_path / "b.json"), expectations(Phase.ACCEPTANCE), "run")
    half = {ZONE: zone(ZONE, NEW4, OLD6)}
    assert pointed_addresses(half[ZONE]) == {NEW4, OLD6}
    assert pointed_addresses(half[ZONE], ("A",)) == {NEW4}
    new = {NEW4, NEW6}
    assert record_dns_switch(half, new, records, 1000.0, ("A", "AAAA")) == {}
    # An IPv4-only inventory does not wait for AAAA records it knows nothing of.
    assert ZONE in record_dns_switch(half, {NEW4}, records, 1000.0, ("A",))
    records.baseline.flush()
    done = {OTHER: zone(OTHER, NEW4, NEW6)}
    assert OTHER in record_dns_switch(done, new, records, 2000.0, ("A", "AAAA"))
