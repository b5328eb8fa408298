"""The inventory: one YAML file that describes a migration, or several (a fleet).

Loaded once per run, validated by pydantic, with secrets resolved from
environment variables or files the inventory points to. The shape is
checked first (pydantic: types, unknown keys), then the meaning (nothing
listed twice, every cross-reference holds, secrets resolve). Every problem
found is one line of the `InventoryError`, naming the file, the line and the
field; all of them are reported at once.

A fleet inventory has a top-level `pairs:` list; each pair (`name`, `old`,
`new`, and any section that differs) inherits every other top-level section
whole (a shallow, per-section merge). `load_fleet` returns every pair as an
`Inventory`; an inventory without `pairs:` is one pair named after `name:`.

>>> inv = load_inventory("fixtures/inventory.example.yaml")  # doctest: +SKIP
>>> inv.new.address  # doctest: +SKIP
IPv4Address('198.51.100.20')
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from cutover.model.secrets import Secret, SecretError, resolve_secret

__all__ = [
    "Account",
    "DnsZone",
    "Fleet",
    "Inventory",
    "InventoryError",
    "MysqlAccount",
    "Outbound",
    "Pair",
    "Server",
    "Service",
    "load_fleet",
    "load_inventory",
    "meaning_problems",
]


def _ip_address(value: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    try:
        return ipaddress.ip_address(value if isinstance(value, str) else "")
    except ValueError:
        raise ValueError(f"not a valid IP address: {value!r}") from None


# One validator for both families: a union would report the error twice.
IPAddress = Annotated[
    ipaddress.IPv4Address | ipaddress.IPv6Address,
    PlainValidator(_ip_address),
    PlainSerializer(str),
    WithJsonSchema({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}),
]
# Numbers are taken as written: a quoted "993" is a string, as the JSON Schema says.
Port = Annotated[int, Field(ge=1, le=65535, strict=True)]
Seconds = Annotated[float, Field(gt=0, le=3600, strict=True)]
Count = Annotated[int, Field(ge=1, strict=True)]
# Where a field is in the inventory: ("mail", "accounts", 0, "user").
Loc = tuple[str | int, ...]
# An environment variable's name, as a shell would accept it.
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

# Keys that would carry a secret inline. The inventory is often committed to
# git and copied into CI artifacts, so these are refused outright.
INLINE_SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "key_passphrase"})


class InventoryError(Exception):
    """Problems with the inventory, each one line an operator can act on.

    >>> str(InventoryError("inv.yaml:3: old.address: not a valid IP address: 'x'"))
    "inv.yaml:3: old.address: not a valid IP address: 'x'"
    """

    def __init__(self, *problems: str) -> None:
        super().__init__(*problems)
        self.problems: tuple[str, ...] = problems

    def __str__(self) -> str:
        return "\n".join(self.problems)


class Protocol(StrEnum):
    SMTP = "smtp"
    IMAP = "imap"
    POP3 = "pop3"
    HTTP = "http"
    MYSQL = "mysql"


class TlsMode(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    IMPLICIT = "implicit"


class Strict(BaseModel):
    """Base model: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if isinstance(key, str) and key.lower() in INLINE_SECRET_KEYS:
                    raise ValueError(
                        f"inline secret '{key}' is not allowed: use {key}_env: VARIABLE "
                        f"or {key}_file: PATH"
                    )
        return data


_ONE_SECRET_REFERENCE: dict[str, Any] = {
    "oneOf": [
        {"required": ["password_env"]},
        {"required": ["password_file"]},
        {"not": {"anyOf": [{"required": ["password_env"]}, {"required": ["password_file"]}]}},
    ]
}
_EXACTLY_ONE_SECRET_REFERENCE: dict[str, Any] = {"oneOf": _ONE_SECRET_REFERENCE["oneOf"][:2]}


class SecretRef(Strict):
    """Mixin for objects that carry a password by reference."""

    model_config = ConfigDict(json_schema_extra=_ONE_SECRET_REFERENCE)

    password_env: Annotated[str | None, Field(pattern=ENV_NAME_PATTERN)] = Field(
        default=None,
        description="name of the environment variable holding the password "
        "(not both password_env and password_file)",
    )
    password_file: Path | None = Field(
        default=None,
        description="file whose first line is the password; relative to the inventory, "
        "~ is expanded (not both password_env and password_file)",
    )
    _password: Secret | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_reference(self) -> SecretRef:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        return self

    @property
    def password(self) -> Secret:
        """The resolved secret (resolved when the inventory is loaded)."""
        if self._password is None:
            raise SecretError("no password reference (password_env or password_file) given")
        return self._password

    @property
    def has_password(self) -> bool:
        return self._password is not None


class Server(Strict):
    """One side of the migration: the old or the new host."""

    address: IPAddress = Field(description="the host's public IP address, as clients reach it")
    hostname: str | None = Field(
        default=None,
        description="the host's own name (shown in messages; compared with SMTP "
        "banners and MySQL @@hostname)",
    )
    ssh: str | None = Field(
        default=None,
        description="testinfra host spec for host-side checks, e.g. ssh://root@old.example.net",
    )


class Service(Strict):
    """A client-facing service: one port, one protocol."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")] = Field(
        description="the service's name in test ids (imaps-993-old); unique"
    )
    port: Port = Field(description="TCP port, an integer 1-65535")
    protocol: Protocol = Field(description="what speaks on the port")
    tls: TlsMode = Field(
        default=TlsMode.NONE, description="none, starttls (upgrade in the protocol) or implicit"
    )
    hostnames: list[str] = Field(
        default_factory=list,
        description="client-facing names this service's certificate must cover "
        "(default: the inventory's top-level hostnames)",
    )

    @property
    def label(self) -> str:
        return f"{self.name}-{self.port}"


def _default_services() -> list[Service]:
    """The source playbook's nine forwarded ports."""
    table = [
        ("pop3", 110, Protocol.POP3, TlsMode.STARTTLS),
        ("pop3s", 995, Protocol.POP3, TlsMode.IMPLICIT),
        ("imap", 143, Protocol.IMAP, TlsMode.STARTTLS),
        ("imaps", 993, Protocol.IMAP, TlsMode.IMPLICIT),
        ("smtp", 25, Protocol.SMTP, TlsMode.STARTTLS),
        ("smtps", 465, Protocol.SMTP, TlsMode.IMPLICIT),
        ("submission", 587, Protocol.SMTP, TlsMode.STARTTLS),
        ("http", 80, Protocol.HTTP, TlsMode.NONE),
        ("mysql", 3306, Protocol.MYSQL, TlsMode.NONE),
    ]
    return [Service(name=n, port=p, protocol=pr, tls=t) for n, p, pr, t in table]


class Tls(Strict):
    ca_file: Path | None = Field(
        default=None,
        description="CA bundle to verify against (default: the system store); relative to the "
        "inventory, ~ is expanded",
    )
    expiry_margin_days: Annotated[int, Field(ge=0, le=3650, strict=True)] = Field(
        default=20, description="a certificate expiring within this many days fails"
    )


class Vhost(Strict):
    host: str = Field(description="the Host header the vhost answers to")
    path: str = Field(default="/", description="the path requested")
    ignore: list[str] = Field(
        default_factory=list, description="regexes removed from the body before digesting"
    )

    @field_validator("ignore")
    @classmethod
    def _valid_regexes(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a valid regex {pattern!r}: {exc}") from None
        return patterns


class Http(Strict):
    vhosts: list[Vhost] = Field(
        default_factory=list, description="name-based virtual hosts that must answer the same"
    )
    identity_header: str | None = Field(
        default=None, description="response header naming the server that answered"
    )


class Account(SecretRef):
    """A mail account (IMAP/POP3/SMTP AUTH login): every mail check logs in as it."""

    model_config = ConfigDict(json_schema_extra=_EXACTLY_ONE_SECRET_REFERENCE)

    user: str = Field(description="the login name; listed once")

    @model_validator(mode="after")
    def _has_password(self) -> Account:
        if self.password_env is None and self.password_file is None:
            raise ValueError(
                "no password: a mail account needs password_env: VARIABLE or "
                "password_file: PATH (the IMAP, POP3 and AUTH checks log in as it)"
            )
        return self


class Mail(Strict):
    accounts: list[Account] = Field(
        default_factory=list, description="accounts whose mailboxes must survive the move"
    )
    batch_size: Annotated[int, Field(ge=1, le=100_000, strict=True)] = Field(
        default=1000, description="messages fetched per IMAP command"
    )
    probe_account: str | None = Field(
        default=None,
        description="the account (one of mail.accounts) whose INBOX receives the opt-in "
        "mail-flow probe (`--probe-mail`); best a test account",
    )

    @model_validator(mode="after")
    def _probe_account_listed(self) -> Mail:
        if self.probe_account is not None and self.probe_account not in {
            account.user for account in self.accounts
        }:
            raise ValueError(
                f"probe_account {self.probe_account!r} is not one of mail.accounts "
                "(its password is needed to find the probe message over IMAP)"
            )
        return self


class MysqlAccount(SecretRef):
    user: str = Field(description="the account's user name")
    host: str = Field(
        default="localhost", description="the account's host part ('app'@'localhost')"
    )
    via_socket: Annotated[bool, Field(strict=True)] = Field(
        default=False,
        description="an application on the old host logs in through the old socket "
        "(needs old.ssh: the tunnel is tested from there)",
    )


class Mysql(Strict):
    admin: MysqlAccount | None = Field(
        default=None, description="a read-only account that can read mysql.user and the databases"
    )
    accounts: list[MysqlAccount] = Field(
        default_factory=list, description="accounts whose logins must work after the move"
    )
    databases: list[str] = Field(
        default_factory=list, description="databases whose rows must be the same on new"
    )
    socket: str = Field(
        default="/run/mysqld/mysqld.sock", description="the MySQL socket on the old host"
    )
    chunk_rows: Annotated[int, Field(ge=1, le=10_000_000, strict=True)] = Field(
        default=10_000, description="rows digested per query when comparing data"
    )


class DnsSql(SecretRef):
    """Read access to one nameserver's SQL backend."""

    nameserver: IPAddress = Field(description="the authoritative server these rows feed")
    schema_: Literal["powerdns", "mydns"] = Field(
        default="powerdns",
        alias="schema",
        description="powerdns (gmysql: domains/records) or mydns (soa/rr)",
    )
    host: str = Field(
        default="localhost",
        description="the database's host as seen from the machine running the suite "
        "(default localhost: that machine itself, not the nameserver)",
    )
    port: Port = Field(default=3306, description="the database's TCP port")
    socket: str | None = Field(
        default=None, description="a Unix socket on the machine running the suite (instead of TCP)"
    )
    database: str = Field(default="pdns", description="the database holding the zone tables")
    user: str = Field(description="a read-only SQL user (SELECT on the zone tables)")


class DnsZone(Strict):
    name: str = Field(description="the zone's apex, e.g. example.test; listed once")
    nameservers: list[IPAddress] = Field(
        default_factory=list, description="authoritative servers (default: the zone's NS set)"
    )
    names: list[str] = Field(
        default_factory=lambda: ["www", "mail"],
        description="names below the apex whose TTL and target matter",
    )
    cname_to_apex: list[str] = Field(
        default_factory=list, description="names that must be a CNAME to the apex"
    )


class Dns(Strict):
    ttl: Annotated[int, Field(ge=0, le=86400, strict=True)] = Field(
        default=300, description="the lowered TTL (seconds) the records must have before the move"
    )
    zones: list[DnsZone] = Field(default_factory=list, description="the zones that move")
    resolver: IPAddress | None = Field(
        default=None, description="resolver used only to find NS addresses, never for TTLs"
    )
    lowering_acknowledged: str | None = Field(
        default=None,
        description="operator's statement that TTLs were lowered long enough ago "
        "(skips the wait; recorded in the report)",
    )
    sql: list[DnsSql] = Field(
        default_factory=list, description="read access to nameservers' SQL backends (DNS06)"
    )


class Outbound(Strict):
    """Mail the new server sends: SPF, reverse DNS, DKIM and MX of the mail domains."""

    domains: list[str] = Field(
        default_factory=list,
        description="mail domains whose SPF, DKIM and MX must follow the move "
        "(default: every dns.zones name)",
    )
    dkim_selectors: list[str] = Field(
        default_factory=list,
        description="DKIM selectors published as SELECTOR._domainkey.DOMAIN (default: none, "
        "DKIM is not checked)",
    )
    dkim_key_file: str | None = Field(
        default=None,
        description="path of the signing key on the new host ({selector} and {domain} are "
        "replaced), read over new.ssh with `openssl pkey -pubout`; default: keys not compared",
    )
    reverse_nameservers: list[IPAddress] = Field(
        default_factory=list,
        description="authoritative servers of the new IP's reverse zone, asked for every "
        "reverse name (default: the PTR is asked of dns.resolver, if given)",
    )

    @field_validator("dkim_key_file")
    @classmethod
    def _known_placeholders(cls, path: str | None) -> str | None:
        if path is not None:
            try:
                path.format(selector="s", domain="d")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(
                    f"only {{selector}} and {{domain}} may be replaced in {path!r} ({exc})"
                ) from None
        return path


class PciDevice(Strict):
    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["address"]}, {"required": ["id"]}]}
    )

    address: Annotated[
        str | None, Field(pattern=r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
    ] = Field(default=None, description="PCI address, e.g. 0000:01:00.0")
    id: Annotated[str | None, Field(pattern=r"^[0-9a-f]{4}:[0-9a-f]{4}$")] = Field(
        default=None, description="vendor:device, e.g. 1002:6810"
    )
    name: str | None = Field(default=None, description="a name for test ids, e.g. gpu")

    @model_validator(mode="after")
    def _named(self) -> PciDevice:
        if not (self.address or self.id):
            raise ValueError("a device needs an address (0000:01:00.0) or an id (1002:6810)")
        return self


class Topology(Strict):
    sockets: Count = Field(default=1, description="the VM's CPU sockets")
    cores: Count = Field(description="cores per socket")
    threads: Annotated[int, Field(ge=1, le=8, strict=True)] = Field(
        default=1, description="threads per core"
    )


class VirtHost(Strict):
    ssh: str = Field(
        min_length=1,
        description="the host to check, as a testinfra host spec: ssh://root@kvm1, or local:// "
        "for the machine running the suite (said explicitly, never assumed)",
    )
    cpu_vendor: Literal["intel", "amd"] | None = Field(
        default=None, description="expected CPU vendor (default: read from the host)"
    )
    devices: list[PciDevice] = Field(
        default_factory=list, description="PCI functions passed through to the VM"
    )
    vfio_bind_file: str = Field(
        default="/etc/sysconfig/vfio-bind",
        description="the host's file listing the functions bound to vfio-pci at boot",
    )
    vm: str | None = Field(default=None, description="the libvirt domain (VM) to check")
    libvirt_uri: str = Field(default="qemu:///system", description="libvirt connection URI")
    topology: Topology | None = Field(default=None, description="the VM's expected CPU topology")
    reserved_cpus: list[Annotated[int, Field(ge=0, strict=True)]] = Field(
        default_factory=list, description="host CPUs kept for the host (emulator threads)"
    )
    gpu_vendor: Literal["nvidia", "amd", "intel", "other"] | None = Field(
        default=None, description="the passed-through GPU's vendor (NVIDIA needs KVM hidden)"
    )

    @model_validator(mode="before")
    @classmethod
    def _says_where(cls, data: Any) -> Any:
        if isinstance(data, dict) and "ssh" not in data:
            raise ValueError(
                "no ssh: name the host to check (ssh: ssh://root@kvm1), or write "
                "ssh: local:// to check the machine running the suite"
            )
        return data


class Timeouts(Strict):
    connect: Seconds = Field(default=5.0, description="seconds to open a connection")
    operation: Seconds = Field(default=5.0, description="seconds for one exchange on it")
    test: Seconds = Field(default=120.0, description="pytest-timeout backstop per check")
    mail_delivery: Seconds = Field(
        default=60.0,
        description="how long the opt-in mail-flow probe waits for its message in the INBOX",
    )


class Acceptance(Strict):
    old_ip: Literal["forward", "closed"] = Field(
        default="forward",
        description="after the DNS change the old IP still forwards, or is closed",
    )


# Where password references live (section, field), and whether the field is a list of them.
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
    services: list[Service] = _documented("services", factory=_default_services)
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

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _distinct(self) -> Inventory:
        if self.old.address == self.new.address:
            raise ValueError("old.address and new.address are the same")
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
        """
        value = getattr(self, section)
        default = type(self).model_fields[section].get_default(call_default_factory=True)
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


# --- meaning: what the shape cannot say ------------------------------------------


def _items(data: object, *path: str) -> list[Any]:
    """The list at `path` in the raw data, or [] if missing or mis-shaped (pydantic says so)."""
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, list) else []


def _listed_twice(
    items: list[Any], key: Callable[[Any], Hashable | None], at: Loc, what: Callable[[Any], str]
) -> Iterator[tuple[Loc, str]]:
    """The second (third...) item of `items` with the same key, located at that item."""
    first: dict[Hashable, int] = {}
    for index, item in enumerate(items):
        value = key(item)
        if value is None:
            continue
        if value in first:
            yield (
                (*at, index),
                f"{what(item)} is listed twice (first as {_field_path((*at, first[value]))})",
            )
        else:
            first[value] = index


def _text(item: Any, field: str, default: str | None = None) -> str | None:
    value = item.get(field, default) if isinstance(item, dict) else None
    return value if isinstance(value, str) else None


def _account_key(item: Any) -> tuple[str, str] | None:
    user, host = _text(item, "user"), _text(item, "host", "localhost")
    return None if user is None or host is None else (user, host.casefold())


def meaning_problems(data: dict[str, Any]) -> Iterator[tuple[Loc, str]]:
    """Every rule the shape cannot say, checked on the raw data: (field location, problem).

    Each is something the run would get wrong, not only fail on: a duplicate
    account becomes two test ids for one account, a via_socket account
    without old.ssh has no host to test its tunnel from. Read from the raw
    data, so they are reported even beside shape problems elsewhere.

    >>> [what for _, what in meaning_problems({"mysql": {"databases": ["app", "app"]}})]
    ["database 'app' is listed twice (first as mysql.databases[0])"]
    """
    yield from _listed_twice(
        _items(data, "services"),
        lambda s: _text(s, "name"),
        ("services",),
        lambda s: f"service name {s['name']!r}",
    )
    yield from _listed_twice(
        _items(data, "mail", "accounts"),
        lambda a: (_text(a, "user") or "").casefold() or None,
        ("mail", "accounts"),
        lambda a: f"mail account {a['user']!r}",
    )
    yield from _listed_twice(
        _items(data, "mysql", "accounts"),
        _account_key,
        ("mysql", "accounts"),
        lambda a: f"MySQL account '{a['user']}'@'{a.get('host', 'localhost')}'",
    )
    yield from _listed_twice(
        _items(data, "mysql", "databases"),
        lambda d: d if isinstance(d, str) else None,
        ("mysql", "databases"),
        lambda d: f"database {d!r}",
    )
    yield from _listed_twice(
        _items(data, "dns", "zones"),
        lambda z: (_text(z, "name") or "").rstrip(".").casefold() or None,
        ("dns", "zones"),
        lambda z: f"zone {z['name']!r}",
    )
    old = data.get("old")
    if isinstance(old, dict) and not old.get("ssh"):
        for index, account in enumerate(_items(data, "mysql", "accounts")):
            if isinstance(account, dict) and account.get("via_socket") is True:
                yield (
                    ("old", "ssh"),
                    f"missing, but mysql.accounts[{index}] ('{account.get('user')}'@"
                    f"'{account.get('host', 'localhost')}') has via_socket: true and its tunnel "
                    "is tested from the old host (e.g. ssh: ssh://root@old.example.net)",
                )
                break


# --- loading -------------------------------------------------------------


# libyaml's loader when PyYAML was built with it: the pure-Python one is ~10x slower.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class _DuplicateKey:
    loc: Loc
    line: int
    first_line: int


def _compose_lines(
    node: yaml.Node, path: Loc, lines: dict[Any, int], duplicates: list[_DuplicateKey]
) -> None:
    """Note the line of every node by its field path, and every key given twice in a mapping."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, Any], int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                if (key_node.tag, key) in first:
                    duplicates.append(_DuplicateKey((*path, key), line, first[key_node.tag, key]))
                else:
                    first[key_node.tag, key] = line
            _compose_lines(value_node, (*path, key), lines, duplicates)
            lines[(*path, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _compose_lines(item, (*path, index), lines, duplicates)


def _line_for(loc: Loc, lines: dict[Any, int]) -> int | None:
    # Walk up the location until a node we know: an unknown key lives on
    # its own line, a missing key is best reported at its parent.
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None


def _field_path(loc: Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _describe(error: Any) -> str:
    kind = error["type"]
    message = str(error["msg"])
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see `python -m cutover schema`)"
    if kind == "missing":
        return "required field is missing"
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    elif message.startswith("Assertion failed, "):
        message = message[len("Assertion failed, ") :]
    value = error.get("input")
    if kind.startswith(
        ("greater", "less", "int_", "float_", "bool_", "string_", "literal", "enum")
    ) and (isinstance(value, (str, int, float))):
        return f"{message} (got {value!r})"
    return message


def _clean_loc(loc: tuple[Any, ...]) -> Loc:
    # pydantic adds the union member's type name to the location of a
    # union-typed field ("IPv4Address"); the operator never wrote it.
    return tuple(
        part
        for part in loc
        if not (isinstance(part, str) and (part[:1].isupper() or part.startswith("function-")))
    )


def _resolve_path(base: Path, value: Path | None) -> Path | None:
    if value is None:
        return None
    value = value.expanduser()
    return value if value.is_absolute() else base / value


class _Problems:
    """Every problem found in one inventory file, each once, as `file:line: field: what`."""

    def __init__(self, source: Path, lines: dict[Any, int]) -> None:
        self.source = source
        self.lines = lines
        self.found: list[tuple[int, str]] = []

    def add(self, loc: Loc, what: str, line: int | None = None) -> None:
        line = line or _line_for(loc, self.lines)
        where = f"{self.source}:{line}" if line else str(self.source)
        text = f"{where}: {_field_path(loc)}: {what}"
        if all(text != known for _, known in self.found):
            self.found.append((line or 0, text))

    def check(self) -> None:
        """Raise every problem found, in the file's order."""
        if self.found:
            raise InventoryError(*(text for _, text in sorted(self.found, key=lambda f: f[0])))


def load_inventory(
    path: str | os.PathLike[str],
    *,
    environ: dict[str, str] | None = None,
    pair: str | None = None,
    secrets: bool = True,
) -> Inventory:
    """Read, validate and resolve one migration, or raise `InventoryError`.

    A fleet inventory (several pairs) needs `pair`, the name of the one wanted.

    >>> load_inventory("inventory.yaml").old.address  # doctest: +SKIP
    IPv4Address('198.51.100.10')
    """
    fleet = load_fleet(path, environ=environ, secrets=secrets)
    if pair is not None:
        return fleet.pair(pair)
    if fleet.several:
        raise InventoryError(
            f"{fleet.source}: pairs: the inventory describes {len(fleet.pairs)} migrations "
            f"({', '.join(fleet.names)}): name one with --pair"
        )
    return fleet.pairs[0]


# How the front doors that take `--inventory` (pytest, `cutover run`, `cutover watch`) name one.
NAME_AN_INVENTORY = "give --inventory PATH or set CUTOVER_INVENTORY"


def load_fleet(
    path: str | os.PathLike[str],
    *,
    environ: dict[str, str] | None = None,
    secrets: bool = True,
    how_to_name: str = NAME_AN_INVENTORY,
) -> Fleet:
    """Read, validate and resolve an inventory file, every pair of it, or raise `InventoryError`.

    With `secrets=False` (`validate --no-secrets`, on a laptop) secret references
    are checked for their shape only: the variables and files they name are not read.
    `how_to_name` ends the line of an inventory that is not there: how the
    command that was typed takes one.

    >>> load_fleet("fleet.yaml").names  # doctest: +SKIP
    ['web07', 'mail02']
    """
    source = Path(path).expanduser()
    environ = dict(os.environ) if environ is None else environ
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(f"{source}: inventory not found ({how_to_name})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{source}: cannot read inventory: {exc}") from None

    root, data = _parse(source, text)
    if root is None or data is None:  # nothing, comments, or an empty document (`---`)
        raise InventoryError(
            f"{source}:1: the inventory is empty: it needs at least old and new "
            "(see `python -m cutover schema`)"
        )
    if not isinstance(data, dict):
        raise InventoryError(
            f"{source}:1: the inventory must be a mapping (key: value), not {type(data).__name__}"
        )
    lines: dict[Any, int] = {}
    duplicates: list[_DuplicateKey] = []
    _compose_lines(root, (), lines, duplicates)
    problems = _Problems(source, lines)
    for duplicate in duplicates:
        problems.add(
            duplicate.loc,
            f"key given twice (first on line {duplicate.first_line}): YAML would keep only "
            "the last; remove one",
            line=duplicate.line,
        )
    base = source.resolve().parent
    if "pairs" in data:
        return _load_pairs(data, source, base, environ, problems, secrets)
    for loc, what in meaning_problems(data):
        problems.add(loc, what)
    inventory = _validate(Inventory, data, problems, _same_place)
    _finish(inventory, data, source, base, environ, problems, _same_place, secrets)
    problems.check()
    assert inventory is not None
    return Fleet(inventory.name, source, (inventory,))


def _parse(source: Path, text: str) -> tuple[yaml.Node | None, Any]:
    """One parse: the node tree gives line numbers, then becomes the data."""
    try:
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            return root, (loader.construct_document(root) if root is not None else None)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if mark is None:
            raise InventoryError(f"{source}: YAML syntax error: {exc.problem}") from None
        line = text.splitlines()[mark.line] if mark.line < len(text.splitlines()) else ""
        if "\t" in line[: len(line) - len(line.lstrip())] or "tab" in str(exc.problem):
            raise InventoryError(
                f"{source}:{mark.line + 1}: a tab character; YAML indents with spaces"
            ) from None
        raise InventoryError(
            f"{source}:{mark.line + 1}: YAML syntax error: {exc.problem}"
        ) from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"{source}: YAML syntax error: {exc}") from None


# Where a location of a pair's merged data was written in the file.
Locate = Callable[[Loc], Loc]


ModelT = TypeVar("ModelT", bound=BaseModel)


def _same_place(loc: Loc) -> Loc:
    return loc


def _validate(
    model: type[ModelT],
    data: object,
    problems: _Problems,
    locate: Locate,
    wanted: Callable[[Loc], bool] = lambda loc: True,
) -> ModelT | None:
    """The validated model, or None with every shape problem (those `wanted`) noted."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = _clean_loc(error["loc"])
            if wanted(loc):
                problems.add(locate(loc), _describe(error))
        return None


def _finish(
    inventory: Inventory | None,
    data: dict[Any, Any],
    source: Path,
    base: Path,
    environ: dict[str, str],
    problems: _Problems,
    locate: Locate,
    secrets: bool,
) -> None:
    """Check the files and secrets `data` names, and give them to `inventory` if it is valid.

    Read from the raw data, so a shape problem elsewhere (even in the same
    account) hides no missing file or unset variable: every problem at once.
    """
    _check_files(data, base, problems, locate)
    resolved = _resolve_secrets(data, base, environ, problems, locate) if secrets else {}
    if inventory is None:
        return
    inventory._source = source
    # Models are frozen for the checks; paths are made absolute once, here.
    object.__setattr__(inventory, "ssh_config", _resolve_path(base, inventory.ssh_config))
    object.__setattr__(inventory.tls, "ca_file", _resolve_path(base, inventory.tls.ca_file))
    for loc, ref in inventory.secret_refs():
        ref._password = resolved.get(loc)


def _at(data: object, loc: Loc) -> object:
    """The raw value at `loc`, or None where the data has no such place."""
    for key in loc:
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and isinstance(key, int) and key < len(data):
            data = data[key]
        else:
            return None
    return data


def _check_files(data: dict[Any, Any], base: Path, problems: _Problems, locate: Locate) -> None:
    for loc in FILE_PLACES:
        value = _at(data, loc)
        if isinstance(value, str) and value.strip():
            path = _resolve_path(base, Path(value.strip()))
            if path is not None and not path.is_file():
                problems.add(locate(loc), f"no such file: {path}")


def _raw_secret_refs(data: dict[Any, Any]) -> Iterator[tuple[Loc, SecretRef]]:
    """Every well-shaped password reference in the raw data (the others are shape problems)."""
    for place, many in SECRET_PLACES.items():
        value = _at(data, place)
        if many != isinstance(value, list):
            continue  # missing, or a shape problem of its own
        items = enumerate(value) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            if not isinstance(item, dict):
                continue
            reference = {key: item[key] for key in ("password_env", "password_file") if key in item}
            try:
                ref = SecretRef.model_validate(reference)
            except ValidationError:
                continue
            yield place if index is None else (*place, index), ref


def _resolve_secrets(
    data: dict[Any, Any],
    base: Path,
    environ: dict[str, str],
    problems: _Problems,
    locate: Locate,
) -> dict[Loc, Secret]:
    """Every secret the raw data references, by location; each one that does not resolve noted."""
    resolved: dict[Loc, Secret] = {}
    for loc, ref in _raw_secret_refs(data):
        if ref.password_env is None and ref.password_file is None:
            continue
        field = "password_env" if ref.password_env else "password_file"
        try:
            if ref.password_env is not None:
                secret = resolve_secret(env=ref.password_env, environ=environ)
            else:
                path = _resolve_path(base, ref.password_file)
                assert path is not None
                secret = resolve_secret(file=path)
        except SecretError as exc:
            problems.add(
                locate(loc), str(exc), line=_line_for(locate((*loc, field)), problems.lines)
            )
            continue
        resolved[loc] = secret
    return resolved


def _pair_place(at: Loc, own: frozenset[Any], *, whole: bool = False) -> Locate:
    """A pair's own keys were written under `pairs[i]`, the rest at the top level."""

    def locate(loc: Loc) -> Loc:
        return (*at, *loc) if whole or not loc or loc[0] in own else loc

    return locate


def _load_pairs(
    data: dict[Any, Any],
    source: Path,
    base: Path,
    environ: dict[str, str],
    problems: _Problems,
    secrets: bool,
) -> Fleet:
    raw_pairs = data["pairs"]
    if not isinstance(raw_pairs, list) or not raw_pairs:
        problems.add(("pairs",), "must be a list of pairs (name, old, new), at least one")
        problems.check()
    for key in ("old", "new"):
        if key in data:
            problems.add((key,), "with pairs: every pair gives its own old and new")
    name = data.get("name", "migration")
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        problems.add(("name",), f"must match {NAME_PATTERN} (got {name!r})")
    defaults = {key: value for key, value in data.items() if key not in ("name", "pairs")}
    first_use: dict[str, int] = {}
    pairs = []
    for index, raw in enumerate(raw_pairs):
        at: Loc = ("pairs", index)
        if not isinstance(raw, dict):
            problems.add(at, f"a pair is a mapping (name, old, new), not {type(raw).__name__}")
            continue
        _validate(Pair, raw, problems, _pair_place(at, frozenset(raw), whole=True))
        pair_name = raw.get("name")
        if isinstance(pair_name, str) and pair_name in first_use:
            problems.add(
                (*at, "name"),
                f"pair name '{pair_name}' is used twice (first by pairs[{first_use[pair_name]}])",
            )
        elif isinstance(pair_name, str):
            first_use[pair_name] = index
        locate = _pair_place(at, frozenset(raw))

        def inherited(loc: Loc, own: frozenset[Any] = frozenset(raw)) -> bool:
            # The pair's own keys were checked as a Pair above: only what it
            # inherits, and the rules across sections, are left to report.
            return not loc or (loc[0] not in own and loc[0] not in ("name", "old", "new"))

        merged = {**defaults, **raw}
        for loc, what in meaning_problems(merged):
            problems.add(locate(loc), what)
        inventory = _validate(Inventory, merged, problems, locate, inherited)
        _finish(inventory, merged, source, base, environ, problems, locate, secrets)
        if inventory is not None:
            pairs.append(inventory)
    problems.check()
    return Fleet(str(name), source, tuple(pairs), explicit=True)


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
