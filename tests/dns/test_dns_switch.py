"""The DNS switch DECOM01 judges: recorded once by the DNS observation, then waited out.

No servers: zone observations are built by hand, recorded into a baseline
under tmp_path as `zone_observations` records them after the switch, and
judged at injected times.
"""

from __future__ import annotations

from pathlib import Path

from checks.observe import dns as observe_dns
from checks.observe.dns import Switch, iso, record_dns_switch, switch_wait
from checks.record import Records
from checks.test_decommission import dns_wait_left
from cutover.model.baseline import Baseline
from cutover.model.phases import Phase, expectations
from cutover.probes.dns.engine import Answer, RRset
from cutover.probes.dns.zones import ZoneObservation

ZONE = "example.test"
SERVERS = ("198.51.100.53", "198.51.100.54")
OLD, NEW = "198.51.100.10", "198.51.100.20"
MAIL = f"mail.{ZONE}"


def _answer(server: str, qname: str, rdtype: str, *rrsets: RRset) -> Answer:
    return Answer(server, qname, rdtype, rcode="NOERROR", authoritative=True, answer=rrsets)


def seen(apex: dict[str, str], mail: str, ttl: int = 300) -> dict[str, ZoneObservation]:
    """Each server's apex A (per server) and MX -> mail.example.test A `mail`."""
    answers = {}
    for server in SERVERS:
        answers[(server, (ZONE, "A"))] = _answer(
            server, ZONE, "A", RRset(ZONE, "A", ttl, (apex[server],))
        )
        answers[(server, (ZONE, "MX"))] = _answer(
            server, ZONE, "MX", RRset(ZONE, "MX", ttl, (f"10 {MAIL}.",))
        )
        answers[(server, (MAIL, "A"))] = _answer(server, MAIL, "A", RRset(MAIL, "A", ttl, (mail,)))
    return {ZONE: ZoneObservation(ZONE, SERVERS, "inventory", answers)}


def records_at(path: Path) -> Records:
    return Records(Baseline(path), expectations(Phase.ACCEPTANCE), "run")


def observe(path: Path, observed: dict[str, ZoneObservation], now: float) -> dict[str, Switch]:
    records = records_at(path)
    switches = record_dns_switch(observed, {NEW}, records, now)
    records.baseline.flush()
    return switches


def everywhere(address: str) -> dict[str, str]:
    return dict.fromkeys(SERVERS, address)


def test_the_switch_is_recorded_only_when_every_server_points_at_the_new_ip(
    tmp_path: Path,
) -> None:
    path = tmp_path / "baseline.json"
    one_server_behind = {SERVERS[0]: NEW, SERVERS[1]: OLD}
    assert observe(path, seen(one_server_behind, NEW), 1_000_000.0) == {}
    assert observe(path, seen(everywhere(NEW), OLD), 1_000_100.0) == {}  # the MX target lags
    assert Baseline(path).section("dns_switch") == {}
    (switch,) = observe(path, seen(everywhere(NEW), NEW), 1_000_200.0).values()
    assert (switch.zone, switch.switched) == (ZONE, 1_000_200.0)


def test_the_first_sighting_wins(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    observe(path, seen(everywhere(NEW), NEW), 2_000_000.0)
    (later,) = observe(path, seen(everywhere(NEW), NEW), 2_005_000.0).values()
    assert later.switched == 2_000_000.0
    assert Baseline(path).get("dns_switch", ZONE)["switched"] == iso(2_000_000.0)


def test_the_old_ttl_comes_from_the_ttl_history(tmp_path: Path) -> None:
    """Preflight saw the apex A at 3600, later lowered to 300: resolvers held 300 at the switch."""
    path = tmp_path / "baseline.json"
    history = Records(Baseline(path), expectations(Phase.PREFLIGHT), "run")
    entry = f"{ZONE}|{ZONE}|A"
    history.write("dns_ttl_high", entry, {"ttl": 3600, "seen": iso(900_000.0)})
    history.write("dns_lowered", entry, {"first_seen": iso(910_000.0), "old_ttl": 3600, "ttl": 300})
    history.write("dns_ttl_high", f"{ZONE}|{MAIL}|A", {"ttl": 7200, "seen": iso(920_000.0)})
    history.baseline.flush()
    (switch,) = observe(path, seen(everywhere(NEW), NEW, ttl=60), 1_000_000.0).values()
    # mail.example.test was still high when last seen: its 7200 s is the highest
    assert (switch.old_ttl, switch.old_ttl_from) == (7200, "TTL history")


def test_without_history_the_highest_ttl_seen_at_the_switch_counts(tmp_path: Path) -> None:
    (switch,) = observe(tmp_path / "b.json", seen(everywhere(NEW), NEW, 600), 1.0).values()
    assert (switch.old_ttl, switch.old_ttl_from) == (600, "highest TTL observed at the switch")


def test_dns_settled_waits_the_old_ttl_plus_the_stale_allowance() -> None:
    switch = Switch(ZONE, 1_000_000.0, 300, "TTL history")
    allowance = 3 * 86400
    end = 1_000_000.0 + 300 + allowance
    assert switch_wait(switch, allowance, end - 90) == 90
    waiting = dns_wait_left(switch, allowance, 1_000_000.0 + 3600)
    assert waiting is not None
    assert "old TTL 300 s (TTL history) + stale allowance 259200 s" in waiting
    assert f"71h05m00s left (until {iso(end)})" in waiting
    assert dns_wait_left(switch, allowance, end) is None
    assert dns_wait_left(switch, 0, 1_000_000.0 + 301) is None


def test_unjudgeable_answers_record_nothing(tmp_path: Path) -> None:
    observed = seen(everywhere(NEW), NEW)
    zone = observed[ZONE]
    key = (SERVERS[1], (ZONE, "A"))
    broken = Answer(SERVERS[1], ZONE, "A", rcode="SERVFAIL", authoritative=False, answer=())
    observed[ZONE] = ZoneObservation(ZONE, SERVERS, "inventory", {**zone.answers, key: broken})
    assert observe_dns.pointed_addresses(observed[ZONE]) is None
    assert observe(tmp_path / "b.json", observed, 1.0) == {}
