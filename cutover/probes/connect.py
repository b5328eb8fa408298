"""Bounded network primitives every probe shares.

Every operation has a deadline for the whole exchange, not just per read, so
a peer that trickles one byte a second or talks forever still fails in time.
Errors are `ProbeError`s whose message is one line naming the peer.

>>> Deadline(5.0).remaining() <= 5.0
True
"""

from __future__ import annotations

import errno
import functools
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from cutover.untrusted import shown

__all__ = [
    "Deadline",
    "LineReader",
    "ProbeError",
    "ProbeTimeout",
    "connect",
    "peer",
    "tls_context",
]

MAX_LINE = 8192


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
            raise ProbeTimeout(f"timed out after {self.seconds:g} s {doing}")
        return left


def refused_by(where: str) -> str:
    """How every probe says a port was refused (TCP RST, or ICMP port unreachable for UDP).

    The verdict groups failures by this wording: an address that refused
    every port tried is one root cause.
    """
    return f"connection refused by {where} (nothing listening)"


def no_route_to(where: str, exc: OSError) -> str:
    """How every probe says the network has no way to an address (EHOSTUNREACH, ENETUNREACH)."""
    return f"no route to {where} ({exc.strerror})"


def connect(address: object, port: int, timeout: float) -> socket.socket:
    """A TCP connection, or a one-line `ProbeError` ("timed out after 5 s connecting to ...")."""
    where = peer(address, port)
    try:
        return socket.create_connection((str(address), port), timeout=timeout)
    except TimeoutError:
        raise ProbeTimeout(f"timed out after {timeout:g} s connecting to {where}") from None
    except ConnectionRefusedError:
        raise ProbeError(refused_by(where)) from None
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            raise ProbeError(no_route_to(where, exc)) from None
        raise ProbeError(f"cannot connect to {where}: {exc.strerror or exc}") from None


@functools.lru_cache(maxsize=8)
def tls_context(
    ca_file: Path | None = None, *, verify: bool = True, check_hostname: bool = True
) -> ssl.SSLContext:
    """One context per trust configuration: building one costs ~16 ms (the CA store).

    `check_hostname=False` verifies the chain only: the TLS checks judge the
    certificate's names themselves, so a wrong name is not a failed handshake.
    """
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.check_hostname = check_hostname
    return context


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
                    f"timed out after {self.deadline.seconds:g} s {doing} from {self.where}"
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
