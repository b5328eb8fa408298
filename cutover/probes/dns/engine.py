"""The query engine: many questions to authoritative servers at once, RD off, AA kept.

TTLs are only meaningful straight from an authoritative server: a recursive
resolver counts them down. So servers are asked directly with the RD flag
clear, and every answer keeps its AA flag and rcode so a lame or recursive
server is caught rather than believed.

One asyncio loop, one UDP socket per server (answers matched to queries by
message ID), a bounded number of queries in flight, each within the
operation timeout; a lost datagram is sent again, a truncated answer is
asked again over TCP. `cutover.probes.dns.zones` plans what is asked of
every zone; `observe_answers` asks any list of (server, question).
"""

from __future__ import annotations

import asyncio
import errno
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import cast

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from cutover.probes.connect import (
    ProbeError,
    ProbeTimeout,
    no_route_to,
    one_line,
    peer,
    refused_by,
    timed_out,
)
from cutover.probes.dns.names import Question, absolute_text
from cutover.progress import Progress
from cutover.untrusted import shown

__all__ = [
    "MAX_IN_FLIGHT",
    "Answer",
    "Engine",
    "RRset",
    "Tally",
    "ask_all",
    "mx_targets",
    "observe_answers",
]

# The lab measured ~5,200 queries/s with 32 in flight (2,500/s sequential);
# more in flight only queues inside the server.
MAX_IN_FLIGHT = 64
# A UDP query lost on the way is sent again this often within its timeout.
RETRANSMIT_AFTER = 1.0
# EDNS buffer size of DNS Flag Day 2020: big answers fit without IP fragments.
EDNS_PAYLOAD = 1232


@dataclass(frozen=True)
class RRset:
    """One record set from an answer section: `www.example.test CNAME 300 example.test.`."""

    name: str
    rdtype: str
    ttl: int
    values: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.name} {self.rdtype} {self.ttl} {' | '.join(self.values)}"


@dataclass(frozen=True)
class Answer:
    """What one server said to one question (or why it said nothing)."""

    server: str
    qname: str
    rdtype: str
    rcode: str | None = None
    authoritative: bool = False
    answer: tuple[RRset, ...] = ()
    error: str | None = None
    over_tcp: bool = False

    @property
    def question(self) -> str:
        return f"{self.qname} {self.rdtype}"

    @property
    def authoritative_answer(self) -> bool:
        """Answered, NOERROR, AA set: what DNS01 requires."""
        return self.error is None and self.rcode == "NOERROR" and self.authoritative

    @property
    def judgeable(self) -> bool:
        """An authoritative statement, positive or negative (NXDOMAIN is a fact too)."""
        return self.error is None and self.authoritative and self.rcode in ("NOERROR", "NXDOMAIN")

    @property
    def problem(self) -> str | None:
        """Why this is not an authoritative NOERROR answer, in words; None when it is."""
        if self.error is not None:
            return self.error
        if self.rcode == "REFUSED":
            return "REFUSED (the server does not serve this zone)"
        if self.rcode == "NXDOMAIN":
            return "NXDOMAIN (the name does not exist on this server)"
        if self.rcode != "NOERROR":
            return f"rcode {self.rcode}"
        if not self.authoritative:
            return "answered without the AA flag (not authoritative: a resolver or a lame server)"
        return None

    def rrsets(self, name: str, rdtype: str) -> Iterator[RRset]:
        for rrset in self.answer:
            if rrset.name == name and rrset.rdtype == rdtype:
                yield rrset

    def rrset(self, name: str, rdtype: str) -> RRset | None:
        return next(self.rrsets(name, rdtype), None)

    def chain(self) -> tuple[list[str], list[RRset]]:
        """The CNAME chain from the question's name (within this answer), and the rrsets it ends in.

        `www.example.test A` answered `www CNAME example.test.` + `example.test A ...`
        gives (["www.example.test", "example.test"], [the A rrset]).
        """
        names = [self.qname]
        while (alias := self.rrset(names[-1], "CNAME")) is not None and len(names) < 16:
            names.append(absolute_text(alias.values[0]))
        return names, list(self.rrsets(names[-1], self.rdtype))


def mx_targets(answer: Answer) -> list[str]:
    """Exchange names of an MX answer, without the null MX (RFC 7505 `0 .`)."""
    targets = []
    for rrset in answer.rrsets(answer.qname, "MX"):
        for value in rrset.values:
            exchange = value.split()[-1]
            if exchange != ".":
                targets.append(absolute_text(exchange))
    return targets


# --- the engine ------------------------------------------------------------


class _Channel(asyncio.DatagramProtocol):
    """One connected UDP socket to one server; answers found by message ID."""

    def __init__(self, server: str, port: int) -> None:
        self.server = server
        self.port = port
        self.transport = cast(asyncio.DatagramTransport, None)  # set by connection_made
        self.pending: dict[int, tuple[dns.message.Message, asyncio.Future[dns.message.Message]]]
        self.pending = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: object) -> None:
        entry = self.pending.get(int.from_bytes(data[:2], "big")) if len(data) >= 12 else None
        if entry is None:
            return
        query, waiter = entry
        try:
            response = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return  # garbage with a matching ID: keep waiting for the real answer
        if not waiter.done() and query.is_response(response):
            waiter.set_result(response)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable arrives for the socket, not for one query.
        where = peer(self.server, self.port)
        if isinstance(exc, ConnectionRefusedError):
            message = refused_by(where)
        elif isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            message = no_route_to(where, exc)
        else:
            message = f"{where} unreachable ({one_line(exc)})"
        for _, waiter in self.pending.values():
            if not waiter.done():
                waiter.set_exception(ProbeError(message))

    def new_id(self) -> int:
        while True:
            candidate = secrets.randbelow(65536)
            if candidate not in self.pending:
                return candidate


def _rrsets(section: Iterable[dns.rrset.RRset]) -> tuple[RRset, ...]:
    return tuple(
        RRset(
            name=rrset.name.to_text(omit_final_dot=True).lower(),
            rdtype=dns.rdatatype.to_text(rrset.rdtype),
            ttl=rrset.ttl,
            values=tuple(sorted(rdata.to_text() for rdata in rrset)),
        )
        for rrset in section
    )


class Engine:
    """Asks servers concurrently within `max_in_flight`; close() when done."""

    def __init__(self, timeout: float, max_in_flight: int, port: int = 53) -> None:
        self.timeout = timeout
        self.port = port
        self.slots = asyncio.Semaphore(max_in_flight)
        self.channels: dict[str, _Channel] = {}
        self.opening: dict[str, asyncio.Future[_Channel]] = {}

    async def channel(self, server: str) -> _Channel:
        if server in self.channels:
            return self.channels[server]
        if server not in self.opening:
            loop = asyncio.get_running_loop()
            opened: asyncio.Future[_Channel] = loop.create_future()
            self.opening[server] = opened
            try:
                _, protocol = await loop.create_datagram_endpoint(
                    lambda: _Channel(server, self.port), remote_addr=(server, self.port)
                )
                self.channels[server] = protocol
                opened.set_result(protocol)
            except OSError as exc:
                opened.set_exception(
                    ProbeError(
                        f"cannot open a UDP socket to {peer(server, self.port)}: {one_line(exc)}"
                    )
                )
        return await asyncio.shield(self.opening[server])

    async def ask(
        self, server: str, qname: str, rdtype: str, rdclass: str = "IN"
    ) -> tuple[dns.message.Message, bool]:
        """One question, RD off, within the timeout; TC -> asked again over TCP.

        Returns the response and whether it came over TCP.
        """
        loop = asyncio.get_running_loop()
        async with self.slots:
            # The timeout starts when the query is sent, not while it waits for a slot.
            deadline = loop.time() + self.timeout
            channel = await self.channel(server)
            # flags=0: the RD bit off, so a server that is not authoritative
            # cannot recurse on our behalf and hand us a counted-down TTL.
            query = dns.message.make_query(
                qname, rdtype, rdclass, flags=0, use_edns=0, payload=EDNS_PAYLOAD
            )
            query.id = channel.new_id()
            wire = query.to_wire()
            waiter: asyncio.Future[dns.message.Message] = loop.create_future()
            channel.pending[query.id] = (query, waiter)
            try:
                while True:
                    left = deadline - loop.time()
                    if left <= 0:
                        where = peer(server, self.port)
                        raise ProbeError(
                            timed_out(self.timeout, f"asking {where} for {qname} {rdtype}")
                        )
                    channel.transport.sendto(wire)
                    try:
                        response = await asyncio.wait_for(
                            asyncio.shield(waiter), min(RETRANSMIT_AFTER, left)
                        )
                        break
                    except TimeoutError:
                        continue
            finally:
                del channel.pending[query.id]
            if response.flags & dns.flags.TC:
                return await self._over_tcp(query, server, deadline - loop.time()), True
            return response, False

    async def _over_tcp(
        self, query: dns.message.Message, server: str, left: float
    ) -> dns.message.Message:
        where = f"{peer(server, self.port)} over TCP (the UDP answer was truncated)"
        if left <= 0:
            raise ProbeTimeout(timed_out(self.timeout, f"before asking {where}"))
        try:
            response = await dns.asyncquery.tcp(query, server, timeout=left, port=self.port)
        except dns.exception.Timeout:
            raise ProbeTimeout(timed_out(self.timeout, f"asking {where}")) from None
        except (OSError, dns.exception.DNSException) as exc:
            raise ProbeError(f"{where} failed: {exc}") from None
        return response

    async def answer(self, server: str, question: Question) -> Answer:
        qname, rdtype = question
        try:
            response, over_tcp = await self.ask(server, qname, rdtype)
        except ProbeError as exc:
            return Answer(server, qname, rdtype, error=str(exc))
        return Answer(
            server=server,
            qname=qname,
            rdtype=rdtype,
            rcode=dns.rcode.to_text(response.rcode()),
            authoritative=bool(response.flags & dns.flags.AA),
            answer=_rrsets(response.answer),
            over_tcp=over_tcp,
        )

    async def identity(self, server: str) -> str | None:
        try:
            response, _ = await self.ask(server, "id.server", "TXT", "CH")
        except ProbeError:
            return None
        for rrset in response.answer:
            for rdata in rrset:
                strings = getattr(rdata, "strings", ())
                return shown(b"".join(strings)) or None
        return None

    def close(self) -> None:
        for channel in self.channels.values():
            channel.transport.close()


class Tally:
    """Questions asked and answered so far, for a `progress` callback (rounds add questions)."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.done = 0
        self.total = 0

    def asking(self, count: int) -> None:
        self.total += count
        if self.progress is not None and count:
            self.progress(self.done, self.total)

    def answered(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


async def ask_all(
    engine: Engine, requests: Iterable[tuple[str, Question]], tally: Tally | None = None
) -> dict[tuple[str, Question], Answer]:
    """Each (server, question) asked once, all concurrently; `tally` counts them."""
    keys = list(dict.fromkeys(requests))
    if tally is None or tally.progress is None:
        results = await asyncio.gather(*(engine.answer(server, q) for server, q in keys))
        return dict(zip(keys, results, strict=True))

    async def counted(server: str, question: Question) -> Answer:
        answer = await engine.answer(server, question)
        tally.answered()
        return answer

    tally.asking(len(keys))
    results = await asyncio.gather(*(counted(server, q) for server, q in keys))
    return dict(zip(keys, results, strict=True))


def observe_answers(
    requests: Iterable[tuple[str, Question]],
    *,
    timeout: float,
    max_in_flight: int = MAX_IN_FLIGHT,
    port: int = 53,
    progress: Progress | None = None,
) -> dict[tuple[str, Question], Answer]:
    """Ask each (server, (name, type)) directly, all concurrently; never raises for a server.

    `progress` hears (answered, asked) as answers come in.

    >>> observe_answers([("198.51.100.53", ("example.test", "SOA"))], timeout=5)  # doctest: +SKIP
    """

    async def run() -> dict[tuple[str, Question], Answer]:
        engine = Engine(timeout, max_in_flight, port)
        try:
            return await ask_all(engine, requests, Tally(progress))
        finally:
            engine.close()

    return asyncio.run(run())
