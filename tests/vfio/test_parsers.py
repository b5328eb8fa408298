"""Pure logic of the VFIO/VM probes: cmdline, cpusets, virsh output, sysfs reading."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from cutover.cli.capture import walk
from cutover.probes.hostfs import LocalRoot, SnapshotError
from cutover.probes.snapshot import open_snapshot
from cutover.probes.virt.vfio import (
    KernelCmdline,
    iommu_status,
    read_pci_functions,
    read_vfio_bind_list,
)
from cutover.probes.virt.vm import (
    parse_cpuset,
    parse_domain_xml,
    parse_vcpupin_output,
    read_cpu_siblings,
    virtual_core_of,
)
from tests.vfio.support import generate


@pytest.mark.parametrize(
    ("cmdline", "vendor", "disabled", "enabled"),
    [
        ("quiet intel_iommu=on", "intel", None, "intel_iommu=on"),
        ("intel_iommu=on quiet intel_iommu=off", "intel", "intel_iommu=off", None),
        ("intel_iommu=off intel_iommu=on", "intel", None, "intel_iommu=on"),
        ("intel_iommu=on,sm_on", "intel", None, "intel_iommu=on,sm_on"),
        ("intel_iommu=igfx_off", "intel", None, None),
        ("iommu=pt iommu=1", "amd", None, "iommu=1"),
        ("quiet", "amd", None, None),
        ("amd_iommu=off", "amd", "amd_iommu=off", None),
        ("intel_iommu=off", "amd", None, None),  # an Intel flag means nothing on AMD
        ("iommu=off", "intel", "iommu=off", None),
        ("ro -- intel_iommu=off", "intel", None, None),  # after `--`: init's arguments
    ],
)
def test_iommu_flags_last_wins(
    cmdline: str, vendor: str, disabled: str | None, enabled: str | None, tmp_path: Path
) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cmdline").write_text(cmdline + "\n")
    status = iommu_status(LocalRoot(tmp_path), vendor)
    assert (status.disabled_by, status.enabled_by) == (disabled, enabled)
    assert not status.has_groups


def test_amd_advice_never_asks_for_an_amd_iommu_flag(tmp_path: Path) -> None:
    status = iommu_status(LocalRoot(tmp_path), "amd")
    assert "amd_iommu=" not in status.flag_to_add
    assert "firmware" in status.flag_to_add


def test_pci_stub_ids_dash_or_underscore_last_wins() -> None:
    cmdline = KernelCmdline.parse('pci-stub.ids=1002:6810 x="a b" pci_stub.ids=1002:AAB0,8086:1533')
    assert cmdline.pci_stub_ids() == ["1002:aab0", "8086:1533"]
    assert cmdline.last("x") == "a b"
    assert KernelCmdline.parse("quiet").pci_stub_ids() is None


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("1", {1}), ("0-3,^2,6", {0, 1, 3, 6}), ("0,4", {0, 4}), (" 5 ", {5}), ("2-2", {2})],
)
def test_parse_cpuset(text: str, cpus: set[int]) -> None:
    assert parse_cpuset(text) == frozenset(cpus)


@pytest.mark.parametrize("text", ["a", "3-1", "1-", "^"])
def test_parse_cpuset_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="cpuset"):
        parse_cpuset(text)


def test_parse_vcpupin_output() -> None:
    text = " VCPU   CPU Affinity\n----------------------\n 0      1\n 1      0-7\n\n"
    assert parse_vcpupin_output(text) == {0: frozenset({1}), 1: frozenset(range(8))}


def test_virtual_cores_number_threads_innermost() -> None:
    assert [virtual_core_of(v, cores=3, threads=2) for v in range(6)] == [
        (0, 0),
        (0, 0),
        (0, 1),
        (0, 1),
        (0, 2),
        (0, 2),
    ]


def test_domain_xml_hostdev_addresses_and_features() -> None:
    config = parse_domain_xml(
        "<domain type='kvm'><name>g</name><vcpu>2</vcpu>"
        "<cputune><vcpupin vcpu='0' cpuset='1'/><vcpupin vcpu='1' cpuset='5'/>"
        "<emulatorpin cpuset='0,4'/></cputune>"
        "<features><kvm><hidden state='on'/></kvm></features>"
        "<cpu><topology sockets='1' dies='1' cores='1' threads='2'/></cpu>"
        "<devices><hostdev mode='subsystem' type='pci' managed='yes'><source>"
        "<address domain='0x0000' bus='0x01' slot='0x00' function='0x1'/></source></hostdev>"
        "</devices></domain>"
    )
    assert config.vcpupins == {0: frozenset({1}), 1: frozenset({5})}
    assert config.emulatorpin == frozenset({0, 4})
    assert config.kvm_hidden and config.topology is not None and config.topology.vcpus == 2
    hostdev = config.pci_hostdev("0000:01:00.1")
    assert hostdev is not None and hostdev.managed


def test_vfio_bind_list_full_and_short_addresses(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/vfio-bind").write_text(
        '# 0000:09:00.0 is commented out\nDEVICES="0000:01:00.0 01:00.1"\n'
    )
    bind = read_vfio_bind_list(LocalRoot(tmp_path), "/etc/vfio-bind")
    assert bind.addresses == {"0000:01:00.0"}
    assert bind.short_addresses == {"01:00.1"}
    assert not read_vfio_bind_list(LocalRoot(tmp_path), "/etc/none").exists


def test_generated_tree_reads_like_sysfs(tmp_path: Path) -> None:
    built = generate.build("healthy", tmp_path / "host")
    host = LocalRoot(built.root)
    functions = read_pci_functions(host)
    audio = functions["0000:01:00.1"]
    assert (audio.vendor_device, audio.driver, audio.iommu_group) == ("1002:aab0", "vfio-pci", "1")
    assert functions["0000:00:1c.3"].is_bridge
    # The kernel's layout: relative links, bus/pci/devices pointing into devices/.
    link = built.root / "sys/bus/pci/devices/0000:01:00.1"
    assert os.readlink(link) == "../../../devices/pci0000:00/0000:00:01.0/0000:01:00.1"
    assert read_cpu_siblings(host)[1] == frozenset({1, 5})
    # An absolute link resolves inside the root, not on this machine.
    assert host.exists("/etc/libvirt/qemu/autostart/gaming.xml")
    assert host.resolve("/etc/libvirt/qemu/autostart/gaming.xml") == "/etc/libvirt/qemu/gaming.xml"


def test_walk_does_not_follow_sysfs_cycles(tmp_path: Path) -> None:
    built = generate.build("healthy", tmp_path / "host")
    # subsystem -> bus/pci -> devices/* -> ... is a cycle; walking must end.
    entries = list(walk(LocalRoot(built.root), "/sys"))
    links = [p for p, kind in entries if kind == "link"]
    assert "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/subsystem" in links
    assert len(entries) < 2000


def _tarball(path: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for member in members:
            archive.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    "members",
    [
        [_member("../escape")],
        [_member("/etc/passwd")],
        [_member("sys", tarfile.SYMTYPE, "/etc"), _member("sys/passwd")],
        [_member("dev/sda", tarfile.BLKTYPE)],
    ],
    ids=["dotdot", "absolute", "through-symlink", "block-device"],
)
def test_snapshot_unpacking_refuses_unsafe_members(
    members: list[tarfile.TarInfo], tmp_path: Path
) -> None:
    tarball = _tarball(tmp_path / "bad.tar.gz", members)
    (tmp_path / "into").mkdir()
    with pytest.raises(SnapshotError):
        open_snapshot(tarball, tmp_path / "into")
    assert not (tmp_path / "escape").exists()
