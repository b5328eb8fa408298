"""Measuring child processes (wall time, peak RSS) and driving the lab for a benchmark."""

from __future__ import annotations

import contextlib
import fcntl
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.budget import GENEROUS

REPO = Path(__file__).resolve().parents[1]
LAB_STATE = REPO / ".lab"
LAB_INVENTORY = LAB_STATE / "inventory.yaml"
LAB_LOCK = Path("/tmp/cutover-lab.lock")
CLIENT = ("ip", "netns", "exec", "cutover-client")
PYTHON = sys.executable
ACKNOWLEDGEMENT = "bench: TTLs lowered by the bench setup; no resolver in the lab caches them"


class BenchError(Exception):
    pass


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_mib: float
    returncode: int
    output: str
    cpu_s: float = 0.0  # user + system CPU of the command and its descendants
    busy: float | None = None  # the whole machine's CPU use meanwhile (lab servers too), 0-1

    @property
    def load(self) -> str:
        """`CPU 12 s, machine 85% busy`: whether the client or the machine was the bound."""
        machine = f", machine {self.busy:.0%} busy" if self.busy is not None else ""
        return f"CPU {self.cpu_s:.0f} s{machine}"


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat; None if unreadable."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def measure(command: Sequence[str], *, ok: Sequence[int] = (0,)) -> Run:
    """Run `command` once: wall time and the peak RSS of it and its descendants (wait4)."""
    before = _cpu_ticks()
    started = time.perf_counter()
    with subprocess.Popen(
        list(command), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as process:
        assert process.stdout is not None
        output = process.stdout.read()  # drain before waiting: a full pipe would block it
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    after = _cpu_ticks()
    busy = None
    if before is not None and after is not None and after[1] > before[1]:
        busy = (after[0] - before[0]) / (after[1] - before[1])
    text = output.decode("utf-8", errors="replace")
    if process.returncode not in ok:
        raise BenchError(
            f"{' '.join(command[:12])} ... exited {process.returncode}:\n{text[-3000:]}"
        )
    cpu = usage.ru_utime + usage.ru_stime
    return Run(seconds, usage.ru_maxrss / 1024, process.returncode, text, cpu, busy)


def best_of(command: Sequence[str], repeat: int, *, ok: Sequence[int] = (0,)) -> Run:
    """The median of `repeat` runs (and the highest peak memory seen)."""
    runs = [measure(command, ok=ok) for _ in range(max(1, repeat))]
    median = statistics.median(r.seconds for r in runs)
    chosen = min(runs, key=lambda r: abs(r.seconds - median))
    peak = max(r.peak_mib for r in runs)
    return Run(median, peak, chosen.returncode, chosen.output, chosen.cpu_s, chosen.busy)


def in_client(*command: str) -> list[str]:
    return [*CLIENT, *command]


def suite_command(
    inventory: Path,
    reports: Path,
    *targets: str,
    extra: Sequence[str] = (),
    profile: Path | None = None,
) -> list[str]:
    """The suite as an operator runs it (preflight, from the client namespace)."""
    profiler = ("-m", "cProfile", "-o", str(profile)) if profile else ()
    return in_client(
        PYTHON, *profiler, "-m", "pytest", "-p", "no:cacheprovider", "-q",
        f"-c={REPO / 'pytest.ini'}", f"--rootdir={REPO}",
        "--phase=preflight", f"--inventory={inventory}", f"--reports-dir={reports}",
        f"--baseline={reports / 'baseline.json'}", *extra,
        *(str(REPO / "checks" / t) for t in targets),
    )  # fmt: skip


def raw_command(area: str, inventory: Path) -> list[str]:
    return in_client(PYTHON, "-m", "bench.raw", area, str(inventory))


def lab(*args: str, timeout: float = 1800) -> str:
    completed = subprocess.run(
        [PYTHON, "-m", "lab", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    if completed.returncode != 0:
        raise BenchError(f"python -m lab {' '.join(args)} failed:\n{completed.stderr[-3000:]}")
    return completed.stdout


def lab_exec(host: str, script: str, timeout: float = 1800) -> str:
    return lab("exec", host, "--", "sh", "-c", script, timeout=timeout)


@contextlib.contextmanager
def lab_session(say: Any) -> Iterator[None]:
    """Hold the shared lab lock, bring the lab up to preflight, and always take it down."""
    with LAB_LOCK.open("a") as lock:
        say("  waiting for the lab lock ...")
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            say("  lab up, lower-ttl, sync")
            lab("up")
            lab("lower-ttl")
            lab("sync")
            yield
        finally:
            say("  lab down")
            lab("down")
            fcntl.flock(lock, fcntl.LOCK_UN)


def derived_inventory(name: str, change: Any = None) -> Path:
    """A copy of the lab's inventory (next to it: secrets are relative), changed by `change`."""
    data = yaml.safe_load(LAB_INVENTORY.read_text(encoding="utf-8"))
    data.setdefault("dns", {})["lowering_acknowledged"] = ACKNOWLEDGEMENT
    # The suite's own speed: a per-server budget that never binds (bench/budget.py
    # measures the default budget against its floor).
    data.setdefault("budget", dict(GENEROUS))
    if change is not None:
        change(data)
    path = LAB_STATE / f"bench-{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
