"""The lab's postconditions, `heal`, the state tracker, ownership and `lab exec`'s directory.

The tracker (tests/conftest.py `Lab.reach`) checks the lab's postconditions
before every lab test and heals on drift: a test that kills the MySQL tunnel
behind a healthy cutover lab poisons no later test.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from lab import state as lab_state
from lab.run import pid_alive
from tests.conftest import Lab, lab_cli
from tests.suite import PYTHON, REPO, parse_junit, run_suite


def lab_cli_unchecked(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(cwd)},
    )


def kill_helper(name: str) -> int:
    """Kill one cutover helper on old behind the lab's back (as a dying ssh would)."""
    pid = int(lab_state.load()["cutover"][name])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pid


def mysql_tunnel_run(lab: Lab, directory: Path) -> list[tuple[str, str]]:
    """The MySQL tunnel check (MYSQL01) in the cutover phase: (check ID, outcome) per case."""
    run = run_suite(
        "cutover",
        lab.inventory,
        directory,
        "checks/test_mysql.py",
        "-k",
        "tunnel",
        namespace="cutover-client",
    )
    assert run.cases, run.summary()
    return sorted({(c.check_id, c.outcome) for c in run.cases})


def test_tracker_heals_a_dead_tunnel_and_the_next_run_is_green(
    cutover_lab: Lab, tmp_path: Path
) -> None:
    assert cutover_lab.drift() is None
    assert mysql_tunnel_run(cutover_lab, tmp_path / "before") == [("MYSQL01", "passed")]
    kill_helper("tunnel")
    # What a later healthy row saw in the flaky runs: a collateral MYSQL01.
    assert mysql_tunnel_run(cutover_lab, tmp_path / "dead") == [("MYSQL01", "failed")]
    drift = cutover_lab.drift()
    assert drift is not None and "tunnel" in drift, drift
    heals, rebuilds = cutover_lab.heals, cutover_lab.rebuilds
    cutover_lab.reach("cutover")  # what the next test's fixture asks for
    assert (cutover_lab.heals, cutover_lab.rebuilds) == (heals + 1, rebuilds)
    assert cutover_lab.drift() is None
    assert mysql_tunnel_run(cutover_lab, tmp_path / "after") == [("MYSQL01", "passed")]


def test_status_reports_a_broken_postcondition_and_heal_repairs_it(cutover_lab: Lab) -> None:
    assert "ok   old IP 198.51.100.10 forwards to new" in lab_cli("status").stdout
    kill_helper("forward-143")
    broken = lab_cli_unchecked("status")
    assert broken.returncode == 1, broken.stdout
    assert "FAIL cutover helpers on old: not running: forward-143(" in broken.stdout
    assert "FAIL old IP 198.51.100.10 forwards to new: imap/143:" in broken.stdout
    healed = lab_cli("heal").stdout
    assert "heal: old: forward-143 restarted" in healed
    assert "every postcondition holds" in healed
    assert lab_cli_unchecked("status").returncode == 0
    assert "nothing to do" in lab_cli("heal").stdout


def test_undo_fails_loudly_when_the_lab_is_not_healthy_after_it(cutover_lab: Lab) -> None:
    lab_cli("fault", "forward-drop:143")
    kill_helper("forward-80")  # broken outside the fault: its undo cannot restore it
    undo = lab_cli_unchecked("fault", "--undo", "forward-drop:143")
    lines = undo.stderr.strip().splitlines()
    assert undo.returncode == 1, undo.stdout + undo.stderr
    assert len(lines) == 1 and lines[0].startswith(
        "lab: error: fault --undo forward-drop:143: postcondition not met: "
    ), undo.stderr
    assert "forward-80" in lines[0] and "forward-143" not in lines[0], lines[0]
    lab_cli("heal")
    assert cutover_lab.drift() is None


def test_down_from_another_checkout_leaves_this_lab_up(up_lab: Lab, tmp_path: Path) -> None:
    other = tmp_path / "other-checkout"
    shutil.copytree(REPO / "lab", other / "lab", ignore=shutil.ignore_patterns("__pycache__"))
    down = lab_cli_unchecked("down", cwd=other)
    assert down.returncode == 1, down.stdout + down.stderr
    assert down.stderr.strip() == (
        f"lab: error: down: the running lab belongs to another checkout, {REPO}: leaving it up "
        "(run `python -m lab down` there, or `python -m lab down --force` to remove it)"
    )
    assert lab_state.load()["owner"] == str(REPO)
    assert up_lab.drift() is None
    up = lab_cli_unchecked("up", cwd=other)
    assert up.returncode == 1 and "belongs to another checkout" in up.stderr, up.stderr
    assert up_lab.drift() is None


def test_the_suite_runs_through_lab_exec_from_any_directory(
    preflight_lab: Lab, tmp_path: Path
) -> None:
    """`lab exec client -- pytest ...` as `lab up` suggests: IMAP baselines are written.

    Relative report and baseline paths (the default `reports/`) next to the
    absolute ones the writers derive: no EXDEV renaming the uidmap files.
    """
    command = [
        sys.executable,
        "-m",
        "lab",
        "exec",
        "client",
        "--",
        PYTHON,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--rootdir={REPO}",
        f"-c={REPO / 'pytest.ini'}",
        "--phase=preflight",
        f"--inventory={preflight_lab.inventory}",
        "--reports-dir=reports",
        "--junitxml=reports/preflight.xml",
        "--baseline=reports/baseline.json",
        str(REPO / "checks" / "test_imap.py"),
    ]
    completed = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    output = completed.stdout + completed.stderr
    assert "Invalid cross-device link" not in output, output[-3000:]
    cases = parse_junit(tmp_path / "reports" / "preflight.xml")
    assert cases and all(c.outcome == "passed" for c in cases), output[-3000:]
    assert completed.returncode == 0, output[-3000:]
    assert list((tmp_path / "reports" / "baseline.imap").glob("*.uidmap")), output[-3000:]


def test_down_removes_the_lab_of_a_checkout_that_no_longer_exists(lab: Lab, tmp_path: Path) -> None:
    lab.down()
    gone = tmp_path / "gone-checkout"
    shutil.copytree(REPO / "lab", gone / "lab", ignore=shutil.ignore_patterns("__pycache__"))
    up = lab_cli_unchecked("up", cwd=gone)
    assert up.returncode == 0, up.stdout + up.stderr
    assert lab_state.load() == {}  # the lab is the other checkout's, not ours
    shutil.rmtree(gone / "lab")  # the checkout is deleted; its .lab/ns mounts remain
    down = lab_cli("down").stdout
    assert f"the running lab belongs to {gone}, which no longer exists: removing it" in down
    namespaces = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    assert "cutover-" not in namespaces, namespaces
    assert str(gone) not in Path("/proc/self/mountinfo").read_text()
