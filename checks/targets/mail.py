"""The mail checks' parameters, and which of the inventory's services each area reads.

A target is one account (with the service and the two IPs where the check
needs them): its `id` is the test id (`[alice@example.test]`), its
`junit_properties` tell CI which account and service a failure was about.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from cutover.model.endpoints import Endpoint, endpoints
from cutover.model.inventory import Account, Inventory, IPAddress, Protocol, Service, TlsMode
from cutover.model.phases import PhaseExpectations, Side
from cutover.probes.mail.logins import SUBMISSION_PORTS

__all__ = [
    "AccountTarget",
    "ImapTarget",
    "PopTarget",
    "account_targets",
    "imap_service",
    "imap_targets",
    "login_plan",
    "login_services",
    "pop3_service",
    "pop3_targets",
    "relay_service",
]

# Implicit TLS first, then STARTTLS, then plain: what a client configured today most likely uses.
_TLS_PREFERENCE = {TlsMode.IMPLICIT: 0, TlsMode.STARTTLS: 1, TlsMode.NONE: 2}


def _preferred(inventory: Inventory, protocol: Protocol) -> Service | None:
    services = [s for s in inventory.services if s.protocol is protocol]
    return min(services, key=lambda s: _TLS_PREFERENCE[s.tls], default=None)


def imap_service(inventory: Inventory) -> Service | None:
    """The IMAP service to observe: implicit TLS first, then STARTTLS, then plain."""
    return _preferred(inventory, Protocol.IMAP)


def pop3_service(inventory: Inventory) -> Service | None:
    """The POP3 service to read: implicit TLS first, then STARTTLS, then plain."""
    return _preferred(inventory, Protocol.POP3)


def relay_service(inventory: Inventory) -> Service | None:
    """The SMTP service on port 25: where other MTAs deliver."""
    return next(
        (s for s in inventory.services if s.protocol is Protocol.SMTP and s.port == 25), None
    )


def login_services(inventory: Inventory) -> list[Service]:
    """The services clients log in to: IMAP, POP3, and SMTP on the submission ports."""
    return [
        service
        for service in inventory.services
        if service.protocol in (Protocol.IMAP, Protocol.POP3)
        or (service.protocol is Protocol.SMTP and service.port in SUBMISSION_PORTS)
    ]


def login_plan(
    inventory: Inventory, expect: PhaseExpectations, methods: dict[str, list[str]]
) -> list[tuple[Endpoint, list[str]]]:
    """Every login service on every IP that must answer in this phase, with the methods to try.

    `methods` maps a service label to the old server's methods; services it
    does not name are left out (the check reports why it has none).
    """
    services = {service.label for service in login_services(inventory)}
    return [
        (endpoint, methods[endpoint.service.label])
        for endpoint in endpoints(inventory, expect)
        if endpoint.service.label in services and endpoint.service.label in methods
    ]


@dataclass(frozen=True)
class _OnBothIps:
    """One account, read on the old and the new IP through one service."""

    SERVICE_PROPERTY: ClassVar[str] = "service"  # the JUnit property naming the service

    account: Account
    service: Service
    old: IPAddress
    new: IPAddress

    @property
    def id(self) -> str:
        return self.account.user

    def address(self, side: Side) -> IPAddress:
        return self.old if side is Side.OLD else self.new

    def endpoint(self, side: Side) -> Endpoint:
        return Endpoint(self.service, side, self.address(side))

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "account", self.account.user
        yield self.SERVICE_PROPERTY, self.service.label
        yield "old_address", str(self.old)
        yield "new_address", str(self.new)


@dataclass(frozen=True)
class ImapTarget(_OnBothIps):
    """One account to check on both IPs (the IMAP checks' parameter)."""

    SERVICE_PROPERTY: ClassVar[str] = "imap_service"


@dataclass(frozen=True)
class PopTarget(_OnBothIps):
    """One account whose POP3 maildrop is compared (POP01's parameter)."""

    SERVICE_PROPERTY: ClassVar[str] = "pop3_service"


@dataclass(frozen=True)
class AccountTarget:
    """One mail account (AUTH01's parameter)."""

    account: Account

    @property
    def id(self) -> str:
        return self.account.user

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "account", self.account.user


_T = TypeVar("_T", bound=_OnBothIps)


def _every_account(kind: type[_T], service: Service | None, inventory: Inventory) -> list[_T]:
    if service is None:
        return []
    old, new = inventory.old.address, inventory.new.address
    return [kind(account, service, old, new) for account in inventory.mail.accounts]


def imap_targets(inventory: Inventory) -> list[ImapTarget]:
    return _every_account(ImapTarget, imap_service(inventory), inventory)


def pop3_targets(inventory: Inventory) -> list[PopTarget]:
    return _every_account(PopTarget, pop3_service(inventory), inventory)


def account_targets(inventory: Inventory) -> Sequence[AccountTarget]:
    """Every mail account, when the inventory has a service to log in to."""
    if not login_services(inventory):
        return []
    return [AccountTarget(account) for account in inventory.mail.accounts]
