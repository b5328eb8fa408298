"""Crafted host snapshots: each is refused with one line, reads nothing outside, stays small.

A snapshot (`--host-snapshot`) is a tarball someone else may have made. Its
symlinks are resolved inside it (as under chroot), a chain longer than the
kernel's 40 hops or a `..` above the root is refused, and what it unpacks is
capped in member count and size (`cutover.probes.snapshot.SnapshotLimits`).
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from cutover.probes.hostfs import MAX_LINKS, LocalRoot, SnapshotError
from cutover.probes.snapshot import COMMANDS_FILE, SnapshotLimits, open_snapshot

# Far above what unpacking needs (a few MiB of tar buffers and names), far
# below the 1 GiB a bomb member used to cost.
MEMORY_BOUND = 64 * 1024 * 1024
SECRET = "operator-local-secret-6655"


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


def _link(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info, None


def _snapshot(path: Path, extra: list[tuple[tarfile.TarInfo, io.BytesIO | None]]) -> Path:
    commands = json.dumps([]).encode()
    with tarfile.open(path, "w:gz") as archive:
        for info, data in [_file(COMMANDS_FILE.lstrip("/"), commands), *extra]:
            archive.addfile(info, data)
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file on the operator's machine that no snapshot may read."""
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    return secret


def _refused(tarball: Path, into: Path, **limits: int) -> str:
    """open_snapshot's one-line refusal, with the peak memory it took to say it."""
    into.mkdir()
    tracemalloc.start()
    try:
        with pytest.raises(SnapshotError) as refused:
            open_snapshot(tarball, into, SnapshotLimits(**limits) if limits else None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(refused.value)
    assert "\n" not in message and SECRET not in message
    assert peak < MEMORY_BOUND, f"unpacking took {peak} bytes"
    return message


def _chain(hops: int, last: str) -> list[tuple[tarfile.TarInfo, None]]:
    links = [_link(f"l{i}", f"l{i + 1}") for i in range(hops)]
    return [*links, _link(f"l{hops}", last)]


def test_a_41_hop_chain_pointing_outside_is_refused(tmp_path: Path, outside: Path) -> None:
    climb = "../" * 20 + str(outside).lstrip("/")
    tarball = _snapshot(tmp_path / "chain.tar.gz", _chain(MAX_LINKS + 1, climb))
    message = _refused(tarball, tmp_path / "into")
    assert "unsafe symlink 'l0' -> 'l1'" in message
    assert f"more than {MAX_LINKS} symlinks" in message


def test_a_40_hop_chain_inside_is_read(tmp_path: Path) -> None:
    extra = [*_chain(MAX_LINKS - 1, "data"), _file("data", b"inside")]
    (tmp_path / "into").mkdir()
    root = open_snapshot(_snapshot(tmp_path / "ok.tar.gz", extra), tmp_path / "into")
    assert root.read_bytes("/l0") == b"inside"


def test_a_link_climbing_above_the_root_is_refused(tmp_path: Path, outside: Path) -> None:
    climb = "../" * 20 + str(outside).lstrip("/")
    tarball = _snapshot(tmp_path / "climb.tar.gz", [_link("etc/x", climb)])
    assert "leads outside the snapshot" in _refused(tarball, tmp_path / "into")


def test_an_absolute_link_resolves_inside_the_snapshot(tmp_path: Path, outside: Path) -> None:
    tarball = _snapshot(tmp_path / "abs.tar.gz", [_link("etc/vfio-bind", str(outside))])
    (tmp_path / "into").mkdir()
    root = open_snapshot(tarball, tmp_path / "into")
    assert root.resolve("/etc/vfio-bind") == str(outside)  # a path *inside* the snapshot
    assert root.read_bytes("/etc/vfio-bind") is None  # missing there: nothing read outside
    assert not root.exists("/etc/vfio-bind")


def test_an_unpacked_tree_refuses_a_long_chain_at_read_time(tmp_path: Path, outside: Path) -> None:
    (tmp_path / "tree").mkdir()
    for i in range(MAX_LINKS + 1):
        (tmp_path / "tree" / f"l{i}").symlink_to(f"l{i + 1}")
    (tmp_path / "tree" / f"l{MAX_LINKS + 1}").symlink_to(outside)
    with pytest.raises(SnapshotError, match=f"/l0 goes through more than {MAX_LINKS} symlinks"):
        LocalRoot(tmp_path / "tree").read_bytes("/l0")


def _bomb(path: Path, size: int) -> Path:
    """A gzip'd tarball whose one member unpacks to `size` zero bytes (about 1 MB per GiB)."""
    info = tarfile.TarInfo("sys/bomb")
    info.size = size
    mebibyte = gzip.compress(b"\0" * 1024 * 1024, compresslevel=9)
    with path.open("wb") as out:
        out.write(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT)))
        for _ in range(size // (1024 * 1024) + 1):  # data, then the end-of-archive blocks
            out.write(mebibyte)
    return path


def test_a_bomb_member_is_refused_without_unpacking(tmp_path: Path) -> None:
    tarball = _bomb(tmp_path / "bomb.tar.gz", 1024**3)
    assert tarball.stat().st_size < 2 * 1024 * 1024
    message = _refused(tarball, tmp_path / "into")
    assert "member 'sys/bomb' is 1073741824 bytes, more than 16777216" in message
    assert not (tmp_path / "into" / "sys" / "bomb").exists()


def test_the_total_size_is_capped_while_copying(tmp_path: Path) -> None:
    extra = [_file(f"f{i}", b"y" * 4096) for i in range(10)]
    tarball = _snapshot(tmp_path / "big.tar.gz", extra)
    message = _refused(tarball, tmp_path / "into", total_bytes=20_000)
    assert "takes the snapshot over 20000 bytes" in message


def _many(path: Path, count: int) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for i in range(count):
            archive.addfile(tarfile.TarInfo(f"m/{i}"), io.BytesIO(b""))
    return path


@pytest.mark.parametrize("limit", [None, 500])
def test_a_snapshot_of_100000_members_is_refused(tmp_path: Path, limit: int | None) -> None:
    tarball = _many(tmp_path / "many.tar.gz", 100_000)
    limits: dict[str, int] = {} if limit is None else {"members": limit}
    message = _refused(tarball, tmp_path / "into", **limits)
    assert f"more than {limit or SnapshotLimits().members} members" in message
    assert len(list((tmp_path / "into" / "m").iterdir())) <= (limit or SnapshotLimits().members)
