"""The old server's POP3 maildrops as preflight saw them, kept for the later phases.

Per account, the baseline's `pop3` section holds when and where the
maildrop was read, the message count and a digest. The messages themselves
(UIDL, size, Message-ID fingerprint: one JSON array a line, about 60 bytes a
message) are a file beside the IMAP UID maps
(`baseline.imap/<account>.maildrop`), so a 100,000-message maildrop never
sits in the baseline JSON that every record rewrites. Read back, the file is
checked against the digest. A baseline written before this file existed
(messages inline in the section) is still read.

>>> entry = write_maildrop(baseline, "alice@example.test", drop)     # doctest: +SKIP
>>> read_baseline_maildrop(baseline, "alice@example.test", entry).uidls  # doctest: +SKIP
['00000001660c1d2e', '00000002660c1d2e']
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cutover.compare.imap_baseline import uid_map_path
from cutover.compare.pop3 import Maildrop, PopMessage
from cutover.model.baseline import Baseline, BaselineError, TempBeside

__all__ = ["SECTION", "maildrop_path", "read_baseline_maildrop", "write_maildrop"]

SECTION = "pop3"
MAGIC = b"cutover-pop3-maildrop 1\n"


def maildrop_path(baseline: Baseline, account: str) -> Path:
    """Where the account's maildrop is kept: named from the account, never from the file."""
    return uid_map_path(baseline, account).with_suffix(".maildrop")


def _line(message: PopMessage) -> bytes:
    # JSON per line: a UIDL or note from the server may hold any character.
    return json.dumps([message.uidl, message.size, message.ident]).encode() + b"\n"


def write_maildrop(baseline: Baseline, account: str, drop: Maildrop) -> dict[str, Any]:
    """Write the maildrop's file (replaced whole, only once complete); its baseline entry."""
    path = maildrop_path(baseline, account)
    digest = hashlib.blake2b(digest_size=16)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = TempBeside(path, ".maildrop-")
        try:
            temp.file.write(MAGIC)
            for message in drop.messages:
                line = _line(message)
                temp.file.write(line)
                digest.update(line)
            temp.commit()
        except BaseException:
            temp.discard()
            raise
    except OSError as exc:
        raise BaselineError(
            f"cannot write the POP3 maildrop of {account} to {path}: {exc.strerror or exc}"
        ) from None
    return {
        "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": drop.where,
        "note": drop.note,
        "count": len(drop.messages),
        "digest": digest.hexdigest(),
        "maildrop": str(path.relative_to(baseline.path.parent)),
    }


def _stale(baseline: Baseline, account: str, why: str) -> BaselineError:
    return BaselineError(f"{baseline.path}: POP3 baseline for {account} {why}; run preflight again")


def read_baseline_maildrop(baseline: Baseline, account: str, entry: Any) -> Maildrop:
    """The maildrop the entry describes, checked against its count and digest."""
    try:
        where = f"the preflight baseline of the old server ({entry['recorded']}, {entry['source']})"
        note = str(entry.get("note", ""))
        if "messages" in entry:  # written before the maildrop file existed
            rows = entry["messages"]
            count, wanted = len(rows), None
        else:
            count, wanted = int(entry["count"]), str(entry["digest"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _stale(baseline, account, f"is incomplete ({exc})") from None
    if wanted is not None:
        rows = []
        path = maildrop_path(baseline, account)
        digest = hashlib.blake2b(digest_size=16)
        try:
            with path.open("rb") as stream:
                if stream.readline() != MAGIC:
                    raise _stale(baseline, account, f"has no maildrop file {path}")
                for line in stream:
                    digest.update(line)
                    rows.append(json.loads(line))
        except OSError as exc:
            raise _stale(
                baseline, account, f"cannot read its maildrop {path} ({exc.strerror or exc})"
            ) from None
        except ValueError:
            raise _stale(baseline, account, f"has a malformed line in {path}") from None
        if len(rows) != count or digest.hexdigest() != wanted:
            raise _stale(
                baseline,
                account,
                f"does not match its maildrop {path} ({len(rows)} of {count} messages): "
                "the file was changed or truncated",
            )
    try:
        messages = tuple(
            PopMessage(number, str(uidl), int(size), None if ident is None else str(ident))
            for number, (uidl, size, ident) in enumerate(rows, start=1)
        )
    except (TypeError, ValueError) as exc:
        raise _stale(baseline, account, f"is incomplete ({exc})") from None
    return Maildrop(where, messages, note)
