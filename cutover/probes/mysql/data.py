"""MySQL/MariaDB data: each table of a database as row counts and ordered chunk digests.

Rows are streamed by primary key (server-side cursor, raw bytes, nothing
kept per row) and hashed in chunks of `chunk_rows`, so the first differing
chunk names a primary-key range (cutover.compare.mysql compares the scans).
A table without a primary key gets an order-independent digest.
`CHECKSUM TABLE` is not used: it depends on row format and server version.
Semantics: docs/semantics.md, "MySQL and MariaDB".
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
from collections.abc import Mapping, Sequence
from typing import Any

import pymysql
import pymysql.cursors

from cutover.compare.mysql import Chunk, DatabaseScan, TableScan
from cutover.compare.rollback import TableDelta
from cutover.model.settings import ProbeSettings
from cutover.probes.mysql.session import MysqlServer, Session, quote_identifier, text_of

__all__ = ["FETCH_ROWS", "rows_since", "scan_database"]

# Rows fetched per round of the server-side cursor (bounded memory).
FETCH_ROWS = 1000


def _keytext_of(values: Sequence[object]) -> tuple[str, ...]:
    return tuple("NULL" if v is None else text_of(v) for v in values)


def _primary_key(session: Session, database: str, table: str) -> tuple[str, ...]:
    return tuple(
        text_of(r[0])
        for r in session.rows(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' "
            "ORDER BY ORDINAL_POSITION",
            (database, table),
        )
    )


def _scan_table(session: Session, database: str, table: str, chunk_rows: int) -> TableScan:
    primary_key = _primary_key(session, database, table)
    others = sorted(
        text_of(r[0])
        for r in session.rows(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (database, table),
        )
        if text_of(r[0]) not in primary_key
    )
    columns = (*primary_key, *others)
    source = f"{quote_identifier(database)}.{quote_identifier(table)}"
    sql = f"SELECT {', '.join(map(quote_identifier, columns))} FROM {source}"
    if primary_key:
        sql += f" ORDER BY {', '.join(map(quote_identifier, primary_key))}"
    width = len(primary_key)
    chunks: list[Chunk] = []
    table_hash = hashlib.blake2b(digest_size=16)
    unordered_sum = 0
    total = 0
    cursor = session.connection.cursor(pymysql.cursors.SSCursor)
    try:
        cursor.execute(sql)
        while True:
            # One chunk: `chunk_rows` rows, fetched FETCH_ROWS at a time.
            chunk_hash = hashlib.blake2b(digest_size=16)
            count = 0
            first: tuple[str, ...] = ()
            last: Sequence[object] = ()
            while count < chunk_rows:
                batch = cursor.fetchmany(min(FETCH_ROWS, chunk_rows - count))
                if not batch:
                    break
                if width:
                    if not count:
                        first = _keytext_of(batch[0][:width])
                    last = batch[-1][:width]
                    # marshal version 2 has no back-references: equal rows
                    # always give equal bytes (raw values are bytes or None).
                    chunk_hash.update(marshal.dumps(batch, 2))
                else:
                    for row in batch:
                        row_digest = hashlib.blake2b(marshal.dumps(row, 2), digest_size=16)
                        unordered_sum += int.from_bytes(row_digest.digest(), "big")
                count += len(batch)
            if not count:
                break
            total += count
            if width:
                chunk = Chunk(first, _keytext_of(last), count, chunk_hash.digest())
                chunks.append(chunk)
                table_hash.update(chunk.digest)
            if count < chunk_rows:
                break
    except pymysql.err.MySQLError as exc:
        raise session.error(exc, f"reading {database}.{table}") from None
    finally:
        with contextlib.suppress(pymysql.err.MySQLError):
            cursor.close()
    if not width:
        table_hash.update((unordered_sum % (1 << 128)).to_bytes(16, "big"))
    table_hash.update(total.to_bytes(8, "big"))
    return TableScan(
        table, columns, primary_key, total, tuple(chunks), table_hash.hexdigest(), chunk_rows
    )


def _base_tables(session: Session, database: str) -> list[str]:
    return sorted(
        text_of(r[0])
        for r in session.rows(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
            (database,),
        )
    )


def scan_database(
    server: MysqlServer, settings: ProbeSettings, database: str, chunk_rows: int
) -> DatabaseScan:
    """Row counts and chunk digests of every base table, in one consistent snapshot."""
    with Session(server, settings, raw=True) as session:
        exists = bool(
            session.rows(
                "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (database,)
            )
        )
        if not exists:
            return DatabaseScan(database, server.where, exists=False)
        session.rows("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        tables = _base_tables(session, database)
        scans = {name: _scan_table(session, database, name, chunk_rows) for name in tables}
        session.rows("COMMIT")
    return DatabaseScan(database, server.where, exists=True, tables=scans)


def _table_delta(
    session: Session, database: str, table: str, before: Mapping[str, Any] | None
) -> TableDelta | None:
    source = f"{quote_identifier(database)}.{quote_identifier(table)}"
    rows_now = int(session.rows(f"SELECT COUNT(*) FROM {source}")[0][0])
    preflight_rows = None if before is None else int(before["rows"])
    primary_key = _primary_key(session, database, table)
    last_key = None if before is None else before.get("last_key")
    if (
        before is not None
        and preflight_rows
        and (not primary_key or last_key is None or list(primary_key) != before.get("primary_key"))
    ):
        # No key to tell new rows from old ones: only the count can say something.
        grown = rows_now - preflight_rows
        if grown <= 0:
            return None
        why = (
            "no primary key"
            if not primary_key
            else "preflight recorded no largest key (run preflight with this version)"
        )
        return TableDelta(
            database, table, preflight_rows, rows_now, grown, primary_key, note=f"{why}: count only"
        )
    if not primary_key:
        return TableDelta(database, table, preflight_rows, rows_now, rows_now) if rows_now else None
    columns = ", ".join(map(quote_identifier, primary_key))
    where, args = "", ()
    if preflight_rows and last_key is not None:
        where = f" WHERE ({columns}) > ({', '.join(['%s'] * len(primary_key))})"
        args = tuple(last_key)
    count = int(session.rows(f"SELECT COUNT(*) FROM {source}{where}", args)[0][0])
    if not count:
        return None
    first = session.rows(f"SELECT {columns} FROM {source}{where} ORDER BY {columns} LIMIT 1", args)
    descending = ", ".join(f"{quote_identifier(c)} DESC" for c in primary_key)
    last = session.rows(
        f"SELECT {columns} FROM {source}{where} ORDER BY {descending} LIMIT 1", args
    )
    return TableDelta(
        database,
        table,
        preflight_rows,
        rows_now,
        count,
        primary_key,
        _keytext_of(first[0]) if first else None,
        _keytext_of(last[0]) if last else None,
    )


def rows_since(
    server: MysqlServer,
    settings: ProbeSettings,
    database: str,
    recorded: Mapping[str, Mapping[str, Any]],
) -> list[TableDelta]:
    """The rows of `database` beyond what preflight recorded of each table (read-only).

    With a primary key: the rows whose key is above the largest key preflight
    saw (count and key range); without one, the rows beyond its count. A
    table preflight did not see counts whole.
    """
    with Session(server, settings, raw=True) as session:
        session.rows("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        tables = _base_tables(session, database)
        deltas = [_table_delta(session, database, name, recorded.get(name)) for name in tables]
        session.rows("COMMIT")
    return [delta for delta in deltas if delta is not None]
