"""Pre-4.1 password hashes: formats, the hash algorithms, MYSQL04's upgrade, MYSQL01's diagnosis.

Pure logic. The hash vectors were produced by MariaDB 10.11 (Debian 12):
`SELECT OLD_PASSWORD(...)` and `PASSWORD(...)` with old_passwords=0.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from cutover.compare.mysql import (
    NATIVE_41,
    PRE_41,
    AccountGrants,
    Grantee,
    diff_grants,
    fits_password,
    hash_format,
    native_password_hash,
    old_password_hash,
)
from cutover.model.inventory import MysqlAccount
from cutover.model.secrets import Secret
from cutover.probes.mysql.grants import account_grants
from cutover.probes.mysql.session import ServerFacts
from cutover.probes.mysql.tunnel import diagnose, parse_output

APP = Grantee("app", "localhost")
PASSWORD = "s3cret pass"


def identified(secret: str) -> AccountGrants:
    return account_grants(
        APP,
        [
            f"GRANT USAGE ON *.* TO `app`@`localhost` IDENTIFIED BY PASSWORD '{secret}'",
            "GRANT SELECT ON `app`.* TO `app`@`localhost`",
        ],
    )


@pytest.mark.parametrize(
    ("password", "old_hash"),
    [
        ("secret", "428567f408994404"),
        ("p w\tx", "78a32d89267f44f0"),  # spaces and tabs do not count
        ("ünï", "31e1d47533ffbd51"),  # UTF-8 bytes
    ],
)
def test_old_password_hash_is_mariadbs(password: str, old_hash: str) -> None:
    assert old_password_hash(password) == old_hash
    assert hash_format(old_hash) == PRE_41


def test_native_password_hash_is_mariadbs() -> None:
    assert native_password_hash("secret") == "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"
    assert hash_format(native_password_hash("secret")) == NATIVE_41


@pytest.mark.parametrize("other", ["invalid", "", "*ABC", "428567f40899440", "xyz567f408994404"])
def test_other_strings_are_neither(other: str) -> None:
    assert hash_format(other) == "other"


def test_formats_come_from_show_grants_and_hide_the_hash() -> None:
    old = identified(old_password_hash(PASSWORD))
    assert old.pre_41 and old.hash_formats == (PRE_41,)
    assert old_password_hash(PASSWORD) not in repr(old)
    new = identified(native_password_hash(PASSWORD))
    assert not new.pre_41 and new.hash_formats == (NATIVE_41,)
    assert not account_grants(APP, ["GRANT USAGE ON *.* TO `app`@`localhost`"]).pre_41


def test_upgraded_hash_is_not_a_difference_but_is_checkable() -> None:
    old = identified(old_password_hash(PASSWORD))
    new = identified(native_password_hash(PASSWORD))
    diff = diff_grants(old, new)
    assert not diff and diff.hash_upgraded
    assert fits_password(old, Secret(PASSWORD)) and fits_password(new, Secret(PASSWORD))
    other = identified(native_password_hash("another"))
    assert diff_grants(old, other).hash_upgraded  # the fingerprints cannot tell...
    assert not fits_password(other, Secret(PASSWORD))  # ...the password can


def test_pre41_on_both_sides_still_compares_by_fingerprint() -> None:
    old = identified(old_password_hash(PASSWORD))
    assert not diff_grants(old, identified(old_password_hash(PASSWORD)))
    changed = diff_grants(old, identified(old_password_hash("another")))
    assert changed.hash_differs and not changed.hash_upgraded
    # 4.1 on old, pre-4.1 on new is a downgrade: a plain difference.
    down = diff_grants(identified(native_password_hash(PASSWORD)), old)
    assert down.hash_differs and not down.hash_upgraded


def test_formats_survive_the_baseline_and_older_baselines_load() -> None:
    old = identified(old_password_hash(PASSWORD))
    assert AccountGrants.from_json(APP, old.to_json()) == old
    before = {k: v for k, v in old.to_json().items() if k != "hash_formats"}
    assert AccountGrants.from_json(APP, before).hash_formats == ()


# --- MYSQL01: the tunnel login refused for the hash ---------------------------------

ACCOUNT = MysqlAccount(user="app", host="localhost", via_socket=True)
NEW = ServerFacts(
    where="mysql 198.51.100.20:3306 (new IP)",
    hostname="new.example.test",
    version="10.11.6-MariaDB",
    skip_name_resolve=False,
    skip_networking=False,
    bind_address="0.0.0.0",
    accounts=(("app", "localhost", "mysql_old_password"),),
    secure_auth="ON",
)


def refused(error: str, facts: ServerFacts | None = NEW) -> str:
    login = parse_output(
        f"socket: ok\nrow: {error}\nrc: 1\n", host="ssh://root@old", socket="/run/x.sock"
    )
    return diagnose(login, ACCOUNT, facts, "new.example.test", "old.example.test") or ""


def test_secure_auth_refusal_names_the_pre41_hash() -> None:
    text = refused(
        "ERROR 1275 (HY000): Server is running in --secure-auth mode, but 'app'@'localhost' "
        "has a password in the old format; please change the password to the new format"
    )
    assert "(1275)" in text and "pre-4.1 password hash on new" in text
    assert "secure_auth is ON on the new server" in text and "mysqlnd" in text
    assert "ALTER USER 'app'@'localhost' IDENTIFIED BY" in text
    # Without the account list (new's facts unreadable) the error code alone says it.
    assert "pre-4.1 password hash on new" in refused("ERROR 1275 (HY000): secure-auth", None)


def test_client_refusal_and_plain_denial_of_a_pre41_account() -> None:
    client = refused("ERROR 2049 (HY000): Connection using old (pre-4.1.1) authentication")
    assert "client on the old host refuses the pre-4.1 protocol" in client
    lax = replace(NEW, secure_auth="OFF")
    denied = refused("ERROR 1045 (28000): Access denied for user 'app'@'localhost'", lax)
    assert "pre-4.1 password hash on new" in denied
    assert "the password or the client does not fit it" in denied


def test_a_native_account_is_not_blamed_on_the_hash() -> None:
    native = replace(NEW, accounts=(("app", "localhost", "mysql_native_password"),))
    text = refused("ERROR 1045 (28000): Access denied for user 'app'@'localhost'", native)
    assert "pre-4.1" not in text and "wrong password on new" in text
