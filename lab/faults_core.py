"""The suite's core faults: forwarding, IMAP, MySQL, DNS, TLS, capabilities, services.

Each breaks exactly one property the suite checks, and undoes itself
(lab/fault_registry.py has the base class and the helpers they share).
"""

from __future__ import annotations

import shutil
from typing import Any, ClassVar

from lab import daemons, story
from lab.fault_registry import (
    BACKUPS,
    MAIL_USER,
    WRONG_PORT,
    Fault,
    MailFault,
    RecordsFault,
    Saved,
    dovecot_override,
    forwarded_port,
    kill_helper,
    read_records,
    register,
    restart_daemon,
    restore_certificate,
    swap_certificate,
)
from lab.run import LabError, on
from lab.topology import HOSTS, NEW, NS2, OLD, ZONES, Host


@register
class ForwardDrop(Fault):
    name = "forward-drop"
    arg = "PORT"
    needs = "cutover"
    summary = "one socat forward on the old host is gone: that port on the old IP is closed"

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        kill_helper(data, f"forward-{forwarded_port(arg)}")
        return {}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        data["cutover"] = story.start_helper("--forward", str(forwarded_port(arg)), NEW.address)


@register
class ForwardWrongBackend(Fault):
    name = "forward-wrong-backend"
    arg = "PORT"
    needs = "cutover"
    summary = (
        "the old host forwards PORT to the wrong service on the new IP "
        "(e.g. 143 -> 110): the old IP answers with another protocol"
    )

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        port = forwarded_port(arg)
        kill_helper(data, f"forward-{port}")
        data["cutover"] = story.start_helper(
            "--forward", str(port), NEW.address, str(WRONG_PORT[port])
        )
        return {}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        kill_helper(data, f"forward-{forwarded_port(arg)}")
        data["cutover"] = story.start_helper("--forward", str(forwarded_port(arg)), NEW.address)


@register
class ImapUidvalidity(MailFault):
    name = "imap-uidvalidity"
    summary = f"{MAIL_USER}'s Archive/2024 on new has a new UIDVALIDITY (as if re-created)"

    def break_mail(self) -> None:
        status = on(
            NEW,
            [
                "doveadm",
                "-f",
                "flow",
                "mailbox",
                "status",
                "-u",
                MAIL_USER,
                "uidvalidity",
                "Archive/2024",
            ],
            timeout=30,
        ).stdout
        current = int(status.split("uidvalidity=")[1].split()[0])
        on(
            NEW,
            [
                "doveadm",
                "mailbox",
                "update",
                "-u",
                MAIL_USER,
                "--uid-validity",
                str(current + 1000),
                "Archive/2024",
            ],
            timeout=30,
        )


@register
class ImapRenumbered(MailFault):
    name = "imap-renumbered"
    summary = (
        f"{MAIL_USER}'s INBOX on new was copied message by message (as imapsync "
        "does with APPEND): same messages, new UIDs"
    )

    def break_mail(self) -> None:
        on(NEW, ["doveadm", "mailbox", "create", "-u", MAIL_USER, "lab-renumber"], timeout=30)
        for source, target in (("INBOX", "lab-renumber"), ("lab-renumber", "INBOX")):
            on(
                NEW,
                ["doveadm", "move", "-u", MAIL_USER, target, "mailbox", source, "all"],
                timeout=60,
            )
        on(NEW, ["doveadm", "mailbox", "delete", "-u", MAIL_USER, "lab-renumber"], timeout=30)


@register
class ImapMissingMessage(MailFault):
    name = "imap-missing-message"
    summary = f"one message (UID 4 of {MAIL_USER}'s INBOX) is missing on new"

    def break_mail(self) -> None:
        on(NEW, ["doveadm", "expunge", "-u", MAIL_USER, "mailbox", "INBOX", "uid", "4"], timeout=30)


@register
class ImapFlagsLost(MailFault):
    name = "imap-flags-lost"
    summary = f"flags and keywords of {MAIL_USER}'s INBOX are gone on new"

    def break_mail(self) -> None:
        on(
            NEW,
            [
                "doveadm",
                "flags",
                "remove",
                "-u",
                MAIL_USER,
                "\\Seen \\Flagged \\Answered $Important Project-X",
                "mailbox",
                "INBOX",
                "all",
            ],
            timeout=30,
        )


@register
class MysqlSkipNameResolve(Fault):
    name = "mysql-skip-name-resolve"
    summary = (
        "new's MariaDB runs with skip-name-resolve: the tunnel's 127.0.0.1 no longer "
        "matches app@localhost"
    )

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        (NEW.root / "etc/mysql/local.d/skip-name-resolve.cnf").write_text(
            "[mysqld]\nskip-name-resolve\n"
        )
        restart_daemon(data, NEW, "mariadb")
        return {}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        (NEW.root / "etc/mysql/local.d/skip-name-resolve.cnf").unlink(missing_ok=True)
        restart_daemon(data, NEW, "mariadb")


@register
class MysqlGrantMissing(Fault):
    name = "mysql-grant-missing"
    needs = "synced"
    summary = "app@localhost lost its DELETE privilege on app.* on new (grants differ)"

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        daemons.mysql(NEW, "REVOKE DELETE ON app.* FROM 'app'@'localhost';")
        return {}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        daemons.mysql(NEW, "GRANT DELETE ON app.* TO 'app'@'localhost';")


@register
class MysqlTunnelDown(Fault):
    name = "mysql-tunnel-down"
    needs = "cutover"
    summary = "the ssh tunnel old:3307 -> new:3306 is gone: the old socket leads nowhere"

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        kill_helper(data, "tunnel")
        return {}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        data["cutover"] = story.start_helper("--tunnel", NEW.address)


@register
class DnsTtlHigh(RecordsFault):
    name = "dns-ttl-high"
    arg = "NS"
    default_arg = "ns2"
    column = "ttl"
    summary = "every TTL on one nameserver (default ns2) is back to 3600, serial unchanged"

    def targets(self, arg: str | None) -> tuple[Host, ...]:
        if arg not in ("ns1", "ns2"):
            raise LabError(f"dns-ttl-high:NS: NS is ns1 or ns2, not {arg}")
        return (HOSTS[arg],)

    def where(self) -> str:
        return "1 = 1"

    def change(self, ns: Host) -> None:
        story.dns_sql(ns, "UPDATE records SET ttl = 3600;")


@register
class DnsSerialMismatch(RecordsFault):
    name = "dns-serial-mismatch"
    column = "content"
    summary = "example.test's SOA serial on ns2 is one ahead of ns1's"

    def targets(self, arg: str | None) -> tuple[Host, ...]:
        return (NS2,)

    def where(self) -> str:
        return "type = 'SOA' AND name = 'example.test'"

    def change(self, ns: Host) -> None:
        ids = ",".join(read_records(ns, "domain_id", self.where()).values())
        story.bump_serials(ns, ids)


@register
class DnsAStale(RecordsFault):
    name = "dns-a-stale"
    needs = "dns"
    column = "content"
    summary = f"after the switch, {ZONES[1]}'s A record still points at the old IP (both NS)"

    def where(self) -> str:
        return f"type = 'A' AND name = '{ZONES[1]}'"

    def change(self, ns: Host) -> None:
        story.dns_sql(ns, f"UPDATE records SET content = '{OLD.address}' WHERE {self.where()};")


@register
class TlsCertExpired(Fault):
    name = "tls-cert-expired"
    summary = "new's certificate (Dovecot, Postfix) expired in 2021"

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        return swap_certificate(start="20200101000000Z", end="20210101000000Z")

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        restore_certificate()


@register
class TlsCertWrongName(Fault):
    name = "tls-cert-wrong-name"
    summary = "new's certificate names only new.example.test, not mail.example.test and the rest"

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        return swap_certificate(names=(NEW.fqdn,))

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        restore_certificate()


@register
class StarttlsOff(Fault):
    name = "starttls-off"
    arg = "PORT"
    default_arg = "587"
    summary = "new's Postfix no longer offers STARTTLS on PORT (25 or 587)"

    def _setting(self, arg: str | None) -> str:
        services = {"25": "smtp", "587": "submission"}
        if arg not in services:
            raise LabError(f"starttls-off:PORT: PORT is 25 or 587, not {arg}")
        return f"{services[arg]}/inet/smtpd_tls_security_level"

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        setting = self._setting(arg)
        before = on(NEW, ["postconf", "-P", "-h", setting], timeout=10, check=False).stdout
        on(NEW, ["postconf", "-P", f"{setting}=none"], timeout=10)
        daemons.reload(NEW, "postfix", 0)
        return {"before": before.strip()}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        setting = self._setting(arg)
        if saved["before"]:
            on(NEW, ["postconf", "-P", f"{setting}={saved['before']}"], timeout=10)
        else:
            on(NEW, ["postconf", "-PX", setting], timeout=10)
        daemons.reload(NEW, "postfix", 0)


@register
class CapabilityMissing(Fault):
    name = "capability-missing"
    summary = "new offers only AUTH PLAIN (LOGIN dropped) in IMAP, POP3 and SMTP AUTH"

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        dovecot_override("fault-capability", "auth_mechanisms = plain\n")
        _refresh_smtpd_sasl()
        return {}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        dovecot_override("fault-capability", None)
        _refresh_smtpd_sasl()


def _refresh_smtpd_sasl() -> None:
    # Running smtpd processes keep the mechanism list Dovecot gave them when
    # they connected; a reload replaces them so EHLO shows the new list.
    daemons.reload(NEW, "postfix", 0)


@register
class MailDeliveryDeferred(Fault):
    name = "mail-delivery-deferred"
    needs = "cutover"
    summary = (
        "new's Postfix accepts mail but defers every local delivery (defer_transports = lmtp): "
        "the relay through the old IP answers 250, the message never reaches the INBOX"
    )

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        on(NEW, ["postconf", "-e", "defer_transports = lmtp"], timeout=20)
        daemons.reload(NEW, "postfix", 0)
        return {}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        on(NEW, ["postconf", "-X", "defer_transports"], timeout=20)
        # What was deferred meanwhile (probe messages) is dropped: the queue is as before.
        on(NEW, ["postsuper", "-d", "ALL"], timeout=20)
        daemons.reload(NEW, "postfix", 0)


@register
class VhostMissing(Fault):
    name = "vhost-missing"
    needs = "synced"
    summary = "www.blog.test's vhost was lost on new: it gets the default vhost's page"

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        BACKUPS.mkdir(exist_ok=True)
        site = NEW.root / "etc/apache2/sites-enabled/www.blog.test.conf"
        shutil.move(site, BACKUPS / site.name)
        daemons.reload(NEW, "apache", data["hosts"]["new"]["pids"]["apache"])
        return {}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        shutil.move(
            BACKUPS / "www.blog.test.conf",
            NEW.root / "etc/apache2/sites-enabled/www.blog.test.conf",
        )
        daemons.reload(NEW, "apache", data["hosts"]["new"]["pids"]["apache"])


@register
class ServiceDown(Fault):
    name = "service-down"
    arg = "HOST:SERVICE"
    default_arg = "new:imap"
    summary = (
        "one service is down on a server (default new:imap); SERVICE is imap or pop3 "
        "(Dovecot keeps the other), smtp, http or mysql"
    )

    DAEMON: ClassVar[dict[str, str]] = {"smtp": "postfix", "http": "apache", "mysql": "mariadb"}

    def _parse(self, arg: str | None) -> tuple[Host, str]:
        host, _, service = (arg or "").partition(":")
        if host not in ("old", "new") or service not in ("imap", "pop3", *self.DAEMON):
            raise LabError(f"service-down:HOST:SERVICE: not understood: {arg}")
        return HOSTS[host], service

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        host, service = self._parse(arg)
        if service in self.DAEMON:
            daemons.stop(data["hosts"][host.key]["pids"][self.DAEMON[service]])
            return {}
        if host != NEW:
            raise LabError("service-down: imap/pop3 can be taken down on new only")
        others = " ".join(p for p in ("imap", "pop3") if p != service)
        dovecot_override(f"fault-{service}-down", f"protocols = {others} lmtp\n")
        return {}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        host, service = self._parse(arg)
        if service in self.DAEMON:
            restart_daemon(data, host, self.DAEMON[service])
        else:
            dovecot_override(f"fault-{service}-down", None)


# --- the verb ----------------------------------------------------------------------
