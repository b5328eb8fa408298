"""Bringing the whole lab up, reporting on it, and taking it down."""

from __future__ import annotations

import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lab import daemons, health, inventory, legacy_tls, mydns, netns, pki, profiles, seed, state
from lab.render import render, write
from lab.run import LabError, on, pid_alive, run
from lab.topology import (
    CLIENT,
    FORWARDED_PORTS,
    HOSTS,
    INITIAL_TTL,
    NAMESERVERS,
    NEW,
    OLD,
    REPO,
    REVERSE_ZONE,
    REVERSE_ZONE6,
    SERVERS,
    STATE,
    SWITCH_NS,
    VHOSTS,
    ZONES,
    Host,
)
from lab.zones import (
    initial_serial,
    insert_zone_sql,
    reverse_records,
    reverse_records6,
    zone_records,
)

SSH_DIR = STATE / "ssh"
# Per-host DKIM signing key (selector "mail"); DNS publishes old's until `sync` copies it.
DKIM_KEY = "tls/dkim-mail.key"


def say(message: str) -> None:
    print(f"lab: {message}", flush=True)


def _host_key(host: Host) -> str:
    return (host.root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split(" ", 2)[1]


def setup_ssh() -> None:
    """Keys: client -> root@old/new (the suite's testinfra), old -> root@new (tunnel, dsync)."""
    SSH_DIR.mkdir(mode=0o700, exist_ok=True)
    client_key = SSH_DIR / "id_ed25519"
    run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "cutover-lab-client",
            "-f",
            str(client_key),
        ],
        timeout=20,
    )
    old_key = OLD.root / "root/.ssh/id_ed25519"
    run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            f"root@{OLD.fqdn}",
            "-f",
            str(old_key),
        ],
        timeout=20,
    )
    client_pub = (SSH_DIR / "id_ed25519.pub").read_text()
    write(OLD.root / "root/.ssh/authorized_keys", client_pub, 0o600)
    write(
        NEW.root / "root/.ssh/authorized_keys",
        client_pub + old_key.with_suffix(".pub").read_text(),
        0o600,
    )
    known = "".join(
        f"{h.fqdn},{h.key},{h.address},{h.address6} ssh-ed25519 {_host_key(h)}\n" for h in SERVERS
    )
    write(SSH_DIR / "known_hosts", known)
    write(OLD.root / "root/.ssh/known_hosts", known)
    write(
        inventory.SSH_CONFIG,
        render("ssh_config", identity=client_key, known_hosts=SSH_DIR / "known_hosts"),
    )
    # Old's root reaches new like an admin would: `ssh new` or `ssh 198.51.100.20`.
    write(
        OLD.root / "root/.ssh/config",
        render(
            "ssh_config", identity="/root/.ssh/id_ed25519", known_hosts="/root/.ssh/known_hosts"
        ),
    )


def _start_host(host: Host, names: tuple[str, ...]) -> dict[str, int]:
    pids = {name: daemons.start(host, name) for name in names}
    daemons.wait_ready(host, names, pids)
    return pids


def running_lab_checkouts() -> set[Path]:
    """Checkouts whose `.lab/ns/` holds namespace mounts: the owners of the running lab.

    Read from the kernel's mount table, so it cannot go stale: the lab's mount
    and UTS namespaces are files under the owning checkout's `.lab/ns/`.
    """
    owners: set[Path] = set()
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        for line in info:
            point = Path(line.split()[4].replace("\\040", " "))
            for candidate in (point, *point.parents):
                if candidate.name == "ns" and candidate.parent.name == ".lab":
                    owners.add(candidate.parent.parent)
                    break
    return owners


def foreign_owners(verb: str, force: bool) -> list[Path]:
    """Other checkouts owning the running lab that `verb` may remove; refuse otherwise.

    A lab another checkout started is left alone, unless that checkout no
    longer exists (its `lab/` package is gone) or `--force` is given.
    """
    others = sorted(c for c in running_lab_checkouts() if c.resolve() != REPO)
    for other in others:
        if not (other / "lab" / "labctl.py").exists():
            say(f"{verb}: the running lab belongs to {other}, which no longer exists: removing it")
        elif force:
            say(f"{verb}: --force: removing the lab that belongs to {other}")
        else:
            raise LabError(
                f"{verb}: the running lab belongs to another checkout, {other}: leaving it up "
                f"(run `python -m lab down` there, or `python -m lab {verb} --force` to remove it)"
            )
    return others


def up(force: bool = False, profile: str = profiles.DEFAULT) -> None:
    netns.require_root()
    started = time.monotonic()
    others = foreign_owners("up", force)
    if netns.lab_namespaces() or state.LAB_JSON.exists():
        say("cleaning up a previous lab first")
        down(quiet=True, force=force, others=others)
    profiles.select(profile)
    say(f"profile {profile}: {profiles.PROFILES[profile]}")
    for stale in ("hosts", "logs", "secrets", "ssh", "ca"):
        shutil.rmtree(STATE / stale, ignore_errors=True)
    STATE.mkdir(exist_ok=True)
    (STATE / ".gitignore").write_text("*\n")

    netns.create_network()
    for host in HOSTS.values():
        netns.prepare_host_dirs(host)
        netns.create_host_namespaces(host)
    say(f"network: {len(HOSTS)} hosts on a bridge in {SWITCH_NS}, guard routes set")

    pki.create_ca()
    dkim_public = {}
    for host in SERVERS:
        pki.issue(host, host.root / "tls/host.pem", host.root / "tls/host.key")
        dkim_public[host.key] = pki.dkim_key(host.root / DKIM_KEY)
        daemons.configure_server(host)
        legacy_tls.configure(host)
    for host in NAMESERVERS:
        daemons.configure_nameserver(host)
    setup_ssh()
    accounts = seed.mail_passwords(seed.SEED_ACCOUNTS)
    for host in SERVERS:
        daemons.write_mail_users(host, accounts)
    mailboxes = seed.seed_mailboxes()
    messages = seed.write_mail(OLD, mailboxes, start=time.time() - 86400)
    seed.write_web(OLD)
    say(
        f"configs, CA and per-host certificates written; "
        f"{messages} messages and {len(VHOSTS)} vhosts seeded on old"
    )

    pids: dict[str, dict[str, int]] = {}
    # MariaDB's first start (install-db) dominates: all four hosts at once.
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = {
            host.key: pool.submit(
                _start_host, host, tuple(n for n in daemons.daemons_for(host) if n != "pdns")
            )
            for host in (*SERVERS, *NAMESERVERS)
        }
        for key, job in jobs.items():
            pids[key] = job.result()
    say(
        f"daemons answering on old, new; MariaDB up on ns1, ns2 ({time.monotonic() - started:.1f}s)"
    )

    seed.seed_app_database(OLD)
    seed.create_suite_account(SERVERS)
    for host in NAMESERVERS:
        seed.create_pdns_database(host)
    serial = initial_serial()
    zones = [
        (z, zone_records(z, OLD.address, INITIAL_TTL, serial, dkim_public["old"], OLD.address6))
        for z in ZONES
    ]
    zones += [
        (REVERSE_ZONE, reverse_records(INITIAL_TTL, serial)),
        (REVERSE_ZONE6, reverse_records6(INITIAL_TTL, serial)),
    ]
    if profiles.legacy():
        mydns.load_zones(zones)  # MyDNS's soa/rr tables, served through views
    else:
        seed.load_zones([insert_zone_sql(z, records) for z, records in zones])
    for host in NAMESERVERS:
        pids[host.key]["pdns"] = _start_host(host, ("pdns",))["pdns"]
    daemons.wait_dovecot_auth(OLD)
    seed.finish_mail(OLD, mailboxes)
    say(
        f"seeded: app database on old, zones {', '.join(ZONES)} (TTL {INITIAL_TTL}) "
        "on ns1 and by SQL dump on ns2"
    )

    save_state(pids, [user for user, _ in accounts])
    inventory.write([user for user, _ in accounts])
    health.verify(lab_state(), "up")
    elapsed = time.monotonic() - started
    say(
        f"up in {elapsed:.1f}s; inventory {inventory.INVENTORY.relative_to(REPO)}; "
        f"run the suite with: python -m lab exec client -- .venv/bin/pytest ..."
    )


def save_state(pids: dict[str, dict[str, int]], mail_accounts: list[str]) -> None:
    data: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        # The checkout that owns this lab: `down` from any other leaves it alone.
        "owner": str(REPO),
        # How the servers behave (lab/profiles.py): every later verb follows it.
        "profile": profiles.active(),
        "hosts": {
            h.key: {
                "netns": h.netns,
                "address": h.address,
                "address6": h.address6,
                "hostname": h.fqdn,
                "role": h.role,
                "root": str(h.root),
                "logs": str(h.logs),
                "pids": pids.get(h.key, {}),
            }
            for h in HOSTS.values()
        },
        "ports": list(FORWARDED_PORTS),
        "accounts": {
            "mail": {u: str(state.secret_path(f"mail-{u}")) for u in mail_accounts},
            "mysql": {
                "app@localhost": str(state.secret_path("mysql-app")),
                f"report@{seed.LAB_HOSTS_PATTERN}": str(state.secret_path("mysql-report")),
                f"cutover_ro@{seed.LAB_HOSTS_PATTERN}": str(state.secret_path("mysql-ro")),
                f"pdns_ro@{seed.LAB_HOSTS_PATTERN}": str(state.secret_path("pdns-ro")),
                "root@localhost": "unix_socket (no password)",
            },
        },
        "data": {
            "mail": "/srv/vmail/DOMAIN/USER/Maildir (per host)",
            "mysql_socket": "/run/mysqld/mysqld.sock (per host)",
            "web": "/var/www/VHOST (per host)",
        },
        "ca": str(pki.CA_FILE),
        "inventory": str(inventory.INVENTORY),
        "ssh_config": str(inventory.SSH_CONFIG),
        "story": {"ttl": INITIAL_TTL, "synced": False, "cutover": False, "dns": "old"},
        "cutover": {},
        "faults": {},
    }
    state.save(data)


def down(quiet: bool = False, force: bool = False, others: list[Path] | None = None) -> None:
    netns.require_root()
    started = time.monotonic()
    if others is None:
        others = foreign_owners("down", force)
    done = netns.teardown([other / ".lab" / "ns" for other in others])
    for stale in ("hosts", "ns", "ssh", "ca"):
        shutil.rmtree(STATE / stale, ignore_errors=True)
    for path in (state.LAB_JSON, *inventory.FAMILIES.values(), inventory.SSH_CONFIG, pki.CA_FILE):
        path.unlink(missing_ok=True)
    shutil.rmtree(state.SECRETS, ignore_errors=True)
    if not quiet:
        for line in done or ["no lab was running"]:
            say(line)
        say(f"down in {time.monotonic() - started:.1f}s (logs kept in .lab/logs)")


def lab_state() -> dict[str, Any]:
    data = state.load()
    if not data:
        raise LabError("no lab is up (python -m lab up)")
    return data


def status() -> int:
    data = state.load()
    names = netns.lab_namespaces() if os.geteuid() == 0 else []
    if not data:
        say("no lab is up" + (f" (stale namespaces: {' '.join(names)})" if names else ""))
        return 1
    for key, info in data["hosts"].items():
        # After cutover, old's services are stopped on purpose (sshd stays).
        stopped = "stopped-by-cutover" if key == OLD.key and data["story"]["cutover"] else "DEAD"
        live = ", ".join(
            f"{n}={'up' if pid_alive(p) else stopped}({p})" for n, p in info["pids"].items()
        )
        addresses = f"{info['address']} {info.get('address6', '')}"
        say(f"{key:<6} {addresses:<34} {info['hostname']:<20} {live or '-'}")
    story = data["story"]
    say(f"profile: {data.get('profile', profiles.DEFAULT)}")
    say(
        f"story: TTL {story['ttl']}, synced={story['synced']}, cutover={story['cutover']}, "
        f"DNS -> {story['dns']}"
    )
    for name, pid in sorted(data["cutover"].items()):
        say(f"  cutover {name}: {'up' if pid_alive(pid) else 'DEAD'}({pid})")
    say("faults: " + (", ".join(sorted(data["faults"])) or "none"))
    for line in inventory_facts(data):
        say(line)
    say(f"owner: {data.get('owner', '?')}")
    try:
        found = health.conditions(data)
    except LabError as exc:
        found = [health.Condition("postconditions", False, str(exc))]
    say(
        "postconditions" + (" (faults active: some are expected to fail)" if data["faults"] else "")
    )
    for condition in found:
        say("  " + condition.line())
    memory = lab_memory_mib(names)
    say(f"memory: {memory:.0f} MiB RSS over {len(names)} namespaces")
    probe = on(
        CLIENT,
        ["env", f"PYTHONPATH={REPO}", sys.executable, "-m", "lab.probe"],
        timeout=120,
        check=False,
    )
    print(probe.stdout + probe.stderr, end="")
    return 1 if probe.returncode or not all(c.ok for c in found) else 0


SHOWN = 8  # mail accounts listed by `status` (`scale` adds thousands)


def inventory_facts(data: dict[str, Any]) -> list[str]:
    """What an inventory for this lab needs: addresses, accounts, zones, secrets, CA, ssh, DKIM."""

    def shown(path: str) -> str:
        try:
            return str(Path(path).relative_to(REPO))
        except ValueError:
            return path

    hosts = data["hosts"]
    ns = ", ".join(h.address for h in NAMESERVERS)
    accounts = data["accounts"]
    lines = [
        f"inventory for this lab (written as {shown(data['inventory'])}; secrets are "
        "password_file: paths, relative to the inventory):",
        *(
            f"  {key}: {info['address']} and {info.get('address6', '-')} ({info['hostname']}), "
            f"ssh: ssh://root@{info['address']}"
            for key, info in hosts.items()
            if key in (OLD.key, NEW.key)
        ),
        f"  run from: {CLIENT.netns} ({CLIENT.address}, {CLIENT.address6}); "
        f"ssh_config: {shown(data['ssh_config'])}",
        f"  tls.ca_file: {shown(data['ca'])}",
        "  mail.accounts (user, password_file):",
        *(f"    {user}  {shown(path)}" for user, path in list(accounts["mail"].items())[:SHOWN]),
        *(
            [f"    ... and {len(accounts['mail']) - SHOWN} more (`scale`): see the inventory"]
            if len(accounts["mail"]) > SHOWN
            else []
        ),
        "  MySQL accounts (user@host, password_file; cutover_ro is mysql.admin, "
        "pdns_ro the dns.sql user):",
        *(f"    {user}  {shown(path)}" for user, path in accounts["mysql"].items()),
        f"  dns.zones: {', '.join(ZONES)} (nameservers {ns}; `scale` adds more)",
        "  mysql.databases: app; mysql.socket: /run/mysqld/mysqld.sock",
        "  dns.sql: per nameserver, schema powerdns, host = its address, port 3306, "
        "database pdns, user pdns_ro",
        f"  outbound: reverse zones {REVERSE_ZONE}, {REVERSE_ZONE6} "
        f"(reverse_nameservers {ns}); DKIM selector "
        "mail, dkim_key_file /etc/ssl/private/dkim-{selector}.key on old and new",
        f"  ports forwarded at cutover: {' '.join(str(p) for p in data['ports'])} "
        "(IPv4 and IPv6; `cutover --ipv4-only`: IPv4 only)",
        "  inventories: inventory.yaml (both families), inventory-ipv4.yaml, inventory-ipv6.yaml",
    ]
    return lines


def lab_memory_mib(names: list[str]) -> float:
    total_kib = 0
    for name in names:
        for pid in run(["ip", "netns", "pids", name], timeout=10, check=False).stdout.split():
            try:
                with open(f"/proc/{pid}/status", encoding="utf-8") as status_file:
                    for line in status_file:
                        if line.startswith("VmRSS:"):
                            total_kib += int(line.split()[1])
            except FileNotFoundError:
                continue
    return total_kib / 1024
