"""Faults of the decommission phase: the old host is still in use, or holds what was not moved.

Each applies to the lab after the DNS switch (the old host still forwarding)
and breaks exactly one of DECOM02-DECOM04; undo restores the old host exactly
(the stale client and the socket client stopped by PID, the message file and
the queue entry removed). Registered into `lab.fault_registry.FAULTS` when
lab/faults.py imports this module.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from email.utils import formatdate
from typing import Any

from lab import daemons, staleclient, state
from lab.fault_registry import MAIL_USER, Fault, Saved, forwarded_port, register
from lab.run import LabError, on, pid_alive, spawn, wait_until
from lab.topology import MYSQL_SOCKET, OLD, STALE_CLIENT_ADDRESS

# The Maildir of MAIL_USER on old (dovecot.conf: maildir:/srv/vmail/%d/%n/Maildir).
_LOCAL, _DOMAIN = MAIL_USER.split("@")
OLD_MAILDIR = f"/srv/vmail/{_DOMAIN}/{_LOCAL}/Maildir"
QUEUE_SENDER = "stranded-queue@old.example.test"


@register
class StaleClient(Fault):
    name = "stale-client"
    arg = "PORT"
    default_arg = "25"
    needs = "dns"
    summary = (
        f"a client ({STALE_CLIENT_ADDRESS}, as with a stale DNS cache) keeps connecting "
        "to the old IP's port, 2 a second"
    )

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        port = forwarded_port(arg)
        return {"port": port, "pid": staleclient.start(data, port, 2.0)}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        staleclient.stop(data, saved["port"])


@register
class MailStrandedOnOld(Fault):
    name = "mail-stranded-on-old"
    needs = "cutover"
    summary = (
        f"a message lands in {MAIL_USER}'s Maildir on old after the cutover "
        "(written tmp/ -> new/ as a restarted MTA would)"
    )

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        tag = secrets.token_hex(6)
        name = f"{int(time.time())}.M{tag}P1.{OLD.fqdn}"
        message = (
            f"Return-Path: <bob@example.org>\nMessage-ID: <stranded-{tag}@example.org>\n"
            f"Date: {formatdate(usegmt=True)}\nFrom: bob@example.org\nTo: {MAIL_USER}\n"
            "Subject: delivered to the old host after the cutover\n\nStranded.\n"
        )
        script = (
            f'set -e; cd {OLD_MAILDIR}; umask 077; cat > "tmp/$1"; '
            'chown vmail:vmail "tmp/$1"; mv "tmp/$1" "new/$1"'
        )
        on(OLD, ["sh", "-c", script, "sh", name], input=message, timeout=20)
        return {"path": f"{OLD_MAILDIR}/new/{name}"}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        on(OLD, ["rm", "-f", "--", saved["path"]], timeout=20)


def _queue_ids() -> list[str]:
    out = on(OLD, ["postqueue", "-j"], timeout=20, check=False).stdout
    ids = []
    for line in out.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("sender") == QUEUE_SENDER:
            ids.append(str(entry["queue_id"]))
    return ids


@register
class OldQueueNotEmpty(Fault):
    name = "old-queue-not-empty"
    needs = "cutover"
    summary = (
        "a message waits in old's Postfix queue (submitted with old's sendmail after "
        "the cutover stopped Postfix: nothing will ever send it)"
    )

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        message = f"From: {QUEUE_SENDER}\nTo: bob@example.org\nSubject: queued on old\n\nQueued.\n"
        on(OLD, ["sendmail", "-f", QUEUE_SENDER, "bob@example.org"], input=message, timeout=20)
        wait_until("old: the message in postqueue -j", lambda: bool(_queue_ids()), timeout=10)
        return {"queue_ids": _queue_ids()}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        for queue_id in _queue_ids():
            # postsuper removes the message, then may fail to open maillog_file
            # (owned by the stopped Postfix): what counts is the queue.
            result = on(OLD, ["postsuper", "-d", queue_id], timeout=20, check=False)
            if queue_id in _queue_ids():
                said = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
                raise LabError(f"old: postsuper -d {queue_id} left it queued: {said[0]}")


def _socket_client_connected(pid: int) -> bool:
    listing = on(OLD, ["ss", "-xpnH"], timeout=10, check=False).stdout
    return any("mariadb" in line and "pid=" in line for line in listing.splitlines()) and (
        pid_alive(pid)
    )


@register
class TunnelSocketInUse(Fault):
    name = "tunnel-socket-in-use"
    needs = "cutover"
    summary = (
        f"an application on old stays connected to MySQL through {MYSQL_SOCKET} "
        "(the socat -> ssh tunnel forward)"
    )

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        client = f"sleep 86400 | mariadb --no-defaults --socket={MYSQL_SOCKET} --user=app --batch"
        password = state.read_secret("mysql-app")
        pid = spawn(
            OLD,
            ["env", f"MYSQL_PWD={password}", "sh", "-c", client],
            OLD.logs / "tunnel-socket-client.log",
        )
        try:
            wait_until(
                "old: a mariadb client on the socket",
                lambda: _socket_client_connected(pid),
                timeout=15,
            )
        except LabError:
            _stop_group(pid)
            raise
        return {"pid": pid}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        _stop_group(saved["pid"])


def _stop_group(pid: int) -> None:
    """Stop the client's process group (sh, sleep, mariadb), led by the PID we started."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    daemons.stop(pid, timeout=5)
