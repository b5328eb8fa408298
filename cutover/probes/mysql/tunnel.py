"""The old host's MySQL socket during cutover: does it lead to the new server?

The seed's forwarding: old socket -> socat -> `ssh -L 3307:localhost:3306`
-> new mysqld, so applications on the old host keep their `'u'@'localhost'`
logins. This probe runs ON the old host (testinfra host spec `old.ssh`): one
shell script checks the socket (`test -S`), names the process holding it
(`ss -xlp`), and logs in through it with the mariadb/mysql client as the
account, reading the password from stdin into MYSQL_PWD (never on a command
line, never in a file). `diagnose()` turns what it saw into the named
failure mode (docs/semantics.md, "MySQL and MariaDB").

The login goes through the socket with the host's own client on purpose: a
PyMySQL session from here (cutover.probes.mysql.session) could not test it.

>>> parse_output("socket: ok\\nrow: app@localhost\\tnew.example.test\\nrc: 0\\n").current_user
'app@localhost'
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cutover.model.inventory import MysqlAccount
from cutover.model.settings import ProbeSettings
from cutover.probes.connect import ProbeError, timed_out
from cutover.probes.mysql.session import ServerFacts
from cutover.untrusted import shown

__all__ = ["TunnelLogin", "diagnose", "parse_output", "probe_tunnel_login", "remote_script"]

_ERROR = re.compile(r"ERROR (?P<code>\d+) \([0-9A-Z]+\)(?: at line \d+)?: (?P<text>.*)")
# A client that starts TLS reports the server's refusal inside its own 2002/2026:
# "... The authenticity of the following error cannot be verified: 1130 - Host ...".
_INNER_ERROR = re.compile(r"cannot be verified: (?P<code>\d+) - (?P<text>.*)")


@dataclass(frozen=True)
class TunnelLogin:
    """What one login through the old host's socket showed."""

    host: str  # the old host's ssh spec
    socket: str
    socket_state: str  # ok | missing | not-a-socket
    socket_detail: str = ""  # `ls -ld` of a non-socket
    holder: str = ""  # command line of the process listening on the socket
    client_found: bool = True
    current_user: str | None = None
    hostname: str | None = None
    error_code: int | None = None
    error: str = ""
    exit_status: int | None = None

    @property
    def logged_in(self) -> bool:
        return self.current_user is not None


def remote_script(socket: str, user: str, *, connect_timeout: float, timeout: float) -> str:
    """The read-only shell script run on the old host (the password comes on stdin)."""
    sock, who = shlex.quote(socket), shlex.quote(user)
    query = shlex.quote("SET SESSION TRANSACTION READ ONLY; SELECT CURRENT_USER(), @@hostname")
    return f"""s={sock}
if [ ! -e "$s" ]; then echo "socket: missing"; exit 0; fi
if [ ! -S "$s" ]; then echo "socket: not-a-socket $(ls -ld "$s" 2>&1)"; exit 0; fi
echo "socket: ok"
pid=$(ss -xlpn 2>/dev/null | grep -F " $s " | sed -n 's/.*pid=\\([0-9][0-9]*\\).*/\\1/p' | head -n1)
if [ -n "$pid" ]; then echo "holder: $(tr '\\0' ' ' </proc/$pid/cmdline 2>/dev/null)"; fi
client=$(command -v mariadb || command -v mysql) || {{ echo "client: missing"; exit 0; }}
IFS= read -r MYSQL_PWD || true
if [ -n "$MYSQL_PWD" ]; then export MYSQL_PWD; else unset MYSQL_PWD; fi
out=$(timeout {timeout:g} "$client" --no-defaults --protocol=socket --socket="$s" \\
  --user={who} --connect-timeout={max(1, round(connect_timeout))} --batch \\
  --skip-column-names -e {query} 2>&1)
rc=$?
printf '%s\\n' "$out" | sed 's/^/row: /'
echo "rc: $rc"
"""


def parse_output(text: str, *, host: str = "", socket: str = "") -> TunnelLogin:
    """Read the script's tagged lines."""
    facts: dict[str, Any] = {"host": host, "socket": socket, "socket_state": "unknown"}
    for line in text.splitlines():
        tag, _, value = line.partition(": ")
        if tag == "socket":
            state, _, detail = value.partition(" ")
            facts["socket_state"], facts["socket_detail"] = state, shown(detail)
        elif tag == "holder":
            facts["holder"] = shown(value.strip())
        elif tag == "client":
            facts["client_found"] = False
        elif tag == "rc":
            facts["exit_status"] = int(value) if value.strip().isdigit() else None
        elif tag == "row":
            error = _ERROR.match(value)
            if error:
                inner = _INNER_ERROR.search(error.group("text")) or error
                facts["error_code"] = int(inner.group("code"))
                facts["error"] = shown(inner.group("text").strip())
            elif "\t" in value:
                user, _, hostname = value.partition("\t")
                facts["current_user"] = shown(user)
                facts["hostname"] = shown(hostname.strip())
            elif value.strip() and not facts.get("error"):
                facts["error"] = shown(value.strip())
    return TunnelLogin(**facts)


def _ssh_command(
    spec: str | None, ssh_config: Path | None, connect_timeout: float, remote: str
) -> str:
    """The shell command that runs `remote` on the old host (testinfra's own ssh invocation)."""
    import testinfra
    from testinfra.backend.local import LocalBackend
    from testinfra.backend.ssh import SshBackend

    if not spec:
        raise ProbeError("the inventory gives no old.ssh (testinfra host spec of the old host)")
    options: dict[str, Any] = {
        "timeout": max(1, round(connect_timeout)),
        "ssh_extra_args": "-o BatchMode=yes",
    }
    if ssh_config:
        options["ssh_config"] = str(ssh_config)
    backend = testinfra.get_host(spec, **options).backend
    if isinstance(backend, SshBackend):
        # testinfra runs commands without stdin or a timeout (its #716); build
        # its ssh command line and run it here, with both.
        command, args = backend._build_ssh_command(remote)
        return str(backend.get_command(" ".join(command), *args))
    if isinstance(backend, LocalBackend):
        return "sh -c " + shlex.quote(remote)
    raise ProbeError(f"old.ssh {spec!r}: the tunnel probe needs an ssh:// or local:// host")


def _password_line(account: MysqlAccount) -> bytes:
    # Revealed in a frame of its own, so no frame of a failing probe holds
    # the password where `--showlocals` would print it.
    return (account.password.reveal() if account.has_password else "").encode() + b"\n"


def probe_tunnel_login(
    old_ssh: str | None, socket: str, account: MysqlAccount, settings: ProbeSettings
) -> TunnelLogin:
    """Log in through `socket` on the old host (testinfra spec `old_ssh`) as `account`.

    `ProbeError`: the host was not reached.
    """
    client_timeout = settings.connect_timeout + settings.operation_timeout
    remote = remote_script(
        socket,
        account.user,
        connect_timeout=settings.connect_timeout,
        timeout=client_timeout,
    )
    command = _ssh_command(old_ssh, settings.ssh_config, settings.connect_timeout, remote)
    limit = settings.connect_timeout + client_timeout + 5
    where = f"old host {old_ssh}"
    process = subprocess.Popen(
        command,
        shell=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(_password_line(account), timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise ProbeError(timed_out(limit, f"running the probe on {where}")) from None
    stdout = out.decode("utf-8", "replace")
    if process.returncode == 255 and "socket:" not in stdout:
        reason = err.decode("utf-8", "replace").strip().splitlines()
        said = shown(reason[-1]) if reason else "exit 255"
        raise ProbeError(f"cannot ssh to {where}: {said}")
    return parse_output(stdout, host=str(old_ssh), socket=socket)


# 1275: the server runs with secure_auth and the account's hash is pre-4.1;
# 2049: the client refuses the pre-4.1 protocol (its own secure_auth option).
PRE_41_REFUSED = frozenset({1275, 2049})


def _pre_41_refused(
    expected_user: str, code: int | None, said: str, new_facts: ServerFacts | None
) -> str:
    """The login failed on an account whose password hash on new is pre-4.1."""
    if code == 2049:
        refused_by = "the mariadb/mysql client on the old host refuses the pre-4.1 protocol"
    elif code == 1275 or (
        new_facts is not None and new_facts.secure_auth is not None and new_facts.refuses_pre_41
    ):
        refused_by = "secure_auth is ON on the new server, which refuses such accounts"
    else:
        refused_by = "the password or the client does not fit it"
    user, _, host = expected_user.rpartition("@")
    return (
        f"login refused ({said}): {expected_user} has a pre-4.1 password hash on new "
        f"(16 hex digits, mysql_old_password: copied from an old_passwords=1 server) and "
        f"{refused_by}; PHP's mysqlnd refuses pre-4.1 accounts too — re-set the password on "
        f"new with a 4.1 hash (with old_passwords=0: ALTER USER '{user}'@'{host}' IDENTIFIED "
        "BY '...'); see MYSQL06"
    )


def _holder_name(holder: str) -> str:
    return os.path.basename(holder.split(" ", 1)[0]) if holder else ""


def diagnose(
    login: TunnelLogin,
    account: MysqlAccount,
    new_facts: ServerFacts | None,
    new_hostname: str | None,
    old_hostname: str | None = None,
) -> str | None:
    """None if the login went through the tunnel to the new server as u@localhost, else why not."""
    expected_user = f"{account.user}@localhost"
    sock = f"{login.socket} on {login.host}"
    holder = f" (held by: {login.holder})" if login.holder else ""
    if login.socket_state == "missing":
        return (
            f"socket {sock} does not exist: socat is not listening on it "
            f"(cutover script: socat UNIX-LISTEN:{login.socket},fork TCP:127.0.0.1:3307)"
        )
    if login.socket_state == "not-a-socket":
        return (
            f"{sock} exists but is not a socket ({login.socket_detail}): socat cannot listen there"
        )
    if not login.client_found:
        return f"no mariadb or mysql client on {login.host}: cannot test the socket"
    if login.logged_in:
        user, hostname = login.current_user or "", login.hostname or ""
        if new_hostname and hostname != new_hostname:
            owner = _holder_name(login.holder)
            return (
                f"{sock} leads to {hostname!r}, not the new server {new_hostname!r}"
                + (f": the old server ({owner}) still owns the socket" if owner else "")
                + (
                    " — the old MySQL was not stopped"
                    if old_hostname and hostname == old_hostname
                    else ""
                )
            )
        if not new_hostname:
            return f"logged in as {user} on {hostname!r}, but the new server's hostname is unknown"
        if user == expected_user:
            return None
        if user.startswith("@"):
            return (
                f"logged in as the anonymous account ''@'{user[1:]}', not {expected_user}: "
                f"an anonymous account shadows {account.user!r} on the new server "
                "(DROP USER ''@'localhost', or create the account)"
            )
        if user.endswith("@127.0.0.1") or user.endswith("@::1"):
            return (
                f"logged in as {user}, not {expected_user}: the tunnel's 127.0.0.1 was not "
                "mapped to localhost (skip_name_resolve ON on new), a stand-in "
                f"account {user} matched instead"
            )
        return f"logged in as {user}, not {expected_user} (another account matched)"
    code, error = login.error_code, login.error
    said = f"({code}) {error}" if code else error or f"client exit status {login.exit_status}"
    if code == 2002:
        return f"nothing accepts connections on {sock}{holder}: socat is not running ({said})"
    if code in (2013, 2006, 2026) or "lost connection" in error.lower():
        return (
            f"{sock} accepted the connection{holder} but no MySQL greeting came back: "
            "socat is up but the ssh tunnel behind it (127.0.0.1:3307 -> new localhost:3306) "
            f"is down ({said})"
        )
    plugin = new_facts.plugin_of(account.user, "localhost") if new_facts else None
    if code in PRE_41_REFUSED or plugin == "mysql_old_password":
        return _pre_41_refused(expected_user, code, said, new_facts)
    if code in (1045, 1698, 1130):
        if plugin in ("unix_socket", "auth_socket"):
            return (
                f"{expected_user} uses {plugin} authentication on new, which cannot pass a "
                f"TCP tunnel ({said}): give it a password or run the application on the new host"
            )
        if (
            "'127.0.0.1'" in error
            or "'::1'" in error
            or (new_facts is not None and new_facts.skip_name_resolve)
        ):
            return (
                f"login refused as '{account.user}'@'127.0.0.1' ({said}): skip_name_resolve "
                "is ON on the new server, so the tunnel's 127.0.0.1 does not match "
                f"'{account.user}'@'localhost' — turn skip_name_resolve OFF on new"
            )
        if new_facts is not None and new_facts.plugin_of(account.user, "localhost") is None:
            anonymous = (
                " (an anonymous ''@'localhost' exists and matched)"
                if ("localhost" in new_facts.anonymous_hosts)
                else ""
            )
            return (
                f"login refused ({said}): account {expected_user} does not exist on the new "
                f"server{anonymous} — grants not migrated (see MYSQL04)"
            )
        return f"login refused through {sock} ({said}): wrong password on new? (see MYSQL04)"
    if login.exit_status == 124:
        return f"the client timed out logging in through {sock}{holder}"
    return f"login through {sock} failed: {said}"
