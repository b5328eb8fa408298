"""The legacy profile's mail against the real lab: old's Dovecot as 1.x, rsync, its fault.

Old advertises the Dovecot 1.x capability list and greeting it is configured
with (before and after login); `sync --method rsync` gives new the same
UIDVALIDITY, UIDNEXT and UID of every message as old (doveadm on both
hosts); `rsync-without-uidlist` renumbers alice's mailboxes on new and its
undo restores them.
"""

from __future__ import annotations

import time

from lab.legacy_mail import ABSENT, GREETING, IMAP_CAPABILITY
from tests.conftest import Lab, lab_cli

ACCOUNTS = ("alice@example.test", "bob@example.test", "carol@example.test")
FAULTED = "alice@example.test"


def _session(lab: Lab, host: str, port: int, lines: str) -> str:
    """What the Dovecot of `host` answers on its own loopback to `lines` (TLS on 993/995)."""
    if port in (993, 995):
        command = (
            f"printf '{lines}' | timeout 10 openssl s_client -quiet -crlf "
            f"-connect 127.0.0.1:{port} 2>/dev/null"
        )
    else:
        command = (
            f"exec 3<>/dev/tcp/127.0.0.1/{port}; printf '{lines}' | sed 's/$/\\r/' >&3; "
            "timeout 10 cat <&3"
        )
    return lab.exec(host, "timeout", "15", "bash", "-c", command).stdout


def _greeting(lab: Lab, port: int, lines: str) -> str:
    """Old's first line on `port`, once its login process has reached the auth process.

    Dovecot greets "Waiting for authentication process to respond.." until then
    (the auth process is started on demand and exits when idle)."""
    for _ in range(20):
        first = (_session(lab, "old", port, lines).splitlines() or [""])[0]
        if "Waiting for authentication" not in first:
            return first
        time.sleep(0.5)
    return first


def _capabilities(line: str) -> set[str]:
    words = line.replace("[", " ").split("]")[0].split()
    return set(words[words.index("CAPABILITY") + 1 :]) if "CAPABILITY" in words else set()


def test_old_greets_and_advertises_as_dovecot_1x(legacy_up_lab: Lab) -> None:
    wanted = set(IMAP_CAPABILITY.split())
    for port in (143, 993):
        greeting = _greeting(legacy_up_lab, port, "a LOGOUT\\n")
        assert greeting.startswith("* OK [CAPABILITY ") and greeting.endswith(f"] {GREETING}"), (
            port,
            greeting,
        )
        advertised = _capabilities(greeting)
        extra = advertised - wanted
        assert wanted <= advertised, (port, greeting)
        assert all(word == "STARTTLS" or word.startswith("AUTH=") for word in extra), greeting
        assert ("STARTTLS" in advertised) == (port == 143), greeting
    for port in (110, 995):
        greeting = _greeting(legacy_up_lab, port, "QUIT\\n")
        assert greeting == f"+OK {GREETING}", (port, greeting)
    # After login: the imap process itself (PREAUTH), as a logged-in client sees it.
    for host, absent in (("old", set(ABSENT)), ("new", set())):
        answer = legacy_up_lab.exec(
            host,
            "sh",
            "-c",
            "printf 'a CAPABILITY\\nb LOGOUT\\n' | doveadm exec imap -u alice@example.test",
        ).stdout
        line = next(line for line in answer.splitlines() if line.startswith("* CAPABILITY"))
        post_login = _capabilities(line)
        if host == "old":
            assert post_login == set(IMAP_CAPABILITY.split()), line
            assert not absent & post_login, line
        else:  # new keeps today's Dovecot: more than old, CONDSTORE among them
            assert {"CONDSTORE", "ENABLE", "LIST-STATUS"} <= post_login, line
            assert set(IMAP_CAPABILITY.split()) - post_login <= {"LOGIN-REFERRALS"}, line


def _status(lab: Lab, host: str, user: str) -> list[str]:
    return sorted(
        lab.exec(
            host,
            "doveadm",
            "-f",
            "tab",
            "mailbox",
            "status",
            "-u",
            user,
            "uidvalidity uidnext messages guid",
            "*",
        ).stdout.splitlines()
    )


def _uids(lab: Lab, host: str, user: str) -> list[str]:
    """Each message's mailbox, UID and Maildir base name (its GUID there)."""
    return sorted(
        lab.exec(
            host, "doveadm", "-f", "tab", "fetch", "-u", user, "mailbox uid guid", "all"
        ).stdout.splitlines()
    )


def test_rsync_keeps_uidvalidity_and_uids(legacy_preflight_lab: Lab) -> None:
    for user in ACCOUNTS:
        old = _status(legacy_preflight_lab, "old", user)
        assert len(old) > 1, old
        assert _status(legacy_preflight_lab, "new", user) == old, user
        old_uids = _uids(legacy_preflight_lab, "old", user)
        assert len(old_uids) > 1, old_uids
        assert _uids(legacy_preflight_lab, "new", user) == old_uids, user
    not_vmail = legacy_preflight_lab.exec(
        "new", "find", "/srv/vmail", "-mindepth", "1", "!", "-user", "vmail"
    ).stdout
    assert not_vmail == "", not_vmail
    # Idempotent: a second copy changes nothing Dovecot shows.
    again = lab_cli("sync", "--method", "rsync").stdout
    assert "copied with rsync, dovecot-uidlist included" in again, again
    for user in ACCOUNTS:
        assert _status(legacy_preflight_lab, "new", user) == _status(
            legacy_preflight_lab, "old", user
        )


def test_rsync_without_uidlist_renumbers_and_undo_restores(legacy_preflight_lab: Lab) -> None:
    old = _status(legacy_preflight_lab, "old", FAULTED)
    with legacy_preflight_lab.fault("rsync-without-uidlist"):
        broken = _status(legacy_preflight_lab, "new", FAULTED)
        # Every mailbox has a new UIDVALIDITY (and GUID); the messages are all there.
        old_rows = {row.split("\t")[0]: row.split("\t") for row in old}
        new_rows = {row.split("\t")[0]: row.split("\t") for row in broken}
        assert set(new_rows) == set(old_rows), broken
        header = old_rows.pop("mailbox")
        new_rows.pop("mailbox")
        at = {name: header.index(name) for name in ("uidvalidity", "messages")}
        for name, row in old_rows.items():
            assert new_rows[name][at["uidvalidity"]] != row[at["uidvalidity"]], (name, broken)
            assert new_rows[name][at["messages"]] == row[at["messages"]], (name, broken)
        for user in ACCOUNTS[1:]:  # the other accounts are untouched
            assert _status(legacy_preflight_lab, "new", user) == _status(
                legacy_preflight_lab, "old", user
            )
    assert _status(legacy_preflight_lab, "new", FAULTED) == old
    assert _uids(legacy_preflight_lab, "new", FAULTED) == _uids(
        legacy_preflight_lab, "old", FAULTED
    )
