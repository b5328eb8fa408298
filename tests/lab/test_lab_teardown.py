"""`down` leaves nothing behind, even after `up` was killed half-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lab.run import pid_alive
from tests.conftest import Lab, lab_cli
from tests.suite import REPO


def _lab_namespaces() -> list[str]:
    out = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith("cutover-")]


def _lab_pids() -> set[int]:
    pids: set[int] = set()
    for name in _lab_namespaces():
        out = subprocess.run(
            ["ip", "netns", "pids", name], capture_output=True, text=True, timeout=10, check=False
        ).stdout
        pids.update(int(pid) for pid in out.split())
    return pids


def _assert_nothing_left(pids: set[int]) -> None:
    assert _lab_namespaces() == []
    routes = subprocess.run(
        ["ip", "route", "show", "type", "unreachable"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    assert "198.51.100." not in routes
    routes6 = subprocess.run(
        ["ip", "-6", "route", "show", "type", "unreachable"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    assert "2001:db8:5100:" not in routes6
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(REPO / ".lab") not in mounts
    assert not list(Path("/etc/netns").glob("cutover-*"))
    alive = {pid for pid in pids if pid_alive(pid)}
    assert alive == set(), f"still running: {alive}"


def test_down_after_killed_up_leaves_nothing(lab: Lab) -> None:
    lab.down()
    up = subprocess.Popen(
        [sys.executable, "-m", "lab", "up"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        # Kill it once daemons run: the messiest moment to be interrupted.
        while not _lab_pids() - {up.pid} and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        pids = _lab_pids()
        assert pids, "up never started a daemon"
    finally:
        os.kill(up.pid, signal.SIGKILL)
        up.wait(timeout=10)
    lab_cli("down")
    _assert_nothing_left(pids)
    assert "no lab was running" in lab_cli("down").stdout
