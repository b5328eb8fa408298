"""The outbound checks' parameters: the mail domains, and each domain's DKIM selectors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cutover.probes.dns.names import zone_name

if TYPE_CHECKING:
    from cutover.model.inventory import Inventory

__all__ = ["DkimSelector", "MailDomain", "domain_targets", "mail_domains", "selector_targets"]


@dataclass(frozen=True)
class MailDomain:
    """A mail domain as a check parameter: id `example.test`."""

    name: str

    @property
    def id(self) -> str:
        return self.name

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "domain", self.name


@dataclass(frozen=True)
class DkimSelector:
    """One selector of one domain: id `mail._domainkey.example.test`."""

    domain: str
    selector: str

    @property
    def id(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "domain", self.domain
        yield "selector", self.selector


def mail_domains(inventory: Inventory) -> list[str]:
    """outbound.domains, or every dns.zones name."""
    names = inventory.outbound.domains or [z.name for z in inventory.dns.zones]
    return list(dict.fromkeys(zone_name(n) for n in names))


def domain_targets(inventory: Inventory) -> list[MailDomain]:
    return [MailDomain(d) for d in mail_domains(inventory)]


def selector_targets(inventory: Inventory) -> list[DkimSelector]:
    selectors = inventory.outbound.dkim_selectors
    return [DkimSelector(d, s) for d in mail_domains(inventory) for s in selectors]
