"""Watch mode: probe every service on both IPs continuously and measure the real downtime.

Every `interval` seconds each service on every address of the old and the
new host (both families of a dual-stack host, each its own endpoint:
`imaps-993-old-v4`, `imaps-993-old-v6`) is probed at
the protocol level (the same probes as PORT01: greeting, EHLO/CAPABILITY,
STARTTLS upgrade, HTTP status, MySQL handshake), each bounded by the
inventory's timeouts, in a small thread pool. An endpoint whose last probe
is still running is not probed again, so a hanging peer costs one worker,
not a pile of them. When stopped (SIGINT/SIGTERM or after `duration`), the
watcher reports per endpoint the windows in which it did not answer
correctly: start, end, duration, what failed (the probe's one-line reason)
and which server answered before and after.

A window starts at the first failed probe and ends at the first good one
after it, both timed when the probe started (the moment the connection was
attempted). The true edge lies between that probe and the previous one, so
each edge is exact to within one interval plus one probe's duration;
`uncertainty_s` in the report says by how much for each window.

>>> timeline = Timeline("smtp-25-old")
>>> timeline.add(Observation(10.0, 0.01, "old.example.test", "old.example.test", None))
>>> timeline.add(Observation(10.2, 0.01, None, None, "connection refused by 198.51.100.10:25"))
>>> timeline.add(Observation(10.4, 0.01, "new.example.test", "new.example.test", None))
>>> [(w.start, w.end, w.before, w.after) for w in timeline.windows]
[(10.2, 10.4, 'old.example.test', 'new.example.test')]
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cutover.model.endpoints import Endpoint, family, side_endpoints
from cutover.model.inventory import Inventory, Service, TlsMode
from cutover.model.phases import Side
from cutover.model.settings import ProbeSettings, settings_for
from cutover.probes.connect import ProbeError
from cutover.probes.services import ServiceAnswer, observe

__all__ = [
    "DEFAULT_INTERVAL",
    "Observation",
    "Timeline",
    "Window",
    "answer_problem",
    "probe_once",
    "render_table",
    "watch",
    "watch_endpoints",
]

DEFAULT_INTERVAL = 0.2
DEFAULT_WORKERS = 16
MAX_PROBLEMS = 5  # distinct failure reasons kept per window


@dataclass(frozen=True)
class Observation:
    """One probe of one endpoint: when it started (epoch s), how long it took, what it saw."""

    at: float
    took: float
    identity: str | None  # short: the server's own name, else the certificate fingerprint
    who: str | None  # all identity evidence (`ServiceAnswer.who`)
    problem: str | None  # None: the endpoint answered correctly

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass
class Window:
    """A stretch of time in which an endpoint did not answer correctly."""

    start: float  # the first failed probe
    end: float | None  # the first good probe after it (None: still failing when stopped)
    last_ok: float | None  # the last good probe before it
    last_failed: float
    before: str | None  # who answered before (None: never answered before)
    after: str | None = None
    problems: list[str] = field(default_factory=list)
    failed_probes: int = 0

    def duration(self, stopped: float) -> float:
        return (self.end if self.end is not None else stopped) - self.start

    @property
    def uncertainty(self) -> float:
        """How much earlier each edge may really have been (the gap to the probe before it)."""
        gaps = [self.start - self.last_ok] if self.last_ok is not None else []
        if self.end is not None:
            gaps.append(self.end - self.last_failed)
        return max(gaps, default=0.0)

    def to_json(self, stopped: float) -> dict[str, Any]:
        return {
            "start": round(self.start, 4),
            "end": None if self.end is None else round(self.end, 4),
            "start_utc": _utc(self.start),
            "end_utc": None if self.end is None else _utc(self.end),
            "duration_s": round(self.duration(stopped), 4),
            "open": self.end is None,
            "uncertainty_s": round(self.uncertainty, 4),
            "failed": self.problems[0] if self.problems else "",
            "problems": self.problems,
            "failed_probes": self.failed_probes,
            "before": self.before,
            "after": self.after,
        }


class Timeline:
    """What one endpoint answered over time, folded into outage windows and identity changes."""

    def __init__(self, endpoint_id: str) -> None:
        self.endpoint_id = endpoint_id
        self.probes = 0
        self.failed_probes = 0
        self.first: str | None = None  # who answered first, and last
        self.last: str | None = None
        self.last_ok: float | None = None
        self.windows: list[Window] = []
        self.changes: list[tuple[float, str, str]] = []  # (when, from, to) without a gap

    @property
    def open_window(self) -> Window | None:
        return self.windows[-1] if self.windows and self.windows[-1].end is None else None

    def add(self, seen: Observation) -> None:
        self.probes += 1
        window = self.open_window
        if seen.ok:
            if window is not None:
                window.end, window.after = seen.at, seen.identity
            elif self.last is not None and seen.identity != self.last:
                self.changes.append((seen.at, self.last, seen.identity or "?"))
            if self.first is None:
                self.first = seen.identity
            self.last, self.last_ok = seen.identity, seen.at
            return
        self.failed_probes += 1
        problem = seen.problem or "?"
        if window is None:
            window = Window(seen.at, None, self.last_ok, seen.at, self.last)
            self.windows.append(window)
        window.last_failed = seen.at
        window.failed_probes += 1
        if problem not in window.problems and len(window.problems) < MAX_PROBLEMS:
            window.problems.append(problem)

    def downtime(self, stopped: float) -> float:
        return sum(w.duration(stopped) for w in self.windows)


def answer_problem(answer: ServiceAnswer, service: Service) -> str | None:
    """Why an answer is not a correct one (as PORT01 judges it), or None.

    >>> from cutover.model.inventory import Protocol
    >>> svc = Service(name="http", port=80, protocol=Protocol.HTTP)
    >>> answer_problem(ServiceAnswer("p:80", "http", "502 Bad Gateway", http_status=502), svc)
    "p:80 answered '502 Bad Gateway' (HTTP status 500 or above)"
    """
    if service.tls is TlsMode.STARTTLS:
        if not answer.starttls_offered:
            return f"{answer.where} answered {answer.greeting[:60]!r} without offering STARTTLS"
        if answer.starttls_error:
            return f"{answer.where}: STARTTLS upgrade failed: {answer.starttls_error}"
    if answer.http_status is not None and answer.http_status >= 500:
        return f"{answer.where} answered {answer.greeting!r} (HTTP status 500 or above)"
    return None


def _short_identity(answer: ServiceAnswer) -> str:
    if answer.identity is not None:
        return answer.identity
    return answer.tls.short_fingerprint if answer.tls is not None else answer.who


def probe_once(endpoint: Endpoint, settings: ProbeSettings) -> Observation:
    """Probe the endpoint once; every failure becomes the observation's `problem` line."""
    started, clock = time.time(), time.monotonic()
    try:
        answer = observe(endpoint, settings)
    except ProbeError as exc:
        return Observation(started, time.monotonic() - clock, None, None, str(exc))
    except Exception as exc:  # a probe bug must show in the report, not stop the watch
        return Observation(
            started, time.monotonic() - clock, None, None, f"{type(exc).__name__}: {exc}"
        )
    problem = answer_problem(answer, endpoint.service)
    return Observation(
        started, time.monotonic() - clock, _short_identity(answer), answer.who, problem
    )


def watch_endpoints(inventory: Inventory) -> list[Endpoint]:
    """Every service on every address of both hosts, whatever the phase.

    Watching is about what changes; each family is measured on its own, so a
    dual-stack host has a v4 and a v6 line per port (`imaps-993-old-v6`).
    """
    return [
        endpoint
        for service in inventory.services
        for side in (Side.OLD, Side.NEW)
        for endpoint in side_endpoints(inventory, service, side)
    ]


def watch(
    endpoints: Sequence[Endpoint],
    probe: Callable[[Endpoint], Observation],
    *,
    interval: float = DEFAULT_INTERVAL,
    duration: float | None = None,
    stop: threading.Event | None = None,
    workers: int = DEFAULT_WORKERS,
    on_tick: Callable[[dict[str, Timeline]], None] | None = None,
) -> tuple[dict[str, Timeline], float, float]:
    """Probe every endpoint each `interval` until `stop` is set or `duration` has passed.

    Returns the timelines by endpoint id and the wall-clock start and stop.
    """
    stop = stop or threading.Event()
    timelines = {e.id: Timeline(e.id) for e in endpoints}
    running: dict[str, Future[Observation]] = {}
    started, clock = time.time(), time.monotonic()
    ticks = 0

    def collect(wait: bool) -> None:
        for endpoint_id, future in list(running.items()):
            if wait or future.done():
                timelines[endpoint_id].add(future.result())
                del running[endpoint_id]

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(endpoints)))) as pool:
        while not stop.is_set():
            if duration is not None and time.monotonic() - clock >= duration:
                break
            collect(wait=False)
            for endpoint in endpoints:
                if endpoint.id not in running:
                    running[endpoint.id] = pool.submit(probe, endpoint)
            if on_tick is not None:
                on_tick(timelines)
            ticks += 1
            # Ticks keep to a fixed grid: a slow tick does not push the next ones back.
            stop.wait(max(0.0, clock + ticks * interval - time.monotonic()))
        stopped = time.time()
        collect(wait=True)  # probes in flight are bounded by the inventory's timeouts
    return timelines, started, stopped


def report(
    inventory: Inventory,
    endpoints: Sequence[Endpoint],
    timelines: dict[str, Timeline],
    started: float,
    stopped: float,
    interval: float,
) -> dict[str, Any]:
    """The JSON report: per endpoint its windows, identities and totals."""
    entries = []
    for endpoint in endpoints:
        line = timelines[endpoint.id]
        entries.append(
            {
                "id": endpoint.id,
                "service": endpoint.service.name,
                "port": endpoint.service.port,
                "side": endpoint.side.value,
                "address": str(endpoint.address),
                **({"family": endpoint.family} if endpoint.tag else {}),
                "probes": line.probes,
                "failed_probes": line.failed_probes,
                "first_answered_by": line.first,
                "last_answered_by": line.last,
                "downtime_s": round(line.downtime(stopped), 4),
                "windows": [w.to_json(stopped) for w in line.windows],
                "identity_changes": [
                    {"at": round(at, 4), "at_utc": _utc(at), "from": old, "to": new}
                    for at, old, new in line.changes
                ],
            }
        )
    return {
        "migration": inventory.name,
        "inventory": str(inventory.source) if inventory.source else None,
        "interval_s": interval,
        "started": round(started, 4),
        "stopped": round(stopped, 4),
        "started_utc": _utc(started),
        "stopped_utc": _utc(stopped),
        "timeouts": {
            "connect_s": inventory.timeouts.connect,
            "operation_s": inventory.timeouts.operation,
        },
        "endpoints": entries,
    }


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S.%f")[:-3]


def render_table(data: dict[str, Any]) -> list[str]:
    """The report as text: one line per endpoint, then one per window.

    Where a host has several addresses (dual stack), each family is its own row
    (`imaps-993-old-v4`, `imaps-993-old-v6`) and a `family` column says which.
    """
    seconds = data["stopped"] - data["started"]
    # 22 columns fit every single-address id; dual-stack ids (`submission-587-old-v6`) may be longer
    width = max([22] + [len(e["id"]) + 2 for e in data["endpoints"]])
    families = any("family" in e for e in data["endpoints"])  # else no family column
    family_head = f"{'family':<8}" if families else ""
    lines = [
        f"watched {len(data['endpoints'])} endpoints for {seconds:.1f} s, "
        f"every {data['interval_s']:g} s (times UTC)",
        f"{'endpoint':<{width}}{family_head}{'probes':>7}{'windows':>8}{'downtime':>10}"
        "  answered by (first -> last)",
    ]
    for entry in data["endpoints"]:
        first, last = entry["first_answered_by"], entry["last_answered_by"]
        who = "nothing" if first is None else first if first == last else f"{first} -> {last}"
        family_cell = f"{_family(entry):<8}" if families else ""
        lines.append(
            f"{entry['id']:<{width}}{family_cell}{entry['probes']:>7}{len(entry['windows']):>8}"
            f"{entry['downtime_s']:>9.2f}s  {who}"
        )
    windows = [(e["id"], w) for e in data["endpoints"] for w in e["windows"]]
    if not windows:
        lines.append("no downtime: every endpoint answered correctly at every probe")
        return lines
    lines.append("")
    lines.append(f"{'endpoint':<{width}}{'from':<14}{'to':<14}{'duration':>9}  what failed")
    for endpoint_id, window in sorted(windows, key=lambda item: item[1]["start"]):
        end = "(still down)" if window["end"] is None else _clock(window["end"])
        lines.append(
            f"{endpoint_id:<{width}}{_clock(window['start']):<14}{end:<14}"
            f"{window['duration_s']:>8.2f}s  {window['failed']}"
        )
        lines.append(
            f"{'':<{width}}before: {window['before'] or 'nothing'}; after: {window['after'] or '-'}"
        )
    return lines


def _family(entry: dict[str, Any]) -> str:
    """`v4`/`v6`: the report's `family`, else (a single-address side) its address's."""
    if "family" in entry:
        return str(entry["family"])
    return family(ipaddress.ip_address(entry["address"]))


def run(
    inventory: Inventory,
    *,
    interval: float = DEFAULT_INTERVAL,
    duration: float | None = None,
    output: Path | None = None,
    stop: threading.Event | None = None,
    workers: int = DEFAULT_WORKERS,
) -> dict[str, Any]:
    """Watch the inventory's services, write the JSON report to `output`, return it."""
    settings = settings_for(inventory)
    endpoints = watch_endpoints(inventory)
    timelines, started, stopped = watch(
        endpoints,
        lambda endpoint: probe_once(endpoint, settings),
        interval=interval,
        duration=duration,
        stop=stop,
        workers=workers,
    )
    data = report(inventory, endpoints, timelines, started, stopped, interval)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data


def over_max_downtime(data: dict[str, Any], limit: float) -> list[tuple[str, float]]:
    """Endpoints whose longest window (in a `report()`) lasted more than `limit` seconds.

    >>> over_max_downtime({"endpoints": [{"id": "imap-143-old", "windows": [
    ...     {"duration_s": 0.4}, {"duration_s": 2.5}]}]}, 1.0)
    [('imap-143-old', 2.5)]
    """
    over = []
    for entry in data["endpoints"]:
        longest = max((w["duration_s"] for w in entry["windows"]), default=0.0)
        if longest > limit:
            over.append((entry["id"], longest))
    return over
