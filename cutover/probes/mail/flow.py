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

>>> flow = probe_mail_flow(inventory, smtp, account, deadline=60)  # doctest: +SKIP
>>> flow.delivered_uid, round(flow.waited, 1)                      # doctest: +SKIP
(7, 0.6)
"""

from __future__ import annotations

import email.utils
import smtplib
import socket
import ssl
import time
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage

from cutover.model.inventory import Account, Inventory, Protocol, Service
from cutover.model.phases import Side
from cutover.probes.connect import ProbeError, ProbeTimeout, peer
from cutover.probes.mail.mailboxes import ImapSession, ImapTarget, imap_service

__all__ = ["MailFlow", "probe_mail_flow", "probe_message", "relay_service"]

POLL_SECONDS = 0.5
SUBJECT = "cutover mail-flow probe {token} (safe to delete)"


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


def relay_service(inventory: Inventory) -> Service | None:
    """The SMTP service on port 25: where other MTAs deliver."""
    return next(
        (s for s in inventory.services if s.protocol is Protocol.SMTP and s.port == 25), None
    )


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


def _smtp_reason(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        raw = exc.smtp_error
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
        return f"{exc.smtp_code} {' '.join(text.split())}"[:300]
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = [
            f"{code} {text.decode('utf-8', 'replace')}" for code, text in exc.recipients.values()
        ]
        return f"recipient refused: {'; '.join(refused)}"[:300]
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return (" ".join(str(exc).split()) or type(exc).__name__)[:300]


def _send(
    inventory: Inventory, service: Service, account: str, message_id: str
) -> tuple[str, str, str]:
    """Deliver the message to the old IP's port 25: (where, greeting, reply to DATA)."""
    address = inventory.old.address
    where = f"{service.name} {peer(address, service.port)} ({Side.OLD.value} IP)"
    timeouts = inventory.timeouts
    try:
        smtp = smtplib.SMTP(timeout=timeouts.connect)
        # starttls() names `_host` as the TLS server_hostname; only __init__ sets it.
        smtp._host = str(address)  # type: ignore[attr-defined]
        code, banner = smtp.connect(str(address), service.port)
    except (smtplib.SMTPException, OSError) as exc:
        if isinstance(exc, TimeoutError | socket.timeout):
            raise ProbeTimeout(
                f"timed out after {timeouts.connect:g} s connecting to {where}"
            ) from None
        raise ProbeError(f"cannot connect to {where}: {_smtp_reason(exc)}") from None
    greeting = f"{code} {banner.decode('utf-8', 'replace')}"
    try:
        if smtp.sock is not None:
            smtp.sock.settimeout(timeouts.operation)
        if code != 220:
            raise ProbeError(f"{where} greeted with {greeting!r}, not 220")
        smtp.ehlo()
        if smtp.has_extn("starttls"):
            # As a sending MTA would: opportunistic TLS, not verified (RFC 7435).
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            smtp.starttls(context=context)
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
        raise ProbeError(f"sending to {where}: {_smtp_reason(exc)}") from None
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
    inventory: Inventory, service: Service, account: Account, deadline: float
) -> MailFlow:
    """Send through the old IP's port 25, find the message on the new IP within `deadline` s.

    Raises `ProbeError` (one line) when the message cannot be sent or the
    INBOX cannot be read; a message accepted but not delivered in time is a
    `MailFlow` with `delivered_uid=None`.
    """
    imap = imap_service(inventory)
    if imap is None:
        raise ProbeError("the inventory lists no IMAP service to find the probe message with")
    target = ImapTarget(account, imap, inventory.old.address, inventory.new.address)
    message_id = f"<cutover-probe.{uuid.uuid4().hex}@cutover.invalid>"
    # Log in first: a wrong password or a dead IMAP service is reported without sending.
    with ImapSession.open(target, Side.NEW, inventory) as session:
        where, greeting, queued = _send(inventory, service, account.user, message_id)
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
