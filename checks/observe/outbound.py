"""Outbound mail observations: SPF, reverse DNS, HELO, DKIM keys and MX of the mail domains.

Semantics: docs/semantics.md, "Outbound deliverability". Every name is asked
of the authoritative servers of its zone (`outbound_names`, built on the
zones' servers the DNS observations found: NS discovery runs once per pair).
In preflight the MX of every mail domain is recorded for MAIL04 in later
phases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from checks.observe.dns import discover_zone_servers
from checks.record import RecordContext, Records, recorder
from checks.targets.outbound import (
    DkimSelector,
    MailDomain,
    domain_targets,
    mail_domains,
    selector_targets,
)
from cutover.model.endpoints import endpoint_of
from cutover.model.inventory import Protocol, Service
from cutover.model.phases import PhaseExpectations, Side
from cutover.model.settings import settings_for
from cutover.probes.connect import ProbeError
from cutover.probes.dns.zones import ZoneServers
from cutover.probes.outbound.dkim import (
    DkimRecord,
    SigningKey,
    dkim_name,
    observe_dkim_record,
    observe_signing_key,
)
from cutover.probes.outbound.lookup import AuthoritativeLookup, lookup_for
from cutover.probes.outbound.mx import MxRecord, observe_mx, parse_mx
from cutover.probes.outbound.reverse import ReverseDns, observe_reverse
from cutover.probes.outbound.spf import SpfRecords, SpfVerdict, evaluate_spf, observe_spf_records
from cutover.probes.services import Observations, ServiceAnswer, observe

if TYPE_CHECKING:
    from cutover.model.inventory import Inventory

__all__ = ["MxSeen", "SpfSeen", "dkim_key_file", "sender_ips"]

SpfSeen = tuple[SpfRecords, dict[str, SpfVerdict]]


def _lookup(inventory: Inventory, servers: ZoneServers, timeout: float) -> AuthoritativeLookup:
    return lookup_for(
        servers,
        mail_domains=mail_domains(inventory),
        reverse_servers=[str(a) for a in inventory.outbound.reverse_nameservers],
        new_ips=inventory.new.addresses,
        resolver=inventory.dns.resolver,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def outbound_names(
    inventory: Inventory, zone_servers: ZoneServers
) -> AuthoritativeLookup | ProbeError:
    """Answers from each zone's authoritative servers (shared, cached), or why there are none."""
    try:
        return _lookup(inventory, zone_servers, settings_for(inventory).operation_timeout)
    except ProbeError as exc:
        return exc


def sender_ips(inventory: Inventory, expect: PhaseExpectations) -> dict[str, str]:
    """IP -> role of every address mail may leave from in this phase (every address of
    each host: a dual-stack host sends over IPv6 to receivers that have it)."""
    ips = {str(a): "new IP" for a in inventory.new.addresses}
    if expect.served_by[Side.OLD] is not None:
        # The old host still sends (preflight), or still forwards and may hold queued mail.
        ips.update({str(a): "old IP" for a in inventory.old.addresses})
    return ips


@pytest.fixture(scope="session")
def spf_observations(
    inventory: Inventory,
    expect: PhaseExpectations,
    outbound_names: AuthoritativeLookup | ProbeError,
) -> Observations[MailDomain, SpfSeen]:
    """Each domain's SPF records and verdicts for every sending IP: once per run, concurrently."""

    def observe_domain(domain: MailDomain) -> SpfSeen:
        if isinstance(outbound_names, ProbeError):
            raise outbound_names
        records = observe_spf_records(domain.name, outbound_names)
        ips = sender_ips(inventory, expect)
        return records, {ip: evaluate_spf(domain.name, ip, outbound_names) for ip in ips}

    domains = domain_targets(inventory)
    if not isinstance(outbound_names, ProbeError):  # every domain's TXT in one round
        outbound_names.prefetch([(domain.name, "TXT") for domain in domains])
    return Observations(domains, observe_domain)


# --- MAIL02 ----------------------------------------------------------------------


def _helo_service(inventory: Inventory) -> Service | None:
    """The SMTP service whose greeting names the server's HELO name (port 25 first)."""
    smtp = [s for s in inventory.services if s.protocol is Protocol.SMTP]
    smtp.sort(key=lambda s: s.port != 25)
    return smtp[0] if smtp else None


@pytest.fixture(scope="session")
def helo_answer(inventory: Inventory) -> ServiceAnswer | ProbeError | None:
    """The new server's SMTP greeting on the new IP (its HELO name), or why there is none."""
    service = _helo_service(inventory)
    if service is None:
        return None
    try:
        return observe(endpoint_of(inventory, service, Side.NEW), settings_for(inventory))
    except ProbeError as exc:
        return exc


@pytest.fixture(scope="session")
def new_ip_reverse(
    inventory: Inventory,
    outbound_names: AuthoritativeLookup | ProbeError,
    helo_answer: ServiceAnswer | ProbeError | None,
) -> dict[str, ReverseDns | ProbeError] | None:
    """Per sending address of the new host (every one), its PTR names, forward-confirmed
    (A for IPv4, AAAA for IPv6), or why not; None when there is no HELO to compare with."""
    if isinstance(outbound_names, ProbeError) or not isinstance(helo_answer, ServiceAnswer):
        return None
    found: dict[str, ReverseDns | ProbeError] = {}
    for address in inventory.new.addresses:
        try:
            found[str(address)] = observe_reverse(str(address), outbound_names)
        except ProbeError as exc:
            found[str(address)] = exc
    return found


# --- MAIL03 ----------------------------------------------------------------------


def dkim_key_file(inventory: Inventory, target: DkimSelector) -> str | None:
    template = inventory.outbound.dkim_key_file
    return template.format(selector=target.selector, domain=target.domain) if template else None


@pytest.fixture(scope="session")
def dkim_records(
    inventory: Inventory, outbound_names: AuthoritativeLookup | ProbeError
) -> Observations[DkimSelector, DkimRecord]:
    """Each selector's published key record, parsed by dkimpy: once per run, concurrently."""

    def observe_selector(target: DkimSelector) -> DkimRecord:
        if isinstance(outbound_names, ProbeError):
            raise outbound_names
        return observe_dkim_record(target.domain, target.selector, outbound_names)

    selectors = selector_targets(inventory)
    if not isinstance(outbound_names, ProbeError):  # every selector's TXT in one round
        outbound_names.prefetch([(dkim_name(t.selector, t.domain), "TXT") for t in selectors])
    return Observations(selectors, observe_selector)


@pytest.fixture(scope="session")
def signing_keys(inventory: Inventory) -> Observations[str, SigningKey]:
    """The public half of each signing key file on the new host: read once per run."""
    domains = mail_domains(inventory)
    paths = {
        path
        for d in domains
        for s in inventory.outbound.dkim_selectors
        if (path := dkim_key_file(inventory, DkimSelector(d, s))) is not None
    }

    settings = settings_for(inventory)

    def read(path: str) -> SigningKey:
        if not inventory.new.ssh:
            raise ProbeError("no new.ssh in the inventory")
        return observe_signing_key(
            inventory.new.ssh, path, settings.ssh_config, settings.operation_timeout
        )

    return Observations(sorted(paths), read, key=lambda path: path, workers=4)


# --- MAIL04 ----------------------------------------------------------------------


@dataclass(frozen=True)
class MxSeen:
    """A domain's MX now (or why it could not be read), and as preflight recorded it."""

    now: tuple[MxRecord, ...] | ProbeError
    before: tuple[MxRecord, ...] | None  # None: nothing recorded (in preflight: not read)


def _observe_mx(
    names: AuthoritativeLookup, domains: list[MailDomain]
) -> dict[str, tuple[MxRecord, ...] | ProbeError]:
    names.prefetch([(domain.name, "MX") for domain in domains])  # one round for all of them
    seen = Observations(domains, lambda domain: observe_mx(domain.name, names))
    return {domain.name: seen.outcome(domain) for domain in domains}


@pytest.fixture(scope="session")
def mx_observations(
    inventory: Inventory, outbound_names: AuthoritativeLookup | ProbeError, records: Records
) -> dict[str, MxSeen]:
    """Each mail domain's MX; in preflight recorded, later compared with what was recorded."""
    if isinstance(outbound_names, ProbeError):
        return {}  # the checks say why
    now = _observe_mx(outbound_names, domain_targets(inventory))
    if records.recording:
        # Every domain was asked: one whose MX could not be read fails MAIL04 in this run.
        _record_mx(now, records)
        records.recorded("outbound")
        return {domain: MxSeen(mx, None) for domain, mx in now.items()}
    return {domain: MxSeen(mx, _recorded_mx(records, domain)) for domain, mx in now.items()}


def _record_mx(now: dict[str, tuple[MxRecord, ...] | ProbeError], records: Records) -> None:
    for domain, mx in now.items():
        if not isinstance(mx, ProbeError):
            records.write("mx", domain, [[r.preference, r.exchange] for r in mx])


def _recorded_mx(records: Records, domain: str) -> tuple[MxRecord, ...] | None:
    recorded = records.get("mx", domain)
    return None if recorded is None else parse_mx(recorded)


@recorder("outbound", sections=("dns", "outbound"))
def record_outbound(ctx: RecordContext) -> None:
    """The MX of every mail domain, when no check of this preflight read them (MAIL04)."""
    inventory = ctx.inventory
    settings = settings_for(inventory)
    servers = discover_zone_servers(inventory, settings)
    names = _lookup(inventory, servers, settings.operation_timeout)
    now = _observe_mx(names, domain_targets(inventory))
    _record_mx(now, ctx.records)
    failed = [str(mx) for mx in now.values() if isinstance(mx, ProbeError)]  # each names its domain
    if failed:
        raise ProbeError("; ".join(failed))
