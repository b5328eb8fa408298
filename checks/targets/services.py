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

from cutover.model.endpoints import Endpoint, endpoints
from cutover.model.inventory import Inventory, Protocol, Service, TlsMode, Vhost
from cutover.model.phases import PhaseExpectations

__all__ = [
    "EndpointTarget",
    "ServiceTarget",
    "VhostTarget",
    "endpoint_targets",
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
