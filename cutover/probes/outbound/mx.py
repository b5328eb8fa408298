"""MX of the mail domains: (preference, exchange) pairs, as observed and as recorded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cutover.probes.dns.names import absolute_text
from cutover.probes.outbound.lookup import AuthoritativeLookup

__all__ = ["MxRecord", "observe_mx", "parse_mx"]


@dataclass(frozen=True, order=True)
class MxRecord:
    preference: int
    exchange: str

    def __str__(self) -> str:
        return f"{self.preference} {self.exchange}"


def observe_mx(domain: str, names: AuthoritativeLookup) -> tuple[MxRecord, ...]:
    """The domain's MX records (preference, exchange), as every authoritative server gives them."""
    answer = names.lookup(domain, "MX")
    records = []
    for value in answer.values(domain, "MX"):
        preference, exchange = value.split()
        records.append(MxRecord(int(preference), absolute_text(exchange)))
    return tuple(sorted(records))


def parse_mx(entries: Sequence[Sequence[object]]) -> tuple[MxRecord, ...]:
    """MX records as the baseline keeps them: [[10, "mail.example.test"], ...]."""
    return tuple(sorted(MxRecord(int(str(p)), str(e)) for p, e in entries))
