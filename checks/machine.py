"""Machine outputs of a phase run: `reports/<phase>.json` (docs/json-report.md).

One record per check (ID, pair, target, verdict, evidence, JUnit properties,
durations) plus the run's phase, inventory, pairs and counts. The format is
versioned (`format_version`) and described by `docs/report.schema.json`;
`cutover run PHASE --nagios` reads it to print its one line.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest

from checks.support import FLEET_KEY, PAIRS_KEY, PHASE_KEY, fleet_of
from cutover.model.catalogue import area_of
from cutover.untrusted import shown

FORMAT_VERSION = 1
VERDICTS = ("passed", "failed", "error", "skipped")
# Evidence keeps its lines; each line is capped (one hostile value cannot flood the file).
EVIDENCE_LINE_LIMIT = 2000


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("cutover").addoption(
        "--report-json",
        default=None,
        metavar="PATH",
        help="the JSON report (default: REPORTS_DIR/<phase>.json, like the JUnit XML)",
    )


def report_stem(config: pytest.Config) -> str:
    """`preflight`, or `preflight-web07` when one pair of a fleet is checked (a CI matrix job)."""
    phase = config.stash[PHASE_KEY]
    selected = config.stash[PAIRS_KEY]
    several = fleet_of(config).several
    return phase.value + (f"-{selected[0]}" if several and len(selected) == 1 else "")


def json_report_path(config: pytest.Config) -> Path | None:
    """Where this run writes its JSON report (None: not a phase run, or --collect-only)."""
    if FLEET_KEY not in config.stash or config.option.collectonly:
        return None
    given = config.getoption("report_json")
    if given:
        return Path(given)
    return Path(config.getoption("reports_dir")) / f"{report_stem(config)}.json"


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    path = json_report_path(config)
    if path is not None:
        guard = config.pluginmanager.get_plugin("cutover-nothing-checked")
        staged = guard.stage(path) if guard is not None else path  # checks/selection.py
        config.pluginmanager.register(JsonReport(config, staged), "cutover-json-report")


def pytest_sessionstart(session: pytest.Session) -> None:
    """testinfra's `--nagios` in a phase run: cutover's line, not `TESTINFRA OK - 0 passed`."""
    config = session.config
    testinfra = config.pluginmanager.get_plugin("nagiosreporter")
    report = config.pluginmanager.get_plugin("cutover-json-report")
    if testinfra is None or not isinstance(report, JsonReport):
        return
    config.pluginmanager.unregister(testinfra)  # the run's terminal output stays in its spool
    config.pluginmanager.register(NagiosLine(report), "cutover-nagios-line")


class NagiosLine:
    """Prints the run's Nagios status line (cutover.cli.nagios); its state is the exit code."""

    def __init__(self, report: JsonReport) -> None:
        self.report = report

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from cutover.cli.nagios import render, unknown

        phase = self.report.config.stash[PHASE_KEY].value
        if session.exitstatus == pytest.ExitCode.INTERRUPTED:
            line, code = unknown(phase, "interrupted")
        elif self.report.checks:
            line, code = render(phase, self.report.document(int(session.exitstatus)))
        else:
            guard = self.report.config.pluginmanager.get_plugin("cutover-nothing-checked")
            line, code = unknown(phase, guard.reason() if guard else "no check ran")
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        session.exitstatus = code


def _evidence(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple):  # a skip: (file, line, "Skipped: reason")
        text = str(longrepr[2]).removeprefix("Skipped: ")
    else:
        crash = getattr(longrepr, "reprcrash", None)
        text = crash.message if crash is not None else str(longrepr)
        text = text.removeprefix("Failed: ")
    return "\n".join(shown(line, limit=EVIDENCE_LINE_LIMIT) for line in text.splitlines())


def _target(nodeid: str, pair: str | None) -> str | None:
    """The check's target from its test id: `imaps-993-new` in `test_x[web07-imaps-993-new]`."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    target = nodeid[nodeid.index("[") + 1 : -1]
    if pair is not None:
        target = target.removeprefix(pair).removeprefix("-")
    return target or None


class JsonReport:
    """Collects each check's reports on the controller and writes the file at the end."""

    def __init__(self, config: pytest.Config, path: Path) -> None:
        self.config = config
        self.path = path
        self.started = time.time()
        self.checks: dict[str, dict[str, Any]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = {
            str(name): shown(value, limit=EVIDENCE_LINE_LIMIT)
            for name, value in report.user_properties
        }
        if "check_id" not in properties:
            return
        entry = self.checks.setdefault(
            report.nodeid,
            {
                "id": properties["check_id"],
                "area": area_of(properties["check_id"]),
                "pair": properties.get("migration"),
                "target": _target(report.nodeid, properties.get("pair")),
                "test": shown(report.nodeid, limit=EVIDENCE_LINE_LIMIT),
                "verdict": "passed",
                "evidence": "",
                "properties": {},
                "durations": {},
            },
        )
        entry["properties"] = properties
        entry["durations"][report.when] = round(report.duration, 4)
        verdict = entry["verdict"]
        if report.failed:
            verdict = "failed" if report.when == "call" else "error"
        elif report.skipped and verdict == "passed":
            verdict = "skipped"
        if verdict != entry["verdict"]:
            entry["verdict"] = verdict
            entry["evidence"] = _evidence(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.checks:
            return  # never a report of nothing (checks/selection.py says why)
        if session.exitstatus == pytest.ExitCode.INTERRUPTED:
            return  # never a pass for a check that did not finish: the reports stay as they were
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = self.document(int(session.exitstatus))
        # A staged file: it becomes the report only if the run ended (checks/selection.py).
        self.path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")

    def document(self, exit_status: int) -> dict[str, Any]:
        fleet = fleet_of(self.config)
        guard = self.config.pluginmanager.get_plugin("cutover-nothing-checked")
        checks = list(self.checks.values())
        totals = dict.fromkeys(VERDICTS, 0)
        areas: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(VERDICTS, 0))
        for check in checks:
            totals[check["verdict"]] += 1
            areas[check["area"]][check["verdict"]] += 1
        finished = time.time()
        return {
            "format": "cutover-report",
            "format_version": FORMAT_VERSION,
            "cutover_version": _cutover_version(),
            "phase": self.config.stash[PHASE_KEY].value,
            # Absolute, however the run was typed (`cutover run` or pytest, relative or not).
            "inventory": str((self.config.invocation_params.dir / fleet.source).resolve())
            if fleet.source
            else None,
            "selection": guard.selection() if guard is not None else None,
            "migration": fleet.name,
            "pairs": list(self.config.stash[PAIRS_KEY]),
            "started_utc": _utc(self.started),
            "finished_utc": _utc(finished),
            "duration_s": round(finished - self.started, 3),
            "exit_status": exit_status,
            "totals": {"checks": len(checks), **totals},
            "areas": {area: areas[area] for area in sorted(areas)},
            "checks": checks,
        }


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _cutover_version() -> str:
    try:
        return version("cutover")
    except PackageNotFoundError:  # a checkout used without installing
        return "unknown"
