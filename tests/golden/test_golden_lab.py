"""Behaviour unchanged on the lab: collection, and a real preflight run, match the golden files.

On the healthy lab (the story's preflight state, shared with the other lab
tests: no lab state of its own): the lab inventory's collected ids and JUnit
properties for each phase, then one preflight run (its own reports directory,
so a fresh baseline) -- its JUnit testcases, JSON report and closing verdict --
as captured before issue #16's restructuring. tests/golden/capture.py
says what is normalised, and when and how to regenerate
(`CUTOVER_GOLDEN_REGENERATE=1` makes this test write the files instead).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import Lab
from tests.golden import capture
from tests.suite import run_suite


def _collected(lab: Lab, phase: str, workdir: Path) -> list[dict[str, object]]:
    dump = workdir / f"{phase}.dump.json"
    ran = run_suite(
        phase,
        lab.inventory,
        workdir / phase,
        "--collect-only",
        "-q",
        "-p",
        capture.DUMP_PLUGIN,
        namespace="cutover-client",
        env={capture.DUMP_ENV: str(dump)},
    )
    return capture.read_dump(dump, ran.returncode, ran.stdout + ran.stderr)


def test_lab_collection_and_preflight_run_are_unchanged(preflight_lab: Lab, tmp_path: Path) -> None:
    now = {
        f"lab/collect.{phase}.jsonl": capture.as_lines(
            capture.normalise_items(_collected(preflight_lab, phase, tmp_path))
        )
        for phase in capture.PHASES
    }
    # Its own reports directory: a fresh baseline, whatever other lab tests recorded before.
    reports = tmp_path / "run"
    run = run_suite("preflight", preflight_lab.inventory, reports, namespace="cutover-client")
    report = reports / "preflight.json"
    assert run.cases and report.is_file(), run.summary()
    now["lab/preflight.junit.jsonl"] = capture.as_lines(capture.normalise_junit(run.cases))
    normalised = capture.normalise_json_report(json.loads(report.read_text("utf-8")))
    now["lab/preflight.json"] = json.dumps(normalised, indent=1, ensure_ascii=False) + "\n"
    now["lab/preflight.terminal.txt"] = capture.verdict_section(
        run.stdout, capture.collapsed_mysql04(run.cases)
    )
    raw = os.environ.get("CUTOVER_GOLDEN_RAW")
    if raw:  # keep what the run gave as it was, to find what varies between two runs
        Path(raw).mkdir(parents=True, exist_ok=True)
        Path(raw, "stdout.txt").write_text(run.stdout, "utf-8")
        Path(raw, "preflight.json").write_text(report.read_text("utf-8"), "utf-8")
        Path(raw, "junit.jsonl").write_text(
            capture.as_lines([c.__dict__ for c in run.cases]), "utf-8"
        )
    if os.environ.get(capture.REGENERATE_ENV) == "1":
        capture.write_golden(now)
        pytest.skip("golden files regenerated: review `git diff tests/golden/`")
    diff = capture.compare(capture.read_golden(capture.LAB_FILES), now)
    if diff:
        pytest.fail(
            (
                "what users see on the lab changed (regenerate only if meant: "
                "tests/golden/capture.py):\n" + diff
            ),
            pytrace=False,
        )
