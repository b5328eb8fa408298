"""Pure logic of the login and UIDL probes: reply classification, methods, UIDL pairing."""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import replace

import pytest

from checks.targets.mail import login_plan, login_services
from cutover.compare.pop3 import PopMessage, compare
from cutover.model.endpoints import endpoints
from cutover.model.inventory import Account, Inventory, Server
from cutover.model.phases import Phase, Side, expectations
from cutover.probes.mail.logins import (
    AccountLogins,
    LoginAttempt,
    implemented,
    only_rejected,
    refused_by_old_server,
)
from cutover.probes.services import ServiceAnswer, imap, pop3, smtp
from cutover.probes.services.base import AuthOutcome, sasl_responses


@pytest.mark.parametrize(
    ("tagged", "outcome"),
    [
        ("a1 OK [CAPABILITY IMAP4rev1] Logged in", AuthOutcome.ACCEPTED),
        ("a1 NO [AUTHENTICATIONFAILED] Authentication failed.", AuthOutcome.REJECTED),
        ("a1 NO Login failed", AuthOutcome.REJECTED),
        (
            "a1 NO [UNAVAILABLE] Temporary authentication failure. [host:2026-05-09]",
            AuthOutcome.TEMPORARY,
        ),
        ("a1 NO [PRIVACYREQUIRED] Plaintext authentication disallowed", AuthOutcome.TLS_REQUIRED),
        ("a1 BAD Unsupported authentication mechanism.", AuthOutcome.NOT_OFFERED),
        ("a1 BAD Error in IMAP command", AuthOutcome.REFUSED),
    ],
)
def test_imap_replies_are_classified(tagged: str, outcome: AuthOutcome) -> None:
    assert imap.classify(tagged) is outcome


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        ("+OK Logged in.", AuthOutcome.ACCEPTED),
        ("-ERR [AUTH] Authentication failed.", AuthOutcome.REJECTED),
        ("-ERR [SYS/TEMP] Temporary authentication failure.", AuthOutcome.TEMPORARY),
        ("-ERR [IN-USE] Mailbox is locked.", AuthOutcome.TEMPORARY),
        (
            "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
            AuthOutcome.TLS_REQUIRED,
        ),
        ("-ERR Unsupported authentication mechanism.", AuthOutcome.NOT_OFFERED),
        ("-ERR [SYS/PERM] Permission denied", AuthOutcome.REFUSED),
    ],
)
def test_pop3_replies_are_classified(reply: str, outcome: AuthOutcome) -> None:
    assert pop3.classify(reply) is outcome


@pytest.mark.parametrize(
    ("code", "text", "outcome"),
    [
        (235, "2.7.0 Authentication successful", AuthOutcome.ACCEPTED),
        (535, "5.7.8 Error: authentication failed", AuthOutcome.REJECTED),
        (454, "4.7.0 Temporary authentication failure", AuthOutcome.TEMPORARY),
        (530, "5.7.0 Must issue a STARTTLS command first", AuthOutcome.TLS_REQUIRED),
        (
            538,
            "5.7.11 Encryption required for requested authentication mechanism",
            AuthOutcome.TLS_REQUIRED,
        ),
        (504, "5.5.4 Unrecognized authentication type", AuthOutcome.NOT_OFFERED),
        (503, "5.5.1 Error: authentication not enabled", AuthOutcome.NOT_OFFERED),
        (503, "5.5.1 Error: already authenticated", AuthOutcome.REFUSED),
    ],
)
def test_smtp_replies_are_classified(code: int, text: str, outcome: AuthOutcome) -> None:
    assert smtp.classify(code, text) is outcome


def test_login_methods_follow_what_the_server_offers() -> None:
    imap_answer = ServiceAnswer(
        "x",
        "imap",
        "* OK",
        capabilities=frozenset({"IMAP4REV1", "AUTH=PLAIN", "AUTH=CRAM-MD5", "LOGINDISABLED"}),
        auth_mechanisms=frozenset({"PLAIN", "CRAM-MD5"}),
    )
    assert imap.login_methods(imap_answer) == ["AUTHENTICATE CRAM-MD5", "AUTHENTICATE PLAIN"]
    pop_answer = ServiceAnswer("x", "pop3", "+OK", capabilities=frozenset({"TOP"}))
    assert pop3.login_methods(pop_answer) == []
    smtp_answer = ServiceAnswer("x", "smtp", "220", auth_mechanisms=frozenset({"LOGIN", "PLAIN"}))
    assert smtp.login_methods(smtp_answer) == ["AUTH LOGIN", "AUTH PLAIN"]
    assert [implemented(m) for m in ("LOGIN", "AUTHENTICATE CRAM-MD5", "AUTH LOGIN")] == [
        True,
        False,
        True,
    ]


def test_sasl_responses_carry_the_credentials_base64_encoded() -> None:
    plain = sasl_responses("PLAIN", "bob@example.test", "pä ss")
    assert plain is not None
    assert base64.b64decode(plain[0]) == "\0bob@example.test\0pä ss".encode()
    login = sasl_responses("LOGIN", "bob@example.test", "pw")
    assert login is not None
    assert [base64.b64decode(r) for r in login] == [b"bob@example.test", b"pw"]


def test_imap_login_quotes_or_sends_literals() -> None:
    assert imap._login_segments("u@x", 'a"b\\c') == ['a1 LOGIN "u@x" "a\\"b\\\\c"']
    assert imap._login_segments("u@x", "pä") == ['a1 LOGIN "u@x" {3}', "pä"]


def _inventory() -> Inventory:
    return Inventory(
        old=Server(address=ipaddress.ip_address("198.51.100.10")),
        new=Server(address=ipaddress.ip_address("198.51.100.20")),
        mail={"accounts": [Account(user="alice@example.test", password_env="ALICE_PASSWORD")]},
    )


def test_submission_ports_only_for_smtp_auth() -> None:
    labels = [s.label for s in login_services(_inventory())]
    assert labels == [
        "pop3-110",
        "pop3s-995",
        "imap-143",
        "imaps-993",
        "smtps-465",
        "submission-587",
    ]


@pytest.mark.parametrize(
    ("phase", "closed", "sides"),
    [
        (Phase.PREFLIGHT, False, {"old", "new"}),
        (Phase.CUTOVER, False, {"old", "new"}),
        (Phase.ACCEPTANCE, True, {"new"}),
    ],
)
def test_login_plan_covers_every_ip_that_must_answer(
    phase: Phase, closed: bool, sides: set[str]
) -> None:
    methods = {"imaps-993": ["LOGIN", "AUTHENTICATE PLAIN"], "submission-587": ["AUTH PLAIN"]}
    plan = login_plan(_inventory(), expectations(phase, old_ip_closed=closed), methods)
    assert {e.service.label for e, _ in plan} == set(methods)  # unknown services left out
    assert {e.side.value for e, _ in plan} == sides
    assert all(m == methods[e.service.label] for e, m in plan)


def _logins(*outcomes: tuple[Side, AuthOutcome | None, str]) -> AccountLogins:
    rules = expectations(Phase.PREFLIGHT)
    imaps = next(e for e in endpoints(_inventory(), rules) if e.service.label == "imaps-993")
    by_side = {Side.OLD: imaps, Side.NEW: replace(imaps, side=Side.NEW)}
    attempts = tuple(
        LoginAttempt(by_side[side], "LOGIN", outcome is AuthOutcome.ACCEPTED, outcome, detail)
        for side, outcome, detail in outcomes
    )
    return AccountLogins("alice@example.test", attempts, 0.1)


REJECTED = AuthOutcome.REJECTED
NOT_TRIED = "not tried after credentials rejected on imaps"


def test_a_password_the_old_server_rejects_too_is_not_the_new_server_s_fault() -> None:
    both = _logins(
        (Side.OLD, REJECTED, "NO"), (Side.OLD, None, NOT_TRIED), (Side.NEW, REJECTED, "NO")
    )
    assert only_rejected(both.failures())
    assert [a.endpoint.side for a in refused_by_old_server(both, Side.OLD)] == [Side.OLD]
    # Once the old server is no longer live (cutover: the old IP forwards), nothing to blame.
    assert refused_by_old_server(both, None) == []
    # The old server lets the account in: the new server is the one that rejects it.
    new_only = _logins((Side.OLD, AuthOutcome.ACCEPTED, "OK"), (Side.NEW, REJECTED, "NO"))
    assert refused_by_old_server(new_only, Side.OLD) == []
    assert only_rejected(new_only.failures())
    # A timeout is not a rejection.
    assert not only_rejected(_logins((Side.NEW, None, "no answer: timed out")).failures())


def msg(number: int, uidl: str, size: int, ident: str | None) -> PopMessage:
    return PopMessage(number, uidl, size, ident)


def test_unchanged_uidls_hold_and_new_mail_is_only_reported() -> None:
    old = [msg(1, "a", 10, "m1"), msg(2, "b", 20, "m2")]
    new = [*old, msg(3, "c", 30, "m3")]
    diff = compare(old, new)
    assert diff.holds and diff.kept == 2
    assert [m.uidl for m in diff.added] == ["c"]


def test_a_new_uidl_format_is_a_change_per_message() -> None:
    old = [msg(1, "0000000166f0a1b2", 10, "m1"), msg(2, "0000000266f0a1b2", 20, "m2")]
    new = [msg(1, "66f0a1b2.1", 10, "m1"), msg(2, "66f0a1b2.2", 20, "m2")]
    diff = compare(old, new)
    assert not diff.holds
    assert [(o.uidl, n.uidl) for o, n in diff.changed] == [
        ("0000000166f0a1b2", "66f0a1b2.1"),
        ("0000000266f0a1b2", "66f0a1b2.2"),
    ]
    assert not diff.added and not diff.missing


def test_a_uidl_naming_another_message_is_caught() -> None:
    diff = compare([msg(1, "a", 10, "m1")], [msg(1, "a", 10, "m9")])
    assert [(o.ident, n.ident) for o, n in diff.reused] == [("m1", "m9")]


def test_without_message_ids_a_gone_uidl_is_missing() -> None:
    diff = compare([msg(1, "a", 10, None)], [msg(1, "z", 10, None)])
    assert [m.uidl for m in diff.missing] == ["a"]
    assert [m.uidl for m in diff.added] == ["z"]


def test_uidls_outside_rfc1939_are_invalid() -> None:
    diff = compare([], [msg(1, "has space", 1, None), msg(2, "x" * 71, 1, None)])
    assert len(diff.invalid) == 2 and not diff.holds
