"""MySQL/MariaDB: localhost logins through the tunnel, grants and data survive the move.

Semantics: ../shared/design/CHECKS.md "MySQL / MariaDB". Servers are read
with the inventory's read-only `mysql.admin` account over TCP; the tunnel is
tested from the old host itself (`old.ssh`). The reference for grants and
data is the old server while it still answers on the old IP (preflight,
which records it in the baseline), afterwards the preflight baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import pytest

from checks.support import baseline_path, expectations_for, parametrize, phase_of
from cutover.model.baseline import Baseline, BaselineError
from cutover.model.catalogue import runs_in
from cutover.model.inventory import Inventory
from cutover.model.phases import PhaseExpectations, Side
from cutover.probes.connect import ProbeError
from cutover.probes.mysql.session import (
    AccountGrants,
    AccountTarget,
    DatabaseTarget,
    Grantee,
    LoginRefused,
    MysqlServer,
    ServerFacts,
    compare_database_scans,
    compare_with_recorded,
    diff_grants,
    list_grantees,
    mysql_servers,
    read_grants,
    run_concurrently,
    scan_database,
    scan_pair,
    server_facts,
    socket_accounts,
    try_login,
)
from cutover.probes.mysql.tunnel import diagnose, probe_tunnel_login
from cutover.untrusted import shown

BASELINE_SECTION = "mysql"
# Accounts a server version creates for itself: present on one side only
# when the versions differ (MySQL 5.7 -> MariaDB 10.11), never migrated.
SYSTEM_ACCOUNTS = frozenset(
    {
        Grantee("mariadb.sys", "localhost"),
        Grantee("mysql", "localhost"),
        Grantee("mysql.sys", "localhost"),
        Grantee("mysql.session", "localhost"),
        Grantee("mysql.infoschema", "localhost"),
    }
)

Grants = dict[Grantee, AccountGrants]


@dataclass(frozen=True)
class Unavailable:
    """A parameter standing for "could not list what to check": fails with the reason."""

    reason: str

    @property
    def id(self) -> str:
        return "unavailable"


def _old_is_live(expect: PhaseExpectations) -> bool:
    return expect.served_by[Side.OLD] is Side.OLD


def _recorded_grants(baseline: Baseline) -> Grants:
    recorded = baseline.get(BASELINE_SECTION, "grants")
    if recorded is None:
        raise ProbeError(
            f"the baseline {baseline.path} holds no MySQL grants of the old server: "
            "run preflight first (it records them)"
        )
    return {
        Grantee.parse(key): AccountGrants.from_json(Grantee.parse(key), value)
        for key, value in recorded.items()
    }


def _grantees_to_check(
    config: pytest.Config, inventory: Inventory
) -> list[Grantee] | list[Unavailable]:
    """Every account of old and new, listed at collection (bounded by the timeouts)."""
    if inventory.mysql.admin is None or not runs_in("MYSQL04", phase_of(config)):
        return []
    servers = mysql_servers(inventory)
    calls: dict[Side, Callable[[], Any]] = {
        Side.NEW: lambda: list_grantees(servers[Side.NEW], inventory)
    }
    if _old_is_live(expectations_for(config, inventory)):
        calls[Side.OLD] = lambda: list_grantees(servers[Side.OLD], inventory)
    else:
        baseline = Baseline(baseline_path(config, inventory.name))
        calls[Side.OLD] = lambda: list(_recorded_grants(baseline))
    found = run_concurrently(calls)
    errors = [str(v) for v in found.values() if isinstance(v, Exception)]
    if errors:
        return [Unavailable("cannot list the accounts to compare: " + "; ".join(errors))]
    return sorted(set(found[Side.OLD]) | set(found[Side.NEW]))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    config = metafunc.config
    if "socket_account" in metafunc.fixturenames:
        parametrize(metafunc, "socket_account", socket_accounts)
    if "database" in metafunc.fixturenames:
        parametrize(metafunc, "database", _database_targets)
    if "grantee" in metafunc.fixturenames:
        parametrize(metafunc, "grantee", lambda inv: _grantees_to_check(config, inv))


def _database_targets(inventory: Inventory) -> list[DatabaseTarget]:
    if inventory.mysql.admin is None:
        return []
    return [DatabaseTarget(name) for name in inventory.mysql.databases]


def _fail(message: str) -> NoReturn:
    __tracebackhide__ = True
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def servers(inventory: Inventory) -> dict[Side, MysqlServer]:
    return mysql_servers(inventory)


@pytest.fixture(scope="session")
def new_facts_or_error(
    inventory: Inventory, servers: dict[Side, MysqlServer]
) -> ServerFacts | ProbeError:
    """The new server's facts over TCP to the new IP, once per run."""
    try:
        return server_facts(servers[Side.NEW], inventory)
    except ProbeError as exc:
        return exc


@pytest.fixture(scope="session")
def grants_by_side(
    inventory: Inventory,
    expect: PhaseExpectations,
    baseline: Baseline,
    servers: dict[Side, MysqlServer],
) -> dict[Side, Grants | ProbeError]:
    """Old (live or recorded) and new grants, read once per run, both at once."""
    calls: dict[Side, Callable[[], Any]] = {
        Side.NEW: lambda: read_grants(servers[Side.NEW], inventory)
    }
    live = _old_is_live(expect)
    if live:
        calls[Side.OLD] = lambda: read_grants(servers[Side.OLD], inventory)
    else:
        calls[Side.OLD] = lambda: _recorded_grants(baseline)
    found: dict[Side, Grants | ProbeError] = run_concurrently(calls)
    old = found[Side.OLD]
    if live and expect.records_baseline and not isinstance(old, ProbeError):
        try:
            baseline.record(
                BASELINE_SECTION, "grants", {g.id: grants.to_json() for g, grants in old.items()}
            )
        except BaselineError as exc:
            found[Side.OLD] = ProbeError(str(exc))
    return found


# --- MYSQL01 / MYSQL02: the tunnel ---------------------------------------------


def test_tunnel_login(
    socket_account: AccountTarget,
    inventory: Inventory,
    new_facts_or_error: ServerFacts | ProbeError,
    record: Callable[..., None],
) -> None:
    """MYSQL01: each socket account logs in through the old host's socket as user@localhost on new.

    Why: applications on the old host keep using the old socket during cutover;
    socat forwards it into `ssh -L 3307:localhost:3306`, so the new server sees
    the login from 127.0.0.1, which matches 'u'@'localhost' only while
    skip_name_resolve is OFF. Accounts with unix_socket auth cannot pass the
    TCP tunnel at all.
    Inputs: mysql.accounts with via_socket (password by reference), mysql.socket,
    old.ssh (testinfra host spec) and ssh_config; mysql.admin for the new server's facts.
    Fix: the message names the failure mode: start socat on the socket, restart the
    tunnel (`ssh -N -o ExitOnForwardFailure=yes -L 3307:localhost:3306 NEW`), stop the
    old MySQL, turn skip_name_resolve OFF on new, give the account a password, or drop
    a shadowing anonymous account.
    """
    account = socket_account.account
    try:
        login = probe_tunnel_login(inventory, account)
    except ProbeError as exc:
        _fail(f"{socket_account.id}: {exc}")
    facts = new_facts_or_error if isinstance(new_facts_or_error, ServerFacts) else None
    record(
        socket=login.socket,
        socket_state=login.socket_state,
        socket_holder=login.holder or "-",
        current_user=login.current_user or "-",
        served_by=login.hostname or "-",
    )
    new_hostname = facts.hostname if facts else inventory.new.hostname
    problem = diagnose(login, account, facts, new_hostname, inventory.old.hostname)
    if problem:
        _fail(f"{socket_account.id} through the old host's socket: {problem}")


def test_direct_login_refused(
    socket_account: AccountTarget,
    inventory: Inventory,
    expect: PhaseExpectations,
    servers: dict[Side, MysqlServer],
    record: Callable[..., None],
) -> None:
    """MYSQL02: a socket account cannot log in over TCP to the new IP directly.

    Why: it proves why the tunnel is needed (a TCP login from another host never
    matches 'u'@'localhost'); a login that succeeds means the migration widened
    a localhost-only account to the network. Informational while the old IP is not
    forwarded to the new server (preflight; acceptance with the old IP closed):
    there the outcome is recorded on the testcase and the check passes.
    Inputs: mysql.accounts with via_socket; the new IP's MySQL port.
    Fix: drop the wider account on new (e.g. 'app'@'%') or restrict it to the hosts
    that need it.
    """
    account = socket_account.account
    server = servers[Side.NEW]
    informational = expect.served_by[Side.OLD] is not Side.NEW
    try:
        user = try_login(server, account, inventory)
    except LoginRefused as exc:
        record(direct_login=f"refused: ({exc.code}) {exc.server_message}")
        return
    except ProbeError as exc:
        record(direct_login=f"no login possible: {exc}")
        return
    record(direct_login=f"accepted as {user}")
    if informational:
        return
    if user == socket_account.id:
        cause = "the new server sees this client as localhost (is the suite running on it?)"
    else:
        cause = f"an account {user} exists there; grants widened in the migration?"
    _fail(
        f"{socket_account.id} logged in directly over TCP to {server.where} as {user}: "
        f"a localhost-only account of the old server is reachable from the network on new "
        f"({cause})"
    )


# --- MYSQL03: server facts ----------------------------------------------------------


def test_new_server_facts(
    inventory: Inventory,
    new_facts_or_error: ServerFacts | ProbeError,
    servers: dict[Side, MysqlServer],
    record: Callable[..., None],
) -> None:
    """MYSQL03: the new server answers on the new IP and can serve the tunnel's localhost logins.

    Why: the tunnel ends at the new host's 127.0.0.1:3306, which matches
    'u'@'localhost' only with skip_name_resolve OFF, and only reaches mysqld if it
    listens on loopback. The version is recorded for the report.
    Inputs: mysql.admin (read-only, over TCP to the new IP); mysql.accounts (via_socket).
    Fix: skip_name_resolve OFF (remove skip-name-resolve from my.cnf) while socket
    accounts use the tunnel; bind-address 0.0.0.0 (or one that includes 127.0.0.1).
    """
    if isinstance(new_facts_or_error, ProbeError):
        _fail(
            f"the new server cannot be read over TCP: {new_facts_or_error} "
            "(is mysqld listening on the new IP? bind-address, skip-networking, firewall)"
        )
    facts = new_facts_or_error
    record(
        hostname=facts.hostname,
        version=facts.version,
        skip_name_resolve="ON" if facts.skip_name_resolve else "OFF",
        bind_address=facts.bind_address or "(all)",
    )
    accounts = [t.id for t in socket_accounts(inventory)]
    problems = []
    if accounts and facts.skip_name_resolve:
        problems.append(
            f"skip_name_resolve is ON on {facts.where}: logins through the tunnel arrive from "
            f"127.0.0.1 and no longer match 'u'@'localhost' (socket accounts: "
            f"{', '.join(accounts)}) — turn it OFF while the tunnel is used"
        )
    if accounts and not facts.listens_on_loopback:
        problems.append(
            f"mysqld on {facts.where} does not listen on 127.0.0.1 (bind_address="
            f"{facts.bind_address}, skip_networking={facts.skip_networking}): the tunnel's "
            "end (localhost:3306 on the new host) cannot reach it"
        )
    if problems:
        _fail("\n".join(problems))


# --- MYSQL04: grants ------------------------------------------------------------------


def test_grants_match(
    grantee: Grantee | Unavailable,
    grants_by_side: dict[Side, Grants | ProbeError],
    expect: PhaseExpectations,
    record: Callable[..., None],
) -> None:
    """MYSQL04: every account has the same grants and password on new as on old.

    Why: grants lost or changed in the dump/restore break applications silently,
    and a changed password hash breaks their logins. Like pt-show-grants: every
    (User, Host) of mysql.user, SHOW GRANTS FOR, quoting unified, privileges and
    lines sorted. Password hashes are compared but never shown. Accounts a server
    version creates for itself (mariadb.sys, mysql.sys, ...) may exist on one side.
    Inputs: mysql.admin (read-only, needs SELECT on mysql.*); in acceptance the old
    server's grants come from the preflight baseline.
    Fix: copy the grants: `pt-show-grants` on old, apply its output on new (or
    `mariadb-dump --system=users`).
    """
    if isinstance(grantee, Unavailable):
        _fail(grantee.reason)
    old, new = grants_by_side[Side.OLD], grants_by_side[Side.NEW]
    if isinstance(old, ProbeError):
        _fail(f"{shown(grantee.id)}: cannot read the old server's grants: {old}")
    if isinstance(new, ProbeError):
        _fail(f"{shown(grantee.id)}: cannot read the new server's grants: {new}")
    reference = "old server" if _old_is_live(expect) else "old server (preflight baseline)"
    diff = diff_grants(old.get(grantee), new.get(grantee))
    record(grants_reference=reference)
    if not diff:
        return
    if diff.only_on is not None and grantee in SYSTEM_ACCOUNTS:
        record(note=f"system account only on {diff.only_on.value}: not compared")
        return
    _fail(
        f"grants of {grantee.sql} differ between the {reference} and new:\n{diff.describe()}\n"
        "likely cause: grants not migrated with the data (pt-show-grants on old, apply on new)"
    )


# --- MYSQL05: data ----------------------------------------------------------------------


def test_data_matches(
    database: DatabaseTarget,
    inventory: Inventory,
    expect: PhaseExpectations,
    baseline: Baseline,
    servers: dict[Side, MysqlServer],
    record: Callable[..., None],
) -> None:
    """MYSQL05: every table of the database has the same rows on new as on old.

    Why: rows lost or changed in the dump/restore or the final sync break
    applications silently. Per table: row count and an ordered digest of the rows
    by primary key in chunks of mysql.chunk_rows, so the first differing chunk names
    a primary-key range (CHECKSUM TABLE differs across versions and is not used).
    Tables without a primary key are compared by count and an order-independent
    digest, and listed. After the switch (acceptance) the new server takes writes:
    only tables missing or with fewer rows than preflight recorded fail.
    Inputs: mysql.databases, mysql.chunk_rows; mysql.admin with SELECT on them.
    Fix: re-sync the named table (mariadb-dump --single-transaction on old, load on new).
    """
    name = database.name
    try:
        if _old_is_live(expect):
            old, new = scan_pair(servers[Side.OLD], servers[Side.NEW], inventory, name)
            if not old.exists:
                _fail(f"database {name!r} does not exist on the old server ({old.where})")
            if expect.records_baseline:
                baseline.record(
                    BASELINE_SECTION,
                    f"data/{name}",
                    {t.name: t.to_json() for t in old.tables.values()},
                )
            differences = compare_database_scans(old, new) if new.exists else []
            notes: list[str] = []
        else:
            recorded = baseline.get(BASELINE_SECTION, f"data/{name}")
            if recorded is None:
                _fail(
                    f"the baseline {baseline.path} holds no tables of database {name!r}: "
                    "run preflight first (it records them)"
                )
            new = scan_database(servers[Side.NEW], inventory, name)
            differences, notes = compare_with_recorded(recorded, new)
    except (ProbeError, BaselineError) as exc:
        _fail(f"database {name!r}: {exc}")
    if not new.exists:
        _fail(f"database {name!r} does not exist on the new server ({new.where})")
    record(
        tables=len(new.tables),
        rows=sum(t.rows for t in new.tables.values()),
        without_primary_key=", ".join(new.without_primary_key) or "-",
    )
    if notes:
        record(changed_since_preflight="; ".join(notes))
    if differences:
        _fail(
            f"database {name!r}: {len(differences)} table(s) differ on {new.where}:\n"
            + "\n".join(f"  {d}" for d in differences)
        )
