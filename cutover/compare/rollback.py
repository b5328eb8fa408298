"""The rollback delta: what a rollback to the old server would have to carry back.

Everything the new server took in since preflight recorded the old one: per
mailbox the messages whose UID is at or above the UIDNEXT preflight saw, per
table the rows beyond the largest primary key preflight saw (or, without a
primary key, the rows beyond its count). Plain data here; the observation
is checks/rollback.py, the format docs/json-report.md ("The rollback delta").

>>> delta = PairDelta("shop", mail=[MailboxDelta("alice@example.test", "INBOX", 5,
...     [NewMessage(5, "<a@example.test>", 812)])])
>>> summary_lines([delta])
['alice@example.test INBOX: 1 message (UID 5)']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cutover.untrusted import shown

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MailboxDelta",
    "NewMessage",
    "PairDelta",
    "TableDelta",
    "document",
    "summary_lines",
]

FORMAT = "cutover-rollback-delta"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class NewMessage:
    uid: int
    message_id: str | None  # None: the message has no Message-ID header
    size: int


@dataclass(frozen=True)
class MailboxDelta:
    account: str
    mailbox: str
    since_uid: int  # the UIDNEXT preflight recorded (1: a mailbox preflight did not see)
    messages: list[NewMessage]
    note: str | None = None  # e.g. UIDVALIDITY changed: every message is listed

    def to_json(self) -> dict[str, Any]:
        return {
            "account": shown(self.account),
            "mailbox": shown(self.mailbox),
            "since_uid": self.since_uid,
            "count": len(self.messages),
            "messages": [
                {
                    "uid": m.uid,
                    "message_id": None if m.message_id is None else shown(m.message_id),
                    "size": m.size,
                }
                for m in self.messages
            ],
            "note": self.note,
        }


@dataclass(frozen=True)
class TableDelta:
    database: str
    table: str
    preflight_rows: int | None  # None: a table preflight did not see
    rows_now: int
    new_rows: int
    primary_key: tuple[str, ...] = ()
    first_key: tuple[str, ...] | None = None  # of the new rows (a primary key only)
    last_key: tuple[str, ...] | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        def keys(values: tuple[str, ...] | None) -> list[str] | None:
            return None if values is None else [shown(v) for v in values]

        return {
            "database": shown(self.database),
            "table": shown(self.table),
            "preflight_rows": self.preflight_rows,
            "rows_now": self.rows_now,
            "new_rows": self.new_rows,
            "primary_key": [shown(c) for c in self.primary_key],
            "first_key": keys(self.first_key),
            "last_key": keys(self.last_key),
            "note": self.note,
        }

    def key_range(self) -> str:
        if self.first_key is None or self.last_key is None:
            return ""

        def show(values: tuple[str, ...]) -> str:
            return shown(values[0] if len(values) == 1 else "(" + ", ".join(values) + ")")

        names = show(self.primary_key)
        return f" ({names} {show(self.first_key)} .. {show(self.last_key)})"


@dataclass
class PairDelta:
    pair: str
    mail: list[MailboxDelta] = field(default_factory=list)
    mysql: list[TableDelta] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what could not be read, one line each

    def to_json(self) -> dict[str, Any]:
        return {
            "pair": shown(self.pair),
            "messages": sum(len(m.messages) for m in self.mail),
            "rows": sum(t.new_rows for t in self.mysql),
            "mail": [m.to_json() for m in self.mail],
            "mysql": [t.to_json() for t in self.mysql],
            "problems": [shown(p) for p in self.problems],
        }


def document(
    deltas: list[PairDelta], *, migration: str, phase: str, generated_utc: str, baseline: str
) -> dict[str, Any]:
    """The JSON file: one entry per pair (only mailboxes and tables with something new)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "phase": phase,
        "migration": shown(migration),
        "generated_utc": generated_utc,
        "baseline": baseline,
        "pairs": [delta.to_json() for delta in deltas],
    }


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


def _uids(messages: list[NewMessage]) -> str:
    uids = [m.uid for m in messages]
    if len(uids) == 1:
        return f"UID {uids[0]}"
    return (
        f"UIDs {uids[0]}..{uids[-1]}"
        if uids == list(range(uids[0], uids[-1] + 1))
        else ("UIDs " + ",".join(map(str, uids[:10])) + (",..." if len(uids) > 10 else ""))
    )


def summary_lines(deltas: list[PairDelta], *, several: bool = False) -> list[str]:
    """The terminal section: one line per mailbox and table with something to carry back."""
    lines = []
    for delta in deltas:
        where = f"{shown(delta.pair)}: " if several else ""
        for box in delta.mail:
            note = f"; {box.note}" if box.note else ""
            lines.append(
                f"{where}{shown(box.account)} {shown(box.mailbox)}: "
                f"{_plural(len(box.messages), 'message')} ({_uids(box.messages)}){note}"
            )
        for table in delta.mysql:
            note = f"; {table.note}" if table.note else ""
            lines.append(
                f"{where}{shown(table.database)}.{shown(table.table)}: "
                f"{_plural(table.new_rows, 'row')}{table.key_range()}{note}"
            )
        lines += [f"{where}not known: {shown(problem)}" for problem in delta.problems]
        if not delta.mail and not delta.mysql and not delta.problems:
            lines.append(f"{where}nothing new since preflight: a rollback loses nothing")
    return lines
