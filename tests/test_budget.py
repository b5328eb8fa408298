"""The per-server budget without a lab: the limiter's bookkeeping, and `connect` keeping to it.

Connections go to a listener on 127.0.0.1 that the test owns. No timing is
asserted: the limiter's clock is a fake where time matters, and every wait
that must end in failure is given a fraction of a second.
"""

from __future__ import annotations

import gc
import ipaddress
import itertools
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cutover.model.budget import Budgets, OwnSlots, ServerBudget, share
from cutover.model.inventory import load_inventory
from cutover.model.settings import ProbeSettings, budgets_of
from cutover.probes.connect import ProbeError, ProbeTimeout, connect, hold, login_turn, tls_context

LOOPBACK = "127.0.0.1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts (and holds) every connection."""
    server = socket.socket()
    server.bind((LOOPBACK, 0))
    server.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    server.close()
    for sock in accepted:
        sock.close()


def budgeted(connections: int, rate: float = 1000.0) -> tuple[ServerBudget, ProbeSettings]:
    budget = ServerBudget("the old server", connections, rate)
    settings = ProbeSettings(0.5, 0.2, budgets=Budgets([([LOOPBACK], budget)]))
    return budget, settings


# --- the limiter --------------------------------------------------------------


def test_many_threads_never_hold_more_slots_than_the_budget() -> None:
    budget = ServerBudget("the new server", 3, 1000.0)
    start = threading.Barrier(12)
    inside: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        start.wait()
        for _ in range(50):
            slot = budget.acquire(30.0)
            assert slot is not None
            with lock:
                inside.append(budget.held)
            slot.release()

    threads = [threading.Thread(target=work) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(inside) == 600
    assert max(inside) <= 3 and budget.peak <= 3
    assert budget.held == 0


def test_a_wait_for_a_slot_ends_and_a_release_counts_once() -> None:
    budget = ServerBudget("the old server", 1, 10.0)
    first = budget.acquire(1.0)
    assert first is not None
    waited: list[object] = []
    other = threading.Thread(target=lambda: waited.append(budget.acquire(0.05)))
    other.start()
    other.join()
    assert waited == [None]  # nobody released: the other thread gave up
    first.release()
    first.release()  # twice (close, then the finalizer): counted once
    assert budget.held == 0
    assert budget.acquire(0.0) is not None


def test_a_thread_that_holds_every_slot_is_told_at_once() -> None:
    budget = ServerBudget("the old server", 2, 10.0)
    assert budget.acquire(1.0) and budget.acquire(1.0)
    with pytest.raises(OwnSlots):
        budget.acquire(3600.0)  # would wait for itself forever


def test_login_turns_are_spaced_by_the_rate() -> None:
    clock = FakeClock()
    budget = ServerBudget("the old server", 8, 4.0, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(10):
        budget.login_turn()
        starts.append(clock.now)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == [pytest.approx(0.25)] * 9
    assert starts[0] == 100.0  # the first login does not wait
    assert budget.logins == 10


def test_login_turns_across_threads_never_exceed_the_rate() -> None:
    """Threads asking at the same instant get turns one interval apart, none shared."""
    clock = FakeClock()  # stands still: every thread asks at the same instant
    budget = ServerBudget("the old server", 8, 5.0, clock=clock, sleep=lambda _: None)
    starts: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(10):
            waited = budget.login_turn()
            with lock:
                starts.append(clock.now + waited)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    starts.sort()
    assert len(starts) == 80
    assert [b - a for a, b in itertools.pairwise(starts)] == [pytest.approx(0.2)] * 79


def test_each_worker_gets_its_share_and_at_least_one_connection() -> None:
    assert share(8, 10.0, 1) == (8, 10.0)
    assert share(8, 10.0, 4) == (2, 2.5)
    assert share(2, 1.0, 8) == (1, 0.125)
    assert share(8, 10.0, 0) == (8, 10.0)


def test_the_inventory_budget_and_a_sides_own(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "old: {address: [127.0.0.2, '::2'], budget: {connections: 2}}\n"
        "new: {address: 127.0.0.3}\n"
        "budget: {connections: 6, logins_per_second: 4}\n"
    )
    inventory = load_inventory(path, environ={})
    budgets = budgets_of(inventory, workers=2)
    old, new = budgets.servers
    assert (old.server, old.connections, old.logins_per_second) == ("the old server", 1, 2.0)
    assert (new.server, new.connections, new.logins_per_second) == ("the new server", 3, 2.0)
    assert budgets.of("::2") is old and budgets.of("127.0.0.2") is old
    assert budgets.of("127.0.0.3") is new


def test_the_defaults_when_the_inventory_says_nothing(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text("old: {address: 127.0.0.2}\nnew: {address: 127.0.0.3}\n")
    old, new = budgets_of(load_inventory(path, environ={})).servers
    assert (old.connections, old.logins_per_second) == (8, 20.0)
    assert (new.connections, new.logins_per_second) == (8, 20.0)


# --- connect() and the helpers keep to it ----------------------------------------


def test_connect_holds_a_slot_until_the_socket_closes(listener: int) -> None:
    budget, settings = budgeted(2)
    first = connect(LOOPBACK, listener, settings)
    second = connect(LOOPBACK, listener, settings)
    assert budget.held == 2
    first.close()
    assert budget.held == 1
    reader = second.makefile("rb")  # a reader keeps the descriptor open
    second.close()
    assert budget.held == 1
    reader.close()
    assert budget.held == 0


def test_a_slot_goes_with_the_descriptor_into_tls(listener: int) -> None:
    budget, settings = budgeted(1)
    sock = connect(LOOPBACK, listener, settings)
    tls = tls_context(verify=False).wrap_socket(sock, do_handshake_on_connect=False)
    sock.close()  # detached: the TLS socket owns the descriptor, and the slot
    assert budget.held == 1
    tls.close()
    assert budget.held == 0


def test_a_forgotten_socket_gives_its_slot_back_when_collected(listener: int) -> None:
    budget, settings = budgeted(1)
    sock = connect(LOOPBACK, listener, settings)
    assert budget.held == 1
    del sock
    gc.collect()
    assert budget.held == 0


def test_a_refused_connection_gives_its_slot_back() -> None:
    budget, settings = budgeted(1)
    closed = socket.socket()
    closed.bind((LOOPBACK, 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    with pytest.raises(ProbeError, match="connection refused"):
        connect(LOOPBACK, port, settings)
    assert budget.held == 0


def test_waiting_for_a_slot_fails_with_one_line_naming_the_setting(listener: int) -> None:
    budget, settings = budgeted(1)
    held = connect(LOOPBACK, listener, settings)
    failures: list[BaseException] = []

    def other() -> None:
        try:
            connect(LOOPBACK, listener, settings)
        except ProbeError as exc:
            failures.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    held.close()
    (failure,) = failures
    assert isinstance(failure, ProbeTimeout)
    message = str(failure)
    assert "\n" not in message
    assert message.startswith("timed out after 0.7 s waiting for one of the old server's")
    assert "to come free" in message
    assert "budget.connections" in message and f"127.0.0.1:{listener}" in message
    assert budget.held == 0


def test_a_check_that_needs_more_connections_than_the_budget_is_told_so(listener: int) -> None:
    budget, settings = budgeted(1)
    with (
        connect(LOOPBACK, listener, settings),
        pytest.raises(ProbeError, match=r"raise budget\.connections"),
    ):
        connect(LOOPBACK, listener, settings)
    assert budget.held == 0


def test_an_address_of_no_server_and_plain_timeouts_are_not_budgeted(listener: int) -> None:
    _, settings = budgeted(1)
    assert hold("127.0.0.9", settings, "x") is None
    assert login_turn("127.0.0.9", settings) == 0.0
    with connect(LOOPBACK, listener, 0.5) as a, connect(LOOPBACK, listener, 0.5) as b:
        assert a.fileno() != b.fileno()


def test_the_library_sessions_give_their_slot_back_on_failure(listener: int) -> None:
    """PyMySQL and IMAPClient open their own sockets; a failed session releases its slot."""
    from cutover.model.endpoints import Endpoint
    from cutover.model.inventory import Account, MysqlAccount, Service
    from cutover.model.phases import Side
    from cutover.probes.mail.mailboxes import ImapSession
    from cutover.probes.mysql.session import MysqlServer, connect_to

    budget, settings = budgeted(2)
    # The listener accepts and never speaks: both libraries time out on the greeting.
    with pytest.raises(ProbeError):
        connect_to(MysqlServer(Side.OLD, LOOPBACK, listener), MysqlAccount(user="u"), settings)
    assert budget.held == 0
    service = Service(name="imap", port=listener, protocol="imap", tls="none")
    endpoint = Endpoint(service=service, side=Side.OLD, address=ipaddress.ip_address(LOOPBACK))
    with pytest.raises(ProbeError):
        ImapSession.open(
            endpoint, Account(user="alice@example.test", password_env="UNUSED"), settings
        )
    assert budget.held == 0
    assert budget.peak == 1


def test_a_fleet_pair_inherits_the_budget_or_gives_its_own(tmp_path: Path) -> None:
    from cutover.model.inventory import load_fleet

    path = tmp_path / "fleet.yaml"
    path.write_text(
        "budget: {connections: 4}\n"
        "pairs:\n"
        "  - {name: a, old: {address: 127.0.0.2}, new: {address: 127.0.0.3}}\n"
        "  - {name: b, old: {address: 127.0.0.4}, new: {address: 127.0.0.5},\n"
        "     budget: {connections: 3, logins_per_second: 2}}\n"
    )
    first, second = load_fleet(path, environ={}).pairs
    assert [b.connections for b in budgets_of(first).servers] == [4, 4]
    assert [(b.connections, b.logins_per_second) for b in budgets_of(second).servers] == [
        (3, 2.0),
        (3, 2.0),
    ]


def test_an_accounts_logins_take_the_servers_in_turn_in_plan_order_per_side() -> None:
    """Each server's login rate is its own: alternating keeps both busy."""
    from types import SimpleNamespace

    from cutover.model.phases import Side
    from cutover.probes.mail.logins import alternating

    o1, o2 = SimpleNamespace(side=Side.OLD, n="o1"), SimpleNamespace(side=Side.OLD, n="o2")
    n1 = SimpleNamespace(side=Side.NEW, n="n1")
    plan = [(o1, ["a", "b"]), (o2, ["c"]), (n1, ["d", "e"])]
    order = [(position, e.n, method) for position, e, method in alternating(plan)]  # type: ignore[arg-type]
    assert order == [(0, "o1", "a"), (3, "n1", "d"), (1, "o1", "b"), (4, "n1", "e"), (2, "o2", "c")]
