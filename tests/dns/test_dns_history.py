"""The TTL history DNS03 keeps in the baseline, written by the DNS observation layer.

No servers: zone observations are built by hand and recorded into a
baseline file under tmp_path, as `ttl_lowerings` (and, in a narrowed
preflight, the "dns" recorder) records them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from checks.observe import dns as observe_dns
from checks.record import Records
from cutover.model.baseline import Baseline
from cutover.model.phases import Phase, expectations
from cutover.probes.dns.engine import Answer, RRset
from cutover.probes.dns.zones import ZoneObservation

ZONE = "example.test"
SERVERS = ("198.51.100.53", "198.51.100.54")
ENTRY = f"{ZONE}|{ZONE}|A"


def seen(ttl: int, *, authoritative: bool = True) -> dict[str, ZoneObservation]:
    answers = {
        (server, (ZONE, "A")): Answer(
            server,
            ZONE,
            "A",
            rcode="NOERROR",
            authoritative=authoritative,
            answer=(RRset(ZONE, "A", ttl, ("198.51.100.10",)),),
        )
        for server in SERVERS
    }
    return {ZONE: ZoneObservation(ZONE, SERVERS, "inventory", answers)}


def history(path: Path, ttl: int, now: float, monkeypatch: pytest.MonkeyPatch, **kw: bool) -> Any:
    monkeypatch.setattr(observe_dns.time, "time", lambda: now)
    records = Records(Baseline(path), expectations(Phase.PREFLIGHT), "run")
    lowerings = observe_dns.record_ttl_history(seen(ttl, **kw), 300, records)
    records.baseline.flush()
    return lowerings


def test_a_record_seen_high_then_lowered_knows_its_old_ttl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "baseline.json"
    assert history(path, 3600, 1_000_000.0, monkeypatch) == {}
    assert Baseline(path).get("dns_ttl_high", ENTRY)["ttl"] == 3600
    lowered = history(path, 300, 1_000_600.0, monkeypatch)[ZONE]
    assert [(x.name, x.rdtype, x.ttl, x.old_ttl) for x in lowered] == [(ZONE, "A", 300, 3600)]
    assert lowered[0].first_seen == 1_000_600.0


def test_the_first_lowered_sighting_is_kept_until_the_record_is_raised_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "baseline.json"
    first = history(path, 300, 2_000_000.0, monkeypatch)[ZONE][0]
    assert (first.first_seen, first.old_ttl) == (2_000_000.0, None)
    again = history(path, 300, 2_000_900.0, monkeypatch)[ZONE][0]
    assert again.first_seen == 2_000_000.0
    history(path, 3600, 2_001_000.0, monkeypatch)
    restarted = history(path, 300, 2_001_500.0, monkeypatch)[ZONE][0]
    assert (restarted.first_seen, restarted.old_ttl) == (2_001_500.0, 3600)
    stamp = Baseline(path).get("dns_lowered", ENTRY)["first_seen"]
    assert datetime.fromisoformat(stamp).timestamp() == 2_001_500.0


def test_a_zone_not_observed_on_every_server_is_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "baseline.json"
    assert history(path, 3600, 3_000_000.0, monkeypatch, authoritative=False) == {}
    assert not path.exists()
