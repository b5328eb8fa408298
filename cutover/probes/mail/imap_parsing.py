"""IMAP answers as imaplib hands them over: FETCH, LIST/LSUB lines, headers, names.

Pure parsing, no network: the session (`mailboxes`) asks, this reads the
answers. `parse_fetch` has a fast path for the usual FETCH shape and falls
back to imapclient's general parser for anything else, so the answer is the
same either way.

>>> uid_set([1, 2, 3, 7])
'1:3,7'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from imapclient import imap_utf7
from imapclient.response_parser import parse_fetch_response

from cutover.untrusted import shown

__all__ = [
    "FETCH_ITEMS",
    "HEADER_DIGEST_PREFIX",
    "SESSION_FLAGS",
    "FetchAnswer",
    "as_bytes",
    "as_text",
    "message_flags",
    "message_id",
    "parse_fetch",
    "parse_list_lines",
    "quoted_name",
    "received",
    "uid_set",
]

# Session state, not message state: \Recent is set by the server for the
# first session that sees a message and is never migrated.
SESSION_FLAGS = frozenset({"\\Recent"})
MESSAGE_ID_ITEM = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"  # answered without .PEEK
FETCH_ITEMS = "(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
HEADER_DIGEST_PREFIX = "headers:"

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
            b" ".join(as_bytes(f) for f in item.get(b"FLAGS", ())),
            as_bytes(item.get(MESSAGE_ID_ITEM) or b""),
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
        match = _LIST_LINE.match(as_bytes(line))
        if match is None:
            raise ValueError(f"the LIST line '{shown(line)}'")
        flags = frozenset(as_text(f).lower() for f in match.group("flags").split())
        name = match.group("name")
        if literal is not None:
            name = as_bytes(literal)
        elif name.startswith(b'"') and name.endswith(b'"') and len(name) > 1:
            name = re.sub(rb"\\(.)", rb"\1", name[1:-1])
        folders.append((flags, imap_utf7.decode(name)))
    return folders


def quoted_name(name: str) -> bytes:
    """A mailbox name as an IMAP quoted string, in modified UTF-7.

    >>> quoted_name('brk[31m "x"')
    b'"brk[31m \\\\"x\\\\""'
    """
    encoded = as_bytes(imap_utf7.encode(name))
    return b'"' + encoded.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def as_bytes(value: Any) -> bytes:
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


def as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def message_flags(raw: bytes) -> tuple[str, ...]:
    """A FETCH answer's flag list, sorted and without session flags (decoded once per text)."""
    flags = _FLAGS.get(raw)
    if flags is None:
        flags = _FLAGS[raw] = tuple(
            sorted(f for f in raw.decode().split() if f not in SESSION_FLAGS)
        )
    return flags


def received(raw: bytes) -> tuple[str, ...]:
    """The `Received:` headers of a `HEADER.FIELDS (RECEIVED)` answer, unfolded."""
    text = _FOLD.sub(b" ", raw).decode("utf-8", "replace")
    return tuple(
        " ".join(line.split(":", 1)[1].split())
        for line in text.splitlines()
        if line.lower().startswith("received:")
    )
