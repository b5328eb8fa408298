"""The legacy lab's old host speaks only TLS 1.0: openssl and the suite agree, TLS05 judges new.

- Agreement: on every TLS port of old (both addresses), `openssl s_client -tls1`
  succeeds and `-tls1_2` fails exactly where the suite reports a TLS 1.0-only
  server (TLS01's `tls_old_protocol` finding, TLS05's `old_tls_versions`).
- TLS05 under `tls-dropped-on-new` (new requires TLS 1.2): red on every new TLS
  endpoint, naming the port and TLSv1; green and recorded when the inventory
  acknowledges the drop (`tls.accept_dropped`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import Lab
from tests.suite import REPO, SuiteRun

TLS_CHECKS = str(REPO / "checks" / "test_tls.py")
# port -> s_client's -starttls protocol (None: implicit TLS)
STARTTLS = {993: None, 995: None, 465: None, 143: "imap", 110: "pop3", 25: "smtp", 587: "smtp"}


def s_client(address: str, port: int, version: str) -> bool:
    """Does a handshake pinned to `version` (any cipher, security level 0) succeed?"""
    host = f"[{address}]" if ":" in address else address
    protocol = STARTTLS[port]
    completed = subprocess.run(
        [
            "ip", "netns", "exec", "cutover-client",
            "timeout", "20",
            "openssl", "s_client", "-brief", f"-{version}",
            "-cipher", "DEFAULT:@SECLEVEL=0",
            "-connect", f"{host}:{port}",
            *(["-starttls", protocol] if protocol else []),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    return completed.returncode == 0 and "Protocol version:" in completed.stderr


def run(lab: Lab, *args: str, inventory: Path | None = None) -> SuiteRun:
    baseline = lab.reports / "tls-legacy-baseline.json"
    return lab.suite("preflight", TLS_CHECKS, f"--baseline={baseline}", *args, inventory=inventory)


def tls05(result: SuiteRun) -> list[Any]:
    return [case for case in result.cases if case.check_id == "TLS05"]


def test_openssl_agrees_with_the_suite_on_old_tls10_only(legacy_preflight_lab: Lab) -> None:
    result = run(legacy_preflight_lab)
    assert not result.failing(), result.summary()
    found = {
        (case.properties["address"], int(case.properties["port"])): case.properties
        for case in result.cases
        if case.check_id == "TLS01" and case.properties.get("side") == "old"
    }
    assert {port for _, port in found} == set(STARTTLS), sorted(found)
    old_versions = {case.properties["old_tls_versions"] for case in tls05(result)}
    assert old_versions == {"TLSv1"}, old_versions
    for (address, port), properties in sorted(found.items()):
        tls10_only = properties.get("tls_old_protocol") == "TLSv1"
        assert properties.get("tls_old_cipher", "").endswith("-SHA"), properties
        assert s_client(address, port, "tls1") is tls10_only, (address, port)
        assert s_client(address, port, "tls1_2") is not tls10_only, (address, port)


def test_tls05_names_the_versions_new_drops_unless_acknowledged(
    legacy_preflight_lab: Lab, tmp_path: Path
) -> None:
    lab = legacy_preflight_lab

    def acknowledge(data: dict[str, Any]) -> None:
        data.setdefault("tls", {})["accept_dropped"] = ["TLSv1", "TLSv1.1"]

    acknowledged = lab.inventory_variant(tmp_path / "ack", acknowledge)
    with lab.fault("tls-dropped-on-new"):
        red = run(lab)
        green = run(lab, inventory=acknowledged)
    failing = {case.check_id for case in red.failing()}
    assert failing == {"TLS05"}, red.summary()
    cases = tls05(red)
    assert cases and all(case.outcome == "failed" for case in cases), red.summary()
    for case in cases:
        port = case.properties["port"]
        assert case.message.startswith("TLS05"), case.message
        assert f":{port} (new IP): refuses TLSv1," in case.message, case.message
        assert "clients that speak only TLSv1 will lose" in case.message, case.message
        assert case.properties["new_tls_versions"] == "TLSv1.2 TLSv1.3", case.properties
    assert not green.failing(), green.summary()
    for case in tls05(green):
        assert case.outcome == "passed", case.message
        assert case.properties["tls_accept_dropped"] == "TLSv1", case.properties
