"""The legacy profile's mail fault: Maildirs copied without `dovecot-uidlist`.

The playbook kept every UID by copying each Maildir with its
`dovecot-uidlist`. A copy that leaves it out (and Dovecot's indexes, which
would otherwise remember the old numbering) makes new's Dovecot number the
messages afresh in the order it finds the files, under a new UIDVALIDITY:
every client downloads every mailbox again, POP3 clients fetch every
message again (the UIDL is made of UID and UIDVALIDITY). Registered into
`lab.fault_registry.FAULTS` when lab/faults.py imports this module; undone
by restoring the snapshot `MailFault` takes.
"""

from __future__ import annotations

from lab import profiles
from lab.fault_registry import MAIL_USER, MailFault, register
from lab.legacy_mail import INDEX_FILES
from lab.run import on
from lab.topology import NEW


@register
class RsyncWithoutUidlist(MailFault):
    name = "rsync-without-uidlist"
    for_profiles = (profiles.LEGACY,)
    summary = (
        f"{MAIL_USER}'s Maildir on new as an rsync without dovecot-uidlist (and indexes) "
        "leaves it: new's Dovecot renumbers every mailbox under a new UIDVALIDITY"
    )

    def break_mail(self) -> None:
        local, domain = MAIL_USER.split("@")
        names: list[str] = []
        for pattern in ("dovecot-uidlist", *INDEX_FILES):
            names += [*(["-o"] if names else []), "-name", pattern]
        on(
            NEW,
            ["find", f"/srv/vmail/{domain}/{local}", "-type", "f", "(", *names, ")", "-delete"],
            timeout=60,
        )
        # Dovecot renumbers on the next access: do it now, not in the first probe.
        on(NEW, ["doveadm", "mailbox", "status", "-u", MAIL_USER, "uidvalidity", "*"], timeout=60)
