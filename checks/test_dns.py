"""Authoritative DNS: TTLs lowered (long enough ago), servers in step, records where they belong.

Semantics: docs/semantics.md, "DNS". Every zone is observed once per session
on every authoritative server, concurrently (`zone_observations`, in
checks/observe/dns.py); each check then judges one zone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from checks.declare import check
from checks.dns_records import Sides, missing_aaaa, pointed_values
from checks.observe.dns import Lowering, duration, iso, moving_ttls
from checks.support import no_problems, parametrize
from checks.targets.dns import ZoneTarget
from cutover.model.inventory import Inventory
from cutover.model.phases import PhaseExpectations
from cutover.probes.dns.engine import Answer, mx_targets
from cutover.probes.dns.names import Question, absolute_text, below, rdata_key
from cutover.probes.dns.sql import SqlRecord, SqlZone
from cutover.probes.dns.zones import ZoneObservation, seconds_to_wait, serial_compare

# When no TTL above the limit was ever observed for a record, the old TTL is
# unknown: wait this long (one day: Unbound's default cache-max-ttl, and the
# largest TTL common in zone templates) unless the operator acknowledges.
MAX_PLAUSIBLE_TTL = 86400


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "dns_zone" in metafunc.fixturenames:
        parametrize(metafunc, "dns_zone", lambda inv: [ZoneTarget(z) for z in inv.dns.zones])


def _observed(seen: ZoneObservation, record: Callable[..., None]) -> None:
    """Fail when the zone's servers are unknown; record which servers were asked."""
    __tracebackhide__ = True
    record(servers=",".join(seen.servers), found_by=seen.found_by)
    if seen.error is not None:
        pytest.fail(f"{seen.zone}: {seen.error}", pytrace=False)
    if not seen.servers:
        pytest.fail(f"{seen.zone}: no authoritative server to ask", pytrace=False)


def _unobserved(seen: ZoneObservation) -> list[str]:
    """Evidence lines for answers a check cannot judge (DNS01 says why)."""
    return [
        f"{seen.label(a.server)}: {a.question}: cannot judge, {a.problem} (see DNS01)"
        for a in seen.unjudgeable()
    ]


def _judged(seen: ZoneObservation, problems: list[str], headline: str, cannot: str) -> None:
    """Fail on `problems` under `headline`; when the only problems are answers that could
    not be judged, the headline says so (`cannot read the TTLs: ...`), not what was not seen."""
    __tracebackhide__ = True
    unobserved = _unobserved(seen)
    if problems or not unobserved:
        no_problems(problems + unobserved, headline)
        return
    answers = list(seen.own_answers())
    usable = [a for a in answers if a.judgeable]
    why = (
        "no nameserver gave a usable answer (see DNS01)"
        if not usable
        else f"{len(answers) - len(usable)} of {len(answers)} answers unusable (see DNS01)"
    )
    no_problems(unobserved, f"{seen.zone}: cannot {cannot}: {why}")


# --- DNS01 -------------------------------------------------------------------


@check("DNS01", phases=("preflight", "cutover", "acceptance"))
def test_servers_answer_authoritatively(
    dns_zone: ZoneTarget, zone_observations: dict[str, ZoneObservation], record: Any
) -> None:
    """DNS01: every authoritative server answers for the zone with the AA flag and NOERROR.

    Why: a TTL or an address read from a server that is not authoritative (a
    resolver, a lame delegation) proves nothing, and a server that fails to
    answer sends some clients nowhere.
    Inputs: dns.zones (nameservers, or the zone's NS set found through dns.resolver);
    the apex SOA/A/AAAA/MX, each name in `names`, MX targets; asked with RD off.
    Fix: load the zone on every listed server (REFUSED: not configured there), create
    the missing names (NXDOMAIN) or remove them from `names`, open port 53.
    """
    seen = zone_observations[dns_zone.name]
    _observed(seen, record)
    for server in seen.servers:
        if server in seen.identities:
            record(**{f"identity@{server}": seen.identities[server]})
    no_problems(
        [
            f"{seen.label(a.server)}: {a.question}: {a.problem}"
            for a in seen.own_answers()
            if a.problem is not None
        ],
        f"{seen.zone}: not every server answers authoritatively (RD off, AA and NOERROR required)",
    )


# --- DNS02 -------------------------------------------------------------------


@check("DNS02", phases=("preflight", "cutover"))
def test_ttl_lowered(
    dns_zone: ZoneTarget,
    zone_observations: dict[str, ZoneObservation],
    inventory: Inventory,
    record: Any,
) -> None:
    """DNS02: apex A/AAAA, MX, www, mail and the listed names have TTL <= the limit on every server.

    Why: a resolver keeps an answer for its TTL; with a day-long TTL, clients
    keep going to the old IP for a day after the DNS change.
    Inputs: dns.ttl (default 300), dns.zones (names); the A, AAAA, MX and CNAME
    records asked (AAAA judged as A, whatever addresses the inventory lists);
    every authoritative server.
    Fix: lower the TTL of each listed record on every server (and bump the SOA
    serial where servers copy the zone), then wait the old TTL (DNS03).
    """
    seen = zone_observations[dns_zone.name]
    _observed(seen, record)
    limit = inventory.dns.ttl
    offenders = []
    for server in seen.servers:
        ttls = dict(moving_ttls(seen, server))
        record(**{f"ttl@{server}": " ".join(f"{n}/{t}={ttl}" for (n, t), ttl in ttls.items())})
        offenders += [
            f"{seen.label(server)}: {name} {rdtype} TTL {ttl}"
            for (name, rdtype), ttl in ttls.items()
            if ttl > limit
        ]
    _judged(
        seen,
        offenders,
        f"{seen.zone}: TTL above {limit} s (server, name, type, TTL)",
        "read the TTLs",
    )


# --- DNS03 -------------------------------------------------------------------


@check("DNS03", phases=("preflight",))
def test_ttl_lowered_long_enough(
    dns_zone: ZoneTarget,
    zone_observations: dict[str, ZoneObservation],
    ttl_lowerings: dict[str, list[Lowering]],
    inventory: Inventory,
    record: Any,
) -> None:
    """DNS03: every lowered TTL has been live on every server for at least the old TTL.

    Why: a resolver that fetched the record just before the lowering keeps it
    for the OLD TTL; until that has passed, clients may still go to the old IP.
    Inputs: dns.ttl, the baseline (when the suite first saw each record lowered on
    every server, and the TTL it saw before), dns.lowering_acknowledged.
    Fix: wait the time given; run preflight before and after lowering so the old
    TTL is known; or state in dns.lowering_acknowledged when and how the TTLs
    were lowered (recorded in the report).
    """
    seen = zone_observations[dns_zone.name]
    _observed(seen, record)
    no_problems(_unobserved(seen), f"{seen.zone}: cannot tell whether the TTLs are lowered")
    limit = inventory.dns.ttl
    now = time.time()
    waiting = []
    for lowering in ttl_lowerings.get(seen.zone, []):
        wait = lowering.old_ttl if lowering.old_ttl is not None else MAX_PLAUSIBLE_TTL
        left = seconds_to_wait(lowered_since=lowering.first_seen, old_ttl=wait, now=now)
        if left <= 0:
            continue
        why = (
            f"old TTL {lowering.old_ttl} s"
            if lowering.old_ttl is not None
            else f"no TTL above {limit} s was ever observed, so the old TTL is unknown: "
            f"assuming {MAX_PLAUSIBLE_TTL} s"
        )
        waiting.append(
            f"{lowering.name} {lowering.rdtype}: TTL {lowering.ttl}, first seen lowered on "
            f"every server {iso(lowering.first_seen)} ({duration(now - lowering.first_seen)} "
            f"ago); {why}: {duration(left)} left (until {iso(lowering.first_seen + wait)})"
        )
    acknowledgement = inventory.dns.lowering_acknowledged
    if acknowledgement:
        record(lowering_acknowledged=acknowledgement, lowering_wait_waived=len(waiting))
        return
    no_problems(
        waiting,
        f"{seen.zone}: TTLs were lowered too recently, resolvers may still hold the old "
        "records (wait, or state the lowering in dns.lowering_acknowledged)",
    )


# --- DNS04 -------------------------------------------------------------------


@check("DNS04", phases=("preflight", "cutover", "acceptance"))
def test_soa_serials_agree(
    dns_zone: ZoneTarget, zone_observations: dict[str, ZoneObservation], record: Any
) -> None:
    """DNS04: every authoritative server serves the same SOA serial (Zonemaster CONSISTENCY01).

    Why: different serials mean the servers serve different versions of the zone:
    half the clients would see the change, or not see it, depending on the server.
    Inputs: the apex SOA on every server; the SOA MINIMUM and TTL are reported
    (negative-answer TTL = min(MINIMUM, SOA TTL), RFC 2308).
    Fix: copy the zone to the lagging server again (AXFR, or the SQL dump for
    SQL-backed servers) and bump the serial with every change.
    """
    seen = zone_observations[dns_zone.name]
    _observed(seen, record)
    serials: dict[str, int] = {}
    problems = []
    for server in seen.servers:
        answer = seen.answer(server, seen.zone, "SOA")
        rrset = answer.rrset(seen.zone, "SOA") if answer and answer.judgeable else None
        if rrset is None:
            reason = answer.problem if answer else "not asked"
            problems.append(f"{seen.label(server)}: no SOA ({reason or 'empty answer'})")
            continue
        fields = rrset.values[0].split()
        serials[server] = int(fields[2])
        minimum = int(fields[6])
        record(
            **{
                f"serial@{server}": serials[server],
                f"soa_minimum@{server}": minimum,
                f"negative_ttl@{server}": min(minimum, rrset.ttl),
            }
        )
    newest = None
    for serial in serials.values():
        if newest is None or serial_compare(serial, newest) == 1:
            newest = serial
    if newest is not None and len(set(serials.values())) > 1:
        for server, serial in serials.items():
            order = serial_compare(serial, newest)
            if order == 0:
                continue
            state = (
                "not comparable (exactly 2^31 apart, RFC 1982)"
                if order is None
                else f"behind by {(newest - serial) % 2**32}"
            )
            problems.append(f"{seen.label(server)}: serial {serial}, newest {newest}: {state}")
    if len(set(serials.values())) > 1:
        headline = (
            f"{seen.zone}: SOA serials differ "
            f"({', '.join(f'{s}={n}' for s, n in serials.items())}): the servers serve "
            "different versions of the zone"
        )
    else:  # a serial is missing somewhere: nothing to compare it with is not a difference
        read = f"read on {len(serials)} of {len(seen.servers)} servers"
        headline = f"{seen.zone}: SOA serials cannot be compared ({read})"
    no_problems(problems, headline)


# --- DNS05 -------------------------------------------------------------------


@check("DNS05", phases=("preflight", "cutover", "acceptance"))
def test_records_point_to_the_expected_server(
    dns_zone: ZoneTarget,
    zone_observations: dict[str, ZoneObservation],
    dns_sides: Sides,
    expect: PhaseExpectations,
    record: Any,
) -> None:
    """DNS05: the apex A/AAAA and the MX targets point where this phase wants, on every server.

    Why: preflight must still send clients to the old server, acceptance to the
    new one; one server left behind sends part of the clients to the wrong host.
    An AAAA record left at the old IPv6 address sends every IPv6 client there.
    www/mail CNAMEs to the apex (the MyDNS add-domain layout) move with the apex.
    A name whose A record points at the migration but has no AAAA record, while
    another name has one, is left behind for its IPv6 clients.
    Inputs: every address of old and new (A records judged against the IPv4
    ones, AAAA against the IPv6 ones; a family the inventory lists no address
    of is not judged), the phase, dns.zones (names, cname_to_apex); every server.
    Fix: change the records on every server (preflight: not yet; acceptance: all of
    them), A and AAAA alike, bump the serial; keep www/mail as CNAMEs to the apex
    where listed; give the name its AAAA record (or remove the zone's others).
    """
    seen = zone_observations[dns_zone.name]
    _observed(seen, record)
    sides = dns_sides
    wanted = sides.wanted(expect.dns_points_to)
    problems = []
    targets: set[str] = set()
    apex_answers = []
    for server in seen.servers:
        apex_answers += [seen.answer(server, seen.zone, t) for t in sides.rdtypes]
        mx = seen.answer(server, seen.zone, "MX")
        targets.update(mx_targets(mx) if mx is not None and mx.judgeable else [])
        problems += _cname_problems(seen, server, dns_zone)
    target_answers = []
    for target in sorted(targets):
        asked = [a for (_, (name, _t)), a in sorted(seen.answers.items()) if name == target]
        if not asked:
            problems.append(
                f"MX target {target} is outside every inventory zone: cannot check where "
                "mail goes (add its zone to dns.zones)"
            )
        target_answers += [a for a in asked if a.rdtype in sides.rdtypes]
    pointed: set[str] = set()
    for answer in apex_answers + target_answers:
        values = pointed_values(answer)
        if answer is None or values is None:
            continue  # DNS01 says why; _unobserved lists it
        allowed = sides.allowed(answer.rdtype, expect.dns_points_to)
        names = answer.chain()[0]
        via = f" (via {' -> '.join(names[1:])})" if len(names) > 1 else ""
        role = "MX target " if answer.qname in targets else ""
        for value in values:
            pointed.add(value)
            if value not in allowed:
                problems.append(
                    f"{seen.label(answer.server)}: {role}{answer.question}{via} is {value} "
                    f"({sides.label(value)})"
                )
    problems += missing_aaaa(seen, zone_observations.values(), sides)
    record(points_to=",".join(sorted(pointed)) or "nothing (no apex address, no MX)")
    _judged(
        seen,
        problems,
        f"{seen.zone}: records do not point at {wanted} (phase {expect.phase.value})",
        f"tell whether the records point at {wanted}",
    )


def _cname_problems(seen: ZoneObservation, server: str, dns_zone: ZoneTarget) -> list[str]:
    problems = []
    for label in dns_zone.zone.cname_to_apex:
        name = below(label, seen.zone)
        answer = seen.answer(server, name, "A")
        if answer is None or not answer.judgeable:
            continue
        alias = answer.rrset(name, "CNAME")
        if alias is None:
            found = "; ".join(str(r) for r in answer.answer) or f"no record ({answer.rcode})"
            problems.append(f"{seen.label(server)}: {name} is not a CNAME to {seen.zone} ({found})")
        elif absolute_text(alias.values[0]) != seen.zone:
            problems.append(
                f"{seen.label(server)}: {name} is a CNAME to {alias.values[0]}, not to {seen.zone}"
            )
    return problems


# --- DNS06 -------------------------------------------------------------------


@check("DNS06", phases=("preflight", "cutover", "acceptance"))
def test_sql_rows_are_served(
    dns_zone: ZoneTarget,
    zone_observations: dict[str, ZoneObservation],
    sql_sources: dict[str, dict[str, SqlZone | str]],
    sql_served: dict[tuple[str, Question], Answer],
    record: Any,
) -> None:
    """DNS06: on SQL-backed servers, what is served equals the zone's rows in the database.

    Why: SQL-backed servers (PowerDNS gmysql, MyDNS) serve straight from the
    tables: a row edited but not served (a cache, another backend), a disabled
    row, or a copy that missed an edit is exactly what a cutover trips over.
    Inputs: dns.sql (read-only access per nameserver), the zone's rows (PowerDNS
    domains/records, MyDNS soa/rr) and the server's answers for each (name, type).
    Fix: re-enable or delete the disabled row (or make the server honour the
    flag, when it serves a disabled row), fix the unparsable one, purge the
    server's cache (pdns_control purge) or reload it, so rows and answers agree.
    """
    seen = zone_observations[dns_zone.name]
    _observed(seen, record)
    sources = sql_sources.get(seen.zone, {})
    if not sources:
        pytest.skip("inventory gives no dns.sql access to this zone's servers")
    problems = []
    unread = []
    for nameserver, rows in sorted(sources.items()):
        label = seen.label(nameserver)
        if isinstance(rows, str):
            problems.append(f"{label}: {rows}")
            unread.append(label)
            continue
        record(**{f"sql@{nameserver}": f"{rows.source} ({len(rows.records)} rows)"})
        if not rows.found:
            problems.append(f"{label}: zone {seen.zone} is not in {rows.source}")
            continue
        problems += _sql_problems(rows, sql_served, label)
    differ = len(problems) > len(unread)
    headline = ["the database rows and the served records differ"] if differ else []
    if unread:
        # Said as observed: nothing was compared where the backend could not be read.
        headline.append(f"cannot read the SQL backend of {', '.join(unread)}")
    no_problems(problems, f"{seen.zone}: {'; '.join(headline)}")


def _sql_problems(
    rows: SqlZone, served: dict[tuple[str, Question], Answer], label: str
) -> list[str]:
    problems = []
    groups: dict[tuple[str, str], list[SqlRecord]] = {}
    for row in rows.records:
        if row.value is None:
            problems.append(f"{label}: unparsable row {row}: {row.problem}")
        else:
            groups.setdefault((row.name, row.rdtype), []).append(row)
    for (name, rdtype), group in sorted(groups.items()):
        answer = served.get((rows.nameserver, (name, rdtype)))
        rrset = answer.rrset(name, rdtype) if answer is not None else None
        values = {rdata_key(rdtype, v): v for v in rrset.values} if rrset else {}
        enabled = {rdata_key(rdtype, r.value or ""): r for r in group if not r.disabled}
        for key, row in ((rdata_key(rdtype, r.value or ""), r) for r in group if r.disabled):
            if key not in values and key not in enabled:
                problems.append(f"{label}: {row}: disabled in the database, not served")
        if answer is None or not answer.judgeable:
            if enabled:
                reason = answer.problem if answer else "not asked"
                problems.append(f"{label}: {name} {rdtype}: cannot read what is served: {reason}")
            continue
        for key, row in enabled.items():
            if key not in values:
                problems.append(f"{label}: {row}: in the database, not served")
            elif rrset is not None and row.ttl != rrset.ttl:
                problems.append(
                    f"{label}: {row}: TTL {row.ttl} in the database, {rrset.ttl} served"
                )
        disabled = {rdata_key(rdtype, r.value or ""): r for r in group if r.disabled}
        problems += [
            f"{label}: {disabled[key]}: disabled in the database, served"
            if key in disabled
            else f"{label}: {name} {rdtype} {value}: served, not in the database"
            for key, value in values.items()
            if key not in enabled
        ]
    return problems
