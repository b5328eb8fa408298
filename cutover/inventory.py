"""The inventory: one YAML file that describes a migration, or several (a fleet).

Loaded once per run, validated by pydantic, with secrets resolved from
environment variables or files the inventory points to. Every problem is
reported as one `InventoryError` line naming the file, the line and the field.

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
from collections.abc import Callable, Iterator
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

from cutover.secrets import Secret, SecretError, resolve_secret

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
    WithJsonSchema({"type": "string", "format": "ip-address"}),
]
Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0, le=3600)]

# Keys that would carry a secret inline. The inventory is often committed to
# git and copied into CI artifacts, so these are refused outright.
INLINE_SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "key_passphrase"})


class InventoryError(Exception):
    """A problem with the inventory, as one line an operator can act on."""


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


class SecretRef(Strict):
    """Mixin for objects that carry a password by reference."""

    password_env: str | None = None
    password_file: Path | None = None
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

    address: IPAddress
    hostname: str | None = None
    ssh: str | None = Field(
        default=None,
        description="testinfra host spec for host-side checks, e.g. ssh://root@old.example.net",
    )


class Service(Strict):
    """A client-facing service: one port, one protocol."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    port: Port
    protocol: Protocol
    tls: TlsMode = TlsMode.NONE
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
        default=None, description="CA bundle to verify against (default: the system store)"
    )
    expiry_margin_days: Annotated[int, Field(ge=0, le=3650)] = 20


class Vhost(Strict):
    host: str
    path: str = "/"
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
    vhosts: list[Vhost] = Field(default_factory=list)
    identity_header: str | None = Field(
        default=None, description="response header naming the server that answered"
    )


class Account(SecretRef):
    """A mail account (IMAP/POP3/SMTP AUTH login)."""

    user: str


class Mail(Strict):
    accounts: list[Account] = Field(default_factory=list)
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
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
    user: str
    host: str = "localhost"
    via_socket: bool = Field(
        default=False,
        description="an application on the old host logs in through the old socket",
    )


class Mysql(Strict):
    admin: MysqlAccount | None = Field(
        default=None, description="a read-only account that can read mysql.user and the databases"
    )
    accounts: list[MysqlAccount] = Field(default_factory=list)
    databases: list[str] = Field(default_factory=list)
    socket: str = "/run/mysqld/mysqld.sock"
    chunk_rows: Annotated[int, Field(ge=1, le=10_000_000)] = 10_000


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
    name: str
    nameservers: list[IPAddress] = Field(
        default_factory=list, description="authoritative servers (default: the zone's NS set)"
    )
    names: list[str] = Field(
        default_factory=lambda: ["www", "mail"],
        description="names below the apex whose TTL and target matter",
    )
    cname_to_apex: list[str] = Field(default_factory=list)


class Dns(Strict):
    ttl: Annotated[int, Field(ge=0, le=86400)] = 300
    zones: list[DnsZone] = Field(default_factory=list)
    resolver: IPAddress | None = Field(
        default=None, description="resolver used only to find NS addresses, never for TTLs"
    )
    lowering_acknowledged: str | None = Field(
        default=None,
        description="operator's statement that TTLs were lowered long enough ago "
        "(skips the wait; recorded in the report)",
    )
    sql: list[DnsSql] = Field(default_factory=list)


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
    address: Annotated[
        str | None, Field(pattern=r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
    ] = None
    id: Annotated[str | None, Field(pattern=r"^[0-9a-f]{4}:[0-9a-f]{4}$")] = None
    name: str | None = None

    @model_validator(mode="after")
    def _named(self) -> PciDevice:
        if not (self.address or self.id):
            raise ValueError("a device needs an address (0000:01:00.0) or an id (1002:6810)")
        return self


class Topology(Strict):
    sockets: Annotated[int, Field(ge=1)] = 1
    cores: Annotated[int, Field(ge=1)]
    threads: Annotated[int, Field(ge=1, le=8)] = 1


class VirtHost(Strict):
    ssh: str | None = Field(default=None, description="testinfra host spec; default local://")
    cpu_vendor: Literal["intel", "amd"] | None = None
    devices: list[PciDevice] = Field(default_factory=list)
    vfio_bind_file: str = "/etc/sysconfig/vfio-bind"
    vm: str | None = None
    libvirt_uri: str = "qemu:///system"
    topology: Topology | None = None
    reserved_cpus: list[int] = Field(default_factory=list)
    gpu_vendor: Literal["nvidia", "amd", "intel", "other"] | None = None


class Timeouts(Strict):
    connect: Seconds = 5.0
    operation: Seconds = 5.0
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


# Names that become part of test ids and report file names.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class Inventory(Strict):
    """The whole migration (one host pair), as the operator describes it."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)] = "migration"
    old: Server
    new: Server
    ssh_config: Path | None = Field(default=None, description="ssh_config for host-side checks")
    services: list[Service] = Field(default_factory=_default_services)
    hostnames: list[str] = Field(default_factory=list)
    tls: Tls = Field(default_factory=Tls)
    http: Http = Field(default_factory=Http)
    mail: Mail = Field(default_factory=Mail)
    mysql: Mysql = Field(default_factory=Mysql)
    dns: Dns = Field(default_factory=Dns)
    outbound: Outbound = Field(default_factory=Outbound)
    virt_host: VirtHost | None = None
    acceptance: Acceptance = Field(default_factory=Acceptance)
    timeouts: Timeouts = Field(default_factory=Timeouts)

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _distinct(self) -> Inventory:
        if self.old.address == self.new.address:
            raise ValueError("old.address and new.address are the same")
        seen: set[str] = set()
        for service in self.services:
            if service.name in seen:
                raise ValueError(f"service name '{service.name}' is used twice")
            seen.add(service.name)
        return self

    @property
    def source(self) -> Path | None:
        return self._source

    def service_hostnames(self, service: Service) -> list[str]:
        return service.hostnames or self.hostnames

    def secret_refs(self) -> Iterator[tuple[str, SecretRef]]:
        """Every object that carries a password reference, with its field path."""
        for i, account in enumerate(self.mail.accounts):
            yield f"mail.accounts[{i}]", account
        if self.mysql.admin is not None:
            yield "mysql.admin", self.mysql.admin
        for i, maccount in enumerate(self.mysql.accounts):
            yield f"mysql.accounts[{i}]", maccount
        for i, sql in enumerate(self.dns.sql):
            yield f"dns.sql[{i}]", sql


class Pair(Strict):
    """One migration of a fleet: its own hosts, and any section that differs from the defaults.

    A section given here replaces the top-level one whole (no merging inside it).
    """

    name: Annotated[str, Field(pattern=NAME_PATTERN, description="the pair's name in test ids")]
    old: Server
    new: Server
    ssh_config: Path | None = None
    services: list[Service] | None = None
    hostnames: list[str] | None = None
    tls: Tls | None = None
    http: Http | None = None
    mail: Mail | None = None
    mysql: Mysql | None = None
    dns: Dns | None = None
    outbound: Outbound | None = None
    virt_host: VirtHost | None = None
    acceptance: Acceptance | None = None
    timeouts: Timeouts | None = None


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


# --- loading -------------------------------------------------------------


# libyaml's loader when PyYAML was built with it: the pure-Python one is ~10x slower.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose_lines(node: yaml.Node, path: tuple[str | int, ...], lines: dict[Any, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _compose_lines(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _compose_lines(item, (*path, index), lines)


def _line_for(loc: tuple[str | int, ...], lines: dict[Any, int]) -> int | None:
    # Walk up the location until a node we know: an unknown key lives on
    # its own line, a missing key is best reported at its parent.
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None


def _field_path(loc: tuple[str | int, ...]) -> str:
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
    if kind.startswith(("greater", "less", "int_", "float_", "string_", "literal", "enum")) and (
        isinstance(value, (str, int, float))
    ):
        return f"{message} (got {value!r})"
    return message


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    # pydantic adds the union member's type name to the location of a
    # union-typed field ("IPv4Address"); the operator never wrote it.
    return tuple(
        part
        for part in loc
        if not (isinstance(part, str) and (part[:1].isupper() or part.startswith("function-")))
    )


def _resolve_path(base: Path, value: Path | None) -> Path | None:
    if value is None or value.is_absolute():
        return value
    return base / value


def load_inventory(
    path: str | os.PathLike[str],
    *,
    environ: dict[str, str] | None = None,
    pair: str | None = None,
) -> Inventory:
    """Read, validate and resolve one migration, or raise `InventoryError`.

    A fleet inventory (several pairs) needs `pair`, the name of the one wanted.

    >>> load_inventory("inventory.yaml").old.address  # doctest: +SKIP
    IPv4Address('198.51.100.10')
    """
    fleet = load_fleet(path, environ=environ)
    if pair is not None:
        return fleet.pair(pair)
    if fleet.several:
        raise InventoryError(
            f"{fleet.source}: pairs: the inventory describes {len(fleet.pairs)} migrations "
            f"({', '.join(fleet.names)}): name one with --pair"
        )
    return fleet.pairs[0]


def load_fleet(path: str | os.PathLike[str], *, environ: dict[str, str] | None = None) -> Fleet:
    """Read, validate and resolve an inventory file, every pair of it, or raise `InventoryError`.

    >>> load_fleet("fleet.yaml").names  # doctest: +SKIP
    ['web07', 'mail02']
    """
    source = Path(path)
    environ = dict(os.environ) if environ is None else environ
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(
            f"{source}: inventory not found (give --inventory PATH or set CUTOVER_INVENTORY)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{source}: cannot read inventory: {exc}") from None

    try:
        # One parse: the node tree gives line numbers, then becomes the data.
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f":{mark.line + 1}" if mark else ""
        raise InventoryError(f"{source}{at}: YAML syntax error: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"{source}: YAML syntax error: {exc}") from None

    if not isinstance(data, dict):
        raise InventoryError(
            f"{source}:1: the inventory must be a mapping (key: value), not {type(data).__name__}"
        )

    lines: dict[Any, int] = {}
    if root is not None:
        _compose_lines(root, (), lines)

    base = source.resolve().parent
    if "pairs" in data:
        return _load_pairs(data, source, base, environ, lines)
    inventory = _validate(Inventory, data, source, lines, _same_place)
    _finish(inventory, source, base, environ, lines, _same_place)
    return Fleet(inventory.name, source, (inventory,))


Loc = tuple[str | int, ...]
# Where a location of a pair's merged data was written in the file.
Locate = Callable[[Loc], Loc]


ModelT = TypeVar("ModelT", bound=BaseModel)


def _same_place(loc: Loc) -> Loc:
    return loc


def _problem(source: Path, lines: dict[Any, int], loc: Loc, what: str) -> InventoryError:
    line = _line_for(loc, lines)
    where = f"{source}:{line}" if line else str(source)
    return InventoryError(f"{where}: {_field_path(loc)}: {what}")


def _validate(
    model: type[ModelT], data: object, source: Path, lines: dict[Any, int], locate: Locate
) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        loc = locate(_clean_loc(first["loc"]))
        raise _problem(source, lines, loc, f"{_describe(first)}{tail}") from None


def _finish(
    inventory: Inventory,
    source: Path,
    base: Path,
    environ: dict[str, str],
    lines: dict[Any, int],
    locate: Locate,
) -> None:
    inventory._source = source
    _resolve_relative_paths(inventory, base, locate)
    for field, ref in inventory.secret_refs():
        _resolve_secret_ref(ref, field, base, environ, source, lines, locate)


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
    lines: dict[Any, int],
) -> Fleet:
    raw_pairs = data["pairs"]
    if not isinstance(raw_pairs, list) or not raw_pairs:
        raise _problem(
            source, lines, ("pairs",), "must be a list of pairs (name, old, new), at least one"
        )
    for key in ("old", "new"):
        if key in data:
            raise _problem(
                source, lines, (key,), "with pairs: every pair gives its own old and new"
            )
    name = data.get("name", "migration")
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        raise _problem(source, lines, ("name",), f"must match {NAME_PATTERN} (got {name!r})")
    defaults = {key: value for key, value in data.items() if key not in ("name", "pairs")}
    first_use: dict[str, int] = {}
    pairs = []
    for index, raw in enumerate(raw_pairs):
        at: Loc = ("pairs", index)
        if not isinstance(raw, dict):
            raise _problem(
                source, lines, at, f"a pair is a mapping (name, old, new), not {type(raw).__name__}"
            )
        pair = _validate(Pair, raw, source, lines, _pair_place(at, frozenset(raw), whole=True))
        if pair.name in first_use:
            raise _problem(
                source,
                lines,
                (*at, "name"),
                f"pair name '{pair.name}' is used twice (first by pairs[{first_use[pair.name]}])",
            )
        first_use[pair.name] = index
        locate = _pair_place(at, frozenset(raw))
        inventory = _validate(Inventory, {**defaults, **raw}, source, lines, locate)
        _finish(inventory, source, base, environ, lines, locate)
        pairs.append(inventory)
    return Fleet(name, source, tuple(pairs), explicit=True)


def _resolve_relative_paths(inventory: Inventory, base: Path, locate: Locate) -> None:
    # Models are frozen for the checks; paths are made absolute once, here.
    object.__setattr__(inventory, "ssh_config", _resolve_path(base, inventory.ssh_config))
    object.__setattr__(inventory.tls, "ca_file", _resolve_path(base, inventory.tls.ca_file))
    if inventory.tls.ca_file is not None and not inventory.tls.ca_file.is_file():
        raise InventoryError(
            f"{inventory.source}: {_field_path(locate(('tls', 'ca_file')))}: "
            f"no such file: {inventory.tls.ca_file}"
        )


def _resolve_secret_ref(
    ref: SecretRef,
    field: str,
    base: Path,
    environ: dict[str, str],
    source: Path,
    lines: dict[Any, int],
    locate: Locate = _same_place,
) -> None:
    loc = locate(tuple(int(p) if p.isdigit() else p for p in re.split(r"[.\[\]]+", field) if p))
    if ref.password_env is None and ref.password_file is None:
        return
    line = _line_for((*loc, "password_env" if ref.password_env else "password_file"), lines)
    where = f"{source}:{line}" if line else str(source)
    try:
        if ref.password_env is not None:
            secret = resolve_secret(env=ref.password_env, environ=environ)
        else:
            path = _resolve_path(base, ref.password_file)
            assert path is not None
            secret = resolve_secret(file=path)
    except SecretError as exc:
        raise InventoryError(f"{where}: {_field_path(loc)}: {exc}") from None
    ref._password = secret


def inventory_schema() -> dict[str, Any]:
    """JSON Schema of the inventory, for editors (`python -m cutover schema`)."""
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
    schema["anyOf"] = [{"required": ["old", "new"]}, {"required": ["pairs"]}]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "cutover inventory"
    return schema
