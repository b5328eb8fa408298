"""The run's configuration: options, the inventory (every pair of a fleet), timeouts, reports.

`configure` (called by checks/plugin.py when `--phase` is given) loads the
inventory (a bad one stops the run with one line and exit code 4), picks the
pairs (`--pair`), checks `--host-snapshot` tarballs, chooses the report paths
and pytest-timeout's backstop. The session fixtures every check may ask for
(`inventory`, `phase`, `expect`, `baseline`, `services`, ...) are here too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from checks.progress import ProgressDisplay, Stage
from checks.support import (
    FLEET_KEY,
    INVENTORY_KEY,
    PAIRS_KEY,
    PHASE_KEY,
    baseline_path,
    expectations_for,
    fleet_of,
)
from cutover.model.phases import Phase, PhaseExpectations
from cutover.untrusted import shown

# Imported only where a run with `--phase` needs them (the plugin loads in every pytest run).
if TYPE_CHECKING:
    from cutover.model.baseline import Baseline
    from cutover.model.inventory import Fleet, Inventory

SNAPSHOTS_KEY = pytest.StashKey[dict[str, Path]]()  # pair name ("" = every pair) -> tarball


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cutover", "cutover migration checks")
    group.addoption(
        "--phase",
        choices=[p.value for p in Phase],
        help="the migration phase to check: preflight (before the DNS change), "
        "cutover (old host forwarding), acceptance (after the DNS change), "
        "decommission (before the old host is switched off)",
    )
    group.addoption(
        "--inventory",
        default=None,  # None: not typed (without --phase that is a run of something else)
        help="the migration's inventory file (default: $CUTOVER_INVENTORY or inventory.yaml)",
    )
    group.addoption(
        "--baseline",
        default=os.environ.get("CUTOVER_BASELINE", "reports/baseline.json"),
        help="what preflight observed of the old server, for later phases "
        "(default: reports/baseline.json)",
    )
    group.addoption(
        "--reports-dir",
        default="reports",
        help="where the JUnit XML and HTML reports go (default: reports/)",
    )
    group.addoption(
        "--host-snapshot",
        action="append",
        default=None,
        metavar="[PAIR=]FILE",
        help="check a host tarball from `python -m cutover capture-host` instead of a live host "
        "(repeatable as PAIR=FILE: one pair's host)",
    )
    group.addoption(
        "--probe-mail",
        action="store_true",
        default=False,
        help="cutover phase: send one test message to the old IP's port 25 and wait for it in "
        "mail.probe_account's INBOX on the new server (PORT03; the only check that writes)",
    )
    group.addoption(
        "--pair",
        action="append",
        default=None,
        metavar="NAME",
        help="check only this pair of a fleet inventory (repeatable; default: every pair)",
    )


def configure(config: pytest.Config, phase: Phase) -> list[str]:
    """Load the inventory and settle the run's pairs, snapshots, report paths and timeout.

    Returns the names of the pairs this run checks.
    """
    from cutover.model.inventory import InventoryError, load_fleet

    try:
        fleet = load_fleet(
            config.getoption("inventory") or os.environ.get("CUTOVER_INVENTORY", "inventory.yaml")
        )
    except InventoryError as exc:
        raise pytest.UsageError(*exc.problems) from None  # one `ERROR:` line each
    selected = _selected_pairs(config, fleet)
    config.stash[FLEET_KEY] = fleet
    config.stash[PAIRS_KEY] = selected
    if not fleet.several:
        config.stash[INVENTORY_KEY] = fleet.pairs[0]
    config.stash[SNAPSHOTS_KEY] = _host_snapshots(config, fleet)
    config.stash[PHASE_KEY] = phase
    # pytest-timeout: the inventory's per-check backstop unless given on the command line.
    if getattr(config.option, "timeout", None) in (None, 0):
        config.option.timeout = max(_backstop(fleet.pair(name), phase) for name in selected)
    return selected


def _backstop(inventory: Inventory, phase: Phase) -> float:
    """A check's pytest-timeout: `timeouts.test`, and in decommission room for DECOM02's window."""
    if phase is not Phase.DECOMMISSION:
        return inventory.timeouts.test
    window = inventory.decommission.observe_seconds + 2 * inventory.timeouts.operation + 30
    return max(inventory.timeouts.test, window)


def set_report_paths(config: pytest.Config) -> None:
    """Per-phase reports unless the operator chose their own paths.

    One pair of a fleet (a CI matrix job) gets its own: preflight-web07.xml.
    """
    from checks.html_later import html_wanted
    from checks.machine import report_stem

    reports = Path(config.getoption("reports_dir"))
    if not hasattr(config, "workerinput") and not config.option.collectonly:
        stem = report_stem(config)
        if getattr(config.option, "xmlpath", None) is None:
            config.option.xmlpath = str(reports / f"{stem}.xml")
        if html_wanted(config) and not config.option.htmlpath:
            config.option.htmlpath = str(reports / f"{stem}.html")
            config.option.self_contained_html = True


def _selected_pairs(config: pytest.Config, fleet: Fleet) -> list[str]:
    wanted = config.getoption("pair") or []
    unknown = [name for name in wanted if name not in fleet.names]
    if unknown:
        raise pytest.UsageError(
            f"--pair {unknown[0]}: {fleet.source} has no such pair (it has: "
            f"{', '.join(fleet.names)})"
        )
    return [name for name in fleet.names if not wanted or name in wanted]


def _host_snapshots(config: pytest.Config, fleet: Fleet) -> dict[str, Path]:
    """Each `--host-snapshot`, checked now: a path that is not a tarball is a usage error."""
    from cutover.probes.snapshot import snapshot_problem

    found: dict[str, Path] = {}
    for value in config.getoption("host_snapshot") or []:
        pair, sep, path = value.partition("=")
        if sep and pair in fleet.names:
            found[pair] = Path(path)
        else:
            found[""] = Path(value)
    for tarball in found.values():  # the last one given for a pair is the one used
        problem = snapshot_problem(config.invocation_params.dir / tarball)
        if problem is not None:
            raise pytest.UsageError(f"--host-snapshot {shown(str(tarball))}: {problem}")
    return found


@pytest.fixture(scope="session", autouse=True)
def cutover_pair(pytestconfig: pytest.Config) -> str | None:
    """The name of the pair being checked (parametrized per pair in a fleet)."""
    if FLEET_KEY not in pytestconfig.stash:
        return None
    return pytestconfig.stash[PAIRS_KEY][0]


@pytest.fixture(scope="session")
def inventory(pytestconfig: pytest.Config, cutover_pair: str | None) -> Inventory:
    """The loaded, validated inventory of the pair being checked."""
    if cutover_pair is None:
        raise pytest.UsageError(
            "the checks need a phase: --phase preflight|cutover|acceptance|decommission"
        )
    return fleet_of(pytestconfig).pair(cutover_pair)


@pytest.fixture(scope="session")
def phase(pytestconfig: pytest.Config) -> Phase:
    from checks.support import phase_of

    return phase_of(pytestconfig)


@pytest.fixture(scope="session")
def expect(pytestconfig: pytest.Config, inventory: Inventory) -> PhaseExpectations:
    """What must hold in this run's phase (cutover.model.phases)."""
    return expectations_for(pytestconfig, inventory)


@pytest.fixture(scope="session")
def baseline(pytestconfig: pytest.Config, inventory: Inventory) -> Iterator[Baseline]:
    """The pair's baseline file: written in preflight, read by later phases.

    Records are buffered and written once, when the session ends.
    """
    from cutover.model.baseline import Baseline, BaselineError

    recorded = Baseline(baseline_path(pytestconfig, inventory.name))
    yield recorded
    try:
        recorded.flush()
    except BaselineError as exc:
        # The run's failure, not the check that happened to run last.
        from checks.verdict import session_error

        session_error(pytestconfig, f"the baseline was not saved: {exc}")


@pytest.fixture(scope="session")
def observing(pytestconfig: pytest.Config) -> Callable[[str, str], Stage]:
    """A progress line for one observation stage: `observing("DNS: 400 zones", "questions")`.

    Pass it as an engine's `progress`; see checks/progress.py for where it shows.
    """
    return ProgressDisplay.for_config(pytestconfig).stage


@pytest.fixture(scope="session")
def host_snapshot(pytestconfig: pytest.Config, inventory: Inventory) -> Path | None:
    """The pair's `--host-snapshot` tarball (`PAIR=FILE`, or FILE for every pair), or None."""
    snapshots = pytestconfig.stash.get(SNAPSHOTS_KEY, {})
    return snapshots.get(inventory.name, snapshots.get(""))
