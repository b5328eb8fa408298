"""The inventory: one YAML file that describes a migration, or several (a fleet).

Loaded once per run, validated by pydantic, with secrets resolved from
environment variables or files the inventory points to. The shape is
checked first (pydantic: types, unknown keys), then the meaning (nothing
listed twice, every cross-reference holds, secrets resolve). Every problem
found is one line of the `InventoryError`, naming the file, the line and the
field; all of them are reported at once.

A fleet inventory has a top-level `pairs:` list; each pair (`name`, `old`,
`new`, and any section that differs) inherits every other top-level section
whole (a shallow, per-section merge). `load_fleet` returns every pair as an
`Inventory`; an inventory without `pairs:` is one pair named after `name:`.

The package's rooms: `base` (field types, the strict model, secret references),
`sections` (each section's model), `model` (`Inventory`, `Pair`, `Fleet`, the JSON
Schema), `source` (the YAML: lines, keys given twice), `meaning` (rules the shape
cannot say), `loading` (all of it together).

>>> inv = load_inventory("fixtures/inventory.example.yaml")  # doctest: +SKIP
>>> inv.new.address  # doctest: +SKIP
IPv4Address('198.51.100.20')
"""

from cutover.model.inventory.base import (
    InventoryError,
    IPAddress,
    Loc,
    Protocol,
    SecretRef,
    Strict,
    TlsMode,
)
from cutover.model.inventory.loading import NAME_AN_INVENTORY, load_fleet, load_inventory
from cutover.model.inventory.meaning import meaning_problems
from cutover.model.inventory.model import (
    FILE_PLACES,
    NAME_PATTERN,
    SECRET_PLACES,
    Fleet,
    Inventory,
    Pair,
    inventory_schema,
)
from cutover.model.inventory.sections import (
    TLS_VERSION_NAMES,
    Acceptance,
    Account,
    Budget,
    Decommission,
    Dns,
    DnsSql,
    DnsZone,
    Http,
    Mail,
    Mysql,
    MysqlAccount,
    Outbound,
    PciDevice,
    Server,
    Service,
    Timeouts,
    Tls,
    Topology,
    Vhost,
    VirtHost,
)

__all__ = [
    "FILE_PLACES",
    "NAME_AN_INVENTORY",
    "NAME_PATTERN",
    "SECRET_PLACES",
    "TLS_VERSION_NAMES",
    "Acceptance",
    "Account",
    "Budget",
    "Decommission",
    "Dns",
    "DnsSql",
    "DnsZone",
    "Fleet",
    "Http",
    "IPAddress",
    "Inventory",
    "InventoryError",
    "Loc",
    "Mail",
    "Mysql",
    "MysqlAccount",
    "Outbound",
    "Pair",
    "PciDevice",
    "Protocol",
    "SecretRef",
    "Server",
    "Service",
    "Strict",
    "Timeouts",
    "Tls",
    "TlsMode",
    "Topology",
    "Vhost",
    "VirtHost",
    "inventory_schema",
    "load_fleet",
    "load_inventory",
    "meaning_problems",
]
