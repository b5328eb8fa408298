"""Legacy-profile fault of the web side: old's Apache 2.2 vhosts copied to new unconverted."""

from __future__ import annotations

import os
import shlex
from typing import Any

from lab import daemons, profiles
from lab.fault_registry import BACKUPS, Fault, Saved, register
from lab.legacy_web import CONFIGTEST, SITES
from lab.run import on
from lab.topology import NEW, OLD


def graceful(data: dict[str, Any]) -> bool:
    """`apachectl graceful` on new: the config is tested first and, when it fails, the
    running server is not signalled (it keeps serving its previous config)."""
    if on(NEW, list(CONFIGTEST), timeout=30, check=False).returncode != 0:
        return False
    daemons.reload(NEW, "apache", data["hosts"]["new"]["pids"]["apache"])
    return True


@register
class Apache22CopiedUnconverted(Fault):
    """The vhost files are copied again from old, this time without the playbook's sed.

    New has no mod_access_compat, so the copied `Order`/`Allow from` lines do
    not parse. What the admin then sees is what Apache really does: the
    graceful reload after the copy is refused ("Action 'graceful' failed")
    and the running server keeps the converted vhosts it had loaded, so every
    site still answers as before; the next restart (a reboot, a package
    update) leaves Apache down. Only the config on disk is wrong, which is
    what HTTP02 reads.
    """

    name = "apache22-copied-unconverted"
    needs = "synced"
    for_profiles = (profiles.LEGACY,)
    summary = (
        "old's Apache 2.2 vhosts copied to new without conversion (no mod_access_compat "
        "there): new's config no longer parses, the refused reload keeps the old one running"
    )

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        BACKUPS.mkdir(exist_ok=True)
        archive = BACKUPS / "new-sites-enabled.tar"
        on(NEW, ["tar", "-C", SITES, "-cf", str(archive), "."], timeout=60)
        new = shlex.quote(f"root@{NEW.address}")
        target = shlex.quote(SITES)
        on(
            OLD,
            [
                "sh",
                "-ec",
                f"tar -C {target} -cf - . | ssh {new} "
                + shlex.quote(f"rm -rf {target}/* && tar -C {target} -xf -"),
            ],
            timeout=120,
        )
        return {"archive": str(archive), "reloaded": graceful(data)}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        on(NEW, ["sh", "-ec", f"rm -rf {shlex.quote(SITES)}/*"], timeout=30)
        on(NEW, ["tar", "-C", SITES, "-xpf", saved["archive"]], timeout=60)
        os.unlink(saved["archive"])
        graceful(data)
