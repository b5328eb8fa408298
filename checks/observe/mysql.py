"""Observations of the mysql area: server facts, logins, grants and table scans, once per pair.

The servers are read over TCP with the inventory's read-only `mysql.admin`
account; the tunnel is tried from the old host itself (`old.ssh`). The
reference for grants and data is the old server while it still answers on
the old IP (preflight, which records it in the baseline), afterwards what
preflight recorded. Nothing here runs at collection time.
Semantics: docs/semantics.md, "MySQL and MariaDB".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from checks.record import RecordContext, Records, recorder
from checks.targets.mysql import (
    AccountTarget,
    DatabaseTarget,
    DirectLoginTarget,
    MysqlAddressTarget,
)
from cutover.compare.mysql import AccountGrants, DatabaseScan, Grantee
from cutover.model.baseline import BaselineError
from cutover.model.endpoints import side_addresses
from cutover.model.inventory import Inventory, Protocol
from cutover.model.phases import PhaseExpectations, Side
from cutover.model.settings import ProbeSettings, settings_for
from cutover.probes.connect import ProbeError
from cutover.probes.mysql.data import scan_database
from cutover.probes.mysql.grants import read_grants
from cutover.probes.mysql.session import MysqlServer, ServerFacts, server_facts, try_login
from cutover.probes.mysql.tunnel import TunnelLogin, probe_tunnel_login
from cutover.probes.services import Observations

__all__ = [
    "DataSeen",
    "Grants",
    "MysqlData",
    "database_targets",
    "direct_login_targets",
    "mysql_addresses_of",
    "mysql_servers_of",
    "new_mysql_targets",
    "old_is_live",
    "record_mysql",
    "socket_accounts",
]

SECTION = "mysql"  # the baseline section: "grants", and "data/DATABASE" per database
GRANTS_KEY = "grants"
KIND = "mysql"

Grants = dict[Grantee, AccountGrants]


def _mysql_port(inventory: Inventory) -> int:
    return next((s.port for s in inventory.services if s.protocol is Protocol.MYSQL), 3306)


def mysql_addresses_of(inventory: Inventory, side: Side) -> list[MysqlServer]:
    """The MySQL port on each address of one host (tagged v4 / v6 when it has several).

    >>> from cutover.model.inventory import Inventory
    >>> inv = Inventory.model_validate({"name": "m", "old": {"address": "203.0.113.1"},
    ...     "new": {"address": ["203.0.113.2", "2001:db8::2"]}})
    >>> [s.id for s in mysql_addresses_of(inv, Side.NEW)], mysql_addresses_of(inv, Side.OLD)[0].id
    (['mysql-new-v4', 'mysql-new-v6'], 'mysql-old')
    """
    server = inventory.old if side is Side.OLD else inventory.new
    port = _mysql_port(inventory)
    return [MysqlServer(side, str(a), port, tag) for a, tag in side_addresses(server)]


def mysql_servers_of(inventory: Inventory) -> dict[Side, MysqlServer]:
    """Each server's MySQL port (the inventory's mysql service, default 3306) on its first
    address: where grants and data are read (a server has them once, whatever the address)."""
    return {side: mysql_addresses_of(inventory, side)[0] for side in Side}


def new_mysql_targets(inventory: Inventory) -> list[MysqlAddressTarget]:
    """The MySQL port on each address of the new host (MYSQL03)."""
    return [MysqlAddressTarget(s) for s in mysql_addresses_of(inventory, Side.NEW)]


def direct_login_targets(inventory: Inventory) -> list[DirectLoginTarget]:
    """Each socket account's direct login to each address of the new host (MYSQL02)."""
    return [
        DirectLoginTarget(a.account, server)
        for a in socket_accounts(inventory)
        for server in mysql_addresses_of(inventory, Side.NEW)
    ]


def socket_accounts(inventory: Inventory) -> list[AccountTarget]:
    """The accounts applications on the old host use through its socket."""
    return [AccountTarget(a) for a in inventory.mysql.accounts if a.via_socket]


def database_targets(inventory: Inventory) -> list[DatabaseTarget]:
    """The databases to compare (none without a `mysql.admin` to read them)."""
    if inventory.mysql.admin is None:
        return []
    return [DatabaseTarget(name) for name in inventory.mysql.databases]


def old_is_live(expect: PhaseExpectations) -> bool:
    """The old server still answers on the old IP: it is the reference itself."""
    return expect.served_by[Side.OLD] is Side.OLD


def _data_key(database: str) -> str:
    return f"data/{database}"


def _grants_json(grants: Grants) -> dict[str, Any]:
    return {g.id: account.to_json() for g, account in grants.items()}


def _recorded_grants(records: Records) -> Grants:
    try:
        recorded = records.require(SECTION, GRANTS_KEY)
    except BaselineError as exc:
        raise ProbeError(str(exc)) from None
    return {
        Grantee.parse(key): AccountGrants.from_json(Grantee.parse(key), value)
        for key, value in recorded.items()
    }


class _Recording:
    """Marks the mysql records complete once grants and every database were recorded."""

    def __init__(self, records: Records, databases: list[str]) -> None:
        self.records = records
        self.missing = {GRANTS_KEY, *(_data_key(name) for name in databases)}

    def done(self, key: str) -> None:
        if key in self.missing:
            self.missing.discard(key)
            if not self.missing:
                self.records.recorded(KIND)


@pytest.fixture(scope="session")
def mysql_settings(inventory: Inventory) -> ProbeSettings:
    return settings_for(inventory)


@pytest.fixture(scope="session")
def mysql_servers(inventory: Inventory) -> dict[Side, MysqlServer]:
    return mysql_servers_of(inventory)


@pytest.fixture(scope="session")
def mysql_recording(inventory: Inventory, records: Records) -> _Recording:
    return _Recording(records, list(inventory.mysql.databases))


@pytest.fixture(scope="session")
def mysql_facts(
    inventory: Inventory, mysql_settings: ProbeSettings
) -> Observations[MysqlAddressTarget, ServerFacts]:
    """The new server's facts over TCP to each of its addresses, once per run, concurrently."""
    return Observations(
        new_mysql_targets(inventory), lambda t: server_facts(t.server, mysql_settings)
    )


@pytest.fixture(scope="session")
def mysql_new_facts(
    mysql_facts: Observations[MysqlAddressTarget, ServerFacts],
    mysql_servers: dict[Side, MysqlServer],
) -> ServerFacts | ProbeError:
    """The new server's facts over TCP to its first address (what MYSQL01 compares with)."""
    return mysql_facts.outcome(MysqlAddressTarget(mysql_servers[Side.NEW]))


@pytest.fixture
def mysql_new(inventory: Inventory) -> MysqlAddressTarget:
    """The new host's only MySQL address; a host with several parametrises MYSQL03 instead."""
    return new_mysql_targets(inventory)[0]


@pytest.fixture(scope="session")
def mysql_tunnel_logins(
    inventory: Inventory, mysql_settings: ProbeSettings
) -> Observations[AccountTarget, TunnelLogin]:
    """Each socket account's login through the old host's socket (MYSQL01)."""
    return Observations(
        socket_accounts(inventory),
        lambda target: probe_tunnel_login(
            inventory.old.ssh,
            inventory.mysql.socket,
            target.account,
            mysql_settings,
        ),
    )


@pytest.fixture(scope="session")
def mysql_direct_logins(
    inventory: Inventory, mysql_settings: ProbeSettings
) -> Observations[DirectLoginTarget, str]:
    """Each socket account's direct TCP login to each new address: CURRENT_USER() (MYSQL02)."""
    return Observations(
        direct_login_targets(inventory),
        lambda target: try_login(target.server, target.account, mysql_settings),
    )


@pytest.fixture(scope="session")
def mysql_grants(
    expect: PhaseExpectations,
    records: Records,
    mysql_settings: ProbeSettings,
    mysql_servers: dict[Side, MysqlServer],
    mysql_recording: _Recording,
) -> dict[Side, Grants | ProbeError]:
    """Old (live or recorded) and new grants, read once per run, both at once."""
    live = old_is_live(expect)

    def observe(side: Side) -> Grants:
        if side is Side.OLD and not live:
            return _recorded_grants(records)
        return read_grants(mysql_servers[side], mysql_settings)

    seen = Observations([Side.NEW, Side.OLD], observe, key=lambda side: side)
    found: dict[Side, Grants | ProbeError] = {side: seen.outcome(side) for side in Side}
    old = found[Side.OLD]
    if live and records.recording and not isinstance(old, ProbeError):
        try:
            records.write(SECTION, GRANTS_KEY, _grants_json(old))
            mysql_recording.done(GRANTS_KEY)
        except BaselineError as exc:
            found[Side.OLD] = ProbeError(str(exc))
    return found


@dataclass(frozen=True)
class DataSeen:
    """One database: the new server's scan, and the old one's (live) or its recorded tables."""

    new: DatabaseScan
    old: DatabaseScan | None = None  # the old server live
    recorded: Mapping[str, Mapping[str, Any]] | None = None  # else: what preflight recorded


class MysqlData:
    """Scans one database on demand: old and new side by side, or new against the records."""

    def __init__(
        self,
        settings: ProbeSettings,
        servers: dict[Side, MysqlServer],
        chunk_rows: int,
        live: bool,
        records: Records,
        recording: _Recording,
    ) -> None:
        self.settings = settings
        self.servers = servers
        self.chunk_rows = chunk_rows
        self.live = live
        self.records = records
        self.recording = recording

    def _scan(self, side: Side, database: str) -> DatabaseScan:
        return scan_database(self.servers[side], self.settings, database, self.chunk_rows)

    def get(self, database: str) -> DataSeen:
        """What was seen of `database` (`ProbeError`: a server or the baseline failed)."""
        try:
            if not self.live:
                recorded = self.records.require(SECTION, _data_key(database))
                return DataSeen(self._scan(Side.NEW, database), recorded=recorded)
            sides = Observations(
                [Side.OLD, Side.NEW], lambda side: self._scan(side, database), key=lambda s: s
            )
            old, new = sides.get(Side.OLD), sides.get(Side.NEW)
            if old.exists and self.records.recording:
                tables = {t.name: t.to_json() for t in old.tables.values()}
                self.records.write(SECTION, _data_key(database), tables)
                self.recording.done(_data_key(database))
            elif self.records.recording:
                self.recording.done(_data_key(database))  # nothing of it to record
            return DataSeen(new, old=old)
        except BaselineError as exc:
            raise ProbeError(str(exc)) from None


@pytest.fixture(scope="session")
def mysql_data(
    inventory: Inventory,
    expect: PhaseExpectations,
    records: Records,
    mysql_settings: ProbeSettings,
    mysql_servers: dict[Side, MysqlServer],
    mysql_recording: _Recording,
) -> MysqlData:
    """Each database of `mysql.databases`, scanned when its check asks."""
    return MysqlData(
        mysql_settings,
        mysql_servers,
        inventory.mysql.chunk_rows,
        old_is_live(expect),
        records,
        mysql_recording,
    )


@recorder(KIND, sections=("mysql",))
def record_mysql(ctx: RecordContext) -> None:
    """The old server's grants and every database's tables (a run whose checks did not)."""
    settings = settings_for(ctx.inventory)
    if settings.mysql_admin is None:
        return  # nothing can be read: MYSQL04 and MYSQL05 are skipped too
    old = mysql_servers_of(ctx.inventory)[Side.OLD]
    try:
        ctx.records.write(SECTION, GRANTS_KEY, _grants_json(read_grants(old, settings)))
        for name in ctx.inventory.mysql.databases:
            scan = scan_database(old, settings, name, ctx.inventory.mysql.chunk_rows)
            if scan.exists:
                tables = {t.name: t.to_json() for t in scan.tables.values()}
                ctx.records.write(SECTION, _data_key(name), tables)
    except BaselineError as exc:
        raise ProbeError(str(exc)) from None
