"""`.lab/inventory.yaml`: the lab described for the suite, as an operator
would describe their own migration (see fixtures/inventory.example.yaml).
Secrets appear only as `password_file:` references into `.lab/secrets/`.
"""

from __future__ import annotations

from typing import Any

from lab import yamlout
from lab.pki import CA_FILE
from lab.seed import LAB_HOSTS_PATTERN
from lab.state import secret_path
from lab.topology import (
    CLIENT_NAMES,
    FORWARDED_PORTS,
    MYSQL_SOCKET,
    NAMESERVERS,
    NEW,
    OLD,
    PORT_NAMES,
    STATE,
    VHOSTS,
    ZONES,
)

INVENTORY = STATE / "inventory.yaml"
SSH_CONFIG = STATE / "ssh_config"
_TLS = {
    110: "starttls",
    143: "starttls",
    25: "starttls",
    587: "starttls",
    995: "implicit",
    993: "implicit",
    465: "implicit",
}
_PROTOCOL = {
    110: "pop3",
    995: "pop3",
    143: "imap",
    993: "imap",
    25: "smtp",
    465: "smtp",
    587: "smtp",
    80: "http",
    3306: "mysql",
}


PROBE_ACCOUNT = "carol@example.test"


def _secret(name: str) -> str:
    # Relative to the inventory's directory, so the file can be copied along with .lab/.
    return str(secret_path(name).relative_to(STATE))


def build(
    mail_accounts: list[str], zones: list[str], extra_accounts: list[tuple[str, str]]
) -> dict[str, Any]:
    nameservers = [ns.address for ns in NAMESERVERS]
    services = []
    for port in FORWARDED_PORTS:
        service: dict[str, Any] = {
            "name": PORT_NAMES[port],
            "port": port,
            "protocol": _PROTOCOL[port],
        }
        if port in _TLS:
            service["tls"] = _TLS[port]
        services.append(service)
    return {
        "name": "lab",
        "old": {"address": OLD.address, "hostname": OLD.fqdn, "ssh": f"ssh://root@{OLD.address}"},
        "new": {"address": NEW.address, "hostname": NEW.fqdn, "ssh": f"ssh://root@{NEW.address}"},
        "ssh_config": "ssh_config",
        "services": services,
        "hostnames": [name for name in CLIENT_NAMES if name.startswith("mail.")],
        "tls": {"ca_file": CA_FILE.name, "expiry_margin_days": 20},
        "http": {"identity_header": "X-Served-By", "vhosts": [{"host": v} for v in VHOSTS]},
        "mail": {
            "accounts": [
                *({"user": u, "password_file": _secret(f"mail-{u}")} for u in mail_accounts),
                *({"user": u, "password_file": _secret(name)} for u, name in extra_accounts),
            ],
            # The opt-in mail-flow probe (--probe-mail, PORT03) delivers to carol's INBOX.
            "probe_account": PROBE_ACCOUNT if PROBE_ACCOUNT in mail_accounts else None,
        },
        "mysql": {
            "admin": {
                "user": "cutover_ro",
                "host": LAB_HOSTS_PATTERN,
                "password_file": _secret("mysql-ro"),
            },
            "accounts": [
                {
                    "user": "app",
                    "host": "localhost",
                    "via_socket": True,
                    "password_file": _secret("mysql-app"),
                },
                {
                    "user": "report",
                    "host": LAB_HOSTS_PATTERN,
                    "password_file": _secret("mysql-report"),
                },
            ],
            "databases": ["app"],
            "socket": MYSQL_SOCKET,
        },
        "dns": {
            "ttl": 300,
            "zones": [
                {"name": z, "nameservers": nameservers, "cname_to_apex": ["www", "mail"]}
                for z in zones
            ],
            "sql": [
                {
                    "nameserver": ns.address,
                    "schema": "powerdns",
                    "host": ns.address,
                    "port": 3306,
                    "database": "pdns",
                    "user": "pdns_ro",
                    "password_file": _secret("pdns-ro"),
                }
                for ns in NAMESERVERS
            ],
        },
        # Outbound mail: each server signs with /etc/ssl/private/dkim-mail.key;
        # the reverse zone 100.51.198.in-addr.arpa is served by both nameservers.
        "outbound": {
            "dkim_selectors": ["mail"],
            "dkim_key_file": "/etc/ssl/private/dkim-{selector}.key",
            "reverse_nameservers": nameservers,
        },
        "acceptance": {"old_ip": "forward"},
        # The decommission phase watches old's forwarded ports this long (default 60 s):
        # in the lab nobody but the suite and a faulted stale client connects.
        "decommission": {"observe_seconds": 5},
        "timeouts": {"connect": 5, "operation": 5},
    }


def write(
    mail_accounts: list[str],
    zones: list[str] | None = None,
    extra_accounts: list[tuple[str, str]] | None = None,
) -> None:
    """Write the inventory; `extra_accounts` are (user, secret name) pairs from `scale`."""
    header = (
        "# Written by `python -m lab up` for the running lab; rewritten by `scale`.\n"
        "# Paths are relative to this file. Do not edit: the next `up` replaces it.\n"
    )
    body = yamlout.dump(build(mail_accounts, zones or list(ZONES), extra_accounts or []))
    INVENTORY.write_text(header + body + "\n", encoding="utf-8")
