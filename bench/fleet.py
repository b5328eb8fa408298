"""The fleet benchmark: a many-pair inventory over the lab, three ways, against a raw script.

Every pair points at the lab's old and new servers under its own name
(`pair01` ... `pair50`), with every other section inherited from the lab's
inventory, so each pair is a whole migration's preflight: ports, TLS, vhosts,
IMAP, logins, POP3, MySQL, DNS, outbound. Measured:

- one run of the whole fleet, serially (the pairs one after another);
- the same with `-n auto` (pytest-xdist, grouped by pair and area);
- one `--pair NAME` run per pair, one after another: a CI matrix's jobs,
  each a fresh process loading the whole fleet inventory;
- against `bench/raw.py fleet`: the raw full script for each pair in turn.

The 50 separate runs take as long as the other rows together, so that row
is measured once (say so in its name) whatever the repetition.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.harness import (
    Run,
    best_of,
    derived_inventory,
    lab_session,
    measure,
    raw_command,
    suite_command,
)

if TYPE_CHECKING:
    from bench.__main__ import Bench


def fleet_inventory(pairs: int) -> Path:
    """The lab's inventory as `pairs` pairs, all on the lab's old and new servers."""

    def to_fleet(data: dict[str, Any]) -> None:
        old, new = data.pop("old"), data.pop("new")
        data["name"] = "bench-fleet"
        data["pairs"] = [
            {"name": f"pair{index:02d}", "old": old, "new": new} for index in range(1, pairs + 1)
        ]

    return derived_inventory("fleet", to_fleet)


def _suite(bench: Bench, name: str, inventory: Path, *extra: str, repeat: int = 1) -> Run:
    """The whole suite (every area) on the fleet inventory."""
    return best_of(
        suite_command(inventory, bench.reports(name), "", extra=extra), repeat, ok=(0, 1)
    )


def measure_fleet(bench: Bench, say: Any) -> None:
    """The fleet rows, in a lab session of their own (the lab in its preflight state)."""
    with lab_session(say):
        fleet_rows(bench, say)


def fleet_rows(bench: Bench, say: Any) -> None:
    from bench.__main__ import Row  # the table's row (bench/__main__.py imports this module)

    pairs = bench.sizes.fleet_pairs
    inventory = fleet_inventory(pairs)
    label = f"fleet {pairs} pairs"
    raw = best_of(raw_command("fleet", inventory), bench.sizes.fleet_repeat)
    raw_note = f"(raw peak {raw.peak_mib:.0f} MiB)"
    serial = _suite(bench, "fleet", inventory, repeat=bench.sizes.fleet_repeat)
    bench.add(
        Row(
            f"{label}, serial",
            serial.seconds,
            raw.seconds,
            "raw sequential, pair by pair",
            serial.peak_mib,
            "<= 1.0x raw",
            serial.seconds <= raw.seconds,
            f"{raw_note} ({serial.load})",
        )
    )
    workers = _suite(bench, "fleet-n", inventory, "-n", "auto", repeat=bench.sizes.fleet_repeat)
    bench.add(
        Row(
            f"{label}, -n auto",
            workers.seconds,
            serial.seconds,
            "the serial fleet run",
            workers.peak_mib,
            "< 1.0x serial",
            workers.seconds < serial.seconds,
            f"(vs raw {workers.seconds / raw.seconds:.2f}x; {workers.load})",
        )
    )
    started = time.perf_counter()
    peak = 0.0
    for index in range(1, pairs + 1):
        name = f"pair{index:02d}"
        reports = bench.reports(f"fleet-{name}")
        command = suite_command(inventory, reports, "", extra=("--pair", name))
        peak = max(peak, measure(command, ok=(0, 1)).peak_mib)
    runs = time.perf_counter() - started
    bench.add(
        Row(
            f"{label}, {pairs} --pair runs (once)",
            runs,
            raw.seconds,
            "raw sequential, pair by pair",
            peak,
            "<= 1.5x raw",
            runs <= 1.5 * raw.seconds,
            f"(vs serial {runs / serial.seconds:.2f}x)",
        )
    )
