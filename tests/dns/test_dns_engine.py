"""The query engine against a deliberately awkward peer on loopback.

Not a stand-in for a nameserver (the lab's PowerDNS is that): a peer that
truncates, stays silent, answers without AA or sends stray datagrams, to prove
the engine's mechanics — RD off, TC -> TCP, timeouts, ID matching.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from cutover.model.inventory import DnsZone
from cutover.probes.dns.engine import Asked, Reply, RRset, _rrsets, observe_answers, read_reply
from cutover.probes.dns.zones import ZoneServers, observe_zones_and, zone_questions
from tests.trust.peers import DnsPeer, Zone

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


# --- reading only what the checks use -------------------------------------------------


def _asked(name: str, rdtype: str) -> Asked:
    return Asked(
        dns.name.from_text(name), dns.rdatatype.from_text(rdtype), dns.rdataclass.from_text("IN")
    )


def _response(asked: Asked, *answer: dns.rrset.RRset, **sections: Any) -> dns.message.Message:
    response = dns.message.make_response(asked.message())
    response.flags |= dns.flags.AA
    response.answer.extend(answer)
    response.authority.extend(sections.get("authority", ()))
    response.additional.extend(sections.get("additional", ()))
    return response


def _as_dnspython_reads_it(wire: bytes) -> tuple[int, int, tuple[RRset, ...]]:
    whole = dns.message.from_wire(wire)
    return whole.flags, whole.rcode(), _rrsets(Reply.of(whole).answer)


def _rr(name: str, ttl: int, rdtype: str, *values: str) -> dns.rrset.RRset:
    return dns.rrset.from_text(name, ttl, "IN", rdtype, *values)


READS = {
    "address": (
        "example.test.", "A", [_rr("example.test.", 300, "A", "198.51.100.1", "198.51.100.2")], {}
    ),
    "cname chain": (
        "www.example.test.", "A",
        [_rr("www.example.test.", 60, "CNAME", "Example.TEST."),
         _rr("example.test.", 300, "A", "198.51.100.1")],
        {},
    ),
    "no data, SOA in authority": (
        "example.test.", "AAAA", [],
        {"authority": [_rr("example.test.", 300, "SOA", "ns1.example.test. h.example.test. "
                                                        "7 3600 600 86400 300")]},
    ),
    "MX with additional addresses": (
        "example.test.", "MX", [_rr("example.test.", 300, "MX", "10 mail.example.test.")],
        {"additional": [_rr("mail.example.test.", 300, "A", "198.51.100.1")]},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(READS))
def test_reading_the_answer_section_gives_what_a_whole_parse_gives(case: str) -> None:
    name, rdtype, answer, sections = READS[case]
    asked = _asked(name, rdtype)
    wire = _response(asked, *answer, **sections).to_wire()
    reply = read_reply(wire, asked)
    assert reply is not None
    assert (reply.flags, reply.rcode, _rrsets(reply.answer)) == _as_dnspython_reads_it(wire)


def test_one_record_set_split_in_the_wire_keeps_the_lowest_ttl_and_each_record_once() -> None:
    asked = _asked("example.test.", "A")
    wire = _response(
        asked,
        _rr("example.test.", 300, "A", "198.51.100.1"),
        _rr("example.test.", 60, "A", "198.51.100.1", "198.51.100.2"),
    ).to_wire(max_size=65535)
    # Two record sets of one owner and type in the wire: read as one, as dnspython does.
    reply = read_reply(wire, asked)
    assert reply is not None and _rrsets(reply.answer) == _as_dnspython_reads_it(wire)[2]
    assert _rrsets(reply.answer)[0].ttl == 60
    assert _rrsets(reply.answer)[0].values == ("198.51.100.1", "198.51.100.2")


def test_the_extended_rcode_comes_from_the_opt_record() -> None:
    asked = _asked("example.test.", "A")
    response = _response(asked)
    response.set_rcode(dns.rcode.BADVERS)  # 16: the high bits travel in the OPT record
    response.authority.append(_rr("example.test.", 300, "NS", "ns1.example.test."))
    wire = response.to_wire()
    reply = read_reply(wire, asked)
    assert (
        reply is not None
        and reply.rcode == dns.rcode.BADVERS == dns.message.from_wire(wire).rcode()
    )


def test_what_answers_another_question_or_is_no_response_is_not_taken() -> None:
    asked = _asked("example.test.", "A")
    other = _response(_asked("other.test.", "A")).to_wire()
    assert read_reply(other, asked) is None
    wrong_type = _response(_asked("example.test.", "AAAA")).to_wire()
    assert read_reply(wrong_type, asked) is None
    query = asked.message().to_wire()  # QR clear: a query, not a response
    assert read_reply(query, asked) is None
    shouted = _response(_asked("EXAMPLE.Test.", "A")).to_wire()  # names ignore case
    assert read_reply(shouted, asked) is not None
    https, type_97 = _asked("example.test.", "TYPE65"), _asked("example.test.", "TYPE97")
    assert read_reply(_response(type_97).to_wire(), https) is None  # 0x41 'A' vs 0x61 'a'
    refused = dns.message.make_response(asked.message())
    refused.set_rcode(dns.rcode.REFUSED)
    refused.question = []  # some servers do not echo the question with REFUSED
    reply = read_reply(refused.to_wire(), asked)
    assert reply is not None and reply.rcode == dns.rcode.REFUSED


def test_data_with_names_is_read_in_its_own_message_and_the_same_data_once() -> None:
    # MX data compressed to the question's name: the same octets in both messages
    # (preference, pointer to offset 12), different exchanges. Never taken from the
    # previous message's read.
    for zone in ("example.test.", "shop.test."):
        asked = _asked(zone, "MX")
        wire = _response(asked, _rr(zone, 300, "MX", f"10 {zone}")).to_wire()
        reply = read_reply(wire, asked)
        assert reply is not None
        assert _rrsets(reply.answer) == _as_dnspython_reads_it(wire)[2]
        assert _rrsets(reply.answer)[0].values == (f"10 {zone}",)
    # The same address in many messages (a hosting server's zones): the same reading each
    # time, and a record of that type with the wrong length is still refused.
    for zone in ("example.test.", "shop.test.", "example.test."):
        asked = _asked(zone, "A")
        wire = _response(asked, _rr(zone, 300, "A", "198.51.100.1")).to_wire()
        reply = read_reply(wire, asked)
        assert reply is not None and _rrsets(reply.answer) == _as_dnspython_reads_it(wire)[2]
    at = len(wire) - 4 - 11 - 2  # the A record's data length (before it, OPT's 11 octets)
    assert struct.unpack("!H", wire[at : at + 2]) == (4,)
    short = wire[:at] + struct.pack("!H", 3) + wire[at + 2 : at + 5] + wire[at + 6 :]
    with pytest.raises(dns.exception.DNSException):
        read_reply(short, _asked("example.test.", "A"))


@pytest.mark.parametrize(
    "damage",
    ["cut in the answer", "pointer loop", "record longer than the datagram", "OPT in answers"],
)
def test_hostile_datagrams_raise_a_dns_error_within_their_bounds(damage: str) -> None:
    asked = _asked("example.test.", "A")
    wire = _response(asked, _rr("example.test.", 300, "A", "198.51.100.1")).to_wire()
    question_end = 12 + len(asked.name.to_wire()) + 4
    if damage == "cut in the answer":
        wire = wire[: question_end + 6]
    elif damage == "pointer loop":
        wire = (
            wire[:question_end]
            + struct.pack("!H", 0xC000 | question_end)
            + wire[question_end + 2 :]
        )
    elif damage == "record longer than the datagram":
        at = question_end + 2 + 8  # the owner is a 2-byte pointer; then type, class, TTL
        wire = wire[:at] + struct.pack("!H", 60000) + wire[at + 2 :]
    else:
        at = question_end + 2
        wire = wire[:at] + struct.pack("!H", dns.rdatatype.OPT) + wire[at + 2 :]
    with pytest.raises(dns.exception.DNSException):
        read_reply(wire, asked)


# --- one batch: the zones' questions and a follow-up's ------------------------------------

NS = "127.0.9.153"


@pytest.mark.skipif(os.geteuid() != 0, reason="binds a loopback nameserver on port 53")
def test_a_follow_up_is_asked_in_the_zones_batch_and_not_filed_under_the_zones() -> None:
    zone = DnsZone(name="trust.test", nameservers=[NS], names=["www"])
    servers = ZoneServers(servers_of={"trust.test": [NS]})
    started = threading.Event()

    def follow_up() -> list[tuple[str, tuple[str, str]]]:
        started.set()
        # One question of its own, one the zones ask too (asked once in the whole run).
        return [(NS, ("trust.test", "NS")), (NS, ("trust.test", "SOA"))]

    with DnsPeer(NS, Zone("trust.test", "127.0.9.2", (NS,))) as peer:
        seen, answers = observe_zones_and([zone], servers, [follow_up], timeout=2)
        asked = peer.udp_queries
    planned = zone_questions("trust.test", ["www"])
    assert started.is_set()
    assert answers[(NS, ("trust.test", "NS"))].rrset("trust.test", "NS") is not None
    assert (NS, ("trust.test", "NS")) not in seen["trust.test"].answers
    assert set(seen["trust.test"].answers) >= {(NS, q) for q in planned}
    # each (server, question) once, plus the MX target's and id.server
    mx_target = {(NS, ("mail.trust.test", t)) for t in ("A", "AAAA")}
    assert asked == len(planned) + 1 + len(mx_target) + 1


@pytest.mark.parametrize(("name", "rdtype", "rdclass"), [("Www.Example.TEST.", "AAAA", "IN"),
                                                         ("id.server.", "TXT", "CH")])  # fmt: skip
def test_the_query_wire_is_the_one_dnspython_writes(name: str, rdtype: str, rdclass: str) -> None:
    asked = Asked(
        dns.name.from_text(name),
        dns.rdatatype.from_text(rdtype),
        dns.rdataclass.from_text(rdclass),
    )
    message = asked.message()
    message.id = 4242
    assert asked.wire(4242) == message.to_wire()
    assert not message.flags & dns.flags.RD and message.edns == 0 and message.payload == 1232
