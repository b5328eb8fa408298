"""Endpoints: a service on one IP, with its readable id (`imaps-993-old`) and place.

The checks are parametrised over them (checks/targets/services.py adds the
JUnit properties CI shows), and the probes take them as plain targets.

>>> from cutover.model.inventory import Service, Protocol, TlsMode
>>> svc = Service(name="imaps", port=993, protocol=Protocol.IMAP, tls=TlsMode.IMPLICIT)
>>> Endpoint(svc, Side.OLD, ipaddress.ip_address("198.51.100.10")).id
'imaps-993-old'
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from cutover.model.inventory import Inventory, Service
from cutover.model.phases import PhaseExpectations, Side

__all__ = ["Endpoint", "endpoint_of", "endpoints"]


@dataclass(frozen=True)
class Endpoint:
    service: Service
    side: Side
    address: ipaddress.IPv4Address | ipaddress.IPv6Address

    @property
    def id(self) -> str:
        return f"{self.service.name}-{self.service.port}-{self.side.value}"

    @property
    def where(self) -> str:
        """`imaps 198.51.100.10:993 (old IP)` — for failure messages."""
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.service.name} {host}:{self.service.port} ({self.side.value} IP)"


def endpoint_of(inventory: Inventory, service: Service, side: Side) -> Endpoint:
    """`service` on the old or the new IP."""
    server = inventory.old if side is Side.OLD else inventory.new
    return Endpoint(service, side, server.address)


def endpoints(inventory: Inventory, rules: PhaseExpectations) -> list[Endpoint]:
    """Every service on every IP that must answer in this phase."""
    found = []
    for service in inventory.services:
        for side, server in ((Side.OLD, inventory.old), (Side.NEW, inventory.new)):
            if rules.served_by[side] is not None:
                found.append(Endpoint(service, side, server.address))
    return found
