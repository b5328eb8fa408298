"""Faults of the legacy profile's nameservers: zones stored in MyDNS's `soa`/`rr` tables.

`mydns-row-inactive`: on ns2 an admin set a row's `active` to 'N' (meaning: do
not serve it), but ns2's serving layer ignores the flag - its views were
written without the `active` condition, as a hand-made MyDNS-to-PowerDNS
setup easily is. The row is still served, identically on both nameservers,
so only the comparison of rows with answers (DNS06) can see it. `fault
--undo` sets the row active again and restores ns2's views. Registered into
`lab.fault_registry.FAULTS` when lab/faults.py imports this module.
"""

from __future__ import annotations

from typing import Any

from lab import mydns, profiles, story
from lab.fault_registry import Fault, Saved, register
from lab.run import LabError
from lab.topology import NS2, ZONES
from lab.zones import sql_string

# www of the first zone: a row every zone has (the add-domain script's CNAME).
ZONE = ZONES[0]
ROW = f"rr r JOIN soa s ON r.zone = s.id WHERE s.origin = {sql_string(ZONE + '.')} " + (
    "AND r.name = 'www' AND r.type = 'CNAME'"
)


@register
class MydnsRowInactive(Fault):
    name = "mydns-row-inactive"
    summary = (
        f"ns2: the www.{ZONE} CNAME row set active='N', but ns2's views ignore the flag "
        "(still served)"
    )
    for_profiles = (profiles.LEGACY,)

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        row = story.dns_sql(NS2, f"SELECT r.id FROM {ROW};").split()
        if len(row) != 1:
            raise LabError(f"fault {self.name}: ns2 has {len(row)} www.{ZONE} CNAME rows, not 1")
        mydns.set_views(NS2, honour_active=False)
        story.dns_sql(NS2, f"UPDATE rr SET active = 'N' WHERE id = {int(row[0])};")
        return {"row": int(row[0])}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        story.dns_sql(NS2, f"UPDATE rr SET active = 'Y' WHERE id = {int(saved['row'])};")
        mydns.set_views(NS2, honour_active=True)
