"""Outbound mail, observed: SPF, reverse DNS, DKIM keys and MX preferences of the mail domains.

Semantics: ../shared/design/CHECKS.md "Outbound deliverability". Every name
is asked of the authoritative servers of the inventory zone it belongs to
(all of them, RD off, AA required: `cutover.probes.dns.engine.observe_answers`), and an
answer counts only when those servers agree; a name outside every known zone
goes to `dns.resolver` if the inventory names one, and is an error otherwise,
so nothing is ever asked of a server the inventory does not list.

SPF is evaluated by pyspf (RFC 7208, strict: 10 DNS-causing terms, 2 void
lookups) with its DNS routed through that lookup; DKIM key records are parsed
by dkimpy; the new host's signing key is read over ssh with `openssl pkey
-pubout`, so only its public half ever leaves the host.

>>> names = AuthoritativeLookup({"example.test": ["198.51.100.53"]}, timeout=5)  # doctest: +SKIP
>>> evaluate_spf("example.test", "198.51.100.20", names).result                # doctest: +SKIP
'pass'
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import shlex
import threading
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dkim
import dkim.crypto
import dns.exception
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.reversename
import spf

from cutover.model.inventory import DnsZone, Inventory, Protocol, Service
from cutover.probes.connect import MAX_LINE, ProbeError
from cutover.probes.dns.engine import RRset, absolute_text, observe_answers, zone_of, zone_servers
from cutover.probes.remote import RemoteHost
from cutover.untrusted import MAX_SHOWN_LINE, shown

__all__ = [
    "AuthoritativeLookup",
    "DkimRecord",
    "Lookup",
    "MxRecord",
    "ReverseDns",
    "SigningKey",
    "SpfRecords",
    "SpfVerdict",
    "dkim_name",
    "evaluate_spf",
    "helo_service",
    "lookup_for",
    "mail_domains",
    "observe_dkim_record",
    "observe_mx",
    "observe_reverse",
    "observe_signing_key",
    "observe_spf_records",
    "parse_mx",
]

# A CNAME chain longer than this is a loop or a mistake (pyspf stops at 10 too).
MAX_CNAMES = 10
# The suffix every reverse name lives under, by IP version.
REVERSE_SUFFIX = {4: "in-addr.arpa", 6: "ip6.arpa"}
PEM_BODY = re.compile(r"-----BEGIN PUBLIC KEY-----(.*?)-----END PUBLIC KEY-----", re.DOTALL)


# --- asking the authoritative servers ---------------------------------------


@dataclass(frozen=True)
class Lookup:
    """One (name, type) as the servers of its zone answered it (they all agree)."""

    name: str
    rdtype: str
    rcode: str  # NOERROR or NXDOMAIN
    records: tuple[RRset, ...]
    asked: str  # "198.51.100.53, 198.51.100.54", or "resolver ADDRESS"

    def values(self, name: str | None = None, rdtype: str | None = None) -> list[str]:
        """Data of the records of `name` (default: the question's) and `rdtype`."""
        owner, kind = name or self.name, rdtype or self.rdtype
        return [v for r in self.records if r.name == owner and r.rdtype == kind for v in r.values]


class AuthoritativeLookup:
    """Answers names from the authoritative servers of the zone each belongs to.

    `servers_of` maps zone names (or a reverse suffix such as `in-addr.arpa`)
    to server addresses. Answers are cached for the run: SPF evaluations of
    several IPs and domains ask the same names again and again.

    >>> AuthoritativeLookup({"example.test": ["198.51.100.53"]}, timeout=5).servers_for(
    ...     "mail.example.test")
    ('example.test', ['198.51.100.53'])
    """

    def __init__(
        self,
        servers_of: dict[str, list[str]],
        *,
        timeout: float,
        resolver: str | None = None,
        port: int = 53,
    ) -> None:
        self.servers_of = {absolute_text(z): list(s) for z, s in servers_of.items()}
        self.timeout = timeout
        self.resolver = resolver
        self.port = port
        self._cache: dict[tuple[str, str], Lookup | ProbeError] = {}
        self._lock = threading.Lock()

    def servers_for(self, name: str) -> tuple[str, list[str]] | None:
        zone = zone_of(absolute_text(name), self.servers_of)
        return (zone, self.servers_of[zone]) if zone is not None else None

    def lookup(self, name: str, rdtype: str) -> Lookup:
        """The agreed answer of the zone's servers, or `ProbeError` saying why there is none."""
        key = (absolute_text(name), rdtype.upper())
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            try:
                cached = self._ask(*key)
            except ProbeError as exc:
                cached = exc
            with self._lock:
                self._cache[key] = cached
        if isinstance(cached, ProbeError):
            raise cached
        return cached

    def _ask(self, name: str, rdtype: str) -> Lookup:
        found = self.servers_for(name)
        if found is None:
            if self.resolver is None:
                raise ProbeError(
                    f"{name} {rdtype}: outside every zone whose servers are known "
                    "(dns.zones, outbound.reverse_nameservers) and no dns.resolver is given"
                )
            return self._ask_resolver(name, rdtype)
        zone, servers = found
        if not servers:
            raise ProbeError(f"{name} {rdtype}: no authoritative server known for {zone}")
        answers = observe_answers(
            [(s, (name, rdtype)) for s in servers], timeout=self.timeout, port=self.port
        )
        seen: dict[tuple[str, frozenset[tuple[str, str, tuple[str, ...]]]], list[str]] = {}
        for (server, _), answer in answers.items():
            if not answer.judgeable:
                raise ProbeError(f"{server}: {name} {rdtype}: {answer.problem}")
            content = frozenset((r.name, r.rdtype, r.values) for r in answer.answer)
            seen.setdefault((answer.rcode or "", content), []).append(server)
        if len(seen) > 1:
            versions = "; ".join(
                f"{', '.join(where)}: {rcode} {_describe(content)}"
                for (rcode, content), where in seen.items()
            )
            raise ProbeError(f"the servers of {zone} disagree on {name} {rdtype}: {versions}")
        (rcode, content), _ = next(iter(seen.items()))
        records = tuple(RRset(n, t, 0, v) for n, t, v in sorted(content))
        return Lookup(name, rdtype, rcode, records, ", ".join(servers))

    def _ask_resolver(self, name: str, rdtype: str) -> Lookup:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [str(self.resolver)]
        resolver.port = self.port
        resolver.lifetime = resolver.timeout = self.timeout
        try:
            answer = resolver.resolve(name, rdtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return Lookup(name, rdtype, "NXDOMAIN", (), f"resolver {self.resolver}")
        except dns.exception.DNSException as exc:
            raise ProbeError(f"resolver {self.resolver}: {name} {rdtype}: {exc}") from None
        records = tuple(
            RRset(
                rrset.name.to_text(omit_final_dot=True).lower(),
                dns.rdatatype.to_text(rrset.rdtype),
                0,
                tuple(sorted(r.to_text() for r in rrset)),
            )
            for rrset in answer.response.answer
        )
        return Lookup(name, rdtype, "NOERROR", records, f"resolver {self.resolver}")

    def follow(self, name: str, rdtype: str) -> tuple[list[str], Lookup]:
        """Look `name` up, following CNAMEs into other zones: (the chain, the final answer)."""
        chain = [absolute_text(name)]
        answer = self.lookup(chain[-1], rdtype)
        while not answer.values(chain[-1]):
            target = _alias_of(answer, chain[-1])
            if target is None:
                break
            if target in chain or len(chain) > MAX_CNAMES:
                raise ProbeError(f"{name} {rdtype}: CNAME loop or chain too long: {chain}")
            chain.append(target)
            # An in-zone target comes in the same answer; another zone's is asked there.
            if not (answer.values(target) or answer.values(target, "CNAME")):
                answer = self.lookup(target, rdtype)
        return chain, answer


def _alias_of(answer: Lookup, name: str) -> str | None:
    targets = answer.values(name, "CNAME")
    return absolute_text(targets[0]) if targets else None


def _describe(content: frozenset[tuple[str, str, tuple[str, ...]]]) -> str:
    return " | ".join(f"{n} {t} {' '.join(v)}" for n, t, v in sorted(content)) or "(no records)"


def lookup_for(inventory: Inventory) -> AuthoritativeLookup:
    """The lookup for an inventory: its zones (and the mail domains), the new IP's reverse zone.

    NS discovery (for zones that list no servers) goes through dns.resolver.
    """
    zones = list(inventory.dns.zones)
    known = {absolute_text(z.name) for z in zones}
    zones += [DnsZone(name=d) for d in mail_domains(inventory) if zone_of(d, known) is None]
    servers_of, errors = zone_servers(
        zones, resolver=inventory.dns.resolver, timeout=inventory.timeouts.operation
    )
    if errors:
        raise ProbeError("; ".join(errors.values()))
    reverse = [str(a) for a in inventory.outbound.reverse_nameservers]
    if reverse:
        servers_of[REVERSE_SUFFIX[inventory.new.address.version]] = reverse
    resolver = str(inventory.dns.resolver) if inventory.dns.resolver is not None else None
    return AuthoritativeLookup(servers_of, timeout=inventory.timeouts.operation, resolver=resolver)


def mail_domains(inventory: Inventory) -> list[str]:
    """outbound.domains, or every dns.zones name."""
    names = inventory.outbound.domains or [z.name for z in inventory.dns.zones]
    return list(dict.fromkeys(absolute_text(n) for n in names))


# --- SPF -----------------------------------------------------------------------


@dataclass(frozen=True)
class SpfRecords:
    """The `v=spf1` TXT records of a domain (RFC 7208 4.5: exactly one may exist)."""

    domain: str
    records: tuple[str, ...]
    asked: str


def observe_spf_records(domain: str, names: AuthoritativeLookup) -> SpfRecords:
    """Every TXT record of `domain` that pyspf takes for an SPF record."""
    answer = names.lookup(domain, "TXT")
    texts = [_txt_bytes(value) for value in answer.values(domain, "TXT")]
    records = tuple(shown(t) for t in texts if spf.RE_SPF.match(t))
    return SpfRecords(domain, records, answer.asked)


def _txt_bytes(value: str) -> bytes:
    """A TXT record's strings, concatenated (RFC 7208 3.3), from its presentation form."""
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, value)
    return b"".join(getattr(rdata, "strings", ()))


@dataclass(frozen=True)
class SpfVerdict:
    """pyspf's answer for mail from `domain` sent by `ip`."""

    domain: str
    ip: str
    result: str  # pass fail softfail neutral none permerror temperror
    explanation: str
    mechanism: str | None  # the term that decided, when one did
    lookups: int  # DNS-causing terms evaluated (RFC 7208 limit 10)
    void_lookups: int  # lookups that found nothing (limit 2)
    asked: tuple[str, ...]  # every question, in order: "include.example TXT"

    @property
    def summary(self) -> str:
        decided = f" by {self.mechanism}" if self.mechanism else ""
        return (
            f"{self.result}{decided} ({self.explanation}; {self.lookups} DNS-causing terms, "
            f"{self.void_lookups} void lookups)"
        )


def evaluate_spf(domain: str, ip: str, names: AuthoritativeLookup) -> SpfVerdict:
    """RFC 7208 check_host(ip, domain, postmaster@domain), strict, DNS through `names`."""
    asked: list[str] = []
    query = spf.query(i=ip, s=f"postmaster@{domain}", h=domain, strict=True, timeout=names.timeout)
    _route_dns(query, _pyspf_lookup(names, asked))
    result, _code, explanation = query.check()
    return SpfVerdict(
        domain=domain,
        ip=ip,
        result=str(result),
        explanation=shown(explanation, limit=MAX_SHOWN_LINE),
        mechanism=None if query.mechanism is None else shown(query.mechanism),
        lookups=int(query.lookups),
        void_lookups=int(query.void_lookups),
        asked=tuple(asked),
    )


def _route_dns(query: Any, lookup: Callable[..., list[tuple[tuple[str, str], Any]]]) -> None:
    """Make this one pyspf query resolve through `lookup`.

    pyspf reads its resolver from the module global `spf.DNSLookup` (its
    documented hook). Setting that global would reroute every evaluation in
    the process; instead this query gets its own copy of `query.dns` whose
    globals name `lookup`, so concurrent evaluations never see each other's.
    """
    method = spf.query.dns
    private_globals = {**method.__globals__, "DNSLookup": lookup}
    function = types.FunctionType(
        method.__code__, private_globals, method.__name__, method.__defaults__, method.__closure__
    )
    query.dns = types.MethodType(function, query)


def _pyspf_lookup(
    names: AuthoritativeLookup, asked: list[str]
) -> Callable[..., list[tuple[tuple[str, str], Any]]]:
    """A pyspf DNSLookup: [((owner, type), value)] for every record of the answer section."""

    def lookup(name: str, qtype: str, strict: object = True, timeout: object = None) -> Any:
        asked.append(f"{name} {qtype}")
        try:
            answer = names.lookup(name, qtype)
        except ProbeError as exc:
            raise spf.TempError(f"DNS {exc}") from None
        found: list[tuple[tuple[str, str], Any]] = []
        for rrset in answer.records:
            for value in rrset.values:
                found.append(((rrset.name, rrset.rdtype), _pyspf_value(rrset.rdtype, value)))
        return found

    return lookup


def _pyspf_value(rdtype: str, value: str) -> Any:
    """A record's data in the shape pyspf's own dnspython driver gives it."""
    if rdtype in ("TXT", "SPF"):
        rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, value)
        return tuple(getattr(rdata, "strings", ()))
    if rdtype == "MX":
        preference, exchange = value.split()
        return int(preference), absolute_text(exchange)
    if rdtype in ("PTR", "CNAME"):
        return absolute_text(value)
    return value


# --- reverse DNS ---------------------------------------------------------------


@dataclass(frozen=True)
class ReverseDns:
    """The PTR names of an IP and, for each, the addresses it resolves to."""

    ip: str
    pointer: str  # 20.100.51.198.in-addr.arpa
    names: tuple[str, ...]
    asked: str
    forward: dict[str, tuple[str, ...]] = field(default_factory=dict)
    forward_errors: dict[str, str] = field(default_factory=dict)
    forward_chains: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def confirmed(self) -> tuple[str, ...]:
        """PTR names that resolve back to the IP (forward-confirmed reverse DNS)."""
        return tuple(n for n in self.names if self.ip in self.forward.get(n, ()))


def observe_reverse(ip: str, names: AuthoritativeLookup) -> ReverseDns:
    """PTR of `ip`, then A/AAAA of every PTR name (CNAMEs followed)."""
    address = ipaddress.ip_address(ip)
    pointer = absolute_text(dns.reversename.from_address(str(address)).to_text())
    chain, answer = names.follow(pointer, "PTR")
    ptr_names = tuple(sorted(absolute_text(v) for v in answer.values(chain[-1], "PTR")))
    family = "A" if address.version == 4 else "AAAA"
    forward: dict[str, tuple[str, ...]] = {}
    errors: dict[str, str] = {}
    chains: dict[str, tuple[str, ...]] = {}
    for name in ptr_names:
        try:
            hops, found = names.follow(name, family)
        except ProbeError as exc:
            errors[name] = str(exc)
            continue
        forward[name] = tuple(
            str(ipaddress.ip_address(v)) for v in sorted(found.values(hops[-1], family))
        )
        chains[name] = tuple(hops)
    return ReverseDns(str(address), pointer, ptr_names, answer.asked, forward, errors, chains)


def helo_service(inventory: Inventory) -> Service | None:
    """The SMTP service whose greeting names the server's HELO name (port 25 first)."""
    smtp = [s for s in inventory.services if s.protocol is Protocol.SMTP]
    smtp.sort(key=lambda s: s.port != 25)
    return smtp[0] if smtp else None


# --- DKIM ----------------------------------------------------------------------


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
    raw_texts = [_txt_bytes(v) for v in answer.values(chain[-1], "TXT")]
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


# --- MX --------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class MxRecord:
    preference: int
    exchange: str

    def __str__(self) -> str:
        return f"{self.preference} {self.exchange}"


def observe_mx(domain: str, names: AuthoritativeLookup) -> tuple[MxRecord, ...]:
    """The domain's MX records (preference, exchange), as every authoritative server gives them."""
    answer = names.lookup(domain, "MX")
    records = []
    for value in answer.values(domain, "MX"):
        preference, exchange = value.split()
        records.append(MxRecord(int(preference), absolute_text(exchange)))
    return tuple(sorted(records))


def parse_mx(entries: Sequence[Sequence[object]]) -> tuple[MxRecord, ...]:
    """MX records as the baseline keeps them: [[10, "mail.example.test"], ...]."""
    return tuple(sorted(MxRecord(int(str(p)), str(e)) for p, e in entries))
