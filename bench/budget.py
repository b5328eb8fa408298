"""The full preflight at the default per-server budget and at a generous one.

Two rows for `python -m bench budget` (in the services group, on the scaled
lab). The generous row lifts the budget out of the way and is held to the
full preflight's own target against the raw sequential script. The default
row's baseline is that generous run plus the budget's floor: the logins the
run made on its busiest server (AUTH01's attempts, read from the run's
JUnit) divided by the default `logins_per_second`. Target <= 1.0x: the
budget costs at most the time its login rate needs on top of the suite's
own, whatever the inventory's size.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

from cutover.model.inventory.sections import DEFAULT_CONNECTIONS, DEFAULT_LOGINS_PER_SECOND

# Far above anything a run opens at once (32 service probes, 8 x 4 TLS versions,
# 16 login threads): the budget never makes a probe wait.
GENEROUS = {"connections": 256, "logins_per_second": 10_000}
# The default row against the generous run plus the budget's floor: at most this.
FLOOR_LIMIT = 1.0
# The generous row: the full preflight's own target against the raw script.
RAW_LIMIT = 0.5


def generous(data: dict[str, Any]) -> None:
    """`derived_inventory` change: a budget that never binds."""
    data["budget"] = dict(GENEROUS)


def at_default(data: dict[str, Any]) -> None:
    """`derived_inventory` change: the documented defaults (no `budget:` at all)."""
    data.pop("budget", None)
    for side in ("old", "new"):
        data.get(side, {}).pop("budget", None)


def logins_per_server(junit: Path) -> Counter[str]:
    """AUTH01's login attempts that reached a server, per side ("old", "new")."""
    counted: Counter[str] = Counter()
    for case in ET.parse(junit).iter("testcase"):
        for prop in case.iter("property"):
            if prop.get("name") != "logins":
                continue
            for attempt in (prop.get("value") or "").split("; "):
                endpoint = attempt.split(" ", 1)[0]
                if "not tried" not in attempt and "no answer" not in attempt:
                    side = "old" if "-old" in endpoint else "new" if "-new" in endpoint else ""
                    if side:
                        counted[side] += 1
    return counted


def rows(bench: Any, label: str, derived_inventory: Any, best_of: Any, raw_command: Any) -> None:
    """Add the two rows to `bench` (a bench.__main__.Bench on the scaled lab)."""
    from bench.__main__ import Row  # the table's row type

    default_name = (
        f"full preflight, default budget ({DEFAULT_CONNECTIONS} conn, "
        f"{DEFAULT_LOGINS_PER_SECOND:g} logins a second) ({label})"
    )
    generous_name = f"full preflight, generous budget ({label})"

    generous_s: list[float] = []

    def default_row() -> None:
        inventory = derived_inventory("budget-default", at_default)
        junit = bench.scratch / "budget-default.xml"
        run = bench.suite(default_name, inventory, "", extra=(f"--junitxml={junit}",))
        logins = logins_per_server(junit)
        busiest = max(logins.values(), default=0)
        floor = busiest / DEFAULT_LOGINS_PER_SECOND
        row = Row(
            default_name,
            run.seconds,
            (floor + generous_s[0]) if generous_s else floor or None,
            f"generous run + budget floor ({busiest} logins on the busiest server"
            f" / {DEFAULT_LOGINS_PER_SECOND:g} = {floor:.1f} s)",
            run.peak_mib,
            f"<= {FLOOR_LIMIT}x that",
            None,
            f"(logins old {logins['old']}, new {logins['new']})",
        )
        if row.ratio is not None:
            row.met = row.ratio <= FLOOR_LIMIT
        bench.add(row)

    def generous_row() -> None:
        inventory = derived_inventory("budget-generous", generous)
        run = bench.suite(generous_name, inventory, "")
        generous_s.append(run.seconds)
        raw = best_of(raw_command("full", inventory), bench.sizes.repeat)
        row = Row(
            generous_name,
            run.seconds,
            raw.seconds,
            "raw sequential",
            run.peak_mib,
            f"<= {RAW_LIMIT}x raw",
            None,
            f"(raw peak {raw.peak_mib:.0f} MiB)",
        )
        if row.ratio is not None:
            row.met = row.ratio <= RAW_LIMIT
        bench.add(row)

    bench.attempt(generous_name, generous_row)
    bench.attempt(default_name, default_row)
