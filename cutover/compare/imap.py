"""IMAP continuity comparison: a reference mailbox set against what a server serves now.

Pure logic over `MailSource`s (a live `ImapSession`, or the preflight
baseline): no network of its own. This module holds what both sides of the
comparison share (the observation types, the findings) and the comparison
of the mailbox lists and mailbox states; `imap_messages` compares the
messages of one mailbox, and `imap_stream.compare_account` walks every
mailbox of every source concurrently. Each `Pair` yields findings under the
check IDs:

- IMAP01 mailbox list and subscriptions equal
- IMAP02 UIDVALIDITY equal
- IMAP03 every reference UID present with the same Message-ID and size
- IMAP04 flags equal (for the messages IMAP03 matched)
- IMAP05 UIDNEXT and HIGHESTMODSEQ did not go back

>>> compare_listings("alice@example.test", old, new, "old", "new")  # doctest: +SKIP
[]
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from cutover.untrusted import shown

__all__ = [
    "COMPACT_PREFIX",
    "SHOW",
    "AccountReport",
    "Batch",
    "Finding",
    "Listing",
    "MailSource",
    "MailboxState",
    "MessageKey",
    "Pair",
    "Recorder",
    "compare_listings",
    "compare_states",
    "fingerprint",
    "with_purpose",
]

SHOW = 5  # UIDs / names quoted in a message
COMPACT_PREFIX = "~"


class MessageKey(NamedTuple):
    """What identifies one message under its UID (a tuple: ~100 bytes each)."""

    ident: str  # the Message-ID, or `headers:<digest>` when it has none
    size: int  # RFC822.SIZE
    flags: tuple[str, ...]  # sorted, without session flags


Batch = list[tuple[int, MessageKey]]


@dataclass(frozen=True)
class MailboxState:
    """The EXAMINE answer for one mailbox (HIGHESTMODSEQ from STATUS, CONDSTORE only)."""

    name: str
    uidvalidity: int
    uidnext: int
    exists: int
    highestmodseq: int | None = None


@dataclass(frozen=True)
class Listing:
    """LIST and LSUB of one account, names decoded from modified UTF-7."""

    mailboxes: frozenset[str]
    selectable: frozenset[str]
    subscribed: frozenset[str]


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
    subject: int = -1  # the source the finding is about (its pair's subject); -1: unknown


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

    def failures(self, check: str, subjects: Collection[int] | None = None) -> list[str]:
        """The findings of one check; only those about `subjects` (source indexes) if given."""
        return [
            f.text
            for f in self.findings
            if f.check == check and (subjects is None or f.subject in subjects)
        ]


# --- pure comparisons --------------------------------------------------------


def _names(names: Sequence[str]) -> str:
    listed = ", ".join(repr(shown(n)) for n in sorted(names)[:SHOW])
    more = len(names) - SHOW
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


def with_purpose(pair: Pair, findings: list[Finding]) -> list[Finding]:
    """The pair's findings, tied to its subject, with why the pair must agree when it says."""
    suffix = f" ({pair.purpose})" if pair.purpose is not None else ""
    return [Finding(f.check, f"{f.text}{suffix}", pair.subject) for f in findings]
