"""The baseline: what preflight observed, kept for the later phases.

One JSON file (default `reports/baseline.json`) of sections, each a mapping
of keys to plain JSON values. Writes take a lock, re-read the file, merge and
replace it atomically, so pytest-xdist workers can record concurrently.

>>> b = Baseline(Path("/tmp/doctest-baseline.json"))
>>> b.record("identity", "imaps-993/old", "old.example.test")
>>> b.get("identity", "imaps-993/old")
'old.example.test'
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from filelock import FileLock

__all__ = ["Baseline", "BaselineError"]

FORMAT = 1


class BaselineError(Exception):
    """The baseline file exists but cannot be used."""


class Baseline:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = FileLock(str(path) + ".lock", timeout=30)

    def load(self) -> dict[str, dict[str, Any]]:
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

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.load().get(name, {}))

    def get(self, section: str, key: str, default: Any = None) -> Any:
        return self.load().get(section, {}).get(key, default)

    def record(self, section: str, key: str, value: Any, *, keep_existing: bool = False) -> Any:
        """Store `value`; with `keep_existing`, the first value ever recorded wins.

        Returns the value now stored.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            sections = self.load()
            entries = sections.setdefault(section, {})
            if keep_existing and key in entries:
                return entries[key]
            entries[key] = value
            self._write(sections)
            return value

    def record_many(
        self, section: str, values: dict[str, Any], *, keep_existing: bool = False
    ) -> dict[str, Any]:
        """`record` for many keys under one lock and one write (1,000 zones: one file rewrite).

        Returns the values now stored for those keys.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            sections = self.load()
            entries = sections.setdefault(section, {})
            for key, value in values.items():
                if not (keep_existing and key in entries):
                    entries[key] = value
            self._write(sections)
            return {key: entries[key] for key in values}

    def _write(self, sections: dict[str, dict[str, Any]]) -> None:
        payload = json.dumps({"format": FORMAT, "sections": sections}, indent=1, sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=".baseline-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload + "\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
