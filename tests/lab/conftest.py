"""Helpers for the lab's self-tests (the lab fixtures live in tests/conftest.py).

Observations use the servers' own tools, run on a lab host through
`python -m lab exec`: dig, openssl s_client, curl, doveadm, mariadb.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

from tests.suite import REPO

CA_FILE = REPO / ".lab" / "ca.pem"
OLD_IP, NEW_IP, NS1_IP, NS2_IP = "198.51.100.10", "198.51.100.20", "198.51.100.53", "198.51.100.54"
# The same hosts' IPv6 addresses (the lab is dual stack: 2001:db8:5100::/64).
OLD_IP6, NEW_IP6 = "2001:db8:5100::10", "2001:db8:5100::20"
NS1_IP6, NS2_IP6 = "2001:db8:5100::53", "2001:db8:5100::54"


def observe(host: str, *command: str, env: dict[str, str] | None = None) -> str:
    """Run a command on a lab host, unchecked; return stdout then stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "lab", "exec", host, "--", *command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )
    return (result.stdout + result.stderr).strip()


def greeting(address: str, port: int, starttls: str | None = None) -> str:
    """`verify=N first-line` as openssl s_client sees the server from the client, or why not."""
    goodbye = "a LOGOUT" if port in (143, 993) else "QUIT"
    command = [
        "openssl",
        "s_client",
        "-connect",
        f"[{address}]:{port}" if ":" in address else f"{address}:{port}",
        "-CAfile",
        str(CA_FILE),
        "-servername",
        "mail.example.test",
        "-verify_hostname",
        "mail.example.test",
        "-ign_eof",
        "-crlf",
        *(["-starttls", starttls] if starttls else []),
    ]
    script = f"printf '{goodbye}\\r\\n' | timeout 10 {shlex.join(command)} 2>&1"
    output = observe("client", "sh", "-c", script)
    if "Connection refused" in output:
        return "refused"
    if "Didn't find STARTTLS" in output:
        return "no STARTTLS offered"
    verify = re.search(r"Verify return code: (\d+ \([^)]*\))", output)
    first = re.search(r"^(\* OK.*|\+OK.*|220 .*)$", output, re.MULTILINE)
    return f"verify={verify.group(1) if verify else '?'} {first.group(1) if first else '?'}"


def dig(server: str, name: str, rtype: str, *options: str) -> str:
    return observe(
        "client", "dig", "+norecurse", "+time=3", "+tries=1", f"@{server}", name, rtype, *options
    )


def app_login_via_old_socket() -> str:
    """app@localhost logging in on the old host through its MySQL socket."""
    password = (REPO / ".lab/secrets/mysql-app").read_text().strip()
    output = observe(
        "old",
        "mariadb",
        "--batch",
        "--skip-column-names",
        "-u",
        "app",
        "-e",
        "SELECT CURRENT_USER(), @@hostname",
        env={"MYSQL_PWD": password},
    )
    return output.splitlines()[0] if output else ""
