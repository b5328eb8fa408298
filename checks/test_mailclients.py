"""Mail clients notice nothing: every account logs in as before, POP3 UIDLs are unchanged.

The reference is the old server: live on the old IP while it still answers
there (preflight, which records it into the baseline), afterwards the
preflight baseline. Each account is observed once per run (its logins one
after another, accounts concurrently: checks/observe/mail.py); the checks
only judge.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace

import pytest

from checks.declare import check
from checks.observe.mail import PopContinuity
from checks.support import expectations_for, no_problems, parametrize
from checks.targets.mail import AccountTarget, PopTarget, account_targets, pop3_targets
from cutover.compare.pop3 import Maildrop
from cutover.model.phases import PhaseExpectations, Side, serving_ip
from cutover.probes.connect import ProbeError
from cutover.probes.mail.logins import (
    STOPS_AN_IP,
    AccountLogins,
    LoginAttempt,
    only_rejected,
    refused_by_old_server,
)
from cutover.probes.mail.pop3 import PopLoginRefused
from cutover.probes.services import Observations
from cutover.probes.services.base import AuthOutcome

Record = Callable[..., None]
# Mailboxes up to this size are recorded UIDL by UIDL in the report; larger ones as a digest.
RECORD_UIDLS = 1000
SHOWN = 10  # evidence lines per kind of problem

HINTS = {
    AuthOutcome.REJECTED: (
        "the new server does not accept this account's password, which the old one "
        "accepts: the account is missing from the new passdb, its password hash is in a "
        "scheme the new server cannot verify (Dovecot logs 'Unknown scheme'; `doveadm pw -l` "
        "lists the supported ones), or the password differs; `doveadm auth test USER` on the "
        "new host tells which"
    ),
    AuthOutcome.TEMPORARY: (
        "the new server's passdb failed while checking the password (Dovecot logs "
        "'Unknown scheme' for a hash it cannot verify, or the passdb is unreachable)"
    ),
    AuthOutcome.NOT_OFFERED: (
        "enable the mechanism on the new server (Dovecot auth_mechanisms; Postfix "
        "smtpd_sasl_auth_enable and smtpd_sasl_security_options): clients keep the one "
        "they were configured with"
    ),
    AuthOutcome.TLS_REQUIRED: (
        "the new server wants TLS before login where the old one did not (Dovecot "
        "disable_plaintext_auth / ssl = required, Postfix smtpd_tls_auth_only)"
    ),
    AuthOutcome.NO_STARTTLS: "STARTTLS does not work on that port (PORT01 has the details)",
}
OLD_REJECTS_HINT = (
    "the inventory's password for this account is probably wrong (or the account is refused "
    "everywhere): the old server, which clients use today, rejects it too ({rejected}); check "
    "the secret mail.accounts names for it (password_env or password_file)"
)
TIMEOUT_HINT = (
    "a login that times out may have been delayed on purpose: Dovecot waits 4-15 s before "
    "checking any login from a client IP whose previous login failed (auth penalty); fix the "
    "rejected accounts first, or raise timeouts.operation"
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    config = metafunc.config
    if "mail_account" in metafunc.fixturenames:
        parametrize(
            metafunc,
            "mail_account",
            lambda inv: account_targets(inv, expectations_for(config, inv)),
        )
    if "pop_account" in metafunc.fixturenames:
        parametrize(
            metafunc, "pop_account", lambda inv: pop3_targets(inv, expectations_for(config, inv))
        )


# --- AUTH01 -------------------------------------------------------------------------


def _login_problems(failures: list[LoginAttempt]) -> list[str]:
    problems: list[str] = []
    not_tried: dict[str, list[str]] = {}
    unanswered: dict[tuple[str, str], list[str]] = {}  # (where, why) -> methods
    for attempt in failures:
        if attempt.outcome is None and attempt.detail.startswith("not tried after"):
            not_tried.setdefault(attempt.detail, []).append(
                f"{attempt.endpoint.id} {attempt.method}"
            )
            continue
        if attempt.outcome is None and attempt.detail.startswith("no answer"):
            unanswered.setdefault((attempt.endpoint.where, attempt.detail), []).append(
                attempt.method
            )
            continue
        what = attempt.outcome.value if attempt.outcome is not None else "no login"
        problems.append(f"{attempt.label}: {what}: {attempt.detail}")
    for (where, why), methods in unanswered.items():
        problems.append(f"{where}: {why} (no login with {', '.join(methods)})")
    for reason, which in not_tried.items():
        problems.append(
            f"{reason} (each further failed login would make Dovecot delay every login "
            f"from this client IP): {', '.join(which)}"
        )
    return problems


@check("AUTH01", phases=("preflight", "cutover", "acceptance"))
def test_account_logs_in_everywhere(
    mail_account: AccountTarget,
    account_logins: Observations[AccountTarget, AccountLogins],
    old_login_methods: dict[str, list[str] | str],
    expect: PhaseExpectations,
    record: Record,
) -> None:
    """AUTH01: every account logs in on every mail port, with every method the old server offered.

    Why: clients keep their configured port and mechanism. A password hash
    scheme the new server cannot verify, or an account missing from its
    passdb, shows up only as a failed login: the user is locked out.
    Inputs: mail.accounts; IMAP (LOGIN, AUTHENTICATE), POP3 (USER/PASS, AUTH)
    and SMTP AUTH on the submission ports (465, 587), after TLS where the port
    uses it, on every address that must answer in this phase (each address
    of a dual-stack host: one test per account and address); the methods
    the old server offered (CAPABILITY, CAPA, EHLO: live in preflight, the baseline
    later). PLAIN and LOGIN are tried; other mechanisms the old server offered
    must be offered by the new one. Nothing is fetched, no mail is sent.
    Fix: copy the passdb with its hashes in a scheme the new server supports
    (`doveadm pw -l` lists them), add missing accounts, enable the old
    mechanisms (Dovecot auth_mechanisms, Postfix smtpd_sasl_*).
    """
    observed = account_logins.get(mail_account)
    # A dual-stack test judges the logins on its own address only.
    logins = replace(
        observed,
        attempts=tuple(a for a in observed.attempts if mail_account.judges(a.endpoint)),
    )
    record(
        logins="; ".join(attempt.summary() for attempt in logins.attempts),
        login_seconds=f"{observed.seconds:.3f}",
    )
    user = mail_account.account.user
    unknown = [m for m in old_login_methods.values() if isinstance(m, str)]
    problems = list(unknown)
    failures = logins.failures()
    problems += _login_problems(failures)
    causes = dict.fromkeys(a.outcome for a in failures if a.outcome is not None)
    # Judged on every address: the old server rejecting the password anywhere it answers.
    old_rejects = refused_by_old_server(observed, serving_ip(expect, Side.OLD))
    if old_rejects:  # not the new server's fault: the old one says no as well
        causes.pop(AuthOutcome.REJECTED, None)
        rejected = f"{len(old_rejects)} of its logins rejected"
        problems.append(f"likely cause: {OLD_REJECTS_HINT.format(rejected=rejected)}")
    problems += [f"likely cause: {HINTS[cause]}" for cause in causes if cause in HINTS]
    if any(a.outcome is None and "timed out" in a.detail for a in failures):
        problems.append(f"likely cause: {TIMEOUT_HINT}")
    fail = f"{len(failures)} of {len(logins.attempts)} logins fail"
    # `login as USER rejected`: the verdict's root causes group it with the account's
    # other failures (IMAP01-05 cannot log in either).
    rejected_only = only_rejected(failures) and not unknown
    if rejected_only and old_rejects:
        headline = f"login as {user} rejected, by the old server too ({fail})"
    elif rejected_only:
        headline = (
            f"{user} cannot log in everywhere the old server let it: login as {user} "
            f"rejected ({fail})"
        )
    elif logins.attempts:
        headline = f"{user} cannot log in everywhere the old server let it ({fail})"
    else:  # nothing was tried: say what stopped it, not a count of zero
        headline = f"{user}: no login could be tried"
    no_problems(problems, headline)


# --- POP01 --------------------------------------------------------------------------


def _uidls_property(drop: Maildrop) -> str:
    uidls = drop.uidls
    if len(uidls) <= RECORD_UIDLS:
        return json.dumps(uidls)
    digest = hashlib.sha256("\n".join(uidls).encode()).hexdigest()[:16]
    return f"{len(uidls)} UIDLs, sha256 {digest}"


def _shown(lines: list[str]) -> list[str]:
    extra = len(lines) - SHOWN
    return lines[:SHOWN] + ([f"... and {extra} more"] if extra > 0 else [])


def _uidl_problems(continuity: PopContinuity, target: PopTarget) -> list[str]:
    problems = []
    reference = continuity.reference
    for side, drop, diff in continuity.subjects:
        if not target.judges(side):
            continue
        against = f"on {drop.where} against the old server ({reference.where})"
        if diff.changed:
            problems.append(
                f"{len(diff.changed)} of {len(reference.messages)} messages have a new UIDL "
                f"{against}; every POP3 client downloads them again:"
            )
            problems += _shown(
                [
                    f"  message {new.number} ({new.size} octets): UIDL {old.uidl!r} -> {new.uidl!r}"
                    for old, new in diff.changed
                ]
            )
        if diff.reused:
            problems.append(
                f"{len(diff.reused)} UIDLs name another message {against}; clients skip "
                "those messages as already downloaded:"
            )
            problems += _shown(
                [
                    f"  UIDL {old.uidl!r}: message {new.number} ({new.size} octets) is not the "
                    f"one it named ({old.size} octets)"
                    for old, new in diff.reused
                ]
            )
        if diff.missing:
            note = f" ({drop.note or reference.note})" if (drop.note or reference.note) else ""
            problems.append(
                f"{len(diff.missing)} UIDLs are gone {against}: the message is missing or its "
                f"UIDL changed{note}:"
            )
            problems += _shown([f"  UIDL {m.uidl!r} ({m.size} octets)" for m in diff.missing])
        if diff.invalid:
            problems.append(f"UIDLs that are not RFC 1939 unique-ids on {drop.where}:")
            problems += _shown([f"  message {m.number}: {m.uidl!r}" for m in diff.invalid])
    if problems:
        problems.append(
            "likely cause: pop3_uidl_format differs from the old server's (Dovecot's default "
            "is %08Xu%08Xv, built from UID and UIDVALIDITY), or UIDs/UIDVALIDITY changed "
            "(IMAP02/IMAP03); UIDLs a previous server generated must be migrated "
            "(dsync keeps them; Dovecot stores them in dovecot-uidlist)"
        )
    return problems


@check("POP01", phases=("preflight", "cutover", "acceptance"))
def test_pop3_uidls_unchanged(
    pop_account: PopTarget,
    pop3_continuity: Observations[PopTarget, PopContinuity],
    record: Record,
) -> None:
    """POP01: every message in each account's INBOX keeps its POP3 UIDL; new mail is reported.

    Why: POP3 clients remember which messages they downloaded by UIDL (RFC 1939).
    A changed UIDL format or changed UIDs make every POP3 client download the
    whole mailbox again; a UIDL that now names another message makes clients
    skip it. Messages only on the new server (delivered since the sync) are
    allowed and reported.
    Inputs: mail.accounts; USER/PASS, UIDL and LIST (sizes) on the POP3 port
    (implicit TLS preferred) of the old server (live in preflight, the
    baseline later) and of every address the new server answers on (each
    address of a dual-stack host: one test per account and address); the
    IMAP Message-ID of each message (EXAMINE, BODY.PEEK) on the same
    address, to tell a changed UIDL from a missing message. No RETR, TOP or DELE.
    Fix: keep pop3_uidl_format as on the old server (Dovecot default
    %08Xu%08Xv); migrate with dsync, which keeps UIDs, UIDVALIDITY and stored
    POP3 UIDLs.
    """
    try:
        continuity = pop3_continuity.get(pop_account)
    except PopLoginRefused as refused:
        if refused.outcome in STOPS_AN_IP:
            pytest.skip(f"{pop_account.id}: no UIDLs to compare: {refused} (AUTH01 reports it)")
        pytest.fail(f"{pop_account.id}: {refused}", pytrace=False)
    except ProbeError as exc:
        pytest.fail(f"{pop_account.id}: {exc}", pytrace=False)
    record(**{f"uidls_{continuity.reference_side}": _uidls_property(continuity.reference)})
    for side, drop, diff in continuity.subjects:
        if not pop_account.judges(side):
            continue
        record(**{f"uidls_{side}": _uidls_property(drop)})
        if diff.added:
            record(**{f"new_messages_{side}": ", ".join(m.uidl for m in diff.added[:50])})
    user = pop_account.account.user
    unread = [
        f"{user}: {why}" for side, why in continuity.unread.items() if pop_account.judges(side)
    ]
    if unread:
        pytest.fail("\n".join(unread), pytrace=False)
    no_problems(_uidl_problems(continuity, pop_account), f"{pop_account.id}: POP3 UIDLs changed")
