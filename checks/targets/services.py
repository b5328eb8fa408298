"""Targets of the services checks (ports, capabilities, TLS, vhosts) and their JUnit properties.

An `EndpointTarget` is an `Endpoint` (a service on one IP, plain data of the
model) that also names itself in JUnit properties, so CI shows which host and
port a failure was on.

>>> import ipaddress
>>> from cutover.model.inventory import Service, Protocol, TlsMode
>>> svc = Service(name="imaps", port=993, protocol=Protocol.IMAP, tls=TlsMode.IMPLICIT)
>>> from cutover.model.phases import Side
>>> target = EndpointTarget(svc, Side.OLD, ipaddress.ip_address("198.51.100.10"))
>>> target.id, list(target.junit_properties())[0]
('imaps-993-old', ('service', 'imaps-993'))
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from cutover.model.endpoints import Endpoint, endpoints, side_endpoints
from cutover.model.inventory import Inventory, Protocol, Service, TlsMode, Vhost
from cutover.model.phases import PhaseExpectations, Side

__all__ = [
    "EndpointTarget",
    "ParityTarget",
    "ServiceTarget",
    "VhostTarget",
    "endpoint_targets",
    "parity_targets",
    "service_targets",
    "vhost_targets",
]

MAIL_PROTOCOLS = (Protocol.SMTP, Protocol.IMAP, Protocol.POP3)


def _endpoint_properties(endpoint: Endpoint) -> Iterator[tuple[str, str]]:
    yield "service", endpoint.service.label
    yield "side", endpoint.side.value
    yield "address", str(endpoint.address)
    yield "port", str(endpoint.service.port)
    if endpoint.tag:  # a side with several addresses: which family this one is
        yield "family", endpoint.family


@dataclass(frozen=True)
class EndpointTarget(Endpoint):
    """A service on one IP, as the checks are parametrised over it."""

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield from _endpoint_properties(self)


def endpoint_targets(
    inventory: Inventory, expect: PhaseExpectations, *, tls_only: bool = False
) -> list[EndpointTarget]:
    """Every service on every IP that must answer in this phase (with TLS, if `tls_only`)."""
    return [
        EndpointTarget(e.service, e.side, e.address, e.tag)
        for e in endpoints(inventory, expect)
        if not tls_only or e.service.tls is not TlsMode.NONE
    ]


@dataclass(frozen=True)
class ServiceTarget:
    """A service as a whole (both IPs compared), e.g. for capability or certificate parity."""

    service: Service

    @property
    def id(self) -> str:
        return self.service.label

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "service", self.service.label
        yield "port", str(self.service.port)


def service_targets(
    inventory: Inventory, *, mail: bool = False, tls: bool = False
) -> list[ServiceTarget]:
    """The services of the mail protocols (`mail`), or those using TLS (`tls`)."""
    return [
        ServiceTarget(s)
        for s in inventory.services
        if (not mail or s.protocol in MAIL_PROTOCOLS) and (not tls or s.tls is not TlsMode.NONE)
    ]


@dataclass(frozen=True)
class ParityTarget:
    """An endpoint on which the phase expects the new server, compared with the old server.

    The id keeps a single-address inventory's history: the new side's only
    address is the service itself (`imaps-993`); every other endpoint (the old
    IP through its forward, or one address of a dual-stack host) is named by
    its endpoint id (`imaps-993-old`, `imaps-993-new-v6`).
    """

    endpoint: Endpoint
    plain: bool = False  # the new side's only address: named (and described) as the service

    @property
    def service(self) -> Service:
        return self.endpoint.service

    @property
    def id(self) -> str:
        return self.service.label if self.plain else self.endpoint.id

    @property
    def where(self) -> str:
        return self.endpoint.where

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        if self.plain:
            yield "service", self.service.label
            yield "port", str(self.service.port)
        else:
            yield from _endpoint_properties(self.endpoint)


def parity_targets(
    inventory: Inventory, expect: PhaseExpectations, *, mail: bool = False, tls: bool = False
) -> list[ParityTarget]:
    """Every endpoint the phase expects the new server on (in endpoint order: old, then
    new), of the mail protocols (`mail`) or using TLS (`tls`).

    >>> from cutover.model.inventory import Inventory
    >>> from cutover.model.phases import Phase, expectations
    >>> inv = Inventory.model_validate({"name": "m", "old": {"address": "203.0.113.1"},
    ...     "new": {"address": ["203.0.113.2", "2001:db8::2"]},
    ...     "services": [{"name": "imaps", "port": 993, "protocol": "imap", "tls": "implicit"}]})
    >>> [t.id for t in parity_targets(inv, expectations(Phase.PREFLIGHT))]
    ['imaps-993-new-v4', 'imaps-993-new-v6']
    >>> [t.id for t in parity_targets(inv, expectations(Phase.CUTOVER))]
    ['imaps-993-old', 'imaps-993-new-v4', 'imaps-993-new-v6']
    """
    found = []
    for target in service_targets(inventory, mail=mail, tls=tls):
        for side in (Side.OLD, Side.NEW):
            if expect.served_by[side] is not Side.NEW:
                continue
            sides = side_endpoints(inventory, target.service, side)
            plain = side is Side.NEW and len(sides) == 1
            found.extend(ParityTarget(e, plain) for e in sides)
    return found


class VhostTarget:
    """One vhost requested (by its Host header) on one IP."""

    def __init__(self, vhost: Vhost, endpoint: Endpoint) -> None:
        self.vhost = vhost
        self.endpoint = endpoint

    @property
    def id(self) -> str:
        return f"{self.vhost.host}-{self.endpoint.id}"

    @property
    def where(self) -> str:
        return f"vhost {self.vhost.host}{self.vhost.path} on {self.endpoint.where}"

    @property
    def key(self) -> str:
        """Where the old server's answer is kept in the baseline (both IPs share it)."""
        return f"{self.endpoint.service.label}:{self.vhost.host}{self.vhost.path}"

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield from _endpoint_properties(self.endpoint)
        yield "vhost", self.vhost.host


def vhost_targets(inventory: Inventory, expect: PhaseExpectations) -> list[VhostTarget]:
    web = [e for e in endpoints(inventory, expect) if e.service.protocol is Protocol.HTTP]
    return [VhostTarget(v, e) for e in web for v in inventory.http.vhosts]
