"""The progress lines of long observations: on the terminal, in pytest's layout, never in JUnit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from checks.progress import PLAIN_EVERY, ProgressDisplay, progress_line
from tests.suite import REPO

# Nothing listens on these loopback addresses: connections are refused at once.
UNUSED_OLD, UNUSED_NEW = "127.0.0.2", "127.0.0.3"


class FakeWriter:
    fullwidth = 60

    def __init__(self) -> None:
        self.text = ""

    @property
    def width_of_current_line(self) -> int:
        return len(self.text.rsplit("\n", 1)[-1])

    def write(self, msg: str, *, flush: bool = False, **markup: bool) -> None:
        self.text += msg


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def display(*, in_place: bool) -> tuple[ProgressDisplay, FakeWriter, Clock, list[bool]]:
    writer, clock, handed_back = FakeWriter(), Clock(), []
    shown = ProgressDisplay(writer, in_place=in_place, wrote=handed_back.append, clock=clock)
    return shown, writer, clock, handed_back


def test_the_line_says_what_how_far_and_how_long() -> None:
    assert (
        progress_line("DNS: 400 zones on 2 servers", "questions", 1234, 2400, 1.25)
        == "cutover: DNS: 400 zones on 2 servers: 1234/2400 questions, 1.2 s"
    )


def test_plain_lines_start_then_every_few_seconds_then_done() -> None:
    shown, writer, clock, handed_back = display(in_place=False)
    writer.write("checks/test_mailclients.py ")  # pytest's line: ours starts on a new one
    stage = shown.stage("logins", "accounts")
    stage(0, 50)
    for done in range(1, 50):
        clock.now += 0.25
        stage(done, 50)
    stage(50, 50)
    lines = writer.text.split("\n")
    assert lines[0] == "checks/test_mailclients.py "
    assert lines[1] == "cutover: logins: 0/50 accounts, 0.0 s"
    assert len(lines) == 2 + int(49 * 0.25 // PLAIN_EVERY) + 1, lines
    assert lines[-1] == "cutover: logins: 50/50 accounts, 12.2 s"  # left open for pytest
    assert handed_back[-1] is True and not any(handed_back[:-1])


def test_on_a_terminal_the_line_is_rewritten_in_place() -> None:
    shown, writer, clock, _ = display(in_place=True)
    stage = shown.stage("services", "endpoints")
    stage(0, 18)
    clock.now += 0.5
    stage(9, 18)
    clock.now += 0.01  # too soon to redraw
    stage(10, 18)
    clock.now += 0.2
    stage(18, 18)
    assert "\n" not in writer.text
    drawn = [part.rstrip() for part in writer.text.split("\r")]
    assert drawn == [
        "cutover: services: 0/18 endpoints, 0.0 s",
        "cutover: services: 9/18 endpoints, 0.5 s",
        "cutover: services: 18/18 endpoints, 0.7 s",
    ]
    other = shown.stage("POP3", "accounts")  # a new stage keeps the last one's line
    other(1, 1)
    assert writer.text.split("\n")[-1] == "cutover: POP3: 1/1 accounts, 0.0 s"


def test_a_stage_whose_total_grows_ends_with_its_block() -> None:
    shown, writer, clock, _ = display(in_place=False)
    with shown.stage("DNS: 2 zones on 1 server", "questions") as stage:
        stage(0, 16)
        clock.now += 1
        stage(16, 16)  # round one done; MX targets come next
        stage(16, 20)
        clock.now += 5.5
        stage(20, 20)
    assert writer.text.split("\n") == [
        "cutover: DNS: 2 zones on 1 server: 0/16 questions, 0.0 s",
        "cutover: DNS: 2 zones on 1 server: 20/20 questions, 6.5 s",
        "cutover: DNS: 2 zones on 1 server: 20/20 questions, 6.5 s",
    ]


def test_nothing_is_shown_without_a_writer() -> None:
    stage = ProgressDisplay(None, in_place=False).stage("services", "endpoints")
    stage(0, 2)
    stage(2, 2)  # no error, no output


# --- in a run ---------------------------------------------------------------


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "inventory.yaml"
    data = {
        "name": "progress-test",
        "old": {"address": UNUSED_OLD},
        "new": {"address": UNUSED_NEW},
        "services": [
            {"name": "imaps", "port": 993, "protocol": "imap", "tls": "implicit"},
            {"name": "smtp", "port": 25, "protocol": "smtp", "tls": "starttls"},
        ],
        "timeouts": {"connect": 2, "operation": 2},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_ports(inventory: Path, reports: Path, *options: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"-c={REPO / 'pytest.ini'}",
         f"--rootdir={REPO}", "--phase=preflight", f"--inventory={inventory}",
         f"--reports-dir={reports}", f"--baseline={reports / 'baseline.json'}", *options,
         str(REPO / "checks" / "test_ports.py")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 1, completed.stdout + completed.stderr  # nothing answers
    return completed.stdout


def test_verbose_run_shows_the_stage_and_junit_has_none_of_it(
    inventory: Path, tmp_path: Path
) -> None:
    stdout = run_ports(inventory, tmp_path, "-v")
    lines = stdout.splitlines()
    assert "cutover: services: 0/4 endpoints, 0.0 s" in lines, stdout
    done = [i for i, line in enumerate(lines) if line.startswith("cutover: services: 4/4 ")]
    assert len(done) == 1, stdout
    # pytest's own line for the test comes back, whole, after ours.
    assert lines[done[0] + 1].startswith("checks/test_ports.py::test_port_answers[imaps-993-old] ")
    assert "cutover: services" not in (tmp_path / "preflight.xml").read_text()


@pytest.mark.parametrize("options", [(), ("-q",), ("-v", "-n", "2")], ids=["plain", "q", "xdist"])
def test_no_progress_when_not_asked_or_from_xdist_workers(
    inventory: Path, tmp_path: Path, options: tuple[str, ...]
) -> None:
    stdout = run_ports(inventory, tmp_path, *options)
    assert "cutover: services:" not in stdout, stdout
