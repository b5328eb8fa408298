"""Server text in test ids, failure messages and recorded facts leaves every report inert.

No lab: a small test module stands in for checks that quote hostile server
text (a MySQL account named like an HTML element, a mailbox with terminal
escape sequences, a property name built from a group name). It runs under
the cutover plugin as an operator's run would (a subprocess, JUnit XML, the
HTML report), and:
- the terminal output holds no raw control character (C0 but newline and
  tab, DEL, C1);
- the JUnit XML parses, property names included;
- the HTML report, opened in headless Chromium without network, runs no
  planted script and holds no planted element.
A control page with the same text left raw proves the Chromium probe sees
a planted script when there is one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.suite import REPO
from tests.trust.report_safety import (
    chromium_available,
    dom_title,
    junit_parses,
    raw_controls,
    rendered_dom,
)

PLANTED = (
    "<img src=x id=planted onerror=\"document.title='pwned'\">"
    "<script>document.title='pwned'</script>"
)
ESCAPES = "\x1b]0;owned\x07\x1b[2K\x1b[1A\x9b31m\r"
HOSTILE = PLANTED + ESCAPES + "'`[brk"

MODULE = f"""
import pytest

from cutover.untrusted import property_name, shown

HOSTILE = {HOSTILE!r}


@pytest.mark.parametrize("account", [HOSTILE], ids=[shown(HOSTILE)])
def test_quotes_server_text(account, record):
    record(**{{property_name(f"group_{{account}}_members"): account}})
    record(**{{f"raw_{{account}}": account}})
    message = "HOSTILE01 grants of " + account + " differ:\\n  line two " + account
    pytest.fail(message, pytrace=False)


def test_error_text():
    raise ValueError("unexpected " + HOSTILE)


def test_skip_reason():
    pytest.skip("skipped for " + HOSTILE)
"""


@pytest.fixture(scope="module")
def hostile_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[bytes], Path]:
    tmp_path = tmp_path_factory.mktemp("hostile-report")
    (tmp_path / "test_hostile_module.py").write_text(MODULE, encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--rootdir={tmp_path}",
        "-c",
        str(REPO / "pytest.ini"),
        "-v",
        "-rA",
        f"--junitxml={tmp_path / 'run.xml'}",
        f"--html={tmp_path / 'run.html'}",
        "--self-contained-html",
        str(tmp_path / "test_hostile_module.py"),
    ]
    done = subprocess.run(command, capture_output=True, cwd=tmp_path, timeout=120, check=False)
    return done, tmp_path


def test_the_run_reports_each_outcome(
    hostile_run: tuple[subprocess.CompletedProcess[bytes], Path],
) -> None:
    done, _ = hostile_run
    out = done.stdout.decode(errors="replace")
    assert done.returncode == 1, out
    assert "2 failed, 1 skipped" in out, out
    assert "HOSTILE01 grants of <img src=x" in out  # shown, not dropped: the operator sees it
    assert "\\x1b]0;owned\\x07" in out


def test_no_raw_control_character_reaches_the_terminal(
    hostile_run: tuple[subprocess.CompletedProcess[bytes], Path],
) -> None:
    done, _ = hostile_run
    assert raw_controls(done.stdout) == []
    assert raw_controls(done.stderr) == []


def test_junit_parses_with_properties_named_from_server_text(
    hostile_run: tuple[subprocess.CompletedProcess[bytes], Path],
) -> None:
    _, tmp_path = hostile_run
    root = junit_parses(tmp_path / "run.xml")
    names = [p.get("name") or "" for p in root.iter("property")]
    assert any(n.startswith("group__img_src_x_id_planted") for n in names), names
    values = [p.get("value") or "" for p in root.iter("property")]
    assert any("\\x1b]0;owned" in v for v in values), values


@pytest.mark.skipif(not chromium_available(), reason="needs chromium (lab/install.sh installs it)")
def test_the_html_report_runs_no_planted_script(
    hostile_run: tuple[subprocess.CompletedProcess[bytes], Path],
) -> None:
    _, tmp_path = hostile_run
    html = tmp_path / "run.html"
    assert "HOSTILE01" in html.read_text(encoding="utf-8")
    dom = rendered_dom(html)
    assert "test_quotes_server_text" in dom, "the report rendered no result row"
    assert dom_title(dom) == "run.html"
    assert 'id="planted"' not in dom
    assert "<script>document.title" not in dom


@pytest.mark.skipif(not chromium_available(), reason="needs chromium (lab/install.sh installs it)")
def test_the_chromium_probe_sees_a_planted_script(tmp_path: Path) -> None:
    """The control: the same text left raw in a page does run, and is seen to."""
    page = tmp_path / "raw.html"
    page.write_text(f"<html><head><title>raw.html</title></head><body>{PLANTED}</body></html>")
    dom = rendered_dom(page)
    assert dom_title(dom) == "pwned"
    assert 'id="planted"' in dom
