"""The VFIO passthrough host: IOMMU on, devices held by vfio-pci, IOMMU groups viable.

What the host shows is read by checks/observe/host.py; these checks only judge it.
Semantics: docs/semantics.md "VFIO host" (kernel vfio.rst, sysfs ABI).
"""

from __future__ import annotations

from collections.abc import Callable

from checks.declare import check
from checks.support import no_problems, skip_unless
from checks.targets.host import DeviceTarget
from cutover.probes.hostfs import Host
from cutover.probes.virt.vfio import (
    VFIO_DRIVERS,
    IommuStatus,
    KernelCmdline,
    PciFunction,
    VfioBindList,
)
from cutover.probes.virt.vm import DomainObservation
from cutover.untrusted import property_name, shown


@check("VFIO01", phases=("preflight", "cutover", "acceptance"))
def test_iommu_enabled(iommu: IommuStatus, kvm_host: Host) -> None:
    """VFIO01: the IOMMU is on: the kernel shows IOMMU groups and the cmdline does not disable it.

    Why: without an IOMMU, VFIO cannot fence a device's DMA and nothing can be passed through.
    Inputs: /sys/kernel/iommu_groups, /proc/cmdline (intel_iommu=, amd_iommu=, iommu=; the last
    flag wins), the CPU vendor (virt_host.cpu_vendor or /proc/cpuinfo).
    Fix: Intel: intel_iommu=on in GRUB_CMDLINE_LINUX and VT-d in the firmware; AMD: AMD-Vi in
    the firmware (on by default; no amd_iommu= flag needed); drop any ...=off; reboot.
    """
    problems = []
    if iommu.disabled_by:
        problems.append(f"the cmdline disables it: {iommu.disabled_by} (the last flag wins)")
    if not iommu.has_groups:
        problems.append(f"/sys/kernel/iommu_groups is empty: {iommu.flag_to_add}")
    cmdline = iommu.cmdline.text or "(empty)"
    no_problems(problems, f"IOMMU is off on {kvm_host.description} (cmdline: {cmdline})")


@check("VFIO02", phases=("preflight", "cutover", "acceptance"))
def test_kvm_device_present(kvm_host: Host, kvm_present: bool) -> None:
    """VFIO02: /dev/kvm exists, so QEMU can use hardware virtualization.

    Why: without /dev/kvm the VM falls back to emulation (or libvirt refuses type='kvm').
    Inputs: /dev/kvm on the host.
    Fix: enable VT-x/AMD-V in the firmware and load kvm_intel or kvm_amd.
    """
    no_problems(
        [] if kvm_present else ["/dev/kvm is missing"],
        f"no KVM on {kvm_host.description}: enable VT-x/AMD-V, modprobe kvm_intel/kvm_amd",
    )


@check("VFIO03", phases=("preflight", "cutover", "acceptance"))
def test_pci_stub_lists_device(
    device: DeviceTarget, pci_functions: dict[str, PciFunction], iommu: IommuStatus
) -> None:
    """VFIO03: the cmdline's pci-stub.ids= (or vfio-pci.ids=) lists the device's vendor:device.

    Why: a host driver that claims the device at boot (radeon, snd_hda_intel, igb) keeps it.
    Inputs: virt_host.devices, /proc/cmdline (the last pci-stub.ids= wins), the device's
    vendor and device files.
    Fix: add the ID (lspci -nn) to pci-stub.ids= in GRUB_CMDLINE_LINUX, comma-separated.
    """
    wanted = {device.device.id} if device.device.id else set()
    wanted |= {f.vendor_device for f in device.resolve(pci_functions)}
    skip_unless(bool(wanted), f"{device.id}: no vendor:device known (not on this host: VFIO05)")
    listed = _stub_ids(iommu.cmdline)
    missing = sorted(wanted - set(listed))
    no_problems(
        [
            f"{device.id}: {vd} is not in pci-stub.ids={','.join(listed) or '(absent)'}"
            for vd in missing
        ],
        f"{device.id} is not reserved for passthrough at boot; "
        f"add pci-stub.ids={','.join(sorted(set(listed) | wanted))}",
    )


def _stub_ids(cmdline: KernelCmdline) -> list[str]:
    return (cmdline.pci_stub_ids() or []) + [
        i.strip().lower() for i in (cmdline.last("vfio-pci.ids") or "").split(",") if i.strip()
    ]


@check("VFIO04", phases=("preflight", "cutover", "acceptance"))
def test_vfio_bind_list_names_device(
    device: DeviceTarget,
    pci_functions: dict[str, PciFunction],
    vfio_bind_list: VfioBindList,
    kvm_host: Host,
) -> None:
    """VFIO04: the vfio-bind list names the device by its full address (0000:01:00.0).

    Why: the boot script binds exactly the addresses listed; a missing or short one stays put.
    Inputs: virt_host.vfio_bind_file (default /etc/sysconfig/vfio-bind), virt_host.devices.
    Fix: list the full addresses, space separated, as in ls /sys/bus/pci/devices.
    """
    addresses = {f.address for f in device.resolve(pci_functions)}
    if device.device.address:
        addresses.add(device.device.address)
    skip_unless(bool(addresses), f"{device.id}: no address known (not on this host: VFIO05)")
    bind_list = vfio_bind_list
    problems = []
    for address in sorted(addresses - bind_list.addresses):
        short = address.split(":", 1)[1]
        if not bind_list.exists:
            problems.append(f"{device.id}: {bind_list.path} does not exist")
        elif short in bind_list.short_addresses:
            problems.append(
                f"{device.id}: {bind_list.path} has {short} without the domain: write {address}"
            )
        else:
            problems.append(f"{device.id}: {address} is not in {bind_list.path}")
    no_problems(problems, f"the vfio-bind list on {kvm_host.description} misses {device.id}")


@check("VFIO05", phases=("preflight", "cutover", "acceptance"))
def test_device_bound_to_vfio(
    device: DeviceTarget,
    pci_functions: dict[str, PciFunction],
    vm_domain: DomainObservation | None,
    kvm_host: Host,
    record: Callable[..., None],
) -> None:
    """VFIO05: every passed-through device is bound to vfio-pci (or pci-stub before VM start).

    Why: a device still on its host driver freezes the host when the VM starts.
    Inputs: virt_host.devices, /sys/bus/pci/devices/*/driver, and for pci-stub the VM's state
    and its hostdev's managed='yes' (libvirt rebinds such a device to vfio-pci at start).
    Fix: add the device to /etc/sysconfig/vfio-bind (or pci-stub.ids=) and rebind.
    """
    found = device.resolve(pci_functions)
    record(
        observed_driver=" ".join(f"{f.address}={f.driver or '-'}" for f in found),
        iommu_group=" ".join(f"{f.address}={f.iommu_group or '-'}" for f in found),
    )
    no_problems(
        [] if found else [f"no PCI function {device.device.address or device.device.id}"],
        f"{device.id} is not on {kvm_host.description} (lspci -nn -D lists what is)",
    )
    no_problems(
        [p for p in (_binding_problem(f, vm_domain) for f in found) if p],
        f"{device.id} is not held for passthrough",
    )


def _binding_problem(function: PciFunction, domain: DomainObservation | None) -> str | None:
    where = f"{function.describe} (IOMMU group {function.iommu_group or 'none'})"
    if function.driver == "vfio-pci":
        return None
    if function.driver != "pci-stub":
        return (
            f"{where}: expected vfio-pci; unbind it from {function.driver or 'nothing'} "
            "and bind vfio-pci (vfio-bind)"
        )
    if domain is None or domain.config is None:
        return f"{where}: pci-stub is only fine with a VM whose managed hostdev rebinds it"
    if domain.running:
        return f"{where}: VM {domain.name!r} is {domain.state}, so it must be on vfio-pci"
    hostdev = domain.config.pci_hostdev(function.address)
    if hostdev is None or not hostdev.managed:
        return f"{where}: VM {domain.name!r} has no managed='yes' hostdev to rebind it"
    return None


@check("VFIO06", phases=("preflight", "cutover", "acceptance"))
def test_iommu_group_viable(
    device_functions: list[PciFunction],
    pci_functions: dict[str, PciFunction],
    passed_through: frozenset[str],
    iommu_groups: dict[str, list[str]],
    device: DeviceTarget,
    record: Callable[..., None],
) -> None:
    """VFIO06: the device's IOMMU group is viable: its other members are bridges or unclaimed.

    Why: VFIO gives a VM whole groups; one member on a host driver makes the group unusable.
    Inputs: /sys/kernel/iommu_groups/N/devices, each member's driver and class; members the
    inventory passes through are VFIO05's.
    Fix: bind every endpoint of the group to vfio-pci (pass it too), or move the card to a
    slot with its own group (ACS).
    """
    problems = []
    for function in device_functions:
        skip_unless(
            function.iommu_group is not None, f"{function.address}: no IOMMU group (VFIO01)"
        )
        group = str(function.iommu_group)
        members = iommu_groups[group]
        record(**{property_name(f"group_{group}_members"): shown(" ".join(members))})
        for member in members:
            other = pci_functions.get(member)
            if other is None or member in passed_through or other.is_bridge:
                continue
            if other.driver is not None and other.driver not in VFIO_DRIVERS:
                problems.append(
                    f"group {group} of {device.id} {function.address} also holds "
                    f"{other.describe}, which the host still uses"
                )
    no_problems(problems, f"IOMMU group of {device.id} is not viable")


@check("VFIO07", phases=("preflight", "cutover", "acceptance"))
def test_vfio_group_node_present(
    device_functions: list[PciFunction],
    pci_functions: dict[str, PciFunction],
    iommu_groups: dict[str, list[str]],
    vfio_group_nodes: frozenset[str],
    device: DeviceTarget,
    kvm_host: Host,
) -> None:
    """VFIO07: /dev/vfio/<group> exists for the device's group once vfio-pci holds the group.

    Why: QEMU opens /dev/vfio/<group>; without it the VM cannot start.
    Inputs: the device's iommu_group link, the group members' drivers, /dev/vfio on the host.
    Fix: make sure vfio-pci bound the device and devtmpfs/udev created /dev/vfio/<group>.
    """
    problems = []
    for function in device_functions:
        skip_unless(
            function.iommu_group is not None, f"{function.address}: no IOMMU group (VFIO01)"
        )
        group = str(function.iommu_group)
        members = [pci_functions.get(m) for m in iommu_groups[group]]
        held = any(m is not None and m.driver == "vfio-pci" for m in members)
        skip_unless(held, f"no member of group {group} is on vfio-pci yet (before VM start)")
        if group not in vfio_group_nodes:
            problems.append(f"/dev/vfio/{group} is missing for {device.id} {function.address}")
    no_problems(problems, f"VFIO group node missing on {kvm_host.description}")
