"""The cutover pytest plugin: options, inventory, phase selection and reports.

The suite is active when `--phase` is given: the inventory is loaded (a bad
one stops the run with one line and exit code 4), checks that do not belong
to the phase are deselected, every testcase gets JUnit properties (check ID,
phase, side, address, port, what was observed), JUnit XML and an HTML report
go to `reports/` and the terminal ends with a services x IPs matrix.
"""

from __future__ import annotations

import functools
import gc
import os
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from checks.progress import ProgressDisplay, Stage
from cutover.phases import CHECK_ID, Phase, PhaseExpectations, area_of, runs_in

# The plugin is loaded by every pytest run in this environment (`pytest
# --version`, the self-tests): the inventory models (pydantic), the probes
# and the baseline are imported only where a run with `--phase` needs them.
if TYPE_CHECKING:
    from cutover.baseline import Baseline
    from cutover.inventory import Inventory
    from cutover.protocols import Observations, ServiceAnswer
    from cutover.targets import Endpoint

CHECKS_DIR = Path(__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cutover", "cutover migration checks")
    group.addoption(
        "--phase",
        choices=[p.value for p in Phase],
        help="the migration phase to check: preflight (before the DNS change), "
        "cutover (old host forwarding), acceptance (after the DNS change)",
    )
    group.addoption(
        "--inventory",
        default=os.environ.get("CUTOVER_INVENTORY", "inventory.yaml"),
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
        default=None,
        help="check a host tarball from `python -m cutover capture-host` instead of a live host",
    )


@pytest.hookimpl(tryfirst=True)  # report paths must be set before junitxml/pytest-html read them
def pytest_configure(config: pytest.Config) -> None:
    phase_name = config.getoption("phase")
    if not phase_name:
        return
    from checks.support import INVENTORY_KEY, PHASE_KEY
    from cutover.inventory import InventoryError, load_inventory

    phase = Phase(phase_name)
    try:
        inventory = load_inventory(config.getoption("inventory"))
    except InventoryError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[INVENTORY_KEY] = inventory
    config.stash[PHASE_KEY] = phase
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(VerdictSummary(phase), "cutover-verdict-summary")

    reports = Path(config.getoption("reports_dir"))
    if not hasattr(config, "workerinput"):
        reports.mkdir(parents=True, exist_ok=True)
        # Per-phase reports unless the operator chose their own paths.
        if getattr(config.option, "xmlpath", None) is None:
            config.option.xmlpath = str(reports / f"{phase.value}.xml")
        if hasattr(config.option, "htmlpath") and not config.option.htmlpath:
            config.option.htmlpath = str(reports / f"{phase.value}.html")
            config.option.self_contained_html = True
    # pytest-timeout: the inventory's per-check backstop unless given on the command line.
    if getattr(config.option, "timeout", None) in (None, 0):
        config.option.timeout = inventory.timeouts.test


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if not config.getoption("phase"):
        return None
    from checks.support import INVENTORY_KEY, PHASE_KEY, expectations_of

    inventory = config.stash[INVENTORY_KEY]
    phase = config.stash[PHASE_KEY]
    return [
        f"cutover: phase {phase.value} — {expectations_of(config).summary}",
        f"cutover: inventory {inventory.source} ({inventory.name}: "
        f"old {inventory.old.address} -> new {inventory.new.address})",
    ]


def check_id_of(item: pytest.Item) -> str | None:
    function = getattr(item, "function", None)
    doc = getattr(function, "__doc__", None) or ""
    match = CHECK_ID.match(doc.strip())
    return match.group(0) if match else None


def _is_check(item: pytest.Item) -> bool:
    return _in_checks_dir(item.path)


@functools.cache  # one answer per test file, not per item (10,000 items)
def _in_checks_dir(path: Path) -> bool:
    return CHECKS_DIR in path.parents


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    checks = [item for item in items if _is_check(item)]
    if not checks:
        return
    from checks.support import INVENTORY_KEY, PHASE_KEY

    if PHASE_KEY not in config.stash:
        raise pytest.UsageError("the checks need a phase: --phase preflight|cutover|acceptance")
    phase = config.stash[PHASE_KEY]
    inventory = config.stash[INVENTORY_KEY]
    selected: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        if not _is_check(item):
            selected.append(item)
            continue
        check_id = check_id_of(item)
        if check_id is None:
            raise pytest.UsageError(
                f"{item.nodeid}: a check's docstring must start with its ID (e.g. 'PORT01: ...')"
            )
        if not runs_in(check_id, phase):
            deselected.append(item)
            continue
        item.add_marker(getattr(pytest.mark, phase.value))
        item.add_marker(getattr(pytest.mark, area_of(check_id)))
        item.user_properties[:0] = [
            ("check_id", check_id),
            ("phase", phase.value),
            ("migration", inventory.name),
            *_param_properties(item),
        ]
        selected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.getoption("phase"):
        # What collection built (items, inventory, modules) lives until the end: keep it out
        # of the garbage collector's full passes, which otherwise walk it again and again,
        # five times over at exit (pytest's unraisable-exception check).
        gc.freeze()


def _param_properties(item: pytest.Item) -> Iterator[tuple[str, str]]:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return
    for value in callspec.params.values():
        describe = getattr(value, "junit_properties", None)
        if callable(describe):
            yield from describe()


@pytest.fixture(scope="session")
def inventory(pytestconfig: pytest.Config) -> Inventory:
    """The loaded, validated inventory of this run."""
    from checks.support import inventory_of

    return inventory_of(pytestconfig)


@pytest.fixture(scope="session")
def phase(pytestconfig: pytest.Config) -> Phase:
    from checks.support import phase_of

    return phase_of(pytestconfig)


@pytest.fixture(scope="session")
def expect(pytestconfig: pytest.Config) -> PhaseExpectations:
    """What must hold in this run's phase (cutover.phases)."""
    from checks.support import expectations_of

    return expectations_of(pytestconfig)


@pytest.fixture(scope="session")
def baseline(pytestconfig: pytest.Config) -> Iterator[Baseline]:
    """The baseline file: written in preflight, read by later phases.

    Records are buffered and written once, when the session ends.
    """
    from cutover.baseline import Baseline, BaselineError

    recorded = Baseline(Path(pytestconfig.getoption("baseline")))
    yield recorded
    try:
        recorded.flush()
    except BaselineError as exc:
        pytest.fail(f"the baseline was not saved: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def observing(pytestconfig: pytest.Config) -> Callable[[str, str], Stage]:
    """A progress line for one observation stage: `observing("DNS: 400 zones", "questions")`.

    Pass it as an engine's `progress`; see checks/progress.py for where it shows.
    """
    return ProgressDisplay.for_config(pytestconfig).stage


@pytest.fixture(scope="session")
def services(
    inventory: Inventory, expect: PhaseExpectations, observing: Callable[[str, str], Stage]
) -> Observations[Endpoint, ServiceAnswer]:
    """Every service on every IP of the phase: observed once per run, concurrently, on first use."""
    from cutover.protocols import Observations, ProbeSettings, observe
    from cutover.targets import endpoints

    settings = ProbeSettings.from_inventory(inventory)
    return Observations(
        endpoints(inventory, expect),
        lambda endpoint: observe(endpoint, settings),
        progress=observing("services", "endpoints"),
    )


@pytest.fixture(scope="session")
def host_snapshot(pytestconfig: pytest.Config) -> Path | None:
    value = pytestconfig.getoption("host_snapshot")
    return Path(value) if value else None


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Attach observed facts to this check's JUnit testcase: `record(identity="new")`."""

    def add(**facts: object) -> None:
        for name, value in facts.items():
            request.node.user_properties.append((name, str(value)))

    return add


# --- terminal summary ------------------------------------------------------

_RANK = {"passed": 0, "skipped": 1, "failed": 2}
_MARK = {"passed": "ok", "skipped": "skip", "failed": "FAIL"}


class VerdictSummary:
    """Collects each check's outcome (on the xdist controller too) for the closing matrix."""

    def __init__(self, phase: Phase) -> None:
        self.phase = phase
        self.results: list[tuple[dict[str, str], str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and not report.passed):
            props = {str(k): str(v) for k, v in report.user_properties}
            if "check_id" in props:
                self.results.append((props, report.outcome))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        write = terminalreporter.write_line
        terminalreporter.section(f"cutover {self.phase.value}: services x IPs")
        for line in self.matrix_lines() + self.area_lines():
            write(line)

    def matrix_lines(self) -> list[str]:
        cells: dict[tuple[str, str], str] = {}
        for props, outcome in self.results:
            if "service" in props and "side" in props:
                key = (props["service"], props["side"])
                if _RANK[outcome] >= _RANK[cells.get(key, "passed")]:
                    cells[key] = outcome
        if not cells:
            return []
        lines = [f"{'service':<18}{'old IP':<8}{'new IP':<8}"]
        for service in dict.fromkeys(s for s, _ in cells):
            marks = [_MARK.get(cells.get((service, side), ""), "-") for side in ("old", "new")]
            lines.append(f"{service:<18}{marks[0]:<8}{marks[1]:<8}")
        return lines

    def area_lines(self) -> list[str]:
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        failing: dict[str, set[str]] = defaultdict(set)
        for props, outcome in self.results:
            area = area_of(props["check_id"])
            counts[area][outcome] += 1
            if outcome == "failed":
                failing[area].add(props["check_id"])
        lines = []
        for area in sorted(counts):
            verdict = "FAIL" if counts[area]["failed"] else "ok"
            detail = ", ".join(
                f"{counts[area][o]} {o}" for o in ("passed", "failed", "skipped") if counts[area][o]
            )
            ids = f" [{', '.join(sorted(failing[area]))}]" if failing[area] else ""
            lines.append(f"{area:<8}{verdict:<6}{detail}{ids}")
        return lines
