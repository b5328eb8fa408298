"""Smoke tests of the bench harness: it measures, builds the same work, and prints a table.

Correctness only: no timing is asserted here (the figures live in
docs/performance.md and are ratios measured by `python -m bench`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import nagios, raw
from bench.__main__ import Row, render
from bench.harness import BenchError, measure
from cutover.probes.dns.zones import zone_questions
from tests.suite import REPO


def test_measure_reports_output_and_peak_memory() -> None:
    run = measure([sys.executable, "-c", "x = bytearray(64 * 2**20); print('done')"])
    assert run.output.strip() == "done" and run.returncode == 0
    assert run.peak_mib >= 64  # the child's own peak RSS, read with wait4
    assert run.seconds > 0


def test_measure_reports_the_cpu_of_the_command_and_its_children() -> None:
    # The work is done by a grandchild: wait4 counts every descendant waited for.
    burn = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'sum(range(10**7))'])"
    run = measure([sys.executable, "-c", burn])
    idle = measure([sys.executable, "-c", "pass"])
    assert run.cpu_s > idle.cpu_s
    assert run.busy is not None and 0.0 < run.busy <= 1.0
    assert run.load.startswith("CPU ") and "% busy" in run.load


def test_measure_refuses_an_unexpected_exit_code() -> None:
    with pytest.raises(BenchError, match="exited 3"):
        measure([sys.executable, "-c", "raise SystemExit(3)"])
    assert measure([sys.executable, "-c", "raise SystemExit(1)"], ok=(0, 1)).returncode == 1


@pytest.mark.parametrize("names", [["www", "mail"], ["www", "ftp", "www"]])
def test_raw_dns_asks_the_suites_questions(names: list[str]) -> None:
    suite = [(f"{name}.", rdtype) for name, rdtype in zone_questions("zone0001.test", names)]
    assert raw.questions({"name": "zone0001.test", "names": names}) == suite


def _inventory(tmp_path: Path, zones: int) -> Path:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "ro").write_text("not-a-real-password\n")
    zone_lines = "".join(
        f"    - {{name: zone{i}.test, nameservers: [198.51.100.53, 198.51.100.54]}}\n"
        for i in range(zones)
    )
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "old: {address: 198.51.100.10}\nnew: {address: 198.51.100.20}\n"
        "hostnames: [mail.example.test]\n"
        "services:\n"
        "  - {name: smtp, port: 25, protocol: smtp, tls: starttls}\n"
        "  - {name: smtps, port: 465, protocol: smtp, tls: implicit}\n"
        "  - {name: imap, port: 143, protocol: imap, tls: starttls}\n"
        "  - {name: imaps, port: 993, protocol: imap, tls: implicit}\n"
        "  - {name: pop3, port: 110, protocol: pop3, tls: starttls}\n"
        "  - {name: pop3s, port: 995, protocol: pop3, tls: implicit}\n"
        "  - {name: submission, port: 587, protocol: smtp, tls: starttls}\n"
        "  - {name: http, port: 80, protocol: http}\n"
        "  - {name: mysql, port: 3306, protocol: mysql}\n"
        "http: {vhosts: [{host: www.example.test}, {host: www.shop.test}]}\n"
        "mysql: {admin: {user: ro, password_file: secrets/ro}}\n"
        f"dns:\n  zones:\n{zone_lines}",
        encoding="utf-8",
    )
    return path


def test_nagios_loop_runs_one_plugin_per_port_and_ip(tmp_path: Path) -> None:
    script, processes = nagios.loop_script(_inventory(tmp_path, 3), tmp_path, scale=False)
    lines = [line for line in script.read_text().splitlines() if line.startswith("./check_")]
    assert processes == len(lines) == 18
    assert "./check_smtp -H 198.51.100.10 -p 25 -S >/dev/null" in lines
    assert "./check_simap -H 198.51.100.20 -p 993 >/dev/null" in lines
    assert "./check_http -H mail.example.test -I 198.51.100.10 -p 80 >/dev/null" in lines
    # The MySQL password goes in an options file (mode 0600), never on a command line.
    assert not any("not-a-real-password" in line for line in lines)
    cnf = tmp_path / "check_mysql.cnf"
    assert "not-a-real-password" in cnf.read_text() and cnf.stat().st_mode & 0o077 == 0


def test_nagios_loop_covers_every_address_of_a_dual_stack_side(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, 1)
    text = inventory.read_text()
    for side, v4, v6 in (("old", "198.51.100.10", "2001:db8::10"), ("new", "198.51.100.20",
                                                                     "2001:db8::20")):  # fmt: skip
        text = text.replace(f"{side}: {{address: {v4}}}", f"{side}: {{address: [{v4}, '{v6}']}}")
    inventory.write_text(text)
    script, processes = nagios.loop_script(inventory, tmp_path, scale=False)
    lines = [line for line in script.read_text().splitlines() if line.startswith("./check_")]
    assert processes == len(lines) == 36 == len(nagios.endpoints(inventory))
    assert "./check_simap -H 2001:db8::10 -p 993 >/dev/null" in lines
    assert "./check_smtp -H 2001:db8::20 -p 25 -S >/dev/null" in lines


def test_nagios_loop_at_scale_adds_vhosts_and_every_dns_question(tmp_path: Path) -> None:
    _, processes = nagios.loop_script(_inventory(tmp_path, 3), tmp_path, scale=True)
    questions = len(zone_questions("zone0.test", ["www", "mail"]))
    assert processes == 18 + 2 * 2 + 3 * 2 * questions


def test_table_shows_ratio_and_verdict() -> None:
    rows = [
        Row("full preflight", 2.0, 4.0, "raw sequential", 80.0, "<= 1.0x raw", True),
        Row("collect 10000 items", 3.5, None, "-", None, "< 3 s", False),
    ]
    text = "\n".join(render(rows))
    assert "0.50x" in text and "yes" in text and "NO" in text
    long = Row("x" * 60, 1.0, 2.0, "raw", None, "<= 2.0x pytest --version here", False)
    lines = render([*rows, long])
    # A long name or target widens its column: the verdict never runs into the target.
    assert "here NO" in lines[-1], lines[-1]
    # Every row's figures stand under the header's: the ratio column ends at one place.
    ratio_end = lines[0].index("ratio") + len("ratio")
    assert [line[ratio_end - 1] for line in lines[2:]] == ["x", "-", "x"], lines
    assert lines[0].index("suite s") > 60


def test_cli_runs_the_collection_benchmark_quickly(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "collect", "--quick", f"--scratch={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "collect 996 items" in completed.stdout, completed.stdout


def test_cli_refuses_an_unknown_benchmark() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "nope"], cwd=REPO, capture_output=True, text=True
    )
    assert completed.returncode == 2 and "unknown benchmark nope" in completed.stderr
