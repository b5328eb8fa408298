"""Running commands in the root namespace and "on" a lab host.

A host is a network namespace plus a persistent mount and UTS namespace
(bind-mounted files under `.lab/ns/`), entered with `nsenter`, so inside it
`hostname`, `/etc/postfix`, `/run/mysqld/mysqld.sock` are the host's own.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from lab.topology import STATE, Host

DEFAULT_TIMEOUT = 60.0
NS_FILES = STATE / "ns"


class LabError(Exception):
    """Something in the lab failed; the message says what and where."""


def run(
    cmd: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    input: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command (no shell), capture its output, raise `LabError` on failure."""
    try:
        result = subprocess.run(
            list(cmd), input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise LabError(f"timed out after {timeout:.0f}s: {' '.join(cmd)}") from None
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise LabError(f"exit {result.returncode}: {' '.join(cmd)}\n  " + "\n  ".join(detail))
    return result


def enter(host: Host, *, workdir: str | None = None) -> list[str]:
    """The `nsenter` prefix that runs a command on `host`."""
    prefix = [
        "nsenter",
        f"--net=/run/netns/{host.netns}",
        f"--mount={NS_FILES / (host.key + '.mnt')}",
        f"--uts={NS_FILES / (host.key + '.uts')}",
    ]
    # Entering a mount namespace moves the process to its root directory.
    prefix.append(f"--wd={workdir or '/'}")
    return [*prefix, "--"]


def on(
    host: Host,
    cmd: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    input: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `cmd` on `host` and capture its output."""
    return run([*enter(host), *cmd], timeout=timeout, input=input, check=check)


def spawn(host: Host, cmd: Sequence[str], log: Path) -> int:
    """Start a long-running daemon on `host`, detached, stdio to its own log.

    Detached means: its own session, stdin from /dev/null, stdout/stderr to
    `log`. A daemon holding our stdout would keep `make demo | tee` open.
    nsenter execs the command (no --pid), so the PID returned is the daemon's.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [*enter(host), *cmd],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    return process.pid


def wait_until(what: str, ready: Callable[[], bool], *, timeout: float = 30.0) -> float:
    """Poll `ready` until it is true; return the seconds it took."""
    start = time.monotonic()
    while True:
        if ready():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise LabError(f"{what}: not ready after {timeout:.0f}s")
        time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    """True while the process runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            # The state follows the command name, which may contain spaces and ")".
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
