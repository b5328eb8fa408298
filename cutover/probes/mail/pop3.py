"""POP3 UIDL continuity: every message keeps the unique-id POP3 clients remember it by.

A POP3 client downloads every message whose UIDL it has not seen; a changed
UIDL means the whole mailbox again (RFC 1939 7; Dovecot builds UIDLs from
`pop3_uidl_format`, by default from the IMAP UID and UIDVALIDITY).

Strictly read-only: USER/PASS, UIDL, LIST (sizes), QUIT. No RETR, TOP or
DELE, so QUIT commits nothing. Each POP3 message is tied to its IMAP
Message-ID (read with EXAMINE and BODY.PEEK) so a changed UIDL is told from
a missing message, and a UIDL that now names another message is caught.

>>> drop = read_maildrop(target, Side.NEW, inventory)            # doctest: +SKIP
>>> compare(reference.messages, drop.messages).changed            # doctest: +SKIP
[]
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cutover.compare.imap import fingerprint
from cutover.model.baseline import Baseline, BaselineError
from cutover.model.endpoints import Endpoint
from cutover.model.inventory import Account, Inventory, IPAddress, Protocol, Service, TlsMode
from cutover.model.phases import Side
from cutover.probes.connect import ProbeError
from cutover.probes.mail.logins import fresh_deadline
from cutover.probes.mail.mailboxes import ImapSession, ImapTarget, imap_service
from cutover.probes.services import ProbeSettings, pop3
from cutover.probes.services.base import AuthOutcome, Conversation, converse

__all__ = [
    "SECTION",
    "LoginRefused",
    "Maildrop",
    "PopMessage",
    "PopTarget",
    "UidlDiff",
    "baseline_maildrop",
    "compare",
    "pop3_service",
    "pop3_targets",
    "read_maildrop",
    "record_maildrop",
]

SECTION = "pop3"
# RFC 1939 7: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E.
VALID_UIDL = re.compile(r"[\x21-\x7e]{1,70}")


class LoginRefused(ProbeError):
    """The server did not let the account in, so there is no maildrop to read."""

    def __init__(self, message: str, outcome: AuthOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class PopMessage:
    number: int
    uidl: str
    size: int
    ident: str | None = None  # fingerprint of the Message-ID (via IMAP); None: not matched


@dataclass(frozen=True)
class Maildrop:
    """One account's INBOX as a POP3 client sees it, on one server."""

    where: str
    messages: tuple[PopMessage, ...]
    note: str = ""  # why messages carry no Message-ID, when they do not

    @property
    def uidls(self) -> list[str]:
        return [message.uidl for message in self.messages]


@dataclass(frozen=True)
class PopTarget:
    account: Account
    service: Service
    old: IPAddress
    new: IPAddress

    @property
    def id(self) -> str:
        return self.account.user

    def address(self, side: Side) -> IPAddress:
        return self.old if side is Side.OLD else self.new

    def endpoint(self, side: Side) -> Endpoint:
        return Endpoint(self.service, side, self.address(side))

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "account", self.account.user
        yield "pop3_service", self.service.label
        yield "old_address", str(self.old)
        yield "new_address", str(self.new)


def pop3_service(inventory: Inventory) -> Service | None:
    """The POP3 service to read: implicit TLS first, then STARTTLS, then plain."""
    preference = {TlsMode.IMPLICIT: 0, TlsMode.STARTTLS: 1, TlsMode.NONE: 2}
    services = [s for s in inventory.services if s.protocol is Protocol.POP3]
    return min(services, key=lambda s: preference[s.tls], default=None)


def pop3_targets(inventory: Inventory) -> list[PopTarget]:
    service = pop3_service(inventory)
    if service is None:
        return []
    return [
        PopTarget(account, service, inventory.old.address, inventory.new.address)
        for account in inventory.mail.accounts
    ]


def _read(
    conversation: Conversation, account: Account, settings: ProbeSettings
) -> list[tuple[int, str, int]]:
    answer = pop3.ready(conversation)
    if conversation.endpoint.service.tls is TlsMode.STARTTLS and (
        not answer.starttls_offered or answer.starttls_error
    ):
        raise ProbeError(
            f"{conversation.where}: STARTTLS unavailable "
            f"({answer.starttls_error or 'not offered'}): cannot log in as {account.user}"
        )
    method = "USER/PASS" if "USER" in answer.capabilities else "AUTH PLAIN"
    fresh_deadline(conversation, settings.operation_timeout)
    # The password is revealed inline, never kept in a local: a failing
    # frame's locals are what `--showlocals` prints.
    reply = pop3.authenticate(conversation, answer, method, account.user, account.password.reveal())
    if reply.outcome is not AuthOutcome.ACCEPTED:
        pop3.goodbye(conversation)
        raise LoginRefused(
            f"login as {account.user} with {method} on {conversation.where}: "
            f"{reply.outcome.value} ({reply.reply.replace(account.password.reveal(), '***')!r})",
            reply.outcome,
        )
    uidls = pop3.uidl_list(conversation)
    sizes = pop3.scan_list(conversation)
    pop3.goodbye(conversation)  # no DELE was sent: QUIT commits nothing
    return [(number, uidl, sizes.get(number, -1)) for number, uidl in uidls]


def _identities(
    target: PopTarget, side: Side, inventory: Inventory, listing: Sequence[tuple[int, str, int]]
) -> tuple[list[str | None], str]:
    """The Message-ID fingerprint of each POP3 message, via a read-only IMAP INBOX.

    A POP3 maildrop lists INBOX in IMAP UID order (Dovecot, Courier): the
    n-th POP3 message is the n-th IMAP message when the counts and every
    size agree. Otherwise the messages stay unmatched, with a note.
    """
    unmatched: list[str | None] = [None] * len(listing)
    service = imap_service(inventory)
    if service is None:
        return unmatched, "the inventory has no IMAP service to read Message-IDs from"
    imap_target = ImapTarget(target.account, service, target.old, target.new)
    try:
        with ImapSession.open(imap_target, side, inventory) as session:
            session.examine("INBOX")
            keys = [key for batch in session.batches(inventory.mail.batch_size) for _, key in batch]
    except ProbeError as exc:
        return unmatched, f"INBOX could not be read over IMAP ({exc})"
    if len(keys) != len(listing):
        return unmatched, f"IMAP shows {len(keys)} messages in INBOX, POP3 {len(listing)}"
    if any(key.size != size for key, (_, _, size) in zip(keys, listing, strict=True)):
        return unmatched, "POP3 sizes and IMAP RFC822.SIZE disagree: messages matched by UIDL"
    return [fingerprint(key.ident) if key.ident else None for key in keys], ""


def read_maildrop(
    target: PopTarget, side: Side, inventory: Inventory, settings: ProbeSettings | None = None
) -> Maildrop:
    """UIDL and sizes of the account's maildrop on one IP, each tied to its Message-ID."""
    settings = settings or ProbeSettings.from_inventory(inventory)
    endpoint = target.endpoint(side)
    listing = converse(endpoint, settings, lambda c: _read(c, target.account, settings))
    identities, note = _identities(target, side, inventory, listing)
    messages = tuple(
        PopMessage(number, uidl, size, ident)
        for (number, uidl, size), ident in zip(listing, identities, strict=True)
    )
    return Maildrop(endpoint.where, messages, note)


# --- comparing ---------------------------------------------------------------------


@dataclass(frozen=True)
class UidlDiff:
    """A maildrop (the subject) against the old server's (the reference)."""

    kept: int = 0
    changed: list[tuple[PopMessage, PopMessage]] = field(default_factory=list)  # same message
    reused: list[tuple[PopMessage, PopMessage]] = field(default_factory=list)  # same UIDL
    missing: list[PopMessage] = field(default_factory=list)  # UIDL gone, message not found
    added: list[PopMessage] = field(default_factory=list)  # only on the subject: new mail
    invalid: list[PopMessage] = field(default_factory=list)  # not an RFC 1939 unique-id

    @property
    def holds(self) -> bool:
        return not (self.changed or self.reused or self.missing or self.invalid)


def compare(reference: Sequence[PopMessage], subject: Sequence[PopMessage]) -> UidlDiff:
    """Pair messages by UIDL, then by Message-ID + size where the UIDL is gone.

    >>> old = [PopMessage(1, "a", 10, "m1"), PopMessage(2, "b", 20, "m2")]
    >>> new = [PopMessage(1, "a", 10, "m1"), PopMessage(2, "x", 20, "m2"),
    ...        PopMessage(3, "c", 5, "m3")]
    >>> diff = compare(old, new)
    >>> diff.kept, [(r.uidl, s.uidl) for r, s in diff.changed], [m.uidl for m in diff.added]
    (1, [('b', 'x')], ['c'])
    """
    by_uidl = {message.uidl: message for message in subject}
    by_identity: dict[tuple[str, int], list[PopMessage]] = {}
    for message in subject:
        if message.ident is not None:
            by_identity.setdefault((message.ident, message.size), []).append(message)
    diff = UidlDiff()
    claimed: set[str] = set()  # subject UIDLs paired with a reference message
    kept = 0
    for old in reference:
        same_uidl = by_uidl.get(old.uidl)
        if same_uidl is not None:
            claimed.add(same_uidl.uidl)
            if None not in (old.ident, same_uidl.ident) and old.ident != same_uidl.ident:
                diff.reused.append((old, same_uidl))
            else:
                kept += 1
            continue
        candidates = (
            [m for m in by_identity.get((old.ident, old.size), []) if m.uidl not in claimed]
            if old.ident is not None
            else []
        )
        if candidates:
            claimed.add(candidates[0].uidl)
            diff.changed.append((old, candidates[0]))
        else:
            diff.missing.append(old)
    reference_uidls = {message.uidl for message in reference}
    known = claimed | reference_uidls
    diff.added.extend(m for m in subject if m.uidl not in known)
    diff.invalid.extend(m for m in subject if not VALID_UIDL.fullmatch(m.uidl))
    return UidlDiff(kept, diff.changed, diff.reused, diff.missing, diff.added, diff.invalid)


# --- the baseline --------------------------------------------------------------------


def record_maildrop(baseline: Baseline, user: str, drop: Maildrop) -> None:
    """Keep the old server's maildrop for the later phases (UIDL, size, Message-ID digest)."""
    baseline.record(
        SECTION,
        user,
        {
            "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": drop.where,
            "note": drop.note,
            "messages": [[m.uidl, m.size, m.ident] for m in drop.messages],
        },
    )


def baseline_maildrop(baseline: Baseline, user: str) -> Maildrop:
    entry: Any = baseline.get(SECTION, user)
    if entry is None:
        raise BaselineError(
            f"no POP3 baseline for {user} in {baseline.path}: run the preflight phase first "
            "(while the old server still answers on the old IP); it records the old server's "
            "UIDLs for the later phases"
        )
    try:
        messages = tuple(
            PopMessage(number, str(uidl), int(size), ident)
            for number, (uidl, size, ident) in enumerate(entry["messages"], start=1)
        )
        where = f"the preflight baseline of the old server ({entry['recorded']}, {entry['source']})"
        return Maildrop(where, messages, str(entry.get("note", "")))
    except (KeyError, TypeError, ValueError) as exc:
        raise BaselineError(
            f"{baseline.path}: POP3 baseline for {user} is incomplete ({exc}); run preflight again"
        ) from None
