"""The old server's mailboxes as preflight saw them, kept for the later phases.

Per account, the baseline's `imap` section holds the listing and, per
mailbox, UIDVALIDITY, UIDNEXT, EXISTS, HIGHESTMODSEQ, the message count and
a digest. The UID map itself (one line per message: UID, a 64-bit digest of
the Message-ID, RFC822.SIZE, flags) is a text file beside the baseline
(`baseline.imap/<account>.uidmap`, about 40 bytes a message), read back as
a stream, and checked against the digest.

>>> baseline = Baseline(Path("reports/baseline.json"))
>>> BaselineSource(baseline, "alice@example.test").listing().subscribed  # doctest: +SKIP
frozenset({'INBOX', 'Archive/2024', 'Entwürfe'})
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cutover.compare.imap import Batch, Listing, MailboxState, MessageKey, fingerprint
from cutover.model.baseline import Baseline, BaselineError, TempBeside

__all__ = ["SECTION", "BaselineSource", "UidMapWriter", "uid_map_path"]

SECTION = "imap"
MAGIC = b"cutover-imap-uidmap 1\n"


def uid_map_path(baseline: Baseline, account: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9@._+-]", "_", account)
    return baseline.path.with_name(baseline.path.stem + ".imap") / f"{safe}.uidmap"


def _line(uid: int, key: MessageKey) -> bytes:
    return f"{uid}\t{fingerprint(key.ident)}\t{key.size}\t{' '.join(key.flags)}\n".encode()


class UidMapWriter:
    """Records one source's observations (a `Recorder`), committed only when complete."""

    def __init__(self, baseline: Baseline, account: str, source: str) -> None:
        self.baseline = baseline
        self.account = account
        self.source = source
        self.path = uid_map_path(baseline, account)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._temp = TempBeside(self.path, ".uidmap-")
        self._out = self._temp.file
        self._out.write(MAGIC)
        self._offset = len(MAGIC)
        self._listing: Listing | None = None
        self._states: dict[str, dict[str, Any]] = {}
        self._current: dict[str, Any] | None = None
        self._digest = hashlib.blake2b(digest_size=16)

    def listing(self, listing: Listing) -> None:
        self._listing = listing

    def _close_mailbox(self) -> None:
        if self._current is not None:
            self._current["digest"] = self._digest.hexdigest()
            self._current = None

    def mailbox(self, state: MailboxState) -> None:
        self._close_mailbox()
        header = b"#\t" + json.dumps(state.name).encode() + b"\n"
        self._out.write(header)
        self._offset += len(header)
        self._current = self._states[state.name] = {
            "uidvalidity": state.uidvalidity,
            "uidnext": state.uidnext,
            "exists": state.exists,
            "highestmodseq": state.highestmodseq,
            "offset": self._offset,
            "messages": 0,
        }
        self._digest = hashlib.blake2b(digest_size=16)

    def messages(self, batch: Batch) -> None:
        assert self._current is not None, "messages() before mailbox()"
        lines = b"".join(_line(uid, key) for uid, key in batch)
        self._out.write(lines)
        self._offset += len(lines)
        self._digest.update(lines)
        self._current["messages"] += len(batch)

    def highestmodseqs(self, values: dict[str, int | None]) -> None:
        for name, value in values.items():
            if name in self._states:
                self._states[name]["highestmodseq"] = value

    def commit(self, greeting: str = "") -> None:
        """Move the UID map into place and record the summary in the baseline."""
        self._close_mailbox()
        if self._listing is None:
            raise BaselineError(f"IMAP baseline for {self.account}: nothing was recorded")
        self._temp.commit()
        self.baseline.record(
            SECTION,
            self.account,
            {
                "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
                "source": self.source,
                "greeting": greeting,
                "mailboxes": sorted(self._listing.mailboxes),
                "selectable": sorted(self._listing.selectable),
                "subscribed": sorted(self._listing.subscribed),
                "states": self._states,
                "uid_map": str(self.path.relative_to(self.baseline.path.parent)),
            },
        )

    def discard(self) -> None:
        self._temp.discard()


class BaselineSource:
    """The baseline as a `MailSource`: the old server, as preflight saw it."""

    compact = True

    def __init__(self, baseline: Baseline, account: str) -> None:
        entry = baseline.get(SECTION, account)
        if entry is None:
            raise BaselineError(
                f"no IMAP baseline for {account} in {baseline.path}: run the preflight phase "
                "first (while the old server still answers on the old IP); it records the old "
                "server's mailboxes for the later phases"
            )
        try:
            self.recorded = str(entry["recorded"])
            self._listing = Listing(
                mailboxes=frozenset(entry["mailboxes"]),
                selectable=frozenset(entry["selectable"]),
                subscribed=frozenset(entry["subscribed"]),
            )
            self._states: dict[str, dict[str, Any]] = dict(entry["states"])
            self.path = uid_map_path(baseline, account)
        except (KeyError, TypeError) as exc:
            raise BaselineError(
                f"{baseline.path}: IMAP baseline for {account} is incomplete ({exc}); "
                "run preflight again"
            ) from None
        self.account = account
        self.label = f"the preflight baseline of the old server ({self.recorded})"
        self._name: str | None = None

    def listing(self) -> Listing:
        return self._listing

    def _state(self, name: str) -> dict[str, Any]:
        try:
            return self._states[name]
        except KeyError:
            raise BaselineError(
                f"IMAP baseline for {self.account} has no mailbox {name!r}"
            ) from None

    def examine(self, name: str) -> MailboxState:
        state = self._state(name)
        self._name = name
        return MailboxState(
            name, state["uidvalidity"], state["uidnext"], state["exists"], state["highestmodseq"]
        )

    def highestmodseq(self, name: str) -> int | None:
        value = self._state(name)["highestmodseq"]
        return int(value) if value is not None else None

    def batches(self, batch_size: int) -> Iterator[Batch]:
        if self._name is None:
            raise BaselineError("batches() before examine()")
        name, state = self._name, self._state(self._name)
        digest = hashlib.blake2b(digest_size=16)
        count = 0
        batch: Batch = []
        flag_cache: dict[str, tuple[str, ...]] = {}
        try:
            with self.path.open("rb") as uid_map:
                uid_map.seek(int(state["offset"]))
                for line in uid_map:
                    if line.startswith(b"#"):
                        break
                    digest.update(line)
                    uid, ident, size, flag_text = line.decode().rstrip("\n").split("\t")
                    flags = flag_cache.get(flag_text)
                    if flags is None:
                        flags = flag_cache[flag_text] = tuple(flag_text.split())
                    batch.append((int(uid), MessageKey(ident, int(size), flags)))
                    count += 1
                    if len(batch) >= batch_size:
                        yield batch
                        batch = []
        except OSError as exc:
            raise BaselineError(
                f"cannot read the IMAP UID map {self.path}: {exc.strerror}; run preflight again"
            ) from None
        except ValueError:
            raise BaselineError(
                f"{self.path}: malformed line in mailbox {name!r}; run preflight again"
            ) from None
        if count != state["messages"] or digest.hexdigest() != state["digest"]:
            raise BaselineError(
                f"{self.path}: mailbox {name!r} does not match the digest in the baseline "
                f"({count} of {state['messages']} messages): the UID map was changed or "
                "truncated; run preflight again"
            )
        if batch:
            yield batch
