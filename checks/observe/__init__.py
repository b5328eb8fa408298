"""The observation layer: every session observation of a check area, as pytest fixtures.

A check (checks/test_*.py) judges; it never talks to a server and never
writes the baseline. What it judges comes from a fixture here, one module
per area. A fixture observes through `cutover.probes` (plain data back), and
in preflight records the old server's side through the baseline service
(`checks.record`). Nothing here runs at collection time.

The plugin loads every module of OBSERVERS as a pytest plugin, so their
fixtures are available to every check module.
"""

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
