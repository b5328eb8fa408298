"""What every protocol probe shares: the answer it returns and one bounded conversation."""

from __future__ import annotations

import base64
import contextlib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import TypeVar

from cutover.model.endpoints import Endpoint
from cutover.model.inventory import TlsMode
from cutover.model.settings import ProbeSettings
from cutover.probes.connect import Deadline, LineReader, ProbeError, connect, peer, timed_out
from cutover.probes.tls import CertificateRejected, TlsFacts, handshake

__all__ = [
    "AuthOutcome",
    "AuthReply",
    "Conversation",
    "ServiceAnswer",
    "converse",
    "sasl_responses",
]

T = TypeVar("T")


@dataclass(frozen=True)
class ServiceAnswer:
    """What one service on one IP said, as a client sees it.

    `capabilities` and `auth_mechanisms` are those offered after TLS where the
    port uses TLS (what a client configured for it works with);
    `capabilities_plain` is the list before STARTTLS.
    """

    where: str
    protocol: str
    greeting: str
    identity: str | None = None  # the server naming itself, from the protocol
    identity_source: str = ""  # "SMTP greeting", "X-Served-By header", "@@hostname", ...
    identity_note: str | None = None  # why there is no protocol identity
    capabilities: frozenset[str] = frozenset()
    capabilities_plain: frozenset[str] | None = None
    auth_mechanisms: frozenset[str] = frozenset()
    starttls_offered: bool | None = None
    starttls_error: str | None = None
    tls: TlsFacts | None = None
    http_status: int | None = None
    body_digest: str | None = None
    server_version: str | None = None

    @property
    def who(self) -> str:
        """All identity evidence: `'new.example.test' (SMTP greeting), cert sha256:…`.

        Two answers come from the same server when this is equal: a greeting
        that is the same everywhere is told apart by the certificate, a
        copied certificate by the greeting.
        """
        parts = []
        if self.identity is not None:
            parts.append(f"{self.identity!r} ({self.identity_source})")
        if self.tls is not None:
            parts.append(f"cert {self.tls.short_fingerprint}")
        return ", ".join(parts) or "nothing that names the server"


class Conversation:
    """One bounded connection to an endpoint: lines in and out, TLS on demand.

    The whole exchange after the connect shares one deadline
    (`operation_timeout`), so a peer that trickles bytes still fails in time.
    """

    def __init__(
        self, endpoint: Endpoint, settings: ProbeSettings, rejected: str | None = None
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.rejected = rejected
        self.where = peer(endpoint.address, endpoint.service.port)
        self.deadline = Deadline(settings.operation_timeout)
        self.sock: socket.socket = connect(endpoint.address, endpoint.service.port, settings)
        self.reader = LineReader(self.sock, self.where, self.deadline)
        self.tls: TlsFacts | None = None
        if endpoint.service.tls is TlsMode.IMPLICIT:
            self.start_tls()

    def start_tls(self) -> TlsFacts:
        tls_sock, facts = handshake(
            self.sock,
            self.where,
            self.deadline,
            self.settings.trust_toward(self.endpoint.side),
            server_name=self.settings.server_names.get(self.endpoint.service.name),
            rejected=self.rejected,
        )
        self.sock = tls_sock
        self.reader.rebind(tls_sock)
        self.tls = facts
        return facts

    def upgrade(self) -> str | None:
        """The handshake after STARTTLS/STLS: None when it worked, else why not.

        A chain that does not verify is not an error here: `converse` runs
        the exchange again without verification. A handshake pinned to one
        version (`Trust.only`) raises instead: its caller asks exactly that.
        """
        try:
            self.start_tls()
        except CertificateRejected:
            raise
        except ProbeError as exc:
            if self.settings.trust.only is not None:
                raise
            return str(exc)
        return None

    def line(self, doing: str) -> str:
        return self.reader.line(doing)

    def send(self, text: str, doing: str) -> None:
        self.reader.send(text, doing)

    def recv_all(self, limit: int, doing: str) -> bytes:
        """Everything until the peer closes (at most `limit` bytes)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            self.sock.settimeout(self.deadline.check(f"{doing} from {self.where}"))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise ProbeError(
                    timed_out(self.deadline.seconds, f"{doing} from {self.where}")
                ) from None
            except (ssl.SSLError, OSError) as exc:
                if isinstance(exc, ssl.SSLEOFError):  # peer closed without close_notify
                    break
                raise ProbeError(f"{self.where} failed while {doing}: {exc}") from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise ProbeError(f"{self.where} sent more than {limit} bytes while {doing}")
        return b"".join(chunks)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> Conversation:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def converse(
    endpoint: Endpoint,
    settings: ProbeSettings,
    exchange: Callable[[Conversation], T],
) -> T:
    """Run `exchange` on a fresh conversation.

    When the certificate chain does not verify, the exchange is run again
    without verification: the protocol still answered, and the TLS checks
    judge the certificate from the facts (which carry the reason).
    """
    try:
        with Conversation(endpoint, settings) as conversation:
            return exchange(conversation)
    except CertificateRejected as rejected:
        with Conversation(endpoint, settings, rejected=rejected.reason) as conversation:
            return exchange(conversation)


# --- logging in (the login continuity probes build on these) ---------------


class AuthOutcome(StrEnum):
    """What a login attempt came to, as a client configured for it would see it."""

    ACCEPTED = "accepted"
    REJECTED = "credentials rejected"  # IMAP NO [AUTHENTICATIONFAILED], POP3 -ERR [AUTH], SMTP 535
    NOT_OFFERED = "mechanism not offered"  # absent from CAPABILITY/CAPA/EHLO, IMAP BAD, SMTP 504
    TLS_REQUIRED = "TLS required first"  # LOGINDISABLED, [PRIVACYREQUIRED], SMTP 530/538
    TEMPORARY = "temporary failure"  # IMAP [UNAVAILABLE], POP3 [SYS/TEMP], SMTP 454: passdb error
    REFUSED = "refused"  # anything else the server said
    NO_STARTTLS = "STARTTLS unavailable"  # a client configured for STARTTLS stops before login


@dataclass(frozen=True)
class AuthReply:
    """The outcome and the server's last words (never the credentials)."""

    outcome: AuthOutcome
    reply: str


def say_goodbye(conversation: Conversation, command: str) -> None:
    """Send LOGOUT/QUIT; the exchange is complete already, so a failure here changes nothing."""
    with contextlib.suppress(ProbeError):
        conversation.send(command, f"sending {command.split()[-1]}")


def observe_with(
    endpoint: Endpoint,
    settings: ProbeSettings,
    ready: Callable[[Conversation], ServiceAnswer],
    goodbye: Callable[[Conversation], None],
) -> ServiceAnswer:
    """A protocol's greeting exchange: `ready` (greeting, capabilities, STARTTLS), then goodbye."""

    def exchange(conversation: Conversation) -> ServiceAnswer:
        answer = ready(conversation)
        if answer.starttls_error is None:
            goodbye(conversation)
        return answer

    return converse(endpoint, settings, exchange)


def sasl_responses(mechanism: str, user: str, password: str) -> list[str] | None:
    """The base64 client responses of a SASL mechanism, or None when not implemented.

    >>> sasl_responses("PLAIN", "u", "p")
    ['AHUAcA==']
    >>> sasl_responses("CRAM-MD5", "u", "p") is None
    True
    """

    def encode(text: str) -> str:
        return base64.b64encode(text.encode("utf-8")).decode("ascii")

    if mechanism == "PLAIN":
        return [encode(f"\0{user}\0{password}")]
    if mechanism == "LOGIN":
        return [encode(user), encode(password)]
    return None
