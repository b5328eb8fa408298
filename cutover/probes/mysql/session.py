"""MySQL/MariaDB observation over TCP: server facts, grants, data digests.

Every session is read-only (`SET SESSION TRANSACTION READ ONLY`), bounded by
the inventory's timeouts and never uses TLS (the inventory has no MySQL TLS
settings; `ssl_disabled=True` also spares PyMySQL building an SSL context on
every connect). Library errors become one-line `ProbeError`s naming the peer,
so a password can never reach a report.

Grants are read like pt-show-grants does (every User/Host of mysql.user,
`SHOW GRANTS FOR`), then normalised: one quoting style, privileges and column
lists sorted, lines sorted. Password hashes are compared by fingerprint and
never shown: the text carries `'<password hash>'` instead.

Data is compared per table by an ordered digest: rows streamed by primary key
(server-side cursor, raw bytes, nothing kept per row), hashed in chunks of
`chunk_rows`, so the first differing chunk names a primary-key range.
`CHECKSUM TABLE` is not used: it depends on row format and server version.

>>> normalise_grant("GRANT UPDATE, SELECT ON `app`.* TO 'app'@'localhost'").text
'GRANT SELECT, UPDATE ON `app`.* TO `app`@`localhost`'
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pymysql
import pymysql.cursors

from cutover.model.inventory import Inventory, MysqlAccount, Protocol
from cutover.model.phases import Side
from cutover.probes.connect import ProbeError, ProbeTimeout, peer
from cutover.untrusted import shown

__all__ = [
    "AccountGrants",
    "AccountTarget",
    "Chunk",
    "DatabaseScan",
    "DatabaseTarget",
    "GrantDiff",
    "Grantee",
    "LoginRefused",
    "MysqlServer",
    "ServerFacts",
    "TableDifference",
    "TableScan",
    "compare_database_scans",
    "compare_with_recorded",
    "diff_grants",
    "list_grantees",
    "mysql_servers",
    "normalise_grant",
    "read_grants",
    "run_concurrently",
    "scan_database",
    "scan_pair",
    "server_facts",
    "socket_accounts",
    "try_login",
]

# Server error codes that mean "the server answered and refused this login".
REFUSED_CODES = frozenset({1044, 1045, 1130, 1698, 4151})
HASH_PLACEHOLDER = "'<password hash>'"
# Rows fetched per round of the server-side cursor (bounded memory).
FETCH_ROWS = 1000


class LoginRefused(ProbeError):
    """The server answered and refused the login (wrong account, host or password)."""

    def __init__(self, message: str, code: int, server_message: str) -> None:
        super().__init__(message)
        self.code = code
        self.server_message = server_message


@dataclass(frozen=True)
class MysqlServer:
    """The MySQL port on one IP of the migration."""

    side: Side
    address: str
    port: int

    @property
    def id(self) -> str:
        return f"mysql-{self.side.value}"

    @property
    def where(self) -> str:
        """`mysql 198.51.100.20:3306 (new IP)`."""
        return f"mysql {peer(self.address, self.port)} ({self.side.value} IP)"


def mysql_servers(inventory: Inventory) -> dict[Side, MysqlServer]:
    """The MySQL port (the inventory's mysql service, default 3306) on both IPs."""
    port = next((s.port for s in inventory.services if s.protocol is Protocol.MYSQL), 3306)
    return {
        Side.OLD: MysqlServer(Side.OLD, str(inventory.old.address), port),
        Side.NEW: MysqlServer(Side.NEW, str(inventory.new.address), port),
    }


@dataclass(frozen=True)
class AccountTarget:
    """An application account of the inventory (`mysql.accounts`), as a check parameter."""

    account: MysqlAccount

    @property
    def id(self) -> str:
        return f"{self.account.user}@{self.account.host}"

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "account", self.id


@dataclass(frozen=True)
class DatabaseTarget:
    """A database of the inventory (`mysql.databases`), as a check parameter."""

    name: str

    @property
    def id(self) -> str:
        return self.name

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "database", self.name


def socket_accounts(inventory: Inventory) -> list[AccountTarget]:
    """The accounts applications on the old host use through its socket."""
    return [AccountTarget(a) for a in inventory.mysql.accounts if a.via_socket]


# --- sessions ----------------------------------------------------------------


def _describe_error(exc: BaseException) -> tuple[int | None, str]:
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if len(args) >= 2 and isinstance(args[0], int):
        return args[0], shown(args[1])
    return None, type(exc).__name__


def _connect(
    server: MysqlServer, account: MysqlAccount, inventory: Inventory, *, raw: bool = False
) -> pymysql.connections.Connection[Any]:
    """A read-only session as `account`, or a `ProbeError` naming the peer (never the password)."""
    timeouts = inventory.timeouts
    options: dict[str, Any] = {}
    if raw:
        # Values as the bytes the server sent: no per-value conversion, and
        # nothing that depends on Python's idea of a Decimal or a datetime.
        options = {"conv": {}, "use_unicode": False}
    try:
        connection = pymysql.connect(
            host=server.address,
            port=server.port,
            user=account.user,
            # Revealed inline: no local holds it for --showlocals to print.
            password=account.password.reveal() if account.has_password else "",
            connect_timeout=timeouts.connect,
            read_timeout=timeouts.operation,
            write_timeout=timeouts.operation,
            ssl_disabled=True,
            charset="utf8mb4",
            autocommit=True,
            **options,
        )
    except pymysql.err.OperationalError as exc:
        code, message = _describe_error(exc)
        if code in REFUSED_CODES:
            raise LoginRefused(
                f"{server.where} refused the login as {account.user!r}: ({code}) {message}",
                code,
                message,
            ) from None
        if code == 2003 and "timed out" in message:
            raise ProbeTimeout(
                f"timed out after {timeouts.connect:g} s connecting to {server.where}"
            ) from None
        raise ProbeError(f"cannot connect to {server.where}: ({code}) {message}") from None
    except Exception as exc:  # a hostile peer makes PyMySQL raise anything
        code, message = _describe_error(exc)
        raise ProbeError(f"cannot connect to {server.where}: ({code}) {message}") from None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
    except pymysql.err.MySQLError as exc:
        connection.close()
        _, message = _describe_error(exc)
        raise ProbeError(f"{server.where}: cannot make the session read-only: {message}") from None
    return connection


def _admin(inventory: Inventory) -> MysqlAccount:
    if inventory.mysql.admin is None:
        raise ProbeError("the inventory names no mysql.admin account (a read-only login)")
    return inventory.mysql.admin


class _Session:
    """An admin session whose query errors become `ProbeError`s naming the peer."""

    def __init__(self, server: MysqlServer, inventory: Inventory, *, raw: bool = False) -> None:
        self.server = server
        self.connection = _connect(server, _admin(inventory), inventory, raw=raw)
        self.operation = inventory.timeouts.operation

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(pymysql.err.MySQLError):
            self.connection.close()

    def rows(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(sql, tuple(args) or None)
                return list(cursor.fetchall())
        except pymysql.err.MySQLError as exc:
            raise self.error(exc, " ".join(sql.split())[:60]) from None

    def error(self, exc: BaseException, doing: str) -> ProbeError:
        code, message = _describe_error(exc)
        if code in (2013, 2006) and "timed out" in message.lower():
            return ProbeTimeout(f"timed out after {self.operation:g} s on {self.server.where}")
        return ProbeError(f"{self.server.where}: {doing} failed: ({code}) {message}")


def try_login(server: MysqlServer, account: MysqlAccount, inventory: Inventory) -> str:
    """Log in as `account` and return `CURRENT_USER()`; `LoginRefused` when refused."""
    connection = _connect(server, account, inventory)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER()")
            row = cursor.fetchone()
        return shown(row[0]) if row else ""
    except pymysql.err.MySQLError as exc:
        _, message = _describe_error(exc)
        raise ProbeError(f"{server.where}: SELECT CURRENT_USER() failed: {message}") from None
    finally:
        connection.close()


# --- server facts -------------------------------------------------------------


@dataclass(frozen=True)
class ServerFacts:
    where: str
    hostname: str
    version: str
    skip_name_resolve: bool
    skip_networking: bool
    bind_address: str | None  # None: the server does not report it (all addresses)
    # (user, host, plugin) of every account, for diagnosing refused logins.
    accounts: tuple[tuple[str, str, str], ...]

    def plugin_of(self, user: str, host: str) -> str | None:
        for row_user, row_host, plugin in self.accounts:
            if (row_user, row_host.lower()) == (user, host.lower()):
                return plugin
        return None

    @property
    def anonymous_hosts(self) -> tuple[str, ...]:
        return tuple(host for user, host, _ in self.accounts if user == "")

    @property
    def listens_on_loopback(self) -> bool:
        """Whether a TCP connection to 127.0.0.1 (the ssh tunnel's end) can reach the server."""
        if self.skip_networking:
            return False
        if not self.bind_address:
            return True
        addresses = {a.strip() for a in self.bind_address.split(",")}
        return bool(addresses & {"*", "0.0.0.0", "::", "127.0.0.1", "localhost", "::1"})


def server_facts(server: MysqlServer, inventory: Inventory) -> ServerFacts:
    """@@hostname, @@version, skip_name_resolve, bind_address and the account list."""
    with _Session(server, inventory) as session:
        variables = {
            str(name).lower(): str(value)
            for name, value in session.rows(
                "SHOW GLOBAL VARIABLES WHERE Variable_name IN "
                "('hostname', 'version', 'skip_name_resolve', 'skip_networking', 'bind_address')"
            )
        }
        accounts = _account_rows(session)
    return ServerFacts(
        where=server.where,
        hostname=variables.get("hostname", ""),
        version=variables.get("version", ""),
        skip_name_resolve=variables.get("skip_name_resolve", "OFF").upper() == "ON",
        skip_networking=variables.get("skip_networking", "OFF").upper() == "ON",
        bind_address=variables.get("bind_address") or None,
        accounts=accounts,
    )


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _account_rows(session: _Session) -> tuple[tuple[str, str, str], ...]:
    try:
        rows = session.rows("SELECT User, Host, plugin FROM mysql.user ORDER BY User, Host")
    except ProbeError:
        # MySQL < 5.5 has no plugin column.
        rows = [(u, h, "") for u, h in session.rows("SELECT User, Host FROM mysql.user")]
    return tuple((_text(u), _text(h), _text(p or "")) for u, h, p in rows)


# --- grants -------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Grantee:
    """One (User, Host) row of mysql.user."""

    user: str
    host: str

    @property
    def id(self) -> str:
        """`app@localhost` (test ids and baseline keys)."""
        return f"{self.user}@{self.host}"

    @property
    def sql(self) -> str:
        """`'app'@'localhost'` as MySQL writes an account, for messages (server text shown safely).

        Queries never use it: they pass user and host as parameters, which
        PyMySQL quotes for the session's SQL mode (`NO_BACKSLASH_ESCAPES` too).

        >>> Grantee("o'brien", "%").sql
        "'o''brien'@'%'"
        """
        return shown(f"{_quote(self.user)}@{_quote(self.host)}")

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "account", self.id

    @classmethod
    def parse(cls, text: str) -> Grantee:
        user, _, host = text.rpartition("@")
        return cls(user, host)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class NormalisedGrant:
    text: str  # with every password hash replaced by HASH_PLACEHOLDER
    secrets: tuple[str, ...]  # the hashes, in order (never printed)


# Tokens of a SHOW GRANTS line: quoted names and strings, parentheses, words.
_TOKEN = re.compile(
    r"""(?P<backtick>`(?:[^`]|``)*`)
      | (?P<string>'(?:[^'\\]|\\.|'')*')
      | (?P<dquote>"(?:[^"\\]|\\.|"")*")
      | (?P<space>\s+)
      | (?P<other>[^`'"\s]+)""",
    re.VERBOSE,
)
# A quoted string after these words is a password hash (or 'invalid').
_SECRET_BEFORE = frozenset({"PASSWORD", "USING", "AS"})


def _unquote(token: str) -> str:
    quote, body = token[0], token[1:-1]
    if quote == "`":
        return body.replace("``", "`")
    body = body.replace(quote * 2, quote)
    return re.sub(r"\\(.)", r"\1", body)


def _backtick(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def normalise_grant(line: str) -> NormalisedGrant:
    """One SHOW GRANTS line in a form that compares across MySQL and MariaDB.

    >>> g = normalise_grant("GRANT USAGE ON *.* TO 'a'@'%' IDENTIFIED BY PASSWORD '*AB'")
    >>> g.text, g.secrets
    ("GRANT USAGE ON *.* TO `a`@`%` IDENTIFIED BY PASSWORD '<password hash>'", ('*AB',))
    """
    tokens = [(match.lastgroup or "", match.group()) for match in _TOKEN.finditer(line.strip())]
    secrets: list[str] = []
    out: list[str] = []
    previous_word = ""
    for index, (kind, token) in enumerate(tokens):
        if kind == "space":
            out.append(" ")
            continue
        if kind in ("string", "dquote"):
            if previous_word.upper() in _SECRET_BEFORE:
                secrets.append(_unquote(token))
                out.append(HASH_PLACEHOLDER)
            elif _is_account_part(tokens, index):
                out.append(_backtick(_unquote(token)))
            else:
                out.append("'" + _unquote(token).replace("'", "''") + "'")
        elif kind == "backtick":
            out.append(_backtick(_unquote(token)))
        else:
            out.append(token)
        previous_word = token if kind == "other" else ""
    text = "".join(out).rstrip(";").strip()
    return NormalisedGrant(_sort_privileges(text), tuple(secrets))


def _is_account_part(tokens: Sequence[tuple[str, str]], index: int) -> bool:
    """A quoted user or host: `'app'@'localhost'` (MySQL quotes accounts like strings)."""
    before = tokens[index - 1][1] if index > 0 else ""
    after = tokens[index + 1][1] if index + 1 < len(tokens) else ""
    return after.startswith("@") or before.endswith("@")


_GRANT_ON = re.compile(r"^GRANT (?P<privs>.+?) ON (?P<rest>(?:`|\*|PROCEDURE |FUNCTION ).*)$")


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return [p for p in parts if p]


def _sort_privileges(text: str) -> str:
    """Privileges, and the columns of column privileges, in sorted order (as pt-show-grants)."""
    match = _GRANT_ON.match(text)
    if match is None:
        return text
    privileges = []
    for privilege in _split_top_level(match.group("privs")):
        name, paren, columns = privilege.partition("(")
        if paren:
            cols = sorted(c.strip() for c in columns.rstrip(")").split(","))
            privilege = f"{name.strip()} ({', '.join(cols)})"
        privileges.append(privilege)
    return f"GRANT {', '.join(sorted(privileges))} ON {match.group('rest')}"


@dataclass(frozen=True)
class AccountGrants:
    """One account's grants, normalised; password hashes only as salted fingerprints."""

    grantee: Grantee
    grants: tuple[str, ...]
    hash_fingerprints: tuple[str, ...]

    @classmethod
    def from_lines(cls, grantee: Grantee, lines: Sequence[str]) -> AccountGrants:
        normalised = [normalise_grant(line) for line in lines]
        # pt-show-grants order: the line carrying the password first, then sorted.
        normalised.sort(key=lambda g: ("IDENTIFIED" not in g.text, g.text))
        fingerprints = tuple(
            hashlib.sha256(f"{grantee.id}\0{secret}".encode()).hexdigest()
            for grant in normalised
            for secret in grant.secrets
        )
        return cls(grantee, tuple(g.text for g in normalised), fingerprints)

    def to_json(self) -> dict[str, list[str]]:
        return {"grants": list(self.grants), "hashes": list(self.hash_fingerprints)}

    @classmethod
    def from_json(cls, grantee: Grantee, data: Mapping[str, Any]) -> AccountGrants:
        return cls(grantee, tuple(data["grants"]), tuple(data["hashes"]))


@dataclass(frozen=True)
class GrantDiff:
    """How one account's grants differ between old and new (empty: they match)."""

    grantee: Grantee
    only_on: Side | None = None  # the account exists on one side only
    missing_on_new: tuple[str, ...] = ()
    extra_on_new: tuple[str, ...] = ()
    hash_differs: bool = False

    def __bool__(self) -> bool:
        return bool(self.only_on or self.missing_on_new or self.extra_on_new or self.hash_differs)

    def describe(self) -> str:
        name = self.grantee.sql
        if self.only_on is Side.OLD:
            return f"account {name} is missing on new (exists on old)"
        if self.only_on is Side.NEW:
            return f"account {name} exists only on new (not on old)"
        lines = [f"account {name}:"]
        lines += [f"  missing on new: {shown(g)}" for g in self.missing_on_new]
        lines += [f"  extra on new:   {shown(g)}" for g in self.extra_on_new]
        if self.hash_differs:
            lines.append("  password hash differs (logins with the old password fail on new)")
        return "\n".join(lines)


def diff_grants(old: AccountGrants | None, new: AccountGrants | None) -> GrantDiff:
    """Compare one account's grants: lines and password hashes."""
    if old is None and new is None:
        raise ValueError("diff_grants needs at least one side")
    if new is None:
        assert old is not None
        return GrantDiff(old.grantee, only_on=Side.OLD)
    if old is None:
        return GrantDiff(new.grantee, only_on=Side.NEW)
    old_set, new_set = set(old.grants), set(new.grants)
    return GrantDiff(
        old.grantee,
        missing_on_new=tuple(g for g in old.grants if g not in new_set),
        extra_on_new=tuple(g for g in new.grants if g not in old_set),
        hash_differs=old.hash_fingerprints != new.hash_fingerprints,
    )


def _grantees(session: _Session) -> list[Grantee]:
    where = ""
    columns = {_text(r[0]).lower() for r in session.rows("SHOW COLUMNS FROM mysql.user")}
    if "is_role" in columns:
        where = " WHERE is_role <> 'Y'"  # MariaDB roles are not logins
    rows = session.rows(f"SELECT DISTINCT User, Host FROM mysql.user{where} ORDER BY User, Host")
    return [Grantee(_text(user), _text(host)) for user, host in rows]


def list_grantees(server: MysqlServer, inventory: Inventory) -> list[Grantee]:
    """Every (User, Host) of mysql.user (without MariaDB roles)."""
    with _Session(server, inventory) as session:
        return _grantees(session)


def read_grants(server: MysqlServer, inventory: Inventory) -> dict[Grantee, AccountGrants]:
    """`SHOW GRANTS FOR` every account of mysql.user, normalised."""
    found: dict[Grantee, AccountGrants] = {}
    with _Session(server, inventory) as session:
        for grantee in _grantees(session):
            shown_grants = session.rows("SHOW GRANTS FOR %s@%s", (grantee.user, grantee.host))
            lines = [_text(row[0]) for row in shown_grants]
            found[grantee] = AccountGrants.from_lines(grantee, lines)
    return found


# --- data ---------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    first_key: tuple[str, ...]
    last_key: tuple[str, ...]
    rows: int
    digest: bytes

    def key_range(self, primary_key: Sequence[str]) -> str:
        def show(key: Sequence[str]) -> str:
            return shown(key[0]) if len(key) == 1 else shown("(" + ", ".join(key) + ")")

        names = show(primary_key)
        return f"{names} {show(self.first_key)} .. {show(self.last_key)}"


@dataclass(frozen=True)
class TableScan:
    name: str
    columns: tuple[str, ...]  # primary-key columns first, then the others by name
    primary_key: tuple[str, ...]  # empty: the table has none
    rows: int
    chunks: tuple[Chunk, ...]  # empty without a primary key
    digest: str  # the whole table (without a primary key: order-independent)
    chunk_rows: int

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "digest": self.digest,
            "chunk_rows": self.chunk_rows,
            "primary_key": list(self.primary_key),
            "columns": list(self.columns),
        }


@dataclass(frozen=True)
class DatabaseScan:
    database: str
    where: str
    exists: bool
    tables: dict[str, TableScan] = field(default_factory=dict)

    @property
    def without_primary_key(self) -> list[str]:
        return sorted(t.name for t in self.tables.values() if not t.primary_key)


def _ident(name: str) -> str:
    return _backtick(name)


def _key_text(values: Sequence[object]) -> tuple[str, ...]:
    return tuple("NULL" if v is None else _text(v) for v in values)


def _scan_table(session: _Session, database: str, table: str, chunk_rows: int) -> TableScan:
    primary_key = tuple(
        _text(r[0])
        for r in session.rows(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' "
            "ORDER BY ORDINAL_POSITION",
            (database, table),
        )
    )
    others = sorted(
        _text(r[0])
        for r in session.rows(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (database, table),
        )
        if _text(r[0]) not in primary_key
    )
    columns = (*primary_key, *others)
    sql = f"SELECT {', '.join(map(_ident, columns))} FROM {_ident(database)}.{_ident(table)}"
    if primary_key:
        sql += f" ORDER BY {', '.join(map(_ident, primary_key))}"
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
                        first = _key_text(batch[0][:width])
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
                chunk = Chunk(first, _key_text(last), count, chunk_hash.digest())
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


def scan_database(server: MysqlServer, inventory: Inventory, database: str) -> DatabaseScan:
    """Row counts and chunk digests of every base table, in one consistent snapshot."""
    chunk_rows = inventory.mysql.chunk_rows
    with _Session(server, inventory, raw=True) as session:
        exists = bool(
            session.rows(
                "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (database,)
            )
        )
        if not exists:
            return DatabaseScan(database, server.where, exists=False)
        session.rows("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        tables = sorted(
            _text(r[0])
            for r in session.rows(
                "SELECT TABLE_NAME FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
                (database,),
            )
        )
        scans = {name: _scan_table(session, database, name, chunk_rows) for name in tables}
        session.rows("COMMIT")
    return DatabaseScan(database, server.where, exists=True, tables=scans)


def scan_pair(
    old: MysqlServer, new: MysqlServer, inventory: Inventory, database: str
) -> tuple[DatabaseScan, DatabaseScan]:
    """Scan one database on both servers at the same time (one thread each)."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="mysql-scan") as pool:
        futures = [pool.submit(scan_database, s, inventory, database) for s in (old, new)]
        return futures[0].result(), futures[1].result()


@dataclass(frozen=True)
class TableDifference:
    table: str
    problem: str

    def __str__(self) -> str:
        return f"{shown(self.table)}: {self.problem}"


def _compare_tables(old: TableScan, new: TableScan) -> str | None:
    if old.columns != new.columns:
        gone = sorted(set(old.columns) - set(new.columns))
        added = sorted(set(new.columns) - set(old.columns))
        detail = []
        if gone:
            detail.append(f"missing on new: {shown(', '.join(gone))}")
        if added:
            detail.append(f"extra on new: {shown(', '.join(added))}")
        if old.primary_key != new.primary_key:
            detail.append(
                f"primary key old ({shown(', '.join(old.primary_key)) or 'none'}) "
                f"new ({shown(', '.join(new.primary_key)) or 'none'})"
            )
        return f"columns differ ({'; '.join(detail) or 'order of the key columns'})"
    if old.digest == new.digest:
        return None
    counts = f"rows old {old.rows}, new {new.rows}"
    if not old.primary_key:
        return f"content differs ({counts}; no primary key: no range can be named)"
    for index, (a, b) in enumerate(zip(old.chunks, new.chunks, strict=False)):
        if a != b:
            where = f"old {a.key_range(old.primary_key)}"
            if (a.first_key, a.last_key) != (b.first_key, b.last_key):
                where += f", new {b.key_range(old.primary_key)}"
            return (
                f"content differs ({counts}); first differing chunk #{index + 1} "
                f"({old.chunk_rows} rows each): {where}"
            )
    longer = old if len(old.chunks) > len(new.chunks) else new
    extra = longer.chunks[min(len(old.chunks), len(new.chunks))]
    side = "old" if longer is old else "new"
    start = extra.key_range(old.primary_key)
    return f"content differs ({counts}); rows only on {side} from {start}"


def compare_database_scans(old: DatabaseScan, new: DatabaseScan) -> list[TableDifference]:
    """Every table that differs: missing, extra, columns, row counts, first differing chunk."""
    differences = []
    for name in sorted(set(old.tables) | set(new.tables)):
        if name not in new.tables:
            differences.append(TableDifference(name, "table missing on new"))
        elif name not in old.tables:
            differences.append(TableDifference(name, "table exists only on new"))
        else:
            problem = _compare_tables(old.tables[name], new.tables[name])
            if problem:
                differences.append(TableDifference(name, problem))
    return differences


def compare_with_recorded(
    recorded: Mapping[str, Mapping[str, Any]], new: DatabaseScan
) -> tuple[list[TableDifference], list[str]]:
    """New server against what preflight recorded of the old one.

    After the switch the new server takes writes, so only losses count:
    a recorded table missing, or holding fewer rows than the old one had.
    Returns (differences, notes); notes name tables whose content changed.
    """
    differences, notes = [], []
    for name in sorted(recorded):
        before = recorded[name]
        table = new.tables.get(name)
        if table is None:
            differences.append(
                TableDifference(name, "table missing on new (recorded in preflight)")
            )
        elif table.rows < int(before["rows"]):
            differences.append(
                TableDifference(
                    name,
                    f"fewer rows than the old server had in preflight: {before['rows']} -> "
                    f"{table.rows} (rows lost in the final sync, or deleted since)",
                )
            )
        elif table.digest != before["digest"] or table.chunk_rows != before["chunk_rows"]:
            notes.append(f"{shown(name)}: content changed since preflight ({table.rows} rows)")
    return differences, notes


def run_concurrently(calls: Mapping[Side, Callable[[], Any]]) -> dict[Side, Any]:
    """Run one call per side in parallel; each result is a value or the `ProbeError` raised."""
    results: dict[Side, Any] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
        futures = {side: pool.submit(call) for side, call in calls.items()}
        for side, future in futures.items():
            try:
                results[side] = future.result()
            except ProbeError as exc:
                results[side] = exc
    return results
