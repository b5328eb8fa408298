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
    AccountGrants,
    Grantee,
    compare_database_scans,
    compare_with_recorded,
    diff_grants,
    fits_password,
)
from cutover.model.inventory import Inventory, MysqlAccount
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
    lines sorted. Password hashes are compared but never shown. A pre-4.1 hash on
    old that new has as a 4.1 hash (re-set from the password) never compares equal:
    both are checked against the inventory's password for the account instead, and
    recorded as not verifiable when it gives none (`hash_upgraded_to_41`). Accounts
    a server version creates for itself (mariadb.sys, mysql.sys, ...) may exist on one side.
    One testcase per pair: its message names every account that differs.
    Inputs: mysql.admin (read-only, needs SELECT on mysql.*); in acceptance the old
    server's grants come from the preflight baseline; mysql.accounts' passwords for
    upgraded hashes.
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
    differing, notes, upgraded = [], [], []
    for grantee in accounts:
        diff = diff_grants(old.get(grantee), new.get(grantee))
        if diff.hash_upgraded:
            verdict, problem = _upgraded_password(inventory, old[grantee], new[grantee])
            upgraded.append(f"{grantee.id} ({verdict})")
            if problem:
                differing.append(
                    f"password of {grantee.sql} differs between the {reference} and new: "
                    f"its pre-4.1 hash on old was replaced by a 4.1 hash on new, and {problem}"
                )
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
    if upgraded:
        record(hash_upgraded_to_41=", ".join(upgraded))
    if differing:
        _fail("\n".join(differing))


def _inventory_account(inventory: Inventory, grantee: Grantee) -> MysqlAccount | None:
    """The inventory's account (mysql.accounts, mysql.admin) for `grantee`, with a password."""
    listed = [*inventory.mysql.accounts, *filter(None, [inventory.mysql.admin])]
    for account in listed:
        if (account.user, account.host.lower()) == (grantee.user, grantee.host.lower()):
            return account if account.has_password else None
    return None


def _upgraded_password(
    inventory: Inventory, old: AccountGrants, new: AccountGrants
) -> tuple[str, str | None]:
    """(what was found, the problem or None) for a hash upgraded from pre-4.1 to 4.1.

    The two hashes never compare equal, so the password they encode is checked
    against the inventory's (its pre-4.1 hash for old, its 4.1 hash for new).
    """
    account = _inventory_account(inventory, old.grantee)
    if account is None:
        return "not verifiable: no password for it in mysql.accounts", None
    wrong = [
        side
        for side, grants in (("old", old), ("new", new))
        if not fits_password(grants, account.password)
    ]
    if not wrong:
        return "both fit the inventory's password", None
    return "does not fit the inventory's password", (
        f"the hash on {' and '.join(wrong)} does not fit the password the inventory gives "
        "(logins with the old password fail on new): re-set it on new from the right password"
    )


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


# --- MYSQL06: pre-4.1 password hashes ---------------------------------------------------


@check("MYSQL06", phases=("preflight", "acceptance"))
def test_pre41_hashes_not_refused(
    inventory: Inventory,
    mysql_grants: dict[Side, Grants | ProbeError],
    mysql_new_facts: ServerFacts | ProbeError,
    record: Callable[..., None],
) -> None:
    """MYSQL06: every account with a pre-4.1 password hash is found, and new refuses none for it.

    Why: MySQL before 4.1, and later servers with `old_passwords=1` (CentOS 5's
    stock my.cnf), store 16-hex-digit pre-4.1 hashes (plugin mysql_old_password).
    Copying the grant tables (mysql.user, `mariadb-dump --system=users`,
    pt-show-grants) copies them, and a server with secure_auth ON (the default
    of MariaDB and of MySQL >= 5.6.5) refuses those logins (ERROR 1275); PHP's
    mysqlnd refuses them whatever the server says. The accounts with a pre-4.1
    hash on old are recorded (`pre41_on_old`) even when none is refused. With
    secure_auth OFF on new the server accepts them: recorded, not failed.
    Inputs: mysql.admin (read-only, SELECT on mysql.*): the hash format of every
    account in SHOW GRANTS on old (after preflight: the preflight baseline) and
    on new, and new's secure_auth.
    Fix: re-set each named account's password on new with a 4.1 hash (with
    old_passwords=0: `ALTER USER 'app'@'localhost' IDENTIFIED BY '...'`); or on old
    before the move (`old_passwords=0` in my.cnf, then the same), and sync again.
    """
    skip_unless(inventory.mysql.admin is not None, "the inventory names no mysql.admin account")
    old, new = mysql_grants[Side.OLD], mysql_grants[Side.NEW]
    if isinstance(old, ProbeError) or isinstance(new, ProbeError):
        _fail(
            "\n".join(
                f"cannot read the {side.value} server's password hashes: {found}"
                for side, found in ((Side.OLD, old), (Side.NEW, new))
                if isinstance(found, ProbeError)
            )
        )
    old_pre41 = sorted(g for g, account in old.items() if account.pre_41)
    new_pre41 = sorted(g for g, account in new.items() if account.pre_41)
    converted = [g for g in old_pre41 if g in new and not new[g].pre_41]
    record(
        pre41_on_old=", ".join(g.id for g in old_pre41) or "-",
        pre41_on_new=", ".join(g.id for g in new_pre41) or "-",
    )
    if converted:
        record(converted_to_41=", ".join(g.id for g in converted))
    if not new_pre41:
        return
    if isinstance(mysql_new_facts, ProbeError):
        _fail(
            f"{', '.join(g.sql for g in new_pre41)}: pre-4.1 password hash on new, and new's "
            f"secure_auth cannot be read: {mysql_new_facts}"
        )
    facts = mysql_new_facts
    record(secure_auth_new=facts.secure_auth or "(no such variable: always refused)")
    if not facts.refuses_pre_41:
        record(
            note=f"secure_auth is OFF on {facts.where}: it accepts these pre-4.1 accounts, "
            "PHP's mysqlnd does not"
        )
        return
    setting = (
        f"secure_auth={facts.secure_auth}"
        if facts.secure_auth is not None
        else f"no pre-4.1 support (version {facts.version})"
    )
    _fail(
        f"{len(new_pre41)} account(s) with a pre-4.1 password hash (16 hex digits, "
        f"mysql_old_password) will be refused on new:\n"
        + "\n".join(
            f"  {g.sql}: "
            + ("hash copied from old" if g in old_pre41 else "pre-4.1 on new only")
            + f"; refused by the new server ({setting} on {facts.where}: ERROR 1275) "
            "and by PHP's mysqlnd"
            for g in new_pre41
        )
        + "\nlikely cause: the grant tables were copied from an old_passwords=1 server; "
        "re-set each password on new with a 4.1 hash (ALTER USER ... IDENTIFIED BY '...' "
        "with old_passwords=0)"
    )
