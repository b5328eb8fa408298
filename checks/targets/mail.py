"""The mail checks' parameters, and which of the inventory's services each area reads.

A target is one account (with the service and, where the check needs them,
that service on every address of the old and the new host: one each, or
several on a dual-stack host): its `id` is the test id (`[alice@example.test]`), its
`junit_properties` tell CI which account and service a failure was about.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, TypeVar

from cutover.model.endpoints import Endpoint, endpoints, side_endpoints
from cutover.model.inventory import Account, Inventory, Protocol, Service, TlsMode
from cutover.model.phases import PhaseExpectations, Side
from cutover.probes.mail.logins import SUBMISSION_PORTS

__all__ = [
    "AccountTarget",
    "ImapTarget",
    "PopTarget",
    "account_targets",
    "compared_endpoints",
    "imap_accounts",
    "imap_service",
    "imap_targets",
    "login_plan",
    "login_services",
    "place",
    "pop3_accounts",
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
    """Every login service on every address that must answer in this phase, with its methods.

    `methods` maps a service label to the old server's methods; services it
    does not name are left out (the check reports why it has none).
    """
    services = {service.label for service in login_services(inventory)}
    return [
        (endpoint, methods[endpoint.service.label])
        for endpoint in endpoints(inventory, expect)
        if endpoint.service.label in services and endpoint.service.label in methods
    ]


def place(endpoint: Endpoint) -> str:
    """Where an endpoint is, without its service: `old`, `new`, or `old-v6` on a dual-stack side.

    >>> from cutover.model.inventory import Service, Protocol, TlsMode
    >>> import ipaddress
    >>> imaps = Service(name="imaps", port=993, protocol=Protocol.IMAP, tls=TlsMode.IMPLICIT)
    >>> place(Endpoint(imaps, Side.OLD, ipaddress.ip_address("2001:db8::10"), "v6"))
    'old-v6'
    """
    return f"{endpoint.side.value}-{endpoint.tag}" if endpoint.tag else endpoint.side.value


def _dual(endpoints: Iterable[Endpoint]) -> bool:
    """Some side has several addresses: the checks then judge each address on its own."""
    return any(endpoint.tag for endpoint in endpoints)


@dataclass(frozen=True)
class _OnBothIps:
    """One account, read through one service on every address of the old and the new host.

    `place` is empty when each host has one address: one test per account judges
    every address (the ids as they always were). On a dual-stack inventory each
    address the account is compared on is a test of its own (`alice@example.test-old-v6`),
    so a failure names the address and the other addresses stay green.
    """

    SERVICE_PROPERTY: ClassVar[str] = "service"  # the JUnit property naming the service

    account: Account
    service: Service
    old: tuple[Endpoint, ...]  # one per address of the old host (cutover.model.endpoints)
    new: tuple[Endpoint, ...]
    place: str = ""  # "": every address; else the one judged (`new-v4`, `old-v6`)

    @property
    def id(self) -> str:
        return f"{self.account.user}-{self.place}" if self.place else self.account.user

    def endpoints(self, side: Side) -> tuple[Endpoint, ...]:
        """The service on every address of one side, the host's first address first."""
        return self.old if side is Side.OLD else self.new

    def endpoint(self, side: Side) -> Endpoint:
        """The service on the side's first address (where the reference is read)."""
        return self.endpoints(side)[0]

    def judges(self, where: str) -> bool:
        """Whether this test judges the source at `where` (a `place`)."""
        return not self.place or where == self.place

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "account", self.account.user
        yield self.SERVICE_PROPERTY, self.service.label
        # One address: as it always was; several (dual stack): comma separated, first first.
        yield "old_address", ",".join(str(e.address) for e in self.old)
        yield "new_address", ",".join(str(e.address) for e in self.new)
        judged = [e for e in self.old + self.new if self.place and place(e) == self.place]
        for endpoint in judged:
            yield "address", str(endpoint.address)
            yield "family", endpoint.family


@dataclass(frozen=True)
class ImapTarget(_OnBothIps):
    """One account (on one address, dual stack) to check (the IMAP checks' parameter)."""

    SERVICE_PROPERTY: ClassVar[str] = "imap_service"


@dataclass(frozen=True)
class PopTarget(_OnBothIps):
    """One account (on one address, dual stack) whose POP3 maildrop is compared (POP01's)."""

    SERVICE_PROPERTY: ClassVar[str] = "pop3_service"


_T = TypeVar("_T", bound=_OnBothIps)


def compared_endpoints(target: _OnBothIps, expect: PhaseExpectations) -> list[Endpoint]:
    """The endpoints compared with the reference, in order: the new host's, then the old host's.

    Every address whose server must answer in this phase, except the old
    host's first address while the old server answers there: that one is the
    reference itself (every other old address must agree with it).
    """
    live_old = expect.served_by[Side.OLD] is Side.OLD
    return [
        endpoint
        for side in (Side.NEW, Side.OLD)
        if expect.served_by[side] is not None
        for endpoint in target.endpoints(side)
        if not (live_old and endpoint == target.endpoint(Side.OLD))
    ]


def _every_account(kind: type[_T], service: Service | None, inventory: Inventory) -> list[_T]:
    if service is None:
        return []
    old = tuple(side_endpoints(inventory, service, Side.OLD))
    new = tuple(side_endpoints(inventory, service, Side.NEW))
    return [kind(account, service, old, new) for account in inventory.mail.accounts]


def _per_place(targets: list[_T], expect: PhaseExpectations) -> list[_T]:
    if not targets or not _dual(targets[0].old + targets[0].new):
        return targets
    return [
        replace(target, place=place(endpoint))
        for target in targets
        for endpoint in compared_endpoints(target, expect)
    ]


def imap_accounts(inventory: Inventory) -> list[ImapTarget]:
    """One target per account, every address together (what is observed, and recorded)."""
    return _every_account(ImapTarget, imap_service(inventory), inventory)


def imap_targets(inventory: Inventory, expect: PhaseExpectations) -> list[ImapTarget]:
    """The IMAP checks' tests: per account, and per compared address on a dual-stack side."""
    return _per_place(imap_accounts(inventory), expect)


def pop3_accounts(inventory: Inventory) -> list[PopTarget]:
    """One target per account, every address together (what is observed, and recorded)."""
    return _every_account(PopTarget, pop3_service(inventory), inventory)


def pop3_targets(inventory: Inventory, expect: PhaseExpectations) -> list[PopTarget]:
    """POP01's tests: per account, and per compared address on a dual-stack side."""
    return _per_place(pop3_accounts(inventory), expect)


@dataclass(frozen=True)
class AccountTarget:
    """One mail account, on one address of a dual-stack side (AUTH01's parameter)."""

    account: Account
    place: str = ""  # "": every address; else the one judged (`new-v4`, `old-v6`)
    address: str = ""  # the judged address, when `place` is set

    @property
    def id(self) -> str:
        return f"{self.account.user}-{self.place}" if self.place else self.account.user

    def judges(self, endpoint: Endpoint) -> bool:
        return not self.place or place(endpoint) == self.place

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "account", self.account.user
        if self.place:
            yield "address", self.address
            yield "family", f"v{ipaddress.ip_address(self.address).version}"


def account_targets(inventory: Inventory, expect: PhaseExpectations) -> Sequence[AccountTarget]:
    """Every mail account, when the inventory has a service to log in to.

    On a dual-stack inventory: every account on every address that must answer.
    """
    services = login_services(inventory)
    if not services:
        return []
    found = [e for e in endpoints(inventory, expect) if e.service in services]
    if not _dual(found):
        return [AccountTarget(account) for account in inventory.mail.accounts]
    places = {place(e): str(e.address) for e in found}
    return [
        AccountTarget(account, where, address)
        for account in inventory.mail.accounts
        for where, address in places.items()
    ]
