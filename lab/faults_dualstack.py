"""Faults of a dual-stack migration (issue #18): what goes wrong for IPv6 clients only.

The forwards: the playbook's IPv4-only script (`forward-v4-only`), or the old
server's own daemons answering on its IPv6 address again
(`v6-old-server-still-serving`). The records: AAAA not switched or with a high
TTL, IPv6 PTRs missing, SPF without the new server's `ip6:`. Each breaks one
property and `fault --undo` restores the lab exactly (the forwards restarted,
the old daemons stopped by PID and their configs restored, the rows written
back). Registered into `lab.fault_registry.FAULTS` when lab/faults.py imports
this module.
"""

from __future__ import annotations

from typing import Any, ClassVar

from lab import daemons, story
from lab.fault_registry import (
    BACKUPS,
    Fault,
    RecordsFault,
    Saved,
    kill_helper,
    register,
)
from lab.faults_outbound import SPF_ROW
from lab.run import LabError, on, wait_until
from lab.topology import (
    FORWARDED_PORTS,
    HOSTS,
    NAMESERVERS,
    NEW,
    OLD,
    REVERSE_ZONE6,
    SERVERS,
    ZONES,
    Host,
    reverse_name6,
)
from lab.zones import sql_string

# Old's daemons that `v6-old-server-still-serving` brings back on old's IPv6
# address, and their ports (MySQL keeps its forward: old's socket is the tunnel's).
STALE_DAEMONS = {"dovecot": (110, 143, 993, 995), "postfix": (25, 465, 587), "apache": (80,)}
APACHE_LISTEN = "Listen 0.0.0.0:80\nListen [::]:80\n"


def _restart_forwards6(data: dict[str, Any], ports: tuple[int, ...]) -> None:
    for port in ports:
        data["cutover"] = story.start_helper("--forward", str(port), NEW.address6)


@register
class ForwardV4Only(Fault):
    name = "forward-v4-only"
    needs = "cutover"
    summary = (
        "the old host forwards IPv4 only (the playbook's script as written): every "
        f"forwarded port of {OLD.address6} refuses"
    )

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        if not story.forwards_ipv6(data):
            raise LabError("forward-v4-only: the cutover was --ipv4-only already")
        for port in FORWARDED_PORTS:
            kill_helper(data, f"forward6-{port}")
        return {}

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        _restart_forwards6(data, FORWARDED_PORTS)


def _listening(host: Host, address: str, ports: tuple[int, ...]) -> set[int]:
    """Which of `ports` something listens on at `address` (IPv6) inside `host`."""
    out = on(host, ["ss", "-Hltn"], timeout=10).stdout
    bound = {line.split()[3] for line in out.splitlines() if line.strip()}
    return {port for port in ports if f"[{address}]:{port}" in bound}


@register
class V6OldServerStillServing(Fault):
    name = "v6-old-server-still-serving"
    needs = "cutover"
    summary = (
        f"old's own Dovecot, Postfix and Apache answer on {OLD.address6} again "
        "(its IPv6 forwards gone): IPv6 clients see the old server's stale mailboxes"
    )

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        if not story.forwards_ipv6(data):
            raise LabError("v6-old-server-still-serving: the cutover was --ipv4-only")
        ports = tuple(p for ports in STALE_DAEMONS.values() for p in ports)
        for port in ports:
            kill_helper(data, f"forward6-{port}")
        etc = OLD.root / "etc"
        BACKUPS.mkdir(exist_ok=True)
        saved: Saved = {"main.cf": (etc / "postfix/main.cf").read_text(), "pids": {}}
        # Each daemon binds old's IPv6 address only: old's IPv4 ports stay the forwards'.
        (etc / "dovecot/local.d/fault-v6-only.conf").write_text(f"listen = {OLD.address6}\n")
        on(OLD, ["postconf", "-e", f"inet_interfaces = [{OLD.address6}]"], timeout=20)
        apache = etc / "apache2/apache2.conf"
        apache.write_text(
            apache.read_text().replace(APACHE_LISTEN, f"Listen [{OLD.address6}]:80\n")
        )
        for name in STALE_DAEMONS:
            saved["pids"][name] = daemons.start(OLD, name)
        wait_until(
            f"old: {', '.join(STALE_DAEMONS)} on {OLD.address6}",
            lambda: _listening(OLD, OLD.address6, ports) == set(ports),
            timeout=30,
        )
        daemons.wait_dovecot_auth(OLD)
        # `postfix start-fg` leaves its master running as a child: stop that one by PID too.
        master = OLD.root / "var/spool/postfix/pid/master.pid"
        saved["pids"]["postfix-master"] = int(master.read_text().strip())
        return saved

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        for pid in saved["pids"].values():
            daemons.stop(pid)
        ports = tuple(p for ports in STALE_DAEMONS.values() for p in ports)
        wait_until(
            f"old: its own daemons gone from {OLD.address6}",
            lambda: not _listening(OLD, OLD.address6, ports),
            timeout=30,
        )
        etc = OLD.root / "etc"
        (etc / "dovecot/local.d/fault-v6-only.conf").unlink(missing_ok=True)
        (etc / "postfix/main.cf").write_text(saved["main.cf"])
        apache = etc / "apache2/apache2.conf"
        apache.write_text(
            apache.read_text().replace(f"Listen [{OLD.address6}]:80\n", APACHE_LISTEN)
        )
        _restart_forwards6(data, ports)


@register
class AaaaStale(RecordsFault):
    name = "aaaa-stale"
    needs = "dns"
    column = "content"
    summary = (
        f"after the switch, {ZONES[1]}'s AAAA record still points at {OLD.address6} "
        "(its A record moved; both NS)"
    )

    def where(self) -> str:
        return f"type = 'AAAA' AND name = {sql_string(ZONES[1])}"

    def change(self, ns: Host) -> None:
        story.dns_sql(
            ns, f"UPDATE records SET content = {sql_string(OLD.address6)} WHERE {self.where()};"
        )


@register
class AaaaTtlHigh(RecordsFault):
    name = "aaaa-ttl-high"
    arg = "NS"
    default_arg = "ns2"
    column = "ttl"
    summary = "every AAAA TTL on one nameserver (default ns2) is back to 3600, serial unchanged"

    def targets(self, arg: str | None) -> tuple[Host, ...]:
        if arg not in ("ns1", "ns2"):
            raise LabError(f"aaaa-ttl-high:NS: NS is ns1 or ns2, not {arg}")
        return (HOSTS[arg],)

    def where(self) -> str:
        return "type = 'AAAA'"

    def change(self, ns: Host) -> None:
        story.dns_sql(ns, f"UPDATE records SET ttl = 3600 WHERE {self.where()};")


# The columns of a records row that `ptr6-missing` deletes and undo inserts again.
_ROW = ("id", "domain_id", "name", "type", "content", "ttl", "prio", "disabled", "auth")


@register
class Ptr6Missing(Fault):
    name = "ptr6-missing"
    summary = (
        f"the PTR records of {OLD.address6} and {NEW.address6} are gone from "
        f"{REVERSE_ZONE6} (both NS): the new server's IPv6 address has no reverse name"
    )
    where: ClassVar[str] = "type = 'PTR' AND name IN ({})".format(
        ", ".join(sql_string(reverse_name6(h.address6)) for h in SERVERS)
    )

    def apply(self, data: dict[str, Any], arg: str | None) -> Saved:
        saved: Saved = {}
        for ns in NAMESERVERS:
            rows = story.dns_sql(ns, f"SELECT {', '.join(_ROW)} FROM records WHERE {self.where};")
            saved[ns.key] = [line.split("\t") for line in rows.splitlines()]
            story.dns_sql(ns, f"DELETE FROM records WHERE {self.where};")
        return saved

    def undo(self, data: dict[str, Any], arg: str | None, saved: Saved) -> None:
        for key, rows in saved.items():
            values = ", ".join("(" + ", ".join(sql_string(v) for v in row) + ")" for row in rows)
            if values:
                story.dns_sql(
                    HOSTS[key], f"INSERT INTO records ({', '.join(_ROW)}) VALUES {values};"
                )


@register
class SpfMissingIp6(RecordsFault):
    name = "spf-missing-ip6"
    column = "content"
    summary = (
        f"{ZONES[1]}'s SPF record no longer lists the new server's IPv6 address "
        f"(ip6:{NEW.address6} removed, both NS)"
    )

    def where(self) -> str:
        return SPF_ROW.format(zone=sql_string(ZONES[1]))

    def change(self, ns: Host) -> None:
        story.dns_sql(
            ns,
            f"UPDATE records SET content = REPLACE(content, ' ip6:{NEW.address6}', '') "
            f"WHERE {self.where()};",
        )
