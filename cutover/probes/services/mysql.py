"""MySQL/MariaDB: the server's handshake packet, and `@@hostname` when an admin login is given.

The handshake alone names the software (`10.11.6-MariaDB`), usually the same
on both servers; `SELECT @@hostname` names the host (docs/semantics.md: `@@server_id`
is 1 everywhere). The login is read-only and bounded by the inventory's timeouts.

>>> observe(endpoint, settings).identity  # doctest: +SKIP
'new.example.test'
"""

from __future__ import annotations

import struct

from cutover.model.endpoints import Endpoint
from cutover.model.inventory import MysqlAccount
from cutover.model.settings import ProbeSettings
from cutover.probes.connect import (
    Deadline,
    ProbeError,
    ProbeTimeout,
    connect,
    peer,
    timed_out,
    tls_context,
)
from cutover.probes.services.base import ServiceAnswer
from cutover.untrusted import shown

__all__ = ["Handshake", "observe", "parse_handshake"]

CLIENT_SSL = 0x0800


class Handshake:
    def __init__(self, protocol: int, version: str, connection_id: int, capabilities: int):
        self.protocol = protocol
        self.version = version
        self.connection_id = connection_id
        self.capabilities = capabilities

    @property
    def offers_tls(self) -> bool:
        return bool(self.capabilities & CLIENT_SSL)


def parse_handshake(payload: bytes, where: str) -> Handshake:
    """The initial handshake packet's payload (protocol 10), or the server's error packet.

    >>> h = parse_handshake(b"\\x0a10.11.6-MariaDB\\x00" + bytes(4) + bytes(9) + b"\\x00\\x08", "p")
    >>> h.version, h.offers_tls
    ('10.11.6-MariaDB', True)
    """
    if payload[:1] == b"\xff":
        code = struct.unpack("<H", payload[1:3])[0] if len(payload) >= 3 else 0
        message = payload[3:].decode("utf-8", errors="replace").lstrip("#")
        raise ProbeError(f"{where} refused the connection: MySQL error {code}: {message[:120]}")
    if payload[:1] != b"\x0a":
        raise ProbeError(f"{where} is not a MySQL server (handshake starts {payload[:8]!r})")
    end = payload.find(b"\x00", 1)
    if end < 0 or len(payload) < end + 1 + 4 + 9 + 2:
        raise ProbeError(f"{where} sent a truncated MySQL handshake")
    version = shown(payload[1:end])
    offset = end + 1
    connection_id = struct.unpack("<I", payload[offset : offset + 4])[0]
    offset += 4 + 8 + 1  # auth-plugin-data part 1 and its filler
    capabilities = struct.unpack("<H", payload[offset : offset + 2])[0]
    return Handshake(10, version, connection_id, capabilities)


def read_handshake(endpoint: Endpoint, settings: ProbeSettings) -> Handshake:
    where = peer(endpoint.address, endpoint.service.port)
    deadline = Deadline(settings.operation_timeout)
    sock = connect(endpoint.address, endpoint.service.port, settings)
    try:
        data = b""
        while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:3], "little"):
            sock.settimeout(deadline.check(f"reading the MySQL handshake from {where}"))
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                raise ProbeTimeout(
                    timed_out(deadline.seconds, f"reading the MySQL handshake from {where}")
                ) from None
            except OSError as exc:
                raise ProbeError(f"{where} failed while sending its handshake: {exc}") from None
            if not chunk:
                raise ProbeError(f"{where} closed the connection before its MySQL handshake")
            data += chunk
            if len(data) > 65536:
                raise ProbeError(f"{where} sent an oversized MySQL handshake")
        return parse_handshake(data[4 : 4 + int.from_bytes(data[:3], "little")], where)
    finally:
        sock.close()


def server_hostname(
    endpoint: Endpoint, settings: ProbeSettings, account: MysqlAccount, tls: bool
) -> str:
    """`SELECT @@hostname` as `account`, in a read-only session (no password in any error)."""
    import pymysql

    from cutover.probes.mysql.session import MysqlConnectError, connect_mysql

    where = peer(endpoint.address, endpoint.service.port)
    try:
        connection = connect_mysql(
            where,
            str(endpoint.address),
            endpoint.service.port,
            account.user,
            account,
            connect_timeout=settings.connect_timeout,
            operation_timeout=settings.operation_timeout,
            # A prebuilt context: PyMySQL would otherwise build one per connect (~15 ms).
            tls=tls_context(verify=False) if tls else None,
            read_only=False,  # below, with this probe's own message
            budget=settings,
        )
    except MysqlConnectError as exc:
        code = exc.code if exc.code is not None else "?"
        raise ProbeError(
            f"login as {account.user} at {where} failed: {code} {exc.server_message[:160]}"
        ) from None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
            cursor.execute("SELECT @@hostname")
            row = cursor.fetchone()
    except pymysql.MySQLError as exc:
        raise ProbeError(f"SELECT @@hostname at {where} failed: {shown(exc.args[:2])}") from None
    finally:
        connection.close()
    if not row:
        raise ProbeError(f"SELECT @@hostname at {where} returned nothing")
    return shown(row[0])


def observe(endpoint: Endpoint, settings: ProbeSettings) -> ServiceAnswer:
    """The handshake, then `@@hostname` via `mysql.admin` when the inventory gives one."""
    handshake = read_handshake(endpoint, settings)
    where = peer(endpoint.address, endpoint.service.port)
    identity, source, note = handshake.version, "MySQL handshake version", None
    account = settings.mysql_admin
    if account is not None and account.has_password:
        try:
            identity = server_hostname(endpoint, settings, account, handshake.offers_tls)
            source = f"@@hostname as {account.user}"
        except ProbeError as exc:
            note = str(exc)
    else:
        note = "no mysql.admin login in the inventory: only the server version is known"
    return ServiceAnswer(
        where=where,
        protocol="mysql",
        greeting=f"protocol {handshake.protocol}, {handshake.version}",
        identity=identity,
        identity_source=source,
        identity_note=note,
        server_version=handshake.version,
    )
