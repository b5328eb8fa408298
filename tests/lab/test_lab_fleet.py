"""A fleet against the live lab: two pairs in one inventory, one healthy, one broken.

`good` is the lab's own pair; `ghost` has the same old host but new addresses
in the lab's subnets that nobody holds (198.51.100.99, 2001:db8:5100::99: the
lab is dual stack, so each pair's new side has one address per family). One preflight run
checks both: `good` is green, every failure belongs to `ghost`, test ids and
JUnit properties carry the pair, and each pair gets its own baseline file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import Lab

GHOST = "198.51.100.99"  # in the lab's 198.51.100.0/24, held by no host
GHOST6 = "2001:db8:5100::99"  # in the lab's 2001:db8:5100::/64, held by no host


def fleet(data: dict[str, Any]) -> None:
    old, new = data.pop("old"), data.pop("new")
    data["name"] = "lab-fleet"
    data["pairs"] = [
        {"name": "good", "old": old, "new": new},
        {
            "name": "ghost",
            "old": old,
            "new": {**new, "address": [GHOST, GHOST6], "ssh": f"ssh://root@{GHOST}"},
        },
    ]


def test_one_run_checks_every_pair_and_keeps_them_apart(preflight_lab: Lab, tmp_path: Path) -> None:
    inventory = preflight_lab.inventory_variant(tmp_path / "inventory", fleet)
    baseline = tmp_path / "reports" / "baseline.json"
    run = preflight_lab.suite(
        "preflight", "-m", "ports or imap", f"--baseline={baseline}", inventory=inventory
    )
    assert run.cases, run.summary()
    by_pair: dict[str, list[Any]] = {"good": [], "ghost": []}
    for case in run.cases:
        pair = case.properties["pair"]
        assert case.properties["migration"] == pair
        assert f"[{pair}-" in case.name or case.name.endswith(f"[{pair}]"), case.name
        by_pair[pair].append(case)
    assert len(by_pair["good"]) == len(by_pair["ghost"]) > 0
    assert not [c for c in by_pair["good"] if c.outcome in ("failed", "error")], run.summary()
    ghost_failures = [c for c in by_pair["ghost"] if c.outcome == "failed"]
    assert {c.check_id for c in ghost_failures} >= {"PORT01", "IMAP01", "AUTH01"}, run.summary()
    for case in ghost_failures:
        if case.properties.get("side") == "new":
            assert GHOST in case.message or GHOST6 in case.message, case.message
    assert "pair good: ok" in run.stdout and "pair ghost: FAIL" in run.stdout, run.stdout
    assert sorted(p.name for p in baseline.parent.glob("baseline-*.json")) == [
        "baseline-ghost.json",
        "baseline-good.json",
    ]
