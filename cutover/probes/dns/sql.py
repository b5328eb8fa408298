"""SQL-backed DNS: the rows a nameserver serves from (PowerDNS gmysql, MyDNS).

Read through a read-only session (`SET SESSION TRANSACTION READ ONLY`) with
the inventory's `dns.sql` access. Rows are turned into the record data the
server would put on the wire, so checks can compare them with its answers:

- PowerDNS gmysql: `domains(id, name)`, `records(id, domain_id, name, type,
  content, ttl, prio, disabled)`; names are absolute without the final dot;
  MX/SRV priority is part of `content` since PowerDNS 4, in `prio` before.
- MyDNS: `soa(id, origin, ns, mbox, serial, refresh, retry, expire, minimum,
  ttl[, active])` and `rr(id, zone, name, type, data, aux, ttl[, active])`;
  names relative to the origin unless they end in a dot, priority in `aux`,
  TXT data unquoted. MyDNS serves the SOA from the `soa` table.

>>> row = pdns_record(7, "example.test", "MX", "mail.example.test", 300, 10, 0)
>>> row.value, row.disabled
('10 mail.example.test.', False)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pymysql

from cutover.model.inventory import DnsSql
from cutover.model.settings import ProbeSettings
from cutover.probes.connect import ProbeError
from cutover.probes.dns.names import absolute_text, zone_name
from cutover.probes.mysql.session import MysqlConnectError, connect_mysql
from cutover.untrusted import shown

__all__ = ["SqlRecord", "SqlZone", "mydns_record", "pdns_record", "read_zones"]

# Zones asked for per SQL statement (1,000 zones: two statements).
BATCH = 500


@dataclass(frozen=True)
class SqlRecord:
    """One row, as the record data it stands for (`value`), or why it stands for none."""

    row: str  # "records.id=7" - where an operator finds it
    name: str
    rdtype: str
    ttl: int | None
    value: str | None  # canonical text with absolute names; None when unparsable
    disabled: bool
    problem: str | None = None
    content: str = ""

    def __str__(self) -> str:
        value = self.value or repr(shown(self.content))
        return f"{shown(self.name)} {shown(self.rdtype)} {self.ttl} {value} ({self.row})"


@dataclass(frozen=True)
class SqlZone:
    zone: str
    nameserver: str
    source: str  # "powerdns pdns@198.51.100.53:3306" - for messages
    found: bool
    records: tuple[SqlRecord, ...] = ()


def _parse(rdtype: str, text: str, origin: dns.name.Name) -> str:
    rdata = dns.rdata.from_text(
        dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), text, origin, relativize=False
    )
    return rdata.to_text()


def _record(
    row: str,
    name: str,
    rdtype: str,
    candidates: Sequence[str],
    origin: dns.name.Name,
    ttl: int | None,
    disabled: bool,
) -> SqlRecord:
    """The first candidate text that parses as `rdtype` data wins."""
    problem = None
    for text in candidates:
        try:
            value = _parse(rdtype, text, origin)
        except (dns.exception.DNSException, ValueError) as exc:
            problem = f"not valid {shown(rdtype)} data: {shown(exc)}"
            continue
        return SqlRecord(row, name, rdtype, ttl, value, disabled, content=candidates[0])
    return SqlRecord(row, name, rdtype, ttl, None, disabled, problem, content=candidates[0])


def _bad_owner(
    row: str,
    name: str,
    rdtype: str,
    ttl: int | None,
    disabled: bool,
    exc: dns.exception.DNSException,
    content: str,
) -> SqlRecord:
    """A row whose owner name is no DNS name (a 64-octet label): that row is the finding.

    >>> row = pdns_record(9, "x" * 64 + ".example.test", "A", "198.51.100.1", 60, None, 0)
    >>> print(row.problem)  # doctest: +ELLIPSIS
    owner name 'xxx...x.example.test' is not a DNS name: A DNS label is > 63 octets long.
    """
    problem = f"owner name {shown(name)!r} is not a DNS name: {exc}"
    return SqlRecord(row, shown(name), rdtype, ttl, None, disabled, problem, content=content)


def pdns_record(
    row_id: object,
    name: str,
    rdtype: str,
    content: str,
    ttl: int | None,
    prio: int | None,
    disabled: object,
) -> SqlRecord:
    """A PowerDNS `records` row (names absolute without the final dot)."""
    rdtype = rdtype.upper()
    row = f"records.id={row_id}"
    candidates = [content]
    if prio is not None and rdtype in ("MX", "SRV"):
        candidates.append(f"{prio} {content}")  # PowerDNS 3: priority in its own column
    try:
        owner = absolute_text(name or ".")
    except dns.exception.DNSException as exc:
        return _bad_owner(row, name, rdtype, ttl, bool(disabled), exc, content)
    return _record(
        row,
        owner,
        rdtype,
        candidates,
        dns.name.root,
        ttl,
        bool(disabled),
    )


def _txt_quoted(data: str) -> str:
    escaped = data.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def mydns_record(
    row_id: object,
    origin: str,
    name: str,
    rdtype: str,
    data: str,
    aux: int | None,
    ttl: int | None,
    active: object = "Y",
) -> SqlRecord:
    """A MyDNS `rr` row (names relative to the zone's origin unless they end in a dot)."""
    rdtype = rdtype.upper()
    row = f"rr.id={row_id}"
    zone = dns.name.from_text(origin)
    try:
        owner = dns.name.from_text(name, zone) if name and name != "@" else zone
    except dns.exception.DNSException as exc:
        disabled = str(active).upper() not in ("Y", "1", "TRUE")
        return _bad_owner(row, name, rdtype, ttl, disabled, exc, data)
    candidates = [data]
    if rdtype == "TXT" and not data.startswith('"'):
        candidates = [_txt_quoted(data)]
    elif rdtype in ("MX", "SRV"):
        candidates = [f"{aux or 0} {data}", data]
    return _record(
        row,
        owner.to_text(omit_final_dot=True).lower(),
        rdtype,
        candidates,
        zone,
        ttl,
        str(active).upper() not in ("Y", "1", "TRUE"),
    )


class _Session:
    """A read-only pymysql session whose errors never carry more than code and text."""

    def __init__(
        self,
        access: DnsSql,
        connect_timeout: float,
        timeout: float,
        budget: ProbeSettings | None = None,
    ) -> None:
        self.access = access
        where = access.socket or f"{access.host}:{access.port}"
        self.source = f"{access.schema_} {access.user}@{where}/{access.database}"
        try:
            self.connection = connect_mysql(
                where,
                access.host,
                access.port,
                access.user,
                access,
                connect_timeout=connect_timeout,
                operation_timeout=timeout,
                unix_socket=access.socket,
                database=access.database,
                read_only=False,  # below, with this session's own message
                autocommit=False,  # every read of one zone in one transaction
                budget=budget,
            )
        except MysqlConnectError as exc:
            raise ProbeError(f"cannot connect to DNS SQL {self.source}: {exc.reason}") from None
        self.rows("SET SESSION TRANSACTION READ ONLY")

    def rows(self, statement: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(statement, args or None)
                return list(cursor.fetchall())
        except pymysql.MySQLError as exc:
            raise ProbeError(f"DNS SQL {self.source}: {_reason(exc)}") from None

    def columns(self, table: str) -> set[str]:
        found = self.rows(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table,),
        )
        return {str(row[0]).lower() for row in found}

    def close(self) -> None:
        with contextlib.suppress(pymysql.MySQLError):
            self.connection.close()


def _reason(exc: pymysql.MySQLError) -> str:
    args: tuple[object, ...] = exc.args
    if len(args) >= 2 and isinstance(args[1], str):
        return f"({args[0]}) {shown(args[1])}"
    return type(exc).__name__


def _batches(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def _marks(count: int) -> str:
    return ", ".join(["%s"] * count)


def _read_powerdns(session: _Session, zones: Sequence[str]) -> dict[str, list[SqlRecord]]:
    has_disabled = "disabled" in session.columns("records")
    has_prio = "prio" in session.columns("records")
    found: dict[str, list[SqlRecord]] = {}
    for batch in _batches(zones):
        for (name,) in session.rows(
            f"SELECT LOWER(name) FROM domains WHERE name IN ({_marks(len(batch))})", batch
        ):
            found.setdefault(str(name), [])
        rows = session.rows(
            "SELECT LOWER(d.name), r.id, r.name, r.type, r.content, r.ttl, "
            f"{'r.prio' if has_prio else 'NULL'}, {'r.disabled' if has_disabled else '0'} "
            "FROM domains d JOIN records r ON r.domain_id = d.id "
            f"WHERE d.name IN ({_marks(len(batch))}) ORDER BY r.id",
            batch,
        )
        for zone, row_id, name, rdtype, content, ttl, prio, disabled in rows:
            # Empty non-terminals (type NULL/'') are bookkeeping, never served.
            if rdtype:
                found[str(zone)].append(
                    pdns_record(row_id, name or "", rdtype, content or "", ttl, prio, disabled)
                )
    return found


def _read_mydns(session: _Session, zones: Sequence[str]) -> dict[str, list[SqlRecord]]:
    # Older MyDNS schemas have no `active` column: every row is served.
    soa_active = "active" if "active" in session.columns("soa") else "'Y'"
    rr_active = "active" if "active" in session.columns("rr") else "'Y'"
    found: dict[str, list[SqlRecord]] = {}
    for batch in _batches(zones):
        origins = [f"{zone}." for zone in batch]
        soas = session.rows(
            "SELECT id, LOWER(origin), ns, mbox, serial, refresh, retry, expire, minimum, ttl, "
            f"{soa_active} FROM soa "
            f"WHERE origin IN ({_marks(len(origins))})",
            origins,
        )
        zone_of: dict[int, str] = {}
        for soa_id, origin, ns, mbox, serial, refresh, retry, expire, minimum, ttl, active in soas:
            zone = zone_name(str(origin))
            zone_of[int(soa_id)] = str(origin)
            text = f"{ns} {mbox} {serial} {refresh} {retry} {expire} {minimum}"
            found[zone] = [
                _record(
                    f"soa.id={soa_id}",
                    zone,
                    "SOA",
                    [text],
                    dns.name.from_text(str(origin)),
                    ttl,
                    str(active).upper() not in ("Y", "1", "TRUE"),
                )
            ]
        if not zone_of:
            continue
        rows = session.rows(
            f"SELECT id, zone, name, type, data, aux, ttl, {rr_active} "
            f"FROM rr WHERE zone IN ({_marks(len(zone_of))}) ORDER BY id",
            list(zone_of),
        )
        for row_id, zone_id, name, rdtype, data, aux, ttl, active in rows:
            origin = zone_of[int(zone_id)]
            found[zone_name(origin)].append(
                mydns_record(row_id, origin, name or "", rdtype, data or "", aux, ttl, active)
            )
    return found


def read_zones(
    access: DnsSql,
    zones: Sequence[str],
    *,
    connect_timeout: float,
    timeout: float,
    budget: ProbeSettings | None = None,
) -> dict[str, SqlZone]:
    """The rows of each zone in one nameserver's database (read-only); `found=False` if absent.

    Connecting is bounded by `connect_timeout`, each statement by `timeout`.
    With `budget` (the run's settings), a database on a server of the
    inventory counts against that server's budget, like every other probe.

    >>> read_zones(inventory.dns.sql[0], ["example.test"], connect_timeout=5, timeout=5)
    ... # doctest: +SKIP
    """
    names = [zone_name(zone) for zone in zones]
    session = _Session(access, connect_timeout, timeout, budget)
    try:
        if access.schema_ == "mydns":
            found = _read_mydns(session, names)
        else:
            found = _read_powerdns(session, names)
    finally:
        session.close()
    nameserver = str(access.nameserver)
    return {
        zone: SqlZone(
            zone=zone,
            nameserver=nameserver,
            source=session.source,
            found=zone in found,
            records=tuple(found.get(zone, ())),
        )
        for zone in names
    }
