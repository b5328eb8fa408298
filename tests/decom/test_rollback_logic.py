"""The rollback delta as data: its JSON and its terminal lines (no servers)."""

from __future__ import annotations

import json

from cutover.compare.rollback import (
    MailboxDelta,
    NewMessage,
    PairDelta,
    TableDelta,
    document,
    summary_lines,
)


def delta() -> PairDelta:
    return PairDelta(
        "shop",
        mail=[
            MailboxDelta(
                "alice@example.test",
                "INBOX",
                7,
                [NewMessage(7, "<a@x>", 500), NewMessage(8, None, 600), NewMessage(9, "<c@x>", 1)],
            )
        ],
        mysql=[TableDelta("app", "orders", 10, 12, 2, ("id",), ("11",), ("12",))],
    )


def test_the_terminal_lines_name_uids_and_key_ranges() -> None:
    assert summary_lines([delta()]) == [
        "alice@example.test INBOX: 3 messages (UIDs 7..9)",
        "app.orders: 2 rows (id 11 .. 12)",
    ]
    assert summary_lines([PairDelta("shop")], several=True) == [
        "shop: nothing new since preflight: a rollback loses nothing"
    ]


def test_the_document_lists_each_message_and_the_counts() -> None:
    data = document(
        [delta()], migration="m", phase="decommission", generated_utc="t", baseline="b.json"
    )
    (pair,) = data["pairs"]
    assert (pair["messages"], pair["rows"]) == (3, 2)
    assert [m["uid"] for m in pair["mail"][0]["messages"]] == [7, 8, 9]
    assert pair["mail"][0]["messages"][1]["message_id"] is None
    assert pair["mysql"][0]["first_key"] == ["11"] and pair["mysql"][0]["last_key"] == ["12"]
    json.dumps(data)


def test_server_text_is_shown_escaped() -> None:
    hostile = "\x1b[31mINBOX\r\nX-Fake: yes"
    box = MailboxDelta("alice@example.test", hostile, 1, [NewMessage(1, "<\x1b]0;t\x07>", 9)])
    data = PairDelta("p", mail=[box]).to_json()
    text = json.dumps(data) + "\n".join(summary_lines([PairDelta("p", mail=[box])]))
    assert "\x1b" not in data["mail"][0]["mailbox"] + data["mail"][0]["messages"][0]["message_id"]
    assert "\x1b" not in text and "\r" not in text
