"""SPF of the mail domains: the records, and pyspf's verdict for each sending IP.

pyspf evaluates (RFC 7208, strict: 10 DNS-causing terms, 2 void lookups)
with its DNS routed through an `AuthoritativeLookup`, so every name it asks
is answered by the authoritative servers of its zone.

>>> evaluate_spf("example.test", "198.51.100.20", names).result  # doctest: +SKIP
'pass'
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import spf

from cutover.probes.connect import ProbeError
from cutover.probes.dns.names import absolute_text
from cutover.probes.outbound.lookup import AuthoritativeLookup, txt_bytes
from cutover.untrusted import MAX_SHOWN_LINE, shown

__all__ = ["SpfRecords", "SpfVerdict", "evaluate_spf", "observe_spf_records"]


@dataclass(frozen=True)
class SpfRecords:
    """The `v=spf1` TXT records of a domain (RFC 7208 4.5: exactly one may exist)."""

    domain: str
    records: tuple[str, ...]
    asked: str


def observe_spf_records(domain: str, names: AuthoritativeLookup) -> SpfRecords:
    """Every TXT record of `domain` that pyspf takes for an SPF record."""
    answer = names.lookup(domain, "TXT")
    texts = [txt_bytes(value) for value in answer.values(domain, "TXT")]
    records = tuple(shown(t) for t in texts if spf.RE_SPF.match(t))
    return SpfRecords(domain, records, answer.asked)


@dataclass(frozen=True)
class SpfVerdict:
    """pyspf's answer for mail from `domain` sent by `ip`."""

    domain: str
    ip: str
    result: str  # pass fail softfail neutral none permerror temperror
    explanation: str
    mechanism: str | None  # the term that decided, when one did
    lookups: int  # DNS-causing terms evaluated (RFC 7208 limit 10)
    void_lookups: int  # lookups that found nothing (limit 2)
    asked: tuple[str, ...]  # every question, in order: "include.example TXT"

    @property
    def summary(self) -> str:
        decided = f" by {self.mechanism}" if self.mechanism else ""
        return (
            f"{self.result}{decided} ({self.explanation}; {self.lookups} DNS-causing terms, "
            f"{self.void_lookups} void lookups)"
        )


def evaluate_spf(domain: str, ip: str, names: AuthoritativeLookup) -> SpfVerdict:
    """RFC 7208 check_host(ip, domain, postmaster@domain), strict, DNS through `names`."""
    asked: list[str] = []
    query = spf.query(i=ip, s=f"postmaster@{domain}", h=domain, strict=True, timeout=names.timeout)
    _route_dns(query, _pyspf_lookup(names, asked))
    result, _code, explanation = query.check()
    return SpfVerdict(
        domain=domain,
        ip=ip,
        result=str(result),
        explanation=shown(explanation, limit=MAX_SHOWN_LINE),
        mechanism=None if query.mechanism is None else shown(query.mechanism),
        lookups=int(query.lookups),
        void_lookups=int(query.void_lookups),
        asked=tuple(asked),
    )


def _route_dns(query: Any, lookup: Callable[..., list[tuple[tuple[str, str], Any]]]) -> None:
    """Make this one pyspf query resolve through `lookup`.

    pyspf reads its resolver from the module global `spf.DNSLookup` (its
    documented hook). Setting that global would reroute every evaluation in
    the process; instead this query gets its own copy of `query.dns` whose
    globals name `lookup`, so concurrent evaluations never see each other's.
    """
    method = spf.query.dns
    private_globals = {**method.__globals__, "DNSLookup": lookup}
    function = types.FunctionType(
        method.__code__, private_globals, method.__name__, method.__defaults__, method.__closure__
    )
    query.dns = types.MethodType(function, query)


def _pyspf_lookup(
    names: AuthoritativeLookup, asked: list[str]
) -> Callable[..., list[tuple[tuple[str, str], Any]]]:
    """A pyspf DNSLookup: [((owner, type), value)] for every record of the answer section."""

    def lookup(name: str, qtype: str, strict: object = True, timeout: object = None) -> Any:
        asked.append(f"{name} {qtype}")
        try:
            answer = names.lookup(name, qtype)
        except ProbeError as exc:
            raise spf.TempError(f"DNS {exc}") from None
        found: list[tuple[tuple[str, str], Any]] = []
        for rrset in answer.records:
            for value in rrset.values:
                found.append(((rrset.name, rrset.rdtype), _pyspf_value(rrset.rdtype, value)))
        return found

    return lookup


def _pyspf_value(rdtype: str, value: str) -> Any:
    """A record's data in the shape pyspf's own dnspython driver gives it."""
    if rdtype in ("TXT", "SPF"):
        rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, value)
        return tuple(getattr(rdata, "strings", ()))
    if rdtype == "MX":
        preference, exchange = value.split()
        return int(preference), absolute_text(exchange)
    if rdtype in ("PTR", "CNAME"):
        return absolute_text(value)
    return value
