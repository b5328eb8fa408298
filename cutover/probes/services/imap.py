"""IMAP: the greeting, CAPABILITY, and CAPABILITY again after STARTTLS; login on request.

>>> observe(endpoint, settings).identity  # doctest: +SKIP
'new.example.test IMAP/POP3 ready.'
"""

from __future__ import annotations

import re

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
    "before_login",
    "goodbye",
    "greeting_text",
    "login_methods",
    "observe",
    "ready",
]

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


# What a client uses before it logs in. A server may list the extensions of the
# authenticated state only after login (RFC 3501 7.2.1, RFC 9051 6.1.1), and clients
# ask again then: Dovecot 2.x lists SORT, THREAD, NAMESPACE ... only after login,
# Dovecot 1.x listed them before login too.
_BEFORE_LOGIN = frozenset(
    {"IMAP4REV1", "IMAP4REV2", "STARTTLS", "LOGINDISABLED", "SASL-IR", "LOGIN-REFERRALS", "ID"}
    | {"LITERAL+", "LITERAL-"}
)


def before_login(capability: str) -> bool:
    """Whether a client uses `capability` before logging in (the protocol, TLS, login).

    >>> [c for c in ("STARTTLS", "AUTH=PLAIN", "SORT", "IDLE") if before_login(c)]
    ['STARTTLS', 'AUTH=PLAIN']
    """
    word = capability.upper()
    return word in _BEFORE_LOGIN or word.startswith("AUTH=")


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


def ready(conversation: Conversation) -> ServiceAnswer:
    """Greeting and capabilities, upgraded to TLS where the port uses it; nothing sent after.

    A login probe goes on from here (`authenticate`); `observe` says goodbye.
    """
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


def goodbye(conversation: Conversation) -> None:
    say_goodbye(conversation, "c4 LOGOUT")


def observe(endpoint: Endpoint, settings: ProbeSettings) -> ServiceAnswer:
    """Greeting, CAPABILITY (STARTTLS + CAPABILITY again where the port uses it), LOGOUT."""
    return observe_with(endpoint, settings, ready, goodbye)


# --- login -------------------------------------------------------------------

# Printable ASCII without the quoted-string specials: sent as a quoted string.
_QUOTABLE = re.compile(r"[\x20-\x7e]*")
_AUTH_TAG = "a1"


def login_methods(answer: ServiceAnswer) -> list[str]:
    """How a client can log in: LOGIN (unless LOGINDISABLED) and AUTHENTICATE per mechanism.

    >>> login_methods(ServiceAnswer("x", "imap", "* OK", capabilities=frozenset({"AUTH=PLAIN"}),
    ...                             auth_mechanisms=frozenset({"PLAIN"})))
    ['LOGIN', 'AUTHENTICATE PLAIN']
    """
    login = [] if "LOGINDISABLED" in answer.capabilities else ["LOGIN"]
    return login + [f"AUTHENTICATE {m}" for m in sorted(answer.auth_mechanisms)]


def classify(tagged: str) -> AuthOutcome:
    """The outcome of a tagged LOGIN/AUTHENTICATE reply (RFC 5530 response codes).

    >>> classify("a1 NO [AUTHENTICATIONFAILED] Authentication failed.")
    <AuthOutcome.REJECTED: 'credentials rejected'>
    >>> classify("a1 NO [UNAVAILABLE] Temporary authentication failure.")
    <AuthOutcome.TEMPORARY: 'temporary failure'>
    """
    words = tagged.split(None, 2)
    status = words[1].upper() if len(words) > 1 else ""
    text = words[2] if len(words) > 2 else ""
    match = _CODE.match(text)
    code = match.group(1).split()[0].upper() if match and match.group(1) else ""
    if status == "OK":
        return AuthOutcome.ACCEPTED
    if code in ("AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED"):
        return AuthOutcome.REJECTED
    if code == "PRIVACYREQUIRED":
        return AuthOutcome.TLS_REQUIRED
    if code == "UNAVAILABLE":
        return AuthOutcome.TEMPORARY
    if code == "CANNOT" or (status == "BAD" and "mechanism" in text.lower()):
        return AuthOutcome.NOT_OFFERED
    return AuthOutcome.REJECTED if status == "NO" and not code else AuthOutcome.REFUSED


def _login_segments(user: str, password: str) -> list[str]:
    """`LOGIN user password` as lines: a value that cannot be quoted goes as a literal."""
    segments, line = [], f"{_AUTH_TAG} LOGIN"
    for value in (user, password):
        if _QUOTABLE.fullmatch(value):
            line += ' "' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        else:
            segments.append(line + f" {{{len(value.encode())}}}")
            line = value
    return [*segments, line]


def authenticate(
    conversation: Conversation, answer: ServiceAnswer, method: str, user: str, password: str
) -> AuthReply:
    """Log in with `method` (from `login_methods`) on a `ready` conversation; nothing else.

    The credentials go to the server only; neither the reply nor an error names them.
    """
    if method == "LOGIN":
        if "LOGINDISABLED" in answer.capabilities:
            return AuthReply(AuthOutcome.TLS_REQUIRED, "CAPABILITY lists LOGINDISABLED")
        responses = _login_segments(user, password)
        conversation.send(responses.pop(0), "sending LOGIN")
    else:
        mechanism = method.removeprefix("AUTHENTICATE ").upper()
        if answer.auth_mechanisms and mechanism not in answer.auth_mechanisms:
            offered = " ".join(sorted(answer.auth_mechanisms))
            return AuthReply(AuthOutcome.NOT_OFFERED, f"CAPABILITY offers AUTH={offered}")
        responses = sasl_responses(mechanism, user, password) or []
        conversation.send(f"{_AUTH_TAG} AUTHENTICATE {mechanism}", f"sending {method}")
    for _ in range(20):
        line = conversation.line(f"reading the {method.split()[0]} reply")
        if line.startswith("+"):
            # An empty continuation answers anything unexpected: "*" cancels.
            conversation.send(responses.pop(0) if responses else "*", f"continuing {method}")
        elif line.startswith(f"{_AUTH_TAG} "):
            return AuthReply(classify(line), line[len(_AUTH_TAG) + 1 :][:200])
    raise ProbeError(f"{conversation.where} sent no tagged reply to {method}")
