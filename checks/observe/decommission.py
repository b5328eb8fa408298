"""Observations of the decommission phase on the old host (over `old.ssh`, read-only).

Semantics: docs/semantics.md, "Decommission". Each observation is one
bounded script on the old host (cutover.probes.decommission): the clients
that arrive on the forwarded ports during `decommission.observe_seconds`,
what arrived in old's Maildirs, queue and MySQL data directory after the
cutover, and the processes on old that use the forwards. Each fixture
returns the observation, or the `ProbeError` that says why there is none;
without `old.ssh` it returns None (the checks skip, saying so). Nothing here
runs at collection time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from cutover.model.inventory import Protocol
from cutover.model.settings import settings_for
from cutover.probes.connect import ProbeError
from cutover.probes.decommission import (
    ClientsSeen,
    Dependants,
    Stranded,
    observe_clients,
    observe_dependants,
    observe_stranded,
)

if TYPE_CHECKING:
    from cutover.model.inventory import Inventory

__all__ = ["forwarded_ports"]


def forwarded_ports(inventory: Inventory) -> list[int]:
    """The ports the old host forwards: every service's port."""
    return sorted({service.port for service in inventory.services})


@pytest.fixture(scope="session")
def decom_clients(inventory: Inventory) -> ClientsSeen | ProbeError | None:
    """Connections from anyone but the suite on old's forwarded ports, over the window (DECOM02)."""
    if not inventory.old.ssh:
        return None
    try:
        return observe_clients(
            inventory.old.ssh,
            [str(address) for address in inventory.old.addresses],
            forwarded_ports(inventory),
            inventory.decommission.observe_seconds,
            settings_for(inventory),
            ignored=[str(a) for a in inventory.decommission.ignore_clients],
        )
    except ProbeError as exc:
        return exc


@pytest.fixture(scope="session")
def decom_stranded(inventory: Inventory) -> Stranded | ProbeError | None:
    """Maildir files, queued mail and MySQL data files on old newer than the cutover (DECOM03)."""
    if not inventory.old.ssh:
        return None
    smtp = any(s.protocol is Protocol.SMTP for s in inventory.services)
    try:
        return observe_stranded(
            inventory.old.ssh,
            forwarded_ports(inventory),
            inventory.decommission.maildir_roots,
            inventory.decommission.mysql_datadir,
            settings_for(inventory),
            with_queue=smtp,
        )
    except ProbeError as exc:
        return exc


@pytest.fixture(scope="session")
def decom_dependants(inventory: Inventory) -> Dependants | ProbeError | None:
    """Processes on old connected to the forwarded MySQL socket or a forward's port (DECOM04)."""
    if not inventory.old.ssh:
        return None
    try:
        return observe_dependants(
            inventory.old.ssh,
            str(inventory.old.address),
            inventory.mysql.socket,
            forwarded_ports(inventory),
            settings_for(inventory),
        )
    except ProbeError as exc:
        return exc
