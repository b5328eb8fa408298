"""Lab profiles: how the servers behave. `up --profile NAME` picks one; lab.json keeps it.

- `default`: today's Debian 12 stack on both sides.
- `legacy`: the old host behaves, as clients and an admin see it, like the
  CentOS 5-era server the playbook moved from (Dovecot 1.x, Postfix 2.3,
  Apache 2.2, MySQL 5.0 with old_passwords, MyDNS zone tables), built from
  Debian's daemons configured down. The new host stays today's.

Every verb after `up` follows the profile recorded in `.lab/lab.json`; code
that differs per profile asks `legacy()`.
"""

from __future__ import annotations

from lab import state
from lab.run import LabError

DEFAULT = "default"
LEGACY = "legacy"
PROFILES = {
    DEFAULT: "today's Debian 12 daemons on both servers, zones in PowerDNS's own schema",
    LEGACY: "old as a CentOS 5-era server: TLS 1.0 only (CBC/SHA-1, 1024-bit key), "
    "MySQL old_passwords, a Dovecot 1.x capability list, Apache 2.2 vhosts; zones in "
    "MyDNS's soa/rr tables",
}

_selected: str | None = None


def select(name: str) -> None:
    """The profile of the lab `up` is building (before lab.json exists)."""
    global _selected
    if name not in PROFILES:
        raise LabError(f"unknown profile {name!r}; one of: {', '.join(PROFILES)}")
    _selected = name


def active() -> str:
    """The running lab's profile (the one `up` is building, else lab.json's)."""
    if _selected is not None:
        return _selected
    return str(state.load().get("profile", DEFAULT))


def legacy() -> bool:
    return active() == LEGACY
