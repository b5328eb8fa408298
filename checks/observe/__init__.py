"""The observation layer: every session observation of a check area, as pytest fixtures.

A check (checks/test_*.py) judges; it never talks to a server and never
writes the baseline. What it judges comes from a fixture here, one module
per area. A fixture observes through `cutover.probes` (plain data back), and
in preflight records the old server's side through the baseline service
(`checks.record`). Nothing here runs at collection time.

The plugin loads every module of OBSERVERS as a pytest plugin, so their
fixtures are available to every check module; a run given only some check
modules (`pytest ... checks/test_ports.py`) loads only the observers those
modules' fixtures come from (NEEDED_BY), which spares it importing the
probes of the other areas (DNS, MySQL, IMAP...) at start. A preflight's
end-of-run baseline completion still loads them all (checks/record.py).
"""

from __future__ import annotations

from collections.abc import Sequence

OBSERVERS = (
    "checks.observe.services",
    "checks.observe.tls",
    "checks.observe.http",
    "checks.observe.host",
    "checks.observe.dns",
    "checks.observe.outbound",
    "checks.observe.mysql",
    "checks.observe.imap",
    "checks.observe.mail",
    "checks.observe.decommission",
)

# Per check module, the observers its checks' fixtures (and their fixtures) come from,
# and whose hooks it needs (host's `device` parametrization). tests/test_observers.py
# proves it against a full collection of every phase.
NEEDED_BY: dict[str, tuple[str, ...]] = {
    "test_ports": ("checks.observe.services", "checks.observe.mail"),
    "test_tls": ("checks.observe.services", "checks.observe.tls"),
    "test_http": ("checks.observe.http",),
    "test_imap": ("checks.observe.services", "checks.observe.imap"),
    "test_mailclients": ("checks.observe.services", "checks.observe.mail"),
    "test_mysql": ("checks.observe.mysql",),
    "test_dns": ("checks.observe.dns",),
    "test_outbound": ("checks.observe.dns", "checks.observe.outbound"),
    "test_decommission": ("checks.observe.dns", "checks.observe.decommission"),
    "test_vfio": ("checks.observe.host",),
    "test_vm": ("checks.observe.host",),
}


def observers_for(modules: Sequence[str] | None) -> tuple[str, ...]:
    """The observers a run of these check modules needs (None, or one unknown: all)."""
    if modules is None or not all(module in NEEDED_BY for module in modules):
        return OBSERVERS
    wanted = {name for module in modules for name in NEEDED_BY[module]}
    return tuple(name for name in OBSERVERS if name in wanted)
