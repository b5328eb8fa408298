"""Observations of the imap area: each account's mailboxes, compared once per run.

The reference is the old server: live on the old IP while it still answers
there (preflight), afterwards the preflight baseline. Every IP the new
server answers on is compared with it, and when both IPs are served by the
new server, the old IP must show the same mailboxes as the new IP. One
read-only session per account and IP serves all five IMAP checks.

In preflight the old server's side is recorded into the baseline while it
streams by (a UID map per account, `cutover.compare.imap_baseline`): no
mailbox is ever held in memory. When this run observed every account, the
kind "imap" is marked recorded; otherwise the recorder `record_imap` reads
the accounts no check asked for at the end of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from checks.record import RecordContext, Records, recorder
from checks.targets.mail import ImapTarget, imap_targets
from cutover.compare.imap import AccountReport, MailSource, Pair
from cutover.compare.imap_baseline import BaselineSource, UidMapWriter
from cutover.compare.imap_stream import compare_account
from cutover.model.baseline import BaselineError
from cutover.model.endpoints import Endpoint
from cutover.model.inventory import Inventory
from cutover.model.phases import PhaseExpectations, Side
from cutover.model.settings import ProbeSettings, settings_for
from cutover.probes.connect import ProbeError
from cutover.probes.mail.mailboxes import ImapSession
from cutover.probes.services import Observations, ServiceAnswer

__all__ = ["KIND", "Continuity", "imap_continuity", "record_imap"]

KIND = "imap"  # the recorder's kind; one account's mark is `imap/<account>`
Services = Observations[Endpoint, ServiceAnswer]


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


def _account_mark(user: str) -> str:
    return f"{KIND}/{user}"


def _open(
    target: ImapTarget, side: Side, settings: ProbeSettings, services: Services
) -> ImapSession:
    """A session on one IP; not even tried where the service probe got no answer."""
    endpoint = target.endpoint(side)
    outcome = services.outcome(endpoint)
    if isinstance(outcome, ProbeError):
        raise ProbeError(str(outcome))
    return ImapSession.open(endpoint, target.account, settings)


def _observe(
    target: ImapTarget,
    expect: PhaseExpectations,
    records: Records,
    services: Services,
    settings: ProbeSettings,
    batch_size: int,
) -> Continuity:
    sources: list[MailSource] = []
    sides: list[str] = []
    sessions: list[ImapSession] = []
    writer: UidMapWriter | None = None
    try:
        if expect.served_by[Side.OLD] is Side.OLD:
            sessions.append(_open(target, Side.OLD, settings, services))
            sources.append(sessions[-1])
        else:
            sources.append(BaselineSource(records.baseline, target.account.user))
        sides.append(Side.OLD.value if sessions else "baseline")
        for side in (Side.NEW, Side.OLD):
            if expect.served_by[side] is Side.NEW:
                sessions.append(_open(target, side, settings, services))
                sources.append(sessions[-1])
                sides.append(side.value)
        pairs = [Pair(0, subject) for subject in range(1, len(sources))]
        if len(sources) == 3:
            pairs.append(Pair(1, 2, purpose="the old IP must serve the new server's mailboxes"))
        if records.recording:
            writer = UidMapWriter(records.baseline, target.account.user, sources[0].label)
        report = compare_account(
            target.account.user,
            sources,
            pairs,
            batch_size,
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
    inventory: Inventory,
    expect: PhaseExpectations,
    records: Records,
    services: Services,
) -> Iterator[Callable[[ImapTarget], Continuity]]:
    """Observe each account once per run, whichever check asks first.

    An IP whose IMAP port gave the session's service probe no answer is not
    tried again per account: a silent host costs one timeout, not one each.
    In preflight, once every account was observed (recorded, or its failure
    reported by the checks), "imap" is marked recorded; a run that observed
    only some marks those accounts, and the recorder reads the others.
    """
    settings = settings_for(inventory)
    accounts = {target.id for target in imap_targets(inventory)}
    batch_size = inventory.mail.batch_size
    cache: dict[str, Continuity | str] = {}

    def observe(target: ImapTarget) -> Continuity:
        __tracebackhide__ = True
        if target.id not in cache:
            try:
                cache[target.id] = _observe(target, expect, records, services, settings, batch_size)
            except (ProbeError, BaselineError) as exc:
                cache[target.id] = f"{target.id}: {exc}"
            if records.recording and accounts <= cache.keys():
                records.recorded(KIND)
        result = cache[target.id]
        if isinstance(result, str):
            pytest.fail(result, pytrace=False)
        return result

    yield observe
    if records.recording and cache and not accounts <= cache.keys():
        for user in cache:
            records.recorded(_account_mark(user))


def _record_account(
    target: ImapTarget, records: Records, settings: ProbeSettings, batch_size: int
) -> None:
    """Stream one account's mailboxes on the old server into its UID map (no comparison)."""
    with ImapSession.open(target.endpoint(Side.OLD), target.account, settings) as session:
        writer = UidMapWriter(records.baseline, target.account.user, session.label)
        try:
            compare_account(target.account.user, [session], [], batch_size, recorder=(0, writer))
            writer.commit(greeting=session.greeting)
        except BaseException:
            writer.discard()
            raise


@recorder(KIND, sections=("mail",))
def record_imap(ctx: RecordContext) -> None:
    """Every account's mailboxes on the old server that no check of this run observed."""
    settings = settings_for(ctx.inventory)
    problems = []
    targets = [
        target
        for target in imap_targets(ctx.inventory)
        if not ctx.records.is_recorded(_account_mark(target.id))
    ]
    for index, target in enumerate(targets):
        try:
            _record_account(target, ctx.records, settings, ctx.inventory.mail.batch_size)
        except (ProbeError, BaselineError) as exc:
            problems.append(f"{target.id}: {exc}")
            if unreachable(exc) and index + 1 < len(targets):
                problems.append(f"{len(targets) - index - 1} more accounts not tried")
                break
    if problems:
        raise ProbeError("; ".join(problems))


def unreachable(exc: Exception) -> bool:
    """The server itself did not answer: the next account would only wait as long again."""
    text = str(exc)
    return text.startswith(
        ("timed out after", "cannot connect to", "connection refused by", "no route to")
    )
