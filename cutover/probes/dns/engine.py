"""Authoritative DNS, observed directly: every zone, every nameserver, RD off.

TTLs are only meaningful straight from an authoritative server: a recursive
resolver counts them down. So each zone's servers (from the inventory, or its
NS set resolved through `dns.resolver`) are asked directly with the RD flag
clear, and every answer keeps its AA flag and rcode so a lame or recursive
server is caught rather than believed.

All zones are observed at once: one asyncio loop, one UDP socket per server
(answers matched to queries by message ID), a bounded number of queries in
flight, each within the operation timeout; a truncated answer is asked again
over TCP.

>>> plan = zone_questions("example.test", ["www", "mail"])
>>> [f"{q} {t}" for q, t in plan][:4]
['example.test SOA', 'example.test A', 'example.test AAAA', 'example.test MX']
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import secrets
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import cast

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset

from cutover.model.inventory import DnsZone
from cutover.probes.connect import ProbeError, no_route_to, peer, refused_by
from cutover.progress import Progress
from cutover.untrusted import shown

__all__ = [
    "MAX_IN_FLIGHT",
    "Answer",
    "Question",
    "RRset",
    "ZoneObservation",
    "ZoneTarget",
    "absolute_text",
    "below",
    "in_zone",
    "mx_targets",
    "observe_answers",
    "observe_zones",
    "rdata_key",
    "seconds_to_wait",
    "serial_compare",
    "zone_of",
    "zone_questions",
    "zone_servers",
]

# The lab measured ~5,200 queries/s with 32 in flight (2,500/s sequential);
# more in flight only queues inside the server.
MAX_IN_FLIGHT = 64
# A UDP query lost on the way is sent again this often within its timeout.
RETRANSMIT_AFTER = 1.0
# EDNS buffer size of DNS Flag Day 2020: big answers fit without IP fragments.
EDNS_PAYLOAD = 1232
APEX_TYPES = ("SOA", "A", "AAAA", "MX")
NAME_TYPES = ("A", "AAAA")
ADDRESS_TYPES = ("A", "AAAA")


Question = tuple[str, str]  # (owner name without the final dot, record type)


@dataclass(frozen=True)
class RRset:
    """One record set from an answer section: `www.example.test CNAME 300 example.test.`."""

    name: str
    rdtype: str
    ttl: int
    values: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.name} {self.rdtype} {self.ttl} {' | '.join(self.values)}"


@dataclass(frozen=True)
class Answer:
    """What one server said to one question (or why it said nothing)."""

    server: str
    qname: str
    rdtype: str
    rcode: str | None = None
    authoritative: bool = False
    answer: tuple[RRset, ...] = ()
    error: str | None = None
    over_tcp: bool = False

    @property
    def question(self) -> str:
        return f"{self.qname} {self.rdtype}"

    @property
    def authoritative_answer(self) -> bool:
        """Answered, NOERROR, AA set: what DNS01 requires."""
        return self.error is None and self.rcode == "NOERROR" and self.authoritative

    @property
    def judgeable(self) -> bool:
        """An authoritative statement, positive or negative (NXDOMAIN is a fact too)."""
        return self.error is None and self.authoritative and self.rcode in ("NOERROR", "NXDOMAIN")

    @property
    def problem(self) -> str | None:
        """Why this is not an authoritative NOERROR answer, in words; None when it is."""
        if self.error is not None:
            return self.error
        if self.rcode == "REFUSED":
            return "REFUSED (the server does not serve this zone)"
        if self.rcode == "NXDOMAIN":
            return "NXDOMAIN (the name does not exist on this server)"
        if self.rcode != "NOERROR":
            return f"rcode {self.rcode}"
        if not self.authoritative:
            return "answered without the AA flag (not authoritative: a resolver or a lame server)"
        return None

    def rrsets(self, name: str, rdtype: str) -> Iterator[RRset]:
        for rrset in self.answer:
            if rrset.name == name and rrset.rdtype == rdtype:
                yield rrset

    def rrset(self, name: str, rdtype: str) -> RRset | None:
        return next(self.rrsets(name, rdtype), None)

    def chain(self) -> tuple[list[str], list[RRset]]:
        """The CNAME chain from the question's name (within this answer), and the rrsets it ends in.

        `www.example.test A` answered `www CNAME example.test.` + `example.test A ...`
        gives (["www.example.test", "example.test"], [the A rrset]).
        """
        names = [self.qname]
        while (alias := self.rrset(names[-1], "CNAME")) is not None and len(names) < 16:
            names.append(absolute_text(alias.values[0]))
        return names, list(self.rrsets(names[-1], self.rdtype))


@dataclass(frozen=True)
class ZoneObservation:
    """Every answer every authoritative server gave for one zone."""

    zone: str
    servers: tuple[str, ...]
    # How the servers were found: "inventory" or the NS names with their addresses.
    found_by: str
    answers: dict[tuple[str, Question], Answer] = field(default_factory=dict)
    # Set when the servers could not be found at all (NS discovery failed).
    error: str | None = None
    # `id.server` CH TXT per server, when it answers one (PowerDNS: server-id).
    identities: dict[str, str] = field(default_factory=dict)

    def answer(self, server: str, qname: str, rdtype: str) -> Answer | None:
        return self.answers.get((server, (qname, rdtype)))

    def own_answers(self) -> list[Answer]:
        """Answers of this zone's servers about names in this zone (not foreign MX targets)."""
        return [
            a
            for (s, _), a in self.answers.items()
            if s in self.servers and in_zone(a.qname, self.zone)
        ]

    def label(self, server: str) -> str:
        """`198.51.100.54 (ns2.example.test)` when the server tells its name."""
        identity = self.identities.get(server)
        return f"{server} ({identity})" if identity else server


@dataclass(frozen=True)
class ZoneTarget:
    """A zone as a check parameter: id `example.test`, JUnit properties zone/servers."""

    zone: DnsZone

    @property
    def id(self) -> str:
        return self.zone.name

    @property
    def name(self) -> str:
        return absolute_text(self.zone.name)

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "zone", self.name
        servers = ",".join(str(a) for a in self.zone.nameservers)
        yield "servers", servers or "NS set"


# --- names ------------------------------------------------------------------


# Every zone id, JUnit property and SQL row asks again for the same few names.
@functools.lru_cache(maxsize=1 << 16)
def absolute_text(name: str) -> str:
    """`Example.TEST.` -> `example.test` (how names are compared and shown here)."""
    return dns.name.from_text(name).to_text(omit_final_dot=True).lower()


def in_zone(name: str, zone: str) -> bool:
    """Is `name` the zone's apex or below it? (Both as `absolute_text` gives them.)

    >>> in_zone("www.example.test", "example.test"), in_zone("badexample.test", "example.test")
    (True, False)
    """
    return name == zone or name.endswith("." + zone)


def below(label: str, zone: str) -> str:
    """A name listed in the inventory: relative to the zone, `@` for the apex, or absolute."""
    if label == "@":
        return absolute_text(zone)
    if label.endswith("."):
        return absolute_text(label)
    return absolute_text(f"{label}.{zone}")


def zone_questions(zone: str, names: Sequence[str]) -> list[Question]:
    """What is asked of every server of a zone: apex SOA/A/AAAA/MX, A/AAAA of each name."""
    apex = absolute_text(zone)
    plan: list[Question] = [(apex, t) for t in APEX_TYPES]
    for label in names:
        owner = below(label, zone)
        plan.extend((owner, t) for t in NAME_TYPES if (owner, t) not in plan)
    return plan


def rdata_key(rdtype: str, text: str, origin: str = ".") -> bytes:
    """Canonical wire form of one record's data, for comparing SQL rows with answers.

    Names compare case-insensitively, relative names are taken relative to `origin`.
    Raises ValueError when the text is not valid data for the type.

    >>> rdata_key("CNAME", "Example.test.") == rdata_key("CNAME", "example.test", "test.")
    False
    >>> rdata_key("CNAME", "Example.test.") == rdata_key("CNAME", "example.test", ".")
    True
    """
    try:
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN,
            dns.rdatatype.from_text(rdtype),
            text,
            dns.name.from_text(origin),
            relativize=False,
        )
    except (dns.exception.DNSException, ValueError) as exc:
        raise ValueError(f"not valid {rdtype} data {text!r}: {exc}") from None
    return rdata.to_digestable(dns.name.root)


def seconds_to_wait(*, lowered_since: float, old_ttl: int, now: float) -> float:
    """How long resolvers may still hold a record cached under its old TTL (<= 0: none).

    A resolver that fetched the record just before it was lowered keeps it
    for the old TTL; the suite only knows the lowering happened no later than
    it first saw it.

    >>> seconds_to_wait(lowered_since=1000.0, old_ttl=3600, now=1600.0)
    3000.0
    """
    return lowered_since + old_ttl - now


def serial_compare(a: int, b: int) -> int | None:
    """RFC 1982 serial arithmetic: -1 if a is older than b, 0 equal, 1 newer, None undefined.

    >>> serial_compare(4294967295, 1)   # wrapped: 1 is newer
    -1
    >>> serial_compare(2024010102, 2024010101)
    1
    """
    if a == b:
        return 0
    half = 2**31
    if (a < b and b - a < half) or (a > b and a - b > half):
        return -1
    if (a < b and b - a > half) or (a > b and a - b < half):
        return 1
    return None


# --- the query engine --------------------------------------------------------


class _Channel(asyncio.DatagramProtocol):
    """One connected UDP socket to one server; answers found by message ID."""

    def __init__(self, server: str, port: int) -> None:
        self.server = server
        self.port = port
        self.transport = cast(asyncio.DatagramTransport, None)  # set by connection_made
        self.pending: dict[int, tuple[dns.message.Message, asyncio.Future[dns.message.Message]]]
        self.pending = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: object) -> None:
        entry = self.pending.get(int.from_bytes(data[:2], "big")) if len(data) >= 12 else None
        if entry is None:
            return
        query, waiter = entry
        try:
            response = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return  # garbage with a matching ID: keep waiting for the real answer
        if not waiter.done() and query.is_response(response):
            waiter.set_result(response)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable arrives for the socket, not for one query.
        where = peer(self.server, self.port)
        if isinstance(exc, ConnectionRefusedError):
            message = refused_by(where)
        elif isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            message = no_route_to(where, exc)
        else:
            message = f"{where} unreachable ({getattr(exc, 'strerror', None) or exc})"
        for _, waiter in self.pending.values():
            if not waiter.done():
                waiter.set_exception(ProbeError(message))

    def new_id(self) -> int:
        while True:
            candidate = secrets.randbelow(65536)
            if candidate not in self.pending:
                return candidate


def _rrsets(section: Iterable[dns.rrset.RRset]) -> tuple[RRset, ...]:
    return tuple(
        RRset(
            name=rrset.name.to_text(omit_final_dot=True).lower(),
            rdtype=dns.rdatatype.to_text(rrset.rdtype),
            ttl=rrset.ttl,
            values=tuple(sorted(rdata.to_text() for rdata in rrset)),
        )
        for rrset in section
    )


class _Engine:
    def __init__(self, timeout: float, max_in_flight: int, port: int = 53) -> None:
        self.timeout = timeout
        self.port = port
        self.slots = asyncio.Semaphore(max_in_flight)
        self.channels: dict[str, _Channel] = {}
        self.opening: dict[str, asyncio.Future[_Channel]] = {}

    async def channel(self, server: str) -> _Channel:
        if server in self.channels:
            return self.channels[server]
        if server not in self.opening:
            loop = asyncio.get_running_loop()
            opened: asyncio.Future[_Channel] = loop.create_future()
            self.opening[server] = opened
            try:
                _, protocol = await loop.create_datagram_endpoint(
                    lambda: _Channel(server, self.port), remote_addr=(server, self.port)
                )
                self.channels[server] = protocol
                opened.set_result(protocol)
            except OSError as exc:
                opened.set_exception(
                    ProbeError(
                        f"cannot open a UDP socket to {peer(server, self.port)}: "
                        f"{exc.strerror or exc}"
                    )
                )
        return await asyncio.shield(self.opening[server])

    async def ask(
        self, server: str, qname: str, rdtype: str, rdclass: str = "IN"
    ) -> tuple[dns.message.Message, bool]:
        """One question, RD off, within the timeout; TC -> asked again over TCP.

        Returns the response and whether it came over TCP.
        """
        loop = asyncio.get_running_loop()
        async with self.slots:
            # The timeout starts when the query is sent, not while it waits for a slot.
            deadline = loop.time() + self.timeout
            channel = await self.channel(server)
            # flags=0: the RD bit off, so a server that is not authoritative
            # cannot recurse on our behalf and hand us a counted-down TTL.
            query = dns.message.make_query(
                qname, rdtype, rdclass, flags=0, use_edns=0, payload=EDNS_PAYLOAD
            )
            query.id = channel.new_id()
            wire = query.to_wire()
            waiter: asyncio.Future[dns.message.Message] = loop.create_future()
            channel.pending[query.id] = (query, waiter)
            try:
                while True:
                    left = deadline - loop.time()
                    if left <= 0:
                        raise ProbeError(
                            f"timed out after {self.timeout:g} s asking {peer(server, self.port)} "
                            f"for {qname} {rdtype}"
                        )
                    channel.transport.sendto(wire)
                    try:
                        response = await asyncio.wait_for(
                            asyncio.shield(waiter), min(RETRANSMIT_AFTER, left)
                        )
                        break
                    except TimeoutError:
                        continue
            finally:
                del channel.pending[query.id]
            if response.flags & dns.flags.TC:
                return await self._over_tcp(query, server, deadline - loop.time()), True
            return response, False

    async def _over_tcp(
        self, query: dns.message.Message, server: str, left: float
    ) -> dns.message.Message:
        where = f"{peer(server, self.port)} over TCP (the UDP answer was truncated)"
        if left <= 0:
            raise ProbeError(f"timed out after {self.timeout:g} s before asking {where}")
        try:
            response = await dns.asyncquery.tcp(query, server, timeout=left, port=self.port)
        except dns.exception.Timeout:
            raise ProbeError(f"timed out after {self.timeout:g} s asking {where}") from None
        except (OSError, dns.exception.DNSException) as exc:
            raise ProbeError(f"{where} failed: {exc}") from None
        return response

    async def answer(self, server: str, question: Question) -> Answer:
        qname, rdtype = question
        try:
            response, over_tcp = await self.ask(server, qname, rdtype)
        except ProbeError as exc:
            return Answer(server, qname, rdtype, error=str(exc))
        return Answer(
            server=server,
            qname=qname,
            rdtype=rdtype,
            rcode=dns.rcode.to_text(response.rcode()),
            authoritative=bool(response.flags & dns.flags.AA),
            answer=_rrsets(response.answer),
            over_tcp=over_tcp,
        )

    async def identity(self, server: str) -> str | None:
        try:
            response, _ = await self.ask(server, "id.server", "TXT", "CH")
        except ProbeError:
            return None
        for rrset in response.answer:
            for rdata in rrset:
                strings = getattr(rdata, "strings", ())
                return shown(b"".join(strings)) or None
        return None

    def close(self) -> None:
        for channel in self.channels.values():
            channel.transport.close()


class _Tally:
    """Questions asked and answered so far, for a `progress` callback (rounds add questions)."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.done = 0
        self.total = 0

    def asking(self, count: int) -> None:
        self.total += count
        if self.progress is not None and count:
            self.progress(self.done, self.total)

    def answered(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


async def _answers(
    engine: _Engine, requests: Iterable[tuple[str, Question]], tally: _Tally | None = None
) -> dict[tuple[str, Question], Answer]:
    keys = list(dict.fromkeys(requests))
    if tally is None or tally.progress is None:
        results = await asyncio.gather(*(engine.answer(server, q) for server, q in keys))
        return dict(zip(keys, results, strict=True))

    async def counted(server: str, question: Question) -> Answer:
        answer = await engine.answer(server, question)
        tally.answered()
        return answer

    tally.asking(len(keys))
    results = await asyncio.gather(*(counted(server, q) for server, q in keys))
    return dict(zip(keys, results, strict=True))


def observe_answers(
    requests: Iterable[tuple[str, Question]],
    *,
    timeout: float,
    max_in_flight: int = MAX_IN_FLIGHT,
    port: int = 53,
    progress: Progress | None = None,
) -> dict[tuple[str, Question], Answer]:
    """Ask each (server, (name, type)) directly, all concurrently; never raises for a server.

    `progress` hears (answered, asked) as answers come in.

    >>> observe_answers([("198.51.100.53", ("example.test", "SOA"))], timeout=5)  # doctest: +SKIP
    """

    async def run() -> dict[tuple[str, Question], Answer]:
        engine = _Engine(timeout, max_in_flight, port)
        try:
            return await _answers(engine, requests, _Tally(progress))
        finally:
            engine.close()

    return asyncio.run(run())


# --- zones -------------------------------------------------------------------


async def _discover(
    zone: str, resolver: dns.asyncresolver.Resolver, cache: dict[str, list[str]]
) -> tuple[list[str], str]:
    """The zone's NS names and their addresses, through the resolver (addresses only)."""
    try:
        answer = await resolver.resolve(zone, "NS")
    except dns.exception.DNSException as exc:
        raise ProbeError(
            f"cannot find the nameservers of {zone}: NS lookup failed: {exc}"
        ) from None
    servers: list[str] = []
    notes = []
    for ns in sorted(str(rdata.target).rstrip(".").lower() for rdata in answer):
        if ns not in cache:
            addresses: list[str] = []
            for family in ADDRESS_TYPES:
                try:
                    found = await resolver.resolve(ns, family)
                    addresses.extend(rdata.to_text() for rdata in found)
                except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                    continue
                except dns.exception.DNSException as exc:
                    raise ProbeError(f"cannot resolve nameserver {ns} of {zone}: {exc}") from None
            cache[ns] = addresses
        if not cache[ns]:
            raise ProbeError(f"nameserver {ns} of {zone} has no A/AAAA address")
        notes.append(f"{ns}={'/'.join(cache[ns])}")
        servers.extend(a for a in cache[ns] if a not in servers)
    return servers, "NS " + ", ".join(notes)


def _resolver(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, timeout: float
) -> dns.asyncresolver.Resolver:
    if address is None:
        resolver = dns.asyncresolver.Resolver()  # the host's resolv.conf
    else:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [str(address)]
    resolver.lifetime = timeout
    resolver.timeout = timeout
    return resolver


def observe_zones(
    zones: Sequence[DnsZone],
    *,
    resolver: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
    timeout: float,
    max_in_flight: int = MAX_IN_FLIGHT,
    progress: Progress | None = None,
) -> dict[str, ZoneObservation]:
    """Observe every zone on every one of its authoritative servers, concurrently.

    Round one asks the fixed questions (`zone_questions`); round two asks for
    the addresses of MX targets that were not asked already, on the servers of
    the inventory zone they belong to. The resolver is used only to find the
    servers of zones that list none. `progress` hears (answered, asked); round
    two adds to what is asked.
    """
    return asyncio.run(_observe_zones(zones, resolver, timeout, max_in_flight, progress))


async def _observe_zones(
    zones: Sequence[DnsZone],
    resolver_address: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
    timeout: float,
    max_in_flight: int,
    progress: Progress | None,
) -> dict[str, ZoneObservation]:
    engine = _Engine(timeout, max_in_flight)
    tally = _Tally(progress)
    try:
        servers_of, found_by, errors = await _servers(zones, resolver_address, timeout)
        requests = [
            (server, question)
            for zone in zones
            for question in zone_questions(zone.name, zone.names)
            for server in servers_of.get(absolute_text(zone.name), [])
        ]
        answers = await _answers(engine, requests, tally)
        answers.update(await _answers(engine, _mx_target_requests(answers, servers_of), tally))
        every_server = sorted({s for servers in servers_of.values() for s in servers})
        names = await asyncio.gather(*(engine.identity(s) for s in every_server))
    finally:
        engine.close()
    identities = {s: n for s, n in zip(every_server, names, strict=True) if n}
    # File each answer under the zone it was asked for: its own zone, and the
    # zones whose MX points at it (their targets may live in another zone).
    filed: dict[str, dict[tuple[str, Question], Answer]] = {}
    mx_of: dict[str, set[str]] = {}
    for answer in answers.values():
        if answer.rdtype == "MX" and answer.judgeable:
            for target in mx_targets(answer):
                mx_of.setdefault(target, set()).add(answer.qname)
    for key, answer in answers.items():
        owners = set(mx_of.get(answer.qname, ()))
        own_zone = zone_of(answer.qname, servers_of)
        if own_zone is not None and key[0] in servers_of[own_zone]:
            owners.add(own_zone)
        for owner in owners:
            filed.setdefault(owner, {})[key] = answer
    observations = {}
    for zone in zones:
        name = absolute_text(zone.name)
        servers = servers_of.get(name, [])
        observations[name] = ZoneObservation(
            zone=name,
            servers=tuple(servers),
            found_by=found_by.get(name, "inventory"),
            answers=filed.get(name, {}),
            error=errors.get(name),
            identities={s: identities[s] for s in servers if s in identities},
        )
    return observations


async def _servers(
    zones: Sequence[DnsZone],
    resolver_address: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
    timeout: float,
) -> tuple[dict[str, list[str]], dict[str, str], dict[str, str]]:
    servers_of: dict[str, list[str]] = {}
    found_by: dict[str, str] = {}
    errors: dict[str, str] = {}
    undiscovered = []
    for zone in zones:
        name = absolute_text(zone.name)
        if zone.nameservers:
            servers_of[name] = list(dict.fromkeys(str(a) for a in zone.nameservers))
        else:
            undiscovered.append(name)
    if undiscovered:
        resolver = _resolver(resolver_address, timeout)
        cache: dict[str, list[str]] = {}
        found = await asyncio.gather(
            *(_discover(name, resolver, cache) for name in undiscovered), return_exceptions=True
        )
        for name, result in zip(undiscovered, found, strict=True):
            if isinstance(result, ProbeError):
                errors[name] = str(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                servers_of[name], found_by[name] = result
    return servers_of, found_by, errors


def zone_servers(
    zones: Sequence[DnsZone],
    *,
    resolver: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
    timeout: float,
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Each zone's authoritative servers (inventory, or NS set through the resolver).

    Returns (zone -> server addresses, zone -> why its servers are unknown).
    """
    servers_of, _, errors = asyncio.run(_servers(zones, resolver, timeout))
    return servers_of, errors


def zone_of(name: str, zones: Container[str]) -> str | None:
    """The longest of `zones` that contains `name` (walking up its labels).

    >>> zone_of("www.shop.example.test", {"example.test", "shop.example.test"})
    'shop.example.test'
    """
    labels = name.split(".")
    for start in range(len(labels)):
        candidate = ".".join(labels[start:])
        if candidate in zones:
            return candidate
    return None


def mx_targets(answer: Answer) -> list[str]:
    """Exchange names of an MX answer, without the null MX (RFC 7505 `0 .`)."""
    targets = []
    for rrset in answer.rrsets(answer.qname, "MX"):
        for value in rrset.values:
            exchange = value.split()[-1]
            if exchange != ".":
                targets.append(absolute_text(exchange))
    return targets


def _mx_target_requests(
    answers: dict[tuple[str, Question], Answer], servers_of: dict[str, list[str]]
) -> Iterator[tuple[str, Question]]:
    for (_, (_, rdtype)), answer in list(answers.items()):
        if rdtype != "MX" or not answer.judgeable:
            continue
        for target in mx_targets(answer):
            zone = zone_of(target, servers_of)
            for server in servers_of.get(zone, []) if zone else []:
                for family in ADDRESS_TYPES:
                    if (server, (target, family)) not in answers:
                        yield server, (target, family)
