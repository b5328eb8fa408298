"""The services checks against the dual-stack lab: every check on every address.

The lab's own inventory lists both addresses of each host (v4 and v6); the
IPv6-only inventory lists only the v6 ones. Each run executes the ports, TLS,
HTTP and MySQL checks from the client namespace and reads the JUnit XML. The
runs of one phase share a baseline, as an operator's would.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Lab
from tests.suite import REPO, SuiteRun

SERVICES = [str(REPO / "checks" / f) for f in ("test_ports.py", "test_tls.py", "test_http.py")]
CHECKS = [*SERVICES, str(REPO / "checks" / "test_mysql.py")]
OLD6, NEW6 = "2001:db8:5100::10", "2001:db8:5100::20"
# What an endpoint check is per address (PORT, TLS01-03, HTTP01 per vhost).
PER_ENDPOINT = {"PORT01", "PORT02", "TLS01", "TLS02", "TLS03", "HTTP01"}


def run(
    lab: Lab, phase: str, checks: list[str] = CHECKS, inventory: Path | None = None
) -> SuiteRun:
    name = "v6only" if inventory is not None else "dual"
    baseline = lab.reports / f"services-{name}-baseline.json"
    return lab.suite(phase, *checks, f"--baseline={baseline}", inventory=inventory)


def ipv6_only(lab: Lab, tmp_path: Path) -> Path:
    return lab.inventory_variant(tmp_path / "v6only", source="inventory-ipv6.yaml")


def param(case_name: str) -> str:
    return case_name.partition("[")[2].rstrip("]")


def assert_green_per_family(result: SuiteRun, phase: str) -> None:
    assert result.cases and not result.failing(), result.summary()
    for case in result.cases:
        if case.check_id in PER_ENDPOINT and "side" in case.properties:
            tag = param(case.name).rsplit("-", 1)[-1]
            assert tag in ("v4", "v6"), case.name
            assert case.properties["family"] == tag, (case.name, case.properties)
    cap = {param(c.name) for c in result.cases if c.check_id == "CAP01"}
    sides = ("old", "new") if phase != "preflight" else ("new",)
    want = {f"imaps-993-{side}-{f}" for side in sides for f in ("v4", "v6")}
    assert want <= cap and not {c for c in cap if "-old-" in c and phase == "preflight"}, cap
    mysql = {param(c.name) for c in result.cases if c.check_id == "MYSQL03"}
    assert mysql == {"mysql-new-v4", "mysql-new-v6"}, result.summary()


def assert_ipv6_only_green(lab: Lab, phase: str, tmp_path: Path) -> None:
    result = run(lab, phase, inventory=ipv6_only(lab, tmp_path))
    assert result.cases and not result.failing(), result.summary()
    # One address per host: the plain ids, the v6 addresses in the properties.
    port01 = [c for c in result.cases if c.check_id == "PORT01"]
    assert {c.properties["address"] for c in port01} == {OLD6, NEW6}, result.summary()
    assert all("family" not in c.properties for c in port01), result.summary()
    assert any(c.name.endswith("[imaps-993]") for c in result.cases if c.check_id == "CAP01")


def test_preflight_dual_stack_green_on_both_families(preflight_lab: Lab) -> None:
    result = run(preflight_lab, "preflight")
    assert_green_per_family(result, "preflight")
    # The v6 endpoints were probed on the v6 addresses (the evidence names them).
    port01 = [c for c in result.cases if c.check_id == "PORT01" and c.name.endswith("-v6]")]
    assert {c.properties["address"] for c in port01} == {OLD6, NEW6}, result.summary()


def test_preflight_ipv6_only_inventory_green(preflight_lab: Lab, tmp_path: Path) -> None:
    assert_ipv6_only_green(preflight_lab, "preflight", tmp_path)


def test_cutover_dual_stack_green_and_compares_every_forwarded_address(cutover_lab: Lab) -> None:
    assert_green_per_family(run(cutover_lab, "cutover"), "cutover")


def test_cutover_ipv6_only_inventory_green(cutover_lab: Lab, tmp_path: Path) -> None:
    assert_ipv6_only_green(cutover_lab, "cutover", tmp_path)


def test_forward_v4_only_fails_only_old_v6_endpoints(cutover_lab: Lab) -> None:
    """The playbook's IPv4-only forward: every check on old's v6 endpoints, nothing else."""
    with cutover_lab.fault("forward-v4-only"):
        result = run(cutover_lab, "cutover", SERVICES)
    failing = result.failing()
    assert failing, result.summary()
    assert all("-old-v6" in c.name for c in failing), result.summary()
    assert {c.check_id for c in failing} == PER_ENDPOINT | {"CAP01", "TLS04"}, result.summary()
    # Every service of old's v6 address, each named with its bracketed address.
    port01 = {param(c.name) for c in failing if c.check_id == "PORT01"}
    assert len(port01) == 9, port01
    assert all(f"[{OLD6}]:" in c.message for c in failing if c.check_id == "PORT01"), port01
    cap = {param(c.name) for c in failing if c.check_id == "CAP01"}
    assert cap == {f"{s}-old-v6" for s in ("pop3-110", "pop3s-995", "imap-143", "imaps-993")} | {
        f"{s}-old-v6" for s in ("smtp-25", "smtps-465", "submission-587")
    }, cap


def test_old_server_on_old_v6_is_caught_by_port02(cutover_lab: Lab) -> None:
    """Old's own daemons on its v6 address: the "who answered" check there, nothing else
    of the services area (their capabilities and certificate are the old server's own)."""
    with cutover_lab.fault("v6-old-server-still-serving"):
        result = run(cutover_lab, "cutover", SERVICES)
    failing = result.failing()
    assert {c.check_id for c in failing} == {"PORT02"}, result.summary()
    assert all(param(c.name).endswith("-old-v6") for c in failing), result.summary()
    assert all("old.example.test" in c.message for c in failing), result.summary()


def test_acceptance_dual_stack_green(acceptance_lab: Lab) -> None:
    assert_green_per_family(run(acceptance_lab, "acceptance"), "acceptance")


def test_acceptance_ipv6_only_inventory_green(acceptance_lab: Lab, tmp_path: Path) -> None:
    assert_ipv6_only_green(acceptance_lab, "acceptance", tmp_path)
