"""The whole inventory (`Inventory`), a fleet's pair (`Pair`), the fleet, and the JSON Schema."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    model_validator,
)

from cutover.model.inventory.base import InventoryError, Loc, SecretRef, Strict
from cutover.model.inventory.sections import (
    Acceptance,
    Budget,
    Decommission,
    Dns,
    Http,
    Mail,
    Mysql,
    Outbound,
    Server,
    Service,
    Timeouts,
    Tls,
    VirtHost,
    default_services,
)

SECRET_PLACES = {
    ("mail", "accounts"): True,
    ("mysql", "admin"): False,
    ("mysql", "accounts"): True,
    ("dns", "sql"): True,
}
# Files the inventory names that must exist wherever it is checked (they hold no secret).
FILE_PLACES: tuple[Loc, ...] = (("ssh_config",), ("tls", "ca_file"))

# Names that become part of test ids and report file names.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

_SECTION_DOCS = {
    "ssh_config": "ssh_config for host-side checks; relative to the inventory, ~ is expanded",
    "services": "the client-facing ports the old host forwards (default: the nine of the "
    "mail/web/MySQL playbook: 110 995 143 993 25 465 587 80 3306)",
    "hostnames": "names clients type: every certificate must cover them",
    "tls": "how certificates are verified",
    "http": "name-based virtual hosts (the HTTP checks run when this section says anything)",
    "mail": "mail accounts (the IMAP/POP3 checks run when this section says anything)",
    "mysql": "MySQL/MariaDB accounts and databases (the MySQL checks run when this section "
    "says anything)",
    "dns": "zones and their nameservers (the DNS checks run when this section says anything)",
    "outbound": "outbound mail: SPF, reverse DNS, DKIM and MX (checked with dns:)",
    "virt_host": "a VFIO/KVM host (the VFIO and VM checks run when it is given)",
    "acceptance": "what the acceptance phase expects of the old IP",
    "timeouts": "per-connection and per-check time limits (seconds)",
    "decommission": "what the decommission phase watches on the old host (needs old.ssh)",
    "budget": "how hard the suite may use each server: TCP connections at once and logins "
    "per second, per host (old.budget / new.budget override it for one side)",
}


def _documented(field: str, default: Any = None, factory: Any = None) -> Any:
    if factory is not None:
        return Field(default_factory=factory, description=_SECTION_DOCS[field])
    return Field(default=default, description=_SECTION_DOCS[field])


class Inventory(Strict):
    """The whole migration (one host pair), as the operator describes it."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)] = Field(
        default="migration",
        description="the migration's name: in reports, JUnit properties and baseline files",
    )
    old: Server = Field(description="the old host (the IP clients use today)")
    new: Server = Field(description="the new host")
    ssh_config: Path | None = _documented("ssh_config")
    services: list[Service] = _documented("services", factory=default_services)
    hostnames: list[str] = _documented("hostnames", factory=list)
    tls: Tls = _documented("tls", factory=Tls)
    http: Http = _documented("http", factory=Http)
    mail: Mail = _documented("mail", factory=Mail)
    mysql: Mysql = _documented("mysql", factory=Mysql)
    dns: Dns = _documented("dns", factory=Dns)
    outbound: Outbound = _documented("outbound", factory=Outbound)
    virt_host: VirtHost | None = _documented("virt_host")
    acceptance: Acceptance = _documented("acceptance", factory=Acceptance)
    timeouts: Timeouts = _documented("timeouts", factory=Timeouts)
    decommission: Decommission = _documented("decommission", factory=Decommission)
    budget: Budget = _documented("budget", factory=Budget)

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _distinct(self) -> Inventory:
        shared = [a for a in self.old.addresses if a in self.new.addresses]
        if shared:
            raise ValueError(f"old.address and new.address share {shared[0]}")
        return self

    @property
    def source(self) -> Path | None:
        return self._source

    def service_hostnames(self, service: Service) -> list[str]:
        return service.hostnames or self.hostnames

    def configures(self, section: str) -> bool:
        """The section says something beyond its defaults: its area has something to check.

        >>> inventory.configures("mysql")  # doctest: +SKIP
        False
        >>> inventory.configures("old.ssh")  # a field of a section  # doctest: +SKIP
        True
        """
        owner: Any = self
        *parents, name = section.split(".")  # `old.ssh`: a field of a section
        for parent in parents:
            owner = getattr(owner, parent)
        value = getattr(owner, name)
        default = type(owner).model_fields[name].get_default(call_default_factory=True)
        return _plain(value) != _plain(default)

    def secret_refs(self) -> Iterator[tuple[Loc, SecretRef]]:
        """Every object that carries a password reference, with its location.

        >>> [loc for loc, _ in inventory.secret_refs()]  # doctest: +SKIP
        [('mail', 'accounts', 0), ('mysql', 'admin')]
        """
        for (section, field), many in SECRET_PLACES.items():
            value = getattr(getattr(self, section), field)
            for index, ref in enumerate(value) if many else [(None, value)]:
                if ref is not None:
                    yield (section, field) if index is None else (section, field, index), ref


def _plain(value: object) -> object:
    return value.model_dump() if isinstance(value, BaseModel) else value


class Pair(Strict):
    """One migration of a fleet: its own hosts, and any section that differs from the defaults.

    A section given here replaces the top-level one whole (no merging inside it).
    """

    name: Annotated[str, Field(pattern=NAME_PATTERN)] = Field(
        description="the pair's name in test ids; unique in the fleet"
    )
    old: Server = Field(description="the pair's old host")
    new: Server = Field(description="the pair's new host")
    ssh_config: Path | None = _documented("ssh_config")
    services: list[Service] | None = _documented("services")
    hostnames: list[str] | None = _documented("hostnames")
    tls: Tls | None = _documented("tls")
    http: Http | None = _documented("http")
    mail: Mail | None = _documented("mail")
    mysql: Mysql | None = _documented("mysql")
    dns: Dns | None = _documented("dns")
    outbound: Outbound | None = _documented("outbound")
    virt_host: VirtHost | None = _documented("virt_host")
    acceptance: Acceptance | None = _documented("acceptance")
    timeouts: Timeouts | None = _documented("timeouts")
    decommission: Decommission | None = _documented("decommission")
    budget: Budget | None = _documented("budget")


@dataclass(frozen=True)
class Fleet:
    """Every migration an inventory file describes (one pair without `pairs:`)."""

    name: str
    source: Path
    pairs: tuple[Inventory, ...]
    explicit: bool = False  # the file has a `pairs:` list

    @property
    def names(self) -> list[str]:
        return [pair.name for pair in self.pairs]

    @property
    def several(self) -> bool:
        """More than one pair: test ids, baselines and reports carry the pair's name."""
        return len(self.pairs) > 1

    def pair(self, name: str) -> Inventory:
        for pair in self.pairs:
            if pair.name == name:
                return pair
        raise InventoryError(
            f"{self.source}: pairs: no pair named {name!r} (the inventory has: "
            f"{', '.join(self.names)})"
        )


def inventory_schema() -> dict[str, Any]:
    """JSON Schema of the inventory, for editors (`python -m cutover schema`).

    It says what the loader says about shape; what it cannot say (nothing
    listed twice, cross-references, secrets that resolve) is `meaning_problems`.
    """
    schema = Inventory.model_json_schema(by_alias=True)
    # A fleet: `pairs:` instead of top-level old/new (each pair inherits the other sections).
    pair = Pair.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    schema.setdefault("$defs", {}).update(pair.pop("$defs", {}))
    schema["$defs"]["Pair"] = pair
    schema["properties"]["pairs"] = {
        "type": "array",
        "minItems": 1,
        "items": {"$ref": "#/$defs/Pair"},
        "description": "several migrations (host pairs) in one inventory; each inherits "
        "every top-level section it does not give itself",
    }
    schema["required"] = [key for key in schema.get("required", []) if key not in ("old", "new")]
    schema["if"] = {"required": ["pairs"]}
    schema["then"] = {"properties": {"old": False, "new": False}}
    schema["else"] = {"required": ["old", "new"]}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "cutover inventory"
    return schema
