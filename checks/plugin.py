"""The cutover pytest plugin: options, inventory, phase selection and reports.

The suite is active when `--phase` is given: the inventory is loaded (a bad
one stops the run with one line and exit code 4), checks that do not belong
to the phase are deselected, every testcase gets JUnit properties (check ID,
phase, side, address, port, what was observed), JUnit XML and an HTML report
go to `reports/` (the HTML for people: checks/report_html.py) and the
terminal ends with the verdict: matrix, areas and root causes, after
pytest's own summary (checks/verdict.py, which also leads every failure
with its check ID and target).

An inventory with several pairs (a fleet) runs every check once per pair
(`--pair NAME` selects): the pair leads each test id, is the testcase's
`migration` and `pair` property, has its own baseline file, and its checks
run together (on one xdist worker with `--dist loadgroup`), so each pair's
session-scoped observations are made once.
"""

from __future__ import annotations

import functools
import gc
import html
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from checks.progress import ProgressDisplay, Stage
from checks.support import (
    FLEET_KEY,
    INVENTORY_KEY,
    PAIR_ARG,
    PAIRED_KEY,
    PAIRS_KEY,
    PHASE_KEY,
    baseline_path,
    expectations_for,
    fleet_of,
    pairs_of,
)
from cutover.model.phases import CHECK_ID, Phase, PhaseExpectations, area_of, runs_in
from cutover.untrusted import shown, shown_lines

# The plugin is loaded by every pytest run in this environment (`pytest
# --version`, the self-tests): the inventory models (pydantic), the probes
# and the baseline are imported only where a run with `--phase` needs them.
if TYPE_CHECKING:
    from cutover.model.baseline import Baseline
    from cutover.model.inventory import Fleet, Inventory

CHECKS_DIR = Path(__file__).resolve().parent
# The front door (selection, never green on nothing) and the machine outputs (JSON report).
pytest_plugins = ["checks.selection", "checks.machine"]
SNAPSHOTS_KEY = pytest.StashKey[dict[str, Path]]()  # pair name ("" = every pair) -> tarball


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


@pytest.hookimpl(tryfirst=True)  # report paths must be set before junitxml/pytest-html read them
def pytest_configure(config: pytest.Config) -> None:
    phase_name = config.getoption("phase")
    if not phase_name:
        return
    from cutover.model.inventory import InventoryError, load_fleet

    phase = Phase(phase_name)
    from checks.observe import OBSERVERS

    for name in (*OBSERVERS, "checks.record"):  # the fixtures the checks judge
        config.pluginmanager.import_plugin(name)
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
    _group_by_area(config)
    _register_verdict(config, phase, selected)

    from checks.machine import report_stem

    reports = Path(config.getoption("reports_dir"))
    if not hasattr(config, "workerinput") and not config.option.collectonly:
        # Per-phase reports unless the operator chose their own paths; one
        # pair of a fleet (a CI matrix job) gets its own: preflight-web07.xml.
        stem = report_stem(config)
        if getattr(config.option, "xmlpath", None) is None:
            config.option.xmlpath = str(reports / f"{stem}.xml")
        if hasattr(config.option, "htmlpath") and not config.option.htmlpath:
            config.option.htmlpath = str(reports / f"{stem}.html")
            config.option.self_contained_html = True
    if not hasattr(config, "workerinput"):
        # Before junitxml and pytest-html read the paths: they write staged files,
        # which become the reports only when the checks ran to the end.
        from checks.selection import NothingChecked

        config.pluginmanager.register(NothingChecked(config), "cutover-nothing-checked")
    # pytest-timeout: the inventory's per-check backstop unless given on the command line.
    if getattr(config.option, "timeout", None) in (None, 0):
        config.option.timeout = max(fleet.pair(name).timeouts.test for name in selected)


# The inventory sections that give each area module something to check. A module
# none of whose sections any selected pair configures is not collected: no MySQL
# checks without `mysql:`. The modules not named here check `services`, which
# always has a value (the default nine ports).
AREA_SECTIONS: dict[str, tuple[str, ...]] = {
    "test_http.py": ("http",),
    "test_imap.py": ("mail",),
    "test_mailclients.py": ("mail",),
    "test_mysql.py": ("mysql",),
    "test_dns.py": ("dns",),
    "test_outbound.py": ("dns", "outbound"),
    "test_vfio.py": ("virt_host",),
    "test_vm.py": ("virt_host",),
}


def _configures_area(inventory: Inventory, path: Path) -> bool:
    sections = AREA_SECTIONS.get(path.name) if _in_checks_dir(path) else None
    return sections is None or any(inventory.configures(section) for section in sections)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave out an area module that no selected pair's inventory configures."""
    if PAIRS_KEY not in config.stash or collection_path.name not in AREA_SECTIONS:
        return None
    if any(_configures_area(pair, collection_path) for pair in pairs_of(config)):
        return None
    return True


def pytest_itemcollected(item: pytest.Item) -> None:
    """A check of an area its pair does not configure is skipped, saying so.

    That is a fleet's pair without the section another pair gives, or a module
    named on the command line (pytest collects those whatever the hook above says).
    """
    if PAIRS_KEY not in item.config.stash:
        return
    fleet = fleet_of(item.config)
    pair = pair_of(item)
    if not _configures_area(fleet.pair(pair or fleet.pairs[0].name), item.path):
        sections = " or ".join(f"{s}:" for s in AREA_SECTIONS[item.path.name])
        whose = f"pair {pair}: its inventory" if pair else "the inventory"
        item.add_marker(pytest.mark.skip(reason=f"{whose} has no {sections}"), append=False)


def _register_verdict(config: pytest.Config, phase: Phase, selected: list[str]) -> None:
    """Failures led by check IDs (every process); the closing verdict (the controller)."""
    from checks.report_html import HtmlReport
    from checks.verdict import CheckIdLeads, SessionErrorsFromWorker, VerdictSummary

    config.pluginmanager.register(CheckIdLeads(check_id_of), "cutover-check-id-leads")
    if hasattr(config, "workerinput"):
        config.pluginmanager.register(SessionErrorsFromWorker(config), "cutover-session-errors")
        return
    config.pluginmanager.register(SerialNodeIds(), "cutover-serial-node-ids")
    summary = VerdictSummary(config, phase, selected)
    config.pluginmanager.register(summary, "cutover-verdict-summary")
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(HtmlReport(config, summary), "cutover-html-report")


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


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if not config.getoption("phase"):
        return None
    phase = config.stash[PHASE_KEY]
    pairs = pairs_of(config)
    lines = [f"cutover: phase {phase.value} — {expectations_for(config, pairs[0]).summary}"]
    if not fleet_of(config).several:
        inventory = pairs[0]
        return [
            *lines,
            f"cutover: inventory {inventory.source} ({inventory.name}: "
            f"old {inventory.old.address} -> new {inventory.new.address})",
        ]
    fleet = fleet_of(config)
    lines.append(
        f"cutover: inventory {fleet.source} ({fleet.name}: {len(pairs)} of "
        f"{len(fleet.pairs)} pairs)"
    )
    lines += [f"cutover: pair {p.name}: old {p.old.address} -> new {p.new.address}" for p in pairs]
    return lines


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


@pytest.hookimpl(wrapper=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> Iterator[None]:
    """In a fleet, a check without a target parameter still runs once per pair: `[web07]`."""
    yield  # the area modules' own parametrisation first
    config = metafunc.config
    if (
        FLEET_KEY in config.stash
        and fleet_of(config).several
        and _is_check(metafunc.definition)
        and not metafunc.definition.stash.get(PAIRED_KEY, False)
    ):
        names = config.stash[PAIRS_KEY]
        metafunc.parametrize(PAIR_ARG, names, ids=names, scope="session")
        metafunc.definition.stash[PAIRED_KEY] = True


def pair_of(item: pytest.Item) -> str | None:
    """The pair a check item runs for (None in a one-pair run)."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(PAIR_ARG) if callspec is not None else None


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> Iterator[None]:
    _select_and_describe(config, items)
    position = {id(item): index for index, item in enumerate(items)}
    yield  # pytest reorders items by (session-scoped) parameters here
    if FLEET_KEY in config.stash and fleet_of(config).several:
        # Each pair's checks together, in collection order: a pair's session
        # fixtures are set up once, then torn down before the next pair.
        rank = {name: index for index, name in enumerate(config.stash[PAIRS_KEY])}
        items.sort(key=lambda item: (rank.get(pair_of(item) or "", -1), position[id(item)]))


def xdist_group_of(check_id: str, pair: str, several: bool) -> str:
    """The xdist group of a check: its area (`imap`), per pair in a fleet (`web07.imap`)."""
    return f"{pair}.{area_of(check_id)}" if several else area_of(check_id)


def _group_by_area(config: pytest.Config) -> None:
    """`-n N` alone distributes by group (loadgroup), unless `--dist` was given.

    With plain `load` every worker would make every session observation
    (all DNS questions, all IMAP sessions...) for the few checks it gets:
    more work, not less. Grouped, each area is observed by one worker and
    the areas run in parallel.
    """
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        # A worker re-parses the command line, so it does not see the controller's
        # choice: it is passed on in workerinput (pytest_configure_node below).
        if workerinput.get("cutover_loadgroup"):
            config.option.loadgroup = True
        return
    if getattr(config.option, "dist", "no") != "load":
        return
    given = config.invocation_params.args
    if any(str(arg) == "--dist" or str(arg).startswith("--dist=") for arg in given):
        return
    config.option.dist = "loadgroup"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist, on the controller: tell each worker that checks are distributed by group."""
    node.workerinput["cutover_loadgroup"] = node.config.getoption("dist", "no") == "loadgroup"


def _select_and_describe(config: pytest.Config, items: list[pytest.Item]) -> None:
    checks = [item for item in items if _is_check(item)]
    if not checks:
        return
    if PHASE_KEY not in config.stash:
        raise pytest.UsageError("the checks need a phase: --phase preflight|cutover|acceptance")
    phase = config.stash[PHASE_KEY]
    fleet = fleet_of(config)
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
        pair = pair_of(item) or fleet.pairs[0].name
        # `-n auto` (loadgroup, see _group_by_area): one area of one pair on one worker,
        # so that area's session observations are made once, and areas run side by side.
        item.add_marker(pytest.mark.xdist_group(xdist_group_of(check_id, pair, fleet.several)))
        item.user_properties[:0] = [
            ("check_id", check_id),
            ("phase", phase.value),
            ("migration", pair),
            *([("pair", pair)] if fleet.explicit else []),
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
            for name, text in describe():
                yield shown(name), shown_lines(text)


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
        raise pytest.UsageError("the checks need a phase: --phase preflight|cutover|acceptance")
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


# A recorded fact longer than this is cut (with a marker): a flood, not an observation.
RECORDED_LIMIT = 64 * 1024


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Attach observed facts to this check's JUnit testcase: `record(identity="new")`."""

    def add(**facts: object) -> None:
        for name, value in facts.items():
            # Values are data other tools read (JSON of mailboxes): escaped, cut only when huge.
            request.node.user_properties.append(
                (shown(name), shown_lines(value, limit=RECORDED_LIMIT))
            )

    return add


# --- server text in reports --------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """No raw control character of a failure or skip message reaches a report or the terminal.

    The checks pass server text through `shown()` where they quote it; this
    is the net under them, applied to the exception before the report is
    made (its own newlines are kept).
    """
    exc = call.excinfo.value if call.excinfo is not None else None
    if isinstance(exc, pytest.fail.Exception | pytest.skip.Exception):
        exc.msg = shown_lines(exc.msg)
    elif isinstance(exc, Exception) and all(isinstance(a, str) for a in exc.args):
        exc.args = tuple(shown_lines(a) for a in exc.args)
    return (yield)


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_table_row(report: pytest.TestReport, cells: list[str]) -> None:
    """pytest-html puts the test id into its page as HTML: put it there as text.

    A test id can name a MySQL account or a mailbox, and a name such as
    `<img src=x onerror=...>` would otherwise run in the operator's browser.
    """
    for index, cell in enumerate(cells):
        if cell.startswith('<td class="col-testId">'):
            test_id = report.nodeid + ("" if report.when == "call" else f"::{report.when}")
            cells[index] = f'<td class="col-testId">{html.escape(test_id)}</td>'


# --- xdist test ids ----------------------------------------------------------


class SerialNodeIds:
    """On the xdist controller: reports and JUnit names stay those of a serial run."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # xdist's loadgroup appends `@GROUP` to node ids (the workers need it).
        props = dict(report.user_properties)
        check_id, pair = props.get("check_id"), props.get("migration")
        if check_id is not None and pair is not None:
            for several in (False, True):
                suffix = "@" + xdist_group_of(str(check_id), str(pair), several)
                if report.nodeid.endswith(suffix):
                    report.nodeid = report.nodeid[: -len(suffix)]
