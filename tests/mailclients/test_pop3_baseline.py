"""The POP3 baseline: a maildrop file beside the baseline, read back against its digest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cutover.compare.pop3 import Maildrop, PopMessage
from cutover.compare.pop3_baseline import maildrop_path, read_baseline_maildrop, write_maildrop
from cutover.model.baseline import Baseline, BaselineError

ACCOUNT = "alice@example.test"
HOSTILE = [
    PopMessage(1, "0000000166f0c1d2", 1234, "mid:0123456789abcdef"),
    PopMessage(2, "tab\there\nnew line", 5, None),  # a server that ignores RFC 1939
    PopMessage(3, 'quote" \\ ünïcode \x1b[31m', 0, "mid:fedcba9876543210"),
]


def _written(tmp_path: Path, messages: list[PopMessage]) -> tuple[Baseline, dict[str, object]]:
    baseline = Baseline(tmp_path / "baseline.json")
    drop = Maildrop("pop3s 198.51.100.10:995 (old IP)", tuple(messages), "a note")
    return baseline, write_maildrop(baseline, ACCOUNT, drop)


def test_a_maildrop_reads_back_as_written_with_hostile_strings(tmp_path: Path) -> None:
    baseline, entry = _written(tmp_path, HOSTILE)
    drop = read_baseline_maildrop(baseline, ACCOUNT, entry)
    assert drop.messages == tuple(HOSTILE)
    assert drop.note == "a note"
    assert "198.51.100.10:995" in drop.where and str(entry["recorded"]) in drop.where
    # The baseline entry holds the summary only: the messages are in the file.
    assert entry["count"] == 3 and "messages" not in entry
    assert maildrop_path(baseline, ACCOUNT).parent == tmp_path / "baseline.imap"
    assert len(maildrop_path(baseline, ACCOUNT).read_bytes().splitlines()) == 4


def test_an_empty_maildrop_reads_back_empty(tmp_path: Path) -> None:
    baseline, entry = _written(tmp_path, [])
    assert read_baseline_maildrop(baseline, ACCOUNT, entry).messages == ()


def test_a_baseline_with_inline_messages_is_still_read(tmp_path: Path) -> None:
    entry = {
        "recorded": "2026-11-01T10:00:00+00:00",
        "source": "pop3 198.51.100.10:110 (old IP)",
        "note": "",
        "messages": [["u1", 10, "mid:aa"], ["u2", 20, None]],
    }
    drop = read_baseline_maildrop(Baseline(tmp_path / "baseline.json"), ACCOUNT, entry)
    assert drop.messages == (PopMessage(1, "u1", 10, "mid:aa"), PopMessage(2, "u2", 20, None))


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda path: path.unlink(), "cannot read its maildrop"),
        (lambda path: path.write_bytes(path.read_bytes()[:-30]), "malformed line"),
        (
            lambda path: path.write_bytes(b"\n".join(path.read_bytes().split(b"\n")[:-2]) + b"\n"),
            "2 of 3 messages",
        ),
        (
            lambda path: path.write_bytes(path.read_bytes().replace(b"1234", b"4321")),
            "does not match its maildrop",
        ),
        (lambda path: path.write_bytes(b"something else\n"), "has no maildrop file"),
    ],
    ids=["missing", "cut-mid-line", "truncated", "changed", "not-a-maildrop"],
)
def test_a_damaged_maildrop_file_is_one_clear_error(
    tmp_path: Path, damage: object, expected: str
) -> None:
    baseline, entry = _written(tmp_path, HOSTILE)
    damage(maildrop_path(baseline, ACCOUNT))  # type: ignore[operator]
    with pytest.raises(BaselineError) as caught:
        read_baseline_maildrop(baseline, ACCOUNT, entry)
    message = str(caught.value)
    assert expected in message and "run preflight again" in message
    assert ACCOUNT in message and "\n" not in message


def test_an_incomplete_entry_is_one_clear_error(tmp_path: Path) -> None:
    baseline, entry = _written(tmp_path, HOSTILE)
    del entry["digest"]
    with pytest.raises(BaselineError, match=r"is incomplete .*run preflight again"):
        read_baseline_maildrop(baseline, ACCOUNT, entry)


def test_the_file_is_named_from_the_account_not_from_the_entry(tmp_path: Path) -> None:
    baseline, entry = _written(tmp_path, HOSTILE)
    outside = tmp_path.parent / "elsewhere.maildrop"
    entry["maildrop"] = str(outside)  # a baseline edited to point outside its directory
    assert read_baseline_maildrop(baseline, ACCOUNT, entry).messages == tuple(HOSTILE)
    hostile = "../../etc/passwd@x"
    assert maildrop_path(baseline, hostile).parent == tmp_path / "baseline.imap"


def test_an_unwritable_directory_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "baseline.imap").write_text("a file where the directory goes")
    with pytest.raises(BaselineError, match=f"cannot write the POP3 maildrop of {ACCOUNT}"):
        _written(tmp_path, HOSTILE)


def test_each_line_is_json(tmp_path: Path) -> None:
    baseline, _ = _written(tmp_path, HOSTILE)
    lines = maildrop_path(baseline, ACCOUNT).read_bytes().splitlines()[1:]
    assert [json.loads(line)[0] for line in lines] == [m.uidl for m in HOSTILE]
