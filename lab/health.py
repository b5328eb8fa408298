"""Postconditions: what each story step promises, checked cheaply against the running lab.

`up`, `sync`, `cutover`, `dns-switch`, `fault --undo` and `heal` end by
calling `verify()`, so a verb that did not achieve what it promises fails
with one line naming what is wrong; `lab status` prints every postcondition.
One concurrent port sweep from the client (each connection bounded by the
probe's 3 s timeout), one MySQL greeting read through the old host's socket
and a few SQL counts: a few hundred milliseconds on a healthy lab.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from lab import legacy_mail, legacy_mysql, legacy_tls, legacy_web, mydns, profiles
from lab.daemons import mysql
from lab.run import LabError, on, pid_alive
from lab.topology import (
    CLIENT,
    FORWARDED_PORTS,
    LOWERED_TTL,
    MYSQL_SOCKET,
    NAMESERVERS,
    NEW,
    OLD,
    PORT_NAMES,
    REPO,
    SERVERS,
)

PROBE_TIMEOUT = 30.0


@dataclass(frozen=True)
class Condition:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def _probe(host_key: str, *args: str) -> dict[str, str]:
    host = CLIENT if host_key == "client" else OLD
    result = on(
        host,
        ["env", f"PYTHONPATH={REPO}", sys.executable, "-m", "lab.probe", *args],
        timeout=PROBE_TIMEOUT,
        check=False,
    )
    try:
        answers: dict[str, str] = json.loads(result.stdout)
    except ValueError:
        why = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise LabError(f"the probe on {host.key} failed: {why[0]}") from None
    return answers


def _identity(answer: str, port: int) -> str:
    """Which server an answer came from: its FQDN in the greeting, or "mysql"."""
    if port == 3306:
        return "mysql" if "MySQL handshake" in answer else "?"
    for server in SERVERS:
        if server.fqdn in answer:
            return server.fqdn
    if legacy_mail.GREETING in answer:  # the legacy old host's Dovecot names no host
        return OLD.fqdn
    return "?"


def _ports(sweep: dict[str, str], address: str, expect: str, label: str) -> Condition:
    wrong = []
    for port in FORWARDED_PORTS:
        answer = sweep.get(f"{address}:{port}", "FAIL not probed")
        want = "mysql" if port == 3306 else expect
        if not answer.startswith("ok") or _identity(answer, port) != want:
            wrong.append(f"{PORT_NAMES[port]}/{port}: {answer.strip()[:120]}")
    detail = (
        f"all {len(FORWARDED_PORTS)} ports answer as {expect}" if not wrong else "; ".join(wrong)
    )
    return Condition(label, not wrong, detail)


def _daemons(data: dict[str, Any]) -> Condition:
    dead = []
    for key, info in data["hosts"].items():
        if key == OLD.key and data["story"]["cutover"]:
            continue  # stopped by the cutover on purpose
        dead += [f"{key}/{name}({pid})" for name, pid in info["pids"].items() if not pid_alive(pid)]
    return Condition(
        "daemons", not dead, "all running" if not dead else "not running: " + ", ".join(dead)
    )


def _helpers(data: dict[str, Any]) -> Condition:
    helpers: dict[str, int] = data["cutover"]
    dead = [f"{name}({pid})" for name, pid in sorted(helpers.items()) if not pid_alive(pid)]
    expected = {"tunnel", "mysql-socket", *(f"forward-{p}" for p in FORWARDED_PORTS)}
    if data["story"].get("cutover_ipv6", True):
        expected |= {f"forward6-{p}" for p in FORWARDED_PORTS}
    missing = sorted(expected - set(helpers))
    bad = dead + [f"{name}(none)" for name in missing]
    detail = f"{len(helpers)} running" if not bad else "not running: " + ", ".join(bad)
    return Condition("cutover helpers on old", not bad, detail)


def _silent(sweep: dict[str, str], address: str, label: str = "decommissioned") -> Condition:
    """After `lab decommission` (or on old's IPv6 after `cutover --ipv4-only`): no
    forwarded port of the old address answers."""
    answering = [
        f"{PORT_NAMES[port]}/{port}"
        for port in FORWARDED_PORTS
        if sweep.get(f"{address}:{port}", "ok").startswith("ok")
    ]
    detail = (
        f"none of the {len(FORWARDED_PORTS)} forwarded ports answers"
        if not answering
        else "still answering: " + ", ".join(answering)
    )
    return Condition(f"{label}: old IP {address} silent", not answering, detail)


def _stale_clients(data: dict[str, Any]) -> Condition:
    """Every stale client lab.json tracks is running (`lab stale-client --stop` forgets it)."""
    tracked: dict[str, int] = data.get("stale_clients", {})
    dead = [f"port {port}({pid})" for port, pid in sorted(tracked.items()) if not pid_alive(pid)]
    detail = (
        f"{len(tracked)} running" if not dead else "tracked but not running: " + ", ".join(dead)
    )
    return Condition("stale clients", not dead, detail)


def _count(ns_key: str, sql: str) -> int:
    ns = next(n for n in NAMESERVERS if n.key == ns_key)
    return int(mysql(ns, sql, database="pdns", timeout=20).strip() or 0)


def conditions(data: dict[str, Any]) -> list[Condition]:
    """Every postcondition of the story as lab.json records it, observed now."""
    story = data["story"]
    found = [_daemons(data)]
    if data.get("stale_clients"):
        found.append(_stale_clients(data))
    sweep = _probe("client", "--json")
    if story.get("decommissioned"):
        found += [_silent(sweep, address) for address in OLD.addresses]
    elif story["cutover"]:
        found.append(_helpers(data))
        found.append(_ports(sweep, OLD.address, NEW.fqdn, f"old IP {OLD.address} forwards to new"))
        if story.get("cutover_ipv6", True):
            found.append(
                _ports(sweep, OLD.address6, NEW.fqdn, f"old IP {OLD.address6} forwards to new")
            )
        else:
            found.append(_silent(sweep, OLD.address6, "cutover --ipv4-only"))
        through = _probe("old", "--socket", MYSQL_SOCKET).get("socket", "FAIL no answer")
        found.append(
            Condition(
                "MySQL through old's socket and the ssh tunnel",
                through.startswith("ok"),
                through.strip()[:200],
            )
        )
    else:
        found += [_ports(sweep, a, OLD.fqdn, f"old {a} serves") for a in OLD.addresses]
        found += [Condition(*c) for c in legacy_tls.old_conditions()]
    found += [_ports(sweep, a, NEW.fqdn, f"new {a} serves") for a in NEW.addresses]
    if story["synced"]:
        apps = mysql(NEW, "SHOW DATABASES LIKE 'app';", timeout=20).split()
        found.append(
            Condition(
                "synced: database app on new",
                apps == ["app"],
                "present" if apps == ["app"] else "missing",
            )
        )
    found += legacy_mysql.conditions(data)
    for ns in NAMESERVERS:
        if profiles.legacy():
            found += [Condition(*held) for held in mydns.health(ns)]
        if story["ttl"] <= LOWERED_TTL:
            high = _count(ns.key, f"SELECT COUNT(*) FROM records WHERE ttl > {LOWERED_TTL};")
            found.append(
                Condition(
                    f"{ns.key}: TTLs lowered",
                    high == 0,
                    f"every TTL <= {LOWERED_TTL}" if not high else f"{high} records above",
                )
            )
        to, away = (NEW, OLD) if story["dns"] == "new" else (OLD, NEW)
        for rtype, target, other in (
            ("A", to.address, away.address),
            ("AAAA", to.address6, away.address6),
        ):
            stale = _count(
                ns.key,
                "SELECT COUNT(*) FROM records r JOIN domains d ON r.domain_id = d.id "
                f"WHERE r.type = '{rtype}' AND r.name = d.name AND r.content = '{other}';",
            )
            found.append(
                Condition(
                    f"{ns.key}: apex {rtype} records -> {story['dns']}",
                    stale == 0,
                    f"all point at {target}" if not stale else f"{stale} still point at {other}",
                )
            )
    found += [Condition(*c) for c in legacy_web.conditions(story)]
    return found


def failing(data: dict[str, Any]) -> list[Condition]:
    return [c for c in conditions(data) if not c.ok]


def verify(data: dict[str, Any], verb: str) -> None:
    """Raise `LabError` (one line per broken postcondition) unless all hold."""
    bad = failing(data)
    if bad:
        raise LabError(
            f"{verb}: postcondition not met: " + "; ".join(f"{c.name}: {c.detail}" for c in bad)
        )
