"""DNS observations: every zone on every authoritative server, the SQL rows, the TTL history.

Semantics: docs/semantics.md, "DNS". Each zone's servers are found once per
pair (`zone_servers`, shared with the outbound observations); every zone is
then observed once per session on every one of them, concurrently
(`zone_observations`); each check of checks/test_dns.py judges one zone.

The TTL history DNS03 needs is kept in the baseline across runs: when the
suite first saw each record lowered on every server, and the TTL it saw
before (`ttl_lowerings`). So is the DNS switch DECOM01 needs: when an
acceptance or decommission run first saw every server point the zone at the
new IP, and the highest TTL its records had before (`dns_switches`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from checks.record import RecordContext, Records, recorder
from cutover.model.baseline import BaselineError
from cutover.model.phases import PhaseExpectations, Side
from cutover.model.settings import ProbeSettings, settings_for
from cutover.probes.connect import ProbeError
from cutover.probes.dns.engine import Answer, mx_targets, observe_answers
from cutover.probes.dns.names import Question, in_zone, zone_name
from cutover.probes.dns.sql import SqlZone, read_zones
from cutover.probes.dns.zones import (
    FollowUp,
    ZoneObservation,
    ZoneServers,
    discover_servers,
    observe_zones,
    observe_zones_and,
    seconds_to_wait,
)

if TYPE_CHECKING:
    from checks.dns_records import Sides
    from checks.progress import Stage
    from cutover.model.inventory import DnsSql, DnsZone, Inventory, Server

__all__ = [
    "ADDRESS_RECORD",
    "DnsObserved",
    "Lowering",
    "Switch",
    "address_types",
    "discover_zone_servers",
    "duration",
    "iso",
    "moving_ttls",
    "new_ips",
    "pointed_addresses",
    "record_dns_switch",
    "record_ttl_history",
    "side_ips",
    "switch_wait",
]

# Record types whose TTL decides how fast clients follow the move.
MOVING_TYPES = ("A", "AAAA", "MX", "CNAME")
# The record that carries an address of each IP version (RFC 3596: AAAA for IPv6).
ADDRESS_RECORD = {4: "A", 6: "AAAA"}


def side_ips(server: Server, rdtype: str) -> set[str]:
    """The host's addresses an `rdtype` record (A: IPv4, AAAA: IPv6) may hold.

    >>> from cutover.model.inventory import Server
    >>> sorted(side_ips(Server(address=["203.0.113.1", "2001:db8::1"]), "AAAA"))
    ['2001:db8::1']
    """
    return {str(a) for a in server.addresses if ADDRESS_RECORD[a.version] == rdtype}


def address_types(inventory: Inventory) -> tuple[str, ...]:
    """The address records DNS05 and the DNS switch judge: those of the families the
    inventory lists an address of (A for IPv4, AAAA for IPv6; old and new together).

    A family the inventory lists no address of is not judged: its records point at
    addresses the suite cannot place (an IPv4-only inventory of a host that also has
    AAAA records, or an IPv6-only one of a host that also has A records).
    """
    versions = {a.version for server in (inventory.old, inventory.new) for a in server.addresses}
    return tuple(ADDRESS_RECORD[v] for v in sorted(versions))


@pytest.fixture(scope="session")
def zone_servers(inventory: Inventory) -> ZoneServers:
    """Each zone's authoritative servers (inventory, or NS set): found once per pair."""
    return discover_zone_servers(inventory, settings_for(inventory))


def discover_zone_servers(inventory: Inventory, settings: ProbeSettings) -> ZoneServers:
    """The servers of the pair's dns.zones (`zone_servers`; the recorders call it directly)."""
    return discover_servers(
        inventory.dns.zones, resolver=inventory.dns.resolver, timeout=settings.operation_timeout
    )


@dataclass(frozen=True)
class DnsObserved:
    """One run of the engine: the zones, and (when DNS06 runs) the SQL rows and their answers."""

    zones: dict[str, ZoneObservation]
    # (zone, nameserver) -> the rows, or why they are unknown; None: not read in this run.
    sql: dict[tuple[str, str], SqlZone | str] | None
    # Every answer of the run: the zones' questions and the SQL rows' (name, type).
    answers: dict[tuple[str, Question], Answer]


@pytest.fixture(scope="session")
def dns_observed(
    request: pytest.FixtureRequest,
    inventory: Inventory,
    zone_servers: ZoneServers,
    observing: Callable[[str, str], Stage],
    records: Records,
    expect: PhaseExpectations,
) -> DnsObserved:
    """Every zone on every authoritative server, observed once, concurrently; in the same
    batch, when a selected check compares SQL rows (DNS06), each SQL-backed nameserver's
    rows, read once per nameserver while the zones' questions are in flight, and what the
    server serves for every (name, type) they hold.

    After the DNS switch (acceptance, decommission), the first run that sees
    every server point a zone at the new IP records when (`dns_switches`).
    """
    zones = inventory.dns.zones
    listed = {str(a) for zone in zones for a in zone.nameservers}
    servers = f"{len(listed)} server{'s' * (len(listed) != 1)}"
    if not all(zone.nameservers for zone in zones):
        servers = "their NS servers"
    settings = settings_for(inventory)
    wants_sql = inventory.dns.sql and any(
        "sql_served" in getattr(item, "fixturenames", ()) for item in request.session.items
    )
    reads: list[dict[tuple[str, str], SqlZone | str]] = []
    follow_ups = []
    for access in inventory.dns.sql if wants_sql else ():
        served_by = _zones_served_by(str(access.nameserver), zones, zone_servers)
        if served_by:
            reads.append({})
            follow_ups.append(_sql_follow_up(access, served_by, settings, reads[-1]))
    label = f"DNS: {len(zones)} zones on {servers}" + (" and their SQL rows" if follow_ups else "")
    with observing(label, "questions") as progress:
        seen, answers = observe_zones_and(
            zones,
            zone_servers,
            follow_ups,
            timeout=settings.operation_timeout,
            progress=progress,
        )
    if expect.dns_points_to == frozenset({Side.NEW}):
        # After the switch, any run that observes the zones dates it (DECOM01). A
        # baseline that cannot be used is DECOM01's failure, not every DNS check's.
        with contextlib.suppress(BaselineError):
            record_dns_switch(
                seen, new_ips(inventory), records, time.time(), address_types(inventory)
            )
    sql = {key: rows for read in reads for key, rows in read.items()} if wants_sql else None
    return DnsObserved(seen, sql, answers)


@pytest.fixture(scope="session")
def zone_observations(dns_observed: DnsObserved) -> dict[str, ZoneObservation]:
    """Every zone on every authoritative server, observed once, concurrently (`dns_observed`)."""
    return dns_observed.zones


@pytest.fixture(scope="session")
def sql_sources(
    sql_zones: dict[tuple[str, str], SqlZone | str],
) -> dict[str, dict[str, SqlZone | str]]:
    """zone -> nameserver -> its rows (or why they are unknown): `sql_zones` by zone, once."""
    by_zone: dict[str, dict[str, SqlZone | str]] = {}
    for (zone, nameserver), rows in sql_zones.items():
        by_zone.setdefault(zone, {})[nameserver] = rows
    return by_zone


@pytest.fixture(scope="session")
def dns_sides(inventory: Inventory) -> Sides:
    """The addresses of old and new each address record may hold (DNS05), built once."""
    from checks.dns_records import sides_of  # it builds on this module's side_ips

    return sides_of(inventory)


def new_ips(inventory: Inventory) -> set[str]:
    """Every address of the new host (the DNS switch is complete when records hold only these)."""
    return {str(a) for a in inventory.new.addresses}


def moving_ttls(seen: ZoneObservation, server: str) -> Iterator[tuple[tuple[str, str], int]]:
    """(name, type) -> TTL of every moving record of the zone this server returned."""
    found: dict[tuple[str, str], int] = {}
    for answer in seen.own_answers():
        if answer.server != server or not answer.judgeable:
            continue
        for rrset in answer.answer:
            if rrset.rdtype in MOVING_TYPES and in_zone(rrset.name, seen.zone):
                found[(rrset.name, rrset.rdtype)] = rrset.ttl
    yield from sorted(found.items())


# --- the TTL history (DNS03) -----------------------------------------------------


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


def duration(seconds: float) -> str:
    """`1h02m03s`, `4m05s` (never negative)."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@dataclass(frozen=True)
class Lowering:
    """One record lowered on every server, and what the baseline knows of its history."""

    name: str
    rdtype: str
    ttl: int
    first_seen: float  # when the suite first saw it lowered on every server
    old_ttl: int | None  # the TTL seen before that, if ever


@pytest.fixture(scope="session")
def ttl_lowerings(
    inventory: Inventory, zone_observations: dict[str, ZoneObservation], records: Records
) -> dict[str, list[Lowering]]:
    """Per zone, the lowered records with their history; the baseline is updated in one go."""
    lowerings = record_ttl_history(zone_observations, inventory.dns.ttl, records)
    if records.recording:
        records.recorded("dns")
    return lowerings


def record_ttl_history(
    zone_observations: dict[str, ZoneObservation], limit: int, records: Records
) -> dict[str, list[Lowering]]:
    """Write what is seen now to the TTL history; per zone, the lowered records with theirs.

    Records still above the limit are written to `dns_ttl_high` (TTL and when);
    a record seen lowered on every server for the first time since it was last
    seen high gets `dns_lowered` (first seen, old TTL). Zones that could not be
    observed on every server are left out: nothing can be said of them.
    """
    now = iso(time.time())
    high_now: dict[str, Any] = {}
    lowered_now: dict[str, tuple[str, str, str, int]] = {}
    for zone, seen in zone_observations.items():
        if seen.error or not seen.servers or seen.unjudgeable():
            continue
        for (name, rdtype), ttl in _highest_ttls(seen).items():
            entry = f"{zone}|{name}|{rdtype}"
            if ttl > limit:
                high_now[entry] = {"ttl": ttl, "seen": now}
            else:
                lowered_now[entry] = (zone, name, rdtype, ttl)
    if high_now:
        records.write_many("dns_ttl_high", high_now)
    highs = records.section("dns_ttl_high")
    known = records.section("dns_lowered")
    first, again = {}, {}
    for entry, (_, _, _, ttl) in lowered_now.items():
        high = highs.get(entry)
        fresh = {"first_seen": now, "old_ttl": high["ttl"] if high else None, "ttl": ttl}
        if entry not in known:
            first[entry] = fresh
        elif high and _epoch(high["seen"]) > _epoch(known[entry]["first_seen"]):
            again[entry] = fresh  # raised and lowered again since: the clock restarts
    # The values now stored come back: with keep_existing, when runs race, the
    # earliest sighting wins.
    if first:
        known.update(records.baseline.record_many("dns_lowered", first, keep_existing=True))
    if again:
        known.update(records.baseline.record_many("dns_lowered", again))
    lowerings: dict[str, list[Lowering]] = {}
    for entry, (zone, name, rdtype, ttl) in sorted(lowered_now.items()):
        history = known[entry]
        lowerings.setdefault(zone, []).append(
            Lowering(name, rdtype, ttl, _epoch(history["first_seen"]), history.get("old_ttl"))
        )
    return lowerings


def _highest_ttls(seen: ZoneObservation) -> dict[tuple[str, str], int]:
    """(name, type) -> the highest TTL any server of the zone gives it."""
    highest: dict[tuple[str, str], int] = {}
    for server in seen.servers:
        for key, ttl in moving_ttls(seen, server):
            highest[key] = max(ttl, highest.get(key, 0))
    return highest


@recorder("dns", sections=("dns",))
def record_dns(ctx: RecordContext) -> None:
    """The TTL history of every zone, when no check of this preflight observed the zones."""
    inventory = ctx.inventory
    settings = settings_for(inventory)
    servers = discover_zone_servers(inventory, settings)
    seen = observe_zones(inventory.dns.zones, servers, timeout=settings.operation_timeout)
    record_ttl_history(seen, inventory.dns.ttl, ctx.records)


# --- the DNS switch (DECOM01) --------------------------------------------------


@dataclass(frozen=True)
class Switch:
    """When the suite first saw a zone point at the new IP on every server."""

    zone: str
    switched: float  # first seen switched (epoch seconds)
    old_ttl: int  # the highest TTL its moving records had before the switch
    old_ttl_from: str  # "TTL history" or "highest TTL observed at the switch"


def switch_wait(switch: Switch, allowance: int, now: float) -> float:
    """Seconds until no resolver should still hand out the old records (<= 0: none).

    A resolver that fetched a record just before the switch keeps it for the
    old TTL, and (RFC 8767 serve-stale) may keep serving it for the allowance
    after that when it cannot refresh.

    >>> switch_wait(Switch("example.test", 1000.0, 300, "TTL history"), 600, 1500.0)
    400.0
    """
    return seconds_to_wait(
        lowered_since=switch.switched, old_ttl=switch.old_ttl + allowance, now=now
    )


def pointed_addresses(
    seen: ZoneObservation, rdtypes: tuple[str, ...] = ("A", "AAAA")
) -> set[str] | None:
    """Every address the apex and the MX targets resolve to on every server (`rdtypes`:
    the address records considered, default A and AAAA).

    None when an answer among them cannot be judged (DNS01 says why) or a
    server is missing: then nothing can be said of the zone as a whole.
    """
    if seen.error or not seen.servers or seen.unjudgeable():
        return None
    answers: list[Answer | None] = []
    for server in seen.servers:
        answers += [seen.answer(server, seen.zone, rdtype) for rdtype in rdtypes]
        mx = seen.answer(server, seen.zone, "MX")
        targets = mx_targets(mx) if mx is not None and mx.judgeable else []
        # as DNS05: a target is asked of whichever servers the observation asked
        answers += [
            a for (_, (name, t)), a in seen.answers.items() if name in targets and t in rdtypes
        ]
    values: set[str] = set()
    for answer in answers:
        if answer is None or not answer.judgeable:
            continue  # an MX target outside the zones: DNS05 says so
        values.update(value for rrset in answer.chain()[1] for value in rrset.values)
    return values


def _ttl_before_switch(records: Records, zone: str, seen: ZoneObservation) -> tuple[int, str]:
    """The highest TTL the zone's moving records had before the switch, and where it is from.

    The TTL history (DNS02/03) knows the TTL each record had when last seen,
    high or lowered; without any history of the zone, the highest TTL seen now.
    """
    highs = records.section("dns_ttl_high")
    lowered = records.section("dns_lowered")
    prefix = f"{zone}|"
    before = []
    for entry in {*highs, *lowered}:
        if not entry.startswith(prefix):
            continue
        high, low = highs.get(entry), lowered.get(entry)
        if high and (not low or _epoch(high["seen"]) > _epoch(low["first_seen"])):
            before.append(int(high["ttl"]))  # still (or again) high when last seen
        elif low:
            before.append(int(low["ttl"]))
    if before:
        return max(before), "TTL history"
    return max(_highest_ttls(seen).values(), default=0), "highest TTL observed at the switch"


def record_dns_switch(
    zone_observations: dict[str, ZoneObservation],
    new_addresses: set[str],
    records: Records,
    now: float,
    rdtypes: tuple[str, ...] = ("A", "AAAA"),
) -> dict[str, Switch]:
    """Per zone, the DNS switch: recorded the first time every server points at the new IP.

    `new_addresses` are every address of the new host; `rdtypes` the address
    records judged (`address_types`). Written whatever the phase records (the
    switch happens after preflight); with keep_existing, the first sighting
    wins, also when runs race.
    """
    known = records.section("dns_switch")
    first = {}
    for zone, seen in zone_observations.items():
        pointed = pointed_addresses(seen, rdtypes)
        if zone in known or not pointed or not pointed <= new_addresses:
            continue
        old_ttl, source = _ttl_before_switch(records, zone, seen)
        first[zone] = {"switched": iso(now), "old_ttl": old_ttl, "old_ttl_from": source}
    if first:
        known.update(records.baseline.record_many("dns_switch", first, keep_existing=True))
    return {
        zone: Switch(zone, _epoch(entry["switched"]), int(entry["old_ttl"]), entry["old_ttl_from"])
        for zone, entry in known.items()
        if zone in zone_observations
    }


@pytest.fixture(scope="session")
def dns_switches(
    inventory: Inventory,
    zone_observations: dict[str, ZoneObservation],
    records: Records,
    expect: PhaseExpectations,
) -> dict[str, Switch]:
    """Per zone, when the DNS switch was first seen (recorded once DNS points only at new)."""
    if expect.dns_points_to != frozenset({Side.NEW}):
        return {}  # before the switch: nothing to record (DECOM01 runs after it)
    return record_dns_switch(
        zone_observations, new_ips(inventory), records, time.time(), address_types(inventory)
    )


# --- SQL-backed servers (DNS06) ---------------------------------------------------


def _zones_served_by(
    nameserver: str, zones: Sequence[DnsZone], zone_servers: ZoneServers
) -> list[str]:
    """The zones (by `zone_name`) whose authoritative servers include `nameserver`."""
    names = (zone_name(zone.name) for zone in zones)
    return [name for name in names if nameserver in zone_servers.servers_of.get(name, ())]


def _read_sql(
    access: DnsSql, zones: list[str], settings: ProbeSettings
) -> dict[tuple[str, str], SqlZone | str]:
    """(zone, nameserver) -> the zone's rows in that nameserver's database, or why unknown."""
    nameserver = str(access.nameserver)
    try:
        rows = read_zones(
            access,
            zones,
            connect_timeout=settings.connect_timeout,
            timeout=settings.operation_timeout,
            budget=settings,
        )
    except ProbeError as exc:
        reason = str(exc)
        if access.host == "localhost" and access.socket is None:
            reason += (
                f"; dns.sql host is localhost (the default): the machine running the "
                f"suite, not the nameserver {nameserver}: give its database's host"
            )
        return {(zone, nameserver): reason for zone in zones}
    return {(zone, nameserver): rows[zone] for zone in zones}


def _row_questions(sql: dict[tuple[str, str], SqlZone | str]) -> list[tuple[str, Question]]:
    """(nameserver, (name, type)) of every row that stands for record data."""
    return [
        (rows.nameserver, (row.name, row.rdtype))
        for rows in sql.values()
        if isinstance(rows, SqlZone)
        for row in rows.records
        # A row whose name or data does not parse is reported as that row (DNS06).
        if row.value is not None
    ]


def _sql_follow_up(
    access: DnsSql,
    zones: list[str],
    settings: ProbeSettings,
    into: dict[tuple[str, str], SqlZone | str],
) -> FollowUp:
    """Read the nameserver's rows (in a worker thread) into `into`; ask for each row's data."""

    def read() -> list[tuple[str, Question]]:
        into.update(_read_sql(access, zones, settings))
        return _row_questions(into)

    return read


@pytest.fixture(scope="session")
def sql_zones(
    inventory: Inventory,
    zone_servers: ZoneServers,
    dns_observed: DnsObserved,
) -> dict[tuple[str, str], SqlZone | str]:
    """(zone, nameserver) -> the rows in that nameserver's database, or why they are unknown."""
    if dns_observed.sql is not None:
        return dns_observed.sql  # read in the zones' batch
    settings = settings_for(inventory)
    found: dict[tuple[str, str], SqlZone | str] = {}
    for access in inventory.dns.sql:
        zones = _zones_served_by(str(access.nameserver), inventory.dns.zones, zone_servers)
        if zones:
            found.update(_read_sql(access, zones, settings))
    return found


@pytest.fixture(scope="session")
def sql_served(
    inventory: Inventory,
    dns_observed: DnsObserved,
    sql_zones: dict[tuple[str, str], SqlZone | str],
    observing: Callable[[str, str], Stage],
) -> dict[tuple[str, Question], Answer]:
    """What each SQL-backed server serves for every (name, type) its rows hold."""
    known = dns_observed.answers
    requests = [key for key in _row_questions(sql_zones) if key not in known]
    if dns_observed.sql is not None and not requests:
        return known  # asked in the zones' batch
    progress = observing("DNS: SQL rows", "questions")
    timeout = settings_for(inventory).operation_timeout
    served = observe_answers(requests, timeout=timeout, progress=progress)
    return {**known, **served}
