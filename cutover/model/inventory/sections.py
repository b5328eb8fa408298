"""The inventory's sections: hosts, services, TLS, HTTP, mail, MySQL, DNS, outbound, VFIO."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from cutover.model.inventory.base import (
    EXACTLY_ONE_SECRET_REFERENCE,
    Count,
    IPAddress,
    IPAddresses,
    Port,
    Protocol,
    Seconds,
    SecretRef,
    Strict,
    TlsMode,
)

# The per-server budget's defaults (docs/semantics.md, "The per-server budget"): a
# quarter of Dovecot's 10 connections per user and IP (mail_max_userip_connections),
# a sixth of Postfix's 50 per client (smtpd_client_connection_count_limit), under a
# tenth of their default 100 login/smtpd processes; 20 logins a second cost a
# SHA512-CRYPT host a few percent of one core (hash and TLS handshake).
DEFAULT_CONNECTIONS = 8
DEFAULT_LOGINS_PER_SECOND = 20.0
LoginRate = Annotated[float, Field(gt=0, le=10000, strict=True)]


class Budget(Strict):
    """How hard the suite may use one server (one side's host, all its addresses)."""

    connections: Count = Field(
        default=DEFAULT_CONNECTIONS,
        description="TCP connections open to the server at once, at most (every probe: "
        "ports, TLS, HTTP, logins, IMAP/POP3 sessions, MySQL)",
    )
    logins_per_second: LoginRate = Field(
        default=DEFAULT_LOGINS_PER_SECOND,
        description="logins started on the server per second, at most (IMAP, POP3, SMTP "
        "AUTH, MySQL)",
    )


class SideBudget(Strict):
    """A side's own budget: what it gives replaces the top-level `budget:` value."""

    connections: Count | None = Field(
        default=None, description="TCP connections open to this host at once, at most"
    )
    logins_per_second: LoginRate | None = Field(
        default=None, description="logins started on this host per second, at most"
    )


class Server(Strict):
    """One side of the migration: the old or the new host."""

    addresses: IPAddresses = Field(
        alias="address",
        description="the host's public IP address, as clients reach it, or a list of "
        "them (IPv4 and IPv6 of a dual-stack host): every check runs on each",
    )
    hostname: str | None = Field(
        default=None,
        description="the host's own name (shown in messages; compared with SMTP "
        "banners and MySQL @@hostname)",
    )
    ssh: str | None = Field(
        default=None,
        description="testinfra host spec for host-side checks, e.g. ssh://root@old.example.net",
    )
    budget: SideBudget | None = Field(
        default=None,
        description="this host's own budget (connections, logins_per_second), for what "
        "differs from the top-level budget",
    )

    def budget_over(self, default: Budget) -> Budget:
        """The budget for this host: its own values where it gives them, else `default`.

        >>> Server(address="198.51.100.10", budget={"connections": 2}).budget_over(Budget())
        Budget(connections=2, logins_per_second=20.0)
        """
        if self.budget is None:
            return default
        given = self.budget.model_dump(exclude_none=True)
        return default.model_copy(update=given)

    @property
    def address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The first address listed: the host's name in messages, never a probe target.

        Probes go to every address (`addresses`); see cutover.model.endpoints.
        """
        return self.addresses[0]


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


def default_services() -> list[Service]:
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


TLS_VERSION_NAMES = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


class Tls(Strict):
    ca_file: Path | None = Field(
        default=None,
        description="CA bundle to verify against (default: the system store); relative to the "
        "inventory, ~ is expanded",
    )
    expiry_margin_days: Annotated[int, Field(ge=0, le=3650, strict=True)] = Field(
        default=20, description="a certificate expiring within this many days fails"
    )
    legacy_old: bool = Field(
        default=True,
        description="toward the old server only, also speak TLS 1.0/1.1 and weak ciphers "
        "(SHA-1, CBC, 1024-bit keys) so an old server can be observed; the best version "
        "both sides speak is still negotiated, and the new server is always judged by "
        "today's defaults. A weak version negotiated with old is reported (tls_old_protocol)",
    )
    accept_dropped: list[str] = Field(
        default_factory=list,
        description="TLS versions old accepted that new may refuse (TLS05), e.g. "
        "[TLSv1, TLSv1.1]: the clients that speak only those are knowingly given up",
        json_schema_extra={"items": {"enum": list(TLS_VERSION_NAMES)}},
    )

    @field_validator("accept_dropped")
    @classmethod
    def _known_versions(cls, versions: list[str]) -> list[str]:
        for version in versions:
            if version not in TLS_VERSION_NAMES:
                raise ValueError(
                    f"unknown TLS version {version!r}: one of {', '.join(TLS_VERSION_NAMES)}"
                )
        return versions


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

    model_config = ConfigDict(json_schema_extra=EXACTLY_ONE_SECRET_REFERENCE)

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

    @field_validator("name")
    @classmethod
    def _normalised(cls, name: str) -> str:
        """Lower case, without the final dot: the form the DNS probes compare and show.

        Normalised once, here, so `Example.TEST.` and `example.test` are one zone everywhere
        (test ids, JUnit properties, the baseline).

        >>> DnsZone(name="Example.TEST.").name
        'example.test'
        """
        return name.lower().removesuffix(".") or name


# RFC 8767 (serve-stale) lets a resolver that cannot refresh a record keep
# answering with it after its TTL expired, for up to its "maximum stale timer",
# for which the RFC suggests 1 to 3 days. The default takes the upper end: a
# resolver that follows the RFC has dropped the old records by then.
STALE_ALLOWANCE = 3 * 86400


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
    stale_allowance: Annotated[int, Field(ge=0, le=604800, strict=True)] = Field(
        default=STALE_ALLOWANCE,
        description="seconds after the DNS switch plus the old TTL during which resolvers "
        "may still serve the old records stale (DECOM01); default 3 days: RFC 8767 (serve-"
        "stale) suggests resolvers keep expired records for at most 1 to 3 days",
    )
    switch_acknowledged: str | None = Field(
        default=None,
        description="operator's statement that no resolver still serves the old records "
        "after the DNS switch (skips the DECOM01 wait; recorded in the report)",
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
        description="authoritative servers of the new IPs' reverse zones (in-addr.arpa and "
        "ip6.arpa), asked for every reverse name (default: the PTR is asked of dns.resolver, "
        "if given)",
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


class Decommission(Strict):
    """What the decommission phase observes on the old host (over old.ssh, read-only)."""

    observe_seconds: Seconds = Field(
        default=60.0,
        description="how long the old host's forwarded ports are watched for clients "
        "other than the suite (sampled once a second)",
    )
    ignore_clients: list[IPAddress] = Field(
        default_factory=list,
        description="addresses whose connections to the old host are expected and not "
        "reported by DECOM02: a monitoring host that polls it, or the suite's own machine "
        "in a family the inventory lists no address of",
    )
    maildir_roots: list[str] = Field(
        default_factory=lambda: ["/var/vmail", "/srv/vmail", "/var/mail"],
        description="directories on the old host searched for Maildir messages "
        "(files under new/ and cur/) that arrived after the cutover; missing ones are "
        "skipped (add /home for ~/Maildir)",
    )
    mysql_datadir: str = Field(
        default="/var/lib/mysql",
        description="the old MySQL's data directory: no file there may change after the cutover",
    )
