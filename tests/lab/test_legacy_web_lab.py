"""The legacy profile's web side: old's Apache 2.2 vhosts, their conversion by `sync`,
and the suite's HTTP checks against an unconverted and a partly converted copy on new.

Evidence comes from the servers' own tools (grep -n, apache2 -t, curl) and is
compared with what HTTP01/HTTP02 report.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab import legacy_web
from lab.topology import VHOSTS
from tests.conftest import Lab
from tests.lab.conftest import NEW_IP, OLD_IP, observe

SITES = legacy_web.SITES
APACHE = legacy_web.CONFIGTEST[:-1]  # apache2 with the lab's config, without -t
ACCESS_22 = legacy_web.ACCESS_22


def status(address: str, vhost: str, path: str = "/") -> str:
    return observe(
        "client",
        "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
        "-H", f"Host: {vhost}", f"http://{address}{path}",
    )  # fmt: skip


def grep_22(host: str) -> list[str]:
    """`grep -n` of the 2.2 access lines in the host's enabled vhosts: 'file:line'."""
    out = observe(host, "sh", "-c", f"grep -nHE {shlex.quote(ACCESS_22)} {SITES}/*.conf || true")
    return [":".join(line.split(":", 2)[:2]) for line in out.splitlines() if line]


def configtest(host: str) -> str:
    return observe(host, *legacy_web.CONFIGTEST)


def wait_status(address: str, vhost: str, wanted: str) -> str:
    """The vhost's status once a graceful reload took effect (bounded: 15 s)."""
    deadline = time.monotonic() + 15
    got = status(address, vhost)
    while got != wanted and time.monotonic() < deadline:
        time.sleep(0.3)
        got = status(address, vhost)
    return got


def graceful_new() -> None:
    observe("new", "sh", "-c", 'kill -USR1 "$(cat /run/apache2/apache2.pid)"')


def http_cases(lab: Lab) -> dict[str, list[tuple[str, str, str]]]:
    run = lab.suite("preflight", "-k", "HTTP0")
    cases: dict[str, list[tuple[str, str, str]]] = {"HTTP01": [], "HTTP02": []}
    for case in run.cases:
        if case.check_id in cases:
            cases[case.check_id].append((case.name, case.outcome, case.message))
    assert cases["HTTP01"] and cases["HTTP02"], run.summary()
    return cases


def test_legacy_old_serves_its_22_vhosts(legacy_up_lab: Lab) -> None:
    lines = grep_22("old")
    assert len(lines) >= 2 * len(VHOSTS), lines
    modules = observe("old", *APACHE, "-t", "-D", "DUMP_MODULES")
    assert "access_compat_module" in modules, modules
    assert "access_compat_module" not in observe("new", *APACHE, "-t", "-D", "DUMP_MODULES")
    for vhost in VHOSTS:
        assert status(OLD_IP, vhost) == "200", vhost
        page = observe("client", "curl", "-s", "-H", f"Host: {vhost}", f"http://{OLD_IP}/")
        assert f"This is the site {vhost}" in page
    # The 2.2 `Order deny,allow` / `Deny from all` / `Allow from 127.0.0.1` location.
    assert status(OLD_IP, VHOSTS[0], "/admin/") == "403"


def test_http02_accepts_22_access_lines_where_mod_access_compat_is_loaded(
    legacy_up_lab: Lab, tmp_path: Path
) -> None:
    """HTTP02 pointed at old (new.ssh = old's): the module is loaded there, so its
    Order/Allow lines are valid and only counted; NameVirtualHost still fails."""

    def new_is_old(data: dict[str, Any]) -> None:
        data["new"]["ssh"] = data["old"]["ssh"]

    inventory = legacy_up_lab.inventory_variant(tmp_path, new_is_old)
    run = legacy_up_lab.suite("preflight", "-k", "HTTP02", inventory=inventory)
    (case,) = [c for c in run.cases if c.check_id == "HTTP02"]
    assert case.outcome == "failed", run.summary()
    assert case.properties["access_compat"] == "loaded", case.properties
    assert int(case.properties["directives_22"]) == len(grep_22("old")) + 1, case.properties
    assert "without mod_access_compat" not in case.message, case.message
    assert "`apachectl -t` fails" not in case.message, case.message
    assert re.search(r"apache2\.conf:\d+: NameVirtualHost \*:80", case.message), case.message


def test_legacy_sync_converts_the_vhosts(legacy_preflight_lab: Lab) -> None:
    assert grep_22("new") == []
    assert "Syntax OK" in configtest("new")
    for vhost in VHOSTS:
        assert status(NEW_IP, vhost) == status(OLD_IP, vhost) == "200", vhost
    assert status(NEW_IP, VHOSTS[0], "/admin/") == "403"
    cases = http_cases(legacy_preflight_lab)
    assert all(outcome == "passed" for _, outcome, _ in cases["HTTP01"] + cases["HTTP02"]), cases


def test_unconverted_copy_is_named_line_by_line(legacy_preflight_lab: Lab) -> None:
    with legacy_preflight_lab.fault("apache22-copied-unconverted"):
        evidence = grep_22("new")
        assert evidence, "the fault copied no 2.2 lines"
        assert "Invalid command 'Order'" in configtest("new")
        # The refused reload: every site still answers from the converted config.
        for vhost in VHOSTS:
            assert status(NEW_IP, vhost) == "200", vhost
        cases = http_cases(legacy_preflight_lab)
    ((_, outcome, message),) = cases["HTTP02"]
    assert outcome == "failed", message
    assert message.startswith("HTTP02"), message
    assert "`apachectl -t` fails" in message and "Invalid command" in message, message
    named = set(re.findall(r"(/\S+\.conf:\d+): ", message))  # message and body repeat it
    assert sorted(named) == sorted(evidence), message
    assert all(outcome == "passed" for _, outcome, _ in cases["HTTP01"]), cases["HTTP01"]
    # Undone: new's config parses again, with no 2.2 line left.
    assert grep_22("new") == []
    assert "Syntax OK" in configtest("new")


@pytest.fixture
def partly_converted(legacy_preflight_lab: Lab) -> Iterator[None]:
    """Old's vhosts copied to new again, run through the sed that knows only the two
    generic pairs (the shop's `Allow from` exception dropped), new's Apache reloaded."""
    backup = "/root/sites-enabled.partial-test.tar"
    observe("new", "tar", "-C", SITES, "-cf", backup, ".")
    copy = f"tar -C {SITES} -cf - . | ssh root@{NEW_IP} tar -C {SITES} -xf -"
    observe("old", "sh", "-ec", copy)
    args = " ".join(f"-e {shlex.quote(e)}" for e in legacy_web.PARTIAL)
    observe("new", "sh", "-ec", f"sed -i -E {args} {SITES}/*.conf")
    graceful_new()
    try:
        yield
    finally:
        observe("new", "sh", "-ec", f"rm -f {SITES}/*.conf && tar -C {SITES} -xf {backup}")
        observe("new", "rm", "-f", backup)
        graceful_new()
        assert wait_status(NEW_IP, legacy_web.RESTRICTED, "200") == "200"


def test_partly_converted_config_answers_403_and_http01_says_so(
    legacy_preflight_lab: Lab, partly_converted: None
) -> None:
    shop = legacy_web.RESTRICTED
    assert wait_status(NEW_IP, shop, "403") == "403"
    assert grep_22("new") == [] and "Syntax OK" in configtest("new")
    cases = http_cases(legacy_preflight_lab)
    failed = {name: message for name, outcome, message in cases["HTTP01"] if outcome != "passed"}
    assert failed and all(shop in name for name in failed), failed
    for message in failed.values():
        assert message.startswith("HTTP01") and "status 403 instead of 200" in message, message
        assert "access is denied here" in message, message
    assert all(outcome == "passed" for _, outcome, _ in cases["HTTP02"]), cases["HTTP02"]
