"""Faults for mail client continuity: logins and POP3 UIDLs on the new server.

Registered into `lab.fault_registry.FAULTS` when lab/faults.py imports this module.
The passdb faults back up new's passwd-file and write the copy back on undo,
byte for byte; the backup lives in .lab/faults/, never in lab.json (it holds
password hashes).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab import daemons
from lab.fault_registry import BACKUPS, Fault, Saved, dovecot_override, register
from lab.run import LabError
from lab.topology import NEW

USERS = NEW.root / "etc/dovecot/users"  # new's passwd-file (passdb and userdb)
# A scheme Dovecot 2.3 does not implement (it has PBKDF2 with SHA-1 only), as
# hashes exported from another system often are.
FOREIGN_SCHEME = "{PBKDF2-SHA512}"
POP3_UIDL_FORMAT = "%v.%u"  # anything but the lab's (Dovecot's default) %08Xu%08Xv


def _change_passdb_entry(user: str, change: Callable[[str], str | None]) -> Saved:
    """Back up new's passwd-file, rewrite `user`'s line (None drops it), reload Dovecot."""
    original = USERS.read_bytes()
    lines = original.decode().splitlines(keepends=True)
    matches = [i for i, line in enumerate(lines) if line.split(":", 1)[0] == user]
    if not matches:
        raise LabError(f"{user} is not in new's passdb ({USERS})")
    BACKUPS.mkdir(exist_ok=True)
    backup = BACKUPS / "new-dovecot-users"
    backup.write_bytes(original)
    backup.chmod(0o600)
    replaced = change(lines[matches[0]])
    lines[matches[0]] = "" if replaced is None else replaced
    USERS.write_text("".join(lines))  # in place: owner root:dovecot and mode stay
    daemons.reload(NEW, "dovecot", 0)
    return {"backup": str(backup), "user": user}


def _restore_passdb(saved: Saved) -> None:
    backup = Path(saved["backup"])
    USERS.write_bytes(backup.read_bytes())
    backup.unlink()
    daemons.reload(NEW, "dovecot", 0)


class _PassdbFault(Fault):
    arg = "USER"

    def change(self, line: str) -> str | None:
        raise NotImplementedError

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        assert arg is not None  # check_arg supplies the default
        return _change_passdb_entry(arg, self.change)

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        _restore_passdb(saved)


@register
class AuthHashBroken(_PassdbFault):
    name = "auth-hash-broken"
    default_arg = "bob@example.test"
    summary = (
        f"one account's password hash on new (default bob) is in a scheme new's Dovecot "
        f"cannot verify ({FOREIGN_SCHEME}): its logins fail there"
    )

    def change(self, line: str) -> str | None:
        user, password, rest = line.split(":", 2)
        if not password.startswith("{"):
            raise LabError(f"{user}'s passdb entry on new has no {{SCHEME}} prefix")
        return f"{user}:{FOREIGN_SCHEME}{password.split('}', 1)[1]}:{rest}"


@register
class UserMissing(_PassdbFault):
    name = "user-missing"
    default_arg = "carol@example.test"
    summary = "one account (default carol) is absent from new's passdb: it cannot log in there"

    def change(self, line: str) -> str | None:
        return None


@register
class Pop3UidlChanged(Fault):
    name = "pop3-uidl-changed"
    summary = (
        f"new's Dovecot builds POP3 UIDLs with pop3_uidl_format = {POP3_UIDL_FORMAT} "
        "(old: the default %08Xu%08Xv): every UIDL differs"
    )

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        dovecot_override("fault-pop3-uidl", f"pop3_uidl_format = {POP3_UIDL_FORMAT}\n")
        return {}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        dovecot_override("fault-pop3-uidl", None)
