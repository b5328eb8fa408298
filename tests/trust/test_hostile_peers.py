"""Hostile and broken peers: each fails its own checks, clearly, in time; the rest is unaffected.

The suite runs (as an operator would: a subprocess, JUnit XML) against
loopback-only test servers from tests/trust/peers.py: a well-behaved control
set, then the same set with one peer replaced by a misbehaving one. For each:
- the checks of that endpoint fail with a one-line message naming the peer
  (address:port) and what went wrong;
- the whole run ends within a bound derived from the inventory's timeouts
  (a trickling or endless peer would otherwise hold it for minutes or forever);
- a peer that never stops talking is given up on (the message says so: the
  client's buffer is bounded by cutover.probes.connect.MAX_LINE and the line limit);
- every other testcase has the same outcome as in the control run.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.suite import SuiteRun, run_suite
from tests.trust import peers
from tests.trust.peers import DnsPeer, Peer, Zone

OLD, NEW = "127.0.9.2", "127.0.9.3"
NS1, NS2 = "127.0.9.53", "127.0.9.54"
SMTP, SMTPS, MYSQL = 2525, 4465, 13306
CONNECT = OPERATION = 2.0
# pytest start, collection and the plugin's reports on a loaded CI machine.
STARTUP_ALLOWANCE = 30.0
# Probes run concurrently; a check may chain a few bounded operations.
BOUND = STARTUP_ALLOWANCE + 3 * (CONNECT + OPERATION)
ADMIN_PASSWORD = "Trust-Peer-Admin-pw-7731"
NAME = "mail.trust.test"
ZONE = Zone("trust.test", OLD, (NS1, NS2))


def can_bind_dns() -> bool:
    return os.geteuid() == 0


@dataclass
class World:
    """Which handler serves each (side, port), and how each nameserver behaves."""

    tcp: dict[tuple[str, int], Callable[..., None]]
    dns: dict[str, str] = field(default_factory=lambda: {NS1: "good", NS2: "good"})


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("peers")
    cert, key = peers.self_signed(base, NAME)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    (base / "admin").write_text(ADMIN_PASSWORD + "\n")
    inventory: dict[str, Any] = {
        "name": "trust-peers",
        "old": {"address": OLD, "hostname": "old.trust.test"},
        "new": {"address": NEW, "hostname": "new.trust.test"},
        "services": [
            {"name": "smtp", "port": SMTP, "protocol": "smtp", "tls": "none"},
            {"name": "smtps", "port": SMTPS, "protocol": "smtp", "tls": "implicit"},
            {"name": "mysql", "port": MYSQL, "protocol": "mysql"},
        ],
        "hostnames": [NAME],
        "tls": {"ca_file": str(cert)},
        "mysql": {
            "admin": {
                "user": "cutover_ro",
                "host": "127.0.9.%",
                "password_file": str(base / "admin"),
            }
        },
        "dns": {"ttl": 300, "lowering_acknowledged": "trust self-test", "zones": []},
        "timeouts": {"connect": CONNECT, "operation": OPERATION, "test": 60},
    }
    if can_bind_dns():
        inventory["dns"]["zones"] = [{"name": ZONE.name, "nameservers": [NS1, NS2]}]
    path = base / "inventory.yaml"
    path.write_text(yaml.safe_dump(inventory))
    return {"inventory": path, "context": context}


def control_world(material: dict[str, Any]) -> World:
    tcp: dict[tuple[str, int], Callable[..., None]] = {}
    for side, address in (("old", OLD), ("new", NEW)):
        host = f"{side}.trust.test"
        tcp[(address, SMTP)] = peers.smtp_good(host)
        tcp[(address, SMTPS)] = peers.tls_wrap(peers.smtp_good(host), material["context"])
        tcp[(address, MYSQL)] = peers.mysql_refusing
    return World(tcp)


@contextlib.contextmanager
def serving(world: World) -> Iterator[dict[str, DnsPeer]]:
    with contextlib.ExitStack() as stack:
        for (address, port), handler in world.tcp.items():
            stack.enter_context(Peer(address, port, handler, f"{address}:{port}"))
        dns_peers = {}
        if can_bind_dns():
            for address, mode in world.dns.items():
                dns_peers[address] = stack.enter_context(DnsPeer(address, ZONE, mode))
        yield dns_peers


def run(world: World, material: dict[str, Any], reports: Path) -> tuple[SuiteRun, float]:
    with serving(world):
        start = time.monotonic()
        result = run_suite("preflight", material["inventory"], reports, timeout=BOUND * 3)
        return result, time.monotonic() - start


@pytest.fixture(scope="module")
def control(material: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    result, _ = run(control_world(material), material, tmp_path_factory.mktemp("control"))
    assert result.cases, result.summary()
    assert not [c for c in result.cases if c.outcome == "error"], result.summary()
    return result


def test_control_run_passes_where_the_peers_behave(control: SuiteRun) -> None:
    """The well-behaved peers pass the service checks: a scenario's red is the scenario's."""
    for case in control.cases:
        if "smtp-" in case.name and case.check_id in ("PORT01", "PORT02"):
            assert case.outcome == "passed", control.summary()
    if can_bind_dns():
        assert {c.outcome for c in control.cases if c.check_id.startswith("DNS")} <= {
            "passed",
            "skipped",
        }, control.summary()
        assert "DNS01" in {c.check_id for c in control.cases if c.outcome == "passed"}


@dataclass(frozen=True)
class Scenario:
    name: str
    target: tuple[str, int]
    handler: Callable[..., None]
    says: str  # what the failure message must say, besides the peer

    @property
    def where(self) -> str:
        return f"{self.target[0]}:{self.target[1]}"


TRICKLED = "220 old.trust.test ESMTP " + "slow " * 30 + "\r\n"  # >150 s at 1 byte/s
SCENARIOS = [
    Scenario("garbage-greeting", (OLD, SMTP), peers.garbage, "is not an SMTP server"),
    Scenario(
        "endless-greeting-lines", (OLD, SMTP), peers.endless_lines, "sent more than 200 lines"
    ),
    Scenario("endless-greeting-line", (OLD, SMTP), peers.endless_line, "longer than 8192 bytes"),
    Scenario("trickled-greeting", (OLD, SMTP), peers.trickle(TRICKLED), "timed out after 2 s"),
    Scenario("silent-greeting", (NEW, SMTP), peers.silent, "timed out after 2 s"),
    Scenario("plaintext-on-tls-port", (OLD, SMTPS), peers.plaintext("old.trust.test"), "TLS"),
    Scenario(
        "mysql-closes-after-handshake",
        (OLD, MYSQL),
        peers.mysql_close_after_handshake,
        "Lost connection",
    ),
]


def label_of(target: tuple[str, int]) -> str:
    return {SMTP: "smtp-", SMTPS: "smtps-", MYSQL: "mysql-"}[target[1]] + str(target[1])


def assert_rest_unaffected(
    result: SuiteRun, control: SuiteRun, affected: Callable[[str], bool]
) -> None:
    before = {c.name: c.outcome for c in control.cases}
    after = {c.name: c.outcome for c in result.cases}
    assert set(after) == set(before), (sorted(set(after) ^ set(before)), result.summary())
    changed = {n for n in before if before[n] != after[n] and not affected(n)}
    assert not changed, f"collateral verdict changes: {sorted(changed)}\n{result.summary()}"


def assert_one_line_naming(result: SuiteRun, where: str, says: str) -> None:
    lines = [line for c in result.failing() for line in c.message.splitlines()]
    assert any(where in line and says in line for line in lines), (
        f"no failure line names {where} and says {says!r}\n{result.summary()}"
    )


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_hostile_tcp_peer(
    scenario: Scenario, material: dict[str, Any], control: SuiteRun, tmp_path: Path
) -> None:
    world = control_world(material)
    world.tcp[scenario.target] = scenario.handler
    result, wall = run(world, material, tmp_path)
    assert wall <= BOUND, f"run took {wall:.1f} s, bound {BOUND:g} s\n{result.summary()}"
    assert not [c for c in result.cases if c.outcome == "error"], result.summary()
    assert_one_line_naming(result, scenario.where, scenario.says)
    label = label_of(scenario.target)
    newly = {c.name for c in result.failing()} - {c.name for c in control.failing()}
    assert all(label in name for name in newly), result.summary()
    assert_rest_unaffected(result, control, lambda name: label in name)
    assert result.returncode == 1


DNS_SCENARIOS = {
    "servfail": "SERVFAIL",
    "refused": "REFUSED",
    "silent": "timed out after 2 s",
}


@pytest.mark.parametrize("mode", [*DNS_SCENARIOS, "truncated"])
def test_hostile_nameserver(
    mode: str, material: dict[str, Any], control: SuiteRun, tmp_path: Path
) -> None:
    if not can_bind_dns():
        pytest.skip("a test nameserver needs root to bind port 53 on loopback")
    world = control_world(material)
    world.dns[NS2] = mode
    with serving(world) as dns_peers:
        start = time.monotonic()
        result = run_suite("preflight", material["inventory"], tmp_path, timeout=BOUND * 3)
        wall = time.monotonic() - start
    assert wall <= BOUND, f"run took {wall:.1f} s, bound {BOUND:g} s\n{result.summary()}"
    assert not [c for c in result.cases if c.outcome == "error"], result.summary()
    assert_rest_unaffected(result, control, lambda name: ZONE.name in name)
    if mode == "truncated":
        # TC bit over UDP: the suite asks again over TCP and gets the whole answer.
        assert dns_peers[NS2].tcp_queries > 0
        assert [(c.name, c.outcome) for c in result.cases] == [
            (c.name, c.outcome) for c in control.cases
        ], result.summary()
        return
    assert "DNS01" in result.failing_ids(), result.summary()
    assert_one_line_naming(result, NS2, DNS_SCENARIOS[mode])
    assert result.returncode == 1
