"""The one connection layer every probe shares.

- `connect(address, port, settings)`: a TCP connection within the connect timeout,
  holding a slot of its server's budget (`budget:`) until the socket closes;
- `hold` and `login_turn`: the same budget for connections a library opens itself
  (PyMySQL, IMAPClient), and the login rate every login path waits for;
- `tls_context(trust, verify=..., check_hostname=...)`: the one TLS context factory
  (`ServerName` presents a host name for libraries that pass the IP); a `Trust`
  toward an old server (`legacy`) also speaks TLS 1.0 and weak ciphers, one pinned
  to a version (`only`) speaks that version alone;
- `Deadline`, `LineReader`: one deadline for a whole exchange, not just per read,
  so a peer that trickles one byte a second or talks forever still fails in time;
- `ProbeError`/`ProbeTimeout`, whose message is one line naming the peer, worded by
  `timed_out` (every timeout), `refused_by`, `no_route_to` and `one_line` (any
  library exception as one line safe to show).

>>> Deadline(5.0).remaining() <= 5.0
True
>>> timed_out(5, "connecting to 198.51.100.10:25")
'timed out after 5 s connecting to 198.51.100.10:25'
"""

from __future__ import annotations

import ast
import errno
import functools
import re
import smtplib
import socket
import ssl
import time
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cutover.model.budget import OwnSlots, ServerBudget, Slot
from cutover.model.inventory import TLS_VERSION_NAMES
from cutover.model.settings import ProbeSettings, Trust
from cutover.untrusted import MAX_SHOWN, shown

__all__ = [
    "TLS_VERSIONS",
    "Deadline",
    "LineReader",
    "ProbeError",
    "ProbeTimeout",
    "ServerName",
    "connect",
    "hold",
    "login_turn",
    "no_route_to",
    "one_line",
    "peer",
    "refused_by",
    "timed_out",
    "tls_context",
]

MAX_LINE = 8192

# The TLS versions a server may accept, oldest first, as `SSLSocket.version()` names them.
TLS_VERSIONS: dict[str, ssl.TLSVersion] = dict(
    zip(
        TLS_VERSION_NAMES,
        (
            ssl.TLSVersion.TLSv1,
            ssl.TLSVersion.TLSv1_1,
            ssl.TLSVersion.TLSv1_2,
            ssl.TLSVersion.TLSv1_3,
        ),
        strict=True,
    )
)
# Every cipher OpenSSL has, at security level 0: what an old server (SHA-1, CBC,
# a 1024-bit key) can still agree on. Never used toward the new server's judgement.
WEAK_CIPHERS = "DEFAULT:@SECLEVEL=0"


class ProbeError(Exception):
    """A probe could not observe what it came for; the message names the peer."""


class ProbeTimeout(ProbeError):
    pass


def peer(address: object, port: int) -> str:
    text = str(address)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


class Deadline:
    """A point in time by which a whole exchange must be done."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def check(self, doing: str) -> float:
        """Seconds left, or `ProbeTimeout` naming what was being done."""
        left = self.remaining()
        if left <= 0:
            raise ProbeTimeout(timed_out(self.seconds, doing))
        return left


def timed_out(seconds: float, doing: str) -> str:
    """How every probe says it gave up waiting: `timed out after 5 s connecting to ...`.

    The verdict groups failures by this wording (a peer that never answers
    is one root cause), so it is written here only.
    """
    return f"timed out after {seconds:g} s {doing}"


def refused_by(where: str) -> str:
    """How every probe says a port was refused (TCP RST, or ICMP port unreachable for UDP).

    The verdict groups failures by this wording: an address that refused
    every port tried is one root cause.
    """
    return f"connection refused by {where} (nothing listening)"


def no_route_to(where: str, exc: OSError) -> str:
    """How every probe says the network has no way to an address (EHOSTUNREACH, ENETUNREACH)."""
    return f"no route to {where} ({exc.strerror})"


def connect(address: object, port: int, settings: ProbeSettings | float) -> socket.socket:
    """A TCP connection, or a one-line `ProbeError` ("timed out after 5 s connecting to ...").

    `settings` gives the connect timeout (or is it, in seconds). With settings
    that carry budgets, the connection first takes a slot of its server's
    budget (`hold`) and gives it back when the socket, or the TLS socket
    wrapped around it, is closed (or collected, should a caller forget).
    """
    timeout = settings.connect_timeout if isinstance(settings, ProbeSettings) else settings
    where = peer(address, port)
    slot = hold(address, settings, where) if isinstance(settings, ProbeSettings) else None
    try:
        sock = _open(address, port, timeout, where)
    except BaseException:
        if slot is not None:
            slot.release()
        raise
    if slot is None:
        return sock
    budgeted = _BudgetedSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    budgeted.settimeout(timeout)
    budgeted.take(slot)
    return budgeted


def _open(address: object, port: int, timeout: float, where: str) -> socket.socket:
    try:
        return socket.create_connection((str(address), port), timeout=timeout)
    except TimeoutError:
        raise ProbeTimeout(timed_out(timeout, f"connecting to {where}")) from None
    except ConnectionRefusedError:
        raise ProbeError(refused_by(where)) from None
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            raise ProbeError(no_route_to(where, exc)) from None
        raise ProbeError(f"cannot connect to {where}: {exc.strerror or exc}") from None


def _budget_of(address: object, settings: ProbeSettings) -> ServerBudget | None:
    return settings.budgets.of(address) if settings.budgets is not None else None


def hold(address: object, settings: ProbeSettings, where: str) -> Slot | None:
    """A slot of the budget of the server at `address` (None: it has none), for one connection.

    Waits while the server's slots keep coming free; when none did for the
    connect and operation timeouts together (a slot held past every
    deadline), fails with one line naming the server and the setting.
    The caller releases it when the connection closes (`connect` does that
    itself; PyMySQL and IMAPClient sessions release in their close).
    """
    budget = _budget_of(address, settings)
    if budget is None:
        return None
    wait = settings.connect_timeout + settings.operation_timeout
    try:
        slot = budget.acquire(wait)
    except OwnSlots:
        raise ProbeError(
            f"{budget.server}'s budget allows {budget.connections} connection(s) at once in "
            f"this process and this check holds them all already: it needs one more for "
            f"{where} (raise budget.connections)"
        ) from None
    if slot is None:
        raise ProbeTimeout(
            timed_out(
                wait,
                f"waiting for one of {budget.server}'s {budget.connections} connection(s) "
                f"(budget.connections) to come free, to connect to {where}",
            )
        )
    return slot


def login_turn(address: object, settings: ProbeSettings) -> float:
    """Wait for the next login turn on the server at `address` (budget.logins_per_second).

    Every login path calls it right before it sends the credentials, so no
    server sees more logins per second than its budget; the seconds waited.
    """
    budget = _budget_of(address, settings)
    return budget.login_turn() if budget is not None else 0.0


class _BudgetedSocket(socket.socket):
    """A TCP socket holding its server's budget slot until its file descriptor closes."""

    _slot: Slot | None = None
    _finalizer: weakref.finalize[Any, Any] | None = None

    def take(self, slot: Slot | None) -> None:
        self._slot = slot
        if slot is not None:
            self._finalizer = weakref.finalize(self, slot.release)

    def handed_on(self) -> Slot | None:
        """The slot, now owned by whoever took the descriptor over (a TLS socket)."""
        slot, self._slot = self._slot, None
        if self._finalizer is not None:
            self._finalizer.detach()
        return slot

    def _real_close(self, *args: Any) -> None:
        try:
            super()._real_close(*args)  # type: ignore[misc]
        finally:
            if self._slot is not None:
                self.handed_on().release()  # type: ignore[union-attr]


class _BudgetedSSLSocket(ssl.SSLSocket):
    """The TLS socket around a `_BudgetedSocket`: it takes the slot over with the descriptor."""

    _slot: Slot | None = None
    _finalizer: weakref.finalize[Any, Any] | None = None

    @classmethod
    def _create(cls, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        slot = sock.handed_on() if isinstance(sock, _BudgetedSocket) else None
        try:
            tls = super()._create(sock, *args, **kwargs)  # type: ignore[misc]
        except BaseException:
            if slot is not None:
                slot.release()
            raise
        if slot is not None:
            tls._slot = slot
            tls._finalizer = weakref.finalize(tls, slot.release)
        return tls  # type: ignore[no-any-return]

    def _real_close(self, *args: Any) -> None:
        try:
            super()._real_close(*args)  # type: ignore[misc]
        finally:
            slot, self._slot = self._slot, None
            if slot is not None:
                if self._finalizer is not None:
                    self._finalizer.detach()
                slot.release()


def tls_context(
    trust: Trust | Path | None = None, *, verify: bool = True, check_hostname: bool = True
) -> ssl.SSLContext:
    """The one TLS context factory; one context per trust configuration, shared.

    `trust` is where chains are verified (a `Trust`, a CA file, or None for
    the system store). `check_hostname=False` verifies the chain only: the
    TLS checks judge the certificate's names themselves, so a wrong name is
    not a failed handshake. `verify=False` verifies nothing (a sending MTA's
    opportunistic TLS, a second look at a rejected certificate).

    A `Trust` with `legacy` (toward an old server) allows TLS 1.0 and every
    cipher at security level 0; the handshake still picks the best version
    both sides speak. One with `only` speaks that one version.

    >>> tls_context(Trust(legacy=True), verify=False).minimum_version.name
    'TLSv1'
    >>> context = tls_context(Trust(only="TLSv1.1"), verify=False)
    >>> context.minimum_version.name, context.maximum_version.name
    ('TLSv1_1', 'TLSv1_1')
    """
    if isinstance(trust, Trust):
        return _context(trust.ca_file, verify, check_hostname, trust.legacy, trust.only)
    return _context(trust, verify, check_hostname, False, None)


@functools.lru_cache(maxsize=32)
def _context(
    ca_file: Path | None, verify: bool, check_hostname: bool, legacy: bool, only: str | None
) -> ssl.SSLContext:
    # Built once per configuration: building one costs ~16 ms (the CA store).
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        context.check_hostname = check_hostname
    if legacy or only:
        with warnings.catch_warnings():  # TLSVersion.TLSv1/TLSv1_1 are deprecated names
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = TLS_VERSIONS[only] if only else ssl.TLSVersion.TLSv1
            context.maximum_version = (
                TLS_VERSIONS[only] if only else ssl.TLSVersion.MAXIMUM_SUPPORTED
            )
        context.set_ciphers(WEAK_CIPHERS)
    # A budgeted connection's slot goes with its descriptor into the TLS socket.
    context.sslsocket_class = _BudgetedSSLSocket
    return context


class ServerName:
    """A context that presents `name` while connecting to an IP.

    Client libraries (imaplib, smtplib) pass the connect address as
    `server_hostname`; the certificate names the service's host, not the IP,
    so the name is substituted: `ssl_context=ServerName(tls_context(trust), name)`.
    """

    def __init__(self, context: ssl.SSLContext, name: str | None) -> None:
        self.context = context
        self.name = name

    def wrap_socket(self, sock: socket.socket, **kwargs: Any) -> ssl.SSLSocket:
        kwargs["server_hostname"] = self.name
        return self.context.wrap_socket(sock, **kwargs)


def one_line(exc: BaseException, limit: int = MAX_SHOWN) -> str:
    """What went wrong, on one line and safe to show: the one error formatter.

    A timeout is "timed out" (the caller's message says after how long and
    doing what); a TLS error says so; an OS error is its `strerror`; an SMTP
    reply is its code and text; a MySQL error is `(code) message`; testinfra's
    failed ssh (`RuntimeError` holding a command result) is ssh's last line;
    anything else is its text with the server's bytes decoded. Whitespace is
    folded, and at most `limit` characters are kept.

    >>> one_line(TimeoutError())
    'timed out'
    >>> one_line(OSError(111, "Connection refused"))
    'Connection refused'
    >>> one_line(smtplib.SMTPResponseException(535, b"5.7.8 Error:\\r\\n authentication failed"))
    '535 5.7.8 Error: authentication failed'
    >>> one_line(RuntimeError(1045, "Access denied for user 'app'@'10.0.0.5'"))
    "(1045) Access denied for user 'app'@'10.0.0.5'"
    >>> one_line(ValueError(b"[AUTHENTICATIONFAILED] Authentication failed."))
    '[AUTHENTICATIONFAILED] Authentication failed.'
    >>> class Result:
    ...     rc, stderr = 255, "ssh: connect to host h port 22: Connection timed out\\r\\n"
    >>> one_line(RuntimeError(Result()))
    'ssh: connect to host h port 22: Connection timed out'
    """
    result = exc.args[0] if exc.args else None
    if result is not None and hasattr(result, "stderr") and hasattr(result, "rc"):
        message = str(result.stderr or "").strip().splitlines()
        return shown(message[-1]) if message else f"ssh exited with {result.rc}, no message"
    if isinstance(exc, smtplib.SMTPResponseException):
        raw = exc.smtp_error
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
        return shown(f"{exc.smtp_code} {' '.join(text.split())}"[:limit], limit)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = [
            f"{code} {text.decode('utf-8', 'replace')}" for code, text in exc.recipients.values()
        ]
        return shown(f"recipient refused: {'; '.join(refused)}"[:limit], limit)
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not trusted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError):
        text = exc.strerror or str(exc)
    elif len(exc.args) >= 2 and isinstance(exc.args[0], int) and isinstance(exc.args[1], str):
        text = f"({exc.args[0]}) {exc.args[1]}"  # PyMySQL's (code, message)
    else:
        text = _server_words(exc)
    return shown(" ".join(text.split()), limit) or type(exc).__name__


def _server_words(exc: BaseException) -> str:
    """An exception's text, with server bytes decoded rather than shown as `b'...'`.

    imaplib raises its error with the server's response as bytes, and
    IMAPClient turns a failed login into `LoginError(str(that error))`.

    >>> _server_words(ValueError("b'[ALERT] Over quota'"))
    '[ALERT] Over quota'
    """
    if len(exc.args) == 1 and isinstance(exc.args[0], bytes):
        return exc.args[0].decode("utf-8", errors="replace")
    text = str(exc)
    if re.fullmatch(r"b('|\").*\1", text, re.S):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
    return text


class LineReader:
    """Reads CRLF/LF-terminated lines from a socket within a deadline and a size bound."""

    def __init__(self, sock: socket.socket | ssl.SSLSocket, where: str, deadline: Deadline):
        self.sock = sock
        self.where = where
        self.deadline = deadline
        self._buffer = b""

    def rebind(self, sock: socket.socket | ssl.SSLSocket) -> None:
        """Continue on a TLS-wrapped socket after STARTTLS (buffer must be empty)."""
        self.sock = sock
        self._buffer = b""

    def line(self, doing: str = "reading") -> str:
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE:
                raise ProbeError(
                    f"{self.where} sent a line longer than {MAX_LINE} bytes while {doing}"
                )
            left = self.deadline.check(f"{doing} from {self.where}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                raise ProbeTimeout(
                    timed_out(self.deadline.seconds, f"{doing} from {self.where}")
                ) from None
            except ssl.SSLError as exc:
                raise ProbeError(
                    f"TLS error from {self.where} while {doing}: {exc.reason}"
                ) from None
            except OSError as exc:
                raise ProbeError(
                    f"{self.where} failed while {doing}: {exc.strerror or exc}"
                ) from None
            if not chunk:
                raise ProbeError(f"{self.where} closed the connection while {doing}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\n", 1)
        # Every greeting, reply and capability a server sends comes through here:
        # its control characters are made visible once, before anyone parses or shows it.
        return shown(raw.rstrip(b"\r").decode("utf-8", errors="replace"), limit=MAX_LINE)

    def lines_until(self, done: Callable[[str], bool], doing: str, limit: int = 200) -> list[str]:
        """Lines up to and including the first for which `done(line)` is true."""
        lines = []
        for _ in range(limit):
            text = self.line(doing)
            lines.append(text)
            if done(text):
                return lines
        raise ProbeError(f"{self.where} sent more than {limit} lines while {doing}")

    def send(self, text: str, doing: str) -> None:
        self.deadline.check(f"{doing} to {self.where}")
        try:
            self.sock.sendall(text.encode("utf-8") + b"\r\n")
        except OSError as exc:
            raise ProbeError(f"{self.where} failed while {doing}: {exc.strerror or exc}") from None
