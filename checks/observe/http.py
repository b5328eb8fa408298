"""Observations of the HTTP area: every vhost on every IP, and the new server's Apache config.

`vhost_responses` fetches each vhost (by its Host header) on each IP once per
run, concurrently, on first use. In preflight `vhost_records` first records the
old server's answer to every vhost (status and body digest, HTTP01 compares
with them later); the recorder does the same at the end of a preflight whose
selection ran no HTTP01. `apache_config` reads the new server's Apache config
over ssh (HTTP02). Semantics: docs/semantics.md "HTTP vhosts".
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from checks.progress import Stage
from checks.record import RecordContext, Records, recorder
from checks.targets.services import VhostTarget, vhost_targets
from cutover.model.endpoints import endpoint_of
from cutover.model.inventory import Inventory
from cutover.model.phases import PhaseExpectations, Side, serving_ip
from cutover.model.settings import settings_for
from cutover.probes.connect import ProbeError
from cutover.probes.services import Observations
from cutover.probes.services.apache import ApacheConfig, observe_config
from cutover.probes.services.http import HttpResponse, fetch
from cutover.progress import Progress

Vhosts = Observations[VhostTarget, HttpResponse]
KIND = "vhosts"


def observe_vhosts(
    inventory: Inventory, expect: PhaseExpectations, progress: Progress | None = None
) -> Vhosts:
    settings = settings_for(inventory)
    return Observations(
        vhost_targets(inventory, expect),
        lambda t: fetch(t.endpoint, settings, t.vhost.host, t.vhost.path),
        progress=progress,
    )


@pytest.fixture(scope="session")
def vhost_responses(
    inventory: Inventory, expect: PhaseExpectations, observing: Callable[[str, str], Stage]
) -> Vhosts:
    """Every vhost on every IP: fetched once per run, concurrently, on first use."""
    return observe_vhosts(inventory, expect, observing("HTTP vhosts", "fetches"))


def old_vhost(vhost: VhostTarget, inventory: Inventory, side: Side) -> VhostTarget:
    """The same vhost requested where the old server answers (`side`), on that host's first
    address: the reference is one per server, whichever address a vhost is judged on."""
    return VhostTarget(vhost.vhost, endpoint_of(inventory, vhost.endpoint.service, side))


def record_vhosts(
    records: Records, responses: Vhosts, inventory: Inventory, expect: PhaseExpectations
) -> None:
    """Record the old server's answer to every vhost (one that did not answer is not recorded)."""
    old_side = serving_ip(expect, Side.OLD)
    if old_side is not None:
        answers = {}
        for target in vhost_targets(inventory, expect):
            old = old_vhost(target, inventory, old_side)
            try:
                response = responses.get(old)
            except Exception:  # HTTP01 of this vhost fails saying why
                continue
            answers[old.key] = {
                "status": response.status,
                "digest": response.digest(old.vhost.ignore),
            }
        records.write_many("vhosts", answers)
    records.recorded(KIND)


@recorder(KIND, sections=("http",))
def record_vhosts_at_end(ctx: RecordContext) -> None:
    """The vhost answers of a preflight whose selection ran no HTTP01."""
    responses = observe_vhosts(ctx.inventory, ctx.expect)
    record_vhosts(ctx.records, responses, ctx.inventory, ctx.expect)


@pytest.fixture(scope="session")
def vhost_records(
    records: Records, vhost_responses: Vhosts, inventory: Inventory, expect: PhaseExpectations
) -> Records:
    """The baseline HTTP01 reads; in preflight, every old vhost answer recorded first."""
    if records.recording:
        record_vhosts(records, vhost_responses, inventory, expect)
    return records


@pytest.fixture(scope="session")
def apache_config(inventory: Inventory) -> ApacheConfig | ProbeError | None:
    """The new server's Apache config over ssh (`new.ssh`), why it could not be read, or None
    when the inventory gives no `new.ssh`."""
    if not inventory.new.ssh:
        return None
    settings = settings_for(inventory)
    try:
        return observe_config(inventory.new.ssh, settings.ssh_config, settings.operation_timeout)
    except ProbeError as exc:
        return exc
