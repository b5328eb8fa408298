"""The watch engine without a lab: windows from a scripted timeline, and a real loopback HTTP peer.

The loopback test drops and restores a plain HTTP listener on 127.0.0.1 (a
real socket server, the simplest real peer the HTTP probe talks to) and
checks that the report finds the gap where the test made it.
"""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cutover.cli import watch
from cutover.model.inventory import load_inventory
from tests.suite import REPO

REFUSED = "connection refused by 198.51.100.10:143 (nothing listening)"


def seen(at: float, identity: str | None, problem: str | None = None) -> watch.Observation:
    return watch.Observation(at, 0.01, identity, identity, problem)


def test_window_has_edges_reason_and_servers_around_it() -> None:
    line = watch.Timeline("imap-143-old")
    for observation in (
        seen(1.0, "old"),
        seen(1.2, None, REFUSED),
        seen(1.4, None, "timed out after 5 s reading the IMAP greeting"),
        seen(1.6, None, REFUSED),
        seen(1.8, "new"),
        seen(2.0, "new"),
    ):
        line.add(observation)
    (window,) = line.windows
    assert (window.start, window.end, window.last_ok, window.last_failed) == (1.2, 1.8, 1.0, 1.6)
    assert (window.before, window.after) == ("old", "new")
    assert window.problems == [REFUSED, "timed out after 5 s reading the IMAP greeting"]
    assert window.failed_probes == 3
    assert window.duration(stopped=9.0) == pytest.approx(0.6)
    assert window.uncertainty == pytest.approx(0.2)
    assert (line.probes, line.failed_probes, line.first, line.last) == (6, 3, "old", "new")
    assert line.changes == []


def test_identity_change_without_a_gap_is_not_downtime() -> None:
    line = watch.Timeline("smtp-25-old")
    for observation in (seen(1.0, "old"), seen(1.2, "new"), seen(1.4, "new")):
        line.add(observation)
    assert line.windows == []
    assert line.changes == [(1.2, "old", "new")]
    assert line.downtime(stopped=2.0) == 0


def test_window_still_open_at_stop_lasts_until_stop() -> None:
    line = watch.Timeline("http-80-old")
    for observation in (seen(1.0, "old"), seen(1.2, None, REFUSED), seen(1.4, None, REFUSED)):
        line.add(observation)
    (window,) = line.windows
    assert window.end is None and window.after is None
    assert line.downtime(stopped=3.0) == pytest.approx(1.8)
    assert window.to_json(stopped=3.0)["open"] is True


def test_endpoint_that_never_answered_has_no_server_before() -> None:
    line = watch.Timeline("mysql-3306-new")
    line.add(seen(1.0, None, REFUSED))
    assert line.windows[0].before is None and line.first is None


# --- a real peer on loopback --------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"loopback peer\n"
        self.send_response(200)
        self.send_header("X-Served-By", "loopback.test")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Peer:
    """An HTTP server on a loopback address that can be dropped and brought back."""

    def __init__(self, address: str, port: int) -> None:
        self.address = address
        self.port = port
        self.server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> None:
        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer((self.address, self.port), _Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self.server = None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def loopback(tmp_path: Path) -> Iterator[tuple[_Peer, Path]]:
    """An inventory whose old IP is 127.0.0.1 and new IP 127.0.0.2; yields old's peer."""
    port = _free_port()
    peer, other = _Peer("127.0.0.1", port), _Peer("127.0.0.2", port)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "name: loopback\n"
        "old: {address: 127.0.0.1}\n"
        "new: {address: 127.0.0.2}\n"
        "http: {identity_header: X-Served-By}\n"
        f"services: [{{name: web, port: {peer.port}, protocol: http}}]\n"
        "timeouts: {connect: 1, operation: 1}\n",
        encoding="utf-8",
    )
    peer.start()
    other.start()
    try:
        yield peer, inventory
    finally:
        for running in (peer, other):
            if running.server is not None:
                running.stop()


def test_engine_finds_the_gap_a_peer_was_down(loopback: tuple[_Peer, Path], tmp_path: Path) -> None:
    peer, inventory_path = loopback
    stop = threading.Event()
    output = tmp_path / "watch.json"
    result: dict[str, object] = {}

    def watcher() -> None:
        inventory = load_inventory(inventory_path)
        result.update(watch.run(inventory, interval=0.05, output=output, stop=stop))

    thread = threading.Thread(target=watcher)
    thread.start()
    time.sleep(0.5)
    dropped = time.time()
    peer.stop()
    time.sleep(0.6)
    restored = time.time()
    peer.start()
    time.sleep(0.5)
    stop.set()
    thread.join(timeout=10)
    data = json.loads(output.read_text(encoding="utf-8"))
    assert data == result
    old, new = data["endpoints"]
    assert new["windows"] == [] and new["probes"] > 10
    (window,) = old["windows"]
    assert abs(window["start"] - dropped) < 0.5, (window, dropped)
    assert abs(window["end"] - restored) < 0.5, (window, restored)
    # A probe caught mid-shutdown sees a reset first; the closed port then refuses.
    assert any("connection refused" in problem for problem in window["problems"]), window
    assert f"127.0.0.1:{peer.port}" in window["failed"], window
    assert window["before"] == window["after"] == "loopback.test"
    assert old["probes"] > 10
    text = "\n".join(watch.render_table(data))
    assert f"web-{peer.port}-old" in text and window["failed"] in text


def test_cli_writes_report_and_prints_table(loopback: tuple[_Peer, Path], tmp_path: Path) -> None:
    peer, inventory_path = loopback
    output = tmp_path / "report.json"
    completed = subprocess.run(
        [sys.executable, "-m", "cutover", "watch", "-i", str(inventory_path),
         "--interval", "0.1", "--duration", "0.5", "--output", str(output)],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    data = json.loads(output.read_text(encoding="utf-8"))
    assert [e["id"] for e in data["endpoints"]] == [f"web-{peer.port}-old", f"web-{peer.port}-new"]
    assert all(e["windows"] == [] and e["probes"] >= 3 for e in data["endpoints"])
    assert "no downtime" in completed.stdout
    assert f"web-{peer.port}-old" in completed.stdout


def test_cli_refuses_a_nonpositive_interval(loopback: tuple[_Peer, Path]) -> None:
    _, inventory_path = loopback
    completed = subprocess.run(
        [sys.executable, "-m", "cutover", "watch", "-i", str(inventory_path), "--interval", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert completed.returncode == 4
    assert "--interval" in completed.stderr


# --- dual stack: one endpoint per address ------------------------------------


def _inventory(tmp_path: Path, old: str, new: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "name: dual\n"
        f"old: {{address: {old}}}\n"
        f"new: {{address: {new}}}\n"
        "services: [{name: imaps, port: 993, protocol: imap, tls: implicit}]\n",
        encoding="utf-8",
    )
    return path


def _report(inventory_path: Path, problems: dict[str, str]) -> dict[str, Any]:
    """The report of one scripted probe per endpoint: `problems` by endpoint id, else good."""
    inventory = load_inventory(inventory_path)
    endpoints = watch.watch_endpoints(inventory)
    timelines = {e.id: watch.Timeline(e.id) for e in endpoints}
    for endpoint in endpoints:
        timelines[endpoint.id].add(seen(1.0, "new"))
        problem = problems.get(endpoint.id)
        timelines[endpoint.id].add(seen(1.2, None if problem else "new", problem))
    return watch.report(inventory, endpoints, timelines, 1.0, 2.0, 0.2)


def test_each_address_of_a_dual_stack_host_is_its_own_endpoint(tmp_path: Path) -> None:
    path = _inventory(
        tmp_path, '[198.51.100.10, "2001:db8:5100::10"]', '[198.51.100.20, "2001:db8:5100::20"]'
    )
    refused = "connection refused by [2001:db8:5100::10]:993 (nothing listening)"
    data = _report(path, {"imaps-993-old-v6": refused})
    rows = {e["id"]: e for e in data["endpoints"]}
    assert list(rows) == [
        "imaps-993-old-v4", "imaps-993-old-v6", "imaps-993-new-v4", "imaps-993-new-v6",
    ]  # fmt: skip
    assert [(e["address"], e["family"]) for e in rows.values()] == [
        ("198.51.100.10", "v4"), ("2001:db8:5100::10", "v6"),
        ("198.51.100.20", "v4"), ("2001:db8:5100::20", "v6"),
    ]  # fmt: skip
    # Measured apart: old's IPv6 address was down while its IPv4 address answered.
    assert len(rows["imaps-993-old-v6"]["windows"]) == 1
    assert rows["imaps-993-old-v4"]["windows"] == []
    table = watch.render_table(data)
    assert table[1].split()[:2] == ["endpoint", "family"], table
    families = {line.split()[0]: line.split()[1] for line in table[2:6]}
    assert families == {
        "imaps-993-old-v4": "v4", "imaps-993-old-v6": "v6",
        "imaps-993-new-v4": "v4", "imaps-993-new-v6": "v6",
    }, table  # fmt: skip
    (window_line,) = [line for line in table[6:] if line.startswith("imaps-993-old-v6 ")]
    assert refused in window_line, table


def test_a_side_with_one_address_keeps_its_plain_row_in_a_mixed_inventory(tmp_path: Path) -> None:
    path = _inventory(tmp_path, '[198.51.100.10, "2001:db8:5100::10"]', '"2001:db8:5100::20"')
    data = _report(path, {})
    assert [e["id"] for e in data["endpoints"]] == [
        "imaps-993-old-v4", "imaps-993-old-v6", "imaps-993-new",
    ]  # fmt: skip
    new = data["endpoints"][2]
    assert "family" not in new and new["address"] == "2001:db8:5100::20"
    # The table still names the family of the new side's only (IPv6) address.
    assert watch.render_table(data)[4].split()[:2] == ["imaps-993-new", "v6"]


def test_a_single_address_inventory_reports_and_renders_as_before(tmp_path: Path) -> None:
    data = _report(_inventory(tmp_path, "198.51.100.10", "198.51.100.20"), {})
    assert [e["id"] for e in data["endpoints"]] == ["imaps-993-old", "imaps-993-new"]
    assert all("family" not in e for e in data["endpoints"])
    assert list(data["endpoints"][0])[:6] == ["id", "service", "port", "side", "address", "probes"]
    table = watch.render_table(data)
    assert table[1] == (
        f"{'endpoint':<22}{'probes':>7}{'windows':>8}{'downtime':>10}  answered by (first -> last)"
    )
    assert table[2] == f"{'imaps-993-old':<22}{2:>7}{0:>8}{0:>9.2f}s  new"
