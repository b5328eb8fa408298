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
  or all deselected) exits non-zero with one line saying why, its last.
- Reports are published only by a run whose checks ran: an empty,
  interrupted (Ctrl-C) or crashed run leaves them as they were, untouched.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from _pytest.junitxml import xml_key

from checks.support import FLEET_KEY, PAIRS_KEY, PHASE_KEY, fleet_of
from cutover.model.catalogue import runs_in
from cutover.model.phases import AREAS, Phase

CHECKS_DIR = Path(__file__).resolve().parent
NEEDS_PHASE = (
    "the checks need a phase: --phase preflight|cutover|acceptance|decommission --inventory FILE "
    "(or `cutover run PHASE -i FILE`); the self-tests run with `make test`"
)
# pytest's own exit code for "no tests collected": a phase run that checked nothing.
EXIT_NOTHING_CHECKED = 5

_PHASE_MARKERS = {
    Phase.PREFLIGHT: "the gate before the DNS change",
    Phase.CUTOVER: "while the old host forwards every port to the new one",
    Phase.ACCEPTANCE: "after the DNS change",
    Phase.DECOMMISSION: "before the old host is switched off (may the forwards stop?)",
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


def named_check_modules(config: pytest.Config) -> list[str] | None:
    """`["test_ports"]` for `pytest ... checks/test_ports.py[::...]`; None: any check may run."""
    if config.args_source is not pytest.Config.ArgsSource.ARGS or not config.args:
        return None
    modules = []
    for arg in config.args:
        path = (config.invocation_params.dir / _checks_arg(config, arg).split("::")[0]).resolve()
        if path.parent != CHECKS_DIR or not path.name.startswith("test_") or path.suffix != ".py":
            return None
        modules.append(path.stem)
    return modules


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


@pytest.hookimpl(trylast=True)  # after checks/config.py loaded the inventory and set report paths
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
    from checks.support import check_id_of

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

    from checks.grouping import AREA_SECTIONS
    from checks.support import PAIRS_KEY, pairs_of
    from cutover.model.catalogue import load_catalogue

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
    """On a phase run's controller: reports are published only by a run whose checks ran.

    junitxml, pytest-html and the JSON report write staged files beside their
    places (`reports/.preflight.xml.partial`). When checks ran and the run
    ended (exit 0 or 1), each staged file replaces its report in one rename.
    Otherwise (no check ran, Ctrl-C, an internal error) the staged files are
    removed: the reports are not touched (same bytes, same mtime), a reports
    directory made for nothing is removed again, no "generated ... report"
    line claims otherwise, and the run's last line says why.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.ran = 0
        self.deselected = 0  # checks of the phase left out by -k, -m (not the other phases')
        self.selected: int | None = None  # after deselection (None: not known, xdist)
        self.staged: dict[Path, Path] = {}  # staged file -> the report it becomes
        self.made: list[Path] = []  # directories the reports would be the first in
        self.published = False
        self.last_line: str | None = None
        option = config.option
        for name in ("xmlpath", "htmlpath"):
            if getattr(option, name, None):
                setattr(option, name, str(self.stage(getattr(option, name))))

    def stage(self, value: str | Path) -> Path:
        """The staged file for the report at `value` (as junitxml and pytest-html resolve it)."""
        final = Path.cwd() / Path(os.path.expandvars(str(value))).expanduser()
        staged = final.with_name(f".{final.name}.partial")
        self.staged[staged] = final
        missing = final.parent
        while not missing.exists() and missing not in self.made:
            self.made.append(missing)
            missing = missing.parent
        return staged

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        from checks.support import check_id_of

        phase = self.config.stash[PHASE_KEY]
        for item in items:
            check_id = check_id_of(item)
            self.deselected += check_id is not None and runs_in(check_id, phase)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not self.config.pluginmanager.hasplugin("dsession"):  # xdist: the workers collect
            self.selected = len(session.items)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "setup":
            self.ran += 1

    def selection(self) -> dict[str, Any]:
        """What chose the checks that ran: the JSON report's `selection`."""
        option = self.config.option
        return {
            "keyword": option.keyword or None,
            "markexpr": option.markexpr or None,
            "pairs": self.config.getoption("pair") or None,
            "maxfail": option.maxfail or None,
            "deselected": self.deselected,
            "not_run": None if self.selected is None else max(0, self.selected - self.ran),
        }

    def selection_line(self) -> str | None:
        """`selection: -k 'VFIO or VM' — 138 checks of the phase not selected` (None: all ran)."""
        chosen = self.selection()
        given = [
            *([f"-k {chosen['keyword']!r}"] if chosen["keyword"] else []),
            *([f"-m {chosen['markexpr']!r}"] if chosen["markexpr"] else []),
            *(f"--pair {name}" for name in chosen["pairs"] or []),
            *(
                ["-x" if chosen["maxfail"] == 1 else f"--maxfail {chosen['maxfail']}"]
                if chosen["maxfail"]
                else []
            ),
        ]
        counts = []
        if chosen["deselected"]:
            counts.append(f"{chosen['deselected']} checks of the phase not selected")
        if chosen["not_run"]:
            counts.append(f"{chosen['not_run']} selected checks not run")
        if not given and not counts:
            return None
        return (
            "selection: "
            + (" ".join(given) or "all")
            + (" — " + ", ".join(counts) if counts else "")
        )

    @pytest.hookimpl(wrapper=True, trylast=True)  # inside every writer's, before the summary
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, object, object]:
        ended = session.exitstatus
        if (
            not self.ran
            and not self.config.option.collectonly
            and ended
            in (
                pytest.ExitCode.OK,
                pytest.ExitCode.NO_TESTS_COLLECTED,
            )
        ):
            session.exitstatus = EXIT_NOTHING_CHECKED
            self.last_line = f"cutover: {self.reason()}"
        try:
            result = yield
        except BaseException:
            self.discard()
            raise
        if (
            self.ran
            and not self.config.option.collectonly
            and ended
            in (
                pytest.ExitCode.OK,
                pytest.ExitCode.TESTS_FAILED,
            )
        ):
            self.publish()
        else:
            self.discard()
            if ended == pytest.ExitCode.INTERRUPTED:
                self.last_line = (
                    "cutover: interrupted: no report written, the reports were left as they were"
                )
            elif self.last_line is None:
                self.last_line = (
                    f"cutover: the run did not finish (exit {int(ended)}): no report written, "
                    "the reports were left as they were"
                )
        return result

    def publish(self) -> None:
        for staged, final in self.staged.items():
            if staged.exists():
                os.replace(staged, final)
        self.published = True
        # The "generated ... report" lines name the reports, not the staged files.
        xml = self.config.stash.get(xml_key, None)
        if xml is not None:
            xml.logfile = str(self.staged.get(Path(xml.logfile), xml.logfile))
        for plugin in self._html_reports():
            plugin._report_path = self.staged.get(plugin._report_path, plugin._report_path)

    def discard(self) -> None:
        self.discard_files()
        # No "generated xml file" / "Generated html report" line for a report not written.
        xml = self.config.stash.get(xml_key, None)
        if xml is not None:
            del self.config.stash[xml_key]
            self.config.pluginmanager.unregister(xml)
        for plugin in self._html_reports():
            self.config.pluginmanager.unregister(plugin)

    def discard_files(self) -> None:
        for staged in self.staged:
            staged.unlink(missing_ok=True)
        for directory in self.made:  # deepest first
            with contextlib.suppress(OSError):
                directory.rmdir()

    def _html_reports(self) -> list[Any]:
        if "pytest_html.basereport" not in sys.modules:  # no report made (checks/html_later.py)
            return []
        from pytest_html.basereport import BaseReport

        return [
            plugin
            for plugin in self.config.pluginmanager.get_plugins()
            if isinstance(plugin, BaseReport) and hasattr(plugin, "_report_path")
        ]

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
        if not self.published:  # e.g. an input error before the session: no staged file kept
            self.discard_files()
        if self.last_line is not None:
            terminal = config.pluginmanager.get_plugin("terminalreporter")
            if terminal is not None:
                terminal.write_line(self.last_line, red=True, bold=True)
            else:
                print(self.last_line, flush=True)
