"""SMTP: the 220 greeting, EHLO keywords and AUTH mechanisms, before and after STARTTLS.

>>> answer = observe(endpoint, settings)  # doctest: +SKIP
>>> answer.identity, sorted(answer.auth_mechanisms)  # doctest: +SKIP
('new.example.test', ['LOGIN', 'PLAIN'])
"""

from __future__ import annotations

import contextlib

from cutover.inventory import TlsMode
from cutover.net import ProbeError
from cutover.protocols.base import Conversation, ProbeSettings, ServiceAnswer, converse
from cutover.targets import Endpoint

__all__ = ["ehlo_keywords", "observe"]


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


def _exchange(conversation: Conversation) -> ServiceAnswer:
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
    if starttls_error is None:
        with contextlib.suppress(ProbeError):  # the answer is complete already
            conversation.send("QUIT", "sending QUIT")
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


def observe(endpoint: Endpoint, settings: ProbeSettings) -> ServiceAnswer:
    """Greeting, EHLO (and STARTTLS + EHLO again where the port uses it), then QUIT."""
    return converse(endpoint, settings, _exchange)
