"""The UID FETCH answer parser: its fast path and imapclient's general parser agree."""

from __future__ import annotations

from typing import Any

import pytest

from cutover.probes.mail.imap_parsing import (
    _parse_fetch_fast,
    _parse_fetch_general,
    parse_fetch,
    uid_set,
)

HEADER = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"


def answer(seq: int, attributes: bytes, header: bytes) -> list[Any]:
    """imaplib's untagged data for one FETCH whose header comes as a literal."""
    return [(b"%d (%s %s {%d}" % (seq, attributes, HEADER, len(header)), header), b")"]


USUAL = [
    *answer(1, b"UID 1 RFC822.SIZE 265 FLAGS (\\Seen)", b"Message-ID: <1@lab.test>\r\n\r\n"),
    *answer(2, b"UID 2 RFC822.SIZE 275 FLAGS ()", b"Message-ID: <2@lab.test>\r\n\r\n"),
    *answer(3, b"FLAGS (\\Flagged $Important) UID 4 RFC822.SIZE 10", b"\r\n"),
    *answer(4, b"UID 7 MODSEQ (12) RFC822.SIZE 99 FLAGS (\\Recent \\Seen)", b"\r\n"),
]


def test_the_usual_shape_takes_the_fast_path_and_matches_imapclient() -> None:
    fast = _parse_fetch_fast(USUAL)
    assert fast == _parse_fetch_general(USUAL)
    assert fast == {
        1: (265, b"\\Seen", b"Message-ID: <1@lab.test>\r\n\r\n"),
        2: (275, b"", b"Message-ID: <2@lab.test>\r\n\r\n"),
        4: (10, b"\\Flagged $Important", b"\r\n"),
        7: (99, b"\\Recent \\Seen", b"\r\n"),
    }


@pytest.mark.parametrize(
    "odd",
    [
        # the header before the other items
        [(b"5 (%s {4}" % HEADER, b"\r\n\r\n"), b" UID 9 RFC822.SIZE 8 FLAGS (\\Seen))"],
        # an unsolicited flag update in between
        [b"6 (FLAGS (\\Seen) UID 11)"],
        # NIL instead of a literal
        [b"7 (UID 12 RFC822.SIZE 5 FLAGS () %s NIL)" % HEADER],
    ],
)
def test_other_shapes_fall_back_to_imapclient(odd: list[Any]) -> None:
    data = [*USUAL, *odd]
    assert _parse_fetch_fast(data) is None
    parsed = parse_fetch(data)
    assert parsed == _parse_fetch_general(data)
    assert parsed[1] == (265, b"\\Seen", b"Message-ID: <1@lab.test>\r\n\r\n")
    assert 11 not in parsed  # no size: not an answer to our FETCH


def test_uid_sets_use_ranges() -> None:
    assert uid_set([1, 2, 3, 7, 9, 10]) == "1:3,7,9:10"
    assert uid_set([5]) == "5"


def test_a_mailbox_name_with_an_unbalanced_bracket_is_still_listed() -> None:
    """Any user can create `brk[31m`; imapclient's parser gives up on it ("No closing ']'")."""
    from imapclient.exceptions import ProtocolError
    from imapclient.response_parser import parse_response

    from cutover.probes.mail.imap_parsing import parse_list_lines

    line = b'(\\HasNoChildren) "." brk[31m'
    with pytest.raises(ProtocolError, match="No closing"):
        parse_response([line])
    assert parse_list_lines([line, b'(\\HasChildren) "." INBOX', b'() "." "&AOk-t&AOk-"']) == [
        (frozenset({"\\hasnochildren"}), "brk[31m"),
        (frozenset({"\\haschildren"}), "INBOX"),
        (frozenset(), "été"),
    ]
    with pytest.raises(ValueError, match=r"the LIST line '\* garbage \\x1b\[2K'"):
        parse_list_lines([b"* garbage \x1b[2K"])
