"""The lab nameservers' own capacity for the suite's DNS questions, and the suite's engine alone.

`python -m bench.dnscap capacity INVENTORY` (from the client namespace): the same
questions the suite's DNS area asks (`bench.raw.dns_questions`: every
zone's questions on every nameserver, then the SQL rows' names and types
not asked yet), each query's wire built before the clock starts; then one
connected UDP socket per nameserver, WINDOW queries in flight on each, every
answer counted by message ID and never parsed. A query unanswered for a
second is sent again. Run once per window size; the fastest run is the
capacity (questions per second), printed as JSON.

This is a load generator for the bench only: it assumes nothing hostile
answers (the lab's own PowerDNS), so it reads no more than the ID.

`python -m bench.dnscap engine INVENTORY`: the suite's own DNS observation
(`dns_observed`: every zone, the SQL rows read once per nameserver in the
same batch, their questions) without pytest around it, timed from the
start of the observation to the last answer; printed as JSON.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import time
from pathlib import Path
from typing import Any

import dns.message

from bench.raw import Inventory, dns_questions

WINDOWS = (16, 64, 256)
EDNS_PAYLOAD = 1232  # as the suite's engine asks
RESEND_AFTER = 1.0
GIVE_UP_AFTER = 30.0


def wires(questions: list[tuple[str, str]]) -> list[bytes]:
    """Each question as query wire (RD off, EDNS0 as the suite sends it), ID zero."""
    return [
        dns.message.make_query(name, rdtype, flags=0, use_edns=0, payload=EDNS_PAYLOAD).to_wire()
        for name, rdtype in questions
    ]


class _Stream:
    """One server's queries through one connected UDP socket, `window` in flight."""

    def __init__(self, server: str, queries: list[bytes], window: int) -> None:
        self.sock = socket.socket(
            socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM
        )
        self.sock.connect((server, 53))
        self.sock.setblocking(False)
        self.queries = queries
        self.window = window
        self.next = 0
        self.in_flight: dict[int, tuple[int, float]] = {}  # ID -> (query index, sent at)
        self.answered = 0

    def fill(self, now: float) -> None:
        while self.next < len(self.queries) and len(self.in_flight) < self.window:
            index = self.next
            qid = index % 65536
            if qid in self.in_flight:
                break
            self.sock.send(qid.to_bytes(2, "big") + self.queries[index][2:])
            self.in_flight[qid] = (index, now)
            self.next += 1

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                return
            except ConnectionRefusedError:
                continue
            if self.in_flight.pop(int.from_bytes(data[:2], "big"), None) is not None:
                self.answered += 1

    def resend(self, now: float) -> None:
        for qid, (index, sent) in list(self.in_flight.items()):
            if now - sent > RESEND_AFTER:
                self.sock.send(qid.to_bytes(2, "big") + self.queries[index][2:])
                self.in_flight[qid] = (index, now)

    @property
    def done(self) -> bool:
        return self.answered == len(self.queries)


def blast(by_server: dict[str, list[bytes]], window: int) -> float:
    """Seconds until every query of every server is answered (all servers at once)."""
    streams = [_Stream(server, queries, window) for server, queries in by_server.items()]
    selector = selectors.DefaultSelector()
    for stream in streams:
        selector.register(stream.sock, selectors.EVENT_READ, stream)
    started = time.perf_counter()
    try:
        for stream in streams:
            stream.fill(started)
        while not all(s.done for s in streams):
            now = time.perf_counter()
            if now - started > GIVE_UP_AFTER:
                missing = sum(len(s.queries) - s.answered for s in streams)
                raise SystemExit(f"dnscap: {missing} queries unanswered after {GIVE_UP_AFTER} s")
            for key, _ in selector.select(timeout=RESEND_AFTER / 4):
                stream = key.data
                stream.drain()
                stream.fill(time.perf_counter())
            for stream in streams:
                stream.resend(time.perf_counter())
        return time.perf_counter() - started
    finally:
        selector.close()
        for stream in streams:
            stream.sock.close()


def capacity(inventory: Path) -> dict[str, object]:
    asked = dns_questions(Inventory(inventory))
    by_server: dict[str, list[tuple[str, str]]] = {}
    for server, name, rdtype in asked:
        by_server.setdefault(server, []).append((name, rdtype))
    built = {server: wires(questions) for server, questions in by_server.items()}
    blast(built, WINDOWS[0])  # warm the servers' caches and packet paths, as a first run would
    runs = {window: blast(built, window) for window in WINDOWS}
    window, seconds = min(runs.items(), key=lambda item: item[1])
    return {
        "questions": len(asked),
        "servers": len(built),
        "seconds": seconds,
        "per_second": len(asked) / seconds,
        "window": window,
        "runs": {str(w): s for w, s in runs.items()},
    }


def engine(inventory: Path) -> dict[str, object]:
    from checks.observe.dns import _sql_follow_up, _zones_served_by, discover_zone_servers
    from cutover.model.inventory.loading import load_inventory
    from cutover.model.settings import settings_for
    from cutover.probes.dns.zones import observe_zones_and

    loaded = load_inventory(inventory)
    settings = settings_for(loaded)
    zones = loaded.dns.zones
    started = time.perf_counter()
    servers = discover_zone_servers(loaded, settings)
    reads: list[dict[Any, Any]] = []
    follow_ups = []
    for access in loaded.dns.sql:
        served_by = _zones_served_by(str(access.nameserver), zones, servers)
        reads.append({})
        follow_ups.append(_sql_follow_up(access, served_by, settings, reads[-1]))
    _, answers = observe_zones_and(zones, servers, follow_ups, timeout=settings.operation_timeout)
    seconds = time.perf_counter() - started
    return {"questions": len(answers), "seconds": seconds, "per_second": len(answers) / seconds}


def dns_sections_only(data: dict[str, Any]) -> None:
    """An inventory of the same pair with no area but DNS (for `derived_inventory`).

    A preflight of checks/test_dns.py also records, at its end, the baseline of
    every other area the inventory configures (mailboxes, logins, vhosts,
    grants, outbound lookups): without those sections it does the DNS work only.
    """
    for section in ("mail", "http", "mysql", "outbound", "hostnames"):
        data.pop(section, None)


def measured(what: str, inventory: Path) -> dict[str, Any]:
    """`capacity` or `engine` of `inventory`, run from the client namespace (for the bench)."""
    from bench.harness import PYTHON, in_client, measure

    run = measure(in_client(PYTHON, "-m", "bench.dnscap", what, str(inventory)))
    found: dict[str, Any] = json.loads(run.output.strip().splitlines()[-1])
    return found


def main(argv: list[str]) -> int:
    what, inventory = argv
    print(json.dumps((capacity if what == "capacity" else engine)(Path(inventory))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
