"""Shared helpers of the trust self-tests: leak hunting, inventory copies, verdicts."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from tests.suite import PYTHON, REPO, SuiteRun, parse_junit

SECRETS_DIR = REPO / ".lab" / "secrets"


def lab_secret_values() -> dict[str, str]:
    """Every secret the lab holds (file name -> value), as the inventory would read it."""
    values = {}
    if SECRETS_DIR.is_dir():
        for path in sorted(SECRETS_DIR.iterdir()):
            if path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace").strip()
                if text:
                    values[path.name] = text.splitlines()[0].strip()
    return values


def leaks(needles: dict[str, str], roots: Iterable[Path], texts: dict[str, str]) -> list[str]:
    """Where any needle's value appears: files under `roots` (any bytes), named texts."""
    found = []
    for root in roots:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            data = path.read_bytes()
            for label, value in needles.items():
                if value.encode() in data or value in path.name:
                    found.append(f"{label} in {path}")
    for where, text in texts.items():
        for label, value in needles.items():
            if value in text:
                found.append(f"{label} in {where}")
    return found


def suite_with_cache(
    phase: str,
    inventory: Path,
    reports: Path,
    cache_dir: Path,
    *args: str,
    namespace: str | None = None,
    timeout: float = 900,
) -> SuiteRun:
    """The suite with the cache provider ON (`-o cache_dir`), long tracebacks and locals shown.

    tests.suite.run_suite disables the cache provider; this run keeps it, so
    `.pytest_cache` (lastfailed holds test ids) can be searched too.
    """
    reports.mkdir(parents=True, exist_ok=True)
    junit = reports / f"{phase}.xml"
    command = [
        PYTHON,
        "-m",
        "pytest",
        f"--rootdir={REPO}",
        f"-c={REPO / 'pytest.ini'}",
        f"-o=cache_dir={cache_dir}",
        f"--phase={phase}",
        f"--inventory={inventory}",
        f"--reports-dir={reports}",
        f"--junitxml={junit}",
        f"--baseline={reports / 'baseline.json'}",
        "--tb=long",
        "--showlocals",
        "-rA",
        *args,
        str(REPO / "checks"),
    ]
    if namespace is not None:
        command = ["ip", "netns", "exec", namespace, *command]
    completed = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
    )
    cases = parse_junit(junit) if junit.exists() else []
    return SuiteRun(completed.returncode, completed.stdout, completed.stderr, cases)


def junit_names(run: SuiteRun) -> str:
    return "\n".join(f"{c.classname}::{c.name}" for c in run.cases)
