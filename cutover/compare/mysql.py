"""MySQL/MariaDB comparisons on plain data: grants and table digests, no server.

The probes (cutover.probes.mysql) read grants and scan tables into the data
types here; the comparisons say what differs between old and new, in words
an operator can act on. Semantics: docs/semantics.md, "MySQL and MariaDB".

Grants compare line by line after normalisation, password hashes by salted
fingerprint (never shown) and by format: a pre-4.1 hash (16 hex digits,
`mysql_old_password`, what `old_passwords=1` made) upgraded on new to a
4.1 one (`*` + 40 hex) from the same password cannot be compared by
fingerprint; it is checked against the password when the inventory gives
it, else said. Tables compare by columns, then by their ordered
digest; the first differing chunk names a primary-key range.

>>> app = Grantee("app", "localhost")
>>> old = AccountGrants(app, ("GRANT USAGE ON *.* TO `app`@`localhost`",), ())
>>> diff_grants(old, None).describe()
"account 'app'@'localhost' is missing on new (exists on old)"
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cutover.model.phases import Side
from cutover.model.secrets import Secret
from cutover.untrusted import shown

__all__ = [
    "NATIVE_41",
    "PRE_41",
    "AccountGrants",
    "Chunk",
    "DatabaseScan",
    "GrantDiff",
    "Grantee",
    "TableDifference",
    "TableScan",
    "compare_database_scans",
    "compare_with_recorded",
    "diff_grants",
    "fits_password",
    "hash_fingerprint",
    "hash_format",
    "native_password_hash",
    "old_password_hash",
]


# --- grants -------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Grantee:
    """One (User, Host) row of mysql.user."""

    user: str
    host: str

    @property
    def id(self) -> str:
        """`app@localhost` (baseline keys and the accounts a check compared)."""
        return f"{self.user}@{self.host}"

    @property
    def sql(self) -> str:
        """`'app'@'localhost'` as MySQL writes an account, for messages (server text shown safely).

        Queries never use it: they pass user and host as parameters, which
        PyMySQL quotes for the session's SQL mode (`NO_BACKSLASH_ESCAPES` too).

        >>> Grantee("o'brien", "%").sql
        "'o''brien'@'%'"
        """
        return shown(f"{_quote(self.user)}@{_quote(self.host)}")

    @classmethod
    def parse(cls, text: str) -> Grantee:
        user, _, host = text.rpartition("@")
        return cls(user, host)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# Password hash formats (mysql.user, SHOW GRANTS ... IDENTIFIED BY PASSWORD '...').
PRE_41 = "pre-4.1"  # 16 hex digits: OLD_PASSWORD(), plugin mysql_old_password
NATIVE_41 = "4.1"  # '*' + 40 hex digits: plugin mysql_native_password
OTHER_HASH = "other"  # another plugin's string, or 'invalid'
_PRE_41 = re.compile(r"[0-9a-fA-F]{16}")
_NATIVE_41 = re.compile(r"\*[0-9a-fA-F]{40}")


def hash_format(secret: str) -> str:
    """Which kind of password hash `secret` is (the hash itself is never kept).

    >>> hash_format("428567f408994404"), hash_format("*" + "0A" * 20), hash_format("invalid")
    ('pre-4.1', '4.1', 'other')
    """
    if _PRE_41.fullmatch(secret):
        return PRE_41
    if _NATIVE_41.fullmatch(secret):
        return NATIVE_41
    return OTHER_HASH


def old_password_hash(password: str) -> str:
    """The pre-4.1 hash of `password` (MySQL 3.23's algorithm, OLD_PASSWORD()).

    Spaces and tabs are skipped, as the server does; bytes are UTF-8.

    >>> old_password_hash("secret")
    '428567f408994404'
    """
    nr, add, nr2 = 1345345333, 7, 0x12345671
    for byte in password.encode("utf-8"):
        if byte in (0x20, 0x09):
            continue
        nr ^= (((nr & 63) + add) * byte + (nr << 8)) & 0xFFFFFFFF
        nr2 = (nr2 + ((nr2 << 8) ^ nr)) & 0xFFFFFFFF
        add += byte
    return f"{nr & 0x7FFFFFFF:08x}{nr2 & 0x7FFFFFFF:08x}"


def native_password_hash(password: str) -> str:
    """The 4.1 hash of `password` (PASSWORD() with old_passwords=0).

    >>> native_password_hash("secret")
    '*14E65567ABDB5135D0CFD9A70B3032C179A49EE7'
    """
    inner = hashlib.sha1(password.encode("utf-8")).digest()
    return "*" + hashlib.sha1(inner).hexdigest().upper()


def hash_fingerprint(grantee: Grantee, secret: str) -> str:
    """A password hash as the suite keeps it: salted with the account, never the hash itself."""
    return hashlib.sha256(f"{grantee.id}\0{secret}".encode()).hexdigest()


@dataclass(frozen=True)
class AccountGrants:
    """One account's grants, normalised; password hashes only as salted fingerprints."""

    grantee: Grantee
    grants: tuple[str, ...]
    hash_fingerprints: tuple[str, ...]
    # The format of each hash (PRE_41, NATIVE_41, OTHER_HASH), in the same order.
    hash_formats: tuple[str, ...] = ()

    @property
    def pre_41(self) -> bool:
        """The account logs in with a pre-4.1 password hash."""
        return PRE_41 in self.hash_formats

    def to_json(self) -> dict[str, list[str]]:
        return {
            "grants": list(self.grants),
            "hashes": list(self.hash_fingerprints),
            "hash_formats": list(self.hash_formats),
        }

    @classmethod
    def from_json(cls, grantee: Grantee, data: Mapping[str, Any]) -> AccountGrants:
        formats = tuple(data.get("hash_formats", ()))  # absent in older baselines
        return cls(grantee, tuple(data["grants"]), tuple(data["hashes"]), formats)


def fits_password(account: AccountGrants, password: Secret) -> bool:
    """Every password hash of `account` is one of `password`'s (pre-4.1 or 4.1).

    >>> app = Grantee("app", "localhost")
    >>> old = AccountGrants(app, (), (hash_fingerprint(app, old_password_hash("pw")),))
    >>> fits_password(old, Secret("pw")), fits_password(old, Secret("other"))
    (True, False)
    """
    expected = {
        hash_fingerprint(account.grantee, old_password_hash(password.reveal())),
        hash_fingerprint(account.grantee, native_password_hash(password.reveal())),
    }
    return bool(account.hash_fingerprints) and set(account.hash_fingerprints) <= expected


@dataclass(frozen=True)
class GrantDiff:
    """How one account's grants differ between old and new (empty: they match)."""

    grantee: Grantee
    only_on: Side | None = None  # the account exists on one side only
    missing_on_new: tuple[str, ...] = ()
    extra_on_new: tuple[str, ...] = ()
    hash_differs: bool = False
    # Not a difference by itself: pre-4.1 on old, 4.1 on new (re-set from the password).
    # The fingerprints cannot say whether it is the same password (see fits_password).
    hash_upgraded: bool = False

    def __bool__(self) -> bool:
        return bool(self.only_on or self.missing_on_new or self.extra_on_new or self.hash_differs)

    def describe(self) -> str:
        name = self.grantee.sql
        if self.only_on is Side.OLD:
            return f"account {name} is missing on new (exists on old)"
        if self.only_on is Side.NEW:
            return f"account {name} exists only on new (not on old)"
        lines = [f"account {name}:"]
        lines += [f"  missing on new: {shown(g)}" for g in self.missing_on_new]
        lines += [f"  extra on new:   {shown(g)}" for g in self.extra_on_new]
        if self.hash_differs:
            lines.append("  password hash differs (logins with the old password fail on new)")
        return "\n".join(lines)


def diff_grants(old: AccountGrants | None, new: AccountGrants | None) -> GrantDiff:
    """Compare one account's grants: lines and password hashes.

    >>> app = Grantee("app", "localhost")
    >>> old = AccountGrants(app, (), ("f1",), (PRE_41,))
    >>> diff = diff_grants(old, AccountGrants(app, (), ("f2",), (NATIVE_41,)))
    >>> bool(diff), diff.hash_upgraded
    (False, True)
    """
    if old is None and new is None:
        raise ValueError("diff_grants needs at least one side")
    if new is None:
        assert old is not None
        return GrantDiff(old.grantee, only_on=Side.OLD)
    if old is None:
        return GrantDiff(new.grantee, only_on=Side.NEW)
    old_set, new_set = set(old.grants), set(new.grants)
    differs = old.hash_fingerprints != new.hash_fingerprints
    upgraded = differs and old.hash_formats == (PRE_41,) and new.hash_formats == (NATIVE_41,)
    return GrantDiff(
        old.grantee,
        missing_on_new=tuple(g for g in old.grants if g not in new_set),
        extra_on_new=tuple(g for g in new.grants if g not in old_set),
        hash_differs=differs and not upgraded,
        hash_upgraded=upgraded,
    )


# --- data ---------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    first_key: tuple[str, ...]
    last_key: tuple[str, ...]
    rows: int
    digest: bytes

    def key_range(self, primary_key: Sequence[str]) -> str:
        def show(key: Sequence[str]) -> str:
            return shown(key[0]) if len(key) == 1 else shown("(" + ", ".join(key) + ")")

        names = show(primary_key)
        return f"{names} {show(self.first_key)} .. {show(self.last_key)}"


@dataclass(frozen=True)
class TableScan:
    name: str
    columns: tuple[str, ...]  # primary-key columns first, then the others by name
    primary_key: tuple[str, ...]  # empty: the table has none
    rows: int
    chunks: tuple[Chunk, ...]  # empty without a primary key
    digest: str  # the whole table (without a primary key: order-independent)
    chunk_rows: int

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "digest": self.digest,
            "chunk_rows": self.chunk_rows,
            "primary_key": list(self.primary_key),
            "columns": list(self.columns),
            # The largest primary key (rows are read in its order): the rollback delta
            # counts the rows beyond it.
            "last_key": list(self.chunks[-1].last_key) if self.chunks else None,
        }


@dataclass(frozen=True)
class DatabaseScan:
    database: str
    where: str
    exists: bool
    tables: dict[str, TableScan] = field(default_factory=dict)

    @property
    def without_primary_key(self) -> list[str]:
        return sorted(t.name for t in self.tables.values() if not t.primary_key)


@dataclass(frozen=True)
class TableDifference:
    table: str
    problem: str

    def __str__(self) -> str:
        return f"{shown(self.table)}: {self.problem}"


def _compare_tables(old: TableScan, new: TableScan) -> str | None:
    if old.columns != new.columns:
        gone = sorted(set(old.columns) - set(new.columns))
        added = sorted(set(new.columns) - set(old.columns))
        detail = []
        if gone:
            detail.append(f"missing on new: {shown(', '.join(gone))}")
        if added:
            detail.append(f"extra on new: {shown(', '.join(added))}")
        if old.primary_key != new.primary_key:
            detail.append(
                f"primary key old ({shown(', '.join(old.primary_key)) or 'none'}) "
                f"new ({shown(', '.join(new.primary_key)) or 'none'})"
            )
        return f"columns differ ({'; '.join(detail) or 'order of the key columns'})"
    if old.digest == new.digest:
        return None
    counts = f"rows old {old.rows}, new {new.rows}"
    if not old.primary_key:
        return f"content differs ({counts}; no primary key: no range can be named)"
    for index, (a, b) in enumerate(zip(old.chunks, new.chunks, strict=False)):
        if a != b:
            where = f"old {a.key_range(old.primary_key)}"
            if (a.first_key, a.last_key) != (b.first_key, b.last_key):
                where += f", new {b.key_range(old.primary_key)}"
            return (
                f"content differs ({counts}); first differing chunk #{index + 1} "
                f"({old.chunk_rows} rows each): {where}"
            )
    longer = old if len(old.chunks) > len(new.chunks) else new
    extra = longer.chunks[min(len(old.chunks), len(new.chunks))]
    side = "old" if longer is old else "new"
    start = extra.key_range(old.primary_key)
    return f"content differs ({counts}); rows only on {side} from {start}"


def compare_database_scans(old: DatabaseScan, new: DatabaseScan) -> list[TableDifference]:
    """Every table that differs: missing, extra, columns, row counts, first differing chunk."""
    differences = []
    for name in sorted(set(old.tables) | set(new.tables)):
        if name not in new.tables:
            differences.append(TableDifference(name, "table missing on new"))
        elif name not in old.tables:
            differences.append(TableDifference(name, "table exists only on new"))
        else:
            problem = _compare_tables(old.tables[name], new.tables[name])
            if problem:
                differences.append(TableDifference(name, problem))
    return differences


def compare_with_recorded(
    recorded: Mapping[str, Mapping[str, Any]], new: DatabaseScan
) -> tuple[list[TableDifference], list[str]]:
    """New server against what preflight recorded of the old one.

    After the switch the new server takes writes, so only losses count:
    a recorded table missing, or holding fewer rows than the old one had.
    Returns (differences, notes); notes name tables whose content changed.
    """
    differences, notes = [], []
    for name in sorted(recorded):
        before = recorded[name]
        table = new.tables.get(name)
        if table is None:
            differences.append(
                TableDifference(name, "table missing on new (recorded in preflight)")
            )
        elif table.rows < int(before["rows"]):
            differences.append(
                TableDifference(
                    name,
                    f"fewer rows than the old server had in preflight: {before['rows']} -> "
                    f"{table.rows} (rows lost in the final sync, or deleted since)",
                )
            )
        elif table.digest != before["digest"] or table.chunk_rows != before["chunk_rows"]:
            notes.append(f"{shown(name)}: content changed since preflight ({table.rows} rows)")
    return differences, notes
