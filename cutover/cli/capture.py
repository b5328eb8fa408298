"""`python -m cutover capture-host`: snapshot what the VFIO/VM checks read, for offline runs.

Read-only. Collects, through the same `Host` the checks use:

- `/proc/cmdline`, `/proc/cpuinfo`;
- the PCI part of sysfs: `/sys/bus/pci/devices/*` (links, kept as links), each
  function's directory (vendor, device, class, config, ... and its `driver`
  and `iommu_group` links), `/sys/bus/pci/drivers/*` (names only),
  `/sys/kernel/iommu_groups/*/devices/*`;
- CPU topology: `/sys/devices/system/cpu/cpuN/topology/*_list` and friends;
- `/dev/kvm`, `/dev/vfio/*` (as empty files: only their existence matters);
- the vfio-bind list, libvirt-guests config, `/etc/libvirt/qemu/autostart/`;
- with `--vm`: `virsh -c URI dumpxml|domstate|dominfo|vcpupin DOM`, stored in
  `/.cutover/commands.json` so the offline checks get the very same answers.

sysfs is full of link cycles, so nothing is walked by following links:
every link is stored as a link, and only the targets the checks need are read.

    python -m cutover capture-host --output kvm1.tar.gz --vm gaming
    pytest checks/test_vfio.py checks/test_vm.py --phase preflight \
        --inventory inv.yaml --host-snapshot kvm1.tar.gz
"""

from __future__ import annotations

import argparse
import io
import json
import posixpath
import socket
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cutover.probes.hostfs import CommandResult, Host, LocalRoot
from cutover.probes.snapshot import COMMANDS_FILE, dump_commands
from cutover.probes.virt.vfio import IOMMU_GROUPS, PCI_DEVICES
from cutover.probes.virt.vm import AUTOSTART_DIR, CPU_SYSFS, LIBVIRT_GUESTS_FILES

__all__ = ["Capture", "capture_host", "capture_host_main"]

# Per PCI function: what the checks and `lspci -A linux-sysfs` read.
PCI_FILES = (
    "vendor",
    "device",
    "class",
    "revision",
    "subsystem_vendor",
    "subsystem_device",
    "config",
    "resource",
    "irq",
    "modalias",
    "numa_node",
)
PCI_LINKS = ("driver", "iommu_group")
CPU_FILES = ("online", "present", "possible")
TOPOLOGY_FILES = (
    "core_cpus_list",
    "thread_siblings_list",
    "core_siblings_list",
    "package_cpus_list",
    "core_id",
    "physical_package_id",
    "die_id",
)
DEFAULT_VFIO_BIND = "/etc/sysconfig/vfio-bind"
METADATA_FILE = "/.cutover/capture.json"


@dataclass
class Capture:
    """What a capture collected: host path -> content (bytes), link target (str) or dir."""

    host: str
    files: dict[str, bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    commands: list[CommandResult] = field(default_factory=list)

    def add_file(self, host: Host, path: str) -> None:
        kind = host.kind(path)
        if kind == "link":
            self.add_link(host, path)
            return
        if kind == "device":
            self.files[path] = b""  # existence is all the checks ask of a device node
            return
        if kind != "file":
            return
        data = host.read_bytes(path)
        if data is not None:
            self.files[path] = data

    def add_link(self, host: Host, path: str) -> str | None:
        """Store a link as a link; return its target's host path (for the caller to follow)."""
        target = host.read_link(path)
        if target is None:
            return None
        self.links[path] = target
        return posixpath.normpath(posixpath.join(posixpath.dirname(path), target))

    def add_tree(self, host: Host, path: str) -> None:
        """Everything below `path`, links kept as links and never followed."""
        for entry, kind in walk(host, path):
            if kind == "dir":
                self.dirs.add(entry)
            else:
                self.add_file(host, entry)


def walk(host: Host, top: str) -> Iterator[tuple[str, str]]:
    """(path, kind) below `top` without following links (sysfs has cycles)."""
    kind = host.kind(top)
    if kind is None:
        return
    yield top, kind
    if kind != "dir":
        return
    for name in host.list_dir(top):
        yield from walk(host, f"{top.rstrip('/')}/{name}")


def capture_host(
    host: Host,
    *,
    vm: str | None = None,
    libvirt_uri: str = "qemu:///system",
    vfio_bind_file: str = DEFAULT_VFIO_BIND,
    timeout: float = 10.0,
) -> Capture:
    """Collect what the VFIO and VM checks read from `host`."""
    capture = Capture(host=host.description)
    for path in ("/proc/cmdline", "/proc/cpuinfo", vfio_bind_file, *LIBVIRT_GUESTS_FILES):
        capture.add_file(host, path)
    for path in ("/dev/kvm", "/dev/vfio", AUTOSTART_DIR):
        capture.add_tree(host, path)
    if vm:
        capture.add_file(host, f"/etc/libvirt/qemu/{vm}.xml")
    _capture_pci(capture, host)
    _capture_cpus(capture, host)
    if vm:
        _capture_domain(capture, host, vm, libvirt_uri, timeout)
    return capture


def _capture_pci(capture: Capture, host: Host) -> None:
    for driver in host.list_dir("/sys/bus/pci/drivers"):
        capture.dirs.add(f"/sys/bus/pci/drivers/{driver}")
    for address in host.list_dir(PCI_DEVICES):
        function_dir = capture.add_link(host, f"{PCI_DEVICES}/{address}")
        if function_dir is None:
            continue
        capture.dirs.add(function_dir)
        for name in PCI_FILES:
            capture.add_file(host, f"{function_dir}/{name}")
        for name in PCI_LINKS:
            target = capture.add_link(host, f"{function_dir}/{name}")
            if target is not None:
                capture.dirs.add(target)
    for group in host.list_dir(IOMMU_GROUPS):
        capture.add_file(host, f"{IOMMU_GROUPS}/{group}/type")
        capture.add_tree(host, f"{IOMMU_GROUPS}/{group}/devices")


def _capture_cpus(capture: Capture, host: Host) -> None:
    for name in CPU_FILES:
        capture.add_file(host, f"{CPU_SYSFS}/{name}")
    for entry in host.list_dir(CPU_SYSFS):
        if entry.startswith("cpu") and entry[3:].isdigit():
            capture.add_file(host, f"{CPU_SYSFS}/{entry}/online")
            for name in TOPOLOGY_FILES:
                capture.add_file(host, f"{CPU_SYSFS}/{entry}/topology/{name}")


def _capture_domain(capture: Capture, host: Host, vm: str, uri: str, timeout: float) -> None:
    state = None
    for verb in ("dumpxml", "domstate", "dominfo"):
        result = host.run(["virsh", "-c", uri, verb, vm], timeout)
        capture.commands.append(result)
        if verb == "domstate" and result.ok:
            state = result.stdout.strip()
    if state in ("running", "paused", "blocked", "in shutdown"):
        capture.commands.append(host.run(["virsh", "-c", uri, "vcpupin", vm], timeout))


def write_tarball(capture: Capture, output: Path, *, argv: list[str]) -> int:
    """Write the capture as a gzip tarball of root-relative paths; returns its size."""
    now = time.time()
    metadata = {
        "host": capture.host,
        "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "argv": argv,
        "files": len(capture.files),
        "links": len(capture.links),
    }
    files = dict(capture.files)
    files[COMMANDS_FILE] = dump_commands(capture.commands).encode()
    files[METADATA_FILE] = (json.dumps(metadata, indent=2) + "\n").encode()
    dirs = set(capture.dirs)
    for path in [*files, *capture.links, *capture.dirs]:
        parent = posixpath.dirname(path)
        while parent not in ("/", ""):
            dirs.add(parent)
            parent = posixpath.dirname(parent)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(output, "w:gz") as archive:
        for path in sorted(dirs - set(files) - set(capture.links)):
            archive.addfile(_info(path, tarfile.DIRTYPE, 0o755, now))
        for path, target in sorted(capture.links.items()):
            info = _info(path, tarfile.SYMTYPE, 0o777, now)
            info.linkname = target
            archive.addfile(info)
        for path, data in sorted(files.items()):
            info = _info(path, tarfile.REGTYPE, 0o644, now)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return output.stat().st_size


def _info(path: str, kind: bytes, mode: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path.lstrip("/"))
    info.type = kind
    info.mode = mode
    info.mtime = int(mtime)
    return info


def capture_host_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="cutover capture-host",
        description="Snapshot what the VFIO/VM checks read from this host (read-only), "
        "for `pytest --host-snapshot FILE`.",
    )
    parser.add_argument(
        "--output", "-o", type=Path, help="tarball to write (default: host-HOSTNAME-TIME.tar.gz)"
    )
    parser.add_argument("--inventory", help="take --vm, --libvirt-uri, --vfio-bind-file from it")
    parser.add_argument("--vm", help="libvirt domain to capture (virsh dumpxml, state, pins)")
    parser.add_argument("--libvirt-uri", help="libvirt URI (default: qemu:///system)")
    parser.add_argument("--vfio-bind-file", help=f"default: {DEFAULT_VFIO_BIND}")
    parser.add_argument(
        "--root", type=Path, default=Path("/"), help="read this tree as the host's / (fixtures)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="per virsh command (seconds)")
    args = parser.parse_args(argv)

    vm, uri, bind_file = args.vm, args.libvirt_uri, args.vfio_bind_file
    if args.inventory:
        from cutover.model.inventory import InventoryError, load_inventory

        try:
            virt_host = load_inventory(args.inventory).virt_host
        except InventoryError as exc:
            print(f"cutover: {exc}", file=sys.stderr)
            return 4
        if virt_host is not None:
            vm = vm or virt_host.vm
            uri = uri or virt_host.libvirt_uri
            bind_file = bind_file or virt_host.vfio_bind_file
    host = LocalRoot(args.root)
    output = args.output or Path(
        f"host-{socket.gethostname()}-{time.strftime('%Y%m%dT%H%M%S')}.tar.gz"
    )
    capture = capture_host(
        host,
        vm=vm,
        libvirt_uri=uri or "qemu:///system",
        vfio_bind_file=bind_file or DEFAULT_VFIO_BIND,
        timeout=args.timeout,
    )
    size = write_tarball(capture, output, argv=["capture-host", *argv])
    failed = [c for c in capture.commands if not c.ok]
    print(
        f"{output}: {len(capture.files)} files, {len(capture.links)} links, "
        f"{len(capture.commands)} commands from {host.description} ({size} bytes)"
    )
    for result in failed:
        print(f"  warning: `{result.shell}` failed: {result.stderr.strip()}", file=sys.stderr)
    return 0
