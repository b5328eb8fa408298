"""The legacy profile's MySQL fault: pre-4.1 password hashes copied to a secure_auth server.

(lab/legacy_mysql.py sets old up with `old_passwords=1`; lab/fault_registry.py
has the base class.)
"""

from __future__ import annotations

from typing import Any

from lab import legacy_mysql, profiles
from lab.fault_registry import Fault, Saved, register


@register
class MysqlOldPassword(Fault):
    name = "mysql-old-password"
    needs = "synced"
    for_profiles = (profiles.LEGACY,)
    summary = (
        "new keeps old's pre-4.1 password hashes (a plain grant-table copy) while its "
        "secure_auth is ON: app@localhost and report are refused there"
    )

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        return {"accounts": legacy_mysql.copy_old_hashes()}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        legacy_mysql.convert_on_new()
