"""`cutover run PHASE`: the phase's checks, as a pytest run in a child process.

pytest is run rather than imported: cutover/ stays free of pytest. `--nagios`
drops the run's terminal output and judges its JSON report instead
(cutover/cli/nagios.py), passing Ctrl-C and SIGTERM on to the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# pytest as `python -m pytest` would run it, but its usage lines say `cutover run`, not
# `__main__.py` (argparse names the program after sys.argv[0]).
PYTEST_AS_CUTOVER_RUN = (
    "import sys, pytest; sys.argv[0] = 'cutover run'; sys.exit(pytest.console_main())"
)
EXIT_INTERRUPTED = 2  # pytest's own code for a run stopped by Ctrl-C


def _pytest_command(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """The pytest command line of `run`: the installed checks, whatever `extra` looks like.

    pytest is run rather than imported: cutover/ stays free of pytest. No test
    path is added: the cutover plugin collects the installed checks in every
    phase run, so a pass-through value (`-k imap`) is never taken for a path.
    """
    settings = REPO / "pytest.ini"  # a checkout (editable install): its settings, its rootdir
    where = [f"-c={settings}", f"--rootdir={REPO}"] if settings.is_file() else []
    return [
        sys.executable,
        "-c",
        PYTEST_AS_CUTOVER_RUN,
        *where,
        *_cache_here(extra),
        f"--phase={args.phase}",
        f"--inventory={Path(args.inventory).expanduser().resolve()}",
        *(f"--pair={name}" for name in args.pair),
        *extra,
    ]


def _cache_here(extra: list[str]) -> list[str]:
    """pytest's cache in the current directory, never in the install directory (the rootdir).

    Nothing when the user chose for themselves: their own `cache_dir`, or no cache.
    """
    given = " ".join([*extra, os.environ.get("PYTEST_ADDOPTS", "")])
    if "cache_dir" in given or "no:cacheprovider" in given:
        return []
    return ["-o", f"cache_dir={Path.cwd() / '.pytest_cache'}"]


def cmd_run(args: argparse.Namespace, extra: list[str]) -> int:
    command = _pytest_command(args, extra)
    if args.nagios:
        return _run_nagios(args.phase, command)
    os.execv(sys.executable, command)
    return 0  # pragma: no cover - execv does not return


def _run_nagios(phase: str, command: list[str]) -> int:
    """`run --nagios`: the run's terminal output is dropped, its JSON report judged."""
    import tempfile

    from cutover.cli.nagios import render, unknown

    with tempfile.TemporaryDirectory(prefix="cutover-nagios-") as scratch:
        report = Path(scratch) / "report.json"
        completed = _run_forwarding_signals(
            [*command, f"--report-json={report}", "-p", "no:cacheprovider"]
        )
        if completed.returncode == EXIT_INTERRUPTED:
            line, code = unknown(phase, "interrupted")
        elif completed.returncode in (0, 1) and report.is_file():
            line, code = render(phase, json.loads(report.read_text(encoding="utf-8")))
        else:
            line, code = unknown(phase, _why_nothing(completed))
    print(line)
    return code


def _run_forwarding_signals(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run `command` in its own session: a Ctrl-C reaches it once, from here.

    The run then ends as an interrupted run does (its reports untouched) and
    this process lives on to print the status line. SIGTERM is passed on too.
    """
    import signal

    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )

    def forward(signum: int, frame: object) -> None:
        child.send_signal(signum)

    previous = {
        signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        stdout, stderr = child.communicate()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return subprocess.CompletedProcess(command, child.returncode, stdout, stderr)


def _why_nothing(completed: subprocess.CompletedProcess[str]) -> str:
    """The one line pytest (or the cutover plugin) gave for a run that judged nothing."""
    for text in (completed.stderr, completed.stdout):
        for line in text.splitlines():
            if line.startswith(("ERROR: ", "cutover: no check ran")):
                return line.removeprefix("ERROR: ").removeprefix("cutover: ")
    return f"pytest exited {completed.returncode} without a report"
