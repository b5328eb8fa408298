"""The fixed cost of a run, and the floor under it: what any pytest run costs on this machine.

`python -m bench start` (also part of `nagios`): the no-check row and the
18 port checks against the check_* loop, in one short lab session.

Three floors, timed in the client namespace like the suite (`ip netns exec`
is part of every figure):

- `python -c pass`: the interpreter alone;
- `python -m pytest -p no:cutover --version`: Python, pytest and the plugins
  installed beside the suite that pytest loads by itself (xdist, timeout,
  testinfra, metadata), without the cutover plugin: the floor no change to
  this project can go under;
- `python -m pytest --version`: the same with the cutover plugin, as users
  type it.

The no-check run is the suite's command for the 18 port checks with
`--collect-only`: everything a run does before its first probe (the plugin,
the inventory, collection), and none of the probes.

The 18 port checks (alone: `CHECKS_ONLY`) are judged by issue #21's rule: at most 1.5x the check_*
loop, or, where the floor alone makes that impossible, the suite's own cost
above the floor at most 1.0x the loop (`ports_met`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench.harness import PYTHON, REPO, Run, best_of, in_client, suite_command

PORTS_LIMIT = 1.5  # suite / loop
ABOVE_FLOOR_LIMIT = 1.0  # (suite - floor) / loop, where the floor makes PORTS_LIMIT impossible
NO_CHECK_LIMIT = 2.0  # no-check run / `pytest --version`


def allow_bytecode_cache() -> None:
    """Measured processes keep their bytecode caches, as on an operator's machine.

    With PYTHONDONTWRITEBYTECODE set (some sandboxes and CI images set it),
    every run compiles each changed module again and pytest rewrites the
    asserts of every plugin module again: a cost no installed suite pays.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


@dataclass(frozen=True)
class Floors:
    python: Run  # python -c pass
    pytest: Run  # pytest -p no:cutover --version
    version: Run  # pytest --version


def floor_commands() -> dict[str, list[str]]:
    pytest = [PYTHON, "-m", "pytest", f"-c={REPO / 'pytest.ini'}", f"--rootdir={REPO}"]
    return {
        "python": in_client(PYTHON, "-c", "pass"),
        "pytest": in_client(*pytest, "-p", "no:cutover", "--version"),
        "version": in_client(*pytest, "--version"),
    }


def measure_floors(repeat: int) -> Floors:
    commands = floor_commands()
    return Floors(*(best_of(commands[name], repeat) for name in ("python", "pytest", "version")))


def no_check_command(inventory: Path, reports: Path) -> list[str]:
    """The 18 port checks' command, collected and not run: the start without the probes."""
    return suite_command(inventory, reports, "test_ports.py", extra=("--collect-only",))


# The 18 port checks alone. A preflight narrowed to some checks still completes the
# whole baseline at the end (every recorder the run's observations did not cover:
# logins, mailboxes, DNS, MySQL...); that work is measured beside the row, not in it.
CHECKS_ONLY = ("-p", "no:cutover-baseline-completion")


def ports_met(suite_s: float, loop_s: float, floor_s: float) -> bool:
    """<= 1.5x the loop, or the suite's cost above the floor <= 1.0x the loop.

    The second clause only ever decides when the floor is above half the
    loop: below that, suite - floor <= loop already means suite <= 1.5x loop.
    """
    return suite_s <= PORTS_LIMIT * loop_s or suite_s - floor_s <= ABOVE_FLOOR_LIMIT * loop_s


def ports_note(suite_s: float, loop_s: float, floors: Floors, completed_s: float) -> str:
    floor = floors.pytest.seconds
    return (
        f"(loop/suite {loop_s / suite_s:.1f}x; floor pytest -p no:cutover --version "
        f"{floor:.2f}s, above floor {(suite_s - floor) / loop_s:.2f}x loop; the same "
        f"preflight completing the baseline {completed_s:.2f}s)"
    )


def no_check_note(floors: Floors) -> str:
    return (
        f"(python -c pass {floors.python.seconds:.2f}s, pytest -p no:cutover --version "
        f"{floors.pytest.seconds:.2f}s)"
    )
