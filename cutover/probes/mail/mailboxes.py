"""IMAP observation: one strictly read-only session per account and server.

A session logs in once and is reused for every mailbox: LIST and LSUB, then
per mailbox EXAMINE (`select_folder(readonly=True)`, never SELECT) and
`UID FETCH` in batches of `BODY.PEEK[...]` items, so no flag is ever set.
Messages are streamed as compact `(uid, MessageKey)` batches, never held
for the whole mailbox.

>>> session = ImapSession.open(target, account, inventory)   # doctest: +SKIP
>>> state = session.examine("INBOX")                          # doctest: +SKIP
>>> state.uidvalidity, state.uidnext                          # doctest: +SKIP
(1700000000, 121)
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import imaplib
import re
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple, cast

from imapclient import IMAPClient, SocketTimeout, imap_utf7
from imapclient.exceptions import IMAPClientError, ProtocolError
from imapclient.response_parser import parse_fetch_response

from cutover.model.inventory import Account, Inventory, IPAddress, Protocol, Service, TlsMode
from cutover.model.phases import Side
from cutover.probes.connect import ProbeError, ProbeTimeout, peer
from cutover.untrusted import shown

__all__ = [
    "Batch",
    "ImapSession",
    "ImapTarget",
    "Listing",
    "MailboxState",
    "MessageKey",
    "imap_service",
    "imap_targets",
]

# Session state, not message state: \Recent is set by the server for the
# first session that sees a message and is never migrated.
SESSION_FLAGS = frozenset({"\\Recent"})
MESSAGE_ID_ITEM = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"  # answered without .PEEK
FETCH_ITEMS = "(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
HEADER_DIGEST_PREFIX = "headers:"


class MessageKey(NamedTuple):
    """What identifies one message under its UID (a tuple: ~100 bytes each)."""

    ident: str  # the Message-ID, or `headers:<digest>` when it has none
    size: int  # RFC822.SIZE
    flags: tuple[str, ...]  # sorted, without session flags


Batch = list[tuple[int, MessageKey]]


@dataclass(frozen=True)
class MailboxState:
    """The EXAMINE answer for one mailbox (HIGHESTMODSEQ from STATUS, CONDSTORE only)."""

    name: str
    uidvalidity: int
    uidnext: int
    exists: int
    highestmodseq: int | None = None


@dataclass(frozen=True)
class Listing:
    """LIST and LSUB of one account, names decoded from modified UTF-7."""

    mailboxes: frozenset[str]
    selectable: frozenset[str]
    subscribed: frozenset[str]


@dataclass(frozen=True)
class ImapTarget:
    """One account to check on both IPs (the checks' parameter)."""

    account: Account
    service: Service
    old: IPAddress
    new: IPAddress

    @property
    def id(self) -> str:
        return self.account.user

    def address(self, side: Side) -> IPAddress:
        return self.old if side is Side.OLD else self.new

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "account", self.account.user
        yield "imap_service", self.service.label
        yield "old_address", str(self.old)
        yield "new_address", str(self.new)


def imap_service(inventory: Inventory) -> Service | None:
    """The IMAP service to observe: implicit TLS first, then STARTTLS, then plain."""
    preference = {TlsMode.IMPLICIT: 0, TlsMode.STARTTLS: 1, TlsMode.NONE: 2}
    services = [s for s in inventory.services if s.protocol is Protocol.IMAP]
    return min(services, key=lambda s: preference[s.tls], default=None)


def imap_targets(inventory: Inventory) -> list[ImapTarget]:
    service = imap_service(inventory)
    if service is None:
        return []
    return [
        ImapTarget(account, service, inventory.old.address, inventory.new.address)
        for account in inventory.mail.accounts
    ]


@lru_cache(maxsize=8)
def _chain_only_context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.check_hostname = False  # the chain is still verified (CERT_REQUIRED)
    return context


@lru_cache(maxsize=8)
def _hostname_context(ca_file: Path | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


class _ServerName:
    """Verifies the certificate for a client-facing name while connecting to an IP.

    imapclient and imaplib pass the connect address as `server_hostname`; the
    certificate names the mail host, not the IP, so the name is substituted.
    """

    def __init__(self, context: ssl.SSLContext, name: str | None) -> None:
        self.context = context
        self.name = name

    def wrap_socket(self, sock: socket.socket, **kwargs: Any) -> ssl.SSLSocket:
        kwargs["server_hostname"] = self.name
        return self.context.wrap_socket(sock, **kwargs)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not trusted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    text = " ".join(_server_words(exc).split())
    return shown(text, limit=300) or type(exc).__name__


def _server_words(exc: BaseException) -> str:
    """An IMAP library error's text, the server's bytes decoded.

    imaplib raises its error with the server's response as bytes, and
    IMAPClient turns a failed login into `LoginError(str(that error))`:
    both would show `b'[AUTHENTICATIONFAILED] ...'`.

    >>> _server_words(imaplib.IMAP4.error(b"[AUTHENTICATIONFAILED] Authentication failed."))
    '[AUTHENTICATIONFAILED] Authentication failed.'
    >>> _server_words(ValueError("b'[ALERT] Over quota'"))
    '[ALERT] Over quota'
    """
    if len(exc.args) == 1 and isinstance(exc.args[0], bytes):
        return _text(exc.args[0])
    text = str(exc)
    if re.fullmatch(r"b('|\").*\1", text, re.S):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        if isinstance(value, bytes):
            return _text(value)
    return text


_LIBRARY_ERRORS = (IMAPClientError, imaplib.IMAP4.error, OSError, ValueError, EOFError)


class ImapSession:
    """A logged-in, read-only IMAP connection to one server for one account."""

    compact = False  # holds Message-IDs, not digests

    def __init__(self, client: IMAPClient, where: str, user: str) -> None:
        self._client = client
        self.where = self.label = where
        self.user = user
        greeting = shown(_text(client.welcome).removeprefix("* OK ").strip())
        if greeting.startswith("["):  # drop the response code: [CAPABILITY ...]
            greeting = greeting.partition("]")[2].strip()
        self.greeting = greeting
        self.condstore = False  # known after login: capabilities grow then

    @classmethod
    def open(cls, target: ImapTarget, side: Side, inventory: Inventory) -> ImapSession:
        """Connect to `target`'s account on one IP and log in, or raise `ProbeError`."""
        service = target.service
        address = target.address(side)
        where = f"{service.name} {peer(address, service.port)} ({side.value} IP)"
        names = inventory.service_hostnames(service)
        context = (
            _hostname_context(inventory.tls.ca_file)
            if names
            else _chain_only_context(inventory.tls.ca_file)
        )
        tls = cast(ssl.SSLContext, _ServerName(context, names[0] if names else None))
        timeout = SocketTimeout(inventory.timeouts.connect, inventory.timeouts.operation)
        try:
            client = IMAPClient(
                str(address),
                port=service.port,
                ssl=service.tls is TlsMode.IMPLICIT,
                ssl_context=tls,
                timeout=timeout,
            )
        except _LIBRARY_ERRORS as exc:
            if isinstance(exc, TimeoutError | socket.timeout):
                raise ProbeTimeout(
                    f"timed out after {inventory.timeouts.connect:g} s connecting to {where}"
                ) from None
            raise ProbeError(f"cannot connect to {where}: {_reason(exc)}") from None
        session = cls(client, where, target.account.user)
        try:
            if service.tls is TlsMode.STARTTLS:
                session._call("upgrading with STARTTLS", client.starttls, tls)
            try:
                client.login(target.account.user, target.account.password.reveal())
            except _LIBRARY_ERRORS as exc:
                # The server's words only; the exception chain is dropped so no
                # library frame holding the password reaches a traceback.
                reason = _reason(exc).replace(target.account.password.reveal(), "***")
                raise ProbeError(
                    f"login as {target.account.user} failed on {where}: {reason}"
                ) from None
            session.condstore = bool(
                session._call("reading CAPABILITY", client.has_capability, "CONDSTORE")
            )
        except ProbeError:
            session.close()
            raise
        return session

    def _call(self, doing: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except _LIBRARY_ERRORS as exc:
            raise ProbeError(f"{doing} on {self.where} as {self.user}: {_reason(exc)}") from None

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
                raise ProbeError(
                    f"{command} on {self.where} as {self.user}: {_reason(Exception(*data))}"
                ) from None
            try:
                return parse_list_lines(data)
            except ValueError as exc:
                raise ProbeError(
                    f"{command} on {self.where} as {self.user}: cannot parse {exc}"
                ) from None
        except _LIBRARY_ERRORS as exc:
            raise ProbeError(f"{command} on {self.where} as {self.user}: {_reason(exc)}") from None
        return [(frozenset(_text(f).lower() for f in flags), str(name)) for flags, _, name in found]

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
                f"UIDVALIDITY/UIDNEXT/EXISTS ({sorted(_text(k) for k in answer)})"
            ) from None

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """The examined mailbox's messages in ascending UID order, `batch_size` at a time."""
        uids = sorted(self._call("UID SEARCH ALL", self._client.search, ["ALL"]))
        for start in range(0, len(uids), batch_size):
            yield self._fetch(uids[start : start + batch_size])

    def _fetch(self, uids: Sequence[int]) -> Batch:
        # imapclient's generic parser costs ~27 us a message with FLAGS, more
        # than everything else together; imaplib's own UID FETCH plus
        # `parse_fetch` (its fast path) keeps the whole walk near a bare
        # fetch of UIDs and Message-IDs. imapclient.fetch would also reject
        # range strings ("1:1000": ValueError in 4.1).
        imap = self._client._imap
        typ, data = self._call("UID FETCH", imap.uid, "FETCH", uid_set(uids), FETCH_ITEMS)
        if typ != "OK":
            raise ProbeError(
                f"UID FETCH on {self.where} as {self.user}: {typ} {_text(data[-1] if data else '')}"
            )
        batch: Batch = []
        headerless: list[int] = []
        wanted = set(uids)
        answer = self._call("parsing the UID FETCH answer", parse_fetch, data)
        for uid, (size, raw_flags, header) in sorted(answer.items()):
            if uid not in wanted:  # an unsolicited FETCH about another message
                continue
            flags = _FLAGS.get(raw_flags)
            if flags is None:
                flags = _FLAGS[raw_flags] = tuple(
                    sorted(f for f in raw_flags.decode().split() if f not in SESSION_FLAGS)
                )
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
                doing, self._client._imap.status, _quoted(name), "(HIGHESTMODSEQ)"
            )
            found = re.search(rb"\(.*HIGHESTMODSEQ (\d+)", b" ".join(_bytes(d) for d in data))
            if status != "OK" or found is None:
                raise ProbeError(
                    f"{doing} on {self.where} as {self.user}: cannot parse the answer "
                    f"'{shown(b' '.join(_bytes(d) for d in data))}'"
                ) from None
            return int(found.group(1))
        except _LIBRARY_ERRORS as exc:
            raise ProbeError(f"{doing} on {self.where} as {self.user}: {_reason(exc)}") from None
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
        raw = _bytes(answer.get(uid, {}).get(item, b""))
        text = _FOLD.sub(b" ", raw).decode("utf-8", "replace")
        return tuple(
            " ".join(line.split(":", 1)[1].split())
            for line in text.splitlines()
            if line.lower().startswith("received:")
        )

    def close(self) -> None:
        try:
            self._client.logout()
        except Exception:  # already closed or broken: nothing left to release
            with contextlib.suppress(Exception):
                self._client.shutdown()

    def __enter__(self) -> ImapSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_FOLD = re.compile(rb"\r?\n[ \t]+")
# Decoded flag lists by their raw text: a mailbox has only a few distinct ones.
_FLAGS: dict[bytes, tuple[str, ...]] = {}
# One FETCH answer whose last item is the Message-ID header as a literal:
# `12 (UID 40 RFC822.SIZE 2345 FLAGS (\Seen) BODY[HEADER.FIELDS (MESSAGE-ID)] {47}`.
_FETCH_LINE = re.compile(
    rb"(\d+) \((.*) BODY\[HEADER\.FIELDS \(\"?MESSAGE-ID\"?\)\] \{\d+\}", re.IGNORECASE
)
_FETCH_ATTRIBUTE = re.compile(rb"(UID) (\d+)|(RFC822\.SIZE) (\d+)|(FLAGS) \(([^)]*)\)", re.I)

FetchAnswer = dict[int, tuple[int, bytes, bytes]]  # UID -> (size, flags text, header)


def uid_set(uids: Sequence[int]) -> str:
    """`1:3,7,9:10` for ascending [1, 2, 3, 7, 9, 10]."""
    parts: list[str] = []
    start = previous = uids[0]
    for uid in uids[1:]:
        if uid != previous + 1:
            parts.append(f"{start}:{previous}" if previous != start else str(start))
            start = uid
        previous = uid
    parts.append(f"{start}:{previous}" if previous != start else str(start))
    return ",".join(parts)


def parse_fetch(data: Sequence[Any]) -> FetchAnswer:
    """imaplib's untagged FETCH data for our FETCH_ITEMS, by UID.

    The fast path reads the usual shape directly; anything else (items in
    another shape, unsolicited FETCHes, NIL or quoted headers) is handed to
    imapclient's general parser, so the answer is the same either way.
    """
    fast = _parse_fetch_fast(data)
    return fast if fast is not None else _parse_fetch_general(data)


def _parse_fetch_fast(data: Sequence[Any]) -> FetchAnswer | None:
    answer: FetchAnswer = {}
    items = iter(data)
    for entry in items:
        if not isinstance(entry, tuple) or next(items, None) != b")":
            return None
        line = _FETCH_LINE.fullmatch(entry[0])
        if line is None:
            return None
        uid = size = flags = None
        for match in _FETCH_ATTRIBUTE.finditer(line.group(2)):
            if match.group(1):
                uid = int(match.group(2))
            elif match.group(3):
                size = int(match.group(4))
            else:
                flags = match.group(6)
        if uid is None or size is None or flags is None:
            return None
        answer[uid] = (size, flags, entry[1])
    return answer


def _parse_fetch_general(data: Sequence[Any]) -> FetchAnswer:
    parsed = parse_fetch_response(list(data), False, True)
    answer: FetchAnswer = {}
    for uid, item in parsed.items():
        if b"RFC822.SIZE" not in item:  # e.g. an unsolicited FLAGS update
            continue
        answer[uid] = (
            int(item[b"RFC822.SIZE"]),
            b" ".join(_bytes(f) for f in item.get(b"FLAGS", ())),
            _bytes(item.get(MESSAGE_ID_ITEM) or b""),
        )
    return answer


_LIST_LINE = re.compile(
    rb'^\((?P<flags>[^)]*)\) (?:NIL|"(?:[^"\\]|\\.)*") (?P<name>.*)$', re.IGNORECASE
)


def parse_list_lines(data: Sequence[Any]) -> list[tuple[frozenset[str], str]]:
    """(lower-case flags, name) of each LIST/LSUB line as imaplib returns them.

    A name is a quoted string, a literal (imaplib hands it over as a
    (line, bytes) pair) or an atom taken as it stands, brackets and all.
    Names are decoded from modified UTF-7 like imapclient does.

    >>> parse_list_lines([b'(\\\\HasNoChildren) "." brk[31m', b'() "." "a \\\\"b\\\\""'])
    [(frozenset({'\\\\hasnochildren'}), 'brk[31m'), (frozenset(), 'a "b"')]
    >>> parse_list_lines([(b'() "/" {3}', b'x]y')])
    [(frozenset(), 'x]y')]
    """
    folders = []
    for item in data:
        if item in (None, b""):
            continue
        line, literal = (item[0], item[1]) if isinstance(item, tuple) else (item, None)
        match = _LIST_LINE.match(_bytes(line))
        if match is None:
            raise ValueError(f"the LIST line '{shown(line)}'")
        flags = frozenset(_text(f).lower() for f in match.group("flags").split())
        name = match.group("name")
        if literal is not None:
            name = _bytes(literal)
        elif name.startswith(b'"') and name.endswith(b'"') and len(name) > 1:
            name = re.sub(rb"\\(.)", rb"\1", name[1:-1])
        folders.append((flags, imap_utf7.decode(name)))
    return folders


def _quoted(name: str) -> bytes:
    """A mailbox name as an IMAP quoted string, in modified UTF-7.

    >>> _quoted('brk[31m "x"')
    b'"brk[31m \\\\"x\\\\""'
    """
    encoded = _bytes(imap_utf7.encode(name))
    return b'"' + encoded.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def message_id(header: bytes | None) -> str:
    """The Message-ID from a `HEADER.FIELDS (MESSAGE-ID)` answer, unfolded ('' if none)."""
    if not header:
        return ""
    name, sep, value = header.partition(b":")
    value = value.strip()
    if sep and name.lower() == b"message-id" and not any(c in value for c in b" \t\r\n"):
        return value.decode("utf-8", errors="replace")  # the usual one-line, one-token case
    text = _FOLD.sub(b" ", header)
    for line in text.splitlines():
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"message-id":
            return " ".join(value.decode("utf-8", errors="replace").split())
    return ""


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
