"""The migration story, one verb per step: lower-ttl, sync, cutover, dns-switch, decommission.

Each verb is idempotent: run twice, the second run says there was nothing to do.
"""

from __future__ import annotations

import shlex
import shutil
import time
from typing import Any

from lab import daemons, health, legacy_mail, legacy_mysql, legacy_web, mydns, profiles, state
from lab.daemons import mysql, reload
from lab.labctl import lab_state, say
from lab.run import LabError, on, pid_alive
from lab.topology import LOWERED_TTL, NAMESERVERS, NEW, OLD, REPO, Host

CUTOVER_SCRIPT = REPO / "lab" / "cutover.sh"
SCRIPT_ON_OLD = "/root/cutover.sh"
# Accounts a fresh MariaDB already has; every other account is migrated.
SYSTEM_ACCOUNTS = ("root", "mariadb.sys", "mysql", "PUBLIC")

# One statement for any zone: add one to the serial (third field) of SOA records.
_BUMP_SERIAL = (
    "UPDATE records SET content = CONCAT_WS(' ', SUBSTRING_INDEX(content, ' ', 2), "
    "SUBSTRING_INDEX(SUBSTRING_INDEX(content, ' ', 3), ' ', -1) + 1, "
    "SUBSTRING_INDEX(content, ' ', -4)) WHERE type = 'SOA'"
)


def dns_sql(ns: Host, sql: str) -> str:
    return mysql(ns, sql, database="pdns")


def bump_serials(ns: Host, domain_ids: str | None = None) -> None:
    if profiles.legacy():
        dns_sql(ns, mydns.bump_serial_sql(domain_ids))
        return
    where = f" AND domain_id IN ({domain_ids})" if domain_ids else ""
    dns_sql(ns, _BUMP_SERIAL + where + ";")


def lower_ttl() -> None:
    data = lab_state()
    for ns in NAMESERVERS:
        count = int(dns_sql(ns, f"SELECT COUNT(*) FROM records WHERE ttl > {LOWERED_TTL};"))
        if not count:
            say(f"lower-ttl: {ns.key}: every TTL is already <= {LOWERED_TTL}")
            continue
        if profiles.legacy():
            dns_sql(ns, mydns.lower_ttl_sql(LOWERED_TTL))
        else:
            dns_sql(ns, f"UPDATE records SET ttl = {LOWERED_TTL} WHERE ttl > {LOWERED_TTL};")
        bump_serials(ns)
        say(f"lower-ttl: {ns.key}: {count} records now TTL {LOWERED_TTL}, SOA serials bumped")
    data["story"]["ttl"] = LOWERED_TTL
    data["story"]["ttl_lowered_at"] = data["story"].get("ttl_lowered_at") or time.time()
    state.save(data)
    health.verify(data, "lower-ttl")


def _mysql_accounts_sql() -> str:
    """CREATE OR REPLACE USER + GRANTs for every non-system account on old."""
    excluded = ", ".join(f"'{name}'" for name in SYSTEM_ACCOUNTS)
    rows = mysql(
        OLD,
        f"SELECT User, Host FROM mysql.user WHERE User NOT IN ({excluded})"
        " AND User <> '' ORDER BY User, Host;",
    )
    statements = []
    for line in rows.splitlines():
        user, host = line.split("\t")
        account = f"'{user}'@'{host}'"
        create = mysql(OLD, f"SHOW CREATE USER {account};").strip()
        statements.append(create.replace("CREATE USER", "CREATE OR REPLACE USER", 1) + ";")
        grants = mysql(OLD, f"SHOW GRANTS FOR {account};").splitlines()
        statements += [g + ";" for g in grants if not g.startswith("GRANT USAGE")]
    return "\n".join(statements) + "\n"


def sync(method: str = "dsync") -> None:
    """Mail by dsync (UIDs kept) or rsync, MariaDB by dump over ssh, web roots and vhosts by tar."""
    data = lab_state()
    started = time.monotonic()
    new = shlex.quote(f"root@{NEW.address}")
    if method not in ("dsync", "rsync"):
        raise LabError(f"sync --method {method}: one of dsync, rsync")
    if not data["story"]["synced"]:
        # Any login on new before the first sync created an INBOX of its own (another
        # mailbox GUID), which dsync cannot replace ("INBOX can't be deleted"). New
        # holds no mail of its own before the first sync: start it from empty.
        on(NEW, ["find", "/srv/vmail", "-mindepth", "1", "-delete"], timeout=120)
    users = on(OLD, ["doveadm", "user", "*"], timeout=30).stdout.split()
    if method == "rsync":
        changed = legacy_mail.rsync_maildirs()
        say(
            f"sync: Maildirs of {len(users)} accounts copied with rsync, dovecot-uidlist "
            f"included ({changed} files changed)"
        )
    else:
        # dsync in backup mode makes new an exact copy, keeping UIDVALIDITY and UIDs.
        on(OLD, ["doveadm", "backup", "-A", f"remote:root@{NEW.address}"], timeout=600)
        say(f"sync: mail of {len(users)} accounts copied with doveadm backup (dsync over ssh)")

    on(
        OLD,
        ["sh", "-ec", f"mariadb-dump --single-transaction --databases app | ssh {new} mariadb"],
        timeout=600,
    )
    on(OLD, ["ssh", NEW.address, "mariadb"], input=_mysql_accounts_sql(), timeout=60)
    say("sync: database app (mariadb-dump | ssh new mariadb) and its accounts copied")
    legacy_mysql.convert_after_sync()

    for directory in ("/var/www", "/etc/apache2/sites-enabled"):
        target = shlex.quote(directory)
        on(
            OLD,
            [
                "sh",
                "-ec",
                f"tar -C {target} -cf - . | ssh {new} "
                + shlex.quote(f"rm -rf {target}/* && tar -C {target} -xf -"),
            ],
            timeout=300,
        )
    # The DKIM key published in DNS signs mail from whichever server sends it.
    dkim = shlex.quote("/etc/ssl/private/dkim-mail.key")
    on(
        OLD,
        ["sh", "-ec", f"ssh {new} {shlex.quote(f'umask 077; cat > {dkim}')} < {dkim}"],
        timeout=60,
    )
    legacy_web.convert_synced_vhosts()
    reload(NEW, "apache", data["hosts"]["new"]["pids"]["apache"])
    say("sync: web roots, vhost configs and the DKIM key copied; new's Apache reloaded")

    data["story"]["synced"] = True
    state.save(data)
    health.verify(data, "sync")
    say(f"sync: done in {time.monotonic() - started:.1f}s")


def _run_script(*args: str) -> str:
    return on(
        OLD,
        [
            "env",
            f"OLDIP={OLD.address}",
            f"OLDIP6={OLD.address6}",
            f"CUTOVER_LOG_DIR={OLD.logs}",
            "sh",
            SCRIPT_ON_OLD,
            *args,
        ],
        timeout=120,
    ).stdout


def cutover_pids() -> dict[str, int]:
    listing = on(
        OLD, ["sh", "-c", "cd /run/cutover 2>/dev/null && grep -H . *.pid || true"], timeout=10
    ).stdout
    pids = {}
    for line in listing.splitlines():
        name, pid = line.split(":", 1)
        pids[name.removesuffix(".pid")] = int(pid)
    return pids


def start_helper(*args: str) -> dict[str, int]:
    """(Re)start one cutover helper with the script's own options; return all helper PIDs."""
    _run_script(*args)
    return cutover_pids()


def forwards_ipv6(data: dict[str, Any]) -> bool:
    """Whether the cutover forwards IPv6 too (not after `cutover --ipv4-only`)."""
    return bool(data["story"]["cutover"]) and data["story"].get("cutover_ipv6", True)


def cutover(ipv4_only: bool = False) -> None:
    """Run lab/cutover.sh on old; `ipv4_only`: as the playbook wrote it (no IPv6 forwards)."""
    data = lab_state()
    helpers: dict[str, Any] = data["cutover"]
    if data["story"]["cutover"] and helpers and all(pid_alive(p) for p in helpers.values()):
        health.verify(data, "cutover")
        say(f"cutover: already done ({len(helpers)} helpers running on old)")
        return
    if data["story"].get("decommissioned"):
        raise LabError("cutover: the forwards were stopped by `lab decommission`; rebuild the lab")
    if data["story"]["cutover"]:
        raise LabError("cutover: done before but helpers died; `python -m lab heal` restarts them")
    started = time.monotonic()
    shutil.copyfile(CUTOVER_SCRIPT, OLD.root / "root/cutover.sh")
    (OLD.root / "root/cutover.sh").chmod(0o755)
    pairs = (NEW.address, OLD.address) + (() if ipv4_only else (NEW.address6, OLD.address6))
    for line in _run_script(*pairs).splitlines():
        say(f"cutover: old: {line}")
    data["cutover"] = cutover_pids()
    data["story"]["cutover"] = True
    data["story"]["cutover_ipv6"] = not ipv4_only
    state.save(data)
    health.verify(data, "cutover")
    targets = NEW.address if ipv4_only else f"{NEW.address} and {NEW.address6}"
    say(
        f"cutover: old now forwards every port to {targets} "
        f"({len(data['cutover'])} helpers) in {time.monotonic() - started:.1f}s"
        + ("; IPv4 only: old's IPv6 address answers nothing" if ipv4_only else "")
    )


def dns_switch() -> None:
    data = lab_state()
    for ns in NAMESERVERS:
        ids: set[str] = set()
        for rtype, old, new in (
            ("A", OLD.address, NEW.address),
            ("AAAA", OLD.address6, NEW.address6),
        ):
            apex = (
                f"FROM records r JOIN domains d ON r.domain_id = d.id "
                f"WHERE r.type = '{rtype}' AND r.name = d.name AND r.content = '{old}'"
            )
            ids.update(dns_sql(ns, f"SELECT DISTINCT r.domain_id {apex};").split())
            dns_sql(
                ns,
                mydns.point_apex_sql(rtype, old, new)
                if profiles.legacy()
                else f"UPDATE records r JOIN domains d ON r.domain_id = d.id "
                f"SET r.content = '{new}' WHERE r.type = '{rtype}' AND r.name = d.name "
                f"AND r.content = '{old}';",
            )
        if not ids:
            say(f"dns-switch: {ns.key}: no apex A or AAAA record points at the old server any more")
            continue
        bump_serials(ns, ",".join(sorted(ids)))
        say(
            f"dns-switch: {ns.key}: {len(ids)} zones now point at {NEW.address} "
            f"and {NEW.address6}, serials bumped"
        )
    data["story"]["dns"] = "new"
    state.save(data)
    health.verify(data, "dns-switch")


def decommission() -> None:
    """Stop the forwards and the tunnel on old (by their PIDs), as the operator finally would."""
    data = lab_state()
    if data["story"].get("decommissioned"):
        health.verify(data, "decommission")
        say("decommission: already done (the old IP answers nothing on the forwarded ports)")
        return
    if not data["story"]["cutover"]:
        raise LabError("decommission: no cutover yet: there are no forwards to stop")
    helpers: dict[str, int] = data["cutover"]
    for name, pid in sorted(helpers.items()):
        daemons.stop(pid)
        say(f"decommission: old: {name} stopped (pid {pid})")
    data["cutover"] = {}
    data["story"]["decommissioned"] = True
    state.save(data)
    health.verify(data, "decommission")
    say(f"decommission: {len(helpers)} forwards and the tunnel stopped; old answers nothing")
