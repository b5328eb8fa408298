"""The checks, unchanged, against the real paths: a fixture mounted over /sys, /dev, /etc.

In a private mount namespace (`unshare -m`), a generated host tree is
bind-mounted over /sys, /proc/cmdline, /dev and /etc, and the suite runs
WITHOUT --host-snapshot, reading `/` as on a real host; `virsh` talks to the
test driver. `lspci -A linux-sysfs` reads the same mounted /sys, and its
drivers and IOMMU groups must be what the suite recorded in its JUnit XML.
Root only (mount namespaces); with CI=true it runs or fails.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.suite import REPO, parse_junit
from tests.vfio.support import CHECK_FILES, generate, require_root, require_tool

# Real files that python, virsh and lspci need from /dev and /etc while the
# fixture's own /dev and /etc are mounted over them.
KEEP_DEV = ("null", "zero", "random", "urandom", "full", "tty")
KEEP_ETC = ("ld.so.cache", "passwd", "group", "nsswitch.conf", "hosts", "localtime")


def _script(root: Path, inventory: Path, junit: Path, lspci_out: Path) -> str:
    r = shlex.quote(str(root))
    lines = ["set -e"]
    for name in KEEP_DEV:
        lines.append(f"touch {r}/dev/{name} && mount --bind /dev/{name} {r}/dev/{name}")
    for name in KEEP_ETC:
        lines.append(
            f"if [ -e /etc/{name} ]; then touch {r}/etc/{name} && "
            f"mount --bind /etc/{name} {r}/etc/{name}; fi"
        )
    lines += [
        f"mount --bind {r}/sys /sys",
        f"mount --bind {r}/proc/cmdline /proc/cmdline",
        f"mount --bind {r}/etc /etc",
        f"mount --bind {r}/dev /dev",
        f"lspci -A linux-sysfs -D -nn -k -vmm > {shlex.quote(str(lspci_out))} 2>/dev/null",
        " ".join(
            shlex.quote(a)
            for a in [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                f"--rootdir={REPO}",
                f"-c={REPO / 'pytest.ini'}",
                "--phase=preflight",
                f"--inventory={inventory}",
                f"--reports-dir={junit.parent}",
                f"--junitxml={junit}",
                *CHECK_FILES,
            ]
        )
        + " || true",
    ]
    return "\n".join(lines)


def _lspci(text: str) -> dict[str, dict[str, str]]:
    devices: dict[str, dict[str, str]] = {}
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(":\t", 1) for line in block.splitlines() if ":\t" in line)
        devices[fields["Slot"]] = fields
    return devices


@pytest.mark.parametrize("scenario", ["healthy", "audio-on-snd-hda-intel"])
def test_checks_unchanged_on_mounted_fixture_agree_with_lspci(
    scenario: str, tmp_path: Path
) -> None:
    require_root()
    unshare = require_tool("unshare", "util-linux")
    require_tool("lspci", "pciutils")
    built = generate.build(scenario, tmp_path / "host")
    junit = tmp_path / "reports" / "junit.xml"
    junit.parent.mkdir()
    lspci_out = tmp_path / "lspci.txt"
    done = subprocess.run(
        [
            unshare,
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            _script(built.root, built.inventory, junit, lspci_out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert junit.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    cases = parse_junit(junit)
    # Nothing leaked: this machine's own /sys is untouched outside the namespace.
    assert not Path("/sys/bus/pci/devices/0000:01:00.1").exists()

    failing = {c.properties.get("check_id") for c in cases if c.outcome in ("failed", "error")}
    assert failing == set(built.expected_failures), [(c.name, c.message) for c in cases]

    lspci = _lspci(lspci_out.read_text())
    assert set(lspci) == set(built.scenario["host"]["pci"]), lspci_out.read_text()
    bindings = [c for c in cases if c.name.startswith("test_device_bound_to_vfio[")]
    assert len(bindings) == len(built.scenario["inventory"]["virt_host"]["devices"])
    for case in bindings:
        drivers = dict(i.split("=", 1) for i in case.properties["observed_driver"].split())
        groups = dict(i.split("=", 1) for i in case.properties["iommu_group"].split())
        for address, driver in drivers.items():
            assert lspci[address].get("Driver", "-") == driver, (address, lspci[address])
            assert lspci[address].get("IOMMUGroup", "-") == groups[address]
    for case in cases:
        for key, value in case.properties.items():
            if key.startswith("group_") and key.endswith("_members"):
                group = key.split("_")[1]
                in_lspci = {s for s, f in lspci.items() if f.get("IOMMUGroup") == group}
                assert set(value.split()) == in_lspci, (group, value, in_lspci)
