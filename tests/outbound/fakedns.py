"""A tiny authoritative nameserver on loopback, for the outbound probes' logic tests.

Not a stand-in for the lab's PowerDNS (the lab tests use that): a UDP server
that answers from a dict of records, authoritatively for the zones it is
given, with CNAMEs in the same zone followed as an authoritative server does,
NXDOMAIN for names it does not hold and REFUSED outside its zones.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

Records = dict[tuple[str, str], list[str]]  # (owner, type) -> data in presentation form


class FakeAuthority:
    def __init__(self, address: str, port: int, zones: list[str], records: Records) -> None:
        self.zones = [dns.name.from_text(z) for z in zones]
        self.records = records
        self.asked: list[tuple[str, str, int]] = []  # (name, type, flags)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, port))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        question = query.question[0]
        qname = question.name
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.asked.append((qname.to_text(omit_final_dot=True), rdtype, query.flags))
        if not any(qname.is_subdomain(z) for z in self.zones):
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        name = qname
        for _ in range(8):
            owner = name.to_text(omit_final_dot=True).lower()
            if (owner, "CNAME") in self.records and rdtype != "CNAME":
                target = self.records[(owner, "CNAME")][0]
                response.answer.append(dns.rrset.from_text(name, 300, "IN", "CNAME", target))
                name = dns.name.from_text(target)
                if not any(name.is_subdomain(z) for z in self.zones):
                    return response
                continue
            if (owner, rdtype) in self.records:
                response.answer.append(
                    dns.rrset.from_text_list(name, 300, "IN", rdtype, self.records[(owner, rdtype)])
                )
            elif not any(o == owner for o, _ in self.records) and not response.answer:
                response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        return response

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                data, client = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            self.sock.sendto(self._answer(dns.message.from_wire(data)).to_wire(), client)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@contextmanager
def authorities(zones: list[str], *records: Records) -> Iterator[list[FakeAuthority]]:
    """One server per records dict, on 127.0.0.1, 127.0.0.2, ... sharing one port."""
    servers: list[FakeAuthority] = []
    try:
        port = 0
        for index, data in enumerate(records):
            server = FakeAuthority(f"127.0.0.{index + 1}", port, zones, data)
            port = server.port
            servers.append(server)
        yield servers
    finally:
        for server in servers:
            server.close()
