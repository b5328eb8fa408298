"""MySQL/MariaDB sessions over TCP: the project's one PyMySQL connect, and server facts.

`connect_mysql` opens every PyMySQL session of the project (the MySQL area,
the DNS SQL rows, the service probe's `@@hostname`): bounded by the given
connect and operation timeouts, read-only (`SET SESSION TRANSACTION READ
ONLY`), without TLS unless a context is given (`ssl_disabled=True` also
spares PyMySQL building an SSL context on every connect). Library errors
become one-line `ProbeError`s naming the peer, never the password: a refused
login is a `MysqlLoginRefused`, anything else a `MysqlConnectError` carrying
the server's code and text for callers that word their own message.

Semantics: docs/semantics.md, "MySQL and MariaDB".

>>> server = MysqlServer(Side.NEW, "198.51.100.20", 3306)
>>> server.id, server.where
('mysql-new', 'mysql 198.51.100.20:3306 (new IP)')
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pymysql

from cutover.model.budget import Slot
from cutover.model.inventory import MysqlAccount, SecretRef
from cutover.model.phases import Side
from cutover.model.settings import ProbeSettings
from cutover.probes.connect import ProbeError, ProbeTimeout, hold, login_turn, peer, timed_out
from cutover.untrusted import shown

__all__ = [
    "MysqlConnectError",
    "MysqlLoginRefused",
    "MysqlServer",
    "ServerFacts",
    "Session",
    "admin_of",
    "connect_mysql",
    "connect_to",
    "describe_error",
    "quote_identifier",
    "server_facts",
    "text_of",
    "try_login",
]

# Server error codes that mean "the server answered and refused this login".
REFUSED_CODES = frozenset({1044, 1045, 1130, 1698, 4151})


class MysqlConnectError(ProbeError):
    """No session: the server's error code (None: not a server error) and its text, shown."""

    def __init__(self, message: str, code: int | None, server_message: str) -> None:
        super().__init__(message)
        self.code = code
        self.server_message = server_message

    @property
    def reason(self) -> str:
        """`(1045) Access denied for user ...`, or the error's kind when the server said nothing."""
        return (
            f"({self.code}) {self.server_message}" if self.code is not None else self.server_message
        )


class MysqlLoginRefused(MysqlConnectError):
    """The server answered and refused the login (wrong account, host or password)."""


@dataclass(frozen=True)
class MysqlServer:
    """The MySQL port on one IP of the migration."""

    side: Side
    address: str
    port: int
    tag: str = ""  # "" when the side has one address, else v4 / v6 (as endpoints are tagged)

    @property
    def id(self) -> str:
        return f"mysql-{self.side.value}" + (f"-{self.tag}" if self.tag else "")

    @property
    def where(self) -> str:
        """`mysql 198.51.100.20:3306 (new IP)`."""
        return f"mysql {peer(self.address, self.port)} ({self.side.value} IP)"


if TYPE_CHECKING:
    _Connection = pymysql.connections.Connection[Any]
else:
    _Connection = pymysql.connections.Connection


class BudgetedConnection(_Connection):
    """A PyMySQL connection that gives its server's budget slot back when it closes."""

    budget_slot: Slot | None = None

    def _give_back(self) -> None:
        slot, self.budget_slot = self.budget_slot, None
        if slot is not None:
            slot.release()

    def _force_close(self) -> None:  # every way PyMySQL closes the socket ends here
        try:
            super()._force_close()  # type: ignore[misc]
        finally:
            self._give_back()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._give_back()


def _release(slot: Slot | None) -> None:
    if slot is not None:
        slot.release()


def describe_error(exc: BaseException) -> tuple[int | None, str]:
    """(code, text shown safely) of a PyMySQL error; (None, the kind) of anything else."""
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if len(args) >= 2 and isinstance(args[0], int):
        return args[0], shown(args[1])
    return None, type(exc).__name__


def connect_mysql(
    where: str,
    host: str | None,
    port: int,
    user: str,
    credentials: SecretRef,
    *,
    connect_timeout: float,
    operation_timeout: float,
    unix_socket: str | None = None,
    database: str | None = None,
    tls: ssl.SSLContext | None = None,
    raw: bool = False,
    read_only: bool = True,
    autocommit: bool = True,
    budget: ProbeSettings | None = None,
) -> pymysql.connections.Connection[Any]:
    """A session as `user` (password from `credentials`), or a `ProbeError` naming `where`.

    `budget`: settings whose budget the session keeps to when `host` is a
    server of the inventory (a connection slot for the session's life, and a
    login turn before it logs in).

    `raw`: values as the bytes the server sent (no conversion). `tls`: a
    prebuilt context (PyMySQL would otherwise build one per connect).
    `read_only=False` leaves `SET SESSION TRANSACTION READ ONLY` to the
    caller; `autocommit=False` makes the session's reads one transaction.
    """
    options: dict[str, Any] = {}
    if raw:
        # Values as the bytes the server sent: no per-value conversion, and
        # nothing that depends on Python's idea of a Decimal or a datetime.
        options = {"conv": {}, "use_unicode": False}
    slot = hold(host, budget, where) if budget is not None and host and not unix_socket else None
    # PyMySQL logs in as it connects: the login turn comes first.
    opener: Callable[..., pymysql.connections.Connection[Any]] = (
        pymysql.connect if slot is None else BudgetedConnection
    )
    try:
        if budget is not None and host:
            login_turn(host, budget)
        connection = opener(
            host=host,
            port=port,
            unix_socket=unix_socket,
            user=user,
            # Revealed inline: no local holds it for --showlocals to print.
            password=credentials.password.reveal() if credentials.has_password else "",
            database=database,
            connect_timeout=connect_timeout,
            read_timeout=operation_timeout,
            write_timeout=operation_timeout,
            ssl=tls,
            ssl_disabled=tls is None,
            charset="utf8mb4",
            autocommit=autocommit,
            **options,
        )
    except pymysql.err.OperationalError as exc:
        _release(slot)
        code, message = describe_error(exc)
        if code in REFUSED_CODES:
            raise MysqlLoginRefused(
                f"{where} refused the login as {user!r}: ({code}) {message}", code, message
            ) from None
        if code == 2003 and "timed out" in message:
            raise ProbeTimeout(timed_out(connect_timeout, f"connecting to {where}")) from None
        raise MysqlConnectError(
            f"cannot connect to {where}: ({code}) {message}", code, message
        ) from None
    except Exception as exc:  # a hostile peer makes PyMySQL raise anything
        _release(slot)
        code, message = describe_error(exc)
        raise MysqlConnectError(
            f"cannot connect to {where}: ({code}) {message}", code, message
        ) from None
    if isinstance(connection, BudgetedConnection):
        connection.budget_slot = slot
    if read_only:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET SESSION TRANSACTION READ ONLY")
        except pymysql.err.MySQLError as exc:
            connection.close()
            _, message = describe_error(exc)
            raise ProbeError(f"{where}: cannot make the session read-only: {message}") from None
    return connection


def connect_to(
    server: MysqlServer, account: MysqlAccount, settings: ProbeSettings, *, raw: bool = False
) -> pymysql.connections.Connection[Any]:
    """A read-only session as `account` on one side's MySQL port (no TLS)."""
    return connect_mysql(
        server.where,
        server.address,
        server.port,
        account.user,
        account,
        connect_timeout=settings.connect_timeout,
        operation_timeout=settings.operation_timeout,
        raw=raw,
        budget=settings,
    )


def admin_of(settings: ProbeSettings) -> MysqlAccount:
    if settings.mysql_admin is None:
        raise ProbeError("the inventory names no mysql.admin account (a read-only login)")
    return settings.mysql_admin


class Session:
    """An admin session whose query errors become `ProbeError`s naming the peer."""

    def __init__(self, server: MysqlServer, settings: ProbeSettings, *, raw: bool = False) -> None:
        self.server = server
        self.connection = connect_to(server, admin_of(settings), settings, raw=raw)
        self.operation = settings.operation_timeout

    def __enter__(self) -> Session:
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
        code, message = describe_error(exc)
        if code in (2013, 2006) and "timed out" in message.lower():
            return ProbeTimeout(timed_out(self.operation, f"on {self.server.where}"))
        return ProbeError(f"{self.server.where}: {doing} failed: ({code}) {message}")


def quote_identifier(name: str) -> str:
    """`name` as a backtick-quoted identifier (`` ` `` doubled)."""
    return "`" + name.replace("`", "``") + "`"


def text_of(value: object) -> str:
    """A value the server sent as text (raw sessions give bytes)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def try_login(server: MysqlServer, account: MysqlAccount, settings: ProbeSettings) -> str:
    """Log in as `account` and return `CURRENT_USER()`; `MysqlLoginRefused` when refused."""
    connection = connect_to(server, account, settings)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER()")
            row = cursor.fetchone()
        return shown(row[0]) if row else ""
    except pymysql.err.MySQLError as exc:
        _, message = describe_error(exc)
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
    # @@secure_auth as the server reports it; None: no such variable (MySQL >= 5.7.5
    # and MariaDB, once it is removed, support no pre-4.1 hash at all).
    secure_auth: str | None = None
    old_passwords: str | None = None  # @@old_passwords: new passwords get pre-4.1 hashes

    @property
    def refuses_pre_41(self) -> bool:
        """Whether the server refuses logins to accounts with a pre-4.1 password hash.

        >>> lax = ServerFacts("w", "h", "10.11", False, False, None, (), secure_auth="OFF")
        >>> mysql8 = ServerFacts("w", "h", "8.0.36", False, False, None, ())
        >>> lax.refuses_pre_41, mysql8.refuses_pre_41
        (False, True)
        """
        return self.secure_auth is None or self.secure_auth.upper() not in ("OFF", "0")

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


def server_facts(server: MysqlServer, settings: ProbeSettings) -> ServerFacts:
    """@@hostname, @@version, skip_name_resolve, bind_address, secure_auth, the account list."""
    with Session(server, settings) as session:
        variables = {
            str(name).lower(): str(value)
            for name, value in session.rows(
                "SHOW GLOBAL VARIABLES WHERE Variable_name IN "
                "('hostname', 'version', 'skip_name_resolve', 'skip_networking', 'bind_address',"
                " 'secure_auth', 'old_passwords')"
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
        secure_auth=variables.get("secure_auth"),
        old_passwords=variables.get("old_passwords"),
    )


def _account_rows(session: Session) -> tuple[tuple[str, str, str], ...]:
    try:
        rows = session.rows("SELECT User, Host, plugin FROM mysql.user ORDER BY User, Host")
    except ProbeError:
        # MySQL < 5.5 has no plugin column.
        rows = [(u, h, "") for u, h in session.rows("SELECT User, Host FROM mysql.user")]
    return tuple((text_of(u), text_of(h), text_of(p or "")) for u, h, p in rows)
