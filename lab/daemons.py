"""The daemons of each host: their config files, how to start, stop and
reload them, and when they count as ready (their ports are listening).
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import shutil
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lab import legacy_mail, legacy_web, state
from lab.render import render, write
from lab.run import LabError, on, pid_alive, spawn, wait_until
from lab.topology import STATE, ZONES, Host


@dataclass(frozen=True)
class Daemon:
    name: str
    argv: tuple[str, ...]
    tcp_ports: tuple[int, ...]
    prepare: Callable[[Host], None] = field(default=lambda host: None)


def _run_dir(path: str, owner: str = "root") -> Callable[[Host], None]:
    def prepare(host: Host) -> None:
        on(host, ["install", "-d", "-o", owner, "-g", owner, "-m", "0755", path], timeout=10)

    return prepare


def _prepare_mariadb(host: Host) -> None:
    _run_dir("/run/mysqld", "mysql")(host)
    if not (host.root / "var/lib/mysql/mysql").is_dir():
        on(
            host,
            [
                "mariadb-install-db",
                "--defaults-file=/etc/mysql/my.cnf",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            timeout=120,
        )


def _prepare_postfix(host: Host) -> None:
    # `postfix check` creates the queue directories, including private/ where
    # Dovecot puts its LMTP and auth sockets: so Postfix is prepared first.
    on(host, ["install", "-d", "-o", "postfix", "-g", "postfix", "/var/lib/postfix"], timeout=10)
    on(host, ["postfix", "check"], timeout=30)


DAEMONS = {
    d.name: d
    for d in (
        Daemon(
            "mariadb", ("mariadbd", "--defaults-file=/etc/mysql/my.cnf"), (3306,), _prepare_mariadb
        ),
        Daemon("dovecot", ("dovecot", "-F"), (110, 143, 993, 995)),
        Daemon("postfix", ("postfix", "start-fg"), (25, 465, 587), _prepare_postfix),
        Daemon(
            "apache",
            ("apache2", "-d", "/etc/apache2", "-f", "/etc/apache2/apache2.conf", "-DFOREGROUND"),
            (80,),
            _run_dir("/run/apache2"),
        ),
        Daemon("sshd", ("/usr/sbin/sshd", "-D", "-e"), (22,), _run_dir("/run/sshd")),
        Daemon("pdns", ("pdns_server",), (53,), _run_dir("/run/pdns", "pdns")),
    )
}
SERVER_DAEMONS = ("mariadb", "postfix", "dovecot", "apache", "sshd")
NAMESERVER_DAEMONS = ("mariadb", "pdns")
DEFAULT_AUTH_MECHANISMS = "plain login"


def daemons_for(host: Host) -> tuple[str, ...]:
    return {"server": SERVER_DAEMONS, "nameserver": NAMESERVER_DAEMONS}.get(host.role, ())


# --- configuration ---------------------------------------------------------


def ssha512(password: str) -> str:
    """Dovecot's {SSHA512} scheme: base64(sha512(password + salt) + salt)."""
    salt = os.urandom(8)
    digest = hashlib.sha512(password.encode() + salt).digest()
    return "{SSHA512}" + base64.b64encode(digest + salt).decode()


def write_mail_users(host: Host, accounts: Iterable[tuple[str, str]]) -> None:
    """Dovecot's passwd-file and Postfix's mailbox map for (user, password) pairs."""
    vmail = pwd.getpwnam("vmail")
    users, boxes = [], []
    for user, password in accounts:
        local, domain = user.split("@")
        home = f"/srv/vmail/{domain}/{local}"
        users.append(f"{user}:{ssha512(password)}:{vmail.pw_uid}:{vmail.pw_gid}::{home}::")
        boxes.append(f"{user} OK")
    write(host.root / "etc/dovecot/users", "\n".join(users) + "\n", 0o640)
    # Dovecot's auth process runs as the dovecot user.
    shutil.chown(host.root / "etc/dovecot/users", "root", "dovecot")
    write(host.root / "etc/postfix/vmailbox", "\n".join(boxes) + "\n")


def configure_server(host: Host) -> None:
    """Dovecot, Postfix, Apache, MariaDB and sshd configs for a mail/web/db host."""
    etc = host.root / "etc"
    common = {"key": host.key, "fqdn": host.fqdn, "logs": host.logs}
    vmail_uid = pwd.getpwnam("vmail").pw_uid
    write(
        etc / "dovecot/dovecot.conf",
        render(
            "dovecot.conf",
            **common,
            protocols="imap pop3 lmtp",
            vmail_uid=vmail_uid,
            auth_mechanisms=DEFAULT_AUTH_MECHANISMS,
        ),
    )
    (etc / "dovecot/local.d").mkdir(exist_ok=True)
    # Postfix's own support files (postfix-files, dynamicmaps.cf) come from the package.
    shutil.copytree("/etc/postfix", etc / "postfix", dirs_exist_ok=True)
    write(
        etc / "postfix/main.cf",
        render("postfix-main.cf", **common, state=STATE, domains=", ".join(ZONES)),
    )
    write(etc / "postfix/master.cf", render("postfix-master.cf"))
    write(
        etc / "apache2/apache2.conf",
        legacy_web.apache2_conf(host, render("apache2.conf", **common)),
    )
    (etc / "apache2/sites-enabled").mkdir(exist_ok=True)
    (host.root / "srv/vmail").mkdir(exist_ok=True)
    shutil.chown(host.root / "srv/vmail", "vmail", "vmail")
    configure_mariadb(host)
    configure_sshd(host)
    legacy_mail.configure_old(host)


def configure_mariadb(host: Host) -> None:
    etc = host.root / "etc"
    write(etc / "mysql/my.cnf", render("my.cnf", key=host.key, fqdn=host.fqdn))
    (etc / "mysql/local.d").mkdir(exist_ok=True)
    from lab import legacy_mysql  # imported here: it calls back into this module

    legacy_mysql.configure(host)
    shutil.chown(host.root / "var/lib/mysql", "mysql", "mysql")


def configure_sshd(host: Host) -> None:
    etc = host.root / "etc/ssh"
    for name in ("ssh_config", "moduli"):
        if os.path.exists(f"/etc/ssh/{name}"):
            shutil.copyfile(f"/etc/ssh/{name}", etc / name)
    write(etc / "sshd_config", render("sshd_config", key=host.key, fqdn=host.fqdn))
    key = etc / "ssh_host_ed25519_key"
    if not key.exists():
        on(
            host,
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"root@{host.fqdn}",
                "-f",
                "/etc/ssh/ssh_host_ed25519_key",
            ],
            timeout=20,
        )
    (host.root / "root/.ssh").mkdir(mode=0o700, parents=True, exist_ok=True)


def configure_nameserver(host: Host) -> None:
    configure_mariadb(host)
    password = state.new_secret(f"pdns-{host.key}-backend")
    write(
        host.root / "etc/powerdns/pdns.conf",
        render(
            "pdns.conf",
            key=host.key,
            fqdn=host.fqdn,
            address=host.address,
            address6=host.address6,
            pdns_password=password,
        ),
        0o640,
    )
    shutil.chown(host.root / "etc/powerdns/pdns.conf", "root", "pdns")


# --- processes ---------------------------------------------------------------


def listening_ports(host: Host) -> set[int]:
    """TCP ports something listens on inside `host` (seen by `ss`, not probed)."""
    out = on(host, ["ss", "-Hltn"], timeout=10).stdout
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines() if line.strip()}


def start(host: Host, name: str) -> int:
    """Start one daemon on `host` (detached, logging to .lab/logs/HOST/) and return its PID."""
    daemon = DAEMONS[name]
    daemon.prepare(host)
    return spawn(host, daemon.argv, host.logs / f"{name}.out")


def wait_ready(host: Host, names: Iterable[str], pids: dict[str, int], timeout: float = 30) -> None:
    wanted = {port for name in names for port in DAEMONS[name].tcp_ports}

    def ready() -> bool:
        for name in names:
            if not pid_alive(pids[name]):
                raise LabError(f"{host.key}: {name} exited; see {host.logs}/{name}.out")
        return wanted <= listening_ports(host)

    wait_until(f"{host.key}: ports {sorted(wanted)}", ready, timeout=timeout)


def stop(pid: int, timeout: float = 15.0) -> None:
    """Stop a daemon by PID (never by name) and wait until it is gone."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def reload(host: Host, name: str, pid: int) -> None:
    """Make a running daemon re-read its config."""
    if name == "dovecot":
        on(host, ["doveadm", "reload"], timeout=20)
        wait_dovecot_greeting(host)
    elif name == "postfix":
        on(host, ["postfix", "reload"], timeout=20)
    elif name == "apache":
        # Graceful restart: children finish their requests, then re-read config.
        os.kill(pid, signal.SIGUSR1)
        time.sleep(0.3)
    else:
        raise LabError(f"no reload for {name}")


def mysql(host: Host, sql: str, *, database: str | None = None, timeout: float = 60) -> str:
    """Run SQL as root over the host's unix socket (unix_socket auth); return TSV."""
    cmd = ["mariadb", "--batch", "--skip-column-names", *([database] if database else [])]
    return on(host, cmd, input=sql, timeout=timeout).stdout


def wait_dovecot_greeting(host: Host) -> None:
    """After a reload, logins greet "Waiting for authentication process" until the
    restarted auth process answers: wait (on the host's loopback) for the real
    greeting on IMAPS, or on POP3S when a fault has switched IMAP off."""

    def greets() -> bool:
        for port in (993, 995):
            result = on(
                host,
                [
                    "sh",
                    "-c",
                    "printf 'a LOGOUT\\r\\nQUIT\\r\\n' | timeout 5 "
                    f"openssl s_client -quiet -crlf -connect 127.0.0.1:{port} "
                    "2>/dev/null",
                ],
                timeout=10,
                check=False,
            )
            # "<fqdn> IMAP/POP3 ready", or "Dovecot ready." on the legacy old host.
            if " ready" in result.stdout:
                return True
        return False

    wait_until(f"{host.key}: IMAP/POP3 greeting", greets, timeout=20)


def wait_dovecot_auth(host: Host) -> None:
    """Dovecot's doveadm answers only once its master has set up the auth sockets."""
    wait_until(
        f"{host.key}: doveadm",
        lambda: (
            on(
                host,
                ["doveadm", "auth", "lookup", "postmaster@example.test"],
                timeout=10,
                check=False,
            ).returncode
            in (0, 67)
        ),
        timeout=20,
    )
