"""Observations of the host area (VFIO, VM): which host to look at, and what it shows.

The host is, in this order: the `--host-snapshot FILE` tarball (unpacked to a
temporary directory), the inventory's `virt_host.ssh` testinfra spec (every
command bounded by `timeouts.operation`), or, when that says `local://`, this
machine's own `/`. Every path the checks judge is read here, through that one
`Host`. This module has no plain `assert` to rewrite: PYTEST_DONT_REWRITE.
Semantics: docs/semantics.md "VFIO host" and "VM pinning".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from checks.support import NoTargets, parametrize
from checks.targets.host import DeviceTarget, device_targets
from cutover.model.inventory import Inventory, VirtHost
from cutover.model.settings import settings_for
from cutover.probes.hostfs import Host, LocalRoot, SnapshotError, TestinfraHost
from cutover.probes.snapshot import open_snapshot
from cutover.probes.virt.vfio import (
    IommuStatus,
    PciFunction,
    VfioBindList,
    iommu_group_members,
    iommu_status,
    read_cpu_vendor,
    read_pci_functions,
    read_vfio_bind_list,
)
from cutover.probes.virt.vm import (
    DomainConfig,
    DomainObservation,
    ShellSetting,
    libvirt_guests_on_shutdown,
    observe_domain,
    read_cpu_siblings,
)

NO_VIRT_HOST = "inventory has no virt_host"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Checks taking `device` run once per inventory device: `[gpu-0000:01:00.0]`."""
    if "device" in metafunc.fixturenames:
        parametrize(metafunc, "device", _device_targets)


def _device_targets(inventory: Inventory) -> list[DeviceTarget] | NoTargets:
    if inventory.virt_host is None:
        return NoTargets(NO_VIRT_HOST, id="no-virt-host")
    return device_targets(inventory.virt_host.devices)


@pytest.fixture(scope="session")
def virt_host(inventory: Inventory) -> VirtHost:
    """The inventory's virtualization host (the checks skip without one)."""
    if inventory.virt_host is None:
        pytest.skip(NO_VIRT_HOST)
    return inventory.virt_host


@pytest.fixture(scope="session")
def kvm_host(
    virt_host: VirtHost,
    inventory: Inventory,
    host_snapshot: Path | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Host:
    """Where every path is read: the snapshot, the ssh host, or this machine's `/`."""
    if host_snapshot is not None:
        try:
            return open_snapshot(host_snapshot, tmp_path_factory.mktemp("host-snapshot"))
        except SnapshotError as exc:
            pytest.fail(str(exc), pytrace=False)
    if virt_host.ssh and virt_host.ssh != "local://":
        return TestinfraHost.from_spec(virt_host.ssh, settings_for(inventory))
    return LocalRoot(Path("/"))


@pytest.fixture(scope="session")
def cpu_vendor(virt_host: VirtHost, kvm_host: Host) -> str | None:
    return virt_host.cpu_vendor or read_cpu_vendor(kvm_host)


@pytest.fixture(scope="session")
def iommu(kvm_host: Host, cpu_vendor: str | None) -> IommuStatus:
    return iommu_status(kvm_host, cpu_vendor)


@pytest.fixture(scope="session")
def pci_functions(kvm_host: Host) -> dict[str, PciFunction]:
    return read_pci_functions(kvm_host)


@pytest.fixture(scope="session")
def passed_through(virt_host: VirtHost, pci_functions: dict[str, PciFunction]) -> frozenset[str]:
    """Addresses of every function the inventory passes through."""
    return frozenset(
        function.address
        for target in device_targets(virt_host.devices)
        for function in target.resolve(pci_functions)
    )


@pytest.fixture
def device_functions(
    device: DeviceTarget, pci_functions: dict[str, PciFunction]
) -> list[PciFunction]:
    """The host's functions this inventory device names; skips when there are none."""
    found = device.resolve(pci_functions)
    if not found:
        pytest.skip(f"{device.id} is not on this host (VFIO05 says so)")
    return found


@pytest.fixture(scope="session")
def vm_domain(
    virt_host: VirtHost, kvm_host: Host, inventory: Inventory
) -> DomainObservation | None:
    """The inventory's VM as virsh shows it, or None when the inventory names no VM."""
    if virt_host.vm is None:
        return None
    timeout = settings_for(inventory).operation_timeout
    return observe_domain(kvm_host, virt_host.libvirt_uri, virt_host.vm, timeout)


@pytest.fixture(scope="session")
def vm(vm_domain: DomainObservation | None) -> DomainObservation:
    if vm_domain is None:
        pytest.skip("inventory names no virt_host.vm")
    return vm_domain


@pytest.fixture(scope="session")
def vm_config(vm: DomainObservation, kvm_host: Host) -> DomainConfig:
    """The VM's domain XML; an error (not a failure) when virsh cannot give it."""
    if vm.config is None:
        pytest.fail(
            f"cannot read VM {vm.name!r} from {vm.uri} on {kvm_host.description}: {vm.error}",
            pytrace=False,
        )
    return vm.config


@pytest.fixture(scope="session")
def cpu_siblings(kvm_host: Host) -> dict[int, frozenset[int]]:
    return read_cpu_siblings(kvm_host)


@pytest.fixture(scope="session")
def kvm_present(kvm_host: Host) -> bool:
    """/dev/kvm exists on the host."""
    return kvm_host.exists("/dev/kvm")


@pytest.fixture(scope="session")
def vfio_bind_list(virt_host: VirtHost, kvm_host: Host) -> VfioBindList:
    """The addresses the host's vfio-bind file (virt_host.vfio_bind_file) binds at boot."""
    return read_vfio_bind_list(kvm_host, virt_host.vfio_bind_file)


@pytest.fixture(scope="session")
def iommu_groups(
    kvm_host: Host, pci_functions: dict[str, PciFunction], passed_through: frozenset[str]
) -> dict[str, list[str]]:
    """IOMMU group -> its member addresses, for every group of a passed-through function."""
    groups = {
        str(pci_functions[a].iommu_group)
        for a in passed_through
        if a in pci_functions and pci_functions[a].iommu_group is not None
    }
    return {group: iommu_group_members(kvm_host, group) for group in sorted(groups)}


@pytest.fixture(scope="session")
def vfio_group_nodes(kvm_host: Host, iommu_groups: dict[str, list[str]]) -> frozenset[str]:
    """The groups of `iommu_groups` that have their /dev/vfio/<group> node."""
    return frozenset(g for g in iommu_groups if kvm_host.exists(f"/dev/vfio/{g}"))


@pytest.fixture(scope="session")
def libvirt_guests(kvm_host: Host) -> list[ShellSetting]:
    """`ON_SHUTDOWN` in each libvirt-guests config file on the host."""
    return libvirt_guests_on_shutdown(kvm_host)
