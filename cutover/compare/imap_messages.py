"""IMAP03 and IMAP04 for one mailbox: its messages compared as they stream by.

A `MessageComparison` is fed one message at a time (or a batch known to be
equal) in ascending UID order and keeps only counts, the first few examples
and, to recognise renumbering, a bounded table of unmatched messages.
"""

from __future__ import annotations

from collections.abc import Sequence

from cutover.compare.imap import COMPACT_PREFIX, SHOW, Finding, MessageKey, fingerprint
from cutover.untrusted import shown

__all__ = ["REMEMBER", "MessageComparison"]

REMEMBER = 100_000  # unmatched messages kept per mailbox to recognise renumbering


def _uids(uids: Sequence[int], total: int) -> str:
    listed = ", ".join(str(u) for u in uids[:SHOW])
    more = total - min(len(uids), SHOW)
    return listed + (f" and {more} more" if more > 0 else "")


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
