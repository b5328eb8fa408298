"""The baseline file: buffered records, one write per flush, safe merges between processes."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cutover.model.baseline import Baseline, BaselineError


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times any Baseline rewrote its file (one entry per write)."""
    seen: list[int] = []
    write = Baseline._write

    def counting(self: Baseline, sections: dict[str, dict[str, Any]]) -> None:
        seen.append(1)
        write(self, sections)

    monkeypatch.setattr(Baseline, "_write", counting)
    return seen


def on_disk(path: Path) -> dict[str, dict[str, Any]]:
    return json.loads(path.read_text())["sections"]


def test_a_thousand_records_are_one_write(tmp_path: Path, writes: list[int]) -> None:
    baseline = Baseline(tmp_path / "baseline.json")
    for i in range(1000):
        assert baseline.record("identity", f"endpoint-{i}", f"server-{i}") == f"server-{i}"
    assert writes == [] and not baseline.path.exists()
    baseline.flush()
    assert len(writes) == 1
    assert on_disk(baseline.path)["identity"]["endpoint-999"] == "server-999"
    baseline.flush()  # nothing pending: nothing written
    assert len(writes) == 1


def test_reading_a_section_with_pending_records_writes_them_first(
    tmp_path: Path, writes: list[int]
) -> None:
    baseline = Baseline(tmp_path / "baseline.json")
    baseline.record_many("dns_ttl_high", {"a": 1, "b": 2})
    assert baseline.get("other", "x") is None and writes == []
    assert baseline.section("dns_ttl_high") == {"a": 1, "b": 2}
    assert len(writes) == 1 and on_disk(baseline.path) == {"dns_ttl_high": {"a": 1, "b": 2}}
    assert baseline.get("dns_ttl_high", "a") == 1 and len(writes) == 1


def test_asking_for_one_key_does_not_write_the_others_pending(
    tmp_path: Path, writes: list[int]
) -> None:
    # The end-of-run pass marks each kind recorded, then asks about the next one:
    # with a 1,000-zone baseline each of those questions used to rewrite the file.
    baseline = Baseline(tmp_path / "baseline.json")
    baseline.record("recorded", "dns", "run-1")
    assert baseline.get("recorded", "mysql") is None and writes == []
    assert baseline.get("recorded", "dns") == "run-1" and writes == []
    # A first-value-wins record may lose to the file: asking for it writes first.
    baseline.record("identity", "imaps/old", "old.example.test", keep_existing=True)
    assert baseline.get("identity", "imaps/old") == "old.example.test" and len(writes) == 1
    assert on_disk(baseline.path)["recorded"] == {"dns": "run-1"}


def test_records_are_copied_when_recorded(tmp_path: Path) -> None:
    baseline = Baseline(tmp_path / "baseline.json")
    value = {"methods": ["PLAIN"]}
    baseline.record("auth", "imap-143", value)
    value["methods"].append("LOGIN")
    assert baseline.get("auth", "imap-143") == {"methods": ["PLAIN"]}
    with pytest.raises(TypeError):
        baseline.record("auth", "bad", object())


def test_keep_existing_first_value_wins_in_one_process(tmp_path: Path) -> None:
    baseline = Baseline(tmp_path / "baseline.json")
    assert baseline.record("dns_lowered", "z", "first", keep_existing=True) == "first"
    assert baseline.record("dns_lowered", "z", "second", keep_existing=True) == "first"
    baseline.flush()
    again = Baseline(baseline.path)  # a later run
    assert again.record_many("dns_lowered", {"z": "third"}, keep_existing=True) == {"z": "first"}
    assert again.record("dns_lowered", "z", "forced") == "forced"
    again.flush()
    assert on_disk(baseline.path)["dns_lowered"]["z"] == "forced"


def test_keep_existing_checks_the_file_again_when_flushing(tmp_path: Path) -> None:
    # Two workers both see no value, record their own; the first to flush wins.
    path = tmp_path / "baseline.json"
    first, second = Baseline(path), Baseline(path)
    assert first.record("dns_lowered", "z", "worker-1", keep_existing=True) == "worker-1"
    assert second.record("dns_lowered", "z", "worker-2", keep_existing=True) == "worker-2"
    second.record("identity", "imaps-993-old", "old.example.test")
    first.flush()
    second.flush()
    assert on_disk(path) == {
        "dns_lowered": {"z": "worker-1"},
        "identity": {"imaps-993-old": "old.example.test"},
    }
    assert second.get("dns_lowered", "z") == "worker-1"


def test_reads_see_what_another_process_wrote(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    reader, writer = Baseline(path), Baseline(path)
    assert reader.get("identity", "smtp-25-old") is None
    writer.record("identity", "smtp-25-old", "old.example.test")
    writer.flush()
    assert reader.get("identity", "smtp-25-old") == "old.example.test"


def test_an_unusable_file_is_a_baseline_error(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    path.write_text("{not json")
    baseline = Baseline(path)
    baseline.record("identity", "a", "b")  # without keep_existing nothing is read yet
    with pytest.raises(BaselineError, match="not valid JSON"):
        baseline.flush()
    with pytest.raises(BaselineError, match="not valid JSON"):
        baseline.record("identity", "a", "b", keep_existing=True)


def _worker(path: str, name: str, start: Any, count: int) -> None:
    baseline = Baseline(Path(path))
    start.wait()
    for i in range(count):
        baseline.record(name, str(i), i)
        baseline.record("shared", f"{name}-{i}", i)
    baseline.record("dns_lowered", "z", name, keep_existing=True)
    baseline.flush()


def test_two_processes_recording_at_once_merge(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [
        context.Process(target=_worker, args=(str(path), name, start, 500))
        for name in ("gw0", "gw1")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    sections = on_disk(path)
    assert len(sections["gw0"]) == len(sections["gw1"]) == 500
    assert len(sections["shared"]) == 1000
    assert sections["dns_lowered"]["z"] in ("gw0", "gw1")
    # keep_existing across processes: whoever flushed second kept the first one's value.
    first = sections["dns_lowered"]["z"]
    assert Baseline(path).record("dns_lowered", "z", "gw2", keep_existing=True) == first


# A valid inventory (the baseline fixture belongs to its pair) whose servers are on
# loopback: the end of a preflight records the old server (checks/record.py), and
# nothing of that may leave this machine.
LOOPBACK_INVENTORY = """
name: recording
old: {address: 127.0.0.1}
new: {address: 127.0.0.2}
timeouts: {connect: 1, operation: 1}
"""

RECORDING_CHECKS = """
import pytest

@pytest.mark.parametrize("n", range(20))
def test_records(baseline, n):
    baseline.record("identity", f"endpoint-{n}", f"server-{n}")
"""


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_run_writes_its_records_when_the_session_ends(
    tmp_path: Path, workers: tuple[str, ...]
) -> None:
    checks = tmp_path / "test_recording.py"
    checks.write_text(RECORDING_CHECKS)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(LOOPBACK_INVENTORY)
    path = tmp_path / "reports" / "baseline.json"
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--rootdir={tmp_path}",
         "--phase=preflight", f"--inventory={inventory}", f"--reports-dir={tmp_path}",
         f"--baseline={path}", *workers, str(checks)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert on_disk(path)["identity"] == {f"endpoint-{n}": f"server-{n}" for n in range(20)}


def test_the_file_is_one_record_per_line_and_reads_back_as_written(tmp_path: Path) -> None:
    hostile = 'a "quoted"\nline\u2028with \x00 and é'
    sections = {
        "imap-uids": {"user@example.test": {"uidvalidity": 7, "uids": list(range(1000))}},
        "identity": {hostile: hostile, "imaps-993/old": "old.example.test"},
        "empty": {},
    }
    baseline = Baseline(tmp_path / "baseline.json")
    for name, entries in sections.items():
        baseline.record_many(name, entries)
    baseline.flush()
    text = baseline.path.read_text(encoding="utf-8")
    assert json.loads(text) == {"format": 1, "sections": sections}
    # Server text never breaks a line: every record is one line, escaped.
    lines = text.splitlines()
    assert len(lines) == 1 + 1 + 3 + 4 + 1, lines  # header, empty, imap-uids, identity, end
    assert text.isascii() and '"format": 1' in lines[0]
    assert sum(line.startswith('  "') for line in lines) == 3
