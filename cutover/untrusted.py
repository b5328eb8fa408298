"""Text that came from a server, made safe once before anyone shows it.

Mailbox names, Message-IDs, SPF records, MySQL account and table names,
greetings and error texts are written by people the operator does not
control. Before such a string reaches a failure message, a test id, a JUnit
property, the HTML report, the JSON report or the terminal, it goes through
`shown()`: control characters (C0, DEL, C1, escape sequences, bidi
overrides, line and paragraph separators) become visible escapes such as
`\\x1b`, and a long string is cut with a marker saying how much was left
out. Nothing is ever interpreted.

>>> shown("INBOX")
'INBOX'
>>> shown("\\x1b]0;pwned\\x07")
'\\\\x1b]0;pwned\\\\x07'
>>> shown("a" * 10, limit=4)
'aaaa...(+6 chars)'
>>> property_name("group_<img src=x>_members")
'group__img_src_x__members'
"""

from __future__ import annotations

import re

__all__ = ["MAX_SHOWN", "MAX_SHOWN_LINE", "property_name", "shown", "shown_lines"]

# Long enough for a mailbox path, an SPF record or a greeting; short enough
# that one hostile value cannot flood a terminal or a report.
MAX_SHOWN = 200

# A line of a failure message or a recorded fact: it may quote a few server
# strings, each already cut at MAX_SHOWN.
MAX_SHOWN_LINE = 20 * MAX_SHOWN

_PROPERTY_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def shown(text: object, limit: int = MAX_SHOWN) -> str:
    """`text` as it may be shown: control characters escaped, at most `limit` characters kept.

    Bytes are decoded as UTF-8, invalid sequences escaped. Only a space is
    kept of the whitespace characters: a tab or a newline inside a server
    string is shown as `\\t` or `\\n`, so it cannot start a line of its own.

    >>> shown(b"caf\\xc3\\xa9 \\xff")
    'café \\\\xff'
    >>> shown("line\\nFAKE PASSED")
    'line\\\\nFAKE PASSED'
    >>> shown("\\u202egnp.exe")
    '\\\\u202egnp.exe'
    """
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", "backslashreplace")
    elif not isinstance(text, str):
        text = str(text)
    if not text.isprintable():
        # isprintable() is False for Cc (C0, DEL, C1), Cf (bidi controls),
        # Cs (lone surrogates), Co, Cn, Zl, Zp and every space but U+0020.
        text = "".join(c if c.isprintable() else _escape(c) for c in text)
    if len(text) > limit:
        return f"{text[:limit]}...(+{len(text) - limit} chars)"
    return text


def shown_lines(text: object, limit: int = MAX_SHOWN_LINE) -> str:
    """A message of several lines made safe line by line: its own newlines are kept.

    The last line of defence for text that was put together before anyone
    could tell which part came from a server (a failure message, an
    exception's text): every control character but the newline is escaped.

    >>> shown_lines("grants differ:\\n  \\x1b[2K\\x1b[1APASSED")
    'grants differ:\\n  \\\\x1b[2K\\\\x1b[1APASSED'
    """
    return "\n".join(shown(line, limit) for line in str(text).split("\n"))


def property_name(text: str) -> str:
    """A JUnit property *name* built from server text: only `[A-Za-z0-9_.-]`.

    pytest escapes property values for XML but not names, so a name with `<`
    or a control character would make the whole report unparseable.
    """
    return _PROPERTY_NAME_UNSAFE.sub("_", text)[:MAX_SHOWN]
