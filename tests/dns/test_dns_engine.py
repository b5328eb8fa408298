"""The query engine against a deliberately awkward peer on loopback.

Not a stand-in for a nameserver (the lab's PowerDNS is that): a peer that
truncates, stays silent, answers without AA or sends stray datagrams, to prove
the engine's mechanics — RD off, TC -> TCP, timeouts, ID matching.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.rrset
import pytest

from cutover.probes.dns.engine import observe_answers

SERVER = "127.0.0.1"


class AwkwardPeer:
    def __init__(self) -> None:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((SERVER, 0))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((SERVER, self.port))
        self.tcp.listen(8)
        self.query_flags: list[int] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._serve_udp, daemon=True),
            threading.Thread(target=self._serve_tcp, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def respond(self, query: dns.message.Message, over_tcp: bool) -> dns.message.Message | None:
        self.query_flags.append(query.flags)
        name = query.question[0].name.to_text(omit_final_dot=True)
        response = dns.message.make_response(query)
        if name == "silent.example.test":
            return None
        if name != "lame.example.test":
            response.flags |= dns.flags.AA
        if name == "big.example.test" and not over_tcp:
            response.flags |= dns.flags.TC
            return response
        response.answer.append(dns.rrset.from_text(name + ".", 300, "IN", "A", "198.51.100.10"))
        return response

    def _serve_udp(self) -> None:
        self.udp.settimeout(0.1)
        while not self.stop.is_set():
            try:
                data, client = self.udp.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            response = self.respond(query, over_tcp=False)
            if response is not None:
                # A stray datagram with another ID first: it must be ignored.
                stray = dns.message.make_response(query)
                stray.id = (query.id + 1) % 65536
                self.udp.sendto(stray.to_wire(), client)
                self.udp.sendto(response.to_wire(), client)

    def _serve_tcp(self) -> None:
        self.tcp.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                (length,) = struct.unpack("!H", conn.recv(2))
                query = dns.message.from_wire(conn.recv(length))
                response = self.respond(query, over_tcp=True)
                if response is not None:
                    wire = response.to_wire()
                    conn.sendall(struct.pack("!H", len(wire)) + wire)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        self.udp.close()
        self.tcp.close()


@pytest.fixture
def peer() -> Iterator[AwkwardPeer]:
    awkward = AwkwardPeer()
    yield awkward
    awkward.close()


def test_engine_asks_with_rd_off_and_handles_truncation_silence_and_lameness(
    peer: AwkwardPeer,
) -> None:
    names = ["example.test", "big.example.test", "lame.example.test", "silent.example.test"]
    answers = observe_answers(
        [(SERVER, (name, "A")) for name in names], timeout=1.5, port=peer.port
    )
    plain, big, lame, silent = (answers[(SERVER, (name, "A"))] for name in names)

    assert all(not flags & dns.flags.RD for flags in peer.query_flags), "RD must be off"
    assert plain.authoritative_answer and not plain.over_tcp
    assert plain.answer[0].ttl == 300 and plain.answer[0].values == ("198.51.100.10",)
    assert big.over_tcp and big.authoritative_answer and big.answer[0].name == "big.example.test"
    assert lame.problem is not None and "without the AA flag" in lame.problem
    assert silent.error is not None
    assert "timed out after 1.5 s" in silent.error and "silent.example.test A" in silent.error


def test_engine_reports_a_closed_port_without_raising() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((SERVER, 0))
        closed = probe.getsockname()[1]
    answers = observe_answers([(SERVER, ("example.test", "SOA"))], timeout=1.0, port=closed)
    error = answers[(SERVER, ("example.test", "SOA"))].error
    assert error is not None and f"{SERVER}:{closed}" in error
