"""A libvirt VM as the pinning checks see it: its domain XML, live pins, host CPUs.

The domain comes from `virsh -c URI dumpxml DOM` run on the host (or the
snapshot's captured output), never from a libvirt binding, so the same code
reads a live host, a snapshot and libvirt's test driver (`test:///node.xml`).

>>> parse_cpuset("0-3,^2,6")
frozenset({0, 1, 3, 6})
>>> virtual_core_of(vcpu=5, cores=3, threads=2)
(0, 2)
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass

from cutover.probes.hostfs import CommandResult, Host, read_text

__all__ = [
    "LIBVIRT_GUESTS_FILES",
    "DomainConfig",
    "DomainObservation",
    "Hostdev",
    "Topology",
    "format_cpuset",
    "libvirt_guests_on_shutdown",
    "observe_domain",
    "parse_cpuset",
    "parse_domain_xml",
    "parse_vcpupin_output",
    "read_cpu_siblings",
    "virtual_core_of",
]

CPU_SYSFS = "/sys/devices/system/cpu"
# RHEL/Fedora, then Debian/Ubuntu.
LIBVIRT_GUESTS_FILES = ("/etc/sysconfig/libvirt-guests", "/etc/default/libvirt-guests")
AUTOSTART_DIR = "/etc/libvirt/qemu/autostart"


class CpusetError(ValueError):
    """A libvirt cpuset string that does not parse."""


def parse_cpuset(text: str) -> frozenset[int]:
    """libvirt's cpuset syntax: `N`, `N-M`, `^N` (exclude), comma-separated."""
    include: set[int] = set()
    exclude: set[int] = set()
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        target = include
        if item.startswith("^"):
            target, item = exclude, item[1:]
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if match is None:
            raise CpusetError(f"not a cpuset: {text!r}")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if high < low:
            raise CpusetError(f"not a cpuset (range {low}-{high} backwards): {text!r}")
        target.update(range(low, high + 1))
    return frozenset(include - exclude)


def format_cpuset(cpus: Iterable[int]) -> str:
    """`{0, 1, 2, 5}` -> `0-2,5` (the kernel's list format)."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    start = prev = None
    for cpu in [*ordered, None]:
        if cpu is not None and prev is not None and cpu == prev + 1:
            prev = cpu
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = cpu
    return ",".join(parts) or "(none)"


@dataclass(frozen=True)
class Topology:
    sockets: int
    dies: int
    cores: int
    threads: int

    @property
    def vcpus(self) -> int:
        return self.sockets * self.dies * self.cores * self.threads

    def __str__(self) -> str:
        dies = f" dies={self.dies}" if self.dies != 1 else ""
        return f"sockets={self.sockets}{dies} cores={self.cores} threads={self.threads}"


@dataclass(frozen=True)
class Hostdev:
    """A `<hostdev>` of the domain; `address` is set for PCI ones (`0000:01:00.0`)."""

    mode: str
    type: str
    managed: bool
    address: str | None


@dataclass(frozen=True)
class DomainConfig:
    """The parts of a domain XML the checks read (libvirt formatdomain)."""

    name: str
    vcpus: int
    vcpupins: dict[int, frozenset[int]]
    vcpupin_text: dict[int, str]
    emulatorpin: frozenset[int] | None
    topology: Topology | None
    hostdevs: tuple[Hostdev, ...]
    kvm_hidden: bool

    def pci_hostdev(self, address: str) -> Hostdev | None:
        for hostdev in self.hostdevs:
            if hostdev.type == "pci" and hostdev.address == address:
                return hostdev
        return None


def parse_domain_xml(text: str) -> DomainConfig:
    """Parse `virsh dumpxml` output; raises ValueError on XML that is no domain."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"domain XML does not parse: {exc}") from None
    if root.tag != "domain":
        raise ValueError(f"not a domain XML (root element <{root.tag}>)")
    vcpu_node = root.find("vcpu")
    vcpus = int((vcpu_node.text or "0").strip()) if vcpu_node is not None else 0
    pins: dict[int, frozenset[int]] = {}
    pin_text: dict[int, str] = {}
    for pin in root.findall("cputune/vcpupin"):
        vcpu = int(pin.get("vcpu", "-1"))
        pin_text[vcpu] = pin.get("cpuset", "")
        pins[vcpu] = parse_cpuset(pin_text[vcpu])
    emulator = root.find("cputune/emulatorpin")
    topology_node = root.find("cpu/topology")
    topology = None
    if topology_node is not None:
        topology = Topology(
            sockets=int(topology_node.get("sockets", "1")),
            dies=int(topology_node.get("dies", "1")),
            cores=int(topology_node.get("cores", "1")),
            threads=int(topology_node.get("threads", "1")),
        )
    hidden = root.find("features/kvm/hidden")
    return DomainConfig(
        name=(root.findtext("name") or "").strip(),
        vcpus=vcpus,
        vcpupins=pins,
        vcpupin_text=pin_text,
        emulatorpin=parse_cpuset(emulator.get("cpuset", "")) if emulator is not None else None,
        topology=topology,
        hostdevs=tuple(_hostdev(node) for node in root.findall("devices/hostdev")),
        kvm_hidden=hidden is not None and hidden.get("state") == "on",
    )


def _hostdev(node: ET.Element) -> Hostdev:
    address = None
    source = node.find("source/address")
    if node.get("type") == "pci" and source is not None:
        parts = [source.get(k, "0") for k in ("domain", "bus", "slot", "function")]
        domain, bus, slot, function = (int(p, 0) for p in parts)
        address = f"{domain:04x}:{bus:02x}:{slot:02x}.{function:x}"
    return Hostdev(
        mode=node.get("mode", ""),
        type=node.get("type", ""),
        managed=node.get("managed") == "yes",
        address=address,
    )


def parse_vcpupin_output(text: str) -> dict[int, frozenset[int]]:
    """`virsh vcpupin DOM`'s table (` 0      2`) as vCPU -> host CPUs."""
    pins: dict[int, frozenset[int]] = {}
    for line in text.splitlines():
        match = re.fullmatch(r"\s*(\d+)\s*:?\s+([0-9,^\-]+)\s*", line)
        if match:
            pins[int(match.group(1))] = parse_cpuset(match.group(2))
    return pins


def virtual_core_of(vcpu: int, cores: int, threads: int) -> tuple[int, int]:
    """(socket, core) a vCPU belongs to: QEMU numbers threads innermost."""
    core_index = vcpu // threads
    return core_index // cores, core_index % cores


# --- observing a domain on a host ----------------------------------------------


@dataclass(frozen=True)
class DomainObservation:
    """What `virsh` and /etc say about one domain on one host."""

    name: str
    uri: str
    config: DomainConfig | None
    # Why `config` is None: virsh's error, with the command.
    error: str | None
    state: str | None
    live_pins: dict[int, frozenset[int]] | None
    autostart: bool
    autostart_evidence: str

    @property
    def running(self) -> bool:
        return self.state in ("running", "paused", "blocked", "in shutdown")


def _virsh(host: Host, uri: str, timeout: float, *args: str) -> CommandResult:
    return host.run(["virsh", "-c", uri, *args], timeout)


def observe_domain(host: Host, uri: str, name: str, timeout: float) -> DomainObservation:
    """Read the domain's XML, state, live vCPU affinity and autostart."""
    dumped = _virsh(host, uri, timeout, "dumpxml", name)
    config: DomainConfig | None = None
    error: str | None = None
    if dumped.ok:
        try:
            config = parse_domain_xml(dumped.stdout)
        except ValueError as exc:
            error = f"`{dumped.shell}`: {exc}"
    else:
        error = f"`{dumped.shell}` failed (rc {dumped.rc}): {dumped.stderr.strip()}"
    state_result = _virsh(host, uri, timeout, "domstate", name)
    state = state_result.stdout.strip().splitlines()[0] if state_result.ok else None
    live_pins = None
    if state in ("running", "paused", "blocked", "in shutdown"):
        live = _virsh(host, uri, timeout, "vcpupin", name)
        live_pins = parse_vcpupin_output(live.stdout) if live.ok else None
    autostart, evidence = _autostart(host, uri, name, timeout)
    return DomainObservation(name, uri, config, error, state, live_pins, autostart, evidence)


def _autostart(host: Host, uri: str, name: str, timeout: float) -> tuple[bool, str]:
    link = f"{AUTOSTART_DIR}/{name}.xml"
    if host.kind(link) is not None:
        return True, f"{link} exists"
    info = _virsh(host, uri, timeout, "dominfo", name)
    match = re.search(r"^Autostart:\s*(\S+)", info.stdout, re.MULTILINE) if info.ok else None
    if match and match.group(1) == "enable":
        return True, f"`{info.shell}` says Autostart: enable"
    said = f"Autostart: {match.group(1)}" if match else "no answer"
    return False, f"no {link}, and `{info.shell}` says {said}"


# --- host CPUs and the libvirt-guests service ---------------------------------


def read_cpu_siblings(host: Host) -> dict[int, frozenset[int]]:
    """Host CPU -> the hardware threads of its core (itself included).

    From `cpuN/topology/core_cpus_list`, or its older name `thread_siblings_list`.
    """
    siblings: dict[int, frozenset[int]] = {}
    for entry in host.list_dir(CPU_SYSFS):
        match = re.fullmatch(r"cpu(\d+)", entry)
        if match is None:
            continue
        cpu = int(match.group(1))
        for name in ("core_cpus_list", "thread_siblings_list"):
            text = read_text(host, f"{CPU_SYSFS}/{entry}/topology/{name}")
            if text is not None and text.strip():
                siblings[cpu] = parse_cpuset(text.strip())
                break
    return siblings


@dataclass(frozen=True)
class ShellSetting:
    path: str
    value: str | None


def libvirt_guests_on_shutdown(host: Host) -> list[ShellSetting]:
    """`ON_SHUTDOWN` in each libvirt-guests config file that exists (last assignment wins)."""
    found = []
    for path in LIBVIRT_GUESTS_FILES:
        text = read_text(host, path)
        if text is None:
            continue
        value = None
        for line in text.splitlines():
            match = re.match(r"\s*(?:export\s+)?ON_SHUTDOWN=(\S*)", line)
            if match:
                value = match.group(1).split("#", 1)[0].strip("\"'")
        found.append(ShellSetting(path, value))
    return found
