"""The comparison logic, on in-memory mailboxes: every finding, its check ID and its cause."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cutover.compare.imap import (
    AccountReport,
    Batch,
    Listing,
    MailboxState,
    MailSource,
    MessageKey,
    Pair,
    fingerprint,
)
from cutover.compare.imap_baseline import BaselineSource, UidMapWriter, uid_map_path
from cutover.compare.imap_stream import compare_account
from cutover.model.baseline import Baseline, BaselineError
from cutover.probes.connect import ProbeError
from cutover.probes.mail.imap_parsing import message_id

ACCOUNT = "alice@example.test"
Mailboxes = dict[str, tuple[MailboxState, dict[int, MessageKey]]]


class MemorySource:
    """A `MailSource` over mailboxes held in memory (what a server would answer)."""

    compact = False

    def __init__(
        self,
        label: str,
        mailboxes: Mailboxes,
        subscribed: set[str] | None = None,
        fail_in: str | None = None,
    ) -> None:
        self.label = label
        self.mailboxes = mailboxes
        self.subscribed = set(mailboxes) if subscribed is None else subscribed
        self.fail_in = fail_in
        self._name = ""

    def listing(self) -> Listing:
        names = frozenset(self.mailboxes)
        return Listing(names, names, frozenset(self.subscribed))

    def examine(self, name: str) -> MailboxState:
        self._name = name
        return self.mailboxes[name][0]

    def batches(self, batch_size: int) -> Iterator[Batch]:
        if self._name == self.fail_in:
            raise ProbeError(f"UID FETCH on {self.label} as {ACCOUNT}: connection reset")
        items = sorted(self.mailboxes[self._name][1].items())
        for start in range(0, len(items), batch_size):
            yield items[start : start + batch_size]

    def highestmodseq(self, name: str) -> int | None:
        return self.mailboxes[name][0].highestmodseq


def key(n: int, flags: tuple[str, ...] = ("\\Seen",)) -> MessageKey:
    return MessageKey(f"<{n}@lab.test>", 1000 + n, flags)


def healthy() -> Mailboxes:
    inbox = {uid: key(uid, ("\\Seen",) if uid % 2 else ()) for uid in (1, 2, 4, 5, 6, 7)}
    inbox[6] = MessageKey("headers:0123abcd", 900, ("$Important", "\\Flagged"))
    return {
        "INBOX": (MailboxState("INBOX", 1700000000, 8, 6, 40), inbox),
        "Archive/2024": (
            MailboxState("Archive/2024", 1700000001, 4, 3, 12),
            {uid: key(100 + uid) for uid in (1, 2, 3)},
        ),
        "Entwürfe": (MailboxState("Entwürfe", 1700000002, 2, 1, 3), {1: key(200, ("\\Draft",))}),
    }


def compare(old: MailSource, new: MailSource, batch_size: int = 2) -> AccountReport:
    return compare_account(ACCOUNT, [old, new], [Pair(0, 1)], batch_size)


def only(report: AccountReport, check: str) -> str:
    failing = {f.check for f in report.findings}
    assert failing == {check}, report.findings
    return "\n".join(report.failures(check))


def test_identical_mailboxes_have_no_findings() -> None:
    report = compare(MemorySource("old", healthy()), MemorySource("new", healthy()))
    assert report.findings == []
    assert report.states[1]["INBOX"].highestmodseq == 40
    assert report.extras == {}


def test_new_mail_on_new_is_allowed_and_reported() -> None:
    new = healthy()
    state, messages = new["INBOX"]
    new["INBOX"] = (
        MailboxState("INBOX", state.uidvalidity, 10, 8, 45),
        {**messages, 8: key(8), 9: key(9)},
    )
    report = compare(MemorySource("old", healthy()), MemorySource("new", new))
    assert report.findings == []
    assert report.extras == {(0, "INBOX"): (2, [8, 9])}


def test_changed_uidvalidity_fails_imap02_only() -> None:
    new = healthy()
    messages = new["Archive/2024"][1]
    new["Archive/2024"] = (MailboxState("Archive/2024", 1700001001, 4, 3, 12), messages)
    text = only(compare(MemorySource("old IP", healthy()), MemorySource("new IP", new)), "IMAP02")
    assert "alice@example.test mailbox 'Archive/2024'" in text
    assert "UIDVALIDITY 1700000001 on old IP, 1700001001 on new IP" in text
    assert "re-created" in text


def test_renumbered_uids_fail_imap03_naming_imapsync() -> None:
    new = healthy()
    state, messages = new["INBOX"]
    moved = {uid + 7: k for uid, k in messages.items()}
    new["INBOX"] = (MailboxState("INBOX", state.uidvalidity, 15, 6, 60), moved)
    text = only(compare(MemorySource("old IP", healthy()), MemorySource("new IP", new)), "IMAP03")
    assert "mailbox 'INBOX': 6 of 6 messages" in text
    assert "missing UIDs 1, 2, 4, 5, 6 and 1 more" in text
    assert "renumbered" in text and "1 -> 8" in text and "imapsync" in text


def test_missing_message_fails_imap03_with_its_uid() -> None:
    new = healthy()
    state, messages = new["INBOX"]
    new["INBOX"] = (state, {u: k for u, k in messages.items() if u != 4})
    text = only(compare(MemorySource("old IP", healthy()), MemorySource("new IP", new)), "IMAP03")
    assert "1 of 6 messages of old IP differ on new IP: missing UIDs 4." in text
    assert "deleted on new IP or skipped by the sync" in text


def test_missing_tail_is_an_incomplete_sync() -> None:
    new = healthy()
    state, messages = new["INBOX"]
    new["INBOX"] = (state, {u: k for u, k in messages.items() if u < 6})
    text = only(compare(MemorySource("old", healthy()), MemorySource("new", new)), "IMAP03")
    assert "missing UIDs 6, 7" in text
    assert "incomplete sync: new stops at UID 5" in text


def test_different_message_under_a_uid_names_both() -> None:
    new = healthy()
    state, messages = new["Archive/2024"]
    new["Archive/2024"] = (state, {**messages, 2: key(999)})
    text = only(compare(MemorySource("old", healthy()), MemorySource("new", new)), "IMAP03")
    assert "UID 2 (<102@lab.test>, 1102 bytes) became (<999@lab.test>, 1999 bytes)" in text


def test_lost_flags_fail_imap04_only() -> None:
    new = healthy()
    state, messages = new["INBOX"]
    new["INBOX"] = (state, {u: k._replace(flags=()) for u, k in messages.items()})
    text = only(compare(MemorySource("old", healthy()), MemorySource("new", new)), "IMAP04")
    assert "flags of 4 of 6 messages differ" in text
    assert "UID 1 \\Seen -> (none)" in text
    assert "UID 6 $Important \\Flagged -> (none)" in text
    assert "flags lost" in text


def test_missing_mailbox_and_subscription_fail_imap01_only() -> None:
    new = healthy()
    del new["Entwürfe"]
    text = only(
        compare(
            MemorySource("old", healthy()),
            MemorySource("new", new, subscribed={"INBOX"}),
        ),
        "IMAP01",
    )
    assert "mailboxes differ between old and new: missing on new: 'Entwürfe'" in text
    assert "subscriptions differ" in text and "'Archive/2024'" in text


def test_uidnext_and_modseq_going_back_fail_imap05() -> None:
    new = healthy()
    state, messages = new["INBOX"]
    new["INBOX"] = (MailboxState("INBOX", state.uidvalidity, 7, 6, 39), messages)
    text = only(compare(MemorySource("old", healthy()), MemorySource("new", new)), "IMAP05")
    assert "UIDNEXT went back from 8 on old to 7 on new" in text
    assert "HIGHESTMODSEQ went back from 40 on old to 39 on new" in text


def test_modseq_ignored_without_condstore_on_both() -> None:
    new = healthy()
    state, messages = new["INBOX"]
    new["INBOX"] = (MailboxState("INBOX", state.uidvalidity, 8, 6, None), messages)
    assert compare(MemorySource("old", healthy()), MemorySource("new", new)).findings == []


def test_a_failing_source_raises_its_probe_error() -> None:
    with pytest.raises(ProbeError, match="connection reset"):
        compare(MemorySource("old", healthy()), MemorySource("new", healthy(), fail_in="INBOX"))


def test_third_pair_carries_its_purpose() -> None:
    old_ip = healthy()
    state, messages = old_ip["INBOX"]
    old_ip["INBOX"] = (state, {u: k for u, k in messages.items() if u != 7})
    report = compare_account(
        ACCOUNT,
        [
            MemorySource("ref", healthy()),
            MemorySource("new IP", healthy()),
            MemorySource("old IP", old_ip),
        ],
        [Pair(0, 1), Pair(0, 2), Pair(1, 2, purpose="the old IP must serve the new server")],
        100,
    )
    texts = report.failures("IMAP03")
    assert len(texts) == 2
    assert texts[1].endswith("(the old IP must serve the new server)")


def record_baseline(tmp_path: Path, mailboxes: Mailboxes) -> Baseline:
    baseline = Baseline(tmp_path / "baseline.json")
    writer = UidMapWriter(baseline, ACCOUNT, "old IP")
    compare_account(
        ACCOUNT,
        [MemorySource("old", mailboxes), MemorySource("new", mailboxes)],
        [Pair(0, 1)],
        2,
        recorder=(0, writer),
    )
    writer.commit(greeting="old.example.test IMAP/POP3 ready")
    return baseline


def test_baseline_round_trip_matches_the_live_server(tmp_path: Path) -> None:
    baseline = record_baseline(tmp_path, healthy())
    source = BaselineSource(baseline, ACCOUNT)
    assert source.listing().subscribed == {"INBOX", "Archive/2024", "Entwürfe"}
    report = compare(source, MemorySource("new", healthy()))
    assert report.findings == []
    assert report.states[0] == {name: state for name, (state, _) in healthy().items()}
    # Compact: a digest per message, not the Message-ID.
    assert "lab.test" not in uid_map_path(baseline, ACCOUNT).read_text()


def test_baseline_against_renumbered_new(tmp_path: Path) -> None:
    baseline = record_baseline(tmp_path, healthy())
    new = healthy()
    state, messages = new["INBOX"]
    new["INBOX"] = (
        MailboxState("INBOX", state.uidvalidity, 15, 6, 60),
        {uid + 7: k for uid, k in messages.items()},
    )
    text = only(compare(BaselineSource(baseline, ACCOUNT), MemorySource("new", new)), "IMAP03")
    assert "renumbered" in text
    assert f"digest {fingerprint('<1@lab.test>')[1:]}" not in text  # only missing, no 'became'


def test_flags_against_baseline_mention_the_user(tmp_path: Path) -> None:
    baseline = record_baseline(tmp_path, healthy())
    new = healthy()
    state, messages = new["Entwürfe"]
    new["Entwürfe"] = (state, {1: messages[1]._replace(flags=())})
    text = only(compare(BaselineSource(baseline, ACCOUNT), MemorySource("new", new)), "IMAP04")
    assert "since preflight" in text


def test_tampered_uid_map_is_refused(tmp_path: Path) -> None:
    baseline = record_baseline(tmp_path, healthy())
    path = uid_map_path(baseline, ACCOUNT)
    path.write_text(path.read_text().replace("\n4\t", "\n14\t"))
    with pytest.raises(BaselineError, match="does not match the digest"):
        compare(BaselineSource(baseline, ACCOUNT), MemorySource("new", healthy()))


def test_the_uid_map_is_found_from_the_account_not_from_the_baseline(tmp_path: Path) -> None:
    baseline = record_baseline(tmp_path, healthy())
    baseline.flush()
    data = json.loads(baseline.path.read_text())
    data["sections"]["imap"][ACCOUNT]["uid_map"] = "../../etc/passwd"  # an edited baseline
    baseline.path.write_text(json.dumps(data))
    source = BaselineSource(Baseline(baseline.path), ACCOUNT)
    assert source.path == uid_map_path(baseline, ACCOUNT)
    assert source.path.is_relative_to(tmp_path)
    assert compare(source, MemorySource("new", healthy())).findings == []


def test_no_baseline_says_run_preflight_first(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="run the preflight phase first"):
        BaselineSource(Baseline(tmp_path / "baseline.json"), ACCOUNT)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"Message-ID: <a@b>\r\n\r\n", "<a@b>"),
        (b"message-id:\r\n  <folded@b>\r\n\r\n", "<folded@b>"),
        (b"\r\n", ""),
        (None, ""),
    ],
)
def test_message_id_parsing(header: bytes | None, expected: str) -> None:
    assert message_id(header) == expected
