"""Reverse DNS of an IP: its PTR names and, for each, the addresses it resolves back to."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import dns.reversename

from cutover.probes.connect import ProbeError
from cutover.probes.dns.names import absolute_text
from cutover.probes.outbound.lookup import AuthoritativeLookup

__all__ = ["ReverseDns", "observe_reverse"]


@dataclass(frozen=True)
class ReverseDns:
    """The PTR names of an IP and, for each, the addresses it resolves to."""

    ip: str
    pointer: str  # 20.100.51.198.in-addr.arpa
    names: tuple[str, ...]
    asked: str
    forward: dict[str, tuple[str, ...]] = field(default_factory=dict)
    forward_errors: dict[str, str] = field(default_factory=dict)
    forward_chains: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def confirmed(self) -> tuple[str, ...]:
        """PTR names that resolve back to the IP (forward-confirmed reverse DNS)."""
        return tuple(n for n in self.names if self.ip in self.forward.get(n, ()))


def observe_reverse(ip: str, names: AuthoritativeLookup) -> ReverseDns:
    """PTR of `ip`, then A/AAAA of every PTR name (CNAMEs followed)."""
    address = ipaddress.ip_address(ip)
    pointer = absolute_text(dns.reversename.from_address(str(address)).to_text())
    chain, answer = names.follow(pointer, "PTR")
    ptr_names = tuple(sorted(absolute_text(v) for v in answer.values(chain[-1], "PTR")))
    family = "A" if address.version == 4 else "AAAA"
    forward: dict[str, tuple[str, ...]] = {}
    errors: dict[str, str] = {}
    chains: dict[str, tuple[str, ...]] = {}
    for name in ptr_names:
        try:
            hops, found = names.follow(name, family)
        except ProbeError as exc:
            errors[name] = str(exc)
            continue
        forward[name] = tuple(
            str(ipaddress.ip_address(v)) for v in sorted(found.values(hops[-1], family))
        )
        chains[name] = tuple(hops)
    return ReverseDns(str(address), pointer, ptr_names, answer.asked, forward, errors, chains)
