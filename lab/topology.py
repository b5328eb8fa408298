"""Names, addresses and paths of the lab: the contract other tools rely on."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE = REPO / ".lab"
TEMPLATES = Path(__file__).resolve().parent / "templates"

# RFC 5737 documentation range. The machine itself lives in 192.0.2.0/24:
# the lab never uses that range, and never anything outside this one.
SUBNET = ipaddress.IPv4Network("198.51.100.0/24")
# Dual stack: one /64 of the IPv6 documentation prefix 2001:db8::/32 (RFC 3849),
# on the same bridge; a host's IPv6 address ends like its IPv4 one (::10 for .10).
SUBNET6 = ipaddress.IPv6Network("2001:db8:5100::/64")
SWITCH_NS = "cutover-switch"
NS_PREFIX = "cutover-"


@dataclass(frozen=True)
class Host:
    key: str
    address: str
    fqdn: str
    role: str  # "server", "nameserver" or "client"
    address6: str  # in SUBNET6, ending like the IPv4 address (::10 for .10)

    @property
    def addresses(self) -> tuple[str, str]:
        return (self.address, self.address6)

    @property
    def netns(self) -> str:
        return f"{NS_PREFIX}{self.key}"

    @property
    def root(self) -> Path:
        """Per-host files, bind-mounted over the usual paths inside the host."""
        return STATE / "hosts" / self.key

    @property
    def logs(self) -> Path:
        return STATE / "logs" / self.key


HOSTS: dict[str, Host] = {
    h.key: h
    for h in (
        Host("old", "198.51.100.10", "old.example.test", "server", "2001:db8:5100::10"),
        Host("new", "198.51.100.20", "new.example.test", "server", "2001:db8:5100::20"),
        Host("ns1", "198.51.100.53", "ns1.example.test", "nameserver", "2001:db8:5100::53"),
        Host("ns2", "198.51.100.54", "ns2.example.test", "nameserver", "2001:db8:5100::54"),
        Host("client", "198.51.100.100", "client.example.test", "client", "2001:db8:5100::100"),
    )
}
OLD, NEW, NS1, NS2, CLIENT = (HOSTS[k] for k in ("old", "new", "ns1", "ns2", "client"))
SERVERS = (OLD, NEW)
NAMESERVERS = (NS1, NS2)

# The source post's forwarded ports, in its order.
FORWARDED_PORTS = (110, 995, 143, 993, 25, 465, 587, 80, 3306)
PORT_NAMES = {
    110: "pop3",
    995: "pop3s",
    143: "imap",
    993: "imaps",
    25: "smtp",
    465: "smtps",
    587: "submission",
    80: "http",
    3306: "mysql",
}
MYSQL_SOCKET = "/run/mysqld/mysqld.sock"

ZONES = ("example.test", "shop.test", "blog.test")
REVERSE_ZONE = "100.51.198.in-addr.arpa"
# The IPv6 reverse zone: the /48 2001:db8:5100::/48 in nibble format.
REVERSE_ZONE6 = "0.0.1.5.8.b.d.0.1.0.0.2.ip6.arpa"
VHOSTS = tuple(f"www.{zone}" for zone in ZONES)
# Every name a client may type: each server certificate covers all of them.
CLIENT_NAMES = ("mail.example.test", *(f"mail.{z}" for z in ZONES[1:]), *VHOSTS)
INITIAL_TTL = 3600
LOWERED_TTL = 300


def check_lab_address(address: str) -> str:
    """Refuse any address outside the lab's /24 and /64 (the one safety rule of the lab)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"{address!r} is not an IP address") from None
    if parsed not in (SUBNET if parsed.version == 4 else SUBNET6):
        raise ValueError(f"{address} is not a lab address ({SUBNET} or {SUBNET6})")
    return address


def reverse_name6(address: str) -> str:
    """The nibble-format PTR name of an IPv6 address (`...ip6.arpa`, no trailing dot)."""
    return ipaddress.IPv6Address(address).reverse_pointer


# A second address of the client host: stale clients (`lab stale-client`) connect
# from it, so the old host can tell them from the suite (which uses CLIENT.address).
STALE_CLIENT_ADDRESS = "198.51.100.101"
