"""What a VFIO passthrough host looks like: kernel cmdline, PCI functions, IOMMU groups.

Everything is read through a `cutover.probes.hostfs.Host`, from the kernel's own
files (kernel Documentation/driver-api/vfio.rst, sysfs-bus-pci ABI):

- `/proc/cmdline`: `intel_iommu=`, `amd_iommu=`, `iommu=`, `pci-stub.ids=`;
- `/sys/bus/pci/devices/<DDDD:BB:DD.F>/{vendor,device,class}` and the
  relative `driver` and `iommu_group` links;
- `/sys/kernel/iommu_groups/<N>/devices/`;
- `/dev/kvm`, `/dev/vfio/<N>`, the vfio-bind list.

sysfs is full of link cycles, so nothing here walks it recursively: every
link is read with `read_link`, never followed by a walk.

>>> KernelCmdline.parse("intel_iommu=on quiet intel_iommu=off").last("intel_iommu")
'off'
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from cutover.model.inventory import PciDevice
from cutover.probes.hostfs import Host, read_text

__all__ = [
    "PCI_DEVICES",
    "IommuStatus",
    "KernelCmdline",
    "PciFunction",
    "VfioBindList",
    "functions_of",
    "iommu_group_members",
    "iommu_status",
    "read_cpu_vendor",
    "read_pci_functions",
    "read_vfio_bind_list",
]

PCI_DEVICES = "/sys/bus/pci/devices"
IOMMU_GROUPS = "/sys/kernel/iommu_groups"
FULL_ADDRESS = re.compile(r"\b[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]\b")
SHORT_ADDRESS = re.compile(r"(?<![0-9a-fA-F:])[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]\b")
# Drivers that leave a device usable by VFIO (kernel vfio.rst: "viable" groups).
VFIO_DRIVERS = frozenset({"vfio-pci", "pci-stub"})
# PCI class 0x06 (bridge): host, ISA, PCI-to-PCI bridges are exempt from viability.
BRIDGE_CLASS = 0x06


# --- the kernel command line -------------------------------------------------


@dataclass(frozen=True)
class KernelCmdline:
    """`/proc/cmdline` as ordered (name, value) pairs; `--` ends the kernel's part."""

    text: str
    params: tuple[tuple[str, str | None], ...]

    @classmethod
    def parse(cls, text: str) -> KernelCmdline:
        params: list[tuple[str, str | None]] = []
        for word in _split_cmdline(text):
            if word == "--":
                break  # the rest goes to init
            name, sep, value = word.partition("=")
            params.append((_param_name(name), value if sep else None))
        return cls(text.strip(), tuple(params))

    def values(self, name: str) -> list[str]:
        """Every value given to `name`, in order (`pci-stub.ids` == `pci_stub.ids`)."""
        wanted = _param_name(name)
        return [value or "" for key, value in self.params if key == wanted]

    def last(self, name: str) -> str | None:
        """The value that takes effect: the last occurrence wins."""
        found = self.values(name)
        return found[-1] if found else None

    def switch(self, name: str) -> tuple[bool | None, str | None]:
        """Net on/off of a comma-separated option list (`intel_iommu=on,sm_on`).

        The kernel applies every occurrence in order, token by token, so the last
        `on` or `off` wins. Returns (state, the flag as written), or (None, None).
        """
        state: bool | None = None
        flag: str | None = None
        for value in self.values(name):
            for token in value.split(","):
                if token in ("on", "1"):
                    state, flag = True, f"{name}={value}"
                elif token == "off":
                    state, flag = False, f"{name}={value}"
        return state, flag

    def pci_stub_ids(self) -> list[str] | None:
        """The IDs in the effective `pci-stub.ids=` (last wins), or None when absent."""
        value = self.last("pci-stub.ids")
        if value is None:
            return None
        return [item.strip().lower() for item in value.split(",") if item.strip()]


def _split_cmdline(text: str) -> Iterator[str]:
    # The kernel allows double quotes around values with spaces: foo="a b".
    word, quoted = "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char.isspace() and not quoted:
            if word:
                yield word
            word = ""
        else:
            word += char
    if word:
        yield word


def _param_name(name: str) -> str:
    # Dashes and underscores are interchangeable in parameter names (kernel params.c).
    return name.replace("-", "_")


# --- IOMMU -------------------------------------------------------------------


@dataclass(frozen=True)
class IommuStatus:
    """Is the IOMMU on, by the kernel's own answer and by the cmdline's explanation."""

    groups: tuple[str, ...]
    cpu_vendor: str | None
    cmdline: KernelCmdline
    # The flag that turns it off (last one wins), e.g. "intel_iommu=off".
    disabled_by: str | None
    # The flag that asks for it, e.g. "intel_iommu=on", or None.
    enabled_by: str | None

    @property
    def has_groups(self) -> bool:
        return bool(self.groups)

    @property
    def flag_to_add(self) -> str:
        """What to put on the cmdline (or in firmware) to get IOMMU groups."""
        if self.cpu_vendor == "amd":
            return (
                "enable AMD-Vi/IOMMU in the firmware setup (the kernel turns it on by "
                "default; `iommu=pt` only selects passthrough mode)"
            )
        if self.cpu_vendor == "intel":
            return "add intel_iommu=on to GRUB_CMDLINE_LINUX and enable VT-d in the firmware"
        return "add intel_iommu=on (Intel) or enable AMD-Vi in the firmware (AMD)"


def iommu_status(host: Host, cpu_vendor: str | None) -> IommuStatus:
    """Observe IOMMU groups and the cmdline flags that explain them.

    `cpu_vendor` ("intel"/"amd") comes from the inventory or `read_cpu_vendor`.
    """
    cmdline = KernelCmdline.parse(read_text(host, "/proc/cmdline") or "")
    groups = tuple(sorted(host.list_dir(IOMMU_GROUPS), key=_group_sort_key))
    disabled_by: str | None = None
    enabled_by: str | None = None
    vendor_flags = {"intel": ["intel_iommu"], "amd": ["amd_iommu"]}.get(
        cpu_vendor or "", ["intel_iommu", "amd_iommu"]
    )
    for name in ["iommu", *vendor_flags]:
        state, flag = cmdline.switch(name)
        if state is False:
            disabled_by = disabled_by or flag
        elif state is True:
            enabled_by = enabled_by or flag
    return IommuStatus(groups, cpu_vendor, cmdline, disabled_by, enabled_by)


def read_cpu_vendor(host: Host) -> str | None:
    """`intel` or `amd` from /proc/cpuinfo's vendor_id, or None."""
    text = read_text(host, "/proc/cpuinfo") or ""
    match = re.search(r"^vendor_id\s*:\s*(\S+)", text, re.MULTILINE)
    vendor = match.group(1) if match else ""
    return {"GenuineIntel": "intel", "AuthenticAMD": "amd"}.get(vendor)


def _group_sort_key(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (1 << 30, name)


# --- PCI functions -----------------------------------------------------------


@dataclass(frozen=True)
class PciFunction:
    """One PCI function as sysfs shows it."""

    address: str
    vendor_device: str
    class_code: int
    driver: str | None
    iommu_group: str | None

    @property
    def is_bridge(self) -> bool:
        return self.class_code >> 16 == BRIDGE_CLASS

    @property
    def describe(self) -> str:
        """`0000:01:00.1 [1002:aab0] on snd_hda_intel` — for messages."""
        driver = f"on {self.driver}" if self.driver else "with no driver"
        return f"{self.address} [{self.vendor_device}] {driver}"


def read_pci_function(host: Host, address: str) -> PciFunction | None:
    base = f"{PCI_DEVICES}/{address}"
    vendor = read_text(host, f"{base}/vendor")
    if vendor is None:
        return None
    device = read_text(host, f"{base}/device") or ""
    class_text = (read_text(host, f"{base}/class") or "0").strip()
    return PciFunction(
        address=address,
        vendor_device=f"{_hex4(vendor)}:{_hex4(device)}",
        class_code=int(class_text, 16) if re.fullmatch(r"(0x)?[0-9a-fA-F]+", class_text) else 0,
        driver=_link_name(host, f"{base}/driver"),
        iommu_group=_link_name(host, f"{base}/iommu_group"),
    )


def read_pci_functions(host: Host) -> dict[str, PciFunction]:
    """Every PCI function on the host, by full address."""
    found = {}
    for address in host.list_dir(PCI_DEVICES):
        function = read_pci_function(host, address)
        if function is not None:
            found[address] = function
    return found


def iommu_group_members(host: Host, group: str) -> list[str]:
    """Addresses in `/sys/kernel/iommu_groups/<group>/devices/`."""
    return host.list_dir(f"{IOMMU_GROUPS}/{group}/devices")


def _hex4(text: str) -> str:
    return text.strip().lower().removeprefix("0x").zfill(4)


def _link_name(host: Host, path: str) -> str | None:
    target = host.read_link(path)
    return posixpath.basename(target.rstrip("/")) if target else None


# --- the devices the inventory passes through --------------------------------


def functions_of(device: PciDevice, functions: dict[str, PciFunction]) -> list[PciFunction]:
    """The host's functions an inventory device names (by address, or every one with its ID)."""
    if device.address:
        found = functions.get(device.address)
        matches = [found] if found else []
    else:
        matches = [f for f in functions.values() if f.vendor_device == device.id]
    if device.address and device.id:
        matches = [f for f in matches if f.vendor_device == device.id]
    return matches


# --- the vfio-bind list ------------------------------------------------------


@dataclass(frozen=True)
class VfioBindList:
    """The addresses a vfio-bind file binds at boot (`DEVICES="0000:01:00.0 ..."`)."""

    path: str
    exists: bool
    addresses: frozenset[str] = field(default_factory=frozenset)
    # Entries lacking the domain prefix (`01:00.0`): the script cannot use them.
    short_addresses: frozenset[str] = field(default_factory=frozenset)


def read_vfio_bind_list(host: Host, path: str) -> VfioBindList:
    text = read_text(host, path)
    if text is None:
        return VfioBindList(path, exists=False)
    addresses: set[str] = set()
    short: set[str] = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        addresses.update(a.lower() for a in FULL_ADDRESS.findall(line))
        short.update(a.lower() for a in SHORT_ADDRESS.findall(FULL_ADDRESS.sub(" ", line)))
    return VfioBindList(path, True, frozenset(addresses), frozenset(short))
