"""TLS versions: which of those the old server accepted the new one refuses (TLS05).

>>> lost = dropped_versions(("TLSv1", "TLSv1.2"), ("TLSv1.2", "TLSv1.3"), ())
>>> lost.lost, lost.acknowledged
(('TLSv1',), ())
>>> dropped_versions(("TLSv1", "TLSv1.1"), ("TLSv1.2",), ("TLSv1",)).lost
('TLSv1.1',)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cutover.model.inventory import TLS_VERSION_NAMES

__all__ = ["DroppedVersions", "dropped_versions", "in_order"]


def in_order(versions: Iterable[str]) -> tuple[str, ...]:
    """Versions oldest first, each once.

    >>> in_order(["TLSv1.3", "TLSv1", "TLSv1.3"])
    ('TLSv1', 'TLSv1.3')
    """
    wanted = set(versions)
    return tuple(version for version in TLS_VERSION_NAMES if version in wanted)


@dataclass(frozen=True)
class DroppedVersions:
    lost: tuple[str, ...]  # accepted by old, refused by new, not acknowledged
    acknowledged: tuple[str, ...]  # accepted by old, refused by new, in tls.accept_dropped


def dropped_versions(
    old: Iterable[str], new: Iterable[str], acknowledged: Iterable[str]
) -> DroppedVersions:
    """The versions old accepted that new refuses, split by the inventory's acknowledgement."""
    refused = [version for version in in_order(old) if version not in set(new)]
    allowed = set(acknowledged)
    return DroppedVersions(
        lost=tuple(v for v in refused if v not in allowed),
        acknowledged=tuple(v for v in refused if v in allowed),
    )
