"""Host snapshots: the tarball `python -m cutover capture-host` writes, opened as a `LocalRoot`.

A snapshot is hostile input until proven otherwise: it is unpacked member by
member within `SnapshotLimits`, never through a symlink and never outside its
directory, and every symlink in it must resolve inside it.

>>> root = open_snapshot(Path("kvm1.tar.gz"), Path(empty_dir))  # doctest: +SKIP
>>> root.description                                              # doctest: +SKIP
'snapshot kvm1.tar.gz'
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cutover.probes.connect import one_line
from cutover.probes.hostfs import MAX_LINKS, CommandResult, LocalRoot, SnapshotError
from cutover.untrusted import shown

__all__ = [
    "COMMANDS_FILE",
    "SnapshotLimits",
    "dump_commands",
    "load_commands",
    "open_snapshot",
    "snapshot_problem",
]

# Inside a snapshot: the output of the commands the capture ran (virsh ...).
COMMANDS_FILE = "/.cutover/commands.json"
# Bounds on what one snapshot may unpack. A capture-host snapshot holds a few
# thousand small sysfs and libvirt files; a hostile one could hold a member
# that unpacks to gigabytes (a 1 MB tarball of zeros) or millions of members.
MAX_MEMBERS = 20_000
MAX_MEMBER_BYTES = 16 * 1024 * 1024
MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024
# Members are copied in pieces of this size, never read whole.
COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SnapshotLimits:
    """How much one snapshot may unpack (`open_snapshot(..., limits=SnapshotLimits(...))`)."""

    members: int = MAX_MEMBERS
    member_bytes: int = MAX_MEMBER_BYTES
    total_bytes: int = MAX_SNAPSHOT_BYTES


def snapshot_problem(tarball: Path) -> str | None:
    """Why `tarball` cannot be a host snapshot (one line), or None when it opens as a tarball.

    Only the first member is read: a quick look before a run, not the unpacking.

    >>> snapshot_problem(Path("/nonexistent/host.tar.gz"))
    'no such file'
    """
    if not tarball.exists():
        return "no such file"
    if not tarball.is_file():
        return "not a file"
    try:
        with tarfile.open(tarball, "r:*") as archive:
            archive.next()
    except tarfile.ReadError:
        return "not a tarball (plain, gzip, bzip2 or xz) from `python -m cutover capture-host`"
    except (OSError, tarfile.TarError) as exc:
        return one_line(exc)
    return None


def open_snapshot(tarball: Path, into: Path, limits: SnapshotLimits | None = None) -> LocalRoot:
    """Unpack a capture-host tarball into the empty directory `into` and open it.

    Unpacking is done member by member: only files, directories and symlinks,
    no member outside `into`, and nothing is ever written through a symlink
    (sysfs links point everywhere, and a hostile tarball could aim one at /etc).
    At most `limits.members` members, each at most `limits.member_bytes` and
    all together at most `limits.total_bytes`, copied in bounded pieces. Every
    symlink must resolve inside the snapshot within `MAX_LINKS` hops.
    """
    limits = limits or SnapshotLimits()
    budget = _Budget(limits)
    links: list[str] = []
    try:
        with tarfile.open(tarball, "r:*") as archive:
            for member in archive:
                budget.count(member)
                _unpack_member(archive, member, into, budget)
                if member.issym():
                    links.append(member.name)
    except (OSError, tarfile.TarError) as exc:
        raise SnapshotError(f"{tarball}: cannot unpack host snapshot: {one_line(exc)}") from None
    except SnapshotError as exc:
        raise SnapshotError(f"{tarball}: {exc}") from None
    commands_path = into / COMMANDS_FILE.lstrip("/")
    if not commands_path.is_file() or commands_path.is_symlink():
        raise SnapshotError(
            f"{tarball}: not a host snapshot (no {COMMANDS_FILE}; "
            "make one with `python -m cutover capture-host`)"
        )
    root = LocalRoot(into, description=f"snapshot {tarball.name}")
    for name in links:
        try:
            root.resolve("/" + name)
        except SnapshotError:
            raise SnapshotError(
                f"{tarball}: unsafe symlink {shown(name)!r} -> "
                f"{shown(os.readlink(into / name))!r}: it goes through more than {MAX_LINKS} "
                "symlinks or leads outside the snapshot"
            ) from None
    root.commands = load_commands(commands_path.read_text(encoding="utf-8"))
    return root


class _Budget:
    """What a snapshot has unpacked so far, against its limits."""

    def __init__(self, limits: SnapshotLimits) -> None:
        self.limits = limits
        self.members = 0
        self.total = 0

    def count(self, member: tarfile.TarInfo) -> None:
        self.members += 1
        if self.members > self.limits.members:
            raise SnapshotError(
                f"more than {self.limits.members} members (limit: SnapshotLimits.members)"
            )
        if member.isfile() and member.size > self.limits.member_bytes:
            raise SnapshotError(
                f"member {shown(member.name)!r} is {member.size} bytes, more than "
                f"{self.limits.member_bytes} (limit: SnapshotLimits.member_bytes)"
            )

    def take(self, member: tarfile.TarInfo, size: int) -> None:
        self.total += size
        if self.total > self.limits.total_bytes:
            raise SnapshotError(
                f"member {shown(member.name)!r} takes the snapshot over "
                f"{self.limits.total_bytes} bytes (limit: SnapshotLimits.total_bytes)"
            )


def _unpack_member(
    archive: tarfile.TarFile, member: tarfile.TarInfo, into: Path, budget: _Budget
) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise SnapshotError(f"unsafe member name {shown(member.name)!r}")
    parts = [p for p in name.parts if p not in ("", ".")]
    if not parts:
        return
    parent = into
    for part in parts[:-1]:
        parent = parent / part
        if parent.is_symlink():
            raise SnapshotError(f"member {shown(member.name)!r} would be written through a symlink")
        parent.mkdir(exist_ok=True)
    target = parent / parts[-1]
    if target.is_symlink() or (target.exists() and not member.isdir()):
        raise SnapshotError(f"member {shown(member.name)!r} appears twice")
    if member.isdir():
        target.mkdir(exist_ok=True)
    elif member.issym():
        os.symlink(member.linkname, target)
    elif member.isfile():
        source = archive.extractfile(member)
        if source is None:
            raise SnapshotError(f"member {shown(member.name)!r} has no data")
        with open(target, "xb") as out:
            while piece := source.read(COPY_CHUNK):
                budget.take(member, len(piece))
                out.write(piece)
    else:
        raise SnapshotError(f"member {shown(member.name)!r} is neither file, directory nor symlink")


def load_commands(text: str) -> dict[tuple[str, ...], CommandResult]:
    """Captured command results, keyed by argv (the format `dump_commands` writes)."""
    table: dict[tuple[str, ...], CommandResult] = {}
    for entry in json.loads(text):
        argv = tuple(str(a) for a in entry["argv"])
        table[argv] = CommandResult(argv, int(entry["rc"]), entry["stdout"], entry["stderr"])
    return table


def dump_commands(results: Sequence[CommandResult]) -> str:
    entries = [
        {"argv": list(r.argv), "rc": r.rc, "stdout": r.stdout, "stderr": r.stderr} for r in results
    ]
    return json.dumps(entries, indent=2) + "\n"
