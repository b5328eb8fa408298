"""Watch mode against the lab in the cutover state: a dropped forward is found where it happened.

The watcher runs in the client namespace as an operator would run it; the
test drops one socat forward on the old host (`lab fault forward-drop:PORT`)
and restores it, timing both moments itself, and reads the JSON report. The
lab CLI takes a moment, so each moment is known as an interval (before and
after the CLI call); the window's edges must fall within 0.5 s of it.

The lab is dual stack: each address of each host is its own endpoint. The
fault drops the IPv4 forward only, so the window is on `imap-143-old-v4`
and `imap-143-old-v6` (its own forward) stays up: the families are measured
apart.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import Lab, lab_cli
from tests.suite import REPO

PORT = 143
OLD_ENDPOINT = f"imap-{PORT}-old-v4"
OLD_V6 = f"imap-{PORT}-old-v6"
TOLERANCE = 0.5


def timed(*args: str) -> tuple[float, float]:
    before = time.time()
    lab_cli(*args)
    return before, time.time()


def within(moment: float, interval: tuple[float, float]) -> bool:
    return interval[0] - TOLERANCE <= moment <= interval[1] + TOLERANCE


def test_dropped_forward_window_is_measured(cutover_lab: Lab) -> None:
    output = cutover_lab.reports / "watch.json"
    watcher = subprocess.Popen(
        ["ip", "netns", "exec", "cutover-client", sys.executable, "-m", "cutover", "watch",
         "-i", str(cutover_lab.inventory), "--interval", "0.2", "--output", str(output),
         "--duration", "120"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(2.0)  # a few good probes first: "before" must name the server
        dropped = timed("fault", f"forward-drop:{PORT}")
        time.sleep(2.0)
        restored = timed("fault", "--undo", f"forward-drop:{PORT}")
        time.sleep(1.5)
    finally:
        watcher.send_signal(signal.SIGTERM)  # `ip netns exec` execs: this is the watcher
        stdout, stderr = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, stderr
    data = json.loads(output.read_text(encoding="utf-8"))
    by_id: dict[str, dict[str, Any]] = {e["id"]: e for e in data["endpoints"]}
    assert len(by_id) == 36, sorted(by_id)  # 9 services x 2 hosts x 2 families
    placed = {i: (e["address"], e["family"]) for i, e in by_id.items() if i.startswith("imap-143")}
    assert placed == {
        OLD_ENDPOINT: ("198.51.100.10", "v4"), OLD_V6: ("2001:db8:5100::10", "v6"),
        f"imap-{PORT}-new-v4": ("198.51.100.20", "v4"),
        f"imap-{PORT}-new-v6": ("2001:db8:5100::20", "v6"),
    }, placed  # fmt: skip

    entry = by_id[OLD_ENDPOINT]
    assert len(entry["windows"]) == 1, entry
    (window,) = entry["windows"]
    evidence = f"{window}\ndrop {dropped}, restore {restored}\n{stdout}"
    assert within(window["start"], dropped), evidence
    assert within(window["end"], restored), evidence
    assert f"connection refused by 198.51.100.10:{PORT}" in window["failed"], evidence
    # In the cutover state the old IP is served by the new server, before and after.
    assert window["before"] == window["after"], evidence
    assert "new.example.test" in window["after"], evidence
    assert OLD_ENDPOINT in stdout and window["failed"] in stdout
    # The table has a row per family for the old side: v4 down once, v6 never.
    rows: dict[str, list[str]] = {}
    for line in stdout.splitlines():  # the first line per endpoint: its row (windows follow)
        if line.strip():
            rows.setdefault(line.split()[0], line.split())
    assert rows[OLD_ENDPOINT][1:4] == ["v4", str(entry["probes"]), "1"], stdout
    assert rows[OLD_V6][1:4] == ["v6", str(by_id[OLD_V6]["probes"]), "0"], stdout
    assert "new.example.test" in by_id[OLD_V6]["last_answered_by"], by_id[OLD_V6]

    others = {i: e["windows"] for i, e in by_id.items() if i != OLD_ENDPOINT and e["windows"]}
    assert not others, others
    assert all(e["probes"] > 10 and e["last_answered_by"] for e in by_id.values()), by_id


def test_report_path_is_created(cutover_lab: Lab, tmp_path: Path) -> None:
    output = tmp_path / "nested" / "watch.json"
    completed = subprocess.run(
        ["ip", "netns", "exec", "cutover-client", sys.executable, "-m", "cutover", "watch",
         "-i", str(cutover_lab.inventory), "--duration", "1", "--output", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    data = json.loads(output.read_text(encoding="utf-8"))
    assert all(e["windows"] == [] for e in data["endpoints"]), completed.stdout
    for family in ("v4", "v6"):  # the old address of each family forwards to the new server
        smtp_old = next(e for e in data["endpoints"] if e["id"] == f"smtp-25-old-{family}")
        assert smtp_old["first_answered_by"] == "new.example.test", smtp_old


def test_ipv4_only_forwarding_is_down_on_every_old_v6_row_and_nowhere_else(
    cutover_lab: Lab, tmp_path: Path
) -> None:
    """`forward-v4-only` (the playbook's script as written): old's IPv6 address refuses."""
    output = tmp_path / "watch.json"
    with cutover_lab.fault("forward-v4-only"):
        completed = subprocess.run(
            ["ip", "netns", "exec", "cutover-client", sys.executable, "-m", "cutover", "watch",
             "-i", str(cutover_lab.inventory), "--duration", "1.5", "--output", str(output)],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    data = json.loads(output.read_text(encoding="utf-8"))
    down = {e["id"] for e in data["endpoints"] if e["windows"]}
    old_v6 = {e["id"] for e in data["endpoints"] if e["id"].endswith("-old-v6")}
    assert len(old_v6) == 9 and down == old_v6, (sorted(down), completed.stdout)
    for entry in data["endpoints"]:
        if entry["id"] in old_v6:  # down from the first probe to the stop: never answered
            assert entry["first_answered_by"] is None and entry["windows"][0]["open"], entry
            assert "[2001:db8:5100::10]" in entry["windows"][0]["failed"], entry
