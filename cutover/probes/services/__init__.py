"""Protocol probes: one small module per protocol, each returning a `ServiceAnswer`.

`observe(endpoint, settings)` picks the module from `PROBES`;
`accepted_versions(endpoint, settings)` asks the same port once per TLS version;
`Observations`
runs many probes concurrently the first time any result is asked for, so a
run's checks share one observation of each service on each IP.

>>> answers = Observations(endpoints, lambda e: observe(e, settings))  # doctest: +SKIP
>>> answers.get(endpoints[0]).greeting                                  # doctest: +SKIP
'220 new.example.test ESMTP'
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Generic, TypeVar

from cutover.model.endpoints import Endpoint
from cutover.model.inventory import Protocol
from cutover.model.settings import ProbeSettings
from cutover.probes.connect import TLS_VERSIONS, ProbeError
from cutover.probes.services import http, imap, mysql, pop3, smtp
from cutover.probes.services.base import ServiceAnswer
from cutover.probes.tls import HandshakeFailed
from cutover.progress import Progress

__all__ = [
    "PROBES",
    "Observations",
    "ProbeSettings",
    "ServiceAnswer",
    "accepted_versions",
    "observe",
]

PROBES: dict[Protocol, Callable[[Endpoint, ProbeSettings], ServiceAnswer]] = {
    Protocol.SMTP: smtp.observe,
    Protocol.IMAP: imap.observe,
    Protocol.POP3: pop3.observe,
    Protocol.HTTP: http.observe,
    Protocol.MYSQL: mysql.observe,
}

K = TypeVar("K")
V = TypeVar("V")


def observe(endpoint: Endpoint, settings: ProbeSettings) -> ServiceAnswer:
    """What the service on this endpoint answers (`ProbeError` when it does not)."""
    return PROBES[endpoint.service.protocol](endpoint, settings)


def accepted_versions(endpoint: Endpoint, settings: ProbeSettings) -> tuple[str, ...]:
    """The TLS versions the port on `endpoint` completes a handshake with, oldest first.

    One connection per version (all at once), each pinned to that version
    with every cipher at security level 0, so a weak old server answers too;
    each bounded by the settings' timeouts. A refused handshake means "not
    accepted"; anything else that stops a probe (no answer, no STARTTLS) is
    raised: the versions are then unknown.
    """

    def accepts(version: str) -> bool:
        try:
            answer = observe(endpoint, settings.pinned(version))
        except HandshakeFailed:
            return False
        if answer.tls is None:  # a STARTTLS port that offered no STARTTLS
            raise ProbeError(
                f"{endpoint.where}: no TLS handshake to try {version} on: "
                f"{answer.starttls_error or 'STARTTLS is not offered'}"
            )
        return answer.tls.version == version

    with ThreadPoolExecutor(max_workers=len(TLS_VERSIONS)) as pool:
        found = dict(zip(TLS_VERSIONS, pool.map(accepts, TLS_VERSIONS), strict=True))
    return tuple(version for version, accepted in found.items() if accepted)


class Observations(Generic[K, V]):
    """Results of observing many targets, all observed concurrently on first use.

    Targets are told apart by `key` (default: their `id`). A probe's
    `ProbeError` is kept and raised again to every caller that asks for that
    target; a target not known up front is observed on demand. `progress`
    hears (done, total) as the first use's probes finish. `batch` splits
    the first use: asking for a target observes the targets of its batch
    only, the other batches when one of theirs is asked for.
    """

    def __init__(
        self,
        targets: Sequence[K],
        observe: Callable[[K], V],
        *,
        key: Callable[[K], Hashable] = lambda target: getattr(target, "id", target),
        workers: int = 32,
        progress: Progress | None = None,
        batch: Callable[[K], Hashable] | None = None,
    ) -> None:
        self._key = key
        self._batch = batch
        self._targets = list({key(t): t for t in targets}.values())
        self._observe = observe
        self._workers = workers
        self._progress = progress
        self._results: dict[Hashable, V | Exception] = {}
        self._lock = threading.Lock()

    def _run(self, target: K) -> V | Exception:
        try:
            return self._observe(target)
        except Exception as exc:  # kept for the check that asks; a bug shows there too
            return exc

    def _observe_all(self, asked: K) -> None:
        todo = [t for t in self._targets if self._key(t) not in self._results]
        if self._batch is not None:
            batch = self._batch(asked)
            todo = [t for t in todo if self._batch(t) == batch]
        if not todo:
            return
        if self._progress is not None:
            self._progress(0, len(todo))
        with ThreadPoolExecutor(max_workers=min(self._workers, len(todo))) as pool:
            running = {pool.submit(self._run, target): target for target in todo}
            for done, future in enumerate(as_completed(running), 1):
                self._results[self._key(running[future])] = future.result()
                if self._progress is not None:
                    self._progress(done, len(todo))

    def get(self, target: K) -> V:
        key = self._key(target)
        with self._lock:
            if key not in self._results:
                self._observe_all(target)
            if key not in self._results:
                self._results[key] = self._run(target)
            result = self._results[key]
        if isinstance(result, Exception):
            raise result
        return result

    def outcome(self, target: K) -> V | ProbeError:
        """The result, or the `ProbeError` that stopped the probe."""
        try:
            return self.get(target)
        except ProbeError as exc:
            return exc
