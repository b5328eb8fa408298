"""`.lab/lab.json` (what is running and where) and `.lab/secrets/` (0600 files)."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from lab.topology import STATE

LAB_JSON = STATE / "lab.json"
SECRETS = STATE / "secrets"


def load() -> dict[str, Any]:
    """The lab's state, or an empty dict when no lab is up."""
    try:
        data: dict[str, Any] = json.loads(LAB_JSON.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data


def save(data: dict[str, Any]) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    tmp = LAB_JSON.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(LAB_JSON)


def secret_path(name: str) -> Path:
    return SECRETS / name


def new_secret(name: str) -> str:
    """Create (or replace) a random password in `.lab/secrets/NAME`, mode 0600."""
    SECRETS.mkdir(parents=True, exist_ok=True)
    SECRETS.chmod(0o700)
    value = secrets.token_urlsafe(18)
    path = secret_path(name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(value + "\n")
    return value


def read_secret(name: str) -> str:
    return secret_path(name).read_text(encoding="utf-8").strip()
