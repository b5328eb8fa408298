"""CAP01 judges the old IP through its forward: a forward to the wrong port of the same protocol.

No lab: loopback-only SMTP peers (tests/trust/peers.py) stand for the two
servers. Each offers a submission port with AUTH and a relay port without.
In the cutover the old IP's submission port reaches the NEW server's relay
port (the forward's target port is wrong, the protocol the same): PORT02 is
green there (the new server answers), there is no account to log in with, and
CAP01 on `submission-2587-old` is the one check that fails, naming AUTH.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import yaml

from tests.suite import REPO, SuiteRun, run_suite
from tests.trust.peers import Peer

OLD, NEW = "127.0.9.12", "127.0.9.13"
RELAY, SUBMISSION = 2525, 2587
PORTS = str(REPO / "checks" / "test_ports.py")


def smtp(hostname: str, *, auth: bool) -> Callable[[socket.socket, Peer], None]:
    """An SMTP server naming itself `hostname`, offering AUTH (a submission port) or not."""
    keywords = ["PIPELINING", "8BITMIME", *(["AUTH PLAIN LOGIN"] if auth else [])]

    def handle(sock: socket.socket, peer: Peer) -> None:
        sock.settimeout(5)
        peer.send(sock, f"220 {hostname} ESMTP\r\n".encode())
        reader = sock.makefile("rb")
        for raw in reader:
            verb = raw.decode("ascii", "replace").split(" ", 1)[0].strip().upper()
            if verb in ("EHLO", "HELO"):
                lines = [hostname, *keywords]
                text = "".join(f"250-{line}\r\n" for line in lines[:-1]) + f"250 {lines[-1]}\r\n"
                peer.send(sock, text.encode())
            elif verb == "QUIT":
                peer.send(sock, b"221 bye\r\n")
                return
            else:
                peer.send(sock, b"502 not here\r\n")

    return handle


@contextmanager
def servers(old_submission_to_new_relay: bool) -> Iterator[None]:
    handlers = {
        (OLD, RELAY): smtp("old.trust.test", auth=False),
        (OLD, SUBMISSION): smtp("old.trust.test", auth=True),
        (NEW, RELAY): smtp("new.trust.test", auth=False),
        (NEW, SUBMISSION): smtp("new.trust.test", auth=True),
    }
    if old_submission_to_new_relay:  # the cutover: the old IP forwards, 2587 to the relay port
        handlers[(OLD, RELAY)] = handlers[(NEW, RELAY)]
        handlers[(OLD, SUBMISSION)] = handlers[(NEW, RELAY)]
    with ExitStack() as stack:
        for (address, port), handler in handlers.items():
            stack.enter_context(Peer(address, port, handler, f"{address}:{port}"))
        yield


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    data = {
        "name": "cap-forward",
        "old": {"address": OLD},
        "new": {"address": NEW},
        "services": [
            {"name": "smtp", "port": RELAY, "protocol": "smtp", "tls": "none"},
            {"name": "submission", "port": SUBMISSION, "protocol": "smtp", "tls": "none"},
        ],
        "timeouts": {"connect": 2, "operation": 2, "test": 60},
    }
    path.write_text(yaml.safe_dump(data))
    return path


def suite(phase: str, inventory: Path, reports: Path, baseline: Path) -> SuiteRun:
    return run_suite(phase, inventory, reports / phase, PORTS, f"--baseline={baseline}")


def test_cap01_catches_a_forward_to_the_wrong_port_of_the_same_protocol(
    inventory: Path, tmp_path: Path
) -> None:
    baseline = tmp_path / "baseline.json"
    with servers(old_submission_to_new_relay=False):
        preflight = suite("preflight", inventory, tmp_path, baseline)
    assert preflight.cases and not preflight.failing(), preflight.summary()
    with servers(old_submission_to_new_relay=True):
        cutover = suite("cutover", inventory, tmp_path, baseline)
    failing = [(c.check_id, c.name.partition("[")[2].rstrip("]")) for c in cutover.failing()]
    assert failing == [("CAP01", "submission-2587-old")], cutover.summary()
    (case,) = cutover.failing()
    assert f"submission {OLD}:{SUBMISSION} (old IP) lacks capabilities" in case.message, case
    assert "AUTH" in case.message and "recorded in preflight" in case.message, case
    # The same forward answers as the new server: PORT02 is green there, as it should be.
    port02 = cutover.by_name("test_served_by_expected_server[submission-2587-old]")
    assert port02.outcome == "passed", cutover.summary()
    # The healthy forward (the old IP's relay port to the new relay port) passes CAP01.
    assert cutover.by_name("test_capabilities_kept[smtp-2525-old]").outcome == "passed"
