"""Pre-4.1 password hashes against the legacy lab (old as a MySQL 5.0 with old_passwords=1).

Old's seeded accounts carry pre-4.1 hashes; the healthy sync re-sets them on
new with 4.1 hashes from their passwords. MYSQL06 lists the pre-4.1 accounts
of old exactly as `mariadb` on old does, fails naming each one new would
refuse (fault `mysql-old-password`), MYSQL04 proves the upgraded hashes
against the inventory's passwords (and fails when one does not fit), and
MYSQL01 names the pre-4.1 hash when the tunnel login is refused for it.
"""

from __future__ import annotations

import pytest

from tests.conftest import Lab, lab_cli
from tests.mysql.test_mysql_lab import assert_all_pass, only_failure, run_mysql

pytestmark = pytest.mark.usefixtures("one_address_per_host")

FAULT = "mysql-old-password"


def pre41_on(lab: Lab, host: str) -> set[str]:
    """user@host of every account `mariadb` on `host` shows with a pre-4.1 hash.

    The CIS MySQL 7.2 audit (plugin mysql_old_password), and the MySQL 5.0
    form of it (a 16-character hash), read independently of the suite.
    """
    rows = lab.exec(
        host,
        "mariadb",
        "--batch",
        "--skip-column-names",
        "-e",
        "SELECT user, host, plugin, LENGTH(authentication_string) FROM mysql.user",
    ).stdout
    found = set()
    for line in rows.splitlines():
        user, where, plugin, length = line.split("\t")
        if plugin == "mysql_old_password" or length == "16":
            found.add(f"{user}@{where}")
    return found


def listed(value: str) -> set[str]:
    return set() if value == "-" else set(value.split(", "))


def test_legacy_preflight_healthy_lists_old_accounts(legacy_preflight_lab: Lab) -> None:
    on_old = pre41_on(legacy_preflight_lab, "old")
    assert "app@localhost" in on_old  # the lab is what it claims to be
    assert pre41_on(legacy_preflight_lab, "new") == set()  # the healthy sync converted them
    run = run_mysql(legacy_preflight_lab, "preflight")
    assert_all_pass(run, "preflight")
    found = run.by_name("test_pre41_hashes_not_refused").properties
    assert listed(found["pre41_on_old"]) == on_old, run.summary()
    assert found["pre41_on_new"] == "-"
    assert listed(found["converted_to_41"]) == on_old
    # MYSQL04 cannot compare a pre-4.1 hash with a 4.1 one: it checks both against
    # the password the inventory gives (app, and report by its IPv4 pattern).
    upgraded = run.by_name("test_grants_match").properties["hash_upgraded_to_41"]
    assert "app@localhost (both fit the inventory's password)" in upgraded
    assert "report@198.51.100.% (both fit the inventory's password)" in upgraded


def test_legacy_preflight_old_password_copied(legacy_preflight_lab: Lab) -> None:
    on_old = pre41_on(legacy_preflight_lab, "old")
    with legacy_preflight_lab.fault(FAULT):
        assert pre41_on(legacy_preflight_lab, "new") == on_old
        run = run_mysql(legacy_preflight_lab, "preflight")
    case = only_failure(run, "MYSQL06")
    assert case.message.startswith("MYSQL06"), case.message
    assert listed(case.properties["pre41_on_old"]) == on_old
    assert listed(case.properties["pre41_on_new"]) == on_old
    assert case.properties["secure_auth_new"] == "ON"
    for account in on_old:
        user, _, host = account.rpartition("@")
        line = next(line for line in case.message.splitlines() if f"'{user}'@'{host}'" in line)
        assert "hash copied from old" in line and "secure_auth=ON" in line, line
        assert "PHP's mysqlnd" in line, line
    assert "198.51.100.20:3306" in case.message


def test_legacy_preflight_upgraded_hash_of_another_password(legacy_preflight_lab: Lab) -> None:
    # A 4.1 hash on new that is not of app's password: the upgrade must not hide it.
    legacy_preflight_lab.exec(
        "new", "mariadb", "-e", "ALTER USER 'app'@'localhost' IDENTIFIED BY 'not-the-password'"
    )
    try:
        run = run_mysql(legacy_preflight_lab, "preflight")
    finally:
        # The fault's undo re-sets every seeded account on new from the lab's secrets.
        lab_cli("fault", FAULT)
        lab_cli("fault", "--undo", FAULT)
    case = only_failure(run, "MYSQL04")
    assert "password of 'app'@'localhost' differs" in case.message, case.message
    assert "pre-4.1 hash on old was replaced by a 4.1 hash on new" in case.message
    assert "the hash on new does not fit the password the inventory gives" in case.message
    assert "'report'" not in case.message
    assert legacy_preflight_lab.drift() is None


def test_legacy_cutover_tunnel_login_refused_for_the_hash(legacy_cutover_lab: Lab) -> None:
    with legacy_cutover_lab.fault(FAULT):
        run = run_mysql(legacy_cutover_lab, "cutover")
    case = only_failure(run, "MYSQL01")
    assert case.name == "test_tunnel_login[app@localhost]"
    assert "(1275)" in case.message and "pre-4.1 password hash on new" in case.message
    assert "secure_auth is ON on the new server" in case.message
