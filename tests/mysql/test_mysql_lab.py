"""MySQL checks against the real lab: MariaDB on both hosts, the socat + ssh tunnel.

Healthy in every phase; each MySQL fault fails exactly its check with the
cause named; and the grants diff agrees with pt-show-grants run on both hosts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from checks.test_mysql import SYSTEM_ACCOUNTS
from cutover.compare.mysql import AccountGrants, Grantee, diff_grants
from cutover.probes.mysql.grants import account_grants
from tests.conftest import Lab
from tests.suite import Case, SuiteRun

# Ids here are those of a single-address inventory (dual stack:
# tests/ports/test_services_dual_lab.py).
pytestmark = pytest.mark.usefixtures("one_address_per_host")

CHECK_FILE = "checks/test_mysql.py"
NEW_IP = "198.51.100.20"
SOCKET = "/run/mysqld/mysqld.sock"
PHASE_IDS = {
    "preflight": {"MYSQL02", "MYSQL03", "MYSQL04", "MYSQL05", "MYSQL06"},
    "cutover": {"MYSQL01", "MYSQL02", "MYSQL03"},
    "acceptance": {"MYSQL02", "MYSQL03", "MYSQL04", "MYSQL05", "MYSQL06"},
}


def baseline_of(lab: Lab) -> Path:
    # One baseline across the phases: acceptance reads what preflight recorded.
    return lab.reports / "mysql-baseline.json"


def run_mysql(lab: Lab, phase: str) -> SuiteRun:
    return lab.suite(phase, CHECK_FILE, f"--baseline={baseline_of(lab)}")


def assert_all_pass(run: SuiteRun, phase: str) -> None:
    assert {c.check_id for c in run.cases} == PHASE_IDS[phase], run.summary()
    assert all(c.outcome == "passed" for c in run.cases), run.summary()
    assert run.returncode == 0, run.summary()


def only_failure(run: SuiteRun, check_id: str) -> Case:
    assert run.failing_ids() == {check_id}, run.summary()
    [case] = run.failing()
    return case


@contextmanager
def row_changed_on_new(lab: Lab) -> Iterator[None]:
    """One order's total changed on new only (the lab has no fault for it)."""
    lab.exec("new", "mariadb", "-e", "UPDATE app.orders SET total = total + 1 WHERE id = 42")
    try:
        yield
    finally:
        lab.exec("new", "mariadb", "-e", "UPDATE app.orders SET total = total - 1 WHERE id = 42")


# --- preflight -----------------------------------------------------------------


def test_preflight_healthy_records_the_baseline(preflight_lab: Lab) -> None:
    run = run_mysql(preflight_lab, "preflight")
    assert_all_pass(run, "preflight")
    names = {c.name for c in run.cases}
    assert {"test_grants_match", "test_data_matches[app]"} <= names
    # One MYSQL04 testcase for the pair, naming every account it compared.
    compared = run.by_name("test_grants_match").properties["accounts"].split(", ")
    assert {"app@localhost", "cutover_ro@198.51.100.%", "root@localhost"} <= set(compared)
    data = run.by_name("test_data_matches[app]")
    assert data.properties["without_primary_key"] == "audit_log"
    assert data.properties["database"] == "app"
    facts = run.by_name("test_new_server_facts")
    assert facts.properties["skip_name_resolve"] == "OFF"
    assert "MariaDB" in facts.properties["version"]
    direct = run.by_name("test_direct_login_refused[app@localhost]")
    # Access denied: 1045, or 1698 when no account matches the client's host at all
    # (MariaDB's answer changes with the accounts it has; the lab's dual-stack accounts
    # made it 1698).
    assert direct.properties["direct_login"].startswith(("refused: (1045)", "refused: (1698)"))
    section = json.loads(baseline_of(preflight_lab).read_text())["sections"]["mysql"]
    assert "app@localhost" in section["grants"]
    assert set(section["data/app"]) == {"audit_log", "customers", "orders"}
    # Password hashes (`*` + 40 hex digits) are never stored, only per-account fingerprints.
    assert not re.search(r"\*[0-9A-F]{40}", json.dumps(section)), section["grants"]
    assert section["grants"]["app@localhost"]["hashes"]


def test_preflight_narrowed_still_records_the_baseline(preflight_lab: Lab, tmp_path: Path) -> None:
    """`-k MYSQL03` runs neither MYSQL04 nor MYSQL05: the end of the run records their part."""
    baseline = tmp_path / "narrowed-baseline.json"
    run = preflight_lab.suite("preflight", CHECK_FILE, f"--baseline={baseline}", "-k", "MYSQL03")
    assert {c.check_id for c in run.cases} == {"MYSQL03"}, run.summary()
    assert run.returncode == 0, run.summary()
    section = json.loads(baseline.read_text())["sections"]["mysql"]
    assert "app@localhost" in section["grants"]
    assert set(section["data/app"]) == {"audit_log", "customers", "orders"}


def test_preflight_skip_name_resolve(preflight_lab: Lab) -> None:
    with preflight_lab.fault("mysql-skip-name-resolve"):
        run = run_mysql(preflight_lab, "preflight")
    case = only_failure(run, "MYSQL03")
    assert "skip_name_resolve is ON" in case.message
    assert NEW_IP in case.message and "app@localhost" in case.message


def test_preflight_grant_missing(preflight_lab: Lab) -> None:
    with preflight_lab.fault("mysql-grant-missing"):
        run = run_mysql(preflight_lab, "preflight")
    case = only_failure(run, "MYSQL04")
    assert case.name == "test_grants_match"
    assert "'app'@'localhost'" in case.message
    assert "missing on new: GRANT DELETE, INSERT, SELECT, UPDATE ON `app`.*" in case.message
    assert "extra on new:   GRANT INSERT, SELECT, UPDATE ON `app`.*" in case.message


def test_preflight_row_changed_on_new(preflight_lab: Lab) -> None:
    with row_changed_on_new(preflight_lab):
        run = run_mysql(preflight_lab, "preflight")
    case = only_failure(run, "MYSQL05")
    assert case.name == "test_data_matches[app]"
    assert "orders: content differs (rows old 60, new 60)" in case.message
    assert "first differing chunk #1" in case.message and "id 1 .. 60" in case.message
    assert NEW_IP in case.message


# --- pt-show-grants agreement ---------------------------------------------------

_SECTION = re.compile(r"^-- Grants for '(?P<user>.*)'@'(?P<host>.*)'$")


def pt_show_grants(lab: Lab, host: str) -> dict[Grantee, AccountGrants]:
    """pt-show-grants on one lab host (as root over its socket), parsed per account."""
    output = lab.exec(host, "pt-show-grants", "--socket", SOCKET).stdout
    lines: dict[Grantee, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        match = _SECTION.match(line)
        if match:
            current = lines.setdefault(Grantee(match["user"], match["host"]), [])
        elif line.startswith("--"):
            current = None
        elif current is not None and line.strip():
            current.append(line.rstrip(";"))
    return {g: account_grants(g, found) for g, found in lines.items()}


def pt_diff(lab: Lab) -> dict[str, str]:
    """Each differing account (as MySQL writes it) -> how it differs."""
    old, new = pt_show_grants(lab, "old"), pt_show_grants(lab, "new")
    return {
        g.sql: diff.describe()
        for g in sorted(set(old) | set(new))
        if (diff := diff_grants(old.get(g), new.get(g)))
        and not (diff.only_on and g in SYSTEM_ACCOUNTS)
    }


@pytest.mark.parametrize("fault", [None, "mysql-grant-missing"])
def test_grants_diff_agrees_with_pt_show_grants(preflight_lab: Lab, fault: str | None) -> None:
    with preflight_lab.fault(fault) if fault else _nothing():
        expected = pt_diff(preflight_lab)
        run = run_mysql(preflight_lab, "preflight")
    [case] = [c for c in run.cases if c.check_id == "MYSQL04"]
    assert case.outcome == ("failed" if expected else "passed"), run.summary()
    # The one testcase names exactly the accounts pt-show-grants shows differing.
    reported = re.findall(r"^(?:MYSQL04: )?grants of (.*) differ between", case.message, re.M)
    assert set(reported) == set(expected), run.summary()
    for account, description in expected.items():
        assert description in case.message, (account, description, case.message)
    if fault:
        assert expected, "the fault must show in pt-show-grants too"


@contextmanager
def _nothing() -> Iterator[None]:
    yield


# --- cutover ---------------------------------------------------------------------


def test_cutover_healthy(cutover_lab: Lab) -> None:
    run = run_mysql(cutover_lab, "cutover")
    assert_all_pass(run, "cutover")
    tunnel = run.by_name("test_tunnel_login[app@localhost]")
    assert tunnel.properties["current_user"] == "app@localhost"
    assert tunnel.properties["served_by"] == "new.example.test"
    assert tunnel.properties["socket_holder"].startswith("socat")


def test_cutover_tunnel_down(cutover_lab: Lab) -> None:
    with cutover_lab.fault("mysql-tunnel-down"):
        run = run_mysql(cutover_lab, "cutover")
    case = only_failure(run, "MYSQL01")
    assert case.name == "test_tunnel_login[app@localhost]"
    assert "socat is up but the ssh tunnel" in case.message
    assert SOCKET in case.message and "(2013)" in case.message


def test_cutover_skip_name_resolve(cutover_lab: Lab) -> None:
    with cutover_lab.fault("mysql-skip-name-resolve"):
        run = run_mysql(cutover_lab, "cutover")
    assert run.failing_ids() == {"MYSQL01", "MYSQL03"}, run.summary()
    tunnel = run.by_name("test_tunnel_login[app@localhost]")
    assert "skip_name_resolve" in tunnel.message and "'app'@'127.0.0.1'" in tunnel.message


# --- acceptance --------------------------------------------------------------------


def test_acceptance_healthy_against_the_baseline(acceptance_lab: Lab) -> None:
    run = run_mysql(acceptance_lab, "acceptance")
    assert_all_pass(run, "acceptance")
    grants = run.by_name("test_grants_match")
    assert grants.properties["grants_reference"] == "old server (preflight baseline)"


def test_acceptance_grant_missing(acceptance_lab: Lab) -> None:
    with acceptance_lab.fault("mysql-grant-missing"):
        run = run_mysql(acceptance_lab, "acceptance")
    case = only_failure(run, "MYSQL04")
    assert "preflight baseline" in case.message and "missing on new: GRANT DELETE" in case.message
