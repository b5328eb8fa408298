"""Observations of the services area: every service on every IP, and what the baseline keeps of it.

`services` observes each service on each IP of the phase once per run, all
concurrently, the first time a check asks (PORT, CAP, TLS and the mail client
checks judge those answers). In preflight `service_records` first records what
later phases compare with, for every service: how each server identifies
itself (PORT02), and of the old server the capabilities a client of each mail
port sees (CAP01) and the names of each TLS certificate (TLS04) — per server,
as its first address that answers shows them (every address is observed, and
each is judged by its own checks). The recorder does the
same at the end of a preflight whose selection ran none of those checks.
Semantics: docs/semantics.md "Ports and services".
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from checks.progress import Stage
from checks.record import RecordContext, Records, recorder
from cutover.model.endpoints import Endpoint, endpoints, side_endpoints
from cutover.model.inventory import Inventory, Protocol, Service, TlsMode
from cutover.model.phases import PhaseExpectations, Side, serving_ip
from cutover.model.settings import settings_for
from cutover.probes.connect import ProbeError
from cutover.probes.services import Observations, ServiceAnswer, observe
from cutover.progress import Progress

Services = Observations[Endpoint, ServiceAnswer]

MAIL_PROTOCOLS = (Protocol.SMTP, Protocol.IMAP, Protocol.POP3)
KIND = "services"  # the baseline sections identity, capabilities, certificate_names
# An inventory that says something about the servers' services (not, say, a VFIO host
# alone) has services to record, even when it keeps the default `services:` list.
SECTIONS = ("services", "hostnames", "tls", "http", "mail", "mysql")


def observe_services(
    inventory: Inventory, expect: PhaseExpectations, progress: Progress | None = None
) -> Services:
    settings = settings_for(inventory)
    if expect.served_by[Side.OLD] is not Side.OLD:
        # The old IP forwards to the new server: it is judged by today's TLS defaults.
        settings = settings.modern()
    return Observations(
        endpoints(inventory, expect),
        lambda endpoint: observe(endpoint, settings),
        progress=progress,
    )


@pytest.fixture(scope="session")
def services(
    inventory: Inventory, expect: PhaseExpectations, observing: Callable[[str, str], Stage]
) -> Services:
    """Every service on every IP of the phase: observed once per run, concurrently, on first use."""
    return observe_services(inventory, expect, observing("services", "endpoints"))


def client_views(answer: ServiceAnswer, service: Service) -> dict[str, list[str]]:
    """Capabilities as a client of this port sees them: after TLS, and before STARTTLS.

    Without a working upgrade the list "after TLS" is the plain one: that is
    all a client configured for STARTTLS would get.
    """
    views = {
        "after TLS" if service.tls is not TlsMode.NONE else "offered": sorted(answer.capabilities)
    }
    if answer.capabilities_plain is not None:
        views["before STARTTLS"] = sorted(answer.capabilities_plain)
    return views


def _answered(services: Services, endpoint: Endpoint) -> ServiceAnswer | None:
    try:
        outcome = services.outcome(endpoint)
    except Exception:  # a probe's bug shows in the check that asks for this endpoint
        return None
    return None if isinstance(outcome, ProbeError) else outcome


def first_answer(
    services: Services, inventory: Inventory, service: Service, side: Side
) -> tuple[Endpoint, ServiceAnswer] | None:
    """The first address of `side` whose `service` answered, and its answer.

    A server is recorded and used as the reference once, as its first
    address that answers shows it: a dual-stack host whose addresses
    disagree fails the other address's own check (PORT02), not the reference.
    """
    for endpoint in side_endpoints(inventory, service, side):
        answer = _answered(services, endpoint)
        if answer is not None:
            return endpoint, answer
    return None


def reference_endpoint(
    services: Services, inventory: Inventory, service: Service, side: Side
) -> Endpoint:
    """Where the old server is compared with live: `first_answer`'s address, else the first one
    (whose check then fails saying why it did not answer)."""
    found = first_answer(services, inventory, service, side)
    return found[0] if found is not None else side_endpoints(inventory, service, side)[0]


def record_services(
    records: Records, services: Services, inventory: Inventory, expect: PhaseExpectations
) -> None:
    """Record each server's identity, and the old server's capabilities and certificate names.

    Per server and service (`imaps-993-old`), as its first address that
    answers shows it; every address was observed (PORT02 judges each against
    this). What did not answer is not recorded (its check fails saying why).
    """
    identities = {}
    for service in inventory.services:
        for side in (Side.OLD, Side.NEW):
            if expect.served_by[side] is None:
                continue
            found = first_answer(services, inventory, service, side)
            if found is not None:
                identities[f"{service.label}-{side.value}"] = found[1].who
    records.write_many("identity", identities)
    old_side = serving_ip(expect, Side.OLD)
    if old_side is not None:
        capabilities, names = {}, {}
        for service in inventory.services:
            found = first_answer(services, inventory, service, old_side)
            if found is None:
                continue
            answer = found[1]
            if service.protocol in MAIL_PROTOCOLS:
                capabilities[service.label] = client_views(answer, service)
            if service.tls is not TlsMode.NONE and answer.tls is not None:
                names[service.label] = list(answer.tls.names)
        records.write_many("capabilities", capabilities)
        records.write_many("certificate_names", names)
    records.recorded(KIND)


@recorder(KIND, sections=SECTIONS)
def record_services_at_end(ctx: RecordContext) -> None:
    """The services' facts of a preflight whose selection ran no check that recorded them."""
    record_services(
        ctx.records, observe_services(ctx.inventory, ctx.expect), ctx.inventory, ctx.expect
    )


@pytest.fixture(scope="session")
def service_records(
    records: Records, services: Services, inventory: Inventory, expect: PhaseExpectations
) -> Records:
    """The baseline the services checks read; in preflight, everything they need recorded first."""
    if records.recording:
        record_services(records, services, inventory, expect)
    return records
