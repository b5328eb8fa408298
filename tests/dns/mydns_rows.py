"""DNS06's view of the nameservers' SQL rows, printed as JSON (run in the client namespace).

`python -m tests.dns.mydns_rows INVENTORY` reads every `dns.sql` entry of the
inventory with the suite's own reader (cutover.probes.dns.sql.read_zones) and
prints `{nameserver: [[row, name, type, ttl, value, disabled], ...]}`: what the
agreement test compares with `dig +norecurse`.
"""

from __future__ import annotations

import json
import sys

from cutover.model.inventory import load_inventory
from cutover.probes.dns.sql import read_zones


def rows(inventory_path: str) -> dict[str, list[list[object]]]:
    inventory = load_inventory(inventory_path)
    zones = [zone.name for zone in inventory.dns.zones]
    zones += ["100.51.198.in-addr.arpa", "0.0.1.5.8.b.d.0.1.0.0.2.ip6.arpa"]
    found: dict[str, list[list[object]]] = {}
    for access in inventory.dns.sql:
        read = read_zones(access, zones, connect_timeout=5, timeout=10)
        found[str(access.nameserver)] = [
            [r.row, r.name, r.rdtype, r.ttl, r.value, r.disabled]
            for zone in zones
            for r in read[zone].records
        ]
        missing = [zone for zone in zones if not read[zone].found]
        if missing:
            raise SystemExit(f"{access.nameserver}: zones not in the database: {missing}")
    return found


if __name__ == "__main__":
    print(json.dumps(rows(sys.argv[1])))
