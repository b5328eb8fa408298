"""The lab's fault registry: the `Fault` base class, `FAULTS`, `@register`, and shared helpers.

A fault is one small class: `apply` breaks the property and returns what
`undo` needs to restore it (kept in lab.json, so `fault --undo` works from a
later process). The modules that define faults (lab/faults_core.py,
lab/faults_mailclients.py, lab/faults_outbound.py) import this one; lab/faults.py
imports them all (registering their faults) and holds the `fault` verb.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, ClassVar

from lab import daemons, pki, profiles, story
from lab.run import LabError, on
from lab.topology import HOSTS, NAMESERVERS, NEW, STATE, Host
from lab.zones import sql_string

BACKUPS = STATE / "faults"
Saved = dict[str, Any]

# A plausible wrong backend per port: another of the new server's services.
WRONG_PORT = {110: 143, 143: 110, 995: 993, 993: 995, 25: 80, 465: 993, 587: 80, 80: 25, 3306: 25}
MAIL_USER = "alice@example.test"


class Fault:
    name: ClassVar[str]
    arg: ClassVar[str | None] = None  # e.g. "PORT": the fault is written name:PORT
    default_arg: ClassVar[str | None] = None
    needs: ClassVar[str | None] = None  # story step that must have happened: synced, cutover, dns
    summary: ClassVar[str]
    # The lab profiles (lab/profiles.py) whose servers this fault knows how to break.
    for_profiles: ClassVar[tuple[str, ...]] = (profiles.DEFAULT,)

    def check_arg(self, arg: str | None) -> str | None:
        if self.arg and arg is None:
            arg = self.default_arg
        if self.arg and arg is None:
            raise LabError(f"fault {self.name} needs :{self.arg}")
        if not self.arg and arg is not None:
            raise LabError(f"fault {self.name} takes no argument")
        return arg

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        raise NotImplementedError

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        raise NotImplementedError


FAULTS: dict[str, Fault] = {}


def register(cls: type[Fault]) -> type[Fault]:
    FAULTS[cls.name] = cls()
    return cls


# --- helpers shared by several faults ------------------------------------------


def forwarded_port(arg: str | None) -> int:
    if arg is None or not arg.isdigit() or int(arg) not in WRONG_PORT:
        raise LabError(f"not a forwarded port: {arg} (one of {sorted(WRONG_PORT)})")
    return int(arg)


def kill_helper(data: dict[str, Any], name: str) -> None:
    pid = data["cutover"].pop(name, None)
    if pid is not None:
        daemons.stop(pid)


def restart_daemon(data: dict[str, Any], host: Host, name: str) -> None:
    pids = data["hosts"][host.key]["pids"]
    if name in pids:
        daemons.stop(pids[name])
    pids[name] = daemons.start(host, name)
    daemons.wait_ready(host, (name,), pids)


def snapshot_user_mail(user: str) -> Saved:
    """A tarball of the user's mail on new (files and Dovecot indexes)."""
    local, domain = user.split("@")
    BACKUPS.mkdir(exist_ok=True)
    archive = BACKUPS / f"mail-{local}.tar"
    on(NEW, ["tar", "-C", f"/srv/vmail/{domain}", "-cf", str(archive), local], timeout=120)
    return {"archive": str(archive), "user": user}


def restore_user_mail(saved: Saved) -> None:
    local, domain = saved["user"].split("@")
    on(NEW, ["rm", "-rf", f"/srv/vmail/{domain}/{local}"], timeout=60)
    on(NEW, ["tar", "-C", f"/srv/vmail/{domain}", "-xpf", saved["archive"]], timeout=120)
    os.unlink(saved["archive"])


class MailFault(Fault):
    """Changes alice's mail on new; undone by restoring a snapshot of it."""

    needs = "synced"

    def break_mail(self) -> None:
        raise NotImplementedError

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        saved = snapshot_user_mail(MAIL_USER)
        try:
            self.break_mail()
        except LabError:
            restore_user_mail(saved)
            raise
        return saved

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        restore_user_mail(saved)


def read_records(ns: Host, column: str, where: str) -> dict[str, str]:
    rows = story.dns_sql(ns, f"SELECT id, {column} FROM records WHERE {where};")
    return dict(line.split("\t", 1) for line in rows.splitlines())


def restore_records(ns: Host, column: str, rows: dict[str, str]) -> None:
    sql = "".join(
        f"UPDATE records SET {column} = {sql_string(value)} WHERE id = {int(row_id)};\n"
        for row_id, value in rows.items()
    )
    story.dns_sql(ns, sql)


class RecordsFault(Fault):
    """Changes rows of the zone databases; undone by writing the saved values back."""

    column: ClassVar[str]

    def targets(self, arg: str | None) -> tuple[Host, ...]:
        return NAMESERVERS

    def where(self) -> str:
        raise NotImplementedError

    def change(self, ns: Host) -> None:
        raise NotImplementedError

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        saved = {ns.key: read_records(ns, self.column, self.where()) for ns in self.targets(arg)}
        for ns in self.targets(arg):
            self.change(ns)
        return saved

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        for key, rows in saved.items():
            restore_records(HOSTS[key], self.column, rows)


def swap_certificate(**issue_options: Any) -> Saved:
    BACKUPS.mkdir(exist_ok=True)
    tls = NEW.root / "tls"
    for name in ("host.pem", "host.key"):
        shutil.copy2(tls / name, BACKUPS / f"new-{name}")
    pki.issue(NEW, tls / "host.pem", tls / "host.key", **issue_options)
    reload_tls()
    return {}


def restore_certificate() -> None:
    for name in ("host.pem", "host.key"):
        shutil.move(BACKUPS / f"new-{name}", NEW.root / "tls" / name)
    reload_tls()


def reload_tls() -> None:
    daemons.reload(NEW, "dovecot", 0)
    daemons.reload(NEW, "postfix", 0)


def dovecot_override(name: str, text: str | None) -> None:
    """Write (or remove, text=None) a file in new's /etc/dovecot/local.d and reload."""
    path = NEW.root / "etc/dovecot/local.d" / f"{name}.conf"
    if text is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(text)
    daemons.reload(NEW, "dovecot", 0)


# --- the faults -------------------------------------------------------------------
