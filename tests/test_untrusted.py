"""The one sanitiser for server text: nothing a server sends is interpreted when shown."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from cutover.untrusted import MAX_SHOWN, property_name, shown

HOSTILE = [
    "\x1b]0;window title\x07",  # OSC: set the terminal's title
    "\x1b[2K\x1b[1A",  # erase the line, cursor up: hides a FAILED line
    "\x9b31m",  # C1 CSI
    "a\x00b\x7fc",
    "\u202ecod.exe",  # bidi override
    "x\u2028y\u2029z",  # line and paragraph separators
    "\ud800",  # a lone surrogate (surrogateescape'd bytes)
]


@pytest.mark.parametrize("text", HOSTILE)
def test_no_control_character_survives(text: str) -> None:
    out = shown(text)
    assert out.isprintable(), ascii(out)
    assert "\\" in out


def test_plain_text_is_unchanged() -> None:
    for text in ("INBOX", "Sent Items", "café", "v=spf1 ip4:198.51.100.20 -all", "<a@b>"):
        assert shown(text) == text


def test_long_text_is_cut_with_a_marker() -> None:
    out = shown("x" * 5000)
    assert out == "x" * MAX_SHOWN + f"...(+{5000 - MAX_SHOWN} chars)"


def test_bytes_and_other_objects() -> None:
    assert shown(b"\xff\x1bok") == "\\xff\\x1bok"
    assert shown(42) == "42"


def test_property_names_keep_junit_parseable() -> None:
    name = property_name('group_<img src=x onerror="a">\x1b_members')
    element = ET.fromstring(f'<property name="{name}" value="1"/>')
    assert element.get("name") == name
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
