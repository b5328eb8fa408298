"""A lighter start: pytest-html and jinja2 load when the HTML report is written, not before.

The runs need no lab: the port checks are pointed at loopback addresses
where nothing listens (they fail at once, and the reports must still be
written). A small probe plugin notes which heavy modules were imported by
the time the first check reported, and at the end.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from bench.start import ports_met
from tests.suite import PYTHON, REPO, run_suite

PROBE = """
import json, os, sys

HEAVY = ("jinja2", "pytest_html.plugin", "pytest_html.report", "pydantic")
seen = {}


def _note(when):
    seen.setdefault(when, [name for name in HEAVY if name in sys.modules])


def pytest_runtest_logreport(report):
    _note("first check")


def pytest_unconfigure(config):
    _note("end")
    with open(os.environ["CUTOVER_TEST_MODULES"], "w") as out:
        json.dump(seen, out)
"""


def _inventory(tmp_path: Path) -> Path:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "name": "start-test",
                "old": {"address": "127.0.0.2"},
                "new": {"address": "127.0.0.3"},
                "services": [{"name": "smtp", "port": 25, "protocol": "smtp", "tls": "none"}],
                "timeouts": {"connect": 2, "operation": 2},
            }
        )
    )
    return inventory


def _ports_run(tmp_path: Path, *args: str) -> tuple[Path, dict[str, list[str]], str]:
    (tmp_path / "start_probe.py").write_text(PROBE)
    modules = tmp_path / "modules.json"
    reports = tmp_path / "reports"
    run = run_suite(
        "preflight",
        _inventory(tmp_path),
        reports,
        "-p",
        "start_probe",
        *args,
        str(REPO / "checks" / "test_ports.py"),
        env={"PYTHONPATH": str(tmp_path), "CUTOVER_TEST_MODULES": str(modules)},
    )
    assert run.returncode == 1, run.summary()  # nothing listens: the checks fail, and say so
    return reports, json.loads(modules.read_text()), run.stdout


def test_the_html_report_is_written_and_pytest_html_loads_only_at_the_end(
    tmp_path: Path,
) -> None:
    reports, modules, stdout = _ports_run(tmp_path)
    page = (reports / "preflight.html").read_text(encoding="utf-8")
    assert "Verdict: phase preflight, inventory start-test" in page
    assert "PORT01" in page and "Generated html report" in stdout
    assert "jinja2" not in modules["first check"], modules
    assert "pytest_html.plugin" not in modules["end"], modules  # its report class, not its plugin
    assert {"jinja2", "pytest_html.report"} <= set(modules["end"]), modules


def test_html_given_by_the_user_is_written_there(tmp_path: Path) -> None:
    mine = tmp_path / "mine" / "page.html"
    reports, _, _ = _ports_run(tmp_path, f"--html={mine}", "--self-contained-html")
    assert "Verdict: phase preflight" in mine.read_text(encoding="utf-8")
    assert not (reports / "preflight.html").exists()


def test_no_html_typed_by_the_user_means_no_html_report(tmp_path: Path) -> None:
    reports, modules, stdout = _ports_run(tmp_path, "-p", "no:html")
    assert (reports / "preflight.xml").exists()
    assert not list(reports.glob("*.html")) and "Generated html report" not in stdout
    assert "jinja2" not in modules["end"], modules


def test_pytest_html_typed_by_the_user_is_loaded_at_once_and_writes_the_same_page(
    tmp_path: Path,
) -> None:
    reports, modules, _ = _ports_run(tmp_path, "-p", "html")
    assert "Verdict: phase preflight" in (reports / "preflight.html").read_text(encoding="utf-8")
    assert "pytest_html.plugin" in modules["first check"], modules


def test_pytest_version_imports_neither_the_models_nor_jinja2() -> None:
    code = (
        "import sys, pytest\n"
        f"pytest.main(['-c', {str(REPO / 'pytest.ini')!r}, '--rootdir', {str(REPO)!r}, "
        "'--version'])\n"
        "print(sorted(m for m in ('pydantic', 'jinja2', 'cutover.model.inventory') "
        "if m in sys.modules))\n"
    )
    completed = subprocess.run(
        [PYTHON, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert completed.stdout.strip().splitlines()[-1] == "[]", completed.stdout + completed.stderr


@pytest.mark.parametrize(
    ("suite", "loop", "floor", "met"),
    [
        (0.30, 0.24, 0.10, True),  # within 1.5x the loop
        (0.40, 0.24, 0.20, True),  # 1.67x, but only 0.83x the loop above the floor
        (0.51, 0.24, 0.19, False),  # 2.1x, and 1.33x the loop above the floor
        (0.37, 0.24, 0.10, False),  # 1.54x; the floor is no excuse (1.13x above it)
    ],
)
def test_the_ports_rule_of_issue_21(suite: float, loop: float, floor: float, met: bool) -> None:
    assert ports_met(suite, loop, floor) is met
