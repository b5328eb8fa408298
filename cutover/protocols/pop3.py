"""POP3: the +OK greeting, CAPA, and CAPA again after STLS. No login, nothing retrieved.

>>> sorted(observe(endpoint, settings).auth_mechanisms)  # doctest: +SKIP
['LOGIN', 'PLAIN']
"""

from __future__ import annotations

import contextlib

from cutover.inventory import TlsMode
from cutover.net import ProbeError
from cutover.protocols.base import Conversation, ProbeSettings, ServiceAnswer, converse
from cutover.targets import Endpoint

__all__ = ["capa_keywords", "observe"]

# Names the software, not a capability a client relies on.
_IGNORED = frozenset({"IMPLEMENTATION"})


def capa_keywords(lines: list[str]) -> tuple[frozenset[str], frozenset[str]]:
    """CAPA lines as keywords (one `SASL X` per mechanism) and SASL mechanisms.

    >>> keywords, mechanisms = capa_keywords(["TOP", "SASL PLAIN LOGIN", "IMPLEMENTATION x"])
    >>> sorted(keywords), sorted(mechanisms)
    (['SASL LOGIN', 'SASL PLAIN', 'TOP'], ['LOGIN', 'PLAIN'])
    """
    keywords: set[str] = set()
    mechanisms: set[str] = set()
    for line in lines:
        words = line.upper().split()
        if not words or words[0] in _IGNORED:
            continue
        if words[0] == "SASL":
            mechanisms.update(words[1:])
        else:
            keywords.add(words[0])
    return frozenset(keywords | {f"SASL {m}" for m in mechanisms}), frozenset(mechanisms)


def _capa(conversation: Conversation) -> tuple[frozenset[str], frozenset[str]]:
    conversation.send("CAPA", "sending CAPA")
    status = conversation.line("reading the CAPA reply")
    if not status.startswith("+OK"):
        raise ProbeError(f"{conversation.where} refused CAPA: {status[:80]!r}")
    lines = conversation.reader.lines_until(lambda line: line == ".", "reading the CAPA list")
    return capa_keywords(lines[:-1])


def _exchange(conversation: Conversation) -> ServiceAnswer:
    greeting = conversation.line("reading the POP3 greeting")
    if not greeting.startswith("+OK"):
        raise ProbeError(f"{conversation.where} greeted with {greeting[:100]!r}, not '+OK'")
    text = greeting[3:].strip()
    capabilities, mechanisms = _capa(conversation)
    plain: frozenset[str] | None = None
    starttls_offered: bool | None = None
    starttls_error = None
    if conversation.endpoint.service.tls is TlsMode.STARTTLS:
        plain, starttls_offered = capabilities, "STLS" in capabilities
        if starttls_offered:
            conversation.send("STLS", "sending STLS")
            reply = conversation.line("reading the STLS reply")
            if not reply.startswith("+OK"):
                starttls_error = f"STLS refused: {reply[:80]!r}"
            else:
                starttls_error = conversation.upgrade()
                if starttls_error is None:
                    capabilities, mechanisms = _capa(conversation)
    if starttls_error is None:
        with contextlib.suppress(ProbeError):  # the answer is complete already
            conversation.send("QUIT", "sending QUIT")
    return ServiceAnswer(
        where=conversation.where,
        protocol="pop3",
        greeting=greeting,
        identity=text,
        identity_source="POP3 greeting",
        capabilities=capabilities,
        capabilities_plain=plain,
        auth_mechanisms=mechanisms,
        starttls_offered=starttls_offered,
        starttls_error=starttls_error,
        tls=conversation.tls,
    )


def observe(endpoint: Endpoint, settings: ProbeSettings) -> ServiceAnswer:
    """Greeting, CAPA (STLS + CAPA again where the port uses it), QUIT."""
    return converse(endpoint, settings, _exchange)
