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

import os
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path

from cutover.model.budget import Budgets, ServerBudget, share
from cutover.model.inventory import Inventory, MysqlAccount
from cutover.model.phases import Side

__all__ = ["ProbeSettings", "Trust", "budgets_of", "settings_for", "worker_count"]


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
    # Each side's budget in this process (connections at once, logins per second),
    # shared by every copy of these settings; None: nothing is limited (tests).
    budgets: Budgets | None = field(default=None, compare=False)

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
            budgets=budgets_of(inventory, worker_count()),
        )


def worker_count() -> int:
    """How many processes share the servers' budgets: pytest-xdist's workers, else 1.

    xdist tells each worker the count in `PYTEST_XDIST_WORKER_COUNT`.
    """
    try:
        return max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    except ValueError:
        return 1


def budgets_of(inventory: Inventory, workers: int = 1) -> Budgets:
    """Each side's budget (`budget:`, `old.budget`, `new.budget`): this process's share.

    >>> [(b.server, b.connections) for b in budgets_of(inventory, 2).servers]  # doctest: +SKIP
    [('the old server', 4), ('the new server', 4)]
    """
    servers = []
    for side in Side:
        host = inventory.old if side is Side.OLD else inventory.new
        budget = host.budget_over(inventory.budget)
        connections, rate = share(budget.connections, budget.logins_per_second, workers)
        servers.append(
            (host.addresses, ServerBudget(f"the {side.value} server", connections, rate))
        )
    return Budgets(servers)


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
