"""Login continuity: every mail account logs in wherever, and however, it did before.

Per account, one login per (service, IP, method): the IMAP LOGIN command and
AUTHENTICATE, POP3 USER/PASS and AUTH, SMTP AUTH on the submission ports,
each after TLS where the port uses it, with every method the OLD server
offered. A login is all that happens: the session ends right after the
answer (LOGOUT/QUIT), nothing is fetched, no mail is sent.

An account's attempts run one after another (so at most one of its sessions
is open at a time); accounts run concurrently, within each server's budget:
every connection takes one of its slots (`budget.connections`), every login
waits for its turn (`budget.logins_per_second`) right before the credentials
are sent. After the first rejection of
an account on an IP the rest of that IP's attempts are reported as not tried:
Dovecot delays every later login from the same client IP after a failed one
(auth penalty, 4-15 s), which would slow down every other account's logins
and add nothing to the evidence.

>>> plan = [(endpoint, ["LOGIN", "AUTHENTICATE PLAIN"])]            # doctest: +SKIP
>>> observe_logins(account, plan, settings).failures()               # doctest: +SKIP
[]
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType

from cutover.model.endpoints import Endpoint
from cutover.model.inventory import Account, Protocol, TlsMode
from cutover.model.phases import Side
from cutover.model.settings import ProbeSettings
from cutover.probes.connect import Deadline, ProbeError, login_turn
from cutover.probes.services import ServiceAnswer, imap, pop3, smtp
from cutover.probes.services.base import AuthOutcome, AuthReply, Conversation, converse

__all__ = [
    "STOPS_AN_IP",
    "SUBMISSION_PORTS",
    "AccountLogins",
    "LoginAttempt",
    "alternating",
    "fresh_deadline",
    "implemented",
    "observe_logins",
    "offered_methods",
    "only_rejected",
    "refused_by_old_server",
]

SUBMISSION_PORTS = frozenset({465, 587})
MODULES: dict[Protocol, ModuleType] = {
    Protocol.IMAP: imap,
    Protocol.POP3: pop3,
    Protocol.SMTP: smtp,
}
# Mechanisms this suite speaks; others are compared by what the new server offers.
IMPLEMENTED_MECHANISMS = frozenset({"PLAIN", "LOGIN"})
# A rejection on one IP ends that IP's attempts for the account (see the module doc).
STOPS_AN_IP = frozenset({AuthOutcome.REJECTED, AuthOutcome.TEMPORARY})


def offered_methods(protocol: Protocol, answer: ServiceAnswer) -> list[str]:
    """The login methods a server offers on a port, as its protocol module names them."""
    methods: list[str] = MODULES[protocol].login_methods(answer)
    return methods


def implemented(method: str) -> bool:
    """Whether this suite can try `method` (USER/PASS, LOGIN, and PLAIN/LOGIN SASL).

    >>> implemented("AUTHENTICATE PLAIN"), implemented("AUTH CRAM-MD5"), implemented("USER/PASS")
    (True, False, True)
    """
    mechanism = method.split()[-1]
    return method in ("LOGIN", "USER/PASS") or mechanism in IMPLEMENTED_MECHANISMS


@dataclass(frozen=True)
class LoginAttempt:
    """One login (or the reason there was none) with one method on one endpoint."""

    endpoint: Endpoint
    method: str
    ok: bool
    outcome: AuthOutcome | None  # None: nothing was asked of the server (see `detail`)
    detail: str  # the server's reply, or why no login was tried
    seconds: float = 0.0

    @property
    def label(self) -> str:
        """`imaps 198.51.100.20:993 (new IP), AUTHENTICATE PLAIN` — for failure messages."""
        return f"{self.endpoint.where}, {self.method}"

    def summary(self) -> str:
        what = self.outcome.value if self.outcome is not None else self.detail
        return f"{self.endpoint.id} {self.method}: {'ok' if self.ok else what}"


@dataclass(frozen=True)
class AccountLogins:
    user: str
    attempts: tuple[LoginAttempt, ...]
    seconds: float

    def failures(self) -> list[LoginAttempt]:
        return [attempt for attempt in self.attempts if not attempt.ok]


def only_rejected(failures: list[LoginAttempt]) -> bool:
    """Every failed login was a rejected password (or not tried after one)."""
    return bool(failures) and all(
        attempt.outcome is AuthOutcome.REJECTED
        or (attempt.outcome is None and attempt.detail.startswith("not tried after"))
        for attempt in failures
    )


def refused_by_old_server(logins: AccountLogins, old_side: Side | None) -> list[LoginAttempt]:
    """The old server's rejections of this account when it let it in nowhere, else [].

    `old_side` is the IP the old server answers on in this phase (None once it
    is no longer live). A password the old server rejects too is not the new
    server's fault: the inventory's password is probably wrong.
    """
    if old_side is None:
        return []
    asked = [a for a in logins.attempts if a.endpoint.side is old_side and a.outcome is not None]
    if not asked or any(a.ok for a in asked):
        return []
    return [a for a in asked if a.outcome is AuthOutcome.REJECTED]


def _censor(text: str, password: str) -> str:
    return text.replace(password, "***") if password else text


def fresh_deadline(conversation: Conversation, seconds: float) -> None:
    """Give the login its own operation timeout: a server may delay the answer on purpose.

    Dovecot waits 4 s (up to 15 s) before checking any login from a client IP
    whose last login failed, whoever's it was (auth penalty).
    """
    conversation.deadline = conversation.reader.deadline = Deadline(seconds)


def _attempt(
    endpoint: Endpoint, method: str, account: Account, settings: ProbeSettings
) -> LoginAttempt:
    module = MODULES[endpoint.service.protocol]
    started = time.monotonic()

    def exchange(conversation: Conversation) -> tuple[bool, AuthOutcome | None, str]:
        answer: ServiceAnswer = module.ready(conversation)
        if endpoint.service.tls is TlsMode.STARTTLS and (
            not answer.starttls_offered or answer.starttls_error
        ):
            why = answer.starttls_error or "STARTTLS is not offered"
            return False, AuthOutcome.NO_STARTTLS, why
        if not implemented(method):
            module.goodbye(conversation)
            mechanism = method.split()[-1]
            if mechanism in answer.auth_mechanisms:
                return True, None, f"{mechanism} is not tried by this suite; the server offers it"
            offered = " ".join(sorted(answer.auth_mechanisms)) or "none"
            return False, AuthOutcome.NOT_OFFERED, f"the server offers only {offered}"
        # The server's login rate (budget.logins_per_second), then the login's own deadline.
        login_turn(endpoint.address, settings)
        fresh_deadline(conversation, settings.operation_timeout)
        # Revealed inline, never kept in a local that `--showlocals` could print.
        reply: AuthReply = module.authenticate(
            conversation, answer, method, account.user, account.password.reveal()
        )
        module.goodbye(conversation)
        detail = _censor(reply.reply, account.password.reveal())
        return reply.outcome is AuthOutcome.ACCEPTED, reply.outcome, detail

    try:
        ok, outcome, detail = converse(endpoint, settings, exchange)
    except ProbeError as exc:
        ok, outcome, detail = (
            False,
            None,
            f"no answer: {_censor(str(exc), account.password.reveal())}",
        )
    return LoginAttempt(endpoint, method, ok, outcome, detail, time.monotonic() - started)


def alternating(
    plan: Sequence[tuple[Endpoint, Sequence[str]]],
) -> list[tuple[int, Endpoint, str]]:
    """The plan's logins as (position, endpoint, method), taking the sides in turn.

    Each server's login rate (budget.logins_per_second) is its own: an account
    that alternates between the old and the new host keeps both busy, where
    one that did all of the old host's first would leave the new host idle
    while it waits for the old host's turns. Each side keeps the plan's order,
    so which attempt comes first on an IP (and stops the rest) is unchanged;
    the attempts are reported in the plan's order.
    """
    sides: dict[object, list[tuple[int, Endpoint, str]]] = {}
    position = 0
    for endpoint, methods in plan:
        for method in methods:
            sides.setdefault(endpoint.side, []).append((position, endpoint, method))
            position += 1
    queues = list(sides.values())
    ordered: list[tuple[int, Endpoint, str]] = []
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop(0))
    return ordered


def observe_logins(
    account: Account,
    plan: Sequence[tuple[Endpoint, Sequence[str]]],
    settings: ProbeSettings,
    silent: Mapping[str, str] | None = None,
) -> AccountLogins:
    """Try every planned login of one account, one after another, the sides in turn.

    `silent` maps endpoint ids already known not to answer (the session's
    service observation) to why: no login is tried there, so a dead host
    costs no timeouts here. An endpoint that gives no answer to one login
    is not asked again for the account's other methods.
    """
    started = time.monotonic()
    done: dict[int, LoginAttempt] = {}  # plan position -> its attempt
    stopped: dict[str, LoginAttempt] = {}  # IP -> the attempt that was rejected there
    unanswered = dict(silent or {})  # endpoint id -> why it gives no answer
    for position, endpoint, method in alternating(plan):
        first = stopped.get(str(endpoint.address))
        if endpoint.id in unanswered:
            done[position] = LoginAttempt(
                endpoint, method, False, None, f"no answer: {unanswered[endpoint.id]}"
            )
            continue
        if first is not None:
            done[position] = LoginAttempt(
                endpoint,
                method,
                False,
                None,
                f"not tried after {first.outcome} on {first.label}",
            )
            continue
        attempt = _attempt(endpoint, method, account, settings)
        done[position] = attempt
        if attempt.outcome in STOPS_AN_IP:
            stopped[str(endpoint.address)] = attempt
        elif attempt.outcome is None and attempt.detail.startswith("no answer: "):
            unanswered[endpoint.id] = attempt.detail.removeprefix("no answer: ")
    attempts = [done[position] for position in sorted(done)]
    return AccountLogins(account.user, tuple(attempts), time.monotonic() - started)
