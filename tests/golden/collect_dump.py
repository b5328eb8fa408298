"""A pytest plugin for the golden files: what collection built, as JSON, with no network.

    CUTOVER_GOLDEN_DUMP=items.json pytest -p tests.golden.collect_dump --collect-only ...

At the end of collection it writes every collected item in order: its node
id, the pair it runs for (fleet) and its JUnit properties as the cutover
plugin set them (`item.user_properties`). Collection must not talk to any
server, so the plugin refuses every IPv4/IPv6 connection while collecting
(the dump then names what tried) and, in the code from before issue #16,
where MYSQL04 listed the MySQL accounts at collection, answers that listing
with no accounts: its per-account items are collapsed by tests/golden/capture.py
anyway.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DUMP_ENV = "CUTOVER_GOLDEN_DUMP"
PAIR_ARG = "cutover_pair"
_attempts: list[str] = []


def _refuse(family: int, address: object) -> None:
    if family in (socket.AF_INET, socket.AF_INET6):
        _attempts.append(repr(address))
        raise OSError(f"golden capture: no network at collection (tried {address!r})")


class _GuardedSocket(socket.socket):
    def connect(self, address: Any) -> None:
        _refuse(self.family, address)
        super().connect(address)

    def connect_ex(self, address: Any) -> int:
        _refuse(self.family, address)
        return super().connect_ex(address)

    def sendto(self, data: Any, *args: Any) -> int:
        _refuse(self.family, args[-1])
        return super().sendto(data, *args)


def _no_lookup(host: object, *args: Any, **kwargs: Any) -> Any:
    _attempts.append(f"getaddrinfo({host!r})")
    raise OSError(f"golden capture: no name lookups at collection ({host!r})")


def _no_accounts(*_args: object, **_kwargs: object) -> list[object]:
    return []


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Iterator[None]:
    original, lookup = socket.socket, socket.getaddrinfo
    socket.socket = _GuardedSocket  # type: ignore[misc]
    socket.getaddrinfo = _no_lookup
    try:
        import cutover.mysql as legacy  # before issue #16: MYSQL04 listed accounts here
    except ImportError:
        legacy = None
    listing = getattr(legacy, "list_grantees", None)
    if listing is not None:
        legacy.list_grantees = _no_accounts  # type: ignore[union-attr]
    try:
        return (yield)
    finally:
        socket.socket, socket.getaddrinfo = original, lookup  # type: ignore[misc]
        if listing is not None:
            legacy.list_grantees = listing  # type: ignore[union-attr]


def _pair(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(PAIR_ARG) if callspec is not None else None


def pytest_collection_finish(session: pytest.Session) -> None:
    target = os.environ.get(DUMP_ENV)
    if not target:
        return
    items = [
        {
            "nodeid": item.nodeid,
            "pair": _pair(item),
            "properties": [[str(k), str(v)] for k, v in item.user_properties],
        }
        for item in session.items
    ]
    dump = {"items": items, "network_attempts": list(_attempts)}
    Path(target).write_text(json.dumps(dump, indent=1), encoding="utf-8")
