"""DNS05's judgement of address records: each A and AAAA against the addresses of its family.

Semantics: docs/semantics.md, "DNS". An A record may hold an IPv4 address of
old or new, an AAAA record an IPv6 one; which side's addresses are allowed is
the phase's (`PhaseExpectations.dns_points_to`). Only the families the
inventory lists an address of are judged (`address_types`): an IPv4-only
inventory says nothing of the host's AAAA records, an IPv6-only one nothing
of its A records.

A name whose A record points at the migration but that has no AAAA record,
while another name of the pair's zones has an AAAA record pointing at the
migration, is reported too (`missing_aaaa`): its IPv6 clients are not moved
with the others. A zone without any AAAA record is not an error (many hosts
are reachable over IPv4 only in DNS).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from checks.observe.dns import address_types, side_ips
from cutover.model.inventory import Inventory
from cutover.model.phases import Side
from cutover.probes.dns.engine import Answer
from cutover.probes.dns.zones import ZoneObservation

__all__ = ["Sides", "canonical", "missing_aaaa", "pointed_values", "sides_of"]


@dataclass(frozen=True)
class Sides:
    """The inventory's addresses as DNS05 places them."""

    ips: dict[Side, dict[str, set[str]]]  # side -> record type -> addresses
    rdtypes: tuple[str, ...]  # the address records judged (A and/or AAAA)

    def label(self, value: str) -> str:
        """`old IP`, `new IP`, or `neither the old nor the new IP`."""
        for side, by_type in self.ips.items():
            if any(value in found for found in by_type.values()):
                return f"{side.value} IP"
        return "neither the old nor the new IP"

    def allowed(self, rdtype: str, sides: Iterable[Side]) -> set[str]:
        return {a for side in sides for a in self.ips[side].get(rdtype, set())}

    def migration(self, rdtype: str) -> set[str]:
        """Every address of old and new an `rdtype` record may hold."""
        return self.allowed(rdtype, (Side.OLD, Side.NEW))

    def wanted(self, sides: Iterable[Side]) -> str:
        """`198.51.100.10 (old IP)`; a side of several addresses lists them all."""
        listed = []
        for side in sides:
            ips = sorted(a for rdtype in self.rdtypes for a in self.ips[side].get(rdtype, ()))
            listed.append(f"{', '.join(ips)} ({side.value} IP)")
        return " or ".join(sorted(listed))


def sides_of(inventory: Inventory) -> Sides:
    rdtypes = address_types(inventory)
    servers = {Side.OLD: inventory.old, Side.NEW: inventory.new}
    return Sides(
        {side: {t: side_ips(server, t) for t in rdtypes} for side, server in servers.items()},
        rdtypes,
    )


def canonical(value: str) -> str:
    """An address as the inventory writes it (`2001:DB8::0:1` -> `2001:db8::1`)."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value


def pointed_values(answer: Answer | None) -> list[str] | None:
    """The addresses an A/AAAA answer ends in (CNAMEs followed); None when not judgeable."""
    if answer is None or not answer.judgeable:
        return None
    return [canonical(v) for rrset in answer.chain()[1] for v in rrset.values]


def _reference(observations: Iterable[ZoneObservation], sides: Sides) -> str | None:
    """A name of the pair's zones whose AAAA points at the migration, as evidence."""
    migration = sides.migration("AAAA")
    for seen in observations:
        for (server, (name, rdtype)), answer in sorted(seen.answers.items()):
            if rdtype != "AAAA" or server not in seen.servers:
                continue
            found = [v for v in pointed_values(answer) or [] if v in migration]
            if found:
                return f"{name} AAAA {found[0]} on {seen.label(server)}"
    return None


def missing_aaaa(
    seen: ZoneObservation, observations: Iterable[ZoneObservation], sides: Sides
) -> list[str]:
    """Names of this zone (apex, listed names, MX targets) whose A record points at the
    migration but that have no AAAA record, on each server, while another name of the
    pair's zones has an AAAA record pointing at the migration.

    Nothing when the inventory lists no IPv6 address (AAAA is not judged then) or no
    name has such an AAAA record (a zone published over IPv4 only is not an error).
    """
    if "AAAA" not in sides.rdtypes or "A" not in sides.rdtypes:
        return []
    reference = _reference([seen, *observations], sides)
    if reference is None:
        return []
    migration_v4 = sides.migration("A")
    problems = []
    for (server, (name, rdtype)), answer in sorted(seen.answers.items()):
        if rdtype != "A" or server not in seen.servers:
            continue
        v4 = [v for v in pointed_values(answer) or [] if v in migration_v4]
        if not v4:
            continue
        v6 = pointed_values(seen.answer(server, name, "AAAA"))
        if v6 is None or v6:
            continue  # unjudgeable (DNS01 says why), or it has one (judged as any AAAA)
        problems.append(
            f"{seen.label(server)}: {name} A is {v4[0]} ({sides.label(v4[0])}) but it has no "
            f"AAAA record, while {reference}: its IPv6 clients are not moved with the others"
        )
    return problems
