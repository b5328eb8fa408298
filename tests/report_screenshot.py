"""Render docs/report.png, the HTML report of a run that needs no lab: `make screenshot`.

The run is tests/test_reports.py's: the VFIO/VM checks read a captured host
with one fault (the GPU's audio function left on snd_hda_intel) and the
service checks point at loopback addresses where nothing listens, so the
page shows a verdict with root causes. Chromium (Debian's `chromium`, which
`make screenshot` installs) renders it headless in a network namespace of
its own (`unshare --net`): it can reach nothing at all.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from tests.suite import REPO, run_suite
from tests.test_reports import _inventory

WINDOW = "1280,1500"


def render(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="cutover-screenshot-") as tmp:
        directory = Path(tmp)
        inventory, tarball = _inventory(directory, "audio-on-snd-hda-intel")
        data = yaml.safe_load(inventory.read_text(encoding="utf-8"))
        data["name"] = "shop-hosting"
        inventory.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        reports = directory / "reports"
        run_suite("preflight", inventory, reports, f"--host-snapshot={tarball}")
        html = reports / "preflight.html"
        command = [
            "unshare", "--net", "--",
            "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            f"--user-data-dir={directory / 'profile'}",
            f"--window-size={WINDOW}", "--virtual-time-budget=5000",
            f"--screenshot={out.resolve()}", html.as_uri(),
        ]  # fmt: skip
        subprocess.run(command, check=True, timeout=180, capture_output=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    render(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "report.png")
