"""DKIM: the published key record of each selector, and the new host's signing key.

Key records are parsed by dkimpy; the signing key's public half is derived
on the host over ssh (`openssl pkey -pubout`), so only it ever leaves the host.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

import dkim
import dkim.crypto

from cutover.probes.connect import MAX_LINE, ProbeError
from cutover.probes.dns.names import absolute_text
from cutover.probes.outbound.lookup import AuthoritativeLookup, txt_bytes
from cutover.probes.remote import RemoteHost
from cutover.untrusted import shown

__all__ = ["DkimRecord", "SigningKey", "dkim_name", "observe_dkim_record", "observe_signing_key"]

PEM_BODY = re.compile(r"-----BEGIN PUBLIC KEY-----(.*?)-----END PUBLIC KEY-----", re.DOTALL)


def dkim_name(selector: str, domain: str) -> str:
    return absolute_text(f"{selector}._domainkey.{domain}")


@dataclass(frozen=True)
class DkimRecord:
    """The key record at SELECTOR._domainkey.DOMAIN, as dkimpy parses it."""

    domain: str
    selector: str
    name: str
    texts: tuple[str, ...]  # every TXT record there (one is expected)
    asked: str
    key_type: str | None = None  # rsa, ed25519
    bits: int | None = None
    rsa: tuple[int, int] | None = None  # (modulus, public exponent)
    error: str | None = None  # why dkimpy refused it


def observe_dkim_record(domain: str, selector: str, names: AuthoritativeLookup) -> DkimRecord:
    """The selector's TXT (CNAMEs followed, as verifiers do) parsed by `dkim.load_pk_from_dns`."""
    name = dkim_name(selector, domain)
    chain, answer = names.follow(name, "TXT")
    raw_texts = [txt_bytes(v) for v in answer.values(chain[-1], "TXT")]
    texts = tuple(shown(t, limit=MAX_LINE) for t in raw_texts)
    base = DkimRecord(domain, selector, name, texts, answer.asked)
    if not texts:
        return replace(base, error=f"no TXT record ({answer.rcode})")

    def from_authoritative(qname: bytes, timeout: float = 0) -> bytes | None:
        return raw_texts[0]

    try:
        key, bits, ktag, _tlsrpt = dkim.load_pk_from_dns(
            name.encode(), dnsfunc=from_authoritative, timeout=names.timeout
        )
    except dkim.DKIMException as exc:
        return replace(base, error=f"{type(exc).__name__}: {shown(exc)}")
    kind = ktag.decode() if isinstance(ktag, bytes) else str(ktag)
    rsa = (int(key["modulus"]), int(key["publicExponent"])) if kind == "rsa" else None
    return replace(base, key_type=kind, bits=int(bits), rsa=rsa)


@dataclass(frozen=True)
class SigningKey:
    """The public half of a signing key file on a host (`openssl pkey -pubout`)."""

    host: str
    path: str
    rsa: tuple[int, int] | None  # (modulus, public exponent); None: not an RSA key
    spki_sha256: str


def observe_signing_key(
    hostspec: str, path: str, ssh_config: Path | None, timeout: float
) -> SigningKey:
    """Derive the public key from the private key file on the host, read-only.

    Only the public half crosses the wire: `openssl pkey -in PATH -pubout`
    runs on the host (bounded by the remote `timeout` command: testinfra has
    no per-command timeout).
    """
    remote = RemoteHost(hostspec, ssh_config, timeout)
    out = remote.run(f"openssl pkey -in {shlex.quote(path)} -pubout", "openssl pkey")
    if out.rc != 0:
        reason = (out.stderr.strip().splitlines() or [f"exit {out.rc}"])[0]
        raise ProbeError(f"{hostspec}: cannot read the signing key {path}: {reason[:200]}")
    match = PEM_BODY.search(out.stdout)
    if match is None:
        raise ProbeError(f"{hostspec}: openssl pkey -pubout printed no public key for {path}")
    der = base64.b64decode("".join(match.group(1).split()))
    try:
        parsed = dkim.crypto.parse_public_key(der)
        rsa: tuple[int, int] | None = (int(parsed["modulus"]), int(parsed["publicExponent"]))
    except dkim.crypto.UnparsableKeyError:
        rsa = None
    return SigningKey(hostspec, path, rsa, hashlib.sha256(der).hexdigest())
