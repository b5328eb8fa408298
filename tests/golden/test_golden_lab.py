"""Behaviour unchanged on the lab: collection, and real runs of each phase, match the golden files.

On the healthy lab, in the story states the other lab tests walk through
anyway (no lab state of its own):

- preflight state: the lab inventory's collected ids and JUnit properties for
  each phase, then one preflight run in its own reports directory (a fresh
  baseline);
- cutover and acceptance states: one run of that phase against the baseline
  that preflight run recorded on this same lab (skipped, saying so, when it did
  not run on this build of the lab, e.g. the test selected alone);

each run's JUnit testcases, JSON report and closing verdict, as captured
before issue #16's restructuring. tests/golden/capture.py says what is
normalised, and when and how to regenerate (`CUTOVER_GOLDEN_REGENERATE=1`
makes these tests write the files instead of comparing).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import Lab
from tests.golden import capture
from tests.suite import SuiteRun, run_suite

# The reports directory of the preflight golden run (its baseline.json and baseline.imap/,
# the later phases' reference), per build of the lab (Lab.generation).
PREFLIGHT_REPORTS: dict[int, Path] = {}


def _collected(lab: Lab, phase: str, workdir: Path) -> list[dict[str, object]]:
    dump = workdir / f"{phase}.dump.json"
    ran = run_suite(
        phase,
        capture.LAB_INVENTORY,
        workdir / phase,
        "--collect-only",
        "-q",
        "-p",
        capture.DUMP_PLUGIN,
        namespace="cutover-client",
        env={capture.DUMP_ENV: str(dump)},
    )
    return capture.read_dump(dump, ran.returncode, ran.stdout + ran.stderr)


def _run(lab: Lab, phase: str, reports: Path) -> tuple[SuiteRun, dict[str, str]]:
    """One run of `phase` from the client namespace; its golden files, as it gives them now."""
    run = run_suite(phase, capture.LAB_INVENTORY, reports, namespace="cutover-client")
    report = reports / f"{phase}.json"
    assert run.cases and report.is_file(), run.summary()
    normalised = capture.normalise_json_report(json.loads(report.read_text("utf-8")))
    junit, data, terminal = capture.lab_run_files(phase)
    files = {
        junit: capture.as_lines(capture.normalise_junit(run.cases)),
        data: json.dumps(normalised, indent=1, ensure_ascii=False) + "\n",
        terminal: capture.verdict_section(run.stdout, capture.collapsed_mysql04(run.cases)),
    }
    raw = os.environ.get("CUTOVER_GOLDEN_RAW")
    if raw:  # what the run gave, before normalising: to find what varies between two runs
        directory = Path(raw, phase)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "stdout.txt").write_text(run.stdout, "utf-8")
        shutil.copy(report, directory / f"{phase}.json")
        shutil.copy(reports / f"{phase}.xml", directory / f"{phase}.xml")
    return run, files


def _unchanged(now: dict[str, str]) -> None:
    if os.environ.get(capture.REGENERATE_ENV) == "1":
        capture.write_golden(now)
        pytest.skip("golden files regenerated: review `git diff tests/golden/`")
    diff = capture.compare(capture.read_golden(now), now)
    if diff:
        pytest.fail(
            "what users see on the lab changed (regenerate only if meant: "
            "tests/golden/capture.py):\n" + diff,
            pytrace=False,
        )


def test_lab_collection_and_preflight_run_are_unchanged(preflight_lab: Lab, tmp_path: Path) -> None:
    now = {
        f"lab/collect.{phase}.jsonl": capture.as_lines(
            capture.normalise_items(_collected(preflight_lab, phase, tmp_path))
        )
        for phase in capture.PHASES
    }
    assert set(now) == set(capture.LAB_COLLECT_FILES)
    # Its own reports directory: a fresh baseline, whatever other lab tests recorded before.
    reports = tmp_path / "preflight-run"
    _, files = _run(preflight_lab, "preflight", reports)
    PREFLIGHT_REPORTS[preflight_lab.generation] = reports
    _unchanged({**now, **files})


def _later_phase(lab: Lab, phase: str, tmp_path: Path) -> None:
    preflight = PREFLIGHT_REPORTS.get(lab.generation)
    if preflight is None or not (preflight / "baseline.json").is_file():
        pytest.skip(
            f"the {phase} golden run needs the baseline of the preflight golden run on this "
            "build of the lab: run tests/golden/test_golden_lab.py whole"
        )
    reports = tmp_path / f"{phase}-run"
    # A copy of what preflight recorded: each later run starts from it unchanged.
    shutil.copytree(preflight, reports, ignore=shutil.ignore_patterns("preflight.*"))
    _, files = _run(lab, phase, reports)
    _unchanged(files)


def test_lab_cutover_run_is_unchanged(cutover_lab: Lab, tmp_path: Path) -> None:
    _later_phase(cutover_lab, "cutover", tmp_path)


def test_lab_acceptance_run_is_unchanged(acceptance_lab: Lab, tmp_path: Path) -> None:
    _later_phase(acceptance_lab, "acceptance", tmp_path)
