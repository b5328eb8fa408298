"""Targets of the host checks (VFIO, VM): the inventory's passthrough devices.

>>> from cutover.model.inventory import PciDevice
>>> target = device_targets([PciDevice(name="gpu", address="0000:01:00.0")])[0]
>>> target.id, list(target.junit_properties())
('gpu-0000:01:00.0', [('device', 'gpu'), ('pci_address', '0000:01:00.0')])
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from cutover.model.inventory import PciDevice
from cutover.probes.virt.vfio import PciFunction, functions_of

__all__ = ["DeviceTarget", "device_targets"]


@dataclass(frozen=True)
class DeviceTarget:
    """One inventory device, as checks are parametrised over it."""

    device: PciDevice
    index: int

    @property
    def label(self) -> str:
        return self.device.name or f"device{self.index}"

    @property
    def id(self) -> str:
        """Readable test id: `gpu-0000:01:00.0` or `nic-8086:1533`."""
        return f"{self.label}-{self.device.address or self.device.id}"

    def junit_properties(self) -> Iterator[tuple[str, str]]:
        yield "device", self.label
        if self.device.address:
            yield "pci_address", self.device.address
        if self.device.id:
            yield "pci_id", self.device.id

    def resolve(self, functions: dict[str, PciFunction]) -> list[PciFunction]:
        """The host's functions this device names (by address, or every one with its ID)."""
        return functions_of(self.device, functions)


def device_targets(devices: list[PciDevice]) -> list[DeviceTarget]:
    return [DeviceTarget(device, index) for index, device in enumerate(devices)]
