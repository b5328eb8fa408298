"""Mail on the legacy profile: old's Dovecot as 1.x clients saw it, and Maildirs copied by rsync.

Old's Dovecot (Debian's 2.3 underneath) advertises a Dovecot 1.0/1.1
capability list (no CONDSTORE, QRESYNC, ENABLE, SPECIAL-USE, LIST-STATUS)
before and after login, and greets with that era's `Dovecot ready.`. What
2.3 cannot be configured down to, and stays: the `[CAPABILITY ...]` code in
the IMAP greeting (1.x sent none by default) and POP3's CAPA, which 2.3's
pop3-login fixes (1.x lacked only AUTH-RESP-CODE). The capability list is
what clients see; 2.3 still answers the commands it does not advertise.

`rsync_maildirs` is `sync --method rsync`: the playbook's copy of /srv/vmail
from old to new with each mailbox's `dovecot-uidlist` (UIDVALIDITY, the UID
of every file, next UID, mailbox GUID), `dovecot-keywords` and
`subscriptions`, so new's Dovecot serves the same UIDs. Dovecot's index
files (`dovecot.index*`, `dovecot.list.index*`: index, cache, log) are left
out: they are caches rebuilt from the uidlist and the Maildir, and a 1.x
server's index format is not the one 2.x writes.
"""

from __future__ import annotations

from lab import profiles
from lab.render import write
from lab.run import on
from lab.topology import NEW, OLD, Host

GREETING = "Dovecot ready."
# A Dovecot 1.1 list (1.0 had the same less SASL-IR); STARTTLS and AUTH= are added
# by the login process where they apply.
IMAP_CAPABILITY = (
    "IMAP4rev1 SASL-IR SORT THREAD=REFERENCES MULTIAPPEND UNSELECT LITERAL+ IDLE "
    "CHILDREN NAMESPACE LOGIN-REFERRALS"
)
# Never advertised by the legacy old server (the suite must not need them).
ABSENT = ("CONDSTORE", "QRESYNC", "ENABLE", "SPECIAL-USE", "LIST-STATUS")
CONFIG = "etc/dovecot/local.d/legacy-dovecot1.conf"
# The index, cache and transaction log files rsync leaves out (rebuilt on new).
INDEX_FILES = ("dovecot.index*", "dovecot.list.index*")


def configure_old(host: Host) -> None:
    """On a legacy lab, old's Dovecot speaks as 1.x did (a no-op elsewhere)."""
    if host.key != OLD.key or not profiles.legacy():
        return
    write(
        host.root / CONFIG,
        "# The legacy profile: what Dovecot 1.x advertised and how it greeted.\n"
        f"login_greeting = {GREETING}\n"
        f"imap_capability = {IMAP_CAPABILITY}\n",
    )


def rsync_maildirs() -> int:
    """rsync old's /srv/vmail onto new's (uidlists kept, indexes left out); files changed."""
    excludes = [f"--exclude={pattern}" for pattern in INDEX_FILES]
    result = on(
        OLD,
        [
            "rsync",
            "-a",
            "--delete",
            "--chown=vmail:vmail",
            "--itemize-changes",
            *excludes,
            "/srv/vmail/",
            f"root@{NEW.address}:/srv/vmail/",
        ],
        timeout=600,
    )
    # One itemized line per file sent (`<f...`) or deleted on new (`*deleting`).
    return sum(
        1 for line in result.stdout.splitlines() if line.startswith(("<f", ">f", "*deleting"))
    )
