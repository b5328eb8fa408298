"""POP3 maildrops as a POP3 client sees them: UIDL and size of every message.

A POP3 client downloads every message whose UIDL it has not seen (RFC 1939 7;
Dovecot builds UIDLs from `pop3_uidl_format`, by default from the IMAP UID
and UIDVALIDITY). `cutover.compare.pop3` compares two maildrops.

Strictly read-only: USER/PASS, UIDL, LIST (sizes), QUIT. No RETR, TOP or
DELE, so QUIT commits nothing. Each POP3 message is tied to its IMAP
Message-ID (read with EXAMINE and BODY.PEEK) so a changed UIDL is told from
a missing message, and a UIDL that now names another message is caught.

>>> drop = read_maildrop(endpoint, account, settings, imap, 1000)   # doctest: +SKIP
>>> drop.uidls                                                      # doctest: +SKIP
['00000001660c1d2e', '00000002660c1d2e']
"""

from __future__ import annotations

from collections.abc import Sequence

from cutover.compare.imap import fingerprint
from cutover.compare.pop3 import Maildrop, PopMessage
from cutover.model.endpoints import Endpoint
from cutover.model.inventory import Account, TlsMode
from cutover.model.settings import ProbeSettings
from cutover.probes.connect import ProbeError, login_turn
from cutover.probes.mail.logins import fresh_deadline
from cutover.probes.mail.mailboxes import ImapSession
from cutover.probes.services import pop3
from cutover.probes.services.base import AuthOutcome, Conversation, converse

__all__ = ["PopLoginRefused", "read_maildrop"]


class PopLoginRefused(ProbeError):
    """The POP3 server did not let the account in, so there is no maildrop to read."""

    def __init__(self, message: str, outcome: AuthOutcome) -> None:
        super().__init__(message)
        self.outcome = outcome


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
    login_turn(conversation.endpoint.address, settings)
    fresh_deadline(conversation, settings.operation_timeout)
    # The password is revealed inline, never kept in a local: a failing
    # frame's locals are what `--showlocals` prints.
    reply = pop3.authenticate(conversation, answer, method, account.user, account.password.reveal())
    if reply.outcome is not AuthOutcome.ACCEPTED:
        pop3.goodbye(conversation)
        raise PopLoginRefused(
            f"login as {account.user} with {method} on {conversation.where}: "
            f"{reply.outcome.value} ({reply.reply.replace(account.password.reveal(), '***')!r})",
            reply.outcome,
        )
    uidls = pop3.uidl_list(conversation)
    sizes = pop3.scan_list(conversation)
    pop3.goodbye(conversation)  # no DELE was sent: QUIT commits nothing
    return [(number, uidl, sizes.get(number, -1)) for number, uidl in uidls]


def _identities(
    account: Account,
    imap: Endpoint | None,
    settings: ProbeSettings,
    batch_size: int,
    listing: Sequence[tuple[int, str, int]],
) -> tuple[list[str | None], str]:
    """The Message-ID fingerprint of each POP3 message, via a read-only IMAP INBOX.

    A POP3 maildrop lists INBOX in IMAP UID order (Dovecot, Courier): the
    n-th POP3 message is the n-th IMAP message when the counts and every
    size agree. Otherwise the messages stay unmatched, with a note.
    """
    unmatched: list[str | None] = [None] * len(listing)
    if imap is None:
        return unmatched, "the inventory has no IMAP service to read Message-IDs from"
    # Streamed batch by batch: only the fingerprints are kept, never every
    # message's key at once (a 100,000-message INBOX).
    idents: list[str | None] = []
    sizes_agree = True
    try:
        with ImapSession.open(imap, account, settings) as session:
            session.examine("INBOX")
            for batch in session.batches(batch_size):
                for _, key in batch:
                    position = len(idents)
                    if position < len(listing) and key.size != listing[position][2]:
                        sizes_agree = False
                    idents.append(fingerprint(key.ident) if key.ident else None)
    except ProbeError as exc:
        return unmatched, f"INBOX could not be read over IMAP ({exc})"
    if len(idents) != len(listing):
        return unmatched, f"IMAP shows {len(idents)} messages in INBOX, POP3 {len(listing)}"
    if not sizes_agree:
        return unmatched, "POP3 sizes and IMAP RFC822.SIZE disagree: messages matched by UIDL"
    return idents, ""


def read_maildrop(
    endpoint: Endpoint,
    account: Account,
    settings: ProbeSettings,
    imap: Endpoint | None,
    batch_size: int,
) -> Maildrop:
    """UIDL and sizes of the account's maildrop on one endpoint, each tied to its Message-ID.

    `imap` is the IMAP service on the same IP the Message-IDs are read from
    (`batch_size` messages a FETCH); None: the messages stay unmatched.
    """
    listing = converse(endpoint, settings, lambda c: _read(c, account, settings))
    identities, note = _identities(account, imap, settings, batch_size, listing)
    messages = tuple(
        PopMessage(number, uidl, size, ident)
        for (number, uidl, size), ident in zip(listing, identities, strict=True)
    )
    return Maildrop(endpoint.where, messages, note)
