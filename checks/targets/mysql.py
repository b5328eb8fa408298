"""The MySQL checks' parameters: an application account, a database of the inventory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from cutover.model.inventory import MysqlAccount
from cutover.probes.mysql.session import MysqlServer

__all__ = ["AccountTarget", "DatabaseTarget", "DirectLoginTarget", "MysqlAddressTarget"]


@dataclass(frozen=True)
class AccountTarget:
    """An application account of the inventory (`mysql.accounts`), as a check parameter."""

    account: MysqlAccount

    @property
    def id(self) -> str:
        return f"{self.account.user}@{self.account.host}"

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "account", self.id


@dataclass(frozen=True)
class DatabaseTarget:
    """A database of the inventory (`mysql.databases`), as a check parameter."""

    name: str

    @property
    def id(self) -> str:
        return self.name

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "database", self.name


@dataclass(frozen=True)
class MysqlAddressTarget:
    """The MySQL port on one address of a host (`mysql-new-v6` on a dual-stack host)."""

    server: MysqlServer

    @property
    def id(self) -> str:
        return self.server.id

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "side", self.server.side.value
        yield "address", self.server.address
        yield "port", str(self.server.port)
        if self.server.tag:
            yield "family", self.server.tag.split("-")[0]


@dataclass(frozen=True)
class DirectLoginTarget:
    """A socket account's direct TCP login to one address of the new host (MYSQL02).

    On a new host with one address the id is the account's (`app@localhost`);
    with several, the address follows (`app@localhost-mysql-new-v6`).
    """

    account: MysqlAccount
    server: MysqlServer

    @property
    def id(self) -> str:
        account = AccountTarget(self.account).id
        return f"{account}-{self.server.id}" if self.server.tag else account

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "account", AccountTarget(self.account).id
        if self.server.tag:
            yield from MysqlAddressTarget(self.server).junit_properties()
