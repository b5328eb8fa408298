"""Certificate facts: what a TLS handshake showed about a server's certificate.

The handshake verifies the chain only (against `tls.ca_file` or the system
store); names and expiry are judged by the checks from these facts, so a
wrong name or an expired certificate is evidence, never a failed connection.

>>> facts = TlsFacts.from_der(der, verified=True, verify_error=None,    # doctest: +SKIP
...                           version="TLSv1.3", trust="system store")
>>> facts.covers("mail.example.test")                                  # doctest: +SKIP
True
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime

from cutover.model.settings import Trust
from cutover.probes.connect import Deadline, ProbeError, ProbeTimeout, timed_out, tls_context
from cutover.untrusted import shown

__all__ = [
    "WEAK_VERSIONS",
    "CertificateRejected",
    "HandshakeFailed",
    "TlsFacts",
    "handshake",
    "name_covered",
]

# Versions that today's clients and libraries refuse by default (RFC 8996).
WEAK_VERSIONS = frozenset({"TLSv1", "TLSv1.1"})


class CertificateRejected(ProbeError):
    """The chain did not verify; the probe retries without verification to see the rest."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"certificate of {where} rejected: {reason}")
        self.reason = reason


class HandshakeFailed(ProbeError):
    """The server refused the handshake (a TLS alert, or it closed the connection)."""


@dataclass(frozen=True)
class TlsFacts:
    version: str
    verified: bool
    verify_error: str | None  # why the chain did not verify ("certificate has expired")
    trust: str  # what it was verified against
    subject: str
    names: tuple[str, ...]  # DNS subjectAltNames
    not_after: datetime
    fingerprint: str  # SHA-256 of the leaf certificate, hex
    cipher: str = ""  # the cipher suite negotiated ("AES256-SHA")

    @classmethod
    def from_der(
        cls,
        der: bytes,
        *,
        verified: bool,
        verify_error: str | None,
        version: str,
        trust: str,
        cipher: str = "",
    ) -> TlsFacts:
        # cryptography is imported here: only runs that see a certificate pay for it.
        from cryptography import x509

        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise ProbeError(f"the server's certificate cannot be parsed: {exc}") from None
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            names = tuple(shown(n) for n in san.value.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            names = ()
        return cls(
            version=version,
            verified=verified,
            verify_error=verify_error,
            trust=trust,
            subject=shown(cert.subject.rfc4514_string()),
            names=names,
            not_after=cert.not_valid_after_utc,
            fingerprint=hashlib.sha256(der).hexdigest(),
            cipher=shown(cipher),
        )

    @property
    def short_fingerprint(self) -> str:
        return f"sha256:{self.fingerprint[:16]}"

    def covers(self, name: str) -> bool:
        return any(name_covered(name, pattern) for pattern in self.names)

    def days_left(self, now: datetime | None = None) -> float:
        now = now or datetime.now(UTC)
        return (self.not_after - now).total_seconds() / 86400


def name_covered(name: str, pattern: str) -> bool:
    """RFC 6125 matching: exact, or a `*` standing for exactly one leftmost label.

    >>> name_covered("mail.example.test", "*.example.test")
    True
    >>> name_covered("a.mail.example.test", "*.example.test")
    False
    """
    name, pattern = name.lower().rstrip("."), pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return name == pattern


def handshake(
    sock: socket.socket,
    where: str,
    deadline: Deadline,
    trust: Trust,
    *,
    server_name: str | None,
    rejected: str | None = None,
) -> tuple[ssl.SSLSocket, TlsFacts]:
    """TLS on a connected socket, bounded by `deadline`.

    Verifies the chain unless `rejected` says a first attempt already failed
    (then the facts carry that reason). Raises `CertificateRejected` for a
    chain that does not verify, `HandshakeFailed` when the server refuses the
    handshake, `ProbeTimeout` when it does not finish in time. `trust` also
    says which versions and ciphers are offered (see `tls_context`).
    """
    context = tls_context(trust, verify=rejected is None, check_hostname=False)
    tls = context.wrap_socket(sock, server_hostname=server_name, do_handshake_on_connect=False)
    tls.settimeout(deadline.check(f"starting TLS with {where}"))
    try:
        tls.do_handshake()
    except ssl.SSLCertVerificationError as exc:
        tls.close()
        raise CertificateRejected(where, exc.verify_message or str(exc.reason)) from None
    except TimeoutError:
        tls.close()
        raise ProbeTimeout(
            timed_out(deadline.seconds, f"in the TLS handshake with {where}")
        ) from None
    except ssl.SSLError as exc:
        tls.close()
        raise HandshakeFailed(f"TLS handshake with {where} failed: {exc.reason or exc}") from None
    except OSError as exc:
        tls.close()
        raise HandshakeFailed(
            f"{where} failed during the TLS handshake: {exc.strerror or exc}"
        ) from None
    der = tls.getpeercert(binary_form=True)
    if not der:
        tls.close()
        raise ProbeError(f"{where} sent no certificate")
    facts = TlsFacts.from_der(
        der,
        verified=rejected is None,
        verify_error=rejected,
        version=tls.version() or "?",
        trust=trust.label,
        cipher=(tls.cipher() or ("",))[0],
    )
    return tls, facts
