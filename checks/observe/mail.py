"""Observations of the mail clients area: the login methods, every account's logins, POP3.

The reference is the old server: live on the old IP while it still answers
there (preflight, which records it into the baseline), afterwards the
preflight baseline. Each account is observed once per run (its logins one
after another, accounts concurrently; with `-n N`, each worker the accounts
of the shares it runs: checks/grouping.py). Preflight records the old server's
login methods (`mail-logins`) and every account's maildrop (`pop3`); the
recorders read what no check of the run asked for at its end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from checks.grouping import account_share
from checks.observe.imap import named, unreachable
from checks.progress import Stage
from checks.record import RecordContext, Records, recorder
from checks.targets.mail import (
    AccountTarget,
    PopTarget,
    compared_endpoints,
    imap_service,
    login_plan,
    login_services,
    place,
    pop3_accounts,
)
from cutover.compare.pop3 import Maildrop, UidlDiff, compare
from cutover.compare.pop3_baseline import SECTION as POP3_SECTION
from cutover.compare.pop3_baseline import read_baseline_maildrop, write_maildrop
from cutover.model.baseline import BaselineError
from cutover.model.endpoints import Endpoint, endpoint_of, side_endpoints
from cutover.model.inventory import Account, Inventory, Service
from cutover.model.phases import PhaseExpectations, Side, serving_ip
from cutover.model.settings import ProbeSettings, settings_for
from cutover.probes.connect import ProbeError
from cutover.probes.mail.flow import MailFlow, probe_mail_flow
from cutover.probes.mail.logins import AccountLogins, observe_logins, offered_methods
from cutover.probes.mail.pop3 import PopLoginRefused, read_maildrop
from cutover.probes.services import Observations, ServiceAnswer, observe

__all__ = [
    "LOGINS",
    "POP3",
    "PopContinuity",
    "account_logins",
    "baseline_maildrop",
    "mail_flows",
    "observe_mail_flow",
    "old_login_methods",
    "pop3_continuity",
    "record_login_methods",
    "record_maildrop",
    "record_maildrops",
]

LOGINS = "auth_methods"  # baseline: the old server's login methods per service label
POP3 = POP3_SECTION  # baseline: the old server's maildrop per account
Services = Observations[Endpoint, ServiceAnswer]


# --- login methods (AUTH01) ------------------------------------------------------


@pytest.fixture(scope="session")
def old_login_methods(
    inventory: Inventory, expect: PhaseExpectations, services: Services, records: Records
) -> dict[str, list[str] | str]:
    """Per login service, the methods the old server offered (or why they are unknown)."""
    side = serving_ip(expect, Side.OLD)
    methods: dict[str, list[str] | str] = {}
    for service in login_services(inventory):
        if side is None:
            recorded = records.get(LOGINS, service.label)
            methods[service.label] = (
                list(recorded)
                if recorded is not None
                else f"{service.label}: no record of the old server's login methods in "
                f"{records.baseline.path}: run the preflight phase first (it records them)"
            )
            continue
        endpoint = endpoint_of(inventory, service, side)
        answer = services.outcome(endpoint)
        if isinstance(answer, ProbeError):
            methods[service.label] = (
                f"{service.label}: the old server's login methods are unknown: "
                f"{endpoint.where} did not answer ({answer})"
            )
        else:
            methods[service.label] = offered_methods(service.protocol, answer)
    if side is not None and records.recording:
        records.write_many(LOGINS, {k: v for k, v in methods.items() if isinstance(v, list)})
        records.recorded("mail-logins")
    return methods


@recorder("mail-logins", sections=("mail",))
def record_login_methods(ctx: RecordContext) -> None:
    """The login methods the old server offers on every login service."""
    side = serving_ip(ctx.expect, Side.OLD)
    if side is None:
        return
    settings = settings_for(ctx.inventory)
    methods, problems = {}, []
    for service in login_services(ctx.inventory):
        endpoint = endpoint_of(ctx.inventory, service, side)
        try:
            methods[service.label] = offered_methods(service.protocol, observe(endpoint, settings))
        except ProbeError as exc:
            problems.append(f"{endpoint.where} did not answer ({exc})")
    ctx.records.write_many(LOGINS, methods)
    if problems:
        raise ProbeError("; ".join(problems))


@pytest.fixture(scope="session")
def account_logins(
    pytestconfig: pytest.Config,
    inventory: Inventory,
    expect: PhaseExpectations,
    old_login_methods: dict[str, list[str] | str],
    services: Services,
    observing: Callable[[str, str], Stage],
) -> Observations[AccountTarget, AccountLogins]:
    settings = settings_for(inventory)
    known = {label: m for label, m in old_login_methods.items() if isinstance(m, list)}
    plan = login_plan(inventory, expect, known)
    # Endpoints that did not answer the service probe (PORT01 fails there): no logins.
    silent = {
        endpoint.id: str(outcome)
        for endpoint, _ in plan
        if isinstance(outcome := services.outcome(endpoint), ProbeError)
    }
    # One observation per account (all its addresses): a dual-stack test judges one address.
    return Observations(
        [AccountTarget(account) for account in inventory.mail.accounts],
        lambda target: observe_logins(target.account, plan, settings, silent),
        workers=16,
        progress=observing("logins", "accounts"),
        key=lambda target: target.account.user,
        batch=lambda target: account_share(pytestconfig, inventory, target.account.user),
    )


# --- POP3 maildrops (POP01) --------------------------------------------------------


@dataclass(frozen=True)
class PopContinuity:
    reference: Maildrop
    reference_side: str  # "old" (`old-v4` on a dual-stack side) or "baseline"
    # Per address the new server answers on (and, in preflight, the old server's
    # other addresses): where (checks.targets.mail.place), the maildrop, its diff.
    subjects: list[tuple[str, Maildrop, UidlDiff]]
    unread: dict[str, str] = field(default_factory=dict)  # where -> why it could not be read


def _maildrop(
    target: PopTarget, endpoint: Endpoint, inventory: Inventory, settings: ProbeSettings
) -> Maildrop:
    """The maildrop on one address, each message tied by IMAP on that same address."""
    imap = imap_service(inventory)
    return read_maildrop(
        endpoint,
        target.account,
        settings,
        replace(endpoint, service=imap) if imap is not None else None,
        inventory.mail.batch_size,
    )


def record_maildrop(records: Records, user: str, drop: Maildrop) -> None:
    """Keep the old server's maildrop for the later phases (UIDL, size, Message-ID digest)."""
    try:
        entry = write_maildrop(records.baseline, user, drop)
    except BaselineError as exc:
        raise ProbeError(str(exc)) from None
    records.write(POP3, user, entry)


def baseline_maildrop(records: Records, user: str) -> Maildrop:
    """The old server's maildrop as preflight recorded it."""
    baseline = records.baseline
    entry: Any = records.get(POP3, user)
    if entry is None:
        raise BaselineError(
            f"no POP3 baseline for {user} in {baseline.path}: run the preflight phase first "
            "(while the old server still answers on the old IP); it records the old server's "
            "UIDLs for the later phases"
        )
    return read_baseline_maildrop(baseline, user, entry)


def _observe_pop(
    target: PopTarget,
    inventory: Inventory,
    expect: PhaseExpectations,
    records: Records,
    settings: ProbeSettings,
) -> PopContinuity:
    user = target.account.user
    if expect.served_by[Side.OLD] is Side.OLD:
        endpoint = target.endpoint(Side.OLD)
        reference = _maildrop(target, endpoint, inventory, settings)
        reference_side = place(endpoint)
        if records.recording:
            record_maildrop(records, user, reference)
    else:
        reference, reference_side = baseline_maildrop(records, user), "baseline"
    subjects, unread = [], {}
    for endpoint in compared_endpoints(target, expect):
        try:
            drop = _maildrop(target, endpoint, inventory, settings)
        except PopLoginRefused:
            raise  # POP01 tells a refused login from an unreadable maildrop
        except ProbeError as exc:
            unread[place(endpoint)] = named(endpoint, exc)
            continue
        subjects.append((place(endpoint), drop, compare(reference.messages, drop.messages)))
    return PopContinuity(reference, reference_side, subjects, unread)


@pytest.fixture(scope="session")
def pop3_continuity(
    pytestconfig: pytest.Config,
    inventory: Inventory,
    expect: PhaseExpectations,
    records: Records,
    observing: Callable[[str, str], Stage],
) -> Iterator[Observations[PopTarget, PopContinuity]]:
    """Every account's maildrop, observed at once on first use; preflight records the old one."""
    targets = pop3_accounts(inventory)
    settings = settings_for(inventory)
    observed: set[str] = set()

    def observe_one(target: PopTarget) -> PopContinuity:
        try:
            return _observe_pop(target, inventory, expect, records, settings)
        except BaselineError as exc:  # reported like a probe that could not observe
            raise ProbeError(str(exc)) from None
        finally:
            observed.add(target.account.user)

    # One observation per account (all its addresses): a dual-stack test judges one address.
    yield Observations(
        targets,
        observe_one,
        workers=16,
        progress=observing("POP3", "accounts"),
        key=lambda target: target.account.user,
        batch=lambda target: account_share(pytestconfig, inventory, target.account.user),
    )
    if not records.recording:
        return
    # Every account was observed (recorded, or its failure reported by POP01); a worker
    # that observed its share marks those accounts, and the recorder reads the others.
    if observed >= {target.account.user for target in targets}:
        records.recorded(POP3)
    else:
        for user in observed:
            records.recorded(_pop3_mark(user))


def _pop3_mark(user: str) -> str:
    return f"{POP3}/{user}"


@recorder(POP3, sections=("mail",))
def record_maildrops(ctx: RecordContext) -> None:
    """Every account's maildrop on the old server (its UIDLs, sizes and Message-IDs)."""
    settings = settings_for(ctx.inventory)
    targets = [
        target
        for target in pop3_accounts(ctx.inventory)
        if not ctx.records.is_recorded(_pop3_mark(target.account.user))
    ]
    problems = []
    for index, target in enumerate(targets):
        try:
            drop = _maildrop(target, target.endpoint(Side.OLD), ctx.inventory, settings)
        except ProbeError as exc:
            problems.append(f"{target.id}: {exc}")
            if unreachable(exc) and index + 1 < len(targets):
                problems.append(f"{len(targets) - index - 1} more accounts not tried")
                break
            continue
        record_maildrop(ctx.records, target.id, drop)
    if problems:
        raise ProbeError("; ".join(problems))


# --- the mail-flow probe (PORT03) ----------------------------------------------------


def observe_mail_flow(
    inventory: Inventory, relay: Service, account: Account, deadline: float
) -> list[tuple[Endpoint, MailFlow | ProbeError]]:
    """Send through `relay` (port 25) on each old address; find each message on the new IMAP.

    One probe message per address of the old host (a dual-stack host: its
    IPv4 and its IPv6 address), one after another, each searched for on the
    new host's first address.
    """
    imap = imap_service(inventory)
    settings = settings_for(inventory)
    flows: list[tuple[Endpoint, MailFlow | ProbeError]] = []
    for endpoint in side_endpoints(inventory, relay, Side.OLD):
        try:
            flow: MailFlow | ProbeError = probe_mail_flow(
                endpoint,
                endpoint_of(inventory, imap, Side.NEW) if imap is not None else None,
                account,
                settings,
                deadline,
            )
        except ProbeError as exc:
            flow = exc
        flows.append((endpoint, flow))
    return flows


@pytest.fixture
def mail_flows(
    inventory: Inventory,
) -> Callable[[Service, Account, float], list[tuple[Endpoint, MailFlow | ProbeError]]]:
    """The mail-flow probe on each old address, run once PORT03 decided it may (it writes)."""

    def send(
        service: Service, account: Account, deadline: float
    ) -> list[tuple[Endpoint, MailFlow | ProbeError]]:
        return observe_mail_flow(inventory, service, account, deadline)

    return send
