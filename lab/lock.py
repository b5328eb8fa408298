"""The machine's lab lock (`/tmp/cutover-lab.lock`): one lab per machine, runs take turns.

Every verb that changes the lab holds the lock while it works. `make test`,
`make demo`, `make matrix` and people running lab self-tests wrap a whole run
in `flock -w 3600 /tmp/cutover-lab.lock COMMAND`; the lab verbs that run
started by such a command must go ahead, not wait for their own ancestor.

How a verb knows its ancestor holds the lock: it asks the kernel.
`/proc/locks` lists every flock with the PID that took it and the locked
file's device and inode; the verb walks its own parent chain (`PPid:` in
/proc/PID/status) and proceeds if the holder is itself or an ancestor.
This is chosen over an environment variable the holder exports because an
exported variable proves nothing: it survives in shells and processes long
after the lock is released (or is copied into an unrelated environment), so
it would let a verb run unlocked; and `flock(1)`, the holder the Makefile
uses, exports nothing. The kernel's table cannot be stale: the lock is held
or it is not.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.run import LabError

LOCK_FILE = Path("/tmp/cutover-lab.lock")
WAIT = 3600.0


def _file_id(path: Path) -> tuple[int, int, int] | None:
    """(major, minor, inode) of the lock file, as /proc/locks names it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return os.major(st.st_dev), os.minor(st.st_dev), st.st_ino


def holders(path: Path = LOCK_FILE) -> set[int]:
    """PIDs holding a flock on `path` (waiters, listed with `->`, are not holders)."""
    wanted = _file_id(path)
    found: set[int] = set()
    if wanted is None:
        return found
    try:
        lines = Path("/proc/locks").read_text(encoding="ascii").splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->" or fields[1] != "FLOCK":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            pid = int(fields[4])
            ident = (int(major, 16), int(minor, 16), int(inode))
        except ValueError:
            continue
        if ident == wanted:
            found.add(pid)
    return found


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def lineage(pid: int | None = None) -> list[int]:
    """This process and its ancestors, nearest first."""
    chain: list[int] = []
    current = os.getpid() if pid is None else pid
    while current > 0 and current not in chain:
        chain.append(current)
        current = _parent(current)
    return chain


def held_by_us(path: Path = LOCK_FILE) -> bool:
    """True when this process or one of its ancestors holds the lock."""
    return bool(holders(path) & set(lineage()))


@contextmanager
def hold(what: str, *, wait: float = WAIT, path: Path = LOCK_FILE) -> Iterator[None]:
    """Hold the lab lock for the block; a no-op when an ancestor already holds it."""
    if held_by_us(path):
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() > deadline:
                raise LabError(
                    f"{what}: the lab lock {path} is still held after {wait:.0f}s "
                    f"(by PID {', '.join(map(str, sorted(holders(path)))) or '?'})"
                )
            if not told:
                owners = ", ".join(map(str, sorted(holders(path)))) or "another process"
                print(f"lab: {what}: waiting for the lab lock {path} (held by PID {owners})")
                told = True
            time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the flock
