"""Faults: each breaks exactly one property the suite checks, and undoes itself.

A fault is one small class in the registry below: `apply` breaks the
property and returns what `undo` needs to restore it (kept in lab.json,
so `fault --undo` works from a later process). Add a fault by writing a
class with `@register`; `fault --list` picks it up.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, ClassVar

from lab import daemons, health, pki, state, story
from lab.labctl import lab_state, say
from lab.run import LabError, on, pid_alive, run
from lab.topology import FORWARDED_PORTS, HOSTS, NAMESERVERS, NEW, NS2, OLD, STATE, ZONES, Host
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


def _port(arg: str | None) -> int:
    if arg is None or not arg.isdigit() or int(arg) not in WRONG_PORT:
        raise LabError(f"not a forwarded port: {arg} (one of {sorted(WRONG_PORT)})")
    return int(arg)


def _kill_helper(data: dict[str, Any], name: str) -> None:
    pid = data["cutover"].pop(name, None)
    if pid is not None:
        daemons.stop(pid)


def _restart_daemon(data: dict[str, Any], host: Host, name: str) -> None:
    pids = data["hosts"][host.key]["pids"]
    if name in pids:
        daemons.stop(pids[name])
    pids[name] = daemons.start(host, name)
    daemons.wait_ready(host, (name,), pids)


def _snapshot_user_mail(user: str) -> Saved:
    """A tarball of the user's mail on new (files and Dovecot indexes)."""
    local, domain = user.split("@")
    BACKUPS.mkdir(exist_ok=True)
    archive = BACKUPS / f"mail-{local}.tar"
    on(NEW, ["tar", "-C", f"/srv/vmail/{domain}", "-cf", str(archive), local], timeout=120)
    return {"archive": str(archive), "user": user}


def _restore_user_mail(saved: Saved) -> None:
    local, domain = saved["user"].split("@")
    on(NEW, ["rm", "-rf", f"/srv/vmail/{domain}/{local}"], timeout=60)
    on(NEW, ["tar", "-C", f"/srv/vmail/{domain}", "-xpf", saved["archive"]], timeout=120)
    os.unlink(saved["archive"])


class _MailFault(Fault):
    """Changes alice's mail on new; undone by restoring a snapshot of it."""

    needs = "synced"

    def break_mail(self) -> None:
        raise NotImplementedError

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        saved = _snapshot_user_mail(MAIL_USER)
        try:
            self.break_mail()
        except LabError:
            _restore_user_mail(saved)
            raise
        return saved

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        _restore_user_mail(saved)


def _records(ns: Host, column: str, where: str) -> dict[str, str]:
    rows = story.dns_sql(ns, f"SELECT id, {column} FROM records WHERE {where};")
    return dict(line.split("\t", 1) for line in rows.splitlines())


def _restore_records(ns: Host, column: str, rows: dict[str, str]) -> None:
    sql = "".join(
        f"UPDATE records SET {column} = {sql_string(value)} WHERE id = {int(row_id)};\n"
        for row_id, value in rows.items()
    )
    story.dns_sql(ns, sql)


class _RecordsFault(Fault):
    """Changes rows of the zone databases; undone by writing the saved values back."""

    column: ClassVar[str]

    def targets(self, arg: str | None) -> tuple[Host, ...]:
        return NAMESERVERS

    def where(self) -> str:
        raise NotImplementedError

    def change(self, ns: Host) -> None:
        raise NotImplementedError

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        saved = {ns.key: _records(ns, self.column, self.where()) for ns in self.targets(arg)}
        for ns in self.targets(arg):
            self.change(ns)
        return saved

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        for key, rows in saved.items():
            _restore_records(HOSTS[key], self.column, rows)


def _swap_certificate(**issue_options: Any) -> Saved:
    BACKUPS.mkdir(exist_ok=True)
    tls = NEW.root / "tls"
    for name in ("host.pem", "host.key"):
        shutil.copy2(tls / name, BACKUPS / f"new-{name}")
    pki.issue(NEW, tls / "host.pem", tls / "host.key", **issue_options)
    _reload_tls()
    return {}


def _restore_certificate() -> None:
    for name in ("host.pem", "host.key"):
        shutil.move(BACKUPS / f"new-{name}", NEW.root / "tls" / name)
    _reload_tls()


def _reload_tls() -> None:
    daemons.reload(NEW, "dovecot", 0)
    daemons.reload(NEW, "postfix", 0)


def _dovecot_override(name: str, text: str | None) -> None:
    """Write (or remove, text=None) a file in new's /etc/dovecot/local.d and reload."""
    path = NEW.root / "etc/dovecot/local.d" / f"{name}.conf"
    if text is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(text)
    daemons.reload(NEW, "dovecot", 0)


# --- the faults -------------------------------------------------------------------


@register
class ForwardDrop(Fault):
    name = "forward-drop"
    arg = "PORT"
    needs = "cutover"
    summary = "one socat forward on the old host is gone: that port on the old IP is closed"

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        _kill_helper(data, f"forward-{_port(arg)}")
        return {}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        data["cutover"] = story.start_helper("--forward", str(_port(arg)), NEW.address)


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
        port = _port(arg)
        _kill_helper(data, f"forward-{port}")
        data["cutover"] = story.start_helper(
            "--forward", str(port), NEW.address, str(WRONG_PORT[port])
        )
        return {}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        _kill_helper(data, f"forward-{_port(arg)}")
        data["cutover"] = story.start_helper("--forward", str(_port(arg)), NEW.address)


@register
class ImapUidvalidity(_MailFault):
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
class ImapRenumbered(_MailFault):
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
class ImapMissingMessage(_MailFault):
    name = "imap-missing-message"
    summary = f"one message (UID 4 of {MAIL_USER}'s INBOX) is missing on new"

    def break_mail(self) -> None:
        on(NEW, ["doveadm", "expunge", "-u", MAIL_USER, "mailbox", "INBOX", "uid", "4"], timeout=30)


@register
class ImapFlagsLost(_MailFault):
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
        _restart_daemon(data, NEW, "mariadb")
        return {}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        (NEW.root / "etc/mysql/local.d/skip-name-resolve.cnf").unlink(missing_ok=True)
        _restart_daemon(data, NEW, "mariadb")


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
        _kill_helper(data, "tunnel")
        return {}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        data["cutover"] = story.start_helper("--tunnel", NEW.address)


@register
class DnsTtlHigh(_RecordsFault):
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
class DnsSerialMismatch(_RecordsFault):
    name = "dns-serial-mismatch"
    column = "content"
    summary = "example.test's SOA serial on ns2 is one ahead of ns1's"

    def targets(self, arg: str | None) -> tuple[Host, ...]:
        return (NS2,)

    def where(self) -> str:
        return "type = 'SOA' AND name = 'example.test'"

    def change(self, ns: Host) -> None:
        ids = ",".join(_records(ns, "domain_id", self.where()).values())
        story.bump_serials(ns, ids)


@register
class DnsAStale(_RecordsFault):
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
        return _swap_certificate(start="20200101000000Z", end="20210101000000Z")

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        _restore_certificate()


@register
class TlsCertWrongName(Fault):
    name = "tls-cert-wrong-name"
    summary = "new's certificate names only new.example.test, not mail.example.test and the rest"

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        return _swap_certificate(names=(NEW.fqdn,))

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        _restore_certificate()


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
        _dovecot_override("fault-capability", "auth_mechanisms = plain\n")
        _refresh_smtpd_sasl()
        return {}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        _dovecot_override("fault-capability", None)
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
        _dovecot_override(f"fault-{service}-down", f"protocols = {others} lmtp\n")
        return {}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        host, service = self._parse(arg)
        if service in self.DAEMON:
            _restart_daemon(data, host, self.DAEMON[service])
        else:
            _dovecot_override(f"fault-{service}-down", None)


# --- the verb ----------------------------------------------------------------------


def _split(spec: str) -> tuple[Fault, str | None]:
    name, _, arg = spec.partition(":")
    if name not in FAULTS:
        raise LabError(f"unknown fault {name!r}; see `python -m lab fault --list`")
    fault = FAULTS[name]
    return fault, fault.check_arg(arg or None)


def _key(fault: Fault, arg: str | None) -> str:
    return f"{fault.name}:{arg}" if arg else fault.name


def describe() -> list[str]:
    return [
        f"{f.name + (':' + f.arg if f.arg else ''):<34} {f.summary}"
        + (f" [after {f.needs}]" if f.needs else "")
        for f in FAULTS.values()
    ]


def apply(spec: str) -> None:
    fault, arg = _split(spec)
    data = lab_state()
    key = _key(fault, arg)
    if key in data["faults"]:
        say(f"fault {key}: already active")
        return
    story_state = data["story"]
    reached = {
        "synced": story_state["synced"],
        "cutover": story_state["cutover"],
        "dns": story_state["dns"] == "new",
    }
    if fault.needs and not reached[fault.needs]:
        raise LabError(f"fault {key} needs the lab after `{fault.needs}`")
    data["faults"][key] = fault.apply(data, arg)
    state.save(data)
    say(f"fault {key}: active: {fault.summary}")


def undo(spec: str, *, verify: bool = True) -> None:
    fault, arg = _split(spec)
    data = lab_state()
    key = _key(fault, arg)
    if key not in data["faults"]:
        say(f"fault {key}: not active, nothing to undo")
        return
    fault.undo(data, arg, data["faults"].pop(key))
    state.save(data)
    if verify and not data["faults"]:
        # With no fault left, every postcondition of the story holds again.
        health.verify(data, f"fault --undo {key}")
    say(f"fault {key}: undone")


def _unsilence() -> list[str]:
    """Remove static neighbour entries (a host made to answer nobody) from every lab host."""
    done = []
    for host in HOSTS.values():
        listing = run(
            ["ip", "-n", host.netns, "neigh", "show", "nud", "permanent"], timeout=10, check=False
        ).stdout
        for line in listing.splitlines():
            fields = line.split()
            if "dev" not in fields:
                continue
            device = fields[fields.index("dev") + 1]
            run(["ip", "-n", host.netns, "neigh", "del", fields[0], "dev", device], timeout=10)
            done.append(f"{host.key}: static neighbour entry for {fields[0]} removed")
    return done


def _restart_dead_daemons(data: dict[str, Any]) -> list[str]:
    done = []
    for key, info in data["hosts"].items():
        if key == OLD.key and data["story"]["cutover"]:
            continue  # stopped by the cutover on purpose
        for name, pid in list(info["pids"].items()):
            if not pid_alive(pid):
                _restart_daemon(data, HOSTS[key], name)
                done.append(f"{key}: {name} restarted")
    return done


def _restart_helpers(data: dict[str, Any]) -> list[str]:
    """Every cutover helper on old running, and MySQL answering through old's socket."""
    done = []
    helpers: dict[str, int] = data["cutover"]
    for port in FORWARDED_PORTS:
        name = f"forward-{port}"
        if not pid_alive(helpers.get(name, 0)):
            helpers.update(story.start_helper("--forward", str(port), NEW.address))
            done.append(f"old: {name} restarted")
    if not pid_alive(helpers.get("mysql-socket", 0)):
        helpers.update(story.start_helper("--socket"))
        done.append("old: MySQL socket relay restarted")
    through = [c for c in health.conditions(data) if c.name.startswith("MySQL through")]
    if not pid_alive(helpers.get("tunnel", 0)) or not all(c.ok for c in through):
        # A tunnel can outlive its connection (ssh still waiting on a silent
        # peer): restart it whenever MySQL does not answer through it.
        _kill_helper(data, "tunnel")
        helpers.update(story.start_helper("--tunnel", NEW.address))
        done.append("old: ssh tunnel restarted")
    data["cutover"] = helpers
    return done


def heal() -> None:
    """Undo every fault, repair what broke outside any fault, and verify the story state."""
    active = list(lab_state()["faults"])
    for key in reversed(active):
        undo(key, verify=False)
    data = lab_state()
    done = _unsilence() + _restart_dead_daemons(data)
    if data["story"]["cutover"]:
        done += _restart_helpers(data)
    state.save(data)
    health.verify(data, "heal")
    for line in done:
        say(f"heal: {line}")
    if not active and not done:
        say("heal: nothing to do; every postcondition holds")
    else:
        say(f"heal: {len(active)} faults undone, {len(done)} repairs; every postcondition holds")


from lab import faults_mailclients  # noqa: E402,F401,I001  (registers its faults)
from lab import faults_outbound  # noqa: E402,F401  (registers its faults)
