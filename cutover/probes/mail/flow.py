"""The opt-in mail-flow probe (PORT03): the one observation that writes.

During cutover the old host forwards port 25 to the new server: mail that
other MTAs still deliver to the old IP (DNS caches, MX records not yet
switched) must land in the mailbox on the new server. The probe proves it
end to end, as a sending MTA would see it:

1. one small message for the probe account is sent to the old IP's SMTP port
   (envelope sender `<>`, so nothing can bounce back anywhere), and
2. a read-only IMAP session on the new IP waits for it in that account's
   INBOX, found by its unique Message-ID (`UID SEARCH HEADER Message-ID`),
   and reads its `Received:` headers as evidence of the path it took.

The message stays in the INBOX (Subject "cutover mail-flow probe ... safe to
delete"). Nothing else is written.

>>> flow = probe_mail_flow(relay, imap, account, settings, 60)    # doctest: +SKIP
>>> flow.delivered_uid, round(flow.waited, 1)                      # doctest: +SKIP
(7, 0.6)
"""

from __future__ import annotations

import email.utils
import smtplib
import socket
import time
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage

from cutover.model.endpoints import Endpoint
from cutover.model.inventory import Account
from cutover.model.settings import ProbeSettings
from cutover.probes.connect import (
    ProbeError,
    ProbeTimeout,
    connect,
    one_line,
    timed_out,
    tls_context,
)
from cutover.probes.mail.mailboxes import ImapSession

__all__ = ["MailFlow", "probe_mail_flow", "probe_message"]

POLL_SECONDS = 0.5
SUBJECT = "cutover mail-flow probe {token} (safe to delete)"
_WORDS = 300  # the most of a server's reply quoted in one message


@dataclass(frozen=True)
class MailFlow:
    """What the probe saw: where it sent, what the server said, where the message landed."""

    message_id: str
    sent_to: str  # "smtp 198.51.100.10:25 (old IP)"
    greeting: str  # the SMTP server's 220 line, which names the server behind the forward
    queued: str  # the reply to the end of DATA: "250 2.0.0 Ok: queued as 4Xk9..."
    searched: str  # "imaps 198.51.100.20:993 (new IP)"
    waited: float  # seconds from the end of DATA to finding it (or giving up)
    delivered_uid: int | None = None
    received: tuple[str, ...] = field(default_factory=tuple)  # Received: headers, newest first


def probe_message(account: str, message_id: str, sent_to: str) -> EmailMessage:
    """The probe message: small, plainly labelled, with a unique Message-ID.

    >>> m = probe_message("carol@example.test", "<x@cutover.invalid>", "smtp 1.2.3.4:25")
    >>> m["To"], m["Message-ID"], m["Subject"].startswith("cutover mail-flow probe")
    ('carol@example.test', '<x@cutover.invalid>', True)
    """
    message = EmailMessage()
    message["From"] = f"cutover mail-flow probe <{account}>"
    message["To"] = account
    message["Subject"] = SUBJECT.format(token=message_id.strip("<>").split("@")[0][-12:])
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
    message.set_content(
        "This message was sent by cutover --probe-mail during a server migration,\n"
        f"to {sent_to}, to prove that mail delivered to the old server's address\n"
        "still reaches this mailbox on the new server. It is safe to delete.\n"
    )
    return message


class _Smtp(smtplib.SMTP):
    """smtplib's client on the project's `connect`: the server's budget counts it."""

    def __init__(self, settings: ProbeSettings) -> None:
        self.settings = settings
        super().__init__(timeout=settings.connect_timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return connect(host, port, self.settings)


def _send(
    relay: Endpoint, settings: ProbeSettings, account: str, message_id: str
) -> tuple[str, str, str]:
    """Deliver the message to the old IP's port 25: (where, greeting, reply to DATA)."""
    address = relay.address
    where = relay.where
    try:
        smtp = _Smtp(settings)
        # starttls() names `_host` as the TLS server_hostname; only __init__ sets it.
        smtp._host = str(address)  # type: ignore[attr-defined]
        code, banner = smtp.connect(str(address), relay.service.port)
    except ProbeError as exc:
        # `connect` names only the address; the verdict wants the service and side too.
        raise type(exc)(f"{where}: {exc}") from None
    except (smtplib.SMTPException, OSError) as exc:
        if isinstance(exc, TimeoutError | socket.timeout):
            raise ProbeTimeout(
                timed_out(settings.connect_timeout, f"connecting to {where}")
            ) from None
        raise ProbeError(f"cannot connect to {where}: {one_line(exc, _WORDS)}") from None
    greeting = f"{code} {banner.decode('utf-8', 'replace')}"
    try:
        if smtp.sock is not None:
            smtp.sock.settimeout(settings.operation_timeout)
        if code != 220:
            raise ProbeError(f"{where} greeted with {greeting!r}, not 220")
        smtp.ehlo()
        if smtp.has_extn("starttls"):
            # As a sending MTA would: opportunistic TLS, not verified (RFC 7435).
            smtp.starttls(context=tls_context(settings.trust_toward(relay.side), verify=False))
            smtp.ehlo()
        message = probe_message(account, message_id, where)
        smtp.mail("")  # the null reverse-path: no bounce can go anywhere
        code, reply = smtp.rcpt(account)
        if code not in (250, 251):
            raise ProbeError(
                f"{where} refused the recipient {account}: {code} "
                f"{reply.decode('utf-8', 'replace')}"
            )
        code, reply = smtp.data(message.as_bytes())
        queued = f"{code} {reply.decode('utf-8', 'replace')}"
        if code != 250:
            raise ProbeError(f"{where} did not accept the message: {queued}")
    except ProbeError:
        smtp.close()
        raise
    except (smtplib.SMTPException, OSError, ValueError) as exc:
        smtp.close()
        raise ProbeError(f"sending to {where}: {one_line(exc, _WORDS)}") from None
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
    return where, greeting, queued


def _wait_for(
    session: ImapSession, message_id: str, deadline: float
) -> tuple[int | None, tuple[str, ...]]:
    """Poll the INBOX (EXAMINE, UID SEARCH) until the message is there or time is up."""
    while True:
        uids = session.search_header("INBOX", "Message-ID", message_id)
        if uids:
            uid = max(uids)
            return uid, session.received_headers("INBOX", uid)
        if time.monotonic() >= deadline:
            return None, ()
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def probe_mail_flow(
    relay: Endpoint,
    imap: Endpoint | None,
    account: Account,
    settings: ProbeSettings,
    deadline: float,
) -> MailFlow:
    """Send through `relay` (port 25 on the old IP), find the message on `imap` within `deadline` s.

    `imap` is the IMAP service on the new IP (None: the inventory lists none).
    Raises `ProbeError` (one line) when the message cannot be sent or the
    INBOX cannot be read; a message accepted but not delivered in time is a
    `MailFlow` with `delivered_uid=None`.
    """
    if imap is None:
        raise ProbeError("the inventory lists no IMAP service to find the probe message with")
    message_id = f"<cutover-probe.{uuid.uuid4().hex}@cutover.invalid>"
    # Log in first: a wrong password or a dead IMAP service is reported without sending.
    with ImapSession.open(imap, account, settings) as session:
        where, greeting, queued = _send(relay, settings, account.user, message_id)
        sent = time.monotonic()
        uid, received = _wait_for(session, message_id, sent + deadline)
        return MailFlow(
            message_id=message_id,
            sent_to=where,
            greeting=greeting,
            queued=queued,
            searched=session.where,
            waited=time.monotonic() - sent,
            delivered_uid=uid,
            received=received,
        )
