"""MySQL/MariaDB grants: read like pt-show-grants, normalised to compare across versions.

Every User/Host of mysql.user (MariaDB roles left out), `SHOW GRANTS FOR`
with user and host passed as parameters, then normalised: one quoting
style, privileges and column lists sorted, lines sorted. Password hashes
are never kept or shown: the text carries `'<password hash>'` instead, and
each account keeps salted fingerprints of its hashes to compare, and their
format (pre-4.1 or 4.1: MYSQL06 finds the pre-4.1 ones).
Semantics: docs/semantics.md, "MySQL and MariaDB".

>>> normalise_grant("GRANT UPDATE, SELECT ON `app`.* TO 'app'@'localhost'").text
'GRANT SELECT, UPDATE ON `app`.* TO `app`@`localhost`'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from cutover.compare.mysql import AccountGrants, Grantee, hash_fingerprint, hash_format
from cutover.model.settings import ProbeSettings
from cutover.probes.mysql.session import MysqlServer, Session, quote_identifier, text_of

__all__ = [
    "HASH_PLACEHOLDER",
    "NormalisedGrant",
    "account_grants",
    "normalise_grant",
    "read_grants",
]

HASH_PLACEHOLDER = "'<password hash>'"


@dataclass(frozen=True)
class NormalisedGrant:
    text: str  # with every password hash replaced by HASH_PLACEHOLDER
    secrets: tuple[str, ...]  # the hashes, in order (never printed)


# Tokens of a SHOW GRANTS line: quoted names and strings, parentheses, words.
_TOKEN = re.compile(
    r"""(?P<backtick>`(?:[^`]|``)*`)
      | (?P<string>'(?:[^'\\]|\\.|'')*')
      | (?P<dquote>"(?:[^"\\]|\\.|"")*")
      | (?P<space>\s+)
      | (?P<other>[^`'"\s]+)""",
    re.VERBOSE,
)
# A quoted string after these words is a password hash (or 'invalid').
_SECRET_BEFORE = frozenset({"PASSWORD", "USING", "AS"})


def _unquote(token: str) -> str:
    quote, body = token[0], token[1:-1]
    if quote == "`":
        return body.replace("``", "`")
    body = body.replace(quote * 2, quote)
    return re.sub(r"\\(.)", r"\1", body)


def normalise_grant(line: str) -> NormalisedGrant:
    """One SHOW GRANTS line in a form that compares across MySQL and MariaDB.

    >>> g = normalise_grant("GRANT USAGE ON *.* TO 'a'@'%' IDENTIFIED BY PASSWORD '*AB'")
    >>> g.text, g.secrets
    ("GRANT USAGE ON *.* TO `a`@`%` IDENTIFIED BY PASSWORD '<password hash>'", ('*AB',))
    """
    tokens = [(match.lastgroup or "", match.group()) for match in _TOKEN.finditer(line.strip())]
    secrets: list[str] = []
    out: list[str] = []
    previous_word = ""
    for index, (kind, token) in enumerate(tokens):
        if kind == "space":
            out.append(" ")
            continue
        if kind in ("string", "dquote"):
            if previous_word.upper() in _SECRET_BEFORE:
                secrets.append(_unquote(token))
                out.append(HASH_PLACEHOLDER)
            elif _is_account_part(tokens, index):
                out.append(quote_identifier(_unquote(token)))
            else:
                out.append("'" + _unquote(token).replace("'", "''") + "'")
        elif kind == "backtick":
            out.append(quote_identifier(_unquote(token)))
        else:
            out.append(token)
        previous_word = token if kind == "other" else ""
    text = "".join(out).rstrip(";").strip()
    return NormalisedGrant(_sort_privileges(text), tuple(secrets))


def _is_account_part(tokens: Sequence[tuple[str, str]], index: int) -> bool:
    """A quoted user or host: `'app'@'localhost'` (MySQL quotes accounts like strings)."""
    before = tokens[index - 1][1] if index > 0 else ""
    after = tokens[index + 1][1] if index + 1 < len(tokens) else ""
    return after.startswith("@") or before.endswith("@")


_GRANT_ON = re.compile(r"^GRANT (?P<privs>.+?) ON (?P<rest>(?:`|\*|PROCEDURE |FUNCTION ).*)$")


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return [p for p in parts if p]


def _sort_privileges(text: str) -> str:
    """Privileges, and the columns of column privileges, in sorted order (as pt-show-grants)."""
    match = _GRANT_ON.match(text)
    if match is None:
        return text
    privileges = []
    for privilege in _split_top_level(match.group("privs")):
        name, paren, columns = privilege.partition("(")
        if paren:
            cols = sorted(c.strip() for c in columns.rstrip(")").split(","))
            privilege = f"{name.strip()} ({', '.join(cols)})"
        privileges.append(privilege)
    return f"GRANT {', '.join(sorted(privileges))} ON {match.group('rest')}"


def account_grants(grantee: Grantee, lines: Sequence[str]) -> AccountGrants:
    """One account's SHOW GRANTS lines, normalised; its password hashes as salted fingerprints."""
    normalised = [normalise_grant(line) for line in lines]
    # pt-show-grants order: the line carrying the password first, then sorted.
    normalised.sort(key=lambda g: ("IDENTIFIED" not in g.text, g.text))
    secrets = [secret for grant in normalised for secret in grant.secrets]
    return AccountGrants(
        grantee,
        tuple(g.text for g in normalised),
        tuple(hash_fingerprint(grantee, secret) for secret in secrets),
        tuple(hash_format(secret) for secret in secrets),
    )


def _grantees(session: Session) -> list[Grantee]:
    where = ""
    columns = {text_of(r[0]).lower() for r in session.rows("SHOW COLUMNS FROM mysql.user")}
    if "is_role" in columns:
        where = " WHERE is_role <> 'Y'"  # MariaDB roles are not logins
    rows = session.rows(f"SELECT DISTINCT User, Host FROM mysql.user{where} ORDER BY User, Host")
    return [Grantee(text_of(user), text_of(host)) for user, host in rows]


def read_grants(server: MysqlServer, settings: ProbeSettings) -> dict[Grantee, AccountGrants]:
    """`SHOW GRANTS FOR` every account of mysql.user, normalised."""
    found: dict[Grantee, AccountGrants] = {}
    with Session(server, settings) as session:
        for grantee in _grantees(session):
            shown_grants = session.rows("SHOW GRANTS FOR %s@%s", (grantee.user, grantee.host))
            lines = [text_of(row[0]) for row in shown_grants]
            found[grantee] = account_grants(grantee, lines)
    return found
