"""IMAP: the greeting, CAPABILITY, and CAPABILITY again after STARTTLS. No login.

>>> observe(endpoint, settings).identity  # doctest: +SKIP
'new.example.test IMAP/POP3 ready.'
"""

from __future__ import annotations

import contextlib
import re

from cutover.inventory import TlsMode
from cutover.net import ProbeError
from cutover.protocols.base import Conversation, ProbeSettings, ServiceAnswer, converse
from cutover.targets import Endpoint

__all__ = ["greeting_text", "observe"]

_CODE = re.compile(r"^\[([^\]]*)\]\s*")


def greeting_text(greeting: str) -> tuple[str, list[str]]:
    """The server's words and the capabilities in an `* OK [CAPABILITY ...] text` greeting.

    >>> greeting_text("* OK [CAPABILITY IMAP4rev1 STARTTLS] new.example.test ready.")
    ('new.example.test ready.', ['IMAP4rev1', 'STARTTLS'])
    """
    rest = greeting.split(None, 2)[2] if len(greeting.split(None, 2)) > 2 else ""
    capabilities: list[str] = []
    match = _CODE.match(rest)
    if match:
        words = match.group(1).split()
        if words and words[0].upper() == "CAPABILITY":
            capabilities = words[1:]
        rest = rest[match.end() :]
    return rest.strip(), capabilities


def _capability(conversation: Conversation, tag: str) -> frozenset[str]:
    conversation.send(f"{tag} CAPABILITY", "sending CAPABILITY")
    found: list[str] = []
    for line in conversation.reader.lines_until(
        lambda line: line.startswith(f"{tag} "), "reading the CAPABILITY reply"
    ):
        words = line.split()
        if len(words) > 1 and words[0] == "*" and words[1].upper() == "CAPABILITY":
            found += words[2:]
        elif words[0] == tag and words[1:2] != ["OK"]:
            raise ProbeError(f"{conversation.where} refused CAPABILITY: {line[:80]!r}")
    return frozenset(word.upper() for word in found)


def _mechanisms(capabilities: frozenset[str]) -> frozenset[str]:
    return frozenset(c[5:] for c in capabilities if c.startswith("AUTH="))


def _exchange(conversation: Conversation) -> ServiceAnswer:
    greeting = conversation.line("reading the IMAP greeting")
    if not greeting.upper().startswith(("* OK", "* PREAUTH")):
        raise ProbeError(f"{conversation.where} greeted with {greeting[:100]!r}, not '* OK'")
    text, _ = greeting_text(greeting)
    capabilities = _capability(conversation, "c1")
    plain: frozenset[str] | None = None
    starttls_offered: bool | None = None
    starttls_error = None
    if conversation.endpoint.service.tls is TlsMode.STARTTLS:
        plain, starttls_offered = capabilities, "STARTTLS" in capabilities
        if starttls_offered:
            conversation.send("c2 STARTTLS", "sending STARTTLS")
            reply = conversation.reader.lines_until(
                lambda line: line.startswith("c2 "), "reading the STARTTLS reply"
            )[-1]
            if not reply.upper().startswith("C2 OK"):
                starttls_error = f"STARTTLS refused: {reply[:80]!r}"
            else:
                starttls_error = conversation.upgrade()
                if starttls_error is None:
                    capabilities = _capability(conversation, "c3")
    if starttls_error is None:
        with contextlib.suppress(ProbeError):  # the answer is complete already
            conversation.send("c4 LOGOUT", "sending LOGOUT")
    return ServiceAnswer(
        where=conversation.where,
        protocol="imap",
        greeting=greeting,
        identity=text,
        identity_source="IMAP greeting",
        capabilities=capabilities,
        capabilities_plain=plain,
        auth_mechanisms=_mechanisms(capabilities),
        starttls_offered=starttls_offered,
        starttls_error=starttls_error,
        tls=conversation.tls,
    )


def observe(endpoint: Endpoint, settings: ProbeSettings) -> ServiceAnswer:
    """Greeting, CAPABILITY (STARTTLS + CAPABILITY again where the port uses it), LOGOUT."""
    return converse(endpoint, settings, _exchange)
