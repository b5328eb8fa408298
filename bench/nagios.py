"""The monitoring-plugins way: one `check_*` process per port and IP, as a Nagios loop runs them.

`loop_script` writes a plain shell script that runs the plugins one after
another (what a Nagios/Icinga check cycle amounts to on one host); the
bench times that script as one child process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bench.raw import addresses, questions

PLUGINS = Path("/usr/lib/nagios/plugins")


def _port_check(service: dict[str, Any], ip: str, data: dict[str, Any], cnf: Path) -> str:
    port, tls, protocol = service["port"], service.get("tls", "none"), service["protocol"]
    host = f"-H {ip} -p {port}"
    if protocol == "smtp":
        return f"check_ssmtp {host}" if tls == "implicit" else f"check_smtp {host} -S"
    if protocol == "imap":
        return f"check_simap {host}" if tls == "implicit" else f"check_imap {host}"
    if protocol == "pop3":
        return f"check_spop {host}" if tls == "implicit" else f"check_pop {host}"
    if protocol == "http":
        name = (data.get("hostnames") or [ip])[0]
        return f"check_http -H {name} -I {ip} -p {port}"
    return f"check_mysql -H {ip} -P {port} -f {cnf}"


def endpoints(inventory: Path) -> list[tuple[str, str]]:
    """(service name, address) for each service on each address of both sides."""
    data = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    return [(s["name"], ip) for s in data["services"] for ip in addresses(data)]


def _mysql_options(inventory: Path, data: dict[str, Any], scratch: Path) -> Path:
    """A client options file for check_mysql, so no password lands on a command line."""
    admin = data["mysql"]["admin"]
    password = (inventory.parent / admin["password_file"]).read_text(encoding="utf-8").strip()
    cnf = scratch / "check_mysql.cnf"
    cnf.touch(mode=0o600)
    cnf.write_text(f"[client]\nuser={admin['user']}\npassword={password}\n", encoding="utf-8")
    return cnf


def loop_script(inventory: Path, scratch: Path, *, scale: bool) -> tuple[Path, int]:
    """The loop as a shell script, and how many plugin processes it runs.

    Bare: every port on every address (the lab's 18 ports on two stacks:
    36). At scale also each vhost on each IP (check_http) and each DNS
    question to each nameserver (check_dig), the same questions the suite
    asks.
    """
    data = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    ips = addresses(data)
    cnf = _mysql_options(inventory, data, scratch)
    checks = [_port_check(s, ip, data, cnf) for s in data["services"] for ip in ips]
    if scale:
        http_port = next(s["port"] for s in data["services"] if s["protocol"] == "http")
        for vhost in data.get("http", {}).get("vhosts", []):
            checks += [f"check_http -H {vhost['host']} -I {ip} -p {http_port}" for ip in ips]
        checks += dig_checks(data, len(data["dns"]["zones"]))
    script = scratch / ("nagios-scale.sh" if scale else "nagios-ports.sh")
    lines = ["#!/bin/sh", f"cd {PLUGINS}"]
    lines += [f"./{check} >/dev/null" for check in checks]
    script.write_text("\n".join([*lines, "exit 0", ""]), encoding="utf-8")
    return script, len(checks)


def dig_checks(data: dict[str, Any], zones: int) -> list[str]:
    return [
        f"check_dig -H {server} -l {name} -T {rdtype}"
        for zone in data["dns"]["zones"][:zones]
        for server in zone["nameservers"]
        for name, rdtype in questions(zone)
    ]


def dig_loop(inventory: Path, scratch: Path, zones: int) -> tuple[Path, int]:
    """`dig` in a shell loop over the first `zones` zones: every question, every server."""
    data = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    lines = ["#!/bin/sh"]
    for zone in data["dns"]["zones"][:zones]:
        for server in zone["nameservers"]:
            lines += [
                f"dig +norecurse +short @{server} {n} {t} >/dev/null" for n, t in questions(zone)
            ]
    script = scratch / "dig-loop.sh"
    script.write_text("\n".join([*lines, "exit 0", ""]), encoding="utf-8")
    return script, len(lines) - 1
