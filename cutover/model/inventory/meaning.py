"""What the shape cannot say: nothing listed twice, cross-references that hold.

Checked on the raw data, so these problems are reported beside shape problems elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any

from cutover.model.inventory.base import Loc, field_path

# --- meaning: what the shape cannot say ------------------------------------------


def _items(data: object, *path: str) -> list[Any]:
    """The list at `path` in the raw data, or [] if missing or mis-shaped (pydantic says so)."""
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, list) else []


def _listed_twice(
    items: list[Any], key: Callable[[Any], Hashable | None], at: Loc, what: Callable[[Any], str]
) -> Iterator[tuple[Loc, str]]:
    """The second (third...) item of `items` with the same key, located at that item."""
    first: dict[Hashable, int] = {}
    for index, item in enumerate(items):
        value = key(item)
        if value is None:
            continue
        if value in first:
            yield (
                (*at, index),
                f"{what(item)} is listed twice (first as {field_path((*at, first[value]))})",
            )
        else:
            first[value] = index


def _text(item: Any, field: str, default: str | None = None) -> str | None:
    value = item.get(field, default) if isinstance(item, dict) else None
    return value if isinstance(value, str) else None


def _account_key(item: Any) -> tuple[str, str] | None:
    user, host = _text(item, "user"), _text(item, "host", "localhost")
    return None if user is None or host is None else (user, host.casefold())


def meaning_problems(data: dict[str, Any]) -> Iterator[tuple[Loc, str]]:
    """Every rule the shape cannot say, checked on the raw data: (field location, problem).

    Each is something the run would get wrong, not only fail on: a duplicate
    account becomes two test ids for one account, a via_socket account
    without old.ssh has no host to test its tunnel from. Read from the raw
    data, so they are reported even beside shape problems elsewhere.

    >>> [what for _, what in meaning_problems({"mysql": {"databases": ["app", "app"]}})]
    ["database 'app' is listed twice (first as mysql.databases[0])"]
    """
    yield from _listed_twice(
        _items(data, "services"),
        lambda s: _text(s, "name"),
        ("services",),
        lambda s: f"service name {s['name']!r}",
    )
    yield from _listed_twice(
        _items(data, "mail", "accounts"),
        lambda a: (_text(a, "user") or "").casefold() or None,
        ("mail", "accounts"),
        lambda a: f"mail account {a['user']!r}",
    )
    yield from _listed_twice(
        _items(data, "mysql", "accounts"),
        _account_key,
        ("mysql", "accounts"),
        lambda a: f"MySQL account '{a['user']}'@'{a.get('host', 'localhost')}'",
    )
    yield from _listed_twice(
        _items(data, "mysql", "databases"),
        lambda d: d if isinstance(d, str) else None,
        ("mysql", "databases"),
        lambda d: f"database {d!r}",
    )
    yield from _listed_twice(
        _items(data, "dns", "zones"),
        lambda z: (_text(z, "name") or "").rstrip(".").casefold() or None,
        ("dns", "zones"),
        lambda z: f"zone {z['name']!r}",
    )
    old = data.get("old")
    if isinstance(old, dict) and not old.get("ssh"):
        for index, account in enumerate(_items(data, "mysql", "accounts")):
            if isinstance(account, dict) and account.get("via_socket") is True:
                yield (
                    ("old", "ssh"),
                    f"missing, but mysql.accounts[{index}] ('{account.get('user')}'@"
                    f"'{account.get('host', 'localhost')}') has via_socket: true and its tunnel "
                    "is tested from the old host (e.g. ssh: ssh://root@old.example.net)",
                )
                break
