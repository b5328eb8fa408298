"""Self-test fixtures: the lab, driven through its command line, one per session.

Lab tests need root (network namespaces). Outside CI they are skipped with a
reason when that is missing; with CI=true they run, and fail rather than skip.

The lab walks the migration story forward (up -> preflight -> cutover ->
acceptance). Tests ask for the state they need through the `preflight_lab`,
`cutover_lab` and `acceptance_lab` fixtures, and are ordered by that state so
the story is walked once per session; asking for an earlier state than the
current one rebuilds the lab.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.suite import REPO, SuiteRun, run_suite

IN_CI = os.environ.get("CI") == "true"
STORY = ("up", "preflight", "cutover", "acceptance")
# The lab verbs that take the lab from one story state to the next.
STEPS = {
    "preflight": [["lower-ttl"], ["sync"]],
    "cutover": [["cutover"]],
    "acceptance": [["dns-switch"]],
}


def lab_unavailable() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, daemons)"
    for tool in ("ip", "dovecot", "postfix", "apache2", "mariadbd", "pdns_server", "socat"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return f"the lab needs {tool} (run `make test`, which installs the lab's packages)"
    return None


def require_lab() -> None:
    reason = lab_unavailable()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true: lab tests must run, but {reason}", pytrace=False)
    pytest.skip(reason)


def lab_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [sys.executable, "-m", "lab", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if completed.returncode != 0:
        raise AssertionError(
            f"`python -m lab {' '.join(args)}` failed ({completed.returncode}):\n"
            f"{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
        )
    return completed


@dataclass
class Lab:
    """The running lab, as the self-tests see it."""

    reports: Path
    state: str = "down"
    faults: list[str] = field(default_factory=list)

    @property
    def inventory(self) -> Path:
        return REPO / ".lab" / "inventory.yaml"

    def exec(
        self, host: str, *command: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a command on a lab host (`python -m lab exec HOST -- CMD`), checked."""
        return lab_cli("exec", host, "--", *command, timeout=timeout)

    def reach(self, target: str) -> None:
        if self.state != "down" and STORY.index(target) < STORY.index(self.state):
            self.state = "down"  # going back in the story: rebuild
        if self.state == "down":
            lab_cli("up")
            self.state = "up"
        for step in STORY[STORY.index(self.state) + 1 : STORY.index(target) + 1]:
            for verb in STEPS[step]:
                lab_cli(*verb)
            self.state = step

    @contextmanager
    def fault(self, name: str) -> Iterator[None]:
        """Break exactly one property for the duration of the block."""
        lab_cli("fault", name)
        try:
            yield
        finally:
            lab_cli("fault", "--undo", name)

    def suite(self, phase: str, *args: str, inventory: Path | None = None) -> SuiteRun:
        """Run the cutover suite from the client namespace, as an operator would."""
        return run_suite(
            phase,
            inventory or self.inventory,
            self.reports / phase,
            *args,
            namespace="cutover-client",
        )

    def inventory_variant(
        self, directory: Path, change: Callable[[dict[str, Any]], None] | None = None
    ) -> Path:
        """A copy of the lab's inventory in `directory`, its file paths made absolute.

        `change` edits the parsed YAML in place (e.g. acknowledge the TTL lowering).
        """
        base = self.inventory.parent

        def absolute(node: Any) -> Any:
            if isinstance(node, dict):
                return {
                    key: str(base / value)
                    if (key.endswith("_file") or key == "ssh_config") and value
                    else absolute(value)
                    for key, value in node.items()
                }
            if isinstance(node, list):
                return [absolute(item) for item in node]
            return node

        data = absolute(yaml.safe_load(self.inventory.read_text(encoding="utf-8")))
        if change is not None:
            change(data)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "inventory.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), "utf-8")
        return path

    def down(self) -> None:
        lab_cli("down")
        self.state = "down"


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_lab()
    session_lab = Lab(reports=tmp_path_factory.mktemp("lab-reports"))
    try:
        yield session_lab
    finally:
        session_lab.down()


@pytest.fixture
def preflight_lab(lab: Lab) -> Lab:
    """The lab with TTLs lowered and data synced: preflight must pass."""
    lab.reach("preflight")
    return lab


@pytest.fixture
def cutover_lab(lab: Lab) -> Lab:
    """The lab with the old host forwarding every port to the new one."""
    lab.reach("cutover")
    return lab


@pytest.fixture
def acceptance_lab(lab: Lab) -> Lab:
    """The lab after the DNS switch."""
    lab.reach("acceptance")
    return lab


@pytest.fixture
def up_lab(lab: Lab) -> Lab:
    """The lab freshly up: TTLs still 3600, new host not yet synced."""
    lab.reach("up")
    return lab


@pytest.fixture
def scaled_lab(lab: Lab) -> Lab:
    """The lab after the DNS switch, with `lab scale` data added: runs after every other state."""
    lab.reach("acceptance")
    return lab


_ORDER = {"up_lab": 0, "preflight_lab": 1, "cutover_lab": 2, "acceptance_lab": 3, "scaled_lab": 4}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Walk the story once: tests that need an earlier lab state run first.
    # Stable sort keeps each module's own order; tests without a lab go first.
    def story_position(item: pytest.Item) -> int:
        names = getattr(item, "fixturenames", ())
        positions = [pos for name, pos in _ORDER.items() if name in names]
        return max(positions, default=-1)

    items.sort(key=story_position)
    for item in items:
        if story_position(item) >= 0 or "lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.lab)
