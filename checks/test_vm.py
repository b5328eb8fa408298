"""The passthrough VM: vCPUs pinned one to one on sibling threads, host core kept free.

Semantics: docs/semantics.md "VM pinning" (libvirt formatdomain).
Pins are read from `virsh dumpxml`; vCPUs without a single-CPU pin are VM01's
alone, so the other pinning checks look only at the vCPUs VM01 accepts.
"""

from __future__ import annotations

from collections import defaultdict

from checks.declare import check
from checks.support import no_problems, skip_unless
from checks.targets.host import DeviceTarget
from cutover.model.inventory import VirtHost
from cutover.probes.hostfs import Host
from cutover.probes.virt.vfio import PciFunction
from cutover.probes.virt.vm import (
    DomainConfig,
    DomainObservation,
    ShellSetting,
    format_cpuset,
    virtual_core_of,
)


def single_pins(config: DomainConfig) -> dict[int, int]:
    """vCPU -> its one host CPU, for the vCPUs pinned to exactly one."""
    return {
        vcpu: next(iter(cpus))
        for vcpu, cpus in config.vcpupins.items()
        if len(cpus) == 1 and 0 <= vcpu < config.vcpus
    }


@check("VM01", phases=("preflight", "cutover", "acceptance"))
def test_every_vcpu_pinned_to_one_cpu(vm_config: DomainConfig) -> None:
    """VM01: every vCPU has its own <vcpupin> to exactly one host CPU.

    Why: a floating vCPU migrates between host CPUs and costs frame times (cache, latency).
    Inputs: the domain XML's <vcpu> count and <cputune><vcpupin vcpu cpuset/> (virsh dumpxml).
    Fix: one <vcpupin vcpu='N' cpuset='CPU'/> per vCPU in <cputune> (virsh edit DOM).
    """
    problems = []
    for vcpu in range(vm_config.vcpus):
        cpus = vm_config.vcpupins.get(vcpu)
        if cpus is None:
            problems.append(f"vCPU {vcpu}: no <vcpupin>, it floats over every host CPU")
        elif len(cpus) != 1:
            problems.append(
                f"vCPU {vcpu}: cpuset='{vm_config.vcpupin_text[vcpu]}' is "
                f"{len(cpus)} host CPUs ({format_cpuset(cpus)}), expected one"
            )
    no_problems(problems, f"VM {vm_config.name!r} has vCPUs not pinned to one host CPU")


@check("VM02", phases=("preflight", "cutover", "acceptance"))
def test_no_host_cpu_shared(vm_config: DomainConfig) -> None:
    """VM02: no two vCPUs are pinned to the same host CPU.

    Why: two vCPUs on one host CPU halve each other's time; the guest sees a stutter.
    Inputs: the domain XML's <vcpupin> elements.
    Fix: give each vCPU a host CPU of its own.
    """
    on_cpu: dict[int, list[int]] = defaultdict(list)
    for vcpu, cpu in sorted(single_pins(vm_config).items()):
        on_cpu[cpu].append(vcpu)
    no_problems(
        [
            f"host CPU {cpu} carries vCPUs {', '.join(map(str, vcpus))}"
            for cpu, vcpus in sorted(on_cpu.items())
            if len(vcpus) > 1
        ],
        f"VM {vm_config.name!r} shares host CPUs between vCPUs",
    )


@check("VM03", phases=("preflight", "cutover", "acceptance"))
def test_topology_matches(vm_config: DomainConfig, virt_host: VirtHost) -> None:
    """VM03: the guest CPU topology multiplies to the vCPU count and equals the inventory's.

    Why: a topology that disagrees with <vcpu> is rejected or silently changed by libvirt,
    and the SMT pairing (VM04) depends on threads.
    Inputs: <cpu><topology sockets cores threads/>, <vcpu>, virt_host.topology.
    Fix: set <topology sockets='1' cores='3' threads='2'/> (as planned) and <vcpu>6</vcpu>.
    """
    topology = vm_config.topology
    no_problems(
        [] if topology else ["no <cpu><topology/>: the guest sees one socket per vCPU"],
        f"VM {vm_config.name!r} has no CPU topology",
    )
    assert topology is not None
    problems = []
    if topology.vcpus != vm_config.vcpus:
        problems.append(f"{topology} is {topology.vcpus} vCPUs but <vcpu> is {vm_config.vcpus}")
    planned = virt_host.topology
    if planned and (planned.sockets, planned.cores, planned.threads) != (
        topology.sockets * topology.dies,
        topology.cores,
        topology.threads,
    ):
        problems.append(
            f"XML has {topology}, inventory plans sockets={planned.sockets} "
            f"cores={planned.cores} threads={planned.threads}"
        )
    no_problems(problems, f"VM {vm_config.name!r} topology is wrong")


@check("VM04", phases=("preflight", "cutover", "acceptance"))
def test_smt_pairs_on_sibling_threads(
    vm_config: DomainConfig, cpu_siblings: dict[int, frozenset[int]], kvm_host: Host
) -> None:
    """VM04: the vCPUs of each virtual core are pinned to hyperthreads of one host core.

    Why: the guest schedules a virtual core's threads as siblings sharing caches; on two host
    cores they contend for the wrong caches and the guest scheduler is misled.
    Inputs: <topology threads>, <vcpupin>, the host's cpuN/topology/core_cpus_list (older:
    thread_siblings_list).
    Fix: pin vCPUs 2k and 2k+1 to the two threads of one core (e.g. 1 and 5 on a 4c/8t Xeon).
    """
    topology = vm_config.topology
    skip_unless(topology is not None and topology.threads > 1, "threads=1: no SMT pairs")
    assert topology is not None
    pins = single_pins(vm_config)
    cores: dict[tuple[int, int], list[int]] = defaultdict(list)
    for vcpu in range(vm_config.vcpus):
        cores[virtual_core_of(vcpu, topology.cores * topology.dies, topology.threads)].append(vcpu)
    problems = []
    for (socket, core), vcpus in sorted(cores.items()):
        if not all(v in pins for v in vcpus):
            continue  # VM01
        cpus = [pins[v] for v in vcpus]
        first = cpus[0]
        siblings = cpu_siblings.get(first)
        if siblings is None:
            problems.append(f"host CPU {first} has no topology on {kvm_host.description}")
        elif not set(cpus) <= siblings or len(set(cpus)) != len(cpus):
            problems.append(
                f"virtual core {core} (socket {socket}; vCPUs {', '.join(map(str, vcpus))}) is on "
                f"host CPUs {', '.join(map(str, cpus))}, but CPU {first}'s core has threads "
                f"{format_cpuset(siblings)}"
            )
    no_problems(problems, f"VM {vm_config.name!r} splits SMT pairs across host cores")


@check("VM05", phases=("preflight", "cutover", "acceptance"))
def test_reserved_cpus_free(
    vm_config: DomainConfig, virt_host: VirtHost, cpu_siblings: dict[int, frozenset[int]]
) -> None:
    """VM05: the host CPUs reserved for the host carry no vCPU.

    Why: the host (QEMU's I/O threads, interrupts, the desktop) needs a core the VM leaves alone.
    Inputs: virt_host.reserved_cpus (without it: at least one whole host core), <vcpupin>.
    Fix: pin the vCPUs to the other cores, e.g. keep core 0 (CPUs 0 and 4) for the host.
    """
    pins = single_pins(vm_config)
    used = set(pins.values())
    if virt_host.reserved_cpus:
        no_problems(
            [
                f"reserved host CPU {cpu} carries vCPU "
                f"{', '.join(str(v) for v, c in sorted(pins.items()) if c == cpu)}"
                for cpu in sorted(set(virt_host.reserved_cpus) & used)
            ],
            f"VM {vm_config.name!r} uses host CPUs reserved for the host",
        )
        return
    free_cores = {siblings for siblings in cpu_siblings.values() if not siblings & used}
    no_problems(
        [] if free_cores else [f"vCPUs cover host CPUs {format_cpuset(used)}: no core is free"],
        f"VM {vm_config.name!r} leaves the host no core of its own",
    )


@check("VM06", phases=("preflight", "cutover", "acceptance"))
def test_emulator_on_reserved_cpus(vm_config: DomainConfig, virt_host: VirtHost) -> None:
    """VM06: QEMU's emulator threads are pinned (<emulatorpin>) to the host's reserved CPUs.

    Why: unpinned emulator threads run on the vCPUs' host CPUs and steal their time.
    Inputs: <cputune><emulatorpin cpuset/>, virt_host.reserved_cpus (without it: no CPU that
    carries a vCPU).
    Fix: <emulatorpin cpuset='0,4'/> with the reserved CPUs.
    """
    vcpu_cpus = set(single_pins(vm_config).values())
    pinned = vm_config.emulatorpin
    allowed = set(virt_host.reserved_cpus) if virt_host.reserved_cpus else None
    problems = []
    if pinned is None:
        problems.append("no <emulatorpin>: emulator threads float over every host CPU")
    elif allowed is not None and not pinned <= allowed:
        problems.append(
            f"emulatorpin {format_cpuset(pinned)} is not within reserved {format_cpuset(allowed)}"
        )
    elif allowed is None and pinned & vcpu_cpus:
        problems.append(f"emulatorpin {format_cpuset(pinned)} overlaps the vCPUs' host CPUs")
    no_problems(problems, f"VM {vm_config.name!r} emulator threads are not on reserved CPUs")


@check("VM07", phases=("preflight", "cutover", "acceptance"))
def test_device_passed_as_managed_hostdev(
    device: DeviceTarget, vm_config: DomainConfig, pci_functions: dict[str, PciFunction]
) -> None:
    """VM07: each inventory device is a <hostdev mode='subsystem' type='pci' managed='yes'>.

    Why: managed='yes' lets libvirt detach the device from the host and rebind it at VM start.
    Inputs: virt_host.devices, the domain XML's <devices><hostdev> and their source addresses.
    Fix: virsh attach-device --config with a managed PCI hostdev for the address.
    """
    addresses = {f.address for f in device.resolve(pci_functions)}
    if device.device.address:
        addresses.add(device.device.address)
    skip_unless(bool(addresses), f"{device.id}: no address known (not on this host: VFIO05)")
    problems = []
    for address in sorted(addresses):
        hostdev = vm_config.pci_hostdev(address)
        if hostdev is None:
            problems.append(f"{device.id}: no <hostdev type='pci'> for {address}")
        elif hostdev.mode != "subsystem" or not hostdev.managed:
            problems.append(
                f"{device.id}: hostdev {address} is mode='{hostdev.mode}' "
                f"managed='{'yes' if hostdev.managed else 'no'}', expected subsystem/yes"
            )
    no_problems(problems, f"VM {vm_config.name!r} does not get {device.id}")


@check("VM08", phases=("preflight", "cutover", "acceptance"))
def test_kvm_hidden_for_nvidia(vm_config: DomainConfig, virt_host: VirtHost) -> None:
    """VM08: with an NVIDIA GPU the VM hides KVM (<kvm><hidden state='on'/></kvm>).

    Why: NVIDIA's consumer driver stops with Code 43 when it detects the KVM signature.
    Inputs: virt_host.gpu_vendor, <features><kvm><hidden state/>.
    Fix: add <kvm><hidden state='on'/></kvm> to <features> (QEMU's -cpu kvm=off).
    """
    skip_unless(virt_host.gpu_vendor == "nvidia", "the inventory's GPU is not NVIDIA")
    no_problems(
        [] if vm_config.kvm_hidden else ["no <features><kvm><hidden state='on'/>"],
        f"VM {vm_config.name!r} shows KVM to the NVIDIA driver (Code 43)",
    )


@check("VM09", phases=("preflight", "cutover", "acceptance"))
def test_autostart(vm: DomainObservation) -> None:
    """VM09: the VM starts when the host boots (virsh autostart).

    Why: after a host reboot the workstation VM must come back without an operator.
    Inputs: /etc/libvirt/qemu/autostart/<dom>.xml, else `virsh dominfo` Autostart.
    Fix: virsh autostart <dom>.
    """
    no_problems(
        [] if vm.autostart else [vm.autostart_evidence],
        f"VM {vm.name!r} does not autostart: run `virsh autostart {vm.name}`",
    )


@check("VM10", phases=("preflight", "cutover", "acceptance"))
def test_libvirt_guests_shuts_down(
    kvm_host: Host, vm: DomainObservation, libvirt_guests: list[ShellSetting]
) -> None:
    """VM10: libvirt-guests shuts guests down cleanly with the host (ON_SHUTDOWN=shutdown).

    Why: the default (suspend) saves the VM's RAM, which a VFIO device cannot survive.
    Inputs: /etc/sysconfig/libvirt-guests (RHEL/Fedora) or /etc/default/libvirt-guests (Debian).
    Fix: set ON_SHUTDOWN=shutdown there and systemctl enable libvirt-guests.
    """
    settings = libvirt_guests
    problems = [
        f"{s.path}: ON_SHUTDOWN={s.value}" if s.value else f"{s.path}: ON_SHUTDOWN unset (suspend)"
        for s in settings
        if s.value != "shutdown"
    ]
    if not settings:
        problems.append("no libvirt-guests config file: the default is ON_SHUTDOWN=suspend")
    no_problems(problems, f"libvirt-guests on {kvm_host.description} does not shut down")


@check("VM11", phases=("preflight", "cutover", "acceptance"))
def test_live_affinity_matches(vm: DomainObservation, vm_config: DomainConfig) -> None:
    """VM11: while the VM runs, each vCPU's live affinity (virsh vcpupin) equals its <vcpupin>.

    Why: pins edited with virsh edit apply at the next start; a running VM may not have them.
    Inputs: `virsh vcpupin DOM` (live), <vcpupin> from virsh dumpxml.
    Fix: restart the VM, or apply live with virsh vcpupin DOM N CPU --live.
    """
    skip_unless(vm.running, f"VM {vm.name!r} is {vm.state or 'unknown'}: no live affinity")
    live = vm.live_pins
    no_problems(
        [] if live is not None else ["`virsh vcpupin` gave no answer"],
        f"cannot read live affinity of VM {vm.name!r}",
    )
    assert live is not None
    no_problems(
        [
            f"vCPU {vcpu}: XML pins to {format_cpuset(cpus)}, "
            f"live affinity is {format_cpuset(live.get(vcpu, ()))}"
            for vcpu, cpus in sorted(vm_config.vcpupins.items())
            if live.get(vcpu) != cpus
        ],
        f"VM {vm.name!r} runs with other pins than its XML",
    )
