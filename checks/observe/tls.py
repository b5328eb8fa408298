"""Observations of the TLS versions each port accepts (TLS05), and the old server's in the baseline.

`tls_versions` asks every TLS port of the phase once per TLS version (TLSv1
... TLSv1.3), all concurrently, the first time TLS05 asks. In preflight
`tls_version_records` first records the versions the old server accepted on
each TLS service (as its first address that answers shows them), so the
cutover and acceptance runs, where the old IP forwards to the new server,
still know what old's clients used. The recorder does the same at the end
of a preflight whose selection ran no TLS05.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from checks.observe.services import SECTIONS
from checks.progress import Stage
from checks.record import RecordContext, Records, recorder
from cutover.model.endpoints import Endpoint, endpoints, side_endpoints
from cutover.model.inventory import Inventory, Service, TlsMode
from cutover.model.phases import PhaseExpectations, Side, serving_ip
from cutover.model.settings import settings_for
from cutover.probes.connect import ProbeError
from cutover.probes.services import Observations, accepted_versions
from cutover.progress import Progress

TlsVersions = Observations[Endpoint, tuple[str, ...]]

KIND = "tls_versions"  # the baseline section: service label -> versions old accepted


def observe_tls_versions(
    inventory: Inventory, expect: PhaseExpectations, progress: Progress | None = None
) -> TlsVersions:
    settings = settings_for(inventory)
    return Observations(
        [e for e in endpoints(inventory, expect) if e.service.tls is not TlsMode.NONE],
        lambda endpoint: accepted_versions(endpoint, settings),
        workers=8,  # four connections each: at most 32 at once
        progress=progress,
    )


@pytest.fixture(scope="session")
def tls_versions(
    inventory: Inventory, expect: PhaseExpectations, observing: Callable[[str, str], Stage]
) -> TlsVersions:
    """The TLS versions every TLS port of the phase accepts: observed once per run, on first use."""
    return observe_tls_versions(inventory, expect, observing("TLS versions", "ports"))


def old_versions(
    versions: TlsVersions, inventory: Inventory, service: Service, side: Side
) -> tuple[Endpoint, tuple[str, ...]]:
    """The versions the old server accepts for `service`, on its first address that answers.

    Raises the first address's `ProbeError` when none answers.
    """
    found = side_endpoints(inventory, service, side)
    first: ProbeError | None = None
    for endpoint in found:
        outcome = versions.outcome(endpoint)
        if not isinstance(outcome, ProbeError):
            return endpoint, outcome
        first = first or outcome
    assert first is not None
    raise first


def record_tls_versions(
    records: Records, versions: TlsVersions, inventory: Inventory, expect: PhaseExpectations
) -> None:
    """Record, per TLS service, the versions old accepted (what did not answer is not)."""
    old_side = serving_ip(expect, Side.OLD)
    if old_side is not None:
        accepted = {}
        for service in inventory.services:
            if service.tls is TlsMode.NONE:
                continue
            try:
                accepted[service.label] = list(
                    old_versions(versions, inventory, service, old_side)[1]
                )
            except ProbeError:
                continue
        records.write_many(KIND, accepted)
    records.recorded(KIND)


@recorder(KIND, sections=SECTIONS)
def record_tls_versions_at_end(ctx: RecordContext) -> None:
    """The old server's TLS versions, for a preflight whose selection ran no TLS05."""
    record_tls_versions(
        ctx.records, observe_tls_versions(ctx.inventory, ctx.expect), ctx.inventory, ctx.expect
    )


@pytest.fixture(scope="session")
def tls_version_records(
    records: Records, tls_versions: TlsVersions, inventory: Inventory, expect: PhaseExpectations
) -> Records:
    """The baseline TLS05 reads; in preflight, the old server's versions recorded first."""
    if records.recording:
        record_tls_versions(records, tls_versions, inventory, expect)
    return records
