"""POP3: the +OK greeting, CAPA, and CAPA again after STLS; login and UIDL on request.

Nothing is ever retrieved or deleted: no RETR, TOP or DELE.

>>> sorted(observe(endpoint, settings).auth_mechanisms)  # doctest: +SKIP
['LOGIN', 'PLAIN']
"""

from __future__ import annotations

from collections.abc import Iterator

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
    "capa_keywords",
    "goodbye",
    "login_methods",
    "observe",
    "ready",
    "scan_list",
    "uidl_list",
]

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


def ready(conversation: Conversation) -> ServiceAnswer:
    """Greeting and capabilities, upgraded to TLS where the port uses it; nothing sent after.

    A login probe goes on from here (`authenticate`); `observe` says goodbye.
    """
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


def goodbye(conversation: Conversation) -> None:
    say_goodbye(conversation, "QUIT")


def observe(endpoint: Endpoint, settings: ProbeSettings) -> ServiceAnswer:
    """Greeting, CAPA (STLS + CAPA again where the port uses it), QUIT."""
    return observe_with(endpoint, settings, ready, goodbye)


# --- login and the maildrop's listing (read-only) ----------------------------

# A maildrop listing may be long; the conversation's deadline still bounds it.
MAX_LISTING = 10_000_000


def login_methods(answer: ServiceAnswer) -> list[str]:
    """How a client can log in: USER/PASS (CAPA USER) and AUTH per SASL mechanism.

    >>> login_methods(ServiceAnswer("x", "pop3", "+OK", capabilities=frozenset({"USER"}),
    ...                             auth_mechanisms=frozenset({"PLAIN", "LOGIN"})))
    ['USER/PASS', 'AUTH LOGIN', 'AUTH PLAIN']
    """
    user = ["USER/PASS"] if "USER" in answer.capabilities else []
    return user + [f"AUTH {m}" for m in sorted(answer.auth_mechanisms)]


def classify(reply: str) -> AuthOutcome:
    """The outcome of the final reply to PASS or AUTH (RFC 2449/3206 response codes).

    >>> classify("-ERR [AUTH] Authentication failed.")
    <AuthOutcome.REJECTED: 'credentials rejected'>
    >>> classify("-ERR [AUTH] Plaintext authentication disallowed on non-secure connections.")
    <AuthOutcome.TLS_REQUIRED: 'TLS required first'>
    """
    if reply.startswith("+OK"):
        return AuthOutcome.ACCEPTED
    text = reply.removeprefix("-ERR").strip()
    lowered = text.lower()
    if text.startswith("[SYS/TEMP]") or text.startswith("[IN-USE]"):
        return AuthOutcome.TEMPORARY
    if "plaintext" in lowered or "ssl/tls" in lowered or "stls" in lowered:
        return AuthOutcome.TLS_REQUIRED
    if "mechanism" in lowered and ("unsupported" in lowered or "unknown" in lowered):
        return AuthOutcome.NOT_OFFERED
    if text.startswith("[SYS/PERM]"):
        return AuthOutcome.REFUSED
    return AuthOutcome.REJECTED


def authenticate(
    conversation: Conversation, answer: ServiceAnswer, method: str, user: str, password: str
) -> AuthReply:
    """Log in with `method` (from `login_methods`) on a `ready` conversation; nothing else.

    The credentials go to the server only; neither the reply nor an error names them.
    """
    if method == "USER/PASS":
        if answer.capabilities and "USER" not in answer.capabilities:
            return AuthReply(AuthOutcome.NOT_OFFERED, "CAPA does not list USER")
        conversation.send(f"USER {user}", "sending USER")
        reply = conversation.line("reading the USER reply")
        if reply.startswith("+OK"):
            conversation.send(f"PASS {password}", "sending PASS")
            reply = conversation.line("reading the PASS reply")
        return AuthReply(classify(reply), reply[:200])
    mechanism = method.removeprefix("AUTH ").upper()
    if answer.auth_mechanisms and mechanism not in answer.auth_mechanisms:
        offered = " ".join(sorted(answer.auth_mechanisms))
        return AuthReply(AuthOutcome.NOT_OFFERED, f"CAPA offers SASL {offered}")
    responses = sasl_responses(mechanism, user, password) or []
    conversation.send(f"AUTH {mechanism}", f"sending {method}")
    for _ in range(20):
        reply = conversation.line(f"reading the {method} reply")
        if reply.startswith("+") and not reply.startswith("+OK"):
            conversation.send(responses.pop(0) if responses else "*", f"continuing {method}")
        else:
            return AuthReply(classify(reply), reply[:200])
    raise ProbeError(f"{conversation.where} kept asking for more during {method}")


def _listing(conversation: Conversation, command: str) -> Iterator[tuple[int, str]]:
    """Each line of a multi-line listing as it arrives: (message number, the rest)."""
    conversation.send(command, f"sending {command}")
    status = conversation.line(f"reading the {command} reply")
    if not status.startswith("+OK"):
        raise ProbeError(f"{conversation.where} refused {command}: {status[:100]!r}")
    doing = f"reading the {command} listing"
    for _ in range(MAX_LISTING):
        line = conversation.reader.line(doing)
        if line == ".":
            return
        number, _, value = line.partition(" ")
        if not number.isdigit() or not value.strip():
            raise ProbeError(f"{conversation.where} sent a malformed {command} line: {line[:80]!r}")
        yield int(number), value.strip()
    raise ProbeError(f"{conversation.where} sent more than {MAX_LISTING} lines while {doing}")


def uidl_list(conversation: Conversation) -> list[tuple[int, str]]:
    """`UIDL` after login: (message number, unique-id) for every message in the maildrop."""
    return list(_listing(conversation, "UIDL"))


def scan_list(conversation: Conversation) -> dict[int, int]:
    """`LIST` after login: each message's size in octets (read-only, marks nothing)."""
    sizes = {}
    for number, value in _listing(conversation, "LIST"):
        size = value.split()[0]
        if not size.isdigit():
            raise ProbeError(f"{conversation.where} sent a malformed LIST size: {value[:40]!r}")
        sizes[number] = int(size)
    return sizes
