"""IMAP observation: one strictly read-only session per account and server.

A session logs in once and is reused for every mailbox: LIST and LSUB, then
per mailbox EXAMINE (`select_folder(readonly=True)`, never SELECT) and
`UID FETCH` in batches of `BODY.PEEK[...]` items, so no flag is ever set.
Messages are streamed as compact `(uid, MessageKey)` batches, never held
for the whole mailbox. The answers are read by `imap_parsing`.

>>> session = ImapSession.open(endpoint, account, settings)   # doctest: +SKIP
>>> state = session.examine("INBOX")                          # doctest: +SKIP
>>> state.uidvalidity, state.uidnext                          # doctest: +SKIP
(1700000000, 121)
"""

from __future__ import annotations

import contextlib
import hashlib
import imaplib
import re
import socket
import ssl
from collections.abc import Iterator, Sequence
from typing import Any, cast

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import IMAPClientError, ProtocolError

from cutover.compare.imap import Batch, Listing, MailboxState, MessageKey
from cutover.model.budget import Slot
from cutover.model.endpoints import Endpoint
from cutover.model.inventory import Account, TlsMode
from cutover.model.settings import ProbeSettings
from cutover.probes.connect import (
    ProbeError,
    ProbeTimeout,
    ServerName,
    hold,
    login_turn,
    one_line,
    timed_out,
    tls_context,
)
from cutover.probes.mail.imap_parsing import (
    FETCH_ITEMS,
    HEADER_DIGEST_PREFIX,
    as_bytes,
    as_text,
    message_flags,
    message_id,
    parse_fetch,
    parse_list_lines,
    quoted_name,
    received,
    uid_set,
)
from cutover.untrusted import shown

__all__ = ["ImapSession"]


# The most of a server's words quoted in one message.
_WORDS = 300


_LIBRARY_ERRORS = (IMAPClientError, imaplib.IMAP4.error, OSError, ValueError, EOFError)


class ImapSession:
    """A logged-in, read-only IMAP connection to one server for one account."""

    compact = False  # holds Message-IDs, not digests

    def __init__(self, client: IMAPClient, where: str, user: str) -> None:
        self._client = client
        self.where = self.label = where
        self.user = user
        greeting = shown(as_text(client.welcome).removeprefix("* OK ").strip())
        if greeting.startswith("["):  # drop the response code: [CAPABILITY ...]
            greeting = greeting.partition("]")[2].strip()
        self.greeting = greeting
        self.condstore = False  # known after login: capabilities grow then
        self.slot: Slot | None = None  # its server's budget slot, given back in `close`

    @classmethod
    def open(cls, endpoint: Endpoint, account: Account, settings: ProbeSettings) -> ImapSession:
        """Connect to `endpoint` and log in as `account`, or raise `ProbeError`."""
        service = endpoint.service
        where = endpoint.where
        name = settings.server_names.get(service.name)
        context = tls_context(settings.trust_toward(endpoint.side), check_hostname=name is not None)
        tls = cast(ssl.SSLContext, ServerName(context, name))
        timeout = SocketTimeout(settings.connect_timeout, settings.operation_timeout)
        # IMAPClient opens its own socket: the session holds a slot of the
        # server's budget from here until `close`.
        slot = hold(endpoint.address, settings, where)
        try:
            client = IMAPClient(
                str(endpoint.address),
                port=service.port,
                ssl=service.tls is TlsMode.IMPLICIT,
                ssl_context=tls,
                timeout=timeout,
            )
        except BaseException as exc:
            if slot is not None:
                slot.release()
            if not isinstance(exc, _LIBRARY_ERRORS):
                raise
            if isinstance(exc, TimeoutError | socket.timeout):
                raise ProbeTimeout(
                    timed_out(settings.connect_timeout, f"connecting to {where}")
                ) from None
            raise ProbeError(f"cannot connect to {where}: {one_line(exc, _WORDS)}") from None
        session = cls(client, where, account.user)
        session.slot = slot
        try:
            if service.tls is TlsMode.STARTTLS:
                session._call("upgrading with STARTTLS", client.starttls, tls)
            login_turn(endpoint.address, settings)
            try:
                client.login(account.user, account.password.reveal())
            except _LIBRARY_ERRORS as exc:
                # The server's words only; the exception chain is dropped so no
                # library frame holding the password reaches a traceback.
                reason = one_line(exc, _WORDS).replace(account.password.reveal(), "***")
                raise ProbeError(f"login as {account.user} failed on {where}: {reason}") from None
            session.condstore = bool(
                session._call("reading CAPABILITY", client.has_capability, "CONDSTORE")
            )
        except BaseException:
            session.close()
            raise
        return session

    def _failed(self, doing: str, exc: BaseException) -> ProbeError:
        return ProbeError(f"{doing} on {self.where} as {self.user}: {one_line(exc, _WORDS)}")

    def _call(self, doing: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except _LIBRARY_ERRORS as exc:
            raise self._failed(doing, exc) from None

    def listing(self) -> Listing:
        """LIST "" "*" and LSUB "" "*"."""
        listed = self._folders("LIST", self._client.list_folders)
        subscribed = self._folders("LSUB", self._client.list_sub_folders)
        names = {name: flags for flags, name in listed}
        return Listing(
            mailboxes=frozenset(names),
            selectable=frozenset(
                name for name, flags in names.items() if not flags & {"\\noselect", "\\nonexistent"}
            ),
            subscribed=frozenset(name for _, name in subscribed),
        )

    def _folders(self, command: str, function: Any) -> list[tuple[frozenset[str], str]]:
        """(lower-case flags, name) of each LIST or LSUB line.

        imapclient's parser refuses a name with an unbalanced bracket (any
        user can create `brk[31m`: "No closing ']'"); such an answer is read
        again with `parse_list_lines`, which takes the name as the server sent it.
        """
        try:
            found = function()
        except (ProtocolError, ValueError):
            raw_list = self._client._imap.lsub if command == "LSUB" else self._client._imap.list
            status, data = self._call(command, raw_list, '""', "*")
            if status != "OK":
                raise self._failed(command, Exception(*data)) from None
            try:
                return parse_list_lines(data)
            except ValueError as exc:
                raise ProbeError(
                    f"{command} on {self.where} as {self.user}: cannot parse {exc}"
                ) from None
        except _LIBRARY_ERRORS as exc:
            raise self._failed(command, exc) from None
        return [
            (frozenset(as_text(f).lower() for f in flags), str(name)) for flags, _, name in found
        ]

    def examine(self, name: str) -> MailboxState:
        """EXAMINE (read-only SELECT) `name`: UIDVALIDITY, UIDNEXT, EXISTS."""
        answer = self._call(f"EXAMINE {name!r}", self._client.select_folder, name, readonly=True)
        try:
            return MailboxState(
                name=name,
                uidvalidity=int(answer[b"UIDVALIDITY"]),
                uidnext=int(answer[b"UIDNEXT"]),
                exists=int(answer[b"EXISTS"]),
            )
        except (KeyError, TypeError, ValueError):
            raise ProbeError(
                f"EXAMINE {name!r} on {self.where} as {self.user}: answer lacks "
                f"UIDVALIDITY/UIDNEXT/EXISTS ({sorted(as_text(k) for k in answer)})"
            ) from None

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """The examined mailbox's messages in ascending UID order, `batch_size` at a time."""
        uids = sorted(self._call("UID SEARCH ALL", self._client.search, ["ALL"]))
        for start in range(0, len(uids), batch_size):
            yield self._fetch(uids[start : start + batch_size])

    def messages_from(self, first_uid: int, batch_size: int) -> Batch:
        """The examined mailbox's messages with UID >= `first_uid` (BODY.PEEK: no flag is set).

        `UID SEARCH UID n:*` also matches the last message when every UID is
        below n (RFC 3501 6.4.8): such UIDs are left out.
        """
        found = self._call(
            f"UID SEARCH UID {first_uid}:*", self._client.search, ["UID", f"{first_uid}:*"]
        )
        uids = sorted(int(uid) for uid in found if int(uid) >= first_uid)
        batch: Batch = []
        for start in range(0, len(uids), batch_size):
            batch += self._fetch(uids[start : start + batch_size])
        return batch

    def _fetch(self, uids: Sequence[int]) -> Batch:
        # imapclient's generic parser costs ~27 us a message with FLAGS, more
        # than everything else together; imaplib's own UID FETCH plus
        # `parse_fetch` (its fast path) keeps the whole walk near a bare
        # fetch of UIDs and Message-IDs. imapclient.fetch would also reject
        # range strings ("1:1000": ValueError in 4.1).
        imap = self._client._imap
        typ, data = self._call("UID FETCH", imap.uid, "FETCH", uid_set(uids), FETCH_ITEMS)
        if typ != "OK":
            last = as_text(data[-1] if data else "")
            raise ProbeError(f"UID FETCH on {self.where} as {self.user}: {typ} {last}")
        batch: Batch = []
        headerless: list[int] = []
        wanted = set(uids)
        answer = self._call("parsing the UID FETCH answer", parse_fetch, data)
        for uid, (size, raw_flags, header) in sorted(answer.items()):
            if uid not in wanted:  # an unsolicited FETCH about another message
                continue
            flags = message_flags(raw_flags)
            ident = message_id(header)
            if not ident:
                headerless.append(uid)
            batch.append((uid, MessageKey(ident, size, flags)))
        if headerless:
            digests = self._header_digests(headerless)
            batch = [
                (uid, key._replace(ident=digests.get(uid, ""))) if not key.ident else (uid, key)
                for uid, key in batch
            ]
        return batch

    def _header_digests(self, uids: list[int]) -> dict[int, str]:
        answer = self._call("UID FETCH headers", self._client.fetch, uids, ["BODY.PEEK[HEADER]"])
        return {
            uid: HEADER_DIGEST_PREFIX
            + hashlib.blake2b(item.get(b"BODY[HEADER]") or b"", digest_size=16).hexdigest()
            for uid, item in answer.items()
        }

    def highestmodseq(self, name: str) -> int | None:
        """STATUS (HIGHESTMODSEQ), or None without CONDSTORE.

        Asked after the fetches: it enables CONDSTORE for the rest of the
        session (RFC 7162 3.1), which would add MODSEQ to every FETCH answer.
        """
        if not self.condstore:
            return None
        doing = f"STATUS {shown(name)!r}"
        try:
            answer = self._client.folder_status(name, ["HIGHESTMODSEQ"])
        except (ProtocolError, ValueError):
            # The answer echoes the name: imapclient cannot parse `brk[31m` there either.
            status, data = self._call(
                doing, self._client._imap.status, quoted_name(name), "(HIGHESTMODSEQ)"
            )
            found = re.search(rb"\(.*HIGHESTMODSEQ (\d+)", b" ".join(as_bytes(d) for d in data))
            if status != "OK" or found is None:
                raise ProbeError(
                    f"{doing} on {self.where} as {self.user}: cannot parse the answer "
                    f"'{shown(b' '.join(as_bytes(d) for d in data))}'"
                ) from None
            return int(found.group(1))
        except _LIBRARY_ERRORS as exc:
            raise self._failed(doing, exc) from None
        value = answer.get(b"HIGHESTMODSEQ")
        return int(value) if value is not None else None

    def search_header(self, mailbox: str, header: str, value: str) -> list[int]:
        """EXAMINE `mailbox` afresh and `UID SEARCH HEADER header value`: the matching UIDs."""
        self._call(f"EXAMINE {mailbox!r}", self._client.select_folder, mailbox, readonly=True)
        found = self._call(
            f"UID SEARCH HEADER {header}", self._client.search, ["HEADER", header, value]
        )
        return [int(uid) for uid in found]

    def received_headers(self, mailbox: str, uid: int) -> tuple[str, ...]:
        """The message's `Received:` headers (BODY.PEEK: no flag is set), unfolded."""
        self._call(f"EXAMINE {mailbox!r}", self._client.select_folder, mailbox, readonly=True)
        item = b"BODY[HEADER.FIELDS (RECEIVED)]"
        answer = self._call(
            "UID FETCH (Received)",
            self._client.fetch,
            [uid],
            ["BODY.PEEK[HEADER.FIELDS (RECEIVED)]"],
        )
        return received(as_bytes(answer.get(uid, {}).get(item, b"")))

    def close(self) -> None:
        try:
            self._client.logout()
        except Exception:  # already closed or broken: nothing left to release
            with contextlib.suppress(Exception):
                self._client.shutdown()
        finally:
            slot, self.slot = self.slot, None
            if slot is not None:
                slot.release()

    def __enter__(self) -> ImapSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
