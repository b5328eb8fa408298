"""Decommission: may the forwards stop and the old host be switched off now?

Semantics: docs/semantics.md, "Decommission". The phase runs in the state of
acceptance (DNS switched, the old host still forwarding) and only these
checks run in it: acceptance already proved the new server. What the checks
judge is observed in checks/observe/ (the DNS switch: checks/observe/dns.py;
the old host, read-only over `old.ssh`, for DECOM02-DECOM04:
checks/observe/decommission.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from checks.declare import check
from checks.observe.dns import Switch, duration, iso, switch_wait
from checks.support import no_problems, parametrize, skip_unless
from checks.targets.dns import ZoneTarget
from cutover.model.endpoints import listed
from cutover.model.inventory import Inventory, Protocol
from cutover.probes.connect import ProbeError
from cutover.probes.decommission import MAX_ITEMS, ClientsSeen, Dependants, Stranded

Record = Callable[..., None]
T = TypeVar("T")


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
            f"{', '.join(map(str, inventory.new.addresses))} (the new IP) only "
            "(see DNS05 in acceptance)",
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


# --- DECOM02-DECOM04: the old host itself (helper B) -----------------------------------

# What a client still arriving on a port most likely is (DECOM02's evidence).
LIKELY_CLIENT = {
    Protocol.SMTP: "an MTA retrying to a cached MX (or relaying to the old IP by configuration)",
    Protocol.IMAP: "a mail client or device configured by IP, or behind a stale DNS cache",
    Protocol.POP3: "a mail client or device configured by IP, or behind a stale DNS cache",
    Protocol.HTTP: "a browser, proxy or monitor with a stale DNS cache or a pinned IP",
    Protocol.MYSQL: "an application configured with the old IP as its database host",
}


def _old_host_seen(found: T | ProbeError | None, what: str) -> T:
    __tracebackhide__ = True
    skip_unless(found is not None, "no old.ssh in the inventory: the old host cannot be read")
    if isinstance(found, ProbeError):
        pytest.fail(f"cannot read {what} on the old host: {found}", pytrace=False)
    assert found is not None
    return found


def _likely(inventory: Inventory, port: int) -> str:
    protocols = {s.protocol for s in inventory.services if s.port == port}
    return "; ".join(LIKELY_CLIENT[p] for p in sorted(protocols)) or "a client of this port"


@check("DECOM02", phases=("decommission",))
def test_no_clients_left_on_the_old_address(
    inventory: Inventory, decom_clients: ClientsSeen | ProbeError | None, record: Record
) -> None:
    """DECOM02: during the observation window no client but the suite connects to the old IP.

    Why: a client that still arrives on the old IP's forwarded ports (a stale
    DNS cache, a device or application configured by IP, an MTA retrying to
    the MX it cached) loses its mail or logins the moment the forwards stop.
    Inputs: old.ssh (the old host's connections are read there with `ss`,
    once a second); decommission.observe_seconds (default 60); the services'
    ports; decommission.ignore_clients; the suite's own address toward each old
    address and the ignored ones are left out.
    Fix: find each listed client and point it at the name (or the new IP);
    wait for the caches to expire; then run this phase again.
    """
    seen = _old_host_seen(decom_clients, "the connections on the forwarded ports")
    record(
        observe_seconds=f"{seen.seconds:g}",
        samples=seen.samples,
        suite_addresses=" ".join(sorted(seen.excluded)),
    )
    problems = []
    ignored = {str(a) for a in inventory.decommission.ignore_clients}
    also = (
        f", and {', '.join(sorted(ignored))} as decommission.ignore_clients says" if ignored else ""
    )
    for port, clients in seen.by_port.items():
        listing = ", ".join(
            f"{address} ({count} connection{'s' if count != 1 else ''})"
            for address, count in sorted(clients.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        record(**{f"clients@{port}": listing})
        problems.append(f"port {port}: {listing} — likely {_likely(inventory, port)}")
    if seen.truncated:
        problems.append(f"more clients than listed (at most {MAX_ITEMS} per port are named)")
    no_problems(
        problems,
        f"clients still connect to the old IP {listed(inventory.old)} "
        f"(watched {seen.seconds:g} s, {seen.samples} samples, the suite's "
        f"{', '.join(sorted(seen.excluded - ignored))} left out{also})",
    )


@check("DECOM03", phases=("decommission",))
def test_nothing_stranded_on_old(
    inventory: Inventory, decom_stranded: Stranded | ProbeError | None, record: Record
) -> None:
    """DECOM03: nothing arrived on the old host after the cutover: no mail, no queue, no writes.

    Why: a message delivered into old's Maildirs after the last sync, mail
    waiting in old's queue, or a write to old's MySQL data directory exists
    only on the old host: switching it off loses it. (A Postfix restarted on
    old, a cron job writing to the database, a queue that never flushed.)
    Inputs: old.ssh; decommission.maildir_roots (files under new/ and cur/),
    decommission.mysql_datadir, `postqueue -j` on old (when a service speaks
    SMTP). The cutover moment is the start of the oldest process listening
    on a forwarded port on old (its own clock).
    Fix: copy each listed message to new (doveadm sync, or deliver it again),
    flush or move the queue to new (`postqueue -f` with relayhost = new),
    replay the changed tables on new; stop whatever wrote them; run again.
    """
    seen = _old_host_seen(decom_stranded, "what arrived after the cutover")
    if seen.cutover_at is None:
        pytest.fail(
            f"cannot date the cutover: no process on {inventory.old.ssh} listens on a forwarded "
            "port (are the forwards running? this phase runs before they stop)",
            pytrace=False,
        )
    cutover_at = datetime.fromtimestamp(seen.cutover_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    record(cutover_at=cutover_at, cutover_by=seen.cutover_by)
    problems = []
    for message in seen.messages:
        problems.append(
            f"mailbox {message.mailbox}: message {message.message_id or '(no Message-ID)'} "
            f"dated {message.date or '(no Date)'}, arrived "
            f"{datetime.fromtimestamp(message.mtime, UTC):%Y-%m-%d %H:%M:%S} UTC"
        )
    if seen.queue is None:
        problems.append("old's mail queue cannot be read: no postqueue on the old host")
    elif seen.queue_error:
        problems.append(f"old's mail queue cannot be read: postqueue said {seen.queue_error}")
    for queued in seen.queue or ():
        reason = f" ({queued.reason})" if queued.reason else ""
        problems.append(
            f"queue {queued.queue_name} {queued.queue_id}: from <{queued.sender}> to "
            f"{', '.join(f'<{r}>' for r in queued.recipients) or 'nobody'}{reason}"
        )
    if seen.datadir_files:
        tables = sorted({_table_of(path) for path in seen.datadir_files})
        problems.append(
            f"MySQL data directory {inventory.decommission.mysql_datadir} changed: "
            + ", ".join(tables[:20])
            + (f" (+{len(tables) - 20} more)" if len(tables) > 20 else "")
        )
    if seen.truncated:
        problems.append("more than listed (the listing is bounded)")
    record(messages=len(seen.messages), queued=len(seen.queue or ()))
    no_problems(problems, f"left on the old host since the cutover ({cutover_at})")


def _table_of(path: str) -> str:
    """'app/orders.ibd' -> 'table app.orders'; other files as they are."""
    directory, _, name = path.rpartition("/")
    stem, dot, suffix = name.rpartition(".")
    if directory and "/" not in directory and dot and suffix in TABLE_FILES:
        return f"table {directory}.{stem}"
    return f"file {path}"


TABLE_FILES = frozenset({"ibd", "frm", "MYD", "MYI", "MAD", "MAI", "CSV", "ARZ"})


@check("DECOM04", phases=("decommission",))
def test_nothing_local_uses_the_forwards(
    inventory: Inventory, decom_dependants: Dependants | ProbeError | None, record: Record
) -> None:
    """DECOM04: no process on the old host uses the forwarded MySQL socket or a forward.

    Why: applications on the old host that still talk to MySQL through the
    socket (socat -> ssh tunnel -> new) or to a forward's port die when the
    forwards stop: they must move first, or be pointed at the new server.
    Inputs: old.ssh (`ss -xp` and `ss -tp` on old, command lines from /proc);
    mysql.socket; the services' ports on the old IP; ssh -L ports. The
    forwarders themselves (the processes listening there and their children)
    are left out.
    Fix: move each listed process to the new host, or point it at the new
    server (its database host, its SMTP relay); then run again.
    """
    seen = _old_host_seen(decom_dependants, "the processes using the forwards")
    record(forwarders=" ".join(str(pid) for pid in seen.forwarders))
    problems = [
        f"pid {p.pid} {p.name} via {p.via}: {p.cmdline or '(command line unreadable)'}"
        for p in seen.processes
    ]
    no_problems(problems, f"processes on the old host {inventory.old.ssh} still use the forwards")
