"""Baseline writers rename within one directory handle: no cwd/mount layout breaks them.

The case `lab exec` used to create: a working directory opened in one mount
namespace, the process then moved into another (`nsenter --wd=DIR`). A
relative path then resolves on the first namespace's mount, an absolute one
on the second's, and a rename between them fails with EXDEV. No lab needed:
a private mount namespace of our own (`unshare --mount`, root only).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.suite import REPO

WRITE = """
import json
from pathlib import Path
from cutover.model.baseline import Baseline
from cutover.compare.imap import Listing
from cutover.compare.imap_baseline import UidMapWriter
baseline = Baseline(Path("reports/baseline.json"))
baseline.record("identity", "imaps-993/old", "old.example.test")
writer = UidMapWriter(baseline, "alice@example.test", "old")
writer.listing(Listing(frozenset({"INBOX"}), frozenset({"INBOX"}), frozenset({"INBOX"})))
writer.commit()
baseline.flush()
print(json.dumps(sorted(p.name for p in Path("reports").rglob("*"))))
"""


@pytest.fixture
def other_mount_namespace() -> Iterator[int]:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("nsenter") is None:
        pytest.skip("needs root, unshare and nsenter (a private mount namespace)")
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "120"])
    try:
        deadline = time.monotonic() + 10
        mine = os.readlink("/proc/self/ns/mnt")
        while os.readlink(f"/proc/{holder.pid}/ns/mnt") == mine:
            assert time.monotonic() < deadline, "unshare did not start"
            time.sleep(0.02)
        yield holder.pid
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_baseline_writes_with_a_working_directory_from_another_mount_namespace(
    other_mount_namespace: int, tmp_path: Path
) -> None:
    (tmp_path / "reports").mkdir()
    completed = subprocess.run(
        [
            "nsenter",
            f"--mount=/proc/{other_mount_namespace}/ns/mnt",
            f"--wd={tmp_path}",  # opened before entering: the old `lab exec` layout
            "--",
            sys.executable,
            "-c",
            WRITE,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert "cross-device" not in completed.stderr, completed.stderr
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == (
        '["alice@example.test.uidmap", "baseline.imap", "baseline.json", "baseline.json.lock"]'
    ), completed.stdout
