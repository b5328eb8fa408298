"""Run the cutover suite as an operator would, and read what it reported.

Self-tests never call check functions directly: they run pytest on checks/
as a subprocess (inside the lab's client namespace when a lab is used) and
read the JUnit XML, so every test proves the whole path an operator sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


@dataclass
class Case:
    name: str
    classname: str
    outcome: str  # passed | failed | error | skipped
    message: str
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def check_id(self) -> str:
        return self.properties.get("check_id", "")


@dataclass
class SuiteRun:
    returncode: int
    stdout: str
    stderr: str
    cases: list[Case]

    def failing_ids(self) -> set[str]:
        return {c.check_id for c in self.cases if c.outcome in ("failed", "error")}

    def failing(self) -> list[Case]:
        return [c for c in self.cases if c.outcome in ("failed", "error")]

    def by_name(self, name: str) -> Case:
        for case in self.cases:
            if case.name == name:
                return case
        raise KeyError(f"no testcase {name!r}; have {[c.name for c in self.cases]}")

    def summary(self) -> str:
        lines = [f"returncode {self.returncode}"]
        lines += [f"{c.outcome:8} {c.name}: {c.message[:300]}" for c in self.cases]
        return "\n".join([*lines, self.stdout[-3000:], self.stderr[-2000:]])


def parse_junit(path: Path) -> list[Case]:
    cases = []
    for testcase in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            element = testcase.find(kind)
            if element is not None:
                outcome = "failed" if kind == "failure" else kind
                message = (element.get("message") or "") + "\n" + (element.text or "")
                break
        properties = {p.get("name", ""): p.get("value", "") for p in testcase.iter("property")}
        cases.append(
            Case(
                name=testcase.get("name", ""),
                classname=testcase.get("classname", ""),
                outcome=outcome,
                message=message.strip(),
                properties=properties,
            )
        )
    return cases


def run_suite(
    phase: str,
    inventory: Path,
    reports: Path,
    *args: str,
    namespace: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> SuiteRun:
    """`pytest checks/ --phase PHASE --inventory INV` (in `namespace` if given)."""
    reports.mkdir(parents=True, exist_ok=True)
    junit = reports / f"{phase}.xml"
    command = [
        PYTHON,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--rootdir={REPO}",
        f"-c={REPO / 'pytest.ini'}",
        f"--phase={phase}",
        f"--inventory={inventory}",
        f"--reports-dir={reports}",
        f"--junitxml={junit}",
        f"--baseline={reports / 'baseline.json'}",
        *args,
    ]
    if not any(a.startswith("checks") or a.endswith(".py") for a in args):
        command.append(str(REPO / "checks"))
    if namespace is not None:
        command = ["ip", "netns", "exec", namespace, *command]
    completed = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    cases = parse_junit(junit) if junit.exists() else []
    return SuiteRun(completed.returncode, completed.stdout, completed.stderr, cases)
