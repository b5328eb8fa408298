"""The per-server budget: connections held at once, and logins started per second.

A preflight runs against servers customers use. Each side's host (every
address it has, together) gets one `ServerBudget` per process: at most
`connections` TCP connections open to it at once, and logins started there
no faster than `logins_per_second`. The limits come from the inventory
(`budget:`, per side `old.budget` / `new.budget`); with pytest-xdist every
worker gets its share (`share`), so the whole run stays within them.

This module is the bookkeeping only (no sockets, no inventory): connections
take a `Slot` (`ServerBudget.acquire`) and give it back exactly once
(`Slot.release`, also from a finalizer); logins wait for their turn
(`ServerBudget.login_turn`). `cutover.probes.connect` applies it to every
connection a probe opens.

Semantics: docs/semantics.md, "The per-server budget".

>>> budget = ServerBudget("old server", connections=2, logins_per_second=100.0)
>>> first, second = budget.acquire(1.0), budget.acquire(1.0)
>>> budget.held, budget.acquire(0.0) is None  # no third; this thread holds both: OwnSlots
Traceback (most recent call last):
...
cutover.model.budget.OwnSlots: old server
>>> first.release(); budget.held
1
>>> share(8, 10.0, workers=3)
(2, 3.3333333333333335)
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterable

__all__ = ["Budgets", "OwnSlots", "ServerBudget", "Slot", "share"]


def share(connections: int, logins_per_second: float, workers: int) -> tuple[int, float]:
    """One process's part of a server's budget when `workers` processes share it.

    Connections are split and rounded down, but every worker keeps one (a
    worker with none could not check anything); the login rate is split evenly.

    >>> share(8, 10.0, workers=1)
    (8, 10.0)
    >>> share(2, 10.0, workers=4)
    (1, 2.5)
    """
    workers = max(1, workers)
    return max(1, connections // workers), logins_per_second / workers


class OwnSlots(Exception):
    """The calling thread holds every slot of the server already: waiting would never end."""


class Slot:
    """One connection's place in a server's budget; `release` gives it back (once)."""

    __slots__ = ("__weakref__", "_budget", "_lock", "_owner", "released")

    def __init__(self, budget: ServerBudget, owner: int) -> None:
        self._budget = budget
        self._owner = owner
        self._lock = threading.Lock()
        self.released = False

    @property
    def server(self) -> str:
        return self._budget.server

    def release(self) -> None:
        with self._lock:
            if self.released:
                return
            self.released = True
        self._budget._give_back(self._owner)


class ServerBudget:
    """The budget of one server in this process: connection slots and login turns."""

    def __init__(
        self,
        server: str,
        connections: int,
        logins_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if connections < 1 or logins_per_second <= 0:
            raise ValueError("a budget needs at least one connection and a positive login rate")
        self.server = server  # "the old server": how messages name it
        self.connections = connections
        self.logins_per_second = logins_per_second
        self._clock = clock
        self._sleep = sleep
        self._free = threading.Condition()
        self._holders: dict[int, int] = {}  # thread id -> slots it holds
        self.held = 0
        self._given_back_at = float("-inf")  # when a slot was last given back
        self.peak = 0  # the most slots held at once in this process
        self._turns = threading.Lock()
        self._next_login = float("-inf")
        self.logins = 0

    def acquire(self, timeout: float) -> Slot | None:
        """A slot, or None when none came free for `timeout` seconds.

        The wait is bounded by progress, not by its length: it gives up only
        when no slot of the server was given back for `timeout` seconds (a
        slot held past every deadline is a leak), so a long queue of
        waiters behind a slow server still gets through. A thread that holds
        every slot itself gets `OwnSlots` at once: nobody else could free one.
        """
        me = threading.get_ident()
        started = self._clock()
        with self._free:
            while self.held >= self.connections:
                if self._holders.get(me, 0) >= self.connections:
                    raise OwnSlots(self.server)
                left = max(started, self._given_back_at) + timeout - self._clock()
                if left <= 0:
                    return None
                self._free.wait(left)
            self.held += 1
            self._holders[me] = self._holders.get(me, 0) + 1
            self.peak = max(self.peak, self.held)
        return Slot(self, me)

    def _give_back(self, owner: int) -> None:
        with self._free:
            self.held -= 1
            self._given_back_at = self._clock()
            left = self._holders.get(owner, 0) - 1
            if left > 0:
                self._holders[owner] = left
            else:
                self._holders.pop(owner, None)
            self._free.notify()

    def login_turn(self) -> float:
        """Wait until this login may start; the seconds waited.

        Turns are handed out `1 / logins_per_second` apart in the order they
        are asked for, so no second ever sees more logins start than the
        rate. The wait always ends: at most one turn per waiting thread lies
        ahead of it.
        """
        with self._turns:
            now = self._clock()
            start = max(now, self._next_login)
            self._next_login = start + 1.0 / self.logins_per_second
            self.logins += 1
        wait = start - now
        if wait > 0:
            self._sleep(wait)
        return max(0.0, wait)


class Budgets:
    """Every budgeted server of an inventory, found by any of its addresses.

    >>> old = ServerBudget("the old server", 8, 10.0)
    >>> budgets = Budgets([(["198.51.100.10", "2001:db8::10"], old)])
    >>> budgets.of("2001:DB8::10") is old, budgets.of("127.0.0.1") is None
    (True, True)
    """

    def __init__(self, servers: Iterable[tuple[Iterable[object], ServerBudget]]) -> None:
        self._by_address: dict[str, ServerBudget] = {}
        self.servers: list[ServerBudget] = []
        for addresses, budget in servers:
            self.servers.append(budget)
            for address in addresses:
                self._by_address[_key(address)] = budget

    def of(self, address: object) -> ServerBudget | None:
        """The budget of the server at `address`; None for an address of no server listed."""
        return self._by_address.get(_key(address))


def _key(address: object) -> str:
    text = str(address).strip("[]")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text.lower()
