"""Observations of the imap area: each account's mailboxes, compared once per run.

The reference is the old server: live on the old host's first address
while it still answers there (preflight), afterwards the preflight
baseline. Every address the new server answers on (each address of a
dual-stack host) is compared with it, and with the new server's first such
address: the old IP through the forwards must show the same mailboxes as
the new IP. While the old server answers, its other addresses must agree
with its first. One read-only session per account and address serves all
five IMAP checks; an address that cannot be read fails the tests that judge
it, and the others are still compared.

In preflight the old server's side is recorded into the baseline while it
streams by (a UID map per account, `cutover.compare.imap_baseline`): no
mailbox is ever held in memory. When this run observed every account, the
kind "imap" is marked recorded; otherwise the recorder `record_imap` reads
the accounts no check asked for at the end of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from checks.record import RecordContext, Records, recorder
from checks.targets.mail import ImapTarget, compared_endpoints, imap_accounts, place
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

__all__ = ["KIND", "Continuity", "imap_continuity", "named", "record_imap", "unreachable"]

KIND = "imap"  # the recorder's kind; one account's mark is `imap/<account>`
# Why a pair other than "against the old server" must agree (said after its findings).
THROUGH_OLD = (
    "the old IP must serve the new server's mailboxes; where it does not, another mail "
    "store answers there, such as the old server's own (PORT02 says who answers)"
)
ALSO_NEW = "every address of the new server must serve the same mailboxes"
ALSO_OLD = "every address of the old server must serve the same mailboxes"
Services = Observations[Endpoint, ServiceAnswer]


@dataclass(frozen=True)
class Continuity:
    """One account's comparison, with a short name per source for the report."""

    report: AccountReport
    # Per source, in the report's order: "baseline", or where it was read
    # (`old`, `new`; `old-v6` on a dual-stack side: checks.targets.mail.place).
    sides: list[str]
    # Addresses that could not be read (`new-v6` -> why): compared nowhere, failed here.
    unread: dict[str, str] = field(default_factory=dict)

    def judged(self, target: ImapTarget) -> list[int]:
        """The sources the test of `target` judges (every one, or its address's)."""
        return [index for index, side in enumerate(self.sides) if target.judges(side)]

    def holds(self, check: str, target: ImapTarget) -> None:
        __tracebackhide__ = True
        unread = [
            f"{target.account.user}: {why}"
            for side, why in self.unread.items()
            if target.judges(side)
        ]
        failures = unread + self.report.failures(check, self.judged(target))
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)


def _account_mark(user: str) -> str:
    return f"{KIND}/{user}"


def _open(
    endpoint: Endpoint, target: ImapTarget, settings: ProbeSettings, services: Services
) -> ImapSession:
    """A session on one address; not even tried where the service probe got no answer."""
    outcome = services.outcome(endpoint)
    if isinstance(outcome, ProbeError):
        raise ProbeError(named(endpoint, outcome))
    return ImapSession.open(endpoint, target.account, settings)


def _pairs(expect: PhaseExpectations, compared: list[Endpoint], first: int) -> list[Pair]:
    """Each compared source against the old server (source 0), and against its own server.

    `compared[i]` is source `first + i`. An address the new server must answer
    on is also compared with the new server's first such address (an old IP
    through the forwards, another address of the new host); another address of
    the old server, while it answers, with the old server's first.
    """
    pairs: list[Pair] = []
    first_new: int | None = None
    for index, endpoint in enumerate(compared, start=first):
        if expect.served_by[endpoint.side] is Side.OLD:
            pairs.append(Pair(0, index, purpose=ALSO_OLD))
            continue
        pairs.append(Pair(0, index))
        if first_new is None:
            first_new = index
        else:
            purpose = THROUGH_OLD if endpoint.side is Side.OLD else ALSO_NEW
            pairs.append(Pair(first_new, index, purpose=purpose))
    return pairs


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
    unread: dict[str, str] = {}
    writer: UidMapWriter | None = None
    try:
        if expect.served_by[Side.OLD] is Side.OLD:
            reference = target.endpoint(Side.OLD)
            sessions.append(_open(reference, target, settings, services))
            sources.append(sessions[-1])
            sides.append(place(reference))
        else:
            sources.append(BaselineSource(records.baseline, target.account.user))
            sides.append("baseline")
        compared = []
        for endpoint in compared_endpoints(target, expect):
            try:
                sessions.append(_open(endpoint, target, settings, services))
            except ProbeError as exc:
                unread[place(endpoint)] = str(exc)
                continue
            compared.append(endpoint)
            sources.append(sessions[-1])
            sides.append(place(endpoint))
        pairs = _pairs(expect, compared, first=1)
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
        return Continuity(report, sides, unread)
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
    accounts = {target.account.user for target in imap_accounts(inventory)}
    batch_size = inventory.mail.batch_size
    cache: dict[str, Continuity | str] = {}

    def observe(target: ImapTarget) -> Continuity:
        __tracebackhide__ = True
        user = target.account.user
        if user not in cache:
            try:
                cache[user] = _observe(target, expect, records, services, settings, batch_size)
            except (ProbeError, BaselineError) as exc:
                cache[user] = f"{user}: {exc}"
            if records.recording and accounts <= cache.keys():
                records.recorded(KIND)
        result = cache[user]
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
        for target in imap_accounts(ctx.inventory)
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


def named(endpoint: Endpoint, exc: Exception) -> str:
    """Why `endpoint` could not be read, naming its service and side (`imaps [2001:db8::10]:993
    (old IP): connection refused by ...`) where the probe's words name only the address."""
    why = str(exc)
    return why if endpoint.where in why else f"{endpoint.where}: {why}"


def unreachable(exc: Exception) -> bool:
    """The server itself did not answer: the next account would only wait as long again."""
    text = str(exc)
    return text.startswith(
        ("timed out after", "cannot connect to", "connection refused by", "no route to")
    )
