"""This machine's own host: the checks report honestly, and capture -> offline agrees.

The machine running the self-tests is no VFIO host (a CI runner or a VM):
the checks must say what is missing, agree with libvirt's own
`virt-host-validate`, and give the same verdicts from a capture tarball.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cutover.model.settings import ProbeSettings
from cutover.probes.hostfs import LocalRoot, TestinfraHost
from cutover.probes.virt.vfio import iommu_status, read_pci_functions
from cutover.probes.virt.vm import read_cpu_siblings
from tests.suite import REPO, SuiteRun, run_suite
from tests.vfio.support import CHECK_FILES, require, require_tool

PCI = Path("/sys/bus/pci/devices")


def _endpoint() -> str:
    """A PCI function of this machine that is not a bridge: the device 'to pass through'."""
    for entry in sorted(os.listdir(PCI)) if PCI.is_dir() else []:
        if not (PCI / entry / "class").read_text().startswith("0x06"):
            return entry
    require("this machine shows no PCI endpoint in /sys/bus/pci/devices")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def this_host(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    address = _endpoint()
    inventory = tmp_path_factory.mktemp("real") / "inventory.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "name": "this-machine",
                "old": {"address": "198.51.100.10"},
                "new": {"address": "198.51.100.20"},
                "services": [],
                "virt_host": {
                    "ssh": "local://",
                    "devices": [{"name": "dev", "address": address}],
                },
            }
        )
    )
    return inventory, address


@pytest.fixture(scope="module")
def live_run(this_host: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    inventory, _ = this_host
    return run_suite("preflight", inventory, tmp_path_factory.mktemp("live"), *CHECK_FILES)


def _outcome(run: SuiteRun, check_id: str) -> set[str]:
    return {c.outcome for c in run.cases if c.check_id == check_id}


def test_live_run_says_what_is_missing(live_run: SuiteRun, this_host: tuple[Path, str]) -> None:
    _, address = this_host
    assert live_run.cases, live_run.summary()
    assert not [c for c in live_run.cases if c.outcome == "error"], live_run.summary()
    groups = os.listdir("/sys/kernel/iommu_groups")
    assert _outcome(live_run, "VFIO01") == ({"passed"} if groups else {"failed"})
    assert _outcome(live_run, "VFIO02") == (
        {"passed"} if os.path.exists("/dev/kvm") else {"failed"}
    )
    driver_link = PCI / address / "driver"
    driver = os.path.basename(os.readlink(driver_link)) if driver_link.is_symlink() else None
    binding = live_run.by_name(f"test_device_bound_to_vfio[dev-{address}]")
    if driver == "vfio-pci":
        assert binding.outcome == "passed"
    else:
        assert binding.outcome == "failed"
        assert f"{address}" in binding.message
        assert (f"on {driver}" if driver else "with no driver") in binding.message
    # No VM in this inventory: the VM checks skip with a reason.
    assert _outcome(live_run, "VM01") == {"skipped"}


def test_agrees_with_virt_host_validate(live_run: SuiteRun) -> None:
    tool = require_tool("virt-host-validate", "libvirt-clients")
    out = subprocess.run([tool, "qemu"], capture_output=True, text=True, timeout=60).stdout
    iommu = re.search(r"device assignment IOMMU support\s*:\s*(\w+)", out)
    require(None if iommu else f"virt-host-validate printed no IOMMU line:\n{out}")
    assert iommu is not None
    kernel = re.search(r"IOMMU is enabled by kernel\s*:\s*(\w+)", out)
    iommu_usable = iommu.group(1) == "PASS" and (kernel is None or kernel.group(1) == "PASS")
    assert _outcome(live_run, "VFIO01") == ({"passed"} if iommu_usable else {"failed"}), out
    kvm = re.search(r"device /dev/kvm exists\s*:\s*(\w+)", out)
    if kvm:
        assert _outcome(live_run, "VFIO02") == (
            {"passed"} if kvm.group(1) == "PASS" else {"failed"}
        )


def _verdicts(run: SuiteRun) -> dict[str, tuple[str, str]]:
    # Messages name the host ("local /" vs "snapshot X.tar.gz"): compare the rest.
    return {
        c.name: (c.outcome, re.sub(r"(local /|snapshot \S+)", "HOST", c.message)) for c in run.cases
    }


def test_capture_round_trip_on_this_machine(
    live_run: SuiteRun, this_host: tuple[Path, str], tmp_path: Path
) -> None:
    inventory, _ = this_host
    tarball = tmp_path / "this-host.tar.gz"
    captured = subprocess.run(
        [sys.executable, "-m", "cutover", "capture-host", "--output", str(tarball)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert captured.returncode == 0, captured.stderr
    offline = run_suite(
        "preflight", inventory, tmp_path / "offline", *CHECK_FILES, f"--host-snapshot={tarball}"
    )
    assert _verdicts(offline) == _verdicts(live_run), offline.summary()


def test_capture_cli_on_a_fixture_tree_matches_the_generator(tmp_path: Path) -> None:
    """`capture-host --root TREE --inventory INV` is how the fixtures' tarballs are made."""
    from tests.vfio.support import generate

    built = generate.build("reserved-cpu-used", tmp_path / "host")
    tarball = tmp_path / "cli.tar.gz"
    captured = subprocess.run(
        [
            sys.executable,
            "-m",
            "cutover",
            "capture-host",
            "--root",
            str(built.root),
            "--inventory",
            str(built.inventory),
            "--output",
            str(tarball),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert captured.returncode == 0, captured.stderr
    run = run_suite(
        "preflight", built.inventory, tmp_path / "r", *CHECK_FILES, f"--host-snapshot={tarball}"
    )
    assert run.failing_ids() == {"VM05"}, run.summary()


def test_testinfra_backend_sees_what_the_local_root_sees() -> None:
    """The ssh path (testinfra, here over local://) reads sysfs exactly like the local root."""
    settings = ProbeSettings(connect_timeout=5.0, operation_timeout=5.0)
    remote, local = TestinfraHost.from_spec("local://", settings), LocalRoot(Path("/"))
    assert read_pci_functions(remote) == read_pci_functions(local)
    assert read_cpu_siblings(remote) == read_cpu_siblings(local)
    assert iommu_status(remote, "amd") == iommu_status(local, "amd")
    assert remote.kind("/proc/self") == local.kind("/proc/self") == "link"
    assert remote.run(["true"], 5).ok and not remote.run(["false"], 5).ok
