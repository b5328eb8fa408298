"""The MySQL checks' parameters: an application account, a database of the inventory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from cutover.model.inventory import MysqlAccount

__all__ = ["AccountTarget", "DatabaseTarget"]


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
