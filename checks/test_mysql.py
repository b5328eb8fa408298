"""MySQL/MariaDB: localhost logins through the tunnel, grants and data survive the move.

Semantics: docs/semantics.md, "MySQL and MariaDB". What is judged here is
observed in checks/observe/mysql.py: the servers read with the inventory's
read-only `mysql.admin` account over TCP, the tunnel tried from the old host
itself (`old.ssh`). The reference for grants and data is the old server
while it still answers on the old IP (preflight, which records it in the
baseline), afterwards the preflight baseline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import pytest

from checks.declare import check
from checks.observe.mysql import (
    Grants,
    MysqlData,
    database_targets,
    direct_login_targets,
    new_mysql_targets,
    old_is_live,
    socket_accounts,
)
from checks.support import pairs_of, parametrize, skip_unless
from checks.targets.mysql import (
    AccountTarget,
    DatabaseTarget,
    DirectLoginTarget,
    MysqlAddressTarget,
)
from cutover.compare.mysql import (
    Grantee,
    compare_database_scans,
    compare_with_recorded,
    diff_grants,
)
from cutover.model.inventory import Inventory
from cutover.model.phases import PhaseExpectations, Side
from cutover.probes.connect import ProbeError
from cutover.probes.mysql.session import MysqlLoginRefused, ServerFacts
from cutover.probes.mysql.tunnel import TunnelLogin, diagnose
from cutover.probes.services import Observations

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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "socket_account" in metafunc.fixturenames:
        parametrize(metafunc, "socket_account", socket_accounts)
    if "direct_login" in metafunc.fixturenames:
        parametrize(metafunc, "direct_login", direct_login_targets)
    # A new host with one address keeps MYSQL03 one test (the `mysql_new` fixture gives it).
    if "mysql_new" in metafunc.fixturenames and any(
        len(pair.new.addresses) > 1 for pair in pairs_of(metafunc.config)
    ):
        parametrize(metafunc, "mysql_new", new_mysql_targets)
    if "database" in metafunc.fixturenames:
        parametrize(metafunc, "database", database_targets)


def _fail(message: str) -> NoReturn:
    __tracebackhide__ = True
    pytest.fail(message, pytrace=False)


# --- MYSQL01 / MYSQL02: the tunnel ---------------------------------------------


@check("MYSQL01", phases=("cutover",))
def test_tunnel_login(
    socket_account: AccountTarget,
    inventory: Inventory,
    mysql_tunnel_logins: Observations[AccountTarget, TunnelLogin],
    mysql_new_facts: ServerFacts | ProbeError,
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
        login = mysql_tunnel_logins.get(socket_account)
    except ProbeError as exc:
        _fail(f"{socket_account.id}: {exc}")
    facts = mysql_new_facts if isinstance(mysql_new_facts, ServerFacts) else None
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


@check("MYSQL02", phases=("preflight", "cutover", "acceptance"))
def test_direct_login_refused(
    direct_login: DirectLoginTarget,
    expect: PhaseExpectations,
    mysql_direct_logins: Observations[DirectLoginTarget, str],
    record: Callable[..., None],
) -> None:
    """MYSQL02: a socket account cannot log in over TCP to the new IP directly (each address).

    Why: it proves why the tunnel is needed (a TCP login from another host never
    matches 'u'@'localhost'); a login that succeeds means the migration widened
    a localhost-only account to the network. Informational while the old IP is not
    forwarded to the new server (preflight; acceptance with the old IP closed):
    there the outcome is recorded on the testcase and the check passes.
    Inputs: mysql.accounts with via_socket; the MySQL port on each address of
    new (a dual-stack host: one test per family, `app@localhost-mysql-new-v6`).
    Fix: drop the wider account on new (e.g. 'app'@'%', or one matching only IPv6
    clients such as 'app'@'2001:db8:%') or restrict it to the hosts that need it.
    """
    server = direct_login.server
    informational = expect.served_by[Side.OLD] is not Side.NEW
    try:
        user = mysql_direct_logins.get(direct_login)
    except MysqlLoginRefused as exc:
        record(direct_login=f"refused: ({exc.code}) {exc.server_message}")
        return
    except ProbeError as exc:
        record(direct_login=f"no login possible: {exc}")
        return
    record(direct_login=f"accepted as {user}")
    if informational:
        return
    account = AccountTarget(direct_login.account).id
    if user == account:
        cause = "the new server sees this client as localhost (is the suite running on it?)"
    else:
        cause = f"an account {user} exists there; grants widened in the migration?"
    _fail(
        f"{account} logged in directly over TCP to {server.where} as {user}: "
        f"a localhost-only account of the old server is reachable from the network on new "
        f"({cause})"
    )


# --- MYSQL03: server facts ----------------------------------------------------------


@check("MYSQL03", phases=("preflight", "cutover", "acceptance"))
def test_new_server_facts(
    inventory: Inventory,
    mysql_new: MysqlAddressTarget,
    mysql_facts: Observations[MysqlAddressTarget, ServerFacts],
    record: Callable[..., None],
) -> None:
    """MYSQL03: the new server answers on the new IP and can serve the tunnel's localhost logins.

    Why: the tunnel ends at the new host's 127.0.0.1:3306, which matches
    'u'@'localhost' only with skip_name_resolve OFF, and only reaches mysqld if it
    listens on loopback. The version is recorded for the report.
    Inputs: mysql.admin (read-only, over TCP to each address of new: a
    dual-stack host has one test per family, `mysql-new-v6`); mysql.accounts
    (via_socket).
    Fix: skip_name_resolve OFF (remove skip-name-resolve from my.cnf) while socket
    accounts use the tunnel; bind-address 0.0.0.0 (or one that includes 127.0.0.1;
    `*` or `::` to listen on IPv6 as well).
    """
    found = mysql_facts.outcome(mysql_new)
    if isinstance(found, ProbeError):
        _fail(
            f"the new server cannot be read over TCP: {found} "
            "(is mysqld listening on the new IP? bind-address, skip-networking, firewall)"
        )
    facts = found
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


@check("MYSQL04", phases=("preflight", "acceptance"))
def test_grants_match(
    inventory: Inventory,
    mysql_grants: dict[Side, Grants | ProbeError],
    expect: PhaseExpectations,
    record: Callable[..., None],
) -> None:
    """MYSQL04: every account has the same grants and password on new as on old.

    Why: grants lost or changed in the dump/restore break applications silently,
    and a changed password hash breaks their logins. Like pt-show-grants: every
    (User, Host) of mysql.user, SHOW GRANTS FOR, quoting unified, privileges and
    lines sorted. Password hashes are compared but never shown. Accounts a server
    version creates for itself (mariadb.sys, mysql.sys, ...) may exist on one side.
    One testcase per pair: its message names every account that differs.
    Inputs: mysql.admin (read-only, needs SELECT on mysql.*); in acceptance the old
    server's grants come from the preflight baseline.
    Fix: copy the grants: `pt-show-grants` on old, apply its output on new (or
    `mariadb-dump --system=users`).
    """
    skip_unless(inventory.mysql.admin is not None, "the inventory names no mysql.admin account")
    old, new = mysql_grants[Side.OLD], mysql_grants[Side.NEW]
    unread = [
        f"cannot read the {side.value} server's grants: {found}"
        for side, found in ((Side.OLD, old), (Side.NEW, new))
        if isinstance(found, ProbeError)
    ]
    if isinstance(old, ProbeError) or isinstance(new, ProbeError):
        _fail("\n".join(unread))
    reference = "old server" if old_is_live(expect) else "old server (preflight baseline)"
    accounts = sorted(set(old) | set(new))
    record(grants_reference=reference, accounts=", ".join(g.id for g in accounts))
    differing, notes = [], []
    for grantee in accounts:
        diff = diff_grants(old.get(grantee), new.get(grantee))
        if not diff:
            continue
        if diff.only_on is not None and grantee in SYSTEM_ACCOUNTS:
            notes.append(f"system account {grantee.id} only on {diff.only_on.value}: not compared")
            continue
        differing.append(
            f"grants of {grantee.sql} differ between the {reference} and new:\n{diff.describe()}\n"
            "likely cause: grants not migrated with the data (pt-show-grants on old, apply on new)"
        )
    if notes:
        record(note="; ".join(notes))
    if differing:
        _fail("\n".join(differing))


# --- MYSQL05: data ----------------------------------------------------------------------


@check("MYSQL05", phases=("preflight", "acceptance"))
def test_data_matches(
    database: DatabaseTarget,
    mysql_data: MysqlData,
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
        seen = mysql_data.get(name)
    except ProbeError as exc:
        _fail(f"database {name!r}: {exc}")
    new = seen.new
    if seen.old is not None:
        if not seen.old.exists:
            _fail(f"database {name!r} does not exist on the old server ({seen.old.where})")
        differences = compare_database_scans(seen.old, new) if new.exists else []
        notes: list[str] = []
    else:
        differences, notes = compare_with_recorded(seen.recorded or {}, new)
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
