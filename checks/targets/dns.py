"""The DNS checks' parameter: one zone of `dns.zones`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from cutover.model.inventory import DnsZone
from cutover.probes.dns.names import zone_name

__all__ = ["ZoneTarget"]


@dataclass(frozen=True)
class ZoneTarget:
    """A zone as a check parameter: id `example.test`, JUnit properties zone/servers."""

    zone: DnsZone

    @property
    def id(self) -> str:
        return self.zone.name

    @property
    def name(self) -> str:
        return zone_name(self.zone.name)

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "zone", self.name
        servers = ",".join(str(a) for a in self.zone.nameservers)
        yield "servers", servers or "NS set"
