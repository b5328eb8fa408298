"""The tunnel probe's output parsing and failure-mode diagnosis: pure logic."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cutover.model.inventory import MysqlAccount
from cutover.probes.mysql.session import ServerFacts
from cutover.probes.mysql.tunnel import TunnelLogin, diagnose, parse_output, remote_script

APP = MysqlAccount(user="app", host="localhost", via_socket=True)
SOCKET = "/run/mysqld/mysqld.sock"
NEW = ServerFacts(
    where="mysql 198.51.100.20:3306 (new IP)",
    hostname="new.example.test",
    version="10.11.6-MariaDB",
    skip_name_resolve=False,
    skip_networking=False,
    bind_address="0.0.0.0",
    accounts=(("app", "localhost", "mysql_native_password"), ("root", "localhost", "")),
)
SOCAT = f"socat UNIX-LISTEN:{SOCKET},fork TCP:127.0.0.1:3307"


def observed(*lines: str) -> TunnelLogin:
    return parse_output("\n".join(lines) + "\n", host="ssh://root@old", socket=SOCKET)


def why(login: TunnelLogin, facts: ServerFacts | None = NEW) -> str | None:
    return diagnose(login, APP, facts, "new.example.test", "old.example.test")


def test_healthy_login_through_the_tunnel() -> None:
    login = observed(
        "socket: ok", f"holder: {SOCAT}", "row: app@localhost\tnew.example.test", "rc: 0"
    )
    assert login.current_user == "app@localhost" and login.hostname == "new.example.test"
    assert login.holder == SOCAT
    assert why(login) is None


def test_socket_missing_or_not_a_socket() -> None:
    assert "does not exist" in (why(observed("socket: missing")) or "")
    text = why(observed(f"socket: not-a-socket -rw-r--r-- 1 root root 0 {SOCKET}")) or ""
    assert "is not a socket" in text and "-rw-r--r--" in text


def test_socat_up_tunnel_down() -> None:
    login = observed(
        "socket: ok",
        f"holder: {SOCAT}",
        "row: ERROR 2013 (HY000): Lost connection to server at 'handshake: reading "
        "initial communication packet', system error: 95",
        "rc: 1",
    )
    assert login.error_code == 2013
    text = why(login) or ""
    assert "socat is up but the ssh tunnel" in text and "TCP:127.0.0.1:3307" in text


def test_nothing_listening_on_the_socket() -> None:
    login = observed(
        "socket: ok",
        f"row: ERROR 2002 (HY000): Can't connect to local server through socket '{SOCKET}' (111)",
        "rc: 1",
    )
    assert "socat is not running" in (why(login) or "")


def test_skip_name_resolve_refusal() -> None:
    login = observed(
        "socket: ok",
        "row: ERROR 1045 (28000): Access denied for user 'app'@'127.0.0.1' (using password: YES)",
        "rc: 1",
    )
    text = why(login) or ""
    assert "skip_name_resolve" in text and "'app'@'127.0.0.1'" in text
    stand_in = observed("socket: ok", "row: app@127.0.0.1\tnew.example.test", "rc: 0")
    assert "skip_name_resolve ON" in (why(stand_in) or "")


def test_unix_socket_account_cannot_pass() -> None:
    facts = replace(NEW, accounts=(("app", "localhost", "unix_socket"),))
    login = observed(
        "socket: ok",
        "row: ERROR 1698 (28000): Access denied for user 'app'@'localhost'",
        "rc: 1",
    )
    assert "unix_socket authentication" in (why(login, facts) or "")


def test_anonymous_account_shadows() -> None:
    login = observed("socket: ok", "row: @localhost\tnew.example.test", "rc: 0")
    assert "anonymous account" in (why(login) or "")
    facts = replace(NEW, accounts=(("", "localhost", ""),))
    refused = observed(
        "socket: ok",
        "row: ERROR 1045 (28000): Access denied for user 'app'@'localhost' (using password: YES)",
    )
    text = why(refused, facts) or ""
    assert "does not exist on the new server" in text and "anonymous" in text


def test_old_server_still_owns_the_socket() -> None:
    login = observed(
        "socket: ok",
        "holder: /usr/sbin/mariadbd --defaults-file=/etc/mysql/my.cnf",
        "row: app@localhost\told.example.test",
        "rc: 0",
    )
    text = why(login) or ""
    assert "not the new server" in text and "mariadbd" in text and "not stopped" in text


def test_unknown_new_hostname_is_not_a_pass() -> None:
    login = observed("socket: ok", "row: app@localhost\tsomewhere", "rc: 0")
    assert diagnose(login, APP, None, None) is not None


@pytest.mark.parametrize("password", ["", "p'a\"s s$(x)`y`"])
def test_password_never_in_the_script(password: str) -> None:
    script = remote_script(SOCKET, "app", connect_timeout=5, timeout=10)
    assert "read -r MYSQL_PWD" in script
    assert "--password" not in script and " -p" not in script
    if password:
        assert password not in script


def test_refusal_inside_a_tls_error() -> None:
    # MariaDB 10.11's client starts TLS and wraps the server's refusal (seen in the lab).
    login = observed(
        "socket: ok",
        f"holder: {SOCAT}",
        "row: ERROR 2002 (HY000): Received error packet before completion of TLS handshake. "
        "The authenticity of the following error cannot be verified: 1130 - Host '127.0.0.1' "
        "is not allowed to connect to this MariaDB server",
        "rc: 1",
    )
    assert login.error_code == 1130
    text = why(login) or ""
    assert "skip_name_resolve is ON" in text and "'app'@'127.0.0.1'" in text
