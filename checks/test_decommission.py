"""Decommission: may the forwards stop and the old host be switched off now?

Semantics: docs/semantics.md, "Decommission". The phase runs in the state of
acceptance (DNS switched, the old host still forwarding) and only these
checks run in it: acceptance already proved the new server. What the checks
judge is observed in checks/observe/ (the DNS switch: checks/observe/dns.py).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from checks.declare import check
from checks.observe.dns import Switch, duration, iso, switch_wait
from checks.support import parametrize
from checks.targets.dns import ZoneTarget
from cutover.model.inventory import Inventory


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "dns_zone" in metafunc.fixturenames:
        parametrize(metafunc, "dns_zone", lambda inv: [ZoneTarget(z) for z in inv.dns.zones])


# --- DECOM01 -----------------------------------------------------------------


def dns_wait_left(switch: Switch, allowance: int, now: float) -> str | None:
    """The evidence while resolvers may still hand out the old records; None once settled.

    >>> dns_wait_left(Switch("example.test", 0.0, 300, "TTL history"), 600, 1000.0) is None
    True
    """
    left = switch_wait(switch, allowance, now)
    if left <= 0:
        return None
    return (
        f"switched to the new IP on every server {iso(switch.switched)} "
        f"({duration(now - switch.switched)} ago); old TTL {switch.old_ttl} s "
        f"({switch.old_ttl_from}) + stale allowance {allowance} s: {duration(left)} left "
        f"(until {iso(switch.switched + switch.old_ttl + allowance)})"
    )


@check("DECOM01", phases=("decommission",))
def test_dns_settled(
    dns_zone: ZoneTarget,
    dns_switches: dict[str, Switch],
    inventory: Inventory,
    record: Any,
) -> None:
    """DECOM01: the DNS switch is older than the old TTL plus the stale allowance.

    Why: a resolver that fetched the old records just before the switch keeps
    sending clients to the old IP for the old TTL, and (RFC 8767 serve-stale)
    may keep serving them for days when it cannot refresh; stopping the
    forwards before then cuts those clients off.
    Inputs: the baseline (when an acceptance or decommission run first saw every
    authoritative server point the zone at the new IP, and the TTL history of
    DNS02/03), dns.stale_allowance (default 3 days), dns.switch_acknowledged.
    Fix: wait the time given; or state in dns.switch_acknowledged why no resolver
    still serves the old records (recorded in the report).
    """
    __tracebackhide__ = True
    switch = dns_switches.get(dns_zone.name)
    if switch is None:
        pytest.fail(
            f"{dns_zone.name}: the DNS switch was never seen: no acceptance or decommission "
            "run saw every authoritative server point the apex and MX targets at "
            f"{inventory.new.address} (the new IP) only (see DNS05 in acceptance)",
            pytrace=False,
        )
    allowance = inventory.dns.stale_allowance
    record(
        dns_switched=iso(switch.switched),
        old_ttl=switch.old_ttl,
        old_ttl_from=switch.old_ttl_from,
        stale_allowance=allowance,
    )
    now = time.time()
    waiting = dns_wait_left(switch, allowance, now)
    acknowledgement = inventory.dns.switch_acknowledged
    if acknowledgement:
        left = max(0, round(switch_wait(switch, allowance, now)))
        record(switch_acknowledged=acknowledgement, switch_wait_waived=left)
        return
    if waiting is not None:
        end = iso(switch.switched + switch.old_ttl + allowance)
        left = duration(switch_wait(switch, allowance, now))
        pytest.fail(
            f"{dns_zone.name}: switched too recently, {left} "
            f"left (until {end}): resolvers may still send clients to the old IP (wait, or "
            f"state it in dns.switch_acknowledged):\n  {waiting}",
            pytrace=False,
        )
