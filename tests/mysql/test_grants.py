"""Grant normalisation and diff: pure logic, no server."""

from __future__ import annotations

from cutover.compare.mysql import AccountGrants, Grantee, diff_grants
from cutover.model.phases import Side
from cutover.probes.mysql.grants import account_grants, normalise_grant

APP = Grantee("app", "localhost")


def grants(*lines: str, grantee: Grantee = APP) -> AccountGrants:
    return account_grants(grantee, lines)


def test_mysql_and_mariadb_quoting_normalise_alike() -> None:
    mysql = normalise_grant("GRANT SELECT, INSERT ON `app`.* TO 'app'@'localhost'")
    mariadb = normalise_grant("GRANT INSERT, SELECT ON `app`.* TO `app`@`localhost`")
    assert mysql == mariadb
    assert mysql.text == "GRANT INSERT, SELECT ON `app`.* TO `app`@`localhost`"


def test_privileges_and_columns_sorted_like_pt_show_grants() -> None:
    line = "GRANT SELECT (`total`, `id`), UPDATE (`total`) ON `app`.`orders` TO `app`@`localhost`"
    assert normalise_grant(line).text == (
        "GRANT SELECT (`id`, `total`), UPDATE (`total`) ON `app`.`orders` TO `app`@`localhost`"
    )
    many = "GRANT SHOW VIEW, CREATE TEMPORARY TABLES, ALL PRIVILEGES ON *.* TO 'a'@'%'"
    assert normalise_grant(many).text == (
        "GRANT ALL PRIVILEGES, CREATE TEMPORARY TABLES, SHOW VIEW ON *.* TO `a`@`%`"
    )


def test_password_hashes_are_masked_but_kept() -> None:
    line = "GRANT USAGE ON *.* TO `app`@`localhost` IDENTIFIED BY PASSWORD '*DB14CBAE92D7'"
    grant = normalise_grant(line)
    assert "*DB14" not in grant.text
    assert grant.text.endswith("IDENTIFIED BY PASSWORD '<password hash>'")
    assert grant.secrets == ("*DB14CBAE92D7",)
    via = normalise_grant(
        "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` IDENTIFIED VIA "
        "mysql_native_password USING 'invalid' OR unix_socket WITH GRANT OPTION"
    )
    assert "USING '<password hash>' OR unix_socket WITH GRANT OPTION" in via.text
    assert via.secrets == ("invalid",)
    mysql57 = normalise_grant(
        "CREATE USER 'a'@'%' IDENTIFIED WITH 'mysql_native_password' AS '*AB12'"
    )
    assert mysql57.secrets == ("*AB12",)
    assert "'mysql_native_password'" in mysql57.text


def test_anonymous_and_proxy_accounts() -> None:
    assert normalise_grant(
        "GRANT PROXY ON ''@'%' TO 'root'@'localhost' WITH GRANT OPTION"
    ).text == ("GRANT PROXY ON ``@`%` TO `root`@`localhost` WITH GRANT OPTION")
    assert normalise_grant("GRANT `app_role` TO `app`@`localhost`").text == (
        "GRANT `app_role` TO `app`@`localhost`"
    )


def test_identical_grants_in_any_order_match() -> None:
    old = grants(
        "GRANT USAGE ON *.* TO 'app'@'localhost' IDENTIFIED BY PASSWORD '*AA'",
        "GRANT SELECT, DELETE ON `app`.* TO 'app'@'localhost'",
    )
    new = grants(
        "GRANT DELETE, SELECT ON `app`.* TO `app`@`localhost`",
        "GRANT USAGE ON *.* TO `app`@`localhost` IDENTIFIED BY PASSWORD '*AA'",
    )
    assert old == new
    assert not diff_grants(old, new)


def test_lost_privilege_is_named_per_line() -> None:
    old = grants("GRANT DELETE, INSERT, SELECT ON `app`.* TO `app`@`localhost`")
    new = grants("GRANT INSERT, SELECT ON `app`.* TO `app`@`localhost`")
    diff = diff_grants(old, new)
    assert diff
    assert diff.missing_on_new == ("GRANT DELETE, INSERT, SELECT ON `app`.* TO `app`@`localhost`",)
    assert diff.extra_on_new == ("GRANT INSERT, SELECT ON `app`.* TO `app`@`localhost`",)
    text = diff.describe()
    assert "'app'@'localhost'" in text and "missing on new: GRANT DELETE" in text


def test_changed_hash_is_reported_without_showing_it() -> None:
    old = grants("GRANT USAGE ON *.* TO `app`@`localhost` IDENTIFIED BY PASSWORD '*AAAA1111'")
    new = grants("GRANT USAGE ON *.* TO `app`@`localhost` IDENTIFIED BY PASSWORD '*BBBB2222'")
    diff = diff_grants(old, new)
    assert diff.hash_differs and not diff.missing_on_new and not diff.extra_on_new
    text = diff.describe()
    assert "password hash differs" in text
    assert "AAAA1111" not in text and "BBBB2222" not in text
    # The baseline keeps fingerprints, never the hash itself.
    assert "AAAA1111" not in str(old.to_json())


def test_fingerprints_are_per_account() -> None:
    line = "GRANT USAGE ON *.* TO `{u}`@`%` IDENTIFIED BY PASSWORD '*SAME'"
    a = grants(line.format(u="a"), grantee=Grantee("a", "%"))
    b = grants(line.format(u="b"), grantee=Grantee("b", "%"))
    assert a.hash_fingerprints != b.hash_fingerprints


def test_account_on_one_side_only() -> None:
    only_old = diff_grants(grants("GRANT USAGE ON *.* TO `app`@`localhost`"), None)
    assert only_old.only_on is Side.OLD
    assert "missing on new" in only_old.describe()
    only_new = diff_grants(None, grants("GRANT USAGE ON *.* TO `app`@`localhost`"))
    assert only_new.only_on is Side.NEW


def test_baseline_round_trip() -> None:
    old = grants("GRANT USAGE ON *.* TO `app`@`localhost` IDENTIFIED BY PASSWORD '*AA'")
    assert AccountGrants.from_json(APP, old.to_json()) == old
    assert Grantee.parse(APP.id) == APP
    assert Grantee.parse("@localhost") == Grantee("", "localhost")
    # Quotes doubled, backslashes kept: what MySQL writes under any SQL mode.
    assert Grantee("o'neil", "%").sql == "'o''neil'@'%'"
    assert Grantee("a\\b", "%").sql == "'a\\b'@'%'"


def test_an_account_name_is_shown_safely() -> None:
    hostile = Grantee("<img src=x onerror=alert(1)>\x1b]0;pwn\x07", "%")
    assert "\x1b" not in hostile.sql and "\\x1b]0;pwn\\x07" in hostile.sql
    diff = diff_grants(None, grants("GRANT USAGE ON *.* TO `x\x1b[2K`@`%`"))
    assert "\x1b" not in diff.describe()
