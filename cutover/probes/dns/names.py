"""DNS names as the probes compare and show them: lower case, absolute, no final dot.

`zone_name` is the one normalisation of a zone's name on the probe side:
every place that keys, asks or files by zone goes through it. Names listed
in the inventory are relative to their zone (`www`), `@` for the apex, or
absolute (`mail.other.test.`): `below` turns them into owner names.

>>> zone_name("Example.TEST."), below("www", "example.test"), below("@", "Example.test")
('example.test', 'www.example.test', 'example.test')
"""

from __future__ import annotations

import functools
from collections.abc import Container

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

__all__ = ["Question", "absolute_text", "below", "in_zone", "rdata_key", "zone_name", "zone_of"]

Question = tuple[str, str]  # (owner name without the final dot, record type)


# Every zone id, JUnit property and SQL row asks again for the same few names.
@functools.lru_cache(maxsize=1 << 16)
def absolute_text(name: str) -> str:
    """`Example.TEST.` -> `example.test` (how names are compared and shown here)."""
    return dns.name.from_text(name).to_text(omit_final_dot=True).lower()


def zone_name(name: str) -> str:
    """A zone's name as the probes key, ask and file by it: `Example.TEST.` -> `example.test`.

    The one place a zone name is normalised on the probe side (discovery,
    the questions, filing answers, SQL rows, outbound lookups).
    """
    return absolute_text(name)


def in_zone(name: str, zone: str) -> bool:
    """Is `name` the zone's apex or below it? (Both as `absolute_text` gives them.)

    >>> in_zone("www.example.test", "example.test"), in_zone("badexample.test", "example.test")
    (True, False)
    """
    return name == zone or name.endswith("." + zone)


def below(label: str, zone: str) -> str:
    """A name listed in the inventory: relative to the zone, `@` for the apex, or absolute."""
    if label == "@":
        return zone_name(zone)
    if label.endswith("."):
        return absolute_text(label)
    return absolute_text(f"{label}.{zone}")


def zone_of(name: str, zones: Container[str]) -> str | None:
    """The longest of `zones` that contains `name` (walking up its labels).

    >>> zone_of("www.shop.example.test", {"example.test", "shop.example.test"})
    'shop.example.test'
    """
    labels = name.split(".")
    for start in range(len(labels)):
        candidate = ".".join(labels[start:])
        if candidate in zones:
            return candidate
    return None


# DNS06 compares every row's and every served record's data: each text is parsed once.
@functools.lru_cache(maxsize=1 << 16)
def rdata_key(rdtype: str, text: str, origin: str = ".") -> bytes:
    """Canonical wire form of one record's data, for comparing SQL rows with answers.

    Names compare case-insensitively, relative names are taken relative to `origin`.
    Raises ValueError when the text is not valid data for the type.

    >>> rdata_key("CNAME", "Example.test.") == rdata_key("CNAME", "example.test", "test.")
    False
    >>> rdata_key("CNAME", "Example.test.") == rdata_key("CNAME", "example.test", ".")
    True
    """
    try:
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN,
            dns.rdatatype.from_text(rdtype),
            text,
            dns.name.from_text(origin),
            relativize=False,
        )
    except (dns.exception.DNSException, ValueError) as exc:
        raise ValueError(f"not valid {rdtype} data {text!r}: {exc}") from None
    return rdata.to_digestable(dns.name.root)
