"""The streamed walk: every mailbox of every source read once, concurrently, and compared.

Every source streams each mailbox's messages in ascending UID order; the
streams are read concurrently (one thread per source, bounded queues) and
merged by UID, so memory stays flat however large the mailbox. A `Recorder`
can hear one source's observations as they stream by (preflight writes the
baseline that way, without holding a mailbox in memory).

>>> compare_account("alice@example.test", [old, new], [Pair(0, 1)], 1000)  # doctest: +SKIP
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from cutover.compare.imap import (
    AccountReport,
    Batch,
    MailboxState,
    MailSource,
    MessageKey,
    Pair,
    Recorder,
    compare_listings,
    compare_states,
    fingerprint,
    with_purpose,
)
from cutover.compare.imap_messages import MessageComparison

__all__ = ["compare_account"]

QUEUE_BATCHES = 4

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
        report.findings += with_purpose(
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
                report.findings += with_purpose(
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
        report.findings += with_purpose(
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
