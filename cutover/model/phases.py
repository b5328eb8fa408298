"""What must hold in each phase of a migration — the one table.

Checks never branch on the phase name; they ask this module what to expect.

>>> expectations(Phase.CUTOVER).served_by[Side.OLD]
<Side.NEW: 'new'>
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "AREAS",
    "Phase",
    "PhaseExpectations",
    "Side",
    "expectations",
    "prefix_area",
    "serving_ip",
]


class Phase(StrEnum):
    PREFLIGHT = "preflight"
    CUTOVER = "cutover"
    ACCEPTANCE = "acceptance"
    DECOMMISSION = "decommission"


class Side(StrEnum):
    """An IP address of the migration (and the server originally behind it)."""

    OLD = "old"
    NEW = "new"


@dataclass(frozen=True)
class PhaseExpectations:
    phase: Phase
    summary: str
    # Which server must answer on each IP. None: the IP may be closed.
    served_by: dict[Side, Side | None]
    # Where the apex A / MX targets may point on every authoritative server.
    dns_points_to: frozenset[Side]
    # The TTL must already be lowered (and for long enough).
    ttl_lowered: bool
    # Preflight observations are written to the baseline; later phases read it.
    records_baseline: bool


_TABLE: dict[Phase, PhaseExpectations] = {
    Phase.PREFLIGHT: PhaseExpectations(
        phase=Phase.PREFLIGHT,
        summary="before the DNS change: old IP is the old server, new IP the synced new one",
        served_by={Side.OLD: Side.OLD, Side.NEW: Side.NEW},
        dns_points_to=frozenset({Side.OLD}),
        ttl_lowered=True,
        records_baseline=True,
    ),
    Phase.CUTOVER: PhaseExpectations(
        phase=Phase.CUTOVER,
        summary="old services stopped, the old host forwards every port to the new IP",
        served_by={Side.OLD: Side.NEW, Side.NEW: Side.NEW},
        dns_points_to=frozenset({Side.OLD, Side.NEW}),
        ttl_lowered=True,
        records_baseline=False,
    ),
    Phase.ACCEPTANCE: PhaseExpectations(
        phase=Phase.ACCEPTANCE,
        summary="after the DNS change: everything is the new server",
        served_by={Side.OLD: Side.NEW, Side.NEW: Side.NEW},
        dns_points_to=frozenset({Side.NEW}),
        ttl_lowered=False,
        records_baseline=False,
    ),
    # The lab/state of acceptance (DNS switched, the old host still forwarding): the
    # phase asks whether the forwards may stop now. Only the DECOM checks run in it.
    Phase.DECOMMISSION: PhaseExpectations(
        phase=Phase.DECOMMISSION,
        summary="before switching the old host off: may the forwards stop now?",
        served_by={Side.OLD: Side.NEW, Side.NEW: Side.NEW},
        dns_points_to=frozenset({Side.NEW}),
        ttl_lowered=False,
        records_baseline=False,
    ),
}


def expectations(phase: Phase | str, *, old_ip_closed: bool = False) -> PhaseExpectations:
    """The expectations for a phase; `old_ip_closed` is the inventory's acceptance choice."""
    rules = _TABLE[Phase(phase)]
    if old_ip_closed and rules.phase in (Phase.ACCEPTANCE, Phase.DECOMMISSION):
        return PhaseExpectations(
            phase=rules.phase,
            summary=rules.summary + " (the old IP is closed)",
            served_by={Side.OLD: None, Side.NEW: Side.NEW},
            dns_points_to=rules.dns_points_to,
            ttl_lowered=rules.ttl_lowered,
            records_baseline=rules.records_baseline,
        )
    return rules


def serving_ip(expect: PhaseExpectations, server: Side) -> Side | None:
    """The IP on which `server` can be observed live in this phase (its own IP first).

    >>> serving_ip(expectations(Phase.CUTOVER), Side.OLD) is None
    True
    """
    sides = [side for side, by in expect.served_by.items() if by is server]
    return server if server in sides else (sides[0] if sides else None)


# Area markers (`-m imap`) follow from the check ID's prefix.
AREAS: dict[str, str] = {
    "PORT": "ports",
    "CAP": "ports",
    "TLS": "tls",
    "HTTP": "http",
    "IMAP": "imap",
    "POP": "imap",
    "AUTH": "imap",
    "MYSQL": "mysql",
    "DNS": "dns",
    "MAIL": "dns",
    "VFIO": "vfio",
    "VM": "vm",
    "DECOM": "decom",
}

CHECK_ID = re.compile(r"^([A-Z]+)([0-9]{2})\b")


def prefix_area(check_id: str) -> str:
    """The area a check ID's prefix names (a check may declare another: cutover.model.catalogue).

    >>> prefix_area("POP01")
    'imap'
    """
    match = CHECK_ID.match(check_id)
    if match is None or match.group(1) not in AREAS:
        raise KeyError(f"not a known check ID: {check_id!r}")
    return AREAS[match.group(1)]
