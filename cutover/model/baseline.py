"""The baseline: what preflight observed, kept for the later phases.

One JSON file (default `reports/baseline.json`) of sections, each a mapping
of keys to plain JSON values. Records are kept in memory and written by
`flush()`: once at the end of a run (the pytest plugin does it), or earlier
when a section with unwritten records is read. A flush takes a file lock,
re-reads the file, merges and replaces it atomically, so pytest-xdist
workers can record concurrently; the file is read again only when it has
changed since this process last saw it.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as directory:
...     b = Baseline(Path(directory) / "baseline.json")
...     b.record("identity", "imaps-993/old", "old.example.test")
...     b.get("identity", "imaps-993/old")
'old.example.test'
'old.example.test'
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

__all__ = ["Baseline", "BaselineError", "TempBeside"]

FORMAT = 1

# (inode, mtime, size) of the file as last read or written: unchanged means the cache holds.
_Signature = tuple[int, int, int] | None


class BaselineError(Exception):
    """The baseline file exists but cannot be used."""


class Baseline:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = FileLock(str(path) + ".lock", timeout=30)
        self._cache: dict[str, dict[str, Any]] | None = None
        self._cached_signature: _Signature = None
        # section -> key -> (value, keep_existing), not yet in the file.
        self._pending: dict[str, dict[str, tuple[Any, bool]]] = {}

    def load(self) -> dict[str, dict[str, Any]]:
        """The sections as written in the file now (unwritten records not included)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise BaselineError(f"{self.path}: cannot read baseline: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BaselineError(f"{self.path}:{exc.lineno}: baseline is not valid JSON") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BaselineError(f"{self.path}: not a cutover baseline (format {FORMAT})")
        sections = data.get("sections", {})
        if not isinstance(sections, dict):
            raise BaselineError(f"{self.path}: 'sections' is not a mapping")
        return sections

    # Reads share the cached values: callers must not change what they get.

    def section(self, name: str) -> dict[str, Any]:
        return dict(self._read(name).get(name, {}))

    def get(self, section: str, key: str, default: Any = None) -> Any:
        """The value of `key`: a pending record is what the file will hold, unless it
        yields to a value written first (`keep_existing`); only then is it flushed.
        Other keys' pending records do not change this one: no flush for them."""
        pending = self._pending.get(section, {})
        if key in pending:
            value, keep_existing = pending[key]
            if not keep_existing:
                return value
            self.flush()
        return self._sections().get(section, {}).get(key, default)

    def record(self, section: str, key: str, value: Any, *, keep_existing: bool = False) -> Any:
        """Store `value`; with `keep_existing`, the first value ever recorded wins.

        Returns the value now stored (with `keep_existing`, as far as this
        process knows: `flush` keeps a value another process wrote first).
        """
        return self.record_many(section, {key: value}, keep_existing=keep_existing)[key]

    def record_many(
        self, section: str, values: dict[str, Any], *, keep_existing: bool = False
    ) -> dict[str, Any]:
        """`record` for many keys at once.

        Returns the values now stored for those keys. Values are copied as
        JSON when recorded (a value that JSON cannot hold fails here).
        """
        values = json.loads(json.dumps(values))
        pending = self._pending.setdefault(section, {})
        stored: dict[str, Any] = {}
        written = self._sections().get(section, {}) if keep_existing else {}
        for key, value in values.items():
            if keep_existing and key in pending:
                stored[key] = pending[key][0]
            elif keep_existing and key in written:
                stored[key] = written[key]
            else:
                pending[key] = (value, keep_existing)
                stored[key] = value
        return stored

    def flush(self) -> None:
        """Write the pending records: one locked read-merge-replace of the file.

        A `keep_existing` record loses to a value that reached the file first
        (from another process).
        """
        if not any(self._pending.values()):
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                sections = self.load()
                for name, records in self._pending.items():
                    entries = sections.setdefault(name, {})
                    for key, (value, keep_existing) in records.items():
                        if not (keep_existing and key in entries):
                            entries[key] = value
                self._write(sections)
                self._cache, self._cached_signature = sections, self._signature()
        except Timeout:
            raise BaselineError(
                f"{self.path}: cannot write baseline: {self._lock.lock_file} is held by "
                "another process"
            ) from None
        except OSError as exc:
            raise BaselineError(f"{self.path}: cannot write baseline: {exc.strerror}") from None
        self._pending.clear()

    def _read(self, section: str) -> dict[str, dict[str, Any]]:
        if self._pending.get(section):
            self.flush()
        return self._sections()

    def _sections(self) -> dict[str, dict[str, Any]]:
        """The file's sections, read again only if the file changed since last seen."""
        signature = self._signature()
        if self._cache is None or signature != self._cached_signature:
            self._cache, self._cached_signature = self.load(), signature
        return self._cache

    def _signature(self) -> _Signature:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _write(self, sections: dict[str, dict[str, Any]]) -> None:
        payload = dumps(sections)
        temp = TempBeside(self.path, ".baseline-")
        try:
            temp.file.write(payload.encode("utf-8"))
            temp.commit()
        except BaseException:
            temp.discard()
            raise


def dumps(sections: dict[str, dict[str, Any]]) -> str:
    """The baseline file's text: one record per line, sections and keys sorted.

    Each record is written compactly by json's C encoder: an indented dump
    goes through the pure-Python encoder, whose millions of small pieces
    made writing a 100,000-message UID map cost about 70 MiB and a second.

    >>> print(dumps({"identity": {"imaps-993/old": "old.example.test"}, "empty": {}}))
    {"format": 1, "sections": {
     "empty": {},
     "identity": {
      "imaps-993/old": "old.example.test"
     }
    }}
    <BLANKLINE>
    """
    encode = json.JSONEncoder(sort_keys=True, ensure_ascii=True).encode
    lines = [f'{{"format": {FORMAT}, "sections": {{']
    names = sorted(sections)
    for index, name in enumerate(names):
        tail = "," if index + 1 < len(names) else ""
        entries = sections[name]
        if not entries:
            lines.append(f" {encode(name)}: {{}}{tail}")
            continue
        lines.append(f" {encode(name)}: {{")
        keys = sorted(entries)
        lines += [
            f"  {encode(key)}: {encode(entries[key])}{',' if at + 1 < len(keys) else ''}"
            for at, key in enumerate(keys)
        ]
        lines.append(f" }}{tail}")
    lines.append("}}")
    return "\n".join(lines) + "\n"


class TempBeside:
    """A new file in `path`'s own directory that replaces `path` when committed.

    Created, renamed and removed through one handle on that directory, never
    through a path: a relative and an absolute path to the same directory can
    cross mounts (a working directory from another mount namespace), and a
    rename across mounts fails (EXDEV). Mode 0600 until committed, like mkstemp.
    """

    def __init__(self, path: Path, prefix: str) -> None:
        self.target = path.name
        self._dir = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            while True:
                self.name = f"{prefix}{secrets.token_hex(6)}"
                try:
                    fd = os.open(
                        self.name,
                        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                        0o600,
                        dir_fd=self._dir,
                    )
                    break
                except FileExistsError:
                    continue
        except BaseException:
            os.close(self._dir)
            raise
        self.file = os.fdopen(fd, "wb")

    def commit(self) -> None:
        self.file.close()
        os.replace(self.name, self.target, src_dir_fd=self._dir, dst_dir_fd=self._dir)
        os.close(self._dir)

    def discard(self) -> None:
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.name, dir_fd=self._dir)
        os.close(self._dir)
