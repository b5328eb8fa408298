"""IMAP continuity: every mailbox, UID and message survives the move unchanged.

The reference is the old server: live on the old host's first address
while it still answers there (preflight, which also records it into the
baseline), afterwards the preflight baseline. Every address the new server
answers on is compared with it, and when both IPs are served by the new
server, the old IP must show the same mailboxes as the new IP. A dual-stack
host has each of its addresses compared: one test per account and address
(`[alice@example.test-old-v6]`), while an inventory with one address per
host keeps one test per account. One read-only session per account and
address serves all five checks (the observation: checks/observe/imap.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from checks.declare import check
from checks.observe.imap import Continuity
from checks.support import expectations_for, parametrize
from checks.targets.mail import ImapTarget, imap_targets
from cutover.untrusted import property_name


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "imap_account" in metafunc.fixturenames:
        config = metafunc.config
        parametrize(
            metafunc, "imap_account", lambda inv: imap_targets(inv, expectations_for(config, inv))
        )


def _recorded(target: ImapTarget, continuity: Continuity) -> list[int]:
    """The sources a test records: the reference, and the ones it judges."""
    return [0] + [index for index in continuity.judged(target) if index != 0]


@check("IMAP01", phases=("preflight", "cutover", "acceptance"))
def test_mailboxes_and_subscriptions_equal(
    imap_account: ImapTarget,
    imap_continuity: Callable[[ImapTarget], Continuity],
    record: Callable[..., None],
) -> None:
    """IMAP01: every account has the same mailboxes and subscriptions after the move.

    Why: a mailbox missing on the new server is mail the user no longer sees;
    a lost subscription hides a folder in most clients. Names with non-ASCII
    characters (modified UTF-7 on the wire) and nested names are where
    copies go wrong.
    Inputs: mail.accounts; old.address and new.address (each address of a
    dual-stack host); LIST and LSUB on the old server (or the preflight
    baseline) and on every address the new server answers on.
    Fix: migrate every mailbox with dsync (doveadm backup), which also copies
    the subscriptions; check the mailbox name encoding of other tools.
    """
    continuity = imap_continuity(imap_account)
    for index in _recorded(imap_account, continuity):
        side, listing = continuity.sides[index], continuity.report.listings[index]
        # ASCII JSON: JSON escapes every control character itself, so the values stay
        # valid JSON after record() makes server text safe.
        record(**{f"mailboxes_{side}": json.dumps(sorted(listing.mailboxes))})
        record(**{f"subscribed_{side}": json.dumps(sorted(listing.subscribed))})
    continuity.holds("IMAP01", imap_account)


@check("IMAP02", phases=("preflight", "cutover", "acceptance"))
def test_uidvalidity_unchanged(
    imap_account: ImapTarget,
    imap_continuity: Callable[[ImapTarget], Continuity],
    record: Callable[..., None],
) -> None:
    """IMAP02: every mailbox keeps its UIDVALIDITY across the move.

    Why: a changed UIDVALIDITY makes every client drop its cache and download
    the whole mailbox again (RFC 9051 2.3.1.1).
    Inputs: mail.accounts; EXAMINE of each mailbox on the old server (or the
    preflight baseline) and on every address the new server answers on.
    Fix: migrate with dsync (doveadm backup), which preserves UIDVALIDITY; do
    not re-create mailboxes or copy with imapsync.
    """
    continuity = imap_continuity(imap_account)
    for index in _recorded(imap_account, continuity):
        side, states = continuity.sides[index], continuity.report.states[index]
        summary = {
            name: {
                "uidvalidity": s.uidvalidity,
                "uidnext": s.uidnext,
                "exists": s.exists,
                "highestmodseq": s.highestmodseq,
            }
            for name, s in sorted(states.items())
        }
        record(**{f"states_{side}": json.dumps(summary)})
    continuity.holds("IMAP02", imap_account)


@check("IMAP03", phases=("preflight", "cutover", "acceptance"))
def test_messages_keep_their_uids(
    imap_account: ImapTarget,
    imap_continuity: Callable[[ImapTarget], Continuity],
    record: Callable[..., None],
) -> None:
    """IMAP03: every message keeps its UID, Message-ID and size; new mail may be added.

    Why: mailbox + UIDVALIDITY + UID must always name the same message, or
    clients show the wrong mail or download everything again. Messages only
    on the new server (delivered since the sync) are allowed and reported.
    Inputs: mail.accounts; UID FETCH of UID, RFC822.SIZE and the Message-ID
    (a digest of the headers when there is none), in batches of
    mail.batch_size, on the old server (or the preflight baseline) and on
    every address the new server answers on.
    Fix: migrate with dsync (doveadm backup/sync), which keeps UIDs; imapsync
    copies with APPEND and renumbers; run the final sync after the last
    delivery to the old server.
    """
    continuity = imap_continuity(imap_account)
    report = continuity.report
    for (pair_index, mailbox), (count, first) in sorted(report.extras.items()):
        pair = report.pairs[pair_index]
        side = continuity.sides[pair.subject]
        # Against the old server, not old IP vs new IP.
        if pair.reference == 0 and imap_account.judges(side):
            record(**{property_name(f"only_on_{side}[{mailbox}]"): f"{count} (first UIDs {first})"})
    continuity.holds("IMAP03", imap_account)


@check("IMAP04", phases=("preflight", "cutover", "acceptance"))
def test_flags_preserved(
    imap_account: ImapTarget, imap_continuity: Callable[[ImapTarget], Continuity]
) -> None:
    """IMAP04: every message keeps its flags (\\Seen, \\Answered, \\Flagged, keywords).

    Why: lost flags show read mail as unread and drop the user's stars and
    labels on every client at once.
    Inputs: mail.accounts; FLAGS of every message that IMAP03 matched
    (\\Recent, a per-session flag, is ignored).
    Fix: migrate with dsync, which keeps Maildir flags and dovecot-keywords;
    when copying Maildirs by hand keep the ':2,' file name suffixes.
    """
    imap_continuity(imap_account).holds("IMAP04", imap_account)


@check("IMAP05", phases=("preflight", "cutover", "acceptance"))
def test_uidnext_and_modseq_not_behind(
    imap_account: ImapTarget,
    imap_continuity: Callable[[ImapTarget], Continuity],
    record: Callable[..., None],
) -> None:
    """IMAP05: UIDNEXT and HIGHESTMODSEQ on the new server are not behind the old.

    Why: a smaller UIDNEXT lets the server reuse UIDs clients already cached
    for other messages; a smaller HIGHESTMODSEQ makes CONDSTORE/QRESYNC clients
    miss changes.
    Inputs: mail.accounts; UIDNEXT from EXAMINE, HIGHESTMODSEQ from STATUS
    where both servers advertise CONDSTORE, on every address the new server
    answers on. A server without CONDSTORE (Dovecot 1.x) has no
    HIGHESTMODSEQ: then only UIDNEXT is compared, and the JUnit property
    `highestmodseq_not_compared` names the side that lacks it.
    Fix: migrate with dsync, which carries UIDNEXT and modification sequences;
    do not restore an older copy of the mail store.
    """
    continuity = imap_continuity(imap_account)
    without = [
        continuity.sides[index]
        for index in _recorded(imap_account, continuity)
        if continuity.report.states[index]
        and all(s.highestmodseq is None for s in continuity.report.states[index].values())
    ]
    if without:
        record(
            highestmodseq_not_compared=f"no CONDSTORE (no HIGHESTMODSEQ) on {', '.join(without)}"
        )
    continuity.holds("IMAP05", imap_account)
