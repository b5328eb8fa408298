"""Secrets by reference: an environment variable or a file, never inline.

A `Secret` never shows its value in `repr`, `str`, f-strings or tracebacks;
code that must send it calls `reveal()` at the last moment.

>>> s = Secret("hunter2")
>>> f"{s}"
'***'
>>> s.reveal()
'hunter2'
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["Secret", "SecretError", "resolve_secret"]


class SecretError(Exception):
    """A secret reference that cannot be resolved (message never holds the value)."""


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[type, tuple[str]]:
        # pytest-xdist pickles nothing of ours, but be explicit: a pickled
        # Secret keeps its value (it is needed on the other side).
        return (Secret, (self._value,))


def resolve_secret(
    *,
    env: str | None = None,
    file: Path | None = None,
    environ: dict[str, str] | None = None,
) -> Secret:
    """Read a secret from an environment variable or a file (first line, stripped)."""
    if env is not None:
        environ = dict(os.environ) if environ is None else environ
        if env not in environ:
            raise SecretError(f"environment variable {env} is not set")
        value = environ[env]
        if not value:
            raise SecretError(f"environment variable {env} is empty")
        return Secret(value)
    if file is not None:
        try:
            info = file.stat()
        except FileNotFoundError:
            raise SecretError(f"secret file not found: {file}") from None
        except OSError as exc:
            raise SecretError(f"cannot read secret file {file}: {exc.strerror}") from None
        if not stat.S_ISREG(info.st_mode):
            raise SecretError(f"secret file is not a regular file: {file}")
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise SecretError(f"cannot read secret file {file}: {reason}") from None
        value = text.splitlines()[0].strip() if text.strip() else ""
        if not value:
            raise SecretError(f"secret file is empty: {file}")
        return Secret(value)
    raise SecretError("no secret reference given")
