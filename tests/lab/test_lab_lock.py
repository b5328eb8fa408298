"""The lab lock and the self-tests' opt-in: no lab without asking, no deadlock under a holder.

None of these tests needs a lab: they use a lock file of their own, and the
opt-in tests run a lab test in a subprocess that must refuse to start one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import lock
from lab.run import LabError
from tests.suite import REPO, parse_junit

PROBE = "from pathlib import Path; from lab import lock; print(lock.held_by_us(Path({path!r})))"


def test_a_verb_whose_ancestor_holds_the_lock_goes_ahead(tmp_path: Path) -> None:
    path = tmp_path / "lab.lock"
    # flock(1) holds the lock and runs a shell, which runs Python: a grandchild.
    shell = f"{sys.executable} -c {PROBE.format(path=str(path))!r}"
    out = subprocess.run(
        ["flock", "-w", "10", str(path), "sh", "-c", shell],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO,
    ).stdout
    assert out.strip() == "True"


def test_a_lock_held_by_another_process_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "lab.lock"
    # Its own process group: `sleep` inherits the locked descriptor from flock(1).
    holder = subprocess.Popen(["flock", str(path), "sleep", "60"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while holder.pid not in lock.holders(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert holder.pid in lock.holders(path)
        assert not lock.held_by_us(path)
        with (
            pytest.raises(LabError, match=rf"still held after 0s \(by PID {holder.pid}\)"),
            lock.hold("lab up", wait=0.3, path=path),
        ):
            pass
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    with lock.hold("lab up", wait=1, path=path):
        assert lock.held_by_us(path)
    assert not lock.held_by_us(path)


LAB_TEST = "tests/lab/test_lab_story.py::test_every_port_answers_from_its_own_server"


def run_lab_test_without_opt_in(tmp_path: Path, **env: str) -> tuple[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("CI", "CUTOVER_SELFTEST_LAB")}
    junit = tmp_path / "junit.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            f"--basetemp={tmp_path / 'basetemp'}",
            LAB_TEST,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**environment, **env},
    )
    [case] = parse_junit(junit)
    return case.outcome, case.message


def test_lab_tests_are_skipped_unless_asked_for(tmp_path: Path) -> None:
    outcome, message = run_lab_test_without_opt_in(tmp_path)
    assert outcome == "skipped", message
    assert "lab self-tests run only through `make test`" in message
    assert "CUTOVER_SELFTEST_LAB=1" in message


def test_lab_tests_fail_in_ci_unless_asked_for(tmp_path: Path) -> None:
    outcome, message = run_lab_test_without_opt_in(tmp_path, CI="true")
    assert outcome == "error", message  # failed in the lab fixture's setup
    assert message.splitlines()[-1] == (
        "CI=true: lab tests must run, but lab self-tests run only through `make test` (or, "
        "under the lab lock, `flock -w 3600 /tmp/cutover-lab.lock env CUTOVER_SELFTEST_LAB=1 "
        ".venv/bin/python -m pytest ...`)"
    ), message
