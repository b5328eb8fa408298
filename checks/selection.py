"""The front door: whatever way a run is typed, it checks what was meant or says why not.

- A phase run (`--phase`) collects the installed checks, from any directory
  and whatever the other arguments look like. pytest decides its rootdir
  before this plugin's options exist, so in `--inventory /abs/inv.yaml` (space
  form) it takes the inventory for a test path; without this the run would
  fall back to the current directory (the self-tests, in a checkout). Test
  paths typed on the command line are collected as given; `checks/...` names
  the installed checks from anywhere.
- Without `--phase`, collecting the checks is refused with one line (no
  collection tracebacks); the self-tests run with `make test`. So is
  `--inventory` without `--phase`, at once: pytest would otherwise collect
  the current directory (the user's own, perhaps a tree that never ends).
- The phase and area markers are registered here, so `-m imap` and
  `--strict-markers` work whichever ini file pytest found (or none).
- Every check's ID is a `-k` keyword: `-k PORT03`, `-k "DNS02 or DNS03"`.
- `--probe-mail` without `mail.probe_account` is an inventory error.
- Never green on nothing: a phase run in which no check ran (none collected,
  or all deselected) exits non-zero with one line saying why, and the
  reports it would have written are put back as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from checks.support import FLEET_KEY, PAIRS_KEY, fleet_of
from cutover.phases import AREAS, Phase

CHECKS_DIR = Path(__file__).resolve().parent
NEEDS_PHASE = (
    "the checks need a phase: --phase preflight|cutover|acceptance --inventory FILE "
    "(or `cutover run PHASE -i FILE`); the self-tests run with `make test`"
)
# pytest's own exit code for "no tests collected": a phase run that checked nothing.
EXIT_NOTHING_CHECKED = 5

_PHASE_MARKERS = {
    Phase.PREFLIGHT: "the gate before the DNS change",
    Phase.CUTOVER: "while the old host forwards every port to the new one",
    Phase.ACCEPTANCE: "after the DNS change",
}


def _collected_paths(config: pytest.Config) -> list[Path]:
    """Where pytest will collect: the paths typed, testpaths or the current directory."""
    base = config.invocation_params.dir
    return [(base / arg.split("::")[0]).resolve() for arg in config.args]


def _overlaps_checks(path: Path) -> bool:
    return path == CHECKS_DIR or CHECKS_DIR in path.parents or path in CHECKS_DIR.parents


def _checks_arg(config: pytest.Config, arg: str) -> str:
    """`checks/test_ports.py` names the installed checks from anywhere; other paths stay."""
    file_part, sep, rest = arg.partition("::")
    parts = Path(file_part).parts
    if parts[:1] == ("checks",) and not (config.invocation_params.dir / file_part).exists():
        return str(CHECKS_DIR.joinpath(*parts[1:])) + sep + rest
    return arg


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """A phase run's rootdir and ini file, chosen again now that `--inventory` is known.

    pytest chose them before this plugin's options existed, so with
    `--inventory /abs/inv.yaml` it took the inventory's directory for the
    rootdir: the project's ini file went unread and `.pytest_cache` landed
    beside the inventory. Chosen again from the real test paths (or the
    current directory), as the `--inventory=/abs/inv.yaml` spelling does.
    """
    from _pytest.config.findpaths import determine_setup

    given = early_config.known_args_namespace
    if not getattr(given, "phase", None) or given.rootdir or given.inifilename:
        return
    rootpath, inipath, inicfg = determine_setup(
        inifile=None,
        args=list(given.file_or_dir),
        rootdir_cmd_arg=None,
        invocation_dir=early_config.invocation_params.dir,
    )
    if (rootpath, inipath) == (early_config.rootpath, early_config.inipath):
        return
    early_config._rootpath = rootpath
    early_config._inipath = inipath
    early_config.inicfg = inicfg
    early_config._inicache.clear()
    given.confcutdir = str(inipath.parent if inipath is not None else rootpath)


@pytest.hookimpl(trylast=True)  # after checks/plugin.py loaded the inventory and set report paths
def pytest_configure(config: pytest.Config) -> None:
    for phase, description in _PHASE_MARKERS.items():
        config.addinivalue_line("markers", f"{phase.value}: {description}")
    for area in dict.fromkeys(AREAS.values()):
        config.addinivalue_line("markers", f"{area}: the {area} checks")
    if not config.getoption("phase"):
        # e.g. plain `pytest` in a checkout (testpaths), or `--inventory inv.yaml`
        # without --phase (pytest then collects the current directory, whatever it holds)
        if config.getoption("inventory") is not None or any(
            _overlaps_checks(path) for path in _collected_paths(config)
        ):
            raise pytest.UsageError(NEEDS_PHASE)
        return
    if config.args_source is pytest.Config.ArgsSource.ARGS:
        config.args = [_checks_arg(config, arg) for arg in config.args]
    else:
        config.args = [str(CHECKS_DIR)]
        config.args_source = pytest.Config.ArgsSource.ARGS
    require_probe_account(config)
    if not hasattr(config, "workerinput"):
        guard = NothingChecked(config)
        guard.save_reports()
        config.pluginmanager.register(guard, "cutover-nothing-checked")


def require_probe_account(config: pytest.Config) -> None:
    """`--probe-mail` is an explicit opt-in: without `mail.probe_account` it is an input error."""
    if not config.getoption("probe_mail") or FLEET_KEY not in config.stash:
        return
    fleet = fleet_of(config)
    for name in config.stash[PAIRS_KEY]:
        if fleet.pair(name).mail.probe_account is None:
            where = f" (pair {name})" if fleet.several else ""
            raise pytest.UsageError(
                f"--probe-mail: {fleet.source}: mail.probe_account is not set{where}; "
                "name one of mail.accounts (best a test account) to receive the test message"
            )


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from checks.plugin import check_id_of

    for item in items:
        check_id = check_id_of(item)
        if check_id is not None:
            item.extra_keyword_matches.add(check_id)


def selection_given(config: pytest.Config) -> str:
    """The `-k` and `-m` a run was given, as typed (`-k 'VFIO or VM'`), or ""."""
    return " and ".join(
        f"{flag} {value!r}"
        for flag, value in (("-k", config.option.keyword), ("-m", config.option.markexpr))
        if value
    )


def unconfigured_sections(config: pytest.Config) -> list[str]:
    """The inventory sections (`mysql:`) that areas or check IDs named by `-k`/`-m` need and
    no selected pair configures: their checks were never collected, so nothing matched."""
    import re

    from checks.plugin import AREA_SECTIONS
    from checks.support import PAIRS_KEY, pairs_of
    from cutover.catalogue import load_catalogue

    if PAIRS_KEY not in config.stash:
        return []
    typed = f"{config.option.keyword or ''} {config.option.markexpr or ''}"
    words = {word.lower() for word in re.findall(r"[A-Za-z0-9_]+", typed)}
    missing: dict[str, None] = {}
    for entry in load_catalogue():
        named = {entry.area, entry.check_id.lower(), entry.check_id.rstrip("0123456789").lower()}
        sections = AREA_SECTIONS.get(entry.module)
        if sections is None or not words & named:
            continue
        if not any(pair.configures(section) for pair in pairs_of(config) for section in sections):
            missing.update({f"{section}:": None for section in sections})
    return list(missing)


class NothingChecked:
    """On a phase run's controller: no check ran means a non-zero exit and untouched reports."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.ran = 0
        self.deselected = 0
        self.saved: dict[Path, bytes | None] = {}

    def report_paths(self) -> Iterator[Path]:
        from checks.machine import json_report_path

        option = self.config.option
        for value in (
            getattr(option, "xmlpath", None),
            getattr(option, "htmlpath", None),
            json_report_path(self.config),
        ):
            if value:
                yield Path(value).resolve()

    def save_reports(self) -> None:
        """What the report files hold before the run (None: no such file), to put back."""
        for path in self.report_paths():
            self.saved[path] = path.read_bytes() if path.is_file() else None

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected += len(items)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "setup":
            self.ran += 1

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.ran or self.config.option.collectonly:
            return
        if session.exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            return  # interrupted, or a usage error that has its own line
        session.exitstatus = EXIT_NOTHING_CHECKED
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line(f"cutover: {self.reason()}", red=True, bold=True)

    def reason(self) -> str:
        phase = self.config.getoption("phase")
        given = selection_given(self.config)
        kept = "reports left as they were"
        missing = unconfigured_sections(self.config)
        if missing:
            return (
                f"no check ran: the inventory configures no {' or '.join(missing)} section, "
                f"which the checks {given} selects need; {kept}"
            )
        if self.deselected:
            by = given or "the phase and the inventory"
            return (
                f"no check ran: {by} deselected all {self.deselected} collected checks of the "
                f"{phase} phase; {kept}"
            )
        if given:  # with xdist the workers deselect: the controller only sees none arrive
            return f"no check ran: no check of the {phase} phase matches {given}; {kept}"
        return f"no check ran: nothing was collected for the {phase} phase; {kept}"

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.ran and not config.option.collectonly:
            return
        for path, content in self.saved.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)
