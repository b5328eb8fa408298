"""The legacy profile's MariaDB on old: MySQL 5.0's `old_passwords=1`, and what sync does about it.

CentOS 5's stock my.cnf set `old_passwords=1`: every password set there got a
pre-4.1 hash (16 hex digits; MariaDB calls the plugin `mysql_old_password`).
MariaDB 10.11 still accepts `old_passwords` and `secure_auth` (the latter
deprecated, warning 1287), so old is configured that way and the seed's
accounts get pre-4.1 hashes as they would have there. New keeps the default
`secure_auth=ON`, which refuses such accounts (ERROR 1275).

The healthy `sync` copies the accounts as before (SHOW CREATE USER, which
carries the pre-4.1 hash) and then converts them the way an admin would: the
password re-set on new from the known secret, with old_passwords=0 (a 4.1
hash). The `mysql-old-password` fault (lab/faults_legacy_mysql.py) copies the
pre-4.1 hash back, as a plain grant-table copy leaves it.
"""

from __future__ import annotations

from typing import Any

# Modules, not names: lab.daemons and lab.health call into this one.
from lab import daemons, health, labctl, profiles, state
from lab.run import LabError
from lab.topology import NEW, OLD, Host

OLD_PASSWORDS_CNF = "etc/mysql/local.d/legacy-old-passwords.cnf"
# The lab's secret of each seeded account with a password (lab/seed.py), by user.
SECRETS = {"app": "mysql-app", "report": "mysql-report"}
PLUGIN = "mysql_old_password"


def configure(host: Host) -> None:
    """On a legacy lab's old host: new passwords get pre-4.1 hashes, and such logins work."""
    if host != OLD or not profiles.legacy():
        return
    (host.root / OLD_PASSWORDS_CNF).write_text(
        "# CentOS 5's my.cnf: passwords get pre-4.1 hashes (MySQL 5.0 old_passwords=1),\n"
        "# and the server accepts logins to such accounts.\n"
        "[mysqld]\nold_passwords = 1\nsecure_auth = OFF\n"
    )


def pre41_accounts(host: Host) -> list[tuple[str, str]]:
    """(user, host) of every account with a pre-4.1 hash on `host` (CIS MySQL 7.2's query)."""
    rows = daemons.mysql(
        host,
        f"SELECT User, Host FROM mysql.user WHERE plugin = '{PLUGIN}' ORDER BY User, Host;",
        timeout=20,
    )
    return [(user, where) for user, where in (line.split("\t") for line in rows.splitlines())]


def _quoted(user: str, where: str) -> str:
    return "'" + user.replace("'", "''") + "'@'" + where.replace("'", "''") + "'"


def convert_on_new() -> list[str]:
    """Re-set each pre-4.1 account's password on new from the lab's secret (a 4.1 hash)."""
    converted = []
    statements = ["SET SESSION old_passwords = 0;"]
    for user, where in pre41_accounts(NEW):
        if user not in SECRETS:
            raise LabError(f"sync: {user}@{where} has a pre-4.1 hash and no known password")
        password = state.read_secret(SECRETS[user]).replace("'", "''")
        statements.append(f"ALTER USER {_quoted(user, where)} IDENTIFIED BY '{password}';")
        converted.append(f"{user}@{where}")
    if converted:
        daemons.mysql(NEW, "\n".join(statements) + "\n")
    return converted


def convert_after_sync() -> None:
    """On a legacy lab, after sync copied the accounts: convert their pre-4.1 hashes on new."""
    if not profiles.legacy():
        return
    converted = convert_on_new()
    labctl.say(
        f"sync: {len(converted)} accounts with pre-4.1 hashes re-set on new with 4.1 hashes "
        f"from their passwords ({', '.join(converted) or 'none'})"
    )


def copy_old_hashes() -> list[str]:
    """Give new the pre-4.1 hashes old has (what a grant-table copy does), in any story state.

    After the cutover old's MariaDB is stopped, so the hashes are not read from
    there: the pre-4.1 algorithm has no salt, and the same password gives the
    same hash old has (old_passwords=1 for this session on new).
    """
    rows = daemons.mysql(NEW, "SELECT User, Host FROM mysql.user ORDER BY User, Host;", timeout=20)
    accounts = [tuple(line.split("\t")) for line in rows.splitlines()]
    statements = ["SET SESSION old_passwords = 1;"]
    copied = []
    for user, where in accounts:
        if user in SECRETS:
            password = state.read_secret(SECRETS[user]).replace("'", "''")
            statements.append(f"ALTER USER {_quoted(user, where)} IDENTIFIED BY '{password}';")
            copied.append(f"{user}@{where}")
    if not copied:
        raise LabError("new has none of the seeded accounts: run `python -m lab sync` first")
    daemons.mysql(NEW, "\n".join(statements) + "\n")
    return copied


def conditions(data: dict[str, Any]) -> list[health.Condition]:
    """Legacy postconditions: old's accounts are pre-4.1 (while old's MariaDB runs: until
    the cutover stops it); after sync, none is left on new."""
    if data.get("profile") != profiles.LEGACY:
        return []
    found = []
    if not data["story"]["cutover"]:
        on_old = pre41_accounts(OLD)
        found.append(
            health.Condition(
                "legacy: old's accounts have pre-4.1 hashes",
                ("app", "localhost") in on_old,
                f"{len(on_old)} pre-4.1 accounts on old" if on_old else "none on old",
            )
        )
    if data["story"]["synced"]:
        on_new = pre41_accounts(NEW)
        found.append(
            health.Condition(
                "legacy: sync converted the pre-4.1 accounts on new",
                not on_new,
                "none left on new"
                if not on_new
                else "still pre-4.1 on new: " + ", ".join(f"{u}@{h}" for u, h in on_new),
            )
        )
    return found
