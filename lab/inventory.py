"""`.lab/inventory.yaml`: the lab described for the suite, as an operator
would describe their own migration (see fixtures/inventory.example.yaml).
Secrets appear only as `password_file:` references into `.lab/secrets/`.

The lab is dual stack, so it is described three ways:

- `inventory.yaml`: both addresses of each server (`address: [IPv4, IPv6]`),
  the nameservers and MySQL account hosts by their IPv4 addresses;
- `inventory-ipv4.yaml`: IPv4 only, as the lab was described before it had
  IPv6 (the golden files are recorded with it);
- `inventory-ipv6.yaml`: IPv6 only, everything (servers, nameservers, ssh,
  MySQL account hosts) by IPv6 address: an IPv6-only migration.
"""

from __future__ import annotations

from typing import Any

from lab import profiles, yamlout
from lab.pki import CA_FILE
from lab.seed import LAB_HOSTS_PATTERN, LAB_HOSTS_PATTERN6
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
    Host,
)

INVENTORY = STATE / "inventory.yaml"
INVENTORY_IPV4 = STATE / "inventory-ipv4.yaml"
INVENTORY_IPV6 = STATE / "inventory-ipv6.yaml"
# Which addresses each inventory names: "dual" (both families), "ipv4", "ipv6".
FAMILIES = {"dual": INVENTORY, "ipv4": INVENTORY_IPV4, "ipv6": INVENTORY_IPV6}
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


def _server(host: Host, family: str) -> dict[str, Any]:
    if family == "dual":
        address: str | list[str] = [host.address, host.address6]
    else:
        address = host.address6 if family == "ipv6" else host.address
    # An IPv6 literal in a host spec goes in brackets (ssh://root@[2001:db8::10]).
    ssh = f"[{host.address6}]" if family == "ipv6" else host.address
    return {"address": address, "hostname": host.fqdn, "ssh": f"ssh://root@{ssh}"}


def build(
    mail_accounts: list[str],
    zones: list[str],
    extra_accounts: list[tuple[str, str]],
    family: str = "dual",
) -> dict[str, Any]:
    """The inventory naming the addresses of `family` (see FAMILIES)."""
    ipv6 = family == "ipv6"
    nameservers = [ns.address6 if ipv6 else ns.address for ns in NAMESERVERS]
    hosts_pattern = LAB_HOSTS_PATTERN6 if ipv6 else LAB_HOSTS_PATTERN
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
        "old": _server(OLD, family),
        "new": _server(NEW, family),
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
                "host": hosts_pattern,
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
                    "host": hosts_pattern,
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
                    "nameserver": address,
                    "schema": "mydns" if profiles.legacy() else "powerdns",
                    "host": address,
                    "port": 3306,
                    "database": "pdns",
                    "user": "pdns_ro",
                    "password_file": _secret("pdns-ro"),
                }
                for address in nameservers
            ],
        },
        # Outbound mail: each server signs with /etc/ssl/private/dkim-mail.key;
        # the reverse zones (in-addr.arpa and ip6.arpa) are served by both nameservers.
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
    """Write the three inventories (FAMILIES); `extra_accounts` are (user, secret name)
    pairs from `scale`."""
    what = {
        "dual": "both address families (dual stack)",
        "ipv4": "IPv4 addresses only",
        "ipv6": "IPv6 addresses only",
    }
    for family, path in FAMILIES.items():
        header = (
            "# Written by `python -m lab up` for the running lab; rewritten by `scale`.\n"
            f"# The lab by its {what[family]}.\n"
            "# Paths are relative to this file. Do not edit: the next `up` replaces it.\n"
        )
        data = build(mail_accounts, zones or list(ZONES), extra_accounts or [], family)
        path.write_text(header + yamlout.dump(data) + "\n", encoding="utf-8")
