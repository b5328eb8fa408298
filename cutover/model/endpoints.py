"""Endpoints: a service on one IP, with its readable id (`imaps-993-old`) and place.

The checks are parametrised over them (checks/targets/services.py adds the
JUnit properties CI shows), and the probes take them as plain targets.

>>> from cutover.model.inventory import Service, Protocol, TlsMode
>>> svc = Service(name="imaps", port=993, protocol=Protocol.IMAP, tls=TlsMode.IMPLICIT)
>>> Endpoint(svc, Side.OLD, ipaddress.ip_address("198.51.100.10")).id
'imaps-993-old'

A side with several addresses (a dual-stack host) has one endpoint per
address, tagged with its family; a side with one address keeps the plain id:

>>> Endpoint(svc, Side.OLD, ipaddress.ip_address("2001:db8::10"), "v6").id
'imaps-993-old-v6'
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from cutover.model.inventory import Inventory, Server, Service
from cutover.model.phases import PhaseExpectations, Side

__all__ = [
    "Endpoint",
    "endpoint_of",
    "endpoints",
    "family",
    "listed",
    "side_addresses",
    "side_endpoints",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def family(address: IPAddress) -> str:
    """`v4` or `v6`."""
    return f"v{address.version}"


def listed(server: Server) -> str:
    """Every address of a host, for headers and banners: `203.0.113.1, 2001:db8::1`.

    >>> from cutover.model.inventory import Server
    >>> listed(Server(address=["203.0.113.1", "2001:db8::1"]))
    '203.0.113.1, 2001:db8::1'
    >>> listed(Server(address="203.0.113.1"))
    '203.0.113.1'
    """
    return ", ".join(str(address) for address in server.addresses)


def side_addresses(server: Server) -> list[tuple[IPAddress, str]]:
    """Each address of a host with its tag: `""` for a single-address host, else its family.

    A second address of the same family is `v6-2`, a third `v6-3`.

    >>> from cutover.model.inventory import Server
    >>> [(str(a), t) for a, t in side_addresses(Server(address="203.0.113.1"))]
    [('203.0.113.1', '')]
    >>> server = Server(address=["203.0.113.1", "2001:db8::1", "2001:db8::2"])
    >>> [t for _, t in side_addresses(server)]
    ['v4', 'v6', 'v6-2']
    """
    if len(server.addresses) == 1:
        return [(server.addresses[0], "")]
    tagged: list[tuple[IPAddress, str]] = []
    seen: dict[str, int] = {}
    for address in server.addresses:
        name = family(address)
        seen[name] = seen.get(name, 0) + 1
        tagged.append((address, name if seen[name] == 1 else f"{name}-{seen[name]}"))
    return tagged


@dataclass(frozen=True)
class Endpoint:
    service: Service
    side: Side
    address: IPAddress
    tag: str = ""  # "" when the side has one address, else v4 / v6 (see side_addresses)

    @property
    def id(self) -> str:
        suffix = f"-{self.tag}" if self.tag else ""
        return f"{self.service.name}-{self.service.port}-{self.side.value}{suffix}"

    @property
    def family(self) -> str:
        return family(self.address)

    @property
    def where(self) -> str:
        """`imaps 198.51.100.10:993 (old IP)` — for failure messages."""
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.service.name} {host}:{self.service.port} ({self.side.value} IP)"


def endpoint_of(inventory: Inventory, service: Service, side: Side) -> Endpoint:
    """`service` on the old or the new host's first address."""
    return side_endpoints(inventory, service, side)[0]


def side_endpoints(inventory: Inventory, service: Service, side: Side) -> list[Endpoint]:
    """`service` on each address of the old or the new host."""
    server = inventory.old if side is Side.OLD else inventory.new
    return [Endpoint(service, side, address, tag) for address, tag in side_addresses(server)]


def endpoints(inventory: Inventory, rules: PhaseExpectations) -> list[Endpoint]:
    """Every service on every address that must answer in this phase."""
    found = []
    for service in inventory.services:
        for side in (Side.OLD, Side.NEW):
            if rules.served_by[side] is not None:
                found.extend(side_endpoints(inventory, service, side))
    return found
