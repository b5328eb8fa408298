"""IMAP continuity: every mailbox, UID and message survives the move unchanged.

The reference is the old server: live on the old IP while it still answers
there (preflight, which also records it into the baseline), afterwards the
preflight baseline. Every IP the new server answers on is compared with it,
and when both IPs are served by the new server, the old IP must show the
same mailboxes as the new IP. One read-only session per account and IP
serves all five checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from checks.support import parametrize
from cutover.compare.imap import AccountReport, MailSource, Pair, compare_account
from cutover.compare.imap_baseline import BaselineSource, UidMapWriter
from cutover.model.baseline import Baseline, BaselineError
from cutover.model.endpoints import Endpoint, endpoint_of
from cutover.model.inventory import Inventory
from cutover.model.phases import PhaseExpectations, Side
from cutover.probes.connect import ProbeError
from cutover.probes.mail.mailboxes import ImapSession, ImapTarget, imap_targets
from cutover.probes.services import Observations, ServiceAnswer
from cutover.untrusted import property_name

Services = Observations[Endpoint, ServiceAnswer]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "imap_account" in metafunc.fixturenames:
        parametrize(metafunc, "imap_account", imap_targets)


@dataclass(frozen=True)
class Continuity:
    """One account's comparison, with a short name per source for the report."""

    report: AccountReport
    sides: list[str]  # "old", "new" or "baseline", in the report's source order

    def holds(self, check: str) -> None:
        __tracebackhide__ = True
        failures = self.report.failures(check)
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)


def _open(target: ImapTarget, side: Side, inventory: Inventory, services: Services) -> ImapSession:
    """A session on one IP; not even tried where the service probe got no answer."""
    outcome = services.outcome(endpoint_of(inventory, target.service, side))
    if isinstance(outcome, ProbeError):
        raise ProbeError(str(outcome))
    return ImapSession.open(target, side, inventory)


def _observe(
    target: ImapTarget,
    inventory: Inventory,
    expect: PhaseExpectations,
    baseline: Baseline,
    services: Services,
) -> Continuity:
    sources: list[MailSource] = []
    sides: list[str] = []
    sessions: list[ImapSession] = []
    writer: UidMapWriter | None = None
    try:
        if expect.served_by[Side.OLD] is Side.OLD:
            sessions.append(_open(target, Side.OLD, inventory, services))
            sources.append(sessions[-1])
        else:
            sources.append(BaselineSource(baseline, target.account.user))
        sides.append(Side.OLD.value if sessions else "baseline")
        for side in (Side.NEW, Side.OLD):
            if expect.served_by[side] is Side.NEW:
                sessions.append(_open(target, side, inventory, services))
                sources.append(sessions[-1])
                sides.append(side.value)
        pairs = [Pair(0, subject) for subject in range(1, len(sources))]
        if len(sources) == 3:
            pairs.append(Pair(1, 2, purpose="the old IP must serve the new server's mailboxes"))
        if expect.records_baseline:
            writer = UidMapWriter(baseline, target.account.user, sources[0].label)
        report = compare_account(
            target.account.user,
            sources,
            pairs,
            inventory.mail.batch_size,
            recorder=(0, writer) if writer is not None else None,
        )
        if writer is not None:
            writer.commit(greeting=sessions[0].greeting)
            writer = None
        return Continuity(report, sides)
    finally:
        if writer is not None:
            writer.discard()
        for session in sessions:
            session.close()


@pytest.fixture(scope="session")
def imap_continuity(
    inventory: Inventory, expect: PhaseExpectations, baseline: Baseline, services: Services
) -> Callable[[ImapTarget], Continuity]:
    """Observe each account once per run, whichever check asks first.

    An IP whose IMAP port gave the session's service probe no answer is not
    tried again per account: a silent host costs one timeout, not one each.
    """
    cache: dict[str, Continuity | str] = {}

    def observe(target: ImapTarget) -> Continuity:
        __tracebackhide__ = True
        if target.id not in cache:
            try:
                cache[target.id] = _observe(target, inventory, expect, baseline, services)
            except (ProbeError, BaselineError) as exc:
                cache[target.id] = f"{target.id}: {exc}"
        result = cache[target.id]
        if isinstance(result, str):
            pytest.fail(result, pytrace=False)
        return result

    return observe


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
    Inputs: mail.accounts; LIST and LSUB on the old server (or the preflight
    baseline) and on every IP the new server answers on.
    Fix: migrate every mailbox with dsync (doveadm backup), which also copies
    the subscriptions; check the mailbox name encoding of other tools.
    """
    continuity = imap_continuity(imap_account)
    for side, listing in zip(continuity.sides, continuity.report.listings, strict=True):
        # ASCII JSON: JSON escapes every control character itself, so the values stay
        # valid JSON after record() makes server text safe.
        record(**{f"mailboxes_{side}": json.dumps(sorted(listing.mailboxes))})
        record(**{f"subscribed_{side}": json.dumps(sorted(listing.subscribed))})
    continuity.holds("IMAP01")


def test_uidvalidity_unchanged(
    imap_account: ImapTarget,
    imap_continuity: Callable[[ImapTarget], Continuity],
    record: Callable[..., None],
) -> None:
    """IMAP02: every mailbox keeps its UIDVALIDITY across the move.

    Why: a changed UIDVALIDITY makes every client drop its cache and download
    the whole mailbox again (RFC 9051 2.3.1.1).
    Inputs: mail.accounts; EXAMINE of each mailbox on the old server (or the
    preflight baseline) and on every IP the new server answers on.
    Fix: migrate with dsync (doveadm backup), which preserves UIDVALIDITY; do
    not re-create mailboxes or copy with imapsync.
    """
    continuity = imap_continuity(imap_account)
    for side, states in zip(continuity.sides, continuity.report.states, strict=True):
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
    continuity.holds("IMAP02")


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
    mail.batch_size, on both sides (or against the preflight baseline).
    Fix: migrate with dsync (doveadm backup/sync), which keeps UIDs; imapsync
    copies with APPEND and renumbers; run the final sync after the last
    delivery to the old server.
    """
    continuity = imap_continuity(imap_account)
    report = continuity.report
    for (pair_index, mailbox), (count, first) in sorted(report.extras.items()):
        pair = report.pairs[pair_index]
        if pair.reference == 0:  # against the old server, not old IP vs new IP
            side = continuity.sides[pair.subject]
            record(**{property_name(f"only_on_{side}[{mailbox}]"): f"{count} (first UIDs {first})"})
    continuity.holds("IMAP03")


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
    imap_continuity(imap_account).holds("IMAP04")


def test_uidnext_and_modseq_not_behind(
    imap_account: ImapTarget, imap_continuity: Callable[[ImapTarget], Continuity]
) -> None:
    """IMAP05: UIDNEXT and HIGHESTMODSEQ on the new server are not behind the old.

    Why: a smaller UIDNEXT lets the server reuse UIDs clients already cached
    for other messages; a smaller HIGHESTMODSEQ makes CONDSTORE/QRESYNC clients
    miss changes.
    Inputs: mail.accounts; UIDNEXT from EXAMINE, HIGHESTMODSEQ from STATUS
    where both servers advertise CONDSTORE.
    Fix: migrate with dsync, which carries UIDNEXT and modification sequences;
    do not restore an older copy of the mail store.
    """
    imap_continuity(imap_account).holds("IMAP05")
