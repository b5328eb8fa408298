"""What a probe needs from the inventory, built once per inventory: `ProbeSettings`.

Probes never see the `Inventory`: they take these settings and plain targets
(an endpoint, an address and port, an account). `settings_for(inventory)`
builds them the first time an inventory asks and hands back the same object
after that, so every probe of a run shares one view of the timeouts, the CA
file and the names to present.

The timeouts have no defaults here: the inventory schema (`timeouts:`) is the
one place that writes them.

>>> settings = settings_for(inventory)         # doctest: +SKIP
>>> settings.connect_timeout, settings.trust.label  # doctest: +SKIP
(5.0, 'the system store')
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path

from cutover.model.inventory import Inventory, MysqlAccount
from cutover.model.phases import Side

__all__ = ["ProbeSettings", "Trust", "settings_for"]


@dataclass(frozen=True)
class Trust:
    """Where certificate chains are verified: `tls.ca_file`, or the system store.

    >>> Trust().label
    'the system store'
    """

    ca_file: Path | None = None
    # Toward an old server (tls.legacy_old): TLS 1.0 and @SECLEVEL=0 ciphers are allowed;
    # the handshake still negotiates the best version both sides speak.
    legacy: bool = False
    # One TLS version only ("TLSv1" ... "TLSv1.3"), any cipher: which versions a port accepts.
    only: str | None = None

    @property
    def label(self) -> str:
        return str(self.ca_file) if self.ca_file else "the system store"


@dataclass(frozen=True)
class ProbeSettings:
    """What a probe needs from the inventory, and nothing else."""

    connect_timeout: float  # seconds to open a connection (timeouts.connect)
    operation_timeout: float  # seconds for one whole exchange on it (timeouts.operation)
    trust: Trust = field(default_factory=Trust)
    server_names: dict[str, str] = field(default_factory=dict)  # service name -> SNI/Host
    identity_header: str | None = None
    mysql_admin: MysqlAccount | None = None
    ehlo_name: str = "cutover.invalid"
    ssh_config: Path | None = None
    legacy_old: bool = False  # tls.legacy_old: the old host's addresses may speak TLS 1.0

    def trust_toward(self, side: Side) -> Trust:
        """The trust (and TLS policy) for a handshake with an address of `side`.

        Toward the old host's addresses with `tls.legacy_old` (the checks pass
        settings without it where the phase expects the new server there), TLS 1.0
        and weak ciphers are allowed; toward the new host, today's defaults.

        >>> ProbeSettings(5, 5, legacy_old=True).trust_toward(Side.OLD).legacy
        True
        >>> ProbeSettings(5, 5, legacy_old=True).trust_toward(Side.NEW).legacy
        False
        """
        if self.legacy_old and side is Side.OLD and self.trust.only is None:
            return replace(self.trust, legacy=True)
        return self.trust

    def modern(self) -> ProbeSettings:
        """These settings with today's TLS defaults on every address."""
        return replace(self, legacy_old=False) if self.legacy_old else self

    def pinned(self, version: str) -> ProbeSettings:
        """These settings with every handshake pinned to one TLS version."""
        return replace(self, trust=replace(self.trust, legacy=False, only=version))

    @classmethod
    def from_inventory(cls, inventory: Inventory) -> ProbeSettings:
        """A fresh build; everything except tests asks `settings_for`, which builds once."""
        names = {}
        for service in inventory.services:
            hostnames = inventory.service_hostnames(service)
            if hostnames:
                names[service.name] = hostnames[0]
        return cls(
            connect_timeout=inventory.timeouts.connect,
            operation_timeout=inventory.timeouts.operation,
            trust=Trust(inventory.tls.ca_file),
            server_names=names,
            identity_header=inventory.http.identity_header,
            mysql_admin=inventory.mysql.admin,
            ssh_config=inventory.ssh_config,
            legacy_old=inventory.tls.legacy_old,
        )


# id(inventory) -> its settings; the entry goes when the inventory does.
_BUILT: dict[int, ProbeSettings] = {}


def settings_for(inventory: Inventory) -> ProbeSettings:
    """The settings of `inventory`, built on the first call and shared after that."""
    key = id(inventory)
    settings = _BUILT.get(key)
    if settings is None:
        settings = _BUILT[key] = ProbeSettings.from_inventory(inventory)
        weakref.finalize(inventory, _BUILT.pop, key, None)
    return settings
