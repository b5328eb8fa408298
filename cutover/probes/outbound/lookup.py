"""Asking the authoritative servers of the zone a name belongs to, and only those.

Every name is asked of all the authoritative servers of the inventory zone it
belongs to (RD off, AA required: `cutover.probes.dns.engine.observe_answers`),
and an answer counts only when those servers agree; a name outside every
known zone goes to `dns.resolver` if the inventory names one, and is an error
otherwise, so nothing is ever asked of a server the inventory does not list.

>>> names = AuthoritativeLookup({"example.test": ["198.51.100.53"]}, timeout=5)  # doctest: +SKIP
>>> names.lookup("example.test", "MX").values()                                  # doctest: +SKIP
['10 mail.example.test.']
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from cutover.model.inventory import DnsZone
from cutover.probes.connect import ProbeError
from cutover.probes.dns.engine import Answer, RRset, observe_answers
from cutover.probes.dns.names import absolute_text, zone_name, zone_of
from cutover.probes.dns.zones import ZoneServers, discover_servers

__all__ = ["REVERSE_SUFFIX", "AuthoritativeLookup", "Lookup", "lookup_for", "txt_bytes"]

# A CNAME chain longer than this is a loop or a mistake (pyspf stops at 10 too).
MAX_CNAMES = 10
# The suffix every reverse name lives under, by IP version.
REVERSE_SUFFIX = {4: "in-addr.arpa", 6: "ip6.arpa"}


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
        self.servers_of = {zone_name(z): list(s) for z, s in servers_of.items()}
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

    def prefetch(self, questions: Sequence[tuple[str, str]]) -> None:
        """Ask many (name, type) at once: one concurrent round over all their servers.

        The answers fill the cache that `lookup` reads (1,000 mail domains'
        MX: one engine round, not 1,000). A name outside every known zone, or
        already asked, is left to `lookup`.
        """
        wanted: dict[tuple[str, str], tuple[str, list[str]]] = {}
        with self._lock:
            cached = set(self._cache)
        for name, rdtype in questions:
            key = (absolute_text(name), rdtype.upper())
            if key in cached or key in wanted:
                continue
            found = self.servers_for(key[0])
            if found is not None and found[1]:
                wanted[key] = found
        if not wanted:
            return
        answers = observe_answers(
            [(server, key) for key, (_, servers) in wanted.items() for server in servers],
            timeout=self.timeout,
            port=self.port,
        )
        results: dict[tuple[str, str], Lookup | ProbeError] = {}
        for key, (zone, servers) in wanted.items():
            try:
                results[key] = _agreed(key, zone, servers, answers)
            except ProbeError as exc:
                results[key] = exc
        with self._lock:
            for key, result in results.items():
                self._cache.setdefault(key, result)

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
        key = (name, rdtype)
        answers = observe_answers([(s, key) for s in servers], timeout=self.timeout, port=self.port)
        return _agreed(key, zone, servers, answers)

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


def _agreed(
    key: tuple[str, str],
    zone: str,
    servers: list[str],
    answers: dict[tuple[str, tuple[str, str]], Answer],
) -> Lookup:
    """The one answer every server of the zone gave for `key`, or `ProbeError` naming them."""
    name, rdtype = key
    seen: dict[tuple[str, frozenset[tuple[str, str, tuple[str, ...]]]], list[str]] = {}
    for server in servers:
        answer = answers[(server, key)]
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


def _alias_of(answer: Lookup, name: str) -> str | None:
    targets = answer.values(name, "CNAME")
    return absolute_text(targets[0]) if targets else None


def _describe(content: frozenset[tuple[str, str, tuple[str, ...]]]) -> str:
    return " | ".join(f"{n} {t} {' '.join(v)}" for n, t, v in sorted(content)) or "(no records)"


def lookup_for(
    servers: ZoneServers,
    *,
    mail_domains: Sequence[str],
    reverse_servers: Sequence[str],
    new_ips: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address],
    resolver: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
    timeout: float,
) -> AuthoritativeLookup:
    """The lookup for a pair: its zones, its mail domains, the new IPs' reverse zones.

    `servers` is what `discover_servers` found for the inventory's zones
    (shared with the DNS observations); a mail domain outside all of them has
    its NS set found through the resolver here. `reverse_servers` (if any)
    answer for the reverse zones of every address of the new host
    (`in-addr.arpa` for IPv4, `ip6.arpa` for IPv6). Raises `ProbeError` when
    the servers of a zone cannot be found.
    """
    known = {*servers.servers_of, *servers.errors}
    extra = [DnsZone(name=d) for d in mail_domains if zone_of(zone_name(d), known) is None]
    more = discover_servers(extra, resolver=resolver, timeout=timeout) if extra else ZoneServers()
    errors = [*servers.errors.values(), *more.errors.values()]
    if errors:
        raise ProbeError("; ".join(errors))
    servers_of = {**servers.servers_of, **more.servers_of}
    if reverse_servers:
        for version in sorted({ip.version for ip in new_ips}):
            servers_of[REVERSE_SUFFIX[version]] = list(reverse_servers)
    found = str(resolver) if resolver is not None else None
    return AuthoritativeLookup(servers_of, timeout=timeout, resolver=found)


def txt_bytes(value: str) -> bytes:
    """A TXT record's strings, concatenated (RFC 7208 3.3), from its presentation form."""
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, value)
    return b"".join(getattr(rdata, "strings", ()))
