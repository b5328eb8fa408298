"""Zones, observed: which servers are authoritative, what is asked of them, answers filed.

Each zone's servers come from the inventory, or from its NS set resolved
through `dns.resolver` (`discover_servers`, once per pair: the DNS and the
outbound observations share the result). `observe_zones` then asks every
server of every zone the same questions (`zone_questions`) in one run of the
engine (`cutover.probes.dns.engine`), and files each answer under the zone it
was asked for.

>>> plan = zone_questions("example.test", ["www", "mail"])
>>> [f"{q} {t}" for q, t in plan][:4]
['example.test SOA', 'example.test A', 'example.test AAAA', 'example.test MX']
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import dns.asyncresolver
import dns.exception
import dns.resolver

from cutover.model.inventory import DnsZone
from cutover.probes.connect import ProbeError
from cutover.probes.dns.engine import (
    MAX_IN_FLIGHT,
    Answer,
    Engine,
    Tally,
    ask_all,
    cycles_collected_after,
    mx_targets,
)
from cutover.probes.dns.names import Question, below, in_zone, zone_name, zone_of
from cutover.progress import Progress

__all__ = [
    "FollowUp",
    "ZoneObservation",
    "ZoneServers",
    "discover_servers",
    "observe_zones",
    "observe_zones_and",
    "seconds_to_wait",
    "serial_compare",
    "zone_questions",
]

APEX_TYPES = ("SOA", "A", "AAAA", "MX")
NAME_TYPES = ("A", "AAAA")
ADDRESS_TYPES = ("A", "AAAA")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


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

    def unjudgeable(self) -> list[Answer]:
        """Own answers that are no authoritative statement (`Answer.problem` says why)."""
        return [a for a in self.own_answers() if not a.judgeable]

    def label(self, server: str) -> str:
        """`198.51.100.54 (ns2.example.test)` when the server tells its name."""
        identity = self.identities.get(server)
        return f"{server} ({identity})" if identity else server


@dataclass(frozen=True)
class ZoneServers:
    """Each zone's authoritative servers, keyed by `zone_name`.

    `found_by` holds the NS names and addresses of zones found through the
    resolver (the others are "inventory"); `errors` why a zone's servers
    could not be found.
    """

    servers_of: dict[str, list[str]] = field(default_factory=dict)
    found_by: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def zone_questions(zone: str, names: Sequence[str]) -> list[Question]:
    """What is asked of every server of a zone: apex SOA/A/AAAA/MX, A/AAAA of each name."""
    apex = zone_name(zone)
    plan: list[Question] = [(apex, t) for t in APEX_TYPES]
    for label in names:
        owner = below(label, zone)
        plan.extend((owner, t) for t in NAME_TYPES if (owner, t) not in plan)
    return plan


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


# --- discovery ---------------------------------------------------------------


def discover_servers(
    zones: Sequence[DnsZone], *, resolver: Address | None, timeout: float
) -> ZoneServers:
    """Each zone's authoritative servers: the inventory's, or its NS set through the resolver.

    The resolver (None: the host's resolv.conf) is asked only for zones that
    list no nameservers; a zone whose NS set cannot be resolved gets an error.
    """
    return asyncio.run(_discover_all(zones, resolver, timeout))


async def _discover_all(
    zones: Sequence[DnsZone], resolver_address: Address | None, timeout: float
) -> ZoneServers:
    found = ZoneServers()
    undiscovered = []
    for zone in zones:
        name = zone_name(zone.name)
        if zone.nameservers:
            found.servers_of[name] = list(dict.fromkeys(str(a) for a in zone.nameservers))
        else:
            undiscovered.append(name)
    if undiscovered:
        resolver = _resolver(resolver_address, timeout)
        cache: dict[str, list[str]] = {}
        results = await asyncio.gather(
            *(_discover(name, resolver, cache) for name in undiscovered), return_exceptions=True
        )
        for name, result in zip(undiscovered, results, strict=True):
            if isinstance(result, ProbeError):
                found.errors[name] = str(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                found.servers_of[name], found.found_by[name] = result
    return found


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


def _resolver(address: Address | None, timeout: float) -> dns.asyncresolver.Resolver:
    if address is None:
        resolver = dns.asyncresolver.Resolver()  # the host's resolv.conf
    else:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [str(address)]
    resolver.lifetime = timeout
    resolver.timeout = timeout
    return resolver


# --- observing the zones ---------------------------------------------------------


# A blocking read started together with the zones' questions (in a worker thread):
# the (server, question) pairs it returns are asked in the same run of the engine.
FollowUp = Callable[[], Iterable[tuple[str, Question]]]


def observe_zones(
    zones: Sequence[DnsZone],
    servers: ZoneServers,
    *,
    timeout: float,
    max_in_flight: int = MAX_IN_FLIGHT,
    progress: Progress | None = None,
) -> dict[str, ZoneObservation]:
    """Observe every zone on every one of its authoritative servers, concurrently.

    `servers` is what `discover_servers` found for these zones. Round one
    asks the fixed questions (`zone_questions`); round two asks for the
    addresses of MX targets that were not asked already, on the servers of
    the inventory zone they belong to. `progress` hears (answered, asked);
    round two adds to what is asked.
    """
    seen, _ = observe_zones_and(
        zones, servers, (), timeout=timeout, max_in_flight=max_in_flight, progress=progress
    )
    return seen


def observe_zones_and(
    zones: Sequence[DnsZone],
    servers: ZoneServers,
    follow_ups: Sequence[FollowUp],
    *,
    timeout: float,
    max_in_flight: int = MAX_IN_FLIGHT,
    progress: Progress | None = None,
) -> tuple[dict[str, ZoneObservation], dict[tuple[str, Question], Answer]]:
    """`observe_zones`, and in the same batch what each of `follow_ups` asks.

    Every follow-up runs in a worker thread while the zones' questions are
    in flight (a database read, say) and must not raise; the questions it
    returns are asked as soon as it returns, each (server, question) once in
    the whole run. Returns
    the zones' observations (only the zones' own questions are filed there)
    and every answer of the run, the follow-ups' included.
    """
    with cycles_collected_after():
        return asyncio.run(
            _observe_zones(zones, servers, follow_ups, timeout, max_in_flight, progress)
        )


async def _observe_zones(
    zones: Sequence[DnsZone],
    found: ZoneServers,
    follow_ups: Sequence[FollowUp],
    timeout: float,
    max_in_flight: int,
    progress: Progress | None,
) -> tuple[dict[str, ZoneObservation], dict[tuple[str, Question], Answer]]:
    servers_of = found.servers_of
    names = [zone_name(zone.name) for zone in zones]
    engine = Engine(timeout, max_in_flight)
    tally = Tally(progress)
    loop = asyncio.get_running_loop()
    answers: dict[tuple[str, Question], Answer] = {}
    asked: set[tuple[str, Question]] = set()

    async def ask(requests: Iterable[tuple[str, Question]]) -> None:
        fresh = [key for key in dict.fromkeys(requests) if key not in asked]
        asked.update(fresh)
        answers.update(await ask_all(engine, fresh, tally))

    own: set[tuple[str, Question]] = set()

    async def zone_rounds() -> None:
        requests = [
            (server, question)
            for zone, name in zip(zones, names, strict=True)
            for question in zone_questions(zone.name, zone.names)
            for server in servers_of.get(name, [])
        ]
        await ask(requests)
        # Round two from the zones' own answers (a follow-up's MX answers are not the zones').
        targets = list(_mx_target_requests({k: answers[k] for k in requests}, servers_of))
        await ask(targets)
        own.update(requests + targets)

    async def follow(follow_up: FollowUp) -> None:
        await ask(await loop.run_in_executor(None, follow_up))

    every_server = sorted({s for servers in servers_of.values() for s in servers})
    said: list[str | None] = []

    async def identify() -> None:
        said.extend(await asyncio.gather(*(engine.identity(s) for s in every_server)))

    try:
        await asyncio.gather(identify(), zone_rounds(), *(follow(f) for f in follow_ups))
    finally:
        engine.close()
    identities = {s: n for s, n in zip(every_server, said, strict=True) if n}
    # A zone question a follow-up asked first is answered once: wait for every answer, then file.
    filed = _filed({key: answers[key] for key in own}, servers_of)
    observations = {}
    for name in names:
        servers = servers_of.get(name, [])
        observations[name] = ZoneObservation(
            zone=name,
            servers=tuple(servers),
            found_by=found.found_by.get(name, "inventory"),
            answers=filed.get(name, {}),
            error=found.errors.get(name),
            identities={s: identities[s] for s in servers if s in identities},
        )
    return observations, answers


def _filed(
    answers: dict[tuple[str, Question], Answer], servers_of: dict[str, list[str]]
) -> dict[str, dict[tuple[str, Question], Answer]]:
    """Each answer under the zone it was asked for: its own zone, and the zones whose MX
    points at it (their targets may live in another zone)."""
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
    return filed


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
