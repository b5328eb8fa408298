"""IMAP continuity comparison: a reference mailbox set against what a server serves now.

Pure logic over `MailSource`s (a live `ImapSession`, or the preflight
baseline): no network of its own. Every source streams each mailbox's
messages in ascending UID order; the streams are read concurrently (one
thread per source, bounded queues) and merged by UID, so memory stays flat
however large the mailbox. Each `Pair` yields findings under the check IDs:

- IMAP01 mailbox list and subscriptions equal
- IMAP02 UIDVALIDITY equal
- IMAP03 every reference UID present with the same Message-ID and size
- IMAP04 flags equal (for the messages IMAP03 matched)
- IMAP05 UIDNEXT and HIGHESTMODSEQ did not go back

>>> compare_account("alice@example.test", [old, new], [Pair(0, 1)], 1000)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cutover.probes.mail.mailboxes import Batch, Listing, MailboxState, MessageKey
from cutover.untrusted import shown

__all__ = [
    "AccountReport",
    "Finding",
    "MailSource",
    "MessageComparison",
    "Pair",
    "compare_account",
    "compare_listings",
    "compare_states",
    "fingerprint",
]

SHOW = 5  # UIDs / names quoted in a message
REMEMBER = 100_000  # unmatched messages kept per mailbox to recognise renumbering
QUEUE_BATCHES = 4
COMPACT_PREFIX = "~"


class MailSource(Protocol):
    """Where mailboxes are read from: a live server or the baseline."""

    label: str
    # The source holds digests, not Message-IDs: compare by `fingerprint`.
    compact: bool

    def listing(self) -> Listing: ...

    def examine(self, name: str) -> MailboxState: ...

    def batches(self, batch_size: int) -> Iterator[Batch]: ...

    def highestmodseq(self, name: str) -> int | None: ...


class Recorder(Protocol):
    """Receives one source's observations (preflight writes the baseline)."""

    def listing(self, listing: Listing) -> None: ...

    def mailbox(self, state: MailboxState) -> None: ...

    def messages(self, batch: Batch) -> None: ...

    def highestmodseqs(self, values: dict[str, int | None]) -> None: ...


def fingerprint(ident: str) -> str:
    """A compact digest of a Message-ID (or header digest): what the baseline stores."""
    if ident.startswith(COMPACT_PREFIX):
        return ident
    return COMPACT_PREFIX + hashlib.blake2b(ident.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class Finding:
    check: str
    text: str


@dataclass(frozen=True)
class Pair:
    """Compare source `subject` against source `reference` (indexes into the source list)."""

    reference: int
    subject: int
    # Why this pair must agree, when it is not the plain old-vs-new rule.
    purpose: str | None = None


@dataclass
class AccountReport:
    account: str
    labels: list[str]
    pairs: list[Pair]
    findings: list[Finding] = field(default_factory=list)
    listings: list[Listing] = field(default_factory=list)
    # Per source: mailbox name -> state (HIGHESTMODSEQ filled in at the end).
    states: list[dict[str, MailboxState]] = field(default_factory=list)
    # Per pair, per mailbox: messages only on the subject (allowed: mail delivered since).
    extras: dict[tuple[int, str], tuple[int, list[int]]] = field(default_factory=dict)

    def failures(self, check: str) -> list[str]:
        return [f.text for f in self.findings if f.check == check]


# --- pure comparisons --------------------------------------------------------


def _names(names: Sequence[str]) -> str:
    listed = ", ".join(repr(shown(n)) for n in sorted(names)[:SHOW])
    more = len(names) - SHOW
    return listed + (f" and {more} more" if more > 0 else "")


def _uids(uids: Sequence[int], total: int) -> str:
    listed = ", ".join(str(u) for u in uids[:SHOW])
    more = total - min(len(uids), SHOW)
    return listed + (f" and {more} more" if more > 0 else "")


def compare_listings(
    account: str, reference: Listing, subject: Listing, ref_label: str, subj_label: str
) -> list[Finding]:
    """IMAP01: the same mailboxes and the same subscriptions."""
    findings = []
    for what, ref_names, subj_names, cause in (
        (
            "mailboxes",
            reference.mailboxes,
            subject.mailboxes,
            "mailboxes not migrated, or their names mangled "
            "(modified UTF-7 decoded twice shows as '&...-')",
        ),
        (
            "subscriptions",
            reference.subscribed,
            subject.subscribed,
            "the subscriptions file was not migrated (dsync copies it); "
            "clients hide unsubscribed folders",
        ),
    ):
        missing = sorted(ref_names - subj_names)
        extra = sorted(subj_names - ref_names)
        if not (missing or extra):
            continue
        parts = []
        if missing:
            parts.append(f"missing on {subj_label}: {_names(missing)}")
        if extra:
            parts.append(f"only on {subj_label}: {_names(extra)}")
        findings.append(
            Finding(
                "IMAP01",
                f"{account}: {what} differ between {ref_label} and {subj_label}: "
                f"{'; '.join(parts)}. Likely cause: {cause}.",
            )
        )
    return findings


def compare_states(
    account: str,
    reference: MailboxState,
    subject: MailboxState,
    ref_label: str,
    subj_label: str,
) -> list[Finding]:
    """IMAP02 (UIDVALIDITY) and IMAP05 (UIDNEXT, HIGHESTMODSEQ) of one mailbox."""
    where = f"{account} mailbox {shown(reference.name)!r}"
    findings = []
    if subject.uidvalidity != reference.uidvalidity:
        findings.append(
            Finding(
                "IMAP02",
                f"{where}: UIDVALIDITY {reference.uidvalidity} on {ref_label}, "
                f"{subject.uidvalidity} on {subj_label}. Likely cause: the mailbox was "
                "re-created or copied by a tool that does not keep UIDVALIDITY (imapsync); "
                "every client will drop its cache and download the mailbox again.",
            )
        )
    if subject.uidnext < reference.uidnext:
        findings.append(
            Finding(
                "IMAP05",
                f"{where}: UIDNEXT went back from {reference.uidnext} on {ref_label} "
                f"to {subject.uidnext} on {subj_label}: UIDs {subject.uidnext}.."
                f"{reference.uidnext - 1} can be given to different messages. Likely cause: "
                "the mailbox was re-created or renumbered (imapsync), or an older copy restored.",
            )
        )
    if (
        reference.highestmodseq is not None
        and subject.highestmodseq is not None
        and subject.highestmodseq < reference.highestmodseq
    ):
        findings.append(
            Finding(
                "IMAP05",
                f"{where}: HIGHESTMODSEQ went back from {reference.highestmodseq} on "
                f"{ref_label} to {subject.highestmodseq} on {subj_label}: CONDSTORE/QRESYNC "
                "clients will miss changes. Likely cause: the index was rebuilt or the "
                "mailbox copied without its modification sequences (use dsync).",
            )
        )
    return findings


class MessageComparison:
    """IMAP03/IMAP04 for one mailbox, fed message by message in ascending UID order."""

    def __init__(self, compact: bool) -> None:
        self.compact = compact
        self.reference_count = 0
        self.missing: list[int] = []
        self.missing_count = 0
        self.changed: list[tuple[int, MessageKey, MessageKey]] = []
        self.changed_count = 0
        self.resized = 0  # changed, but the same Message-ID
        self.extra: list[int] = []
        self.extra_count = 0
        self.flag_diffs: list[tuple[int, MessageKey, MessageKey]] = []
        self.flag_count = 0
        self.subject_max_uid = 0
        self._unmatched_ref: dict[str, int] = {}
        self._unmatched_subj: dict[str, int] = {}

    def _same_ident(self, a: str, b: str) -> bool:
        return a == b or (self.compact and fingerprint(a) == fingerprint(b))

    def add_matching(self, count: int, last_uid: int) -> None:
        """`count` messages up to `last_uid` are the same on both sides, flags included."""
        self.reference_count += count
        self.subject_max_uid = last_uid

    def add(self, uid: int, ref: MessageKey | None, subj: MessageKey | None) -> None:
        if subj is not None:
            self.subject_max_uid = uid
        if ref is None:
            if subj is not None:
                self.extra_count += 1
                if len(self.extra) < SHOW:
                    self.extra.append(uid)
                self._remember(self._unmatched_subj, subj, uid)
            return
        self.reference_count += 1
        if subj is None:
            self.missing_count += 1
            if len(self.missing) < SHOW:
                self.missing.append(uid)
            self._remember(self._unmatched_ref, ref, uid)
            return
        same_ident = self._same_ident(ref.ident, subj.ident)
        if not same_ident or ref.size != subj.size:
            self.changed_count += 1
            self.resized += same_ident
            if len(self.changed) < SHOW:
                self.changed.append((uid, ref, subj))
            self._remember(self._unmatched_ref, ref, uid)
            self._remember(self._unmatched_subj, subj, uid)
            return
        if ref.flags != subj.flags:
            self.flag_count += 1
            if len(self.flag_diffs) < SHOW:
                self.flag_diffs.append((uid, ref, subj))

    @staticmethod
    def _remember(table: dict[str, int], key: MessageKey, uid: int) -> None:
        if len(table) < REMEMBER:
            table.setdefault(fingerprint(key.ident), uid)

    def moved(self) -> list[tuple[int, int]]:
        """(reference UID, subject UID) of messages found under another UID."""
        moves = [
            (uid, self._unmatched_subj[fp])
            for fp, uid in self._unmatched_ref.items()
            if fp in self._unmatched_subj and self._unmatched_subj[fp] != uid
        ]
        return sorted(moves)

    def findings(
        self, account: str, mailbox: str, ref_label: str, subj_label: str, since_preflight: bool
    ) -> list[Finding]:
        where = f"{account} mailbox {shown(mailbox)!r}"
        findings = []
        problems = self.missing_count + self.changed_count
        if problems:
            parts = []
            if self.missing_count:
                parts.append(f"missing UIDs {_uids(self.missing, self.missing_count)}")
            if self.changed_count:
                listed = "; ".join(
                    f"UID {uid} {_describe(ref)} became {_describe(subj)}"
                    for uid, ref, subj in self.changed[:SHOW]
                )
                more = self.changed_count - min(len(self.changed), SHOW)
                parts.append(
                    f"{self.changed_count} UIDs hold a different message ({listed}"
                    + (f"; and {more} more" if more > 0 else "")
                    + ")"
                )
            findings.append(
                Finding(
                    "IMAP03",
                    f"{where}: {problems} of {self.reference_count} messages of {ref_label} "
                    f"differ on {subj_label}: {'; '.join(parts)}. Likely cause: "
                    f"{self._message_cause(subj_label, since_preflight)}.",
                )
            )
        if self.flag_count:
            listed = "; ".join(
                f"UID {uid} {_flags(ref.flags)} -> {_flags(subj.flags)}"
                for uid, ref, subj in self.flag_diffs
            )
            more = self.flag_count - len(self.flag_diffs)
            findings.append(
                Finding(
                    "IMAP04",
                    f"{where}: flags of {self.flag_count} of {self.reference_count} messages "
                    f"differ between {ref_label} and {subj_label}: {listed}"
                    + (f"; and {more} more" if more > 0 else "")
                    + f". Likely cause: {self._flag_cause(since_preflight)}.",
                )
            )
        return findings

    def _message_cause(self, subj_label: str, since_preflight: bool) -> str:
        moved = self.moved()
        if moved:
            listed = ", ".join(f"{a} -> {b}" for a, b in moved[:SHOW])
            return (
                f"UIDs renumbered: {len(moved)} of these messages are on {subj_label} under "
                f"other UIDs ({listed}); the mail was copied by APPEND, as imapsync does. "
                "Migrate with dsync (doveadm backup), which keeps UIDs"
            )
        if self.resized == self.changed_count and self.changed_count and not self.missing_count:
            return (
                "the same Message-IDs with a different size: the messages were rewritten "
                "during the copy (headers added, line endings or encoding changed)"
            )
        if not self.changed_count and min(self.missing) > self.subject_max_uid:
            return (
                f"incomplete sync: {subj_label} stops at UID {self.subject_max_uid}, "
                "the tail is missing; run the final sync (doveadm sync/backup) again"
            )
        if not self.changed_count:
            cause = f"messages deleted on {subj_label} or skipped by the sync"
            if since_preflight:
                cause += ", or deleted by the user since preflight"
            return cause
        return (
            "different messages under the same UIDs: the mailbox was re-filled by another "
            "tool or restored from another copy"
        )

    def _flag_cause(self, since_preflight: bool) -> str:
        lost = all(not set(subj.flags) >= set(ref.flags) for _, ref, subj in self.flag_diffs)
        keywords_only = all(
            {f for f in set(ref.flags) ^ set(subj.flags)} <= _keywords(ref.flags + subj.flags)
            for _, ref, subj in self.flag_diffs
        )
        if keywords_only:
            cause = "keywords lost or renamed: the dovecot-keywords file was not migrated"
        elif lost:
            cause = (
                "flags lost in the copy (Maildir ':2,' file name suffixes stripped, "
                "or messages appended without their flags)"
            )
        else:
            cause = "flags changed on one side after the sync"
        if since_preflight:
            cause += "; or changed by the user since preflight"
        return cause


def _keywords(flags: Sequence[str]) -> set[str]:
    return {f for f in flags if not f.startswith("\\")}


def _describe(key: MessageKey) -> str:
    ident = (
        shown(key.ident) if not key.ident.startswith(COMPACT_PREFIX) else f"digest {key.ident[1:]}"
    )
    return f"({ident}, {key.size} bytes)"


def _flags(flags: Sequence[str]) -> str:
    return shown(" ".join(flags)) if flags else "(none)"


# --- the concurrent walk -------------------------------------------------------

_END = object()
_ABSENT = object()


class _Producer(threading.Thread):
    """Reads one source's mailboxes into a bounded queue, in the agreed order."""

    def __init__(
        self, source: MailSource, names: list[str], present: frozenset[str], batch_size: int
    ) -> None:
        super().__init__(name=f"imap {source.label}", daemon=True)
        self.source = source
        self.names = names
        self.present = present
        self.batch_size = batch_size
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_BATCHES)
        self.stop = threading.Event()

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        try:
            examined = []
            for name in self.names:
                if name not in self.present:
                    if not self._put(_ABSENT):
                        return
                    continue
                examined.append(name)
                if not self._put(self.source.examine(name)):
                    return
                for batch in self.source.batches(self.batch_size):
                    if not self._put(batch):
                        return
                if not self._put(_END):
                    return
            self._put({name: self.source.highestmodseq(name) for name in examined})
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def take(self) -> Any:
        item = self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item


def _parallel(functions: Sequence[Callable[[], Any]]) -> list[Any]:
    results: list[Any] = [None] * len(functions)
    errors: list[BaseException | None] = [None] * len(functions)

    def run(i: int) -> None:
        try:
            results[i] = functions[i]()
        except BaseException as exc:
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(functions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None:
            raise error
    return results


def compare_account(
    account: str,
    sources: Sequence[MailSource],
    pairs: Sequence[Pair],
    batch_size: int,
    *,
    recorder: tuple[int, Recorder] | None = None,
) -> AccountReport:
    """Walk every mailbox of every source once, concurrently, and compare the pairs.

    `recorder` (source index, recorder) receives that source's observations as
    they stream by.
    """
    labels = [s.label for s in sources]
    report = AccountReport(account, labels, list(pairs))
    report.listings = _parallel([s.listing for s in sources])
    for pair in pairs:
        report.findings += _with_purpose(
            pair,
            compare_listings(
                account,
                report.listings[pair.reference],
                report.listings[pair.subject],
                labels[pair.reference],
                labels[pair.subject],
            ),
        )
    if recorder is not None:
        recorder[1].listing(report.listings[recorder[0]])
    names = sorted(set().union(*(listing.selectable for listing in report.listings)))
    producers = [
        _Producer(source, names, listing.selectable, batch_size)
        for source, listing in zip(sources, report.listings, strict=True)
    ]
    for producer in producers:
        producer.start()
    try:
        report.states = [{} for _ in sources]
        for name in names:
            _compare_mailbox(account, name, sources, pairs, producers, report, recorder)
        modseqs = [producer.take() for producer in producers]
    finally:
        for producer in producers:
            producer.stop.set()
        for producer in producers:
            producer.join(timeout=1.0)
    for index, values in enumerate(modseqs):
        for name, value in values.items():
            state = report.states[index][name]
            report.states[index][name] = MailboxState(
                state.name, state.uidvalidity, state.uidnext, state.exists, value
            )
    if recorder is not None:
        recorder[1].highestmodseqs(modseqs[recorder[0]])
    for pair in pairs:
        ref_states, subj_states = report.states[pair.reference], report.states[pair.subject]
        for name in names:
            if name in ref_states and name in subj_states:
                report.findings += _with_purpose(
                    pair,
                    compare_states(
                        account,
                        ref_states[name],
                        subj_states[name],
                        labels[pair.reference],
                        labels[pair.subject],
                    ),
                )
    report.findings.sort(key=lambda f: f.check)
    return report


class _Cursor:
    """A position in one source's stream of batches for the current mailbox."""

    def __init__(self, producer: _Producer, compact_source: bool) -> None:
        self._producer = producer
        self.compact_source = compact_source
        self.batch: Batch = []
        self.pos = 0
        self.done = False

    def fill(self) -> bool:
        """Make sure a message is at hand; False once the mailbox is exhausted."""
        while self.pos >= len(self.batch):
            if self.done:
                return False
            item = self._producer.take()
            if item is _END:
                self.batch, self.pos, self.done = [], 0, True
                return False
            self.batch, self.pos = item, 0
        return True

    def rest(self) -> Batch:
        return self.batch[self.pos :] if self.pos else self.batch


def _compacted(batch: Batch) -> Batch:
    return [(uid, MessageKey(fingerprint(k.ident), k.size, k.flags)) for uid, k in batch]


def _compare_mailbox(
    account: str,
    name: str,
    sources: Sequence[MailSource],
    pairs: Sequence[Pair],
    producers: list[_Producer],
    report: AccountReport,
    recorder: tuple[int, Recorder] | None,
) -> None:
    cursors: list[_Cursor | None] = []
    for index, producer in enumerate(producers):
        state = producer.take()
        if state is _ABSENT:
            cursors.append(None)
            continue
        report.states[index][name] = state
        cursors.append(_Cursor(producer, sources[index].compact))
    if recorder is not None and cursors[recorder[0]] is not None:
        recorder[1].mailbox(report.states[recorder[0]][name])
    active = [
        p for p in pairs if cursors[p.reference] is not None and cursors[p.subject] is not None
    ]
    comparisons = [
        MessageComparison(sources[p.reference].compact or sources[p.subject].compact)
        for p in active
    ]
    record = recorder[1].messages if recorder is not None else None
    record_index = recorder[0] if recorder is not None else -1
    live = [c for c in cursors if c is not None]
    while True:
        heads = [c for c in live if c.fill()]
        if not heads:
            break
        rests = [c.rest() if c is not None and c in heads else None for c in cursors]
        if len(heads) == len(live) and _aligned([r for r in rests if r is not None]):
            if _all_equal(active, comparisons, rests, cursors):
                # The common case: the same messages under the same UIDs, a
                # whole batch compared at C speed.
                for comparison in comparisons:
                    comparison.add_matching(len(heads[0].rest()), heads[0].rest()[-1][0])
                if record is not None and rests[record_index] is not None:
                    record(rests[record_index])  # type: ignore[arg-type]
                for cursor in heads:
                    cursor.pos = len(cursor.batch)
                continue
            count = len(heads[0].rest())
        else:
            count = 1
        for _ in range(count):
            _compare_one(cursors, active, comparisons, record, record_index)
    for pair, comparison in zip(active, comparisons, strict=True):
        report.findings += _with_purpose(
            pair,
            comparison.findings(
                account,
                name,
                report.labels[pair.reference],
                report.labels[pair.subject],
                # A compact reference is the preflight baseline: users may have
                # changed their mail since.
                since_preflight=sources[pair.reference].compact,
            ),
        )
        if comparison.extra_count:
            report.extras[(pairs.index(pair), name)] = (comparison.extra_count, comparison.extra)


def _aligned(rests: list[Batch]) -> bool:
    first = rests[0]
    return all(
        len(r) == len(first) and r[0][0] == first[0][0] and r[-1][0] == first[-1][0]
        for r in rests[1:]
    )


def _all_equal(
    active: list[Pair],
    comparisons: list[MessageComparison],
    rests: list[Batch | None],
    cursors: list[_Cursor | None],
) -> bool:
    compacted: dict[int, Batch] = {}

    def view(index: int, compact: bool) -> Batch:
        rest, cursor = rests[index], cursors[index]
        assert rest is not None and cursor is not None
        if not compact or cursor.compact_source:
            return rest
        if index not in compacted:
            compacted[index] = _compacted(rest)
        return compacted[index]

    return all(
        view(p.reference, c.compact) == view(p.subject, c.compact)
        for p, c in zip(active, comparisons, strict=True)
    )


def _compare_one(
    cursors: list[_Cursor | None],
    active: list[Pair],
    comparisons: list[MessageComparison],
    record: Callable[[Batch], None] | None,
    record_index: int,
) -> None:
    """Compare the message with the lowest UID at hand (on whichever sources have it)."""
    heads = [c.batch[c.pos] if c is not None and c.fill() else None for c in cursors]
    uid = min(head[0] for head in heads if head is not None)
    row: list[MessageKey | None] = []
    for cursor, head in zip(cursors, heads, strict=True):
        if head is not None and head[0] == uid:
            row.append(head[1])
            assert cursor is not None
            cursor.pos += 1
        else:
            row.append(None)
    for pair, comparison in zip(active, comparisons, strict=True):
        comparison.add(uid, row[pair.reference], row[pair.subject])
    recorded = row[record_index] if record is not None else None
    if record is not None and recorded is not None:
        record([(uid, recorded)])


def _with_purpose(pair: Pair, findings: list[Finding]) -> list[Finding]:
    if pair.purpose is None:
        return findings
    return [Finding(f.check, f"{f.text} ({pair.purpose})") for f in findings]
