"""The service checks against the lab: green when healthy, red exactly where a fault breaks them.

Each run executes checks/test_ports.py, test_tls.py and test_http.py from the
client namespace and reads the JUnit XML. All phases share one baseline file,
as an operator's runs would.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Lab
from tests.suite import REPO, SuiteRun

# Ids and counts here are those of a single-address inventory (the dual-stack runs:
# tests/ports/test_services_dual_lab.py).
pytestmark = pytest.mark.usefixtures("one_address_per_host")

SERVICE_CHECKS = [
    str(REPO / "checks" / f) for f in ("test_ports.py", "test_tls.py", "test_http.py")
]
OLD, NEW = "198.51.100.10", "198.51.100.20"
MAIL_TLS = [
    "pop3-110",
    "pop3s-995",
    "imap-143",
    "imaps-993",
    "smtp-25",
    "smtps-465",
    "submission-587",
]


def run(lab: Lab, phase: str, *args: str) -> SuiteRun:
    baseline = lab.reports / "ports-baseline.json"
    return lab.suite(phase, *SERVICE_CHECKS, f"--baseline={baseline}", *args)


def failing(result: SuiteRun) -> set[tuple[str, str]]:
    """(check ID, parameter id) of every failed testcase."""
    return {(c.check_id, c.name.partition("[")[2].rstrip("]")) for c in result.failing()}


def endpoint_checks(endpoint: str) -> set[tuple[str, str]]:
    return {(check, endpoint) for check in ("PORT01", "PORT02", "TLS01", "TLS02", "TLS03")}


def assert_messages_name_endpoints(result: SuiteRun) -> None:
    for case in result.failing():
        if case.properties.get("address"):
            service = case.properties["service"].rsplit("-", 1)[0]
            assert service in case.message, case.message
            assert f"{case.properties['address']}:{case.properties['port']}" in case.message, (
                case.message
            )


def test_preflight_healthy(preflight_lab: Lab) -> None:
    result = run(preflight_lab, "preflight")
    assert not result.failing(), result.summary()
    answered = [c for c in result.cases if c.check_id == "PORT01" and c.outcome == "passed"]
    assert len(answered) == 18, result.summary()
    identity = result.by_name("test_served_by_expected_server[smtp-25-old]").properties
    assert "'old.example.test' (SMTP greeting)" in identity["identity"]


PREFLIGHT_FAULTS: dict[str, set[tuple[str, str]]] = {
    "starttls-off:587": endpoint_checks("submission-587-new") - {("PORT02", "submission-587-new")}
    | {("TLS04", "submission-587"), ("CAP01", "submission-587")},
    "capability-missing": {
        ("CAP01", s)
        for s in ("pop3-110", "pop3s-995", "imap-143", "imaps-993", "smtps-465", "submission-587")
    },
    "vhost-missing": {("HTTP01", "www.blog.test-http-80-new")},
    "service-down:new:imap": endpoint_checks("imap-143-new")
    | endpoint_checks("imaps-993-new")
    | {
        ("TLS04", "imap-143"),
        ("TLS04", "imaps-993"),
        ("CAP01", "imap-143"),
        ("CAP01", "imaps-993"),
    },
    "tls-cert-expired": {(c, f"{s}-new") for c in ("TLS01", "TLS03") for s in MAIL_TLS},
    "tls-cert-wrong-name": {("TLS02", f"{s}-new") for s in MAIL_TLS}
    | {("TLS04", s) for s in MAIL_TLS},
}

# What every failing message must show (a regex): the evidence of that fault.
EVIDENCE = {
    "starttls-off:587": r"STARTTLS is not offered|before STARTTLS: STARTTLS",
    "capability-missing": r"AUTH[= ]LOGIN|SASL LOGIN",
    "vhost-missing": r"www\.blog\.test",
    "service-down:new:imap": r"connection refused by 198\.51\.100\.20:(143|993)",
    "tls-cert-expired": r"expired",
    "tls-cert-wrong-name": r"does not cover mail\.example\.test",
}


@pytest.mark.parametrize("fault", list(PREFLIGHT_FAULTS))
def test_preflight_fault(preflight_lab: Lab, fault: str) -> None:
    with preflight_lab.fault(fault):
        result = run(preflight_lab, "preflight")
    assert failing(result) == PREFLIGHT_FAULTS[fault], result.summary()
    evidence = re.compile(EVIDENCE[fault])
    assert all(evidence.search(c.message) for c in result.failing() if c.check_id != "PORT02"), (
        result.summary()
    )
    assert_messages_name_endpoints(result)


def test_cutover_healthy(cutover_lab: Lab) -> None:
    result = run(cutover_lab, "cutover")
    assert not result.failing(), result.summary()
    identity = result.by_name("test_served_by_expected_server[smtp-25-old]").properties
    assert "'new.example.test' (SMTP greeting)" in identity["identity"]
    # The mail-flow probe writes: without --probe-mail it is skipped, saying how to opt in.
    probe = result.by_name("test_mail_relayed_to_new_server")
    assert probe.outcome == "skipped" and "--probe-mail" in probe.message, probe


PROBE = "test_mail_relayed_to_new_server"
PROBE_ACCOUNT = "carol@example.test"


def probe_run(
    lab: Lab, tmp_path: Path, delivery_timeout: float = 30, baseline: Path | None = None
) -> SuiteRun:
    """PORT03 alone, opted in (`--probe-mail`), on the cutover lab."""
    inventory = lab.inventory_variant(
        tmp_path, lambda data: data["timeouts"].update(mail_delivery=delivery_timeout)
    )
    return lab.suite(
        "cutover",
        f"{SERVICE_CHECKS[0]}::{PROBE}",
        "--probe-mail",
        f"--baseline={baseline or lab.reports / 'ports-baseline.json'}",
        inventory=inventory,
    )


def test_probe_mail_lands_on_the_new_server(cutover_lab: Lab, tmp_path: Path) -> None:
    """--probe-mail: sent to the old IP's port 25, found in carol's INBOX on new (doveadm too)."""
    result = probe_run(cutover_lab, tmp_path)
    case = result.by_name(PROBE)
    assert case.outcome == "passed", result.summary()
    props = case.properties
    assert props["check_id"] == "PORT03"
    assert props["probe_sent_to"] == f"smtp {OLD}:25 (old IP)", props
    assert "new.example.test" in props["probe_greeting"], props  # the forward reaches new
    assert "queued as" in props["probe_queued"], props
    assert "by new.example.test" in props["probe_received"], props
    assert int(props["probe_delivered_uid"]) > 0
    # Independently: Dovecot on new has exactly that message in carol's INBOX.
    found = cutover_lab.exec(
        "new", "doveadm", "search", "-u", PROBE_ACCOUNT, "mailbox", "INBOX",
        "header", "Message-ID", props["probe_message_id"],
    )  # fmt: skip
    assert len(found.stdout.split()) == 2, found.stdout  # "<mailbox guid> <uid>"
    assert found.stdout.split()[1] == props["probe_delivered_uid"]


def test_probe_mail_fails_when_delivery_is_deferred(cutover_lab: Lab, tmp_path: Path) -> None:
    with cutover_lab.fault("mail-delivery-deferred"):
        result = probe_run(cutover_lab, tmp_path, delivery_timeout=3)
    case = result.by_name(PROBE)
    assert case.outcome == "failed", result.summary()
    for evidence in (
        f"mail flow to {PROBE_ACCOUNT}",
        f"smtp {OLD}:25 (old IP)",
        "queued as",
        f"not in the INBOX on imaps {NEW}:993 (new IP) after 3 s",
        "Message-ID <cutover-probe.",
    ):
        assert evidence in case.message, case.message
    # Nothing was delivered meanwhile, and undoing the fault dropped the deferred probe.
    queue = cutover_lab.exec("new", "postqueue", "-p").stdout
    assert "Mail queue is empty" in queue, queue


def test_probe_mail_without_a_relay_fails_in_time(cutover_lab: Lab, tmp_path: Path) -> None:
    with cutover_lab.fault("forward-drop:25"):
        result = probe_run(cutover_lab, tmp_path)
    case = result.by_name(PROBE)
    assert case.outcome == "failed", result.summary()
    assert f"smtp {OLD}:25 (old IP): connection refused by {OLD}:25" in case.message, case


def forwarded(endpoint: str) -> set[tuple[str, str]]:
    """A broken forward: the endpoint checks, and the comparisons on that old endpoint."""
    return endpoint_checks(endpoint) | {("CAP01", endpoint), ("TLS04", endpoint)}


CUTOVER_FAULTS = {
    "forward-drop:993": (forwarded("imaps-993-old"), f"connection refused by {OLD}:993"),
    "forward-wrong-backend:143": (
        forwarded("imap-143-old"),
        "greeted with '+OK new.example.test",
    ),
}


@pytest.mark.parametrize("fault", list(CUTOVER_FAULTS))
def test_cutover_fault(cutover_lab: Lab, fault: str) -> None:
    expected, evidence = CUTOVER_FAULTS[fault]
    with cutover_lab.fault(fault):
        result = run(cutover_lab, "cutover")
    assert failing(result) == expected, result.summary()
    assert all(evidence in c.message for c in result.failing()), result.summary()
    assert_messages_name_endpoints(result)


def test_cutover_new_host_unreachable(cutover_lab: Lab) -> None:
    """With the new host's link down every check that needs it fails in time; the run completes."""
    link = ["ip", "netns", "exec", "cutover-new", "ip", "link", "set", "eth0"]
    subprocess.run([*link, "down"], check=True, timeout=30)
    try:
        result = run(cutover_lab, "cutover", "--timeout=60")
    finally:
        subprocess.run([*link, "up"], check=True, timeout=30)
        cutover_lab.recover_from_silent_new_host()
    port01 = [c for c in result.cases if c.check_id == "PORT01"]
    assert len(port01) == 18 and all(c.outcome == "failed" for c in port01), result.summary()
    assert not [c for c in result.cases if "Timeout" in c.message], result.summary()
    assert_messages_name_endpoints(result)


def test_a_narrowed_preflight_records_every_service(preflight_lab: Lab) -> None:
    """`-k PORT01` runs no check that compares with the baseline: the end of the run records
    what PORT02, CAP01, TLS04 and HTTP01 need later, as a full preflight does."""
    full, narrowed = (preflight_lab.reports / f"ports-{n}.json" for n in ("full", "narrowed"))
    for path in (full, narrowed):
        path.unlink(missing_ok=True)
    run_full = preflight_lab.suite("preflight", *SERVICE_CHECKS, f"--baseline={full}")
    assert not run_full.failing(), run_full.summary()
    result = preflight_lab.suite(
        "preflight", *SERVICE_CHECKS, f"--baseline={narrowed}", "-k", "PORT01"
    )
    assert {c.check_id for c in result.cases} == {"PORT01"}, result.summary()
    want = json.loads(full.read_text())["sections"]
    got = json.loads(narrowed.read_text())["sections"]
    for section in ("identity", "capabilities", "certificate_names", "vhosts"):
        assert want.get(section), f"a full preflight recorded no {section}"
        assert got.get(section) == want[section], section


def test_acceptance_healthy(acceptance_lab: Lab) -> None:
    result = run(acceptance_lab, "acceptance")
    assert not result.failing(), result.summary()


# --- agreement with monitoring-plugins -------------------------------------------

PLUGINS = "/usr/lib/nagios/plugins"
# The plugin an operator would use for each port (check_smtp 2.3 has no implicit
# TLS, and check_imap/check_pop no STARTTLS: those use what the plugins offer).
PLUGIN_FOR = {
    25: ["check_smtp", "-S"],
    587: ["check_smtp", "-S"],
    465: ["check_tcp", "--ssl", "-e", "220"],
    143: ["check_imap"],
    993: ["check_imap", "-S"],
    110: ["check_pop"],
    995: ["check_pop", "-S"],
    80: ["check_http"],
    3306: ["check_tcp"],
}


def plugin_verdicts(address: str) -> dict[int, bool]:
    verdicts = {}
    for port, (plugin, *options) in PLUGIN_FOR.items():
        command = [
            "ip",
            "netns",
            "exec",
            "cutover-client",
            f"{PLUGINS}/{plugin}",
            "-H",
            address,
            "-p",
            str(port),
            "-t",
            "5",
            *options,
        ]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=30)
        verdicts[port] = completed.returncode == 0
    return verdicts


@pytest.mark.parametrize("fault", [None, "starttls-off:587", "service-down:new:imap"])
def test_port_verdicts_agree_with_monitoring_plugins(preflight_lab: Lab, fault: str | None) -> None:
    if not Path(PLUGINS, "check_smtp").exists():
        pytest.skip("monitoring-plugins are not installed (apt-get install monitoring-plugins)")
    with preflight_lab.fault(fault) if fault else contextlib.nullcontext():
        result = run(preflight_lab, "preflight", "-k", "test_port_answers")
        plugins = {("old", p): ok for p, ok in plugin_verdicts(OLD).items()}
        plugins |= {("new", p): ok for p, ok in plugin_verdicts(NEW).items()}
    ours = {
        (c.properties["side"], int(c.properties["port"])): c.outcome == "passed"
        for c in result.cases
        if c.check_id == "PORT01"
    }
    assert ours == plugins, f"fault {fault}: ours {ours} vs plugins {plugins}"
    if fault:
        assert not all(ours.values())
