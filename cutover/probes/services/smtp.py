"""SMTP: the 220 greeting, EHLO keywords and AUTH mechanisms, before and after STARTTLS.

AUTH on request, then QUIT: no mail is ever sent.

>>> answer = observe(endpoint, settings)  # doctest: +SKIP
>>> answer.identity, sorted(answer.auth_mechanisms)  # doctest: +SKIP
('new.example.test', ['LOGIN', 'PLAIN'])
"""

from __future__ import annotations

from cutover.model.endpoints import Endpoint
from cutover.model.inventory import TlsMode
from cutover.model.settings import ProbeSettings
from cutover.probes.connect import ProbeError
from cutover.probes.services.base import (
    AuthOutcome,
    AuthReply,
    Conversation,
    ServiceAnswer,
    observe_with,
    sasl_responses,
    say_goodbye,
)

__all__ = [
    "authenticate",
    "ehlo_keywords",
    "goodbye",
    "login_methods",
    "observe",
    "ready",
]


def _reply(conversation: Conversation, doing: str) -> tuple[int, list[str]]:
    """One (possibly multi-line) reply: its code and the text of each line."""
    lines = conversation.reader.lines_until(lambda line: line[3:4] != "-", doing)
    code = lines[-1][:3]
    if not code.isdigit():
        raise ProbeError(f"{conversation.where} is not an SMTP server: {lines[-1][:80]!r}")
    return int(code), [line[4:] for line in lines]


def ehlo_keywords(lines: list[str]) -> tuple[frozenset[str], frozenset[str]]:
    """EHLO reply lines (after the first) as keywords and AUTH mechanisms.

    >>> keywords, mechanisms = ehlo_keywords(["SIZE 10240000", "AUTH PLAIN LOGIN", "AUTH=PLAIN"])
    >>> sorted(keywords), sorted(mechanisms)
    (['AUTH LOGIN', 'AUTH PLAIN', 'SIZE'], ['LOGIN', 'PLAIN'])
    """
    keywords: set[str] = set()
    mechanisms: set[str] = set()
    for line in lines:
        words = (
            line.replace("=", " ", 1).split()
            if line.upper().startswith("AUTH=")
            else (line.split())
        )
        if not words:
            continue
        keyword = words[0].upper()
        if keyword == "AUTH":
            mechanisms.update(word.upper() for word in words[1:])
        else:
            keywords.add(keyword)
    return frozenset(keywords | {f"AUTH {m}" for m in mechanisms}), frozenset(mechanisms)


def _ehlo(conversation: Conversation, name: str) -> tuple[frozenset[str], frozenset[str]]:
    conversation.send(f"EHLO {name}", "sending EHLO")
    code, lines = _reply(conversation, "reading the EHLO reply")
    if code != 250:
        raise ProbeError(f"{conversation.where} refused EHLO: {code} {lines[-1][:80]}")
    return ehlo_keywords(lines[1:])


def ready(conversation: Conversation) -> ServiceAnswer:
    """Greeting and capabilities, upgraded to TLS where the port uses it; nothing sent after.

    A login probe goes on from here (`authenticate`); `observe` says goodbye.
    """
    code, lines = _reply(conversation, "reading the SMTP greeting")
    greeting = f"{code} {lines[0]}"
    if code != 220:
        raise ProbeError(f"{conversation.where} greeted with {greeting[:100]!r} instead of 220")
    host = lines[0].split()[0] if lines[0].split() else None
    ehlo_name = conversation.settings.ehlo_name
    keywords, mechanisms = _ehlo(conversation, ehlo_name)
    plain: frozenset[str] | None = None
    starttls_offered: bool | None = None
    starttls_error = None
    if conversation.endpoint.service.tls is TlsMode.STARTTLS:
        plain, starttls_offered = keywords, "STARTTLS" in keywords
        if starttls_offered:
            conversation.send("STARTTLS", "sending STARTTLS")
            code, reply = _reply(conversation, "reading the STARTTLS reply")
            if code != 220:
                starttls_error = f"STARTTLS refused: {code} {reply[-1][:80]}"
            else:
                starttls_error = conversation.upgrade()
                if starttls_error is None:
                    keywords, mechanisms = _ehlo(conversation, ehlo_name)
    return ServiceAnswer(
        where=conversation.where,
        protocol="smtp",
        greeting=greeting,
        identity=host,
        identity_source="SMTP greeting",
        capabilities=keywords,
        capabilities_plain=plain,
        auth_mechanisms=mechanisms,
        starttls_offered=starttls_offered,
        starttls_error=starttls_error,
        tls=conversation.tls,
    )


def goodbye(conversation: Conversation) -> None:
    say_goodbye(conversation, "QUIT")


def observe(endpoint: Endpoint, settings: ProbeSettings) -> ServiceAnswer:
    """Greeting, EHLO (and STARTTLS + EHLO again where the port uses it), then QUIT."""
    return observe_with(endpoint, settings, ready, goodbye)


# --- login (AUTH, then QUIT: never MAIL FROM) ---------------------------------

_OUTCOMES = {
    235: AuthOutcome.ACCEPTED,
    535: AuthOutcome.REJECTED,
    454: AuthOutcome.TEMPORARY,
    530: AuthOutcome.TLS_REQUIRED,
    538: AuthOutcome.TLS_REQUIRED,
    504: AuthOutcome.NOT_OFFERED,
}


def login_methods(answer: ServiceAnswer) -> list[str]:
    """`AUTH <mechanism>` for each mechanism EHLO offers.

    >>> login_methods(ServiceAnswer("x", "smtp", "220", auth_mechanisms=frozenset({"PLAIN"})))
    ['AUTH PLAIN']
    """
    return [f"AUTH {m}" for m in sorted(answer.auth_mechanisms)]


def classify(code: int, text: str) -> AuthOutcome:
    """The outcome of the final reply to AUTH (RFC 4954).

    >>> classify(535, "5.7.8 Error: authentication failed: authentication failure")
    <AuthOutcome.REJECTED: 'credentials rejected'>
    >>> classify(503, "5.5.1 Error: authentication not enabled")
    <AuthOutcome.NOT_OFFERED: 'mechanism not offered'>
    """
    if code in _OUTCOMES:
        return _OUTCOMES[code]
    if code == 503 and "not enabled" in text.lower():
        return AuthOutcome.NOT_OFFERED
    return AuthOutcome.REFUSED


def authenticate(
    conversation: Conversation, answer: ServiceAnswer, method: str, user: str, password: str
) -> AuthReply:
    """`AUTH <mechanism>` on a `ready` conversation; nothing else.

    When EHLO lists no AUTH at all the command is sent anyway: the server's
    answer tells "TLS required first" (530/538) from "not enabled" (503).
    The credentials go to the server only; neither the reply nor an error names them.
    """
    mechanism = method.removeprefix("AUTH ").upper()
    if answer.auth_mechanisms and mechanism not in answer.auth_mechanisms:
        offered = " ".join(sorted(answer.auth_mechanisms))
        return AuthReply(AuthOutcome.NOT_OFFERED, f"EHLO offers AUTH {offered}")
    responses = sasl_responses(mechanism, user, password) or []
    if mechanism == "PLAIN" and responses:  # the initial response saves a round trip
        conversation.send(f"AUTH PLAIN {responses.pop(0)}", "sending AUTH PLAIN")
    else:
        conversation.send(f"AUTH {mechanism}", f"sending {method}")
    for _ in range(20):
        code, lines = _reply(conversation, f"reading the {method} reply")
        if code != 334:
            return AuthReply(classify(code, lines[-1]), f"{code} {lines[-1][:200]}")
        conversation.send(responses.pop(0) if responses else "*", f"continuing {method}")
    raise ProbeError(f"{conversation.where} kept asking for more during {method}")
