"""The verdict a run ends with: failures led by check IDs, root causes after pytest's summary,
the HTML report for people, and failures of the run itself on their own line.

No lab: the service checks point at loopback addresses where nothing
listens (refused at once), the VFIO/VM checks read a captured host with one
fault (tests/test_reports.py's run), so the verdict has causes to group.
"""

from __future__ import annotations

import html
import json
import re
import socket
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from checks.causes import Result, area_verdict, root_causes
from checks.verdict import VerdictSummary
from cutover.model.phases import Phase
from tests.suite import REPO, SuiteRun, parse_junit, run_suite
from tests.test_reports import UNUSED_NEW, UNUSED_OLD, _inventory
from tests.trust.peers import Peer, imap_rejecting, smtp_good

FINAL_LINE = re.compile(r"^=+ .* in [\d.]+s")


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> tuple[SuiteRun, Path]:
    tmp_path = tmp_path_factory.mktemp("verdict")
    built, tarball = _inventory(tmp_path, "audio-on-snd-hda-intel")
    # A directory name that needs escaping: it reaches the HTML as the inventory's path.
    inventory = tmp_path / "a<b>&c" / "inventory.yaml"
    inventory.parent.mkdir()
    inventory.write_bytes(built.read_bytes())
    reports = tmp_path / "reports"
    run = run_suite("preflight", inventory, reports, f"--host-snapshot={tarball}")
    return run, reports


def verdict_of(run: SuiteRun) -> list[str]:
    """What the terminal prints after pytest's own final line."""
    lines = run.stdout.splitlines()
    final = max(i for i, line in enumerate(lines) if FINAL_LINE.match(line))
    return lines[final + 1 :]


def test_every_failure_leads_with_its_check_id_and_target(broken: tuple[SuiteRun, Path]) -> None:
    run, _ = broken
    assert run.failing(), run.summary()
    for case in run.failing():
        target = case.name.partition("[")[2].rstrip("]")
        lead = f"{case.check_id} {target}:" if target else f"{case.check_id}:"
        assert case.message.startswith(lead), case.message
    # The terminal's short summary says the same first line, and no failure is a chain.
    assert "\nPORT01 imaps-993-new: imaps 127.0.0.3:993 (new IP): no answer" in run.stdout
    assert "test_port_answers[imaps-993-new] - PORT01 imaps-" in run.stdout, run.stdout
    assert "During handling of the above exception" not in run.stdout
    assert not [c for c in run.failing() if "During handling" in c.message]


def test_an_area_whose_checks_were_all_skipped_says_skipped() -> None:
    # Nothing there was found ok. (An area the inventory does not configure is not
    # collected at all, so this run has no all-skipped area to show it.)
    assert area_verdict({"skipped": 2}) == "skipped"
    assert area_verdict({"skipped": 2, "passed": 1}) == "ok"
    assert area_verdict({"passed": 3, "failed": 1}) == "FAIL"


def test_the_verdict_comes_after_pytest_summary(broken: tuple[SuiteRun, Path]) -> None:
    run, _ = broken
    verdict = verdict_of(run)
    text = "\n".join(verdict)
    assert "cutover preflight: services x IPs" in text, run.stdout
    assert re.search(r"^imaps-993 +FAIL +FAIL", text, re.M), text
    assert re.search(r"^vfio +FAIL +16 passed, 1 failed \[VFIO05\]", text, re.M), text
    assert re.search(r"^vm +ok +12 passed, 1 skipped$", text, re.M), text
    assert "cutover preflight: root causes" in text, text
    for address in (UNUSED_OLD, UNUSED_NEW):
        naming = [line for line in verdict if line.startswith(f"{address} answered nothing")]
        assert len(naming) == 1, text
        assert "connection refused on every port tried (25, 993)" in naming[0]
        count = int(re.search(r": (\d+) checks failed$", naming[0]).group(1))  # type: ignore[union-attr]
        refused = [c for c in run.failing() if f"connection refused by {address}:" in c.message]
        assert count == len(refused), (naming[0], [c.name for c in refused])
    # No MYSQL03: the inventory has no mysql: section, so no MySQL check is collected.
    assert verdict[-1] == "1 check failed on its own: VFIO05", text


def test_the_html_report_opens_with_the_verdict(broken: tuple[SuiteRun, Path]) -> None:
    _, reports = broken
    page = (reports / "preflight.html").read_text(encoding="utf-8")
    verdict = page.index("Verdict: phase preflight, inventory reports-test")
    assert verdict < page.index('id="results-table"')
    assert "Root causes" in page and f"{UNUSED_NEW} answered nothing" in page
    assert 'data-column-type="checkId">Check</th>' in page
    assert "col-checkId" in page and "VFIO05" in page
    # Everything added is escaped: the inventory's directory is `a<b>&c`.
    assert "a&lt;b&gt;&amp;c" in page
    assert "a<b>&c" not in page
    assert html.escape("evidence recorded:") in page


def _hangs_up(sock: socket.socket, peer: Peer) -> None:
    """A forwarder whose backend is gone: accepts, then closes without a word."""


def test_a_forwarder_that_hangs_up_is_one_cause(tmp_path: Path) -> None:
    """The old IP accepts (socat) but never answers; the new IP refuses: two lines, two causes."""
    inventory = tmp_path / "inventory.yaml"
    data = {
        "name": "hang-up",
        "old": {"address": UNUSED_OLD},
        "new": {"address": UNUSED_NEW},
        "services": [
            {"name": "imaps", "port": 9993, "protocol": "imap", "tls": "implicit"},
            {"name": "imap", "port": 9143, "protocol": "imap", "tls": "starttls"},
        ],
        "timeouts": {"connect": 2, "operation": 2},
    }
    inventory.write_text(yaml.safe_dump(data), encoding="utf-8")
    with Peer(UNUSED_OLD, 9993, _hangs_up, "imaps"), Peer(UNUSED_OLD, 9143, _hangs_up, "imap"):
        run = run_suite("cutover", inventory, tmp_path / "reports", "-m", "ports or tls")
    verdict = verdict_of(run)
    old = [line for line in verdict if line.startswith(f"{UNUSED_OLD} accepted connections")]
    assert len(old) == 1 and "on port 9143, 9993: " in old[0], "\n".join(verdict)
    hung_up = [c for c in run.failing() if c.properties.get("address") == UNUSED_OLD]
    assert old[0].endswith(f": {len(hung_up)} checks failed"), (old[0], len(hung_up))
    new = [line for line in verdict if line.startswith(f"{UNUSED_NEW} answered nothing")]
    assert len(new) == 1, "\n".join(verdict)
    assert not [line for line in verdict if "on their own" in line], "\n".join(verdict)


def _report_data(page: str) -> dict[str, Any]:
    """The JSON pytest-html's page renders from (the `data-jsonblob` attribute)."""
    blob = re.search(r'data-jsonblob="([^"]*)"', page)
    assert blob, "no data-jsonblob in the HTML report"
    data: dict[str, Any] = json.loads(html.unescape(blob.group(1)))
    return data


def test_the_html_environment_shows_the_greetings_escaped(tmp_path: Path) -> None:
    """Server text reaches the page through shown() and html.escape: never as markup."""
    hostile = "<img src=x onerror=alert(1)>\x1b[31m"
    inventory = tmp_path / "inventory.yaml"
    data = {
        "name": "greetings",
        "old": {"address": UNUSED_OLD},
        "new": {"address": UNUSED_NEW},
        "services": [{"name": "smtp", "port": 2525, "protocol": "smtp", "tls": "none"}],
        "timeouts": {"connect": 2, "operation": 2},
    }
    inventory.write_text(yaml.safe_dump(data), encoding="utf-8")
    reports = tmp_path / "reports"
    with (
        Peer(UNUSED_OLD, 2525, smtp_good(hostile), "old"),
        Peer(UNUSED_NEW, 2525, smtp_good(hostile), "new"),
    ):
        run = run_suite("preflight", inventory, reports, "-k", "test_port_answers")
    cases = [c for c in run.cases if c.check_id == "PORT01"]
    assert cases and all(c.outcome == "passed" for c in cases), run.summary()
    environment = _report_data((reports / "preflight.html").read_text(encoding="utf-8"))[
        "environment"
    ]
    greetings = environment["server greetings (PORT01)"]
    assert set(greetings) == {"smtp-2525 old IP", "smtp-2525 new IP"}, greetings
    for greeting in greetings.values():
        assert greeting.startswith("220 &lt;img src=x onerror=alert(1)&gt;\\x1b[31m"), greeting
        assert "<" not in greeting and "\x1b" not in greeting


def test_the_html_environment_keeps_a_greeting_per_address_of_a_side(tmp_path: Path) -> None:
    """A side with two addresses (here two IPv4 ones: loopback peers) shows both greetings."""
    second = "127.0.0.14"
    inventory = tmp_path / "inventory.yaml"
    data = {
        "name": "greetings",
        "old": {"address": [UNUSED_OLD, second]},
        "new": {"address": UNUSED_NEW},
        "services": [{"name": "smtp", "port": 2525, "protocol": "smtp", "tls": "none"}],
        "timeouts": {"connect": 2, "operation": 2},
    }
    inventory.write_text(yaml.safe_dump(data), encoding="utf-8")
    reports = tmp_path / "reports"
    with (
        Peer(UNUSED_OLD, 2525, smtp_good("first"), "old"),
        Peer(second, 2525, smtp_good("second"), "old"),
        Peer(UNUSED_NEW, 2525, smtp_good("new"), "new"),
    ):
        run = run_suite("preflight", inventory, reports, "-k", "test_port_answers")
    assert [c.outcome for c in run.cases if c.check_id == "PORT01"] == ["passed"] * 3
    environment = _report_data((reports / "preflight.html").read_text(encoding="utf-8"))[
        "environment"
    ]
    greetings = environment["server greetings (PORT01)"]
    assert set(greetings) == {
        "smtp-2525 new IP",
        f"smtp-2525 old IP (v4, {UNUSED_OLD})",
        f"smtp-2525 old IP (v4, {second})",
    }, greetings
    assert "second" in greetings[f"smtp-2525 old IP (v4, {second})"], greetings
    # The terminal's matrix has a column per address of the old side too.
    header = ["service", "old", "v4", "old", "v4-2", "new", "IP"]
    assert header in [line.split() for line in verdict_of(run)], run.stdout


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_baseline_that_cannot_be_written_is_a_session_error(
    tmp_path: Path, workers: list[str]
) -> None:
    """Reported on its own line and as a JUnit suite property, exit 1, never on a check."""
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {"name": "session", "old": {"address": UNUSED_OLD}, "new": {"address": UNUSED_NEW}}
        ),
        encoding="utf-8",
    )
    records = tmp_path / "test_records.py"
    records.write_text(
        "def test_records_something(baseline):\n"
        "    baseline.record('identity', 'imaps-old', 'old.example.test')\n",
        encoding="utf-8",
    )
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    reports = tmp_path / "reports"
    run = run_suite(
        "preflight",
        inventory,
        reports,
        str(records),
        f"--baseline={blocker / 'baseline.json'}",
        *workers,
    )
    assert run.returncode == 1, run.summary()
    assert [c.outcome for c in run.cases] == ["passed"], run.summary()
    verdict = verdict_of(run)
    assert any(
        line.startswith("session error: the baseline was not saved:") and "not-a-directory" in line
        for line in verdict
    ), run.stdout
    junit = (reports / "preflight.xml").read_text(encoding="utf-8")
    assert 'name="session_error_1"' in junit and "the baseline was not saved" in junit
    assert parse_junit(reports / "preflight.xml")[0].outcome == "passed"


def test_dns06_says_it_could_not_read_the_sql_backend(tmp_path: Path) -> None:
    """Not "rows differ" when nothing was read; the localhost default is named as the suspect."""
    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        unused_port = probe.getsockname()[1]
    secret = tmp_path / "pdns-password"
    secret.write_text("not-used\n", encoding="utf-8")
    secret.chmod(0o600)
    inventory = tmp_path / "inventory.yaml"
    data = {
        "name": "dns-sql",
        "old": {"address": UNUSED_OLD},
        "new": {"address": UNUSED_NEW},
        "services": [],
        "timeouts": {"connect": 2, "operation": 2},
        "dns": {
            "zones": [{"name": "example.test", "nameservers": ["127.0.0.4"]}],
            "sql": [
                {
                    "nameserver": "127.0.0.4",
                    "port": unused_port,
                    "user": "pdns_ro",
                    "password_file": str(secret),
                }
            ],
        },
    }
    inventory.write_text(yaml.safe_dump(data), encoding="utf-8")
    run = run_suite("preflight", inventory, tmp_path / "reports", "-k", "sql_rows")
    cases = [c for c in run.cases if c.check_id == "DNS06"]
    assert cases and cases[0].outcome == "failed", run.summary()
    first = cases[0].message.splitlines()[0]
    assert first.startswith(
        "DNS06 example.test: example.test: cannot read the SQL backend of 127.0.0.4"
    ), first
    assert "differ" not in first, first
    assert "dns.sql host is localhost (the default)" in cases[0].message
    assert str(REPO) not in first


def _dead_nameserver(tmp_path: Path) -> Path:
    """One zone served by the new IP, where nothing listens (port 53 refused, like 25)."""
    inventory = tmp_path / "inventory.yaml"
    data = {
        "name": "dead-dns",
        "old": {"address": UNUSED_OLD},
        "new": {"address": UNUSED_NEW},
        "services": [{"name": "smtp", "port": 25, "protocol": "smtp", "tls": "starttls"}],
        "dns": {"zones": [{"name": "example.test", "nameservers": [UNUSED_NEW]}]},
        "timeouts": {"connect": 2, "operation": 2},
    }
    inventory.write_text(yaml.safe_dump(data), encoding="utf-8")
    return inventory


def test_a_dead_nameserver_is_its_address_s_root_cause(tmp_path: Path) -> None:
    """DNS and MAIL checks refused on port 53 are grouped under the address, 53 among its ports;
    a check that could judge no answer says so in its headline, not what it did not see."""
    run = run_suite("preflight", _dead_nameserver(tmp_path), tmp_path / "reports", "-m", "dns")
    failing = run.failing_ids()
    assert {"DNS01", "DNS02", "DNS03", "DNS04", "DNS05"} <= failing, run.summary()
    verdict = verdict_of(run)
    text = "\n".join(verdict)
    naming = [line for line in verdict if line.startswith(f"{UNUSED_NEW} answered nothing")]
    assert len(naming) == 1, text
    assert "connection refused on every port tried (25, 53)" in naming[0], text
    assert naming[0].endswith(f": {len(run.failing())} checks failed"), text
    assert not [line for line in verdict if "on their own" in line or "on its own" in line], text
    first = {c.check_id: c.message.splitlines()[0] for c in run.failing()}
    assert first["DNS02"].endswith(
        "example.test: cannot read the TTLs: no nameserver gave a usable answer (see DNS01):"
    ), first["DNS02"]
    assert "TTL above" not in first["DNS02"]
    assert "cannot tell whether the records point at 127.0.0.2 (old IP)" in first["DNS05"]
    assert "do not point" not in first["DNS05"]


def test_the_verdict_counts_setup_errors_as_errors(tmp_path: Path) -> None:
    """A host snapshot that unpacks but is no capture: the VFIO/VM checks error, not fail."""
    built, _ = _inventory(tmp_path, "audio-on-snd-hda-intel")
    member = tmp_path / "hello.txt"
    member.write_text("not a host capture\n", encoding="utf-8")
    tarball = tmp_path / "no-capture.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(member, arcname="hello.txt")
    run = run_suite(
        "preflight", built, tmp_path / "reports", f"--host-snapshot={tarball}", "-m", "vfio"
    )
    errors = [c for c in run.cases if c.outcome == "error"]
    assert errors and not [c for c in run.cases if c.outcome == "failed"], run.summary()
    verdict = verdict_of(run)
    text = "\n".join(verdict)
    assert re.search(rf"^vfio +FAIL +{len(errors)} errors \[", text, re.M), text
    assert "failed" not in text, text
    assert f"{len(errors)} checks could not run (error) on their own: " in text, text


def test_a_partial_run_says_what_was_not_checked(
    broken: tuple[SuiteRun, Path], tmp_path: Path
) -> None:
    """-k: the other areas are `not checked (deselected)`; -x: the checks never run are counted."""
    full, _ = broken
    planned = len(full.cases)
    built, tarball = _inventory(tmp_path, "audio-on-snd-hda-intel")
    snapshot = f"--host-snapshot={tarball}"
    selected = run_suite("preflight", built, tmp_path / "k", snapshot, "-k", "VFIO or VM")
    text = "\n".join(verdict_of(selected))
    assert "services x IPs" not in text, text  # no matrix: no header for one
    assert "cutover preflight: areas" in text, text
    for area in ("ports", "tls"):
        assert re.search(rf"^{area} +not checked: \d+ deselected by -k 'VFIO or VM'$", text, re.M)
    deselected = planned - len(selected.cases)
    assert (
        f"{deselected} of {planned} checks of the preflight phase not checked: "
        f"{deselected} deselected by -k 'VFIO or VM'"
    ) in text, text
    stopped = run_suite("preflight", built, tmp_path / "x", snapshot, "-x")
    text = "\n".join(verdict_of(stopped))
    unrun = planned - len(stopped.cases)
    assert unrun > 0, stopped.summary()
    assert (
        f"{unrun} of {planned} checks of the preflight phase not checked: "
        f"{unrun} not run (-x stopped the run)"
    ) in text, text
    assert re.search(r"^vfio +not checked: \d+ not run \(-x stopped the run\)$", text, re.M), text


def test_a_password_the_old_server_rejects_too_is_blamed_on_the_inventory(tmp_path: Path) -> None:
    """AUTH01 says the inventory's password is probably wrong, and folds into the account's
    root cause with IMAP01-05; IMAP messages show the server's words, not Python bytes."""
    inventory = tmp_path / "inventory.yaml"
    data = {
        "name": "wrong-password",
        "old": {"address": UNUSED_OLD},
        "new": {"address": UNUSED_NEW},
        "services": [{"name": "imap", "port": 11143, "protocol": "imap", "tls": "none"}],
        "mail": {"accounts": [{"user": "alice@example.test", "password_env": "VERDICT_PW"}]},
        "timeouts": {"connect": 2, "operation": 2},
    }
    inventory.write_text(yaml.safe_dump(data), encoding="utf-8")
    with (
        Peer(UNUSED_OLD, 11143, imap_rejecting, "old"),
        Peer(UNUSED_NEW, 11143, imap_rejecting, "new"),
    ):
        run = run_suite(
            "preflight",
            inventory,
            tmp_path / "reports",
            "-m",
            "imap",
            env={"VERDICT_PW": "wrong-password"},
        )
    auth = [c for c in run.failing() if c.check_id == "AUTH01"]
    assert len(auth) == 1, run.summary()
    message = auth[0].message
    assert message.startswith(
        "AUTH01 alice@example.test: login as alice@example.test rejected, by the old server too"
    ), message
    assert "inventory's password for this account is probably wrong" in message, message
    assert "does not accept this account's password" not in message, message
    imap = [c for c in run.failing() if c.check_id.startswith("IMAP")]
    assert imap, run.summary()
    for case in imap:
        assert ": [AUTHENTICATIONFAILED] Authentication failed." in case.message, case.message
        assert "b'" not in case.message, case.message
    verdict = verdict_of(run)
    text = "\n".join(verdict)
    assert (
        f"account alice@example.test rejected (login failed): {len(run.failing())} checks failed"
    ) in text, text
    assert not [line for line in verdict if "own:" in line], text


def test_a_missing_baseline_is_one_cause_whatever_the_area() -> None:
    """IMAP, POP, TLS and MySQL checks that found no baseline: one line, not "on their own"."""
    where = "reports/baseline.json"
    failures = [
        (
            "IMAP01",
            f"no IMAP baseline for alice@example.test in {where}: run the preflight phase "
            "first (while the old server still answers on the old IP)",
        ),
        (
            "POP01",
            f"no POP3 baseline for alice@example.test in {where}: run the preflight phase first",
        ),
        ("TLS04", "no names recorded (run preflight before the cutover to record it)"),
        ("MYSQL03", "no grants recorded: run preflight first (it records them)"),
        ("IMAP02", "truncated; run preflight again"),
        ("DNS03", "DNS03 example.test: TTL 3600"),
    ]
    results = [
        Result({"check_id": check_id}, "failed", f"{check_id} x: {message}")
        for check_id, message in failures
    ]
    assert root_causes(results) == [
        "no baseline from preflight (run the preflight phase first): 5 checks failed",
        "1 check failed on its own: DNS03",
    ]


def test_a_nameserver_that_never_answers_is_an_address_that_answered_nothing() -> None:
    timed_out = "timed out after 2 s asking 198.51.100.53:53 for example.test SOA"
    results = [
        Result({"check_id": "DNS01"}, "failed", f"DNS01 example.test: 198.51.100.53: {timed_out}"),
        Result({"check_id": "MAIL04"}, "failed", f"MAIL04 example.test: {timed_out}"),
        Result({"check_id": "VM01"}, "error", "VM01: cannot unpack host snapshot"),
    ]
    assert root_causes(results) == [
        "198.51.100.53 answered nothing: no answer to DNS queries on every port tried (53): "
        "2 checks failed",
        "1 check could not run (error) on its own: VM01",
    ]


# --- the services x IPs matrix: one column per address -------------------------


def matrix(results: list[Result]) -> list[str]:
    summary = VerdictSummary(None, Phase.CUTOVER)  # type: ignore[arg-type]
    summary.results = results
    return summary.matrix_lines()


def _matrix_results(tmp_path: Path, old: str, new: str, failing: set[str]) -> list[Result]:
    """PORT01's results on every endpoint of the cutover phase, as its JUnit properties say."""
    from checks.targets.services import endpoint_targets
    from cutover.model.inventory import load_inventory
    from cutover.model.phases import expectations

    path = tmp_path / "inventory.yaml"
    path.write_text(
        f"name: m\nold: {{address: {old}}}\nnew: {{address: {new}}}\n"
        "services: [{name: imaps, port: 993, protocol: imap, tls: implicit},\n"
        "           {name: smtp, port: 25, protocol: smtp}]\n",
        encoding="utf-8",
    )
    targets = endpoint_targets(load_inventory(path), expectations("cutover"))
    return [
        Result(
            {"check_id": "PORT01", **dict(t.junit_properties())},
            "failed" if t.id in failing else "passed",
        )
        for t in targets
    ]


def test_the_matrix_has_a_column_per_family_of_a_dual_stack_side(tmp_path: Path) -> None:
    old, new = '[198.51.100.10, "2001:db8:5100::10"]', '[198.51.100.20, "2001:db8:5100::20"]'
    results = _matrix_results(tmp_path, old, new, {"imaps-993-old-v6"})
    assert {r.props["family"] for r in results} == {"v4", "v6"}
    assert matrix(results) == [
        "service           old v4  old v6  new v4  new v6  ",
        "imaps-993         ok      FAIL    ok      ok      ",
        "smtp-25           ok      ok      ok      ok      ",
    ]


def test_a_mixed_inventory_has_family_columns_only_for_the_dual_stack_side(
    tmp_path: Path,
) -> None:
    results = _matrix_results(
        tmp_path, '[198.51.100.10, "2001:db8:5100::10"]', '"2001:db8:5100::20"', {"smtp-25-new"}
    )
    assert matrix(results) == [
        "service           old v4  old v6  new IP  ",
        "imaps-993         ok      ok      ok      ",
        "smtp-25           ok      ok      FAIL    ",
    ]


def test_the_matrix_of_a_single_address_inventory_is_unchanged(tmp_path: Path) -> None:
    results = _matrix_results(tmp_path, "198.51.100.10", "198.51.100.20", {"imaps-993-new"})
    assert all("family" not in r.props for r in results)
    assert matrix(results) == [
        "service           old IP  new IP  ",
        "imaps-993         ok      FAIL    ",
        "smtp-25           ok      ok      ",
    ]


def test_two_addresses_of_one_family_are_numbered_in_address_order() -> None:
    def port01(address: str, family: str, outcome: str) -> Result:
        props = {"check_id": "PORT01", "service": "http-80", "side": "new"}
        return Result(props | {"address": address, "family": family}, outcome)

    results = [
        port01("2001:db8::21", "v6", "failed"),
        port01("2001:db8::20", "v6", "passed"),
        port01("203.0.113.20", "v4", "passed"),
    ]
    for order in (results, results[::-1]):  # as xdist workers may report them
        lines = matrix(order)
        assert lines[0].split() == ["service", "old", "IP", "new", "v4", "new", "v6", "new", "v6-2"]
        assert lines[1].split() == ["http-80", "-", "ok", "ok", "FAIL"]


def test_a_passed_mysql02_is_no_answer_from_its_address() -> None:
    """MYSQL02 passes when the direct login is impossible: its pass must not make a silent
    address look as if it answered (the root cause stays "answered nothing")."""
    silent = "timed out after 5 s connecting to [2001:db8:5100::20]"
    results = [
        Result(
            {"check_id": "PORT01", "address": "2001:db8:5100::20"},
            "failed",
            f"PORT01 x: {silent}:993",
        ),
        Result({"check_id": "MYSQL02", "address": "2001:db8:5100::20"}, "passed", ""),
    ]
    assert root_causes(results)[0].startswith("2001:db8:5100::20 answered nothing")
