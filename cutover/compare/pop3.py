"""POP3 UIDL continuity: a maildrop against the old server's, message by message.

A POP3 client downloads every message whose UIDL it has not seen; a changed
UIDL means the whole mailbox again (RFC 1939 7). Messages are paired by UIDL
first, then by Message-ID and size where the UIDL is gone, so a changed UIDL
is told from a missing message, and a UIDL that now names another message is
caught. Pure logic over what `cutover.probes.mail.pop3` read.

>>> compare(reference.messages, drop.messages).changed            # doctest: +SKIP
[]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["VALID_UIDL", "Maildrop", "PopMessage", "UidlDiff", "compare"]

# RFC 1939 7: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E.
VALID_UIDL = re.compile(r"[\x21-\x7e]{1,70}")


@dataclass(frozen=True, slots=True)
class PopMessage:
    number: int
    uidl: str
    size: int
    ident: str | None = None  # fingerprint of the Message-ID (via IMAP); None: not matched


@dataclass(frozen=True)
class Maildrop:
    """One account's INBOX as a POP3 client sees it, on one server."""

    where: str
    messages: tuple[PopMessage, ...]
    note: str = ""  # why messages carry no Message-ID, when they do not

    @property
    def uidls(self) -> list[str]:
        return [message.uidl for message in self.messages]


@dataclass(frozen=True)
class UidlDiff:
    """A maildrop (the subject) against the old server's (the reference)."""

    kept: int = 0
    changed: list[tuple[PopMessage, PopMessage]] = field(default_factory=list)  # same message
    reused: list[tuple[PopMessage, PopMessage]] = field(default_factory=list)  # same UIDL
    missing: list[PopMessage] = field(default_factory=list)  # UIDL gone, message not found
    added: list[PopMessage] = field(default_factory=list)  # only on the subject: new mail
    invalid: list[PopMessage] = field(default_factory=list)  # not an RFC 1939 unique-id

    @property
    def holds(self) -> bool:
        return not (self.changed or self.reused or self.missing or self.invalid)


def compare(reference: Sequence[PopMessage], subject: Sequence[PopMessage]) -> UidlDiff:
    """Pair messages by UIDL, then by Message-ID + size where the UIDL is gone.

    >>> old = [PopMessage(1, "a", 10, "m1"), PopMessage(2, "b", 20, "m2")]
    >>> new = [PopMessage(1, "a", 10, "m1"), PopMessage(2, "x", 20, "m2"),
    ...        PopMessage(3, "c", 5, "m3")]
    >>> diff = compare(old, new)
    >>> diff.kept, [(r.uidl, s.uidl) for r, s in diff.changed], [m.uidl for m in diff.added]
    (1, [('b', 'x')], ['c'])
    """
    by_uidl = {message.uidl: message for message in subject}
    by_identity: dict[tuple[str, int], list[PopMessage]] = {}
    for message in subject:
        if message.ident is not None:
            by_identity.setdefault((message.ident, message.size), []).append(message)
    diff = UidlDiff()
    claimed: set[str] = set()  # subject UIDLs paired with a reference message
    kept = 0
    for old in reference:
        same_uidl = by_uidl.get(old.uidl)
        if same_uidl is not None:
            claimed.add(same_uidl.uidl)
            if None not in (old.ident, same_uidl.ident) and old.ident != same_uidl.ident:
                diff.reused.append((old, same_uidl))
            else:
                kept += 1
            continue
        candidates = (
            [m for m in by_identity.get((old.ident, old.size), []) if m.uidl not in claimed]
            if old.ident is not None
            else []
        )
        if candidates:
            claimed.add(candidates[0].uidl)
            diff.changed.append((old, candidates[0]))
        else:
            diff.missing.append(old)
    reference_uidls = {message.uidl for message in reference}
    known = claimed | reference_uidls
    diff.added.extend(m for m in subject if m.uidl not in known)
    diff.invalid.extend(m for m in subject if not VALID_UIDL.fullmatch(m.uidl))
    return UidlDiff(kept, diff.changed, diff.reused, diff.missing, diff.added, diff.invalid)
