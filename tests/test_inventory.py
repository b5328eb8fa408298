"""A bad inventory stops the run at start: one clear line per problem, file:line and field, exit 4.

Each case is run through pytest exactly as an operator would start the suite,
so the promise covers the whole path (no traceback, no partial run). The same
corpus is put to the JSON Schema (`python -m cutover schema`): it must refuse
what the loader refuses, except the rules a schema cannot express, listed
with their reason.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cutover.model.inventory import inventory_schema, load_fleet, load_inventory
from tests.suite import REPO, run_suite
from tests.vfio.support import generate

ENV_ALICE = {"CUTOVER_TEST_ALICE": "s3cret-alice"}

GOOD = """\
name: shop
old: {address: 127.0.0.2}
new: {address: 127.0.0.3}
mail:
  accounts:
    - {user: alice@example.test, password_env: CUTOVER_TEST_ALICE}
"""

FLEET = """\
name: fleet
mail:
  accounts:
    - {user: alice@example.test, password_env: CUTOVER_TEST_ALICE}
timeouts: {connect: 2}
pairs:
  - name: web07
    old: {address: 127.0.0.2}
    new: {address: 127.0.0.3}
    services:
      - {name: imaps, port: 993, protocol: imap, tls: implicit}
  - name: mail02
    old: {address: 127.0.0.4}
    new: {address: 127.0.0.5}
    mail: {accounts: []}
"""

# (case id, inventory text, extra files {name: content}, the expected fragment of the one
# line, or of each line in order when a case has several problems)
BAD_CASES = [
    (
        "probe-account-not-listed",
        GOOD.replace("  accounts:\n", "  probe_account: mallory@example.test\n  accounts:\n"),
        {},
        "mail: probe_account 'mallory@example.test' is not one of mail.accounts",
    ),
    (
        "yaml-syntax",
        "old: {address: 127.0.0.2\nnew: {address: 127.0.0.3}\n",
        {},
        ":2: YAML syntax error",
    ),
    (
        "yaml-tab",
        "old:\n\taddress: 127.0.0.2\n",
        {},
        ":2: a tab character; YAML indents with spaces",
    ),
    (
        "yaml-tab-in-a-list",
        GOOD + "hostnames:\n  - a.example.test\n\t- b.example.test\n",
        {},
        ":9: a tab character; YAML indents with spaces",
    ),
    (
        "tls-accept-dropped-unknown-version",
        GOOD + "tls:\n  accept_dropped: [TLSv1, TLSv1.0]\n",
        {},
        ":8: tls.accept_dropped: unknown TLS version 'TLSv1.0': one of TLSv1, TLSv1.1, "
        "TLSv1.2, TLSv1.3",
    ),
    ("not-a-mapping", "- old\n- new\n", {}, ":1: the inventory must be a mapping"),
    ("empty-file", "", {}, ":1: the inventory is empty"),
    ("only-comments", "# to do\n---\n", {}, ":1: the inventory is empty"),
    (
        "duplicate-yaml-key",
        GOOD + "name: other\n",
        {},
        ":7: name: key given twice (first on line 1): YAML would keep only the last",
    ),
    (
        "duplicate-yaml-key-nested",
        GOOD.replace("127.0.0.3}", "127.0.0.3, address: 127.0.0.4}"),
        {},
        ":3: new.address: key given twice (first on line 3)",
    ),
    ("unknown-top-key", GOOD + "servics: []\n", {}, ":7: servics: unknown key"),
    (
        "unknown-nested-key",
        GOOD.replace("127.0.0.3}", "127.0.0.3, adress: x}"),
        {},
        ":3: new.adress: unknown key",
    ),
    (
        "missing-old",
        GOOD.replace("old: {address: 127.0.0.2}\n", ""),
        {},
        "old: required field is missing",
    ),
    (
        "missing-address",
        GOOD.replace("{address: 127.0.0.2}", "{hostname: old.example}"),
        {},
        ":2: old.address: required field is missing",
    ),
    (
        "bad-ip",
        GOOD.replace("127.0.0.2", "127.0.0.300"),
        {},
        ":2: old.address: not a valid IP address: '127.0.0.300'",
    ),
    (
        "hostname-as-ip",
        GOOD.replace("127.0.0.2", "old.example.com"),
        {},
        "old.address: not a valid IP address",
    ),
    (
        "same-addresses",
        GOOD.replace("127.0.0.3", "127.0.0.2"),
        {},
        "old.address and new.address share 127.0.0.2",
    ),
    (
        "dual-stack-shared-address",
        GOOD.replace("{address: 127.0.0.3}", '{address: ["::1", 127.0.0.2]}'),
        {},
        "old.address and new.address share 127.0.0.2",
    ),
    (
        "address-list-empty",
        GOOD.replace("{address: 127.0.0.2}", "{address: []}"),
        {},
        "old.address: needs at least one IP address",
    ),
    (
        "address-listed-twice",
        GOOD.replace("{address: 127.0.0.2}", '{address: [127.0.0.2, "::1", 127.0.0.2]}'),
        {},
        "old.address: 127.0.0.2 is listed twice",
    ),
    (
        "address-list-bad-member",
        GOOD.replace("{address: 127.0.0.2}", '{address: [127.0.0.2, "2001:db8::zz"]}'),
        {},
        "old.address: not a valid IP address: '2001:db8::zz'",
    ),
    (
        "port-out-of-range",
        GOOD + "services:\n  - {name: imaps, port: 99999, protocol: imap}\n",
        {},
        ":8: services[0].port: Input should be less than or equal to 65535 (got 99999)",
    ),
    (
        "port-zero",
        GOOD + "services:\n  - {name: imaps, port: 0, protocol: imap}\n",
        {},
        "services[0].port: Input should be greater than or equal to 1",
    ),
    (
        "port-as-string",
        GOOD + "services:\n  - {name: imaps, port: '993', protocol: imap}\n",
        {},
        ":8: services[0].port: Input should be a valid integer (got '993')",
    ),
    (
        "port-as-float",
        GOOD + "services:\n  - {name: imaps, port: 993.0, protocol: imap}\n",
        {},
        ":8: services[0].port: Input should be a valid integer (got 993.0)",
    ),
    (
        "port-not-int",
        GOOD + "services:\n  - {name: imaps, port: nine, protocol: imap}\n",
        {},
        "services[0].port: Input should be a valid integer",
    ),
    (
        "unknown-protocol",
        GOOD + "services:\n  - {name: x, port: 1, protocol: gopher}\n",
        {},
        "services[0].protocol: Input should be 'smtp', 'imap', 'pop3', 'http' or 'mysql'",
    ),
    (
        "unknown-tls-mode",
        GOOD + "services:\n  - {name: x, port: 1, protocol: imap, tls: maybe}\n",
        {},
        "services[0].tls: Input should be 'none', 'starttls' or 'implicit'",
    ),
    (
        "duplicate-service",
        GOOD
        + "services:\n  - {name: x, port: 1, protocol: imap}\n"
        + "  - {name: x, port: 2, protocol: imap}\n",
        {},
        ":9: services[1]: service name 'x' is listed twice (first as services[0])",
    ),
    (
        "duplicate-mail-account",
        GOOD + "    - {user: Alice@Example.test, password_env: CUTOVER_TEST_ALICE}\n",
        {},
        ":7: mail.accounts[1]: mail account 'Alice@Example.test' is listed twice "
        "(first as mail.accounts[0])",
    ),
    (
        "duplicate-zone",
        GOOD + "dns:\n  zones:\n    - {name: example.test}\n    - {name: Example.test.}\n",
        {},
        ":10: dns.zones[1]: zone 'Example.test.' is listed twice (first as dns.zones[0])",
    ),
    (
        "duplicate-mysql-account",
        GOOD
        + "mysql:\n  accounts:\n    - {user: app, host: localhost}\n"
        + "    - {user: app, host: LOCALHOST}\n",
        {},
        ":10: mysql.accounts[1]: MySQL account 'app'@'LOCALHOST' is listed twice "
        "(first as mysql.accounts[0])",
    ),
    (
        "duplicate-database",
        GOOD + "mysql:\n  databases: [app, shop, app]\n",
        {},
        ":8: mysql.databases[2]: database 'app' is listed twice (first as mysql.databases[0])",
    ),
    (
        "via-socket-without-old-ssh",
        GOOD + "mysql:\n  accounts:\n    - {user: app, via_socket: true}\n",
        {},
        ":2: old.ssh: missing, but mysql.accounts[0] ('app'@'localhost') has via_socket: true",
    ),
    (
        "via-socket-not-a-boolean",
        GOOD.replace("127.0.0.2}", "127.0.0.2, ssh: 'ssh://root@127.0.0.2'}")
        + "mysql:\n  accounts:\n    - {user: app, via_socket: 'yes'}\n",
        {},
        ":9: mysql.accounts[0].via_socket: Input should be a valid boolean (got 'yes')",
    ),
    (
        "virt-host-without-ssh",
        GOOD + "virt_host:\n  vm: win10\n",
        {},
        ":7: virt_host: no ssh: name the host to check (ssh: ssh://root@kvm1), or write "
        "ssh: local:// to check the machine running the suite",
    ),
    (
        "virt-host-empty-ssh",
        GOOD + "virt_host: {ssh: ''}\n",
        {},
        ":7: virt_host.ssh: String should have at least 1 character",
    ),
    (
        "secret-env-not-a-variable-name",
        GOOD.replace("CUTOVER_TEST_ALICE", "'alice password'"),
        {},
        ":6: mail.accounts[0].password_env: String should match pattern",
    ),
    (
        "wrong-type-list",
        GOOD + "hostnames: mail.example.test\n",
        {},
        ":7: hostnames: Input should be a valid list",
    ),
    (
        "negative-timeout",
        GOOD + "timeouts: {connect: -1}\n",
        {},
        ":7: timeouts.connect: Input should be greater than 0",
    ),
    (
        "budget-no-connections",
        GOOD + "budget: {connections: 0}\n",
        {},
        ":7: budget.connections: Input should be greater than or equal to 1",
    ),
    (
        "budget-connections-quoted",
        GOOD + "budget: {connections: '4'}\n",
        {},
        ":7: budget.connections: Input should be a valid integer",
    ),
    (
        "budget-login-rate-zero",
        GOOD + "budget: {logins_per_second: 0}\n",
        {},
        ":7: budget.logins_per_second: Input should be greater than 0",
    ),
    (
        "budget-unknown-key",
        GOOD + "budget: {connection: 4}\n",
        {},
        ":7: budget.connection: unknown key",
    ),
    (
        "side-budget-bad",
        GOOD.replace(
            "old: {address: 127.0.0.2}", "old: {address: 127.0.0.2, budget: {connections: -2}}"
        ),
        {},
        ":2: old.budget.connections: Input should be greater than or equal to 1",
    ),
    (
        "ttl-not-int",
        GOOD + "dns: {ttl: soon}\n",
        {},
        ":7: dns.ttl: Input should be a valid integer",
    ),
    (
        "inline-password",
        GOOD.replace("password_env: CUTOVER_TEST_ALICE", "password: hunter2"),
        {},
        "mail.accounts[0]: inline secret 'password' is not allowed: "
        "use password_env: VARIABLE or password_file: PATH",
    ),
    (
        "missing-env-secret",
        GOOD.replace("CUTOVER_TEST_ALICE", "CUTOVER_TEST_UNSET"),
        {},
        ":6: mail.accounts[0]: environment variable CUTOVER_TEST_UNSET is not set",
    ),
    (
        "missing-secret-file",
        GOOD.replace("password_env: CUTOVER_TEST_ALICE", "password_file: secrets/nope"),
        {},
        "mail.accounts[0]: secret file not found",
    ),
    (
        "empty-secret-file",
        GOOD.replace("password_env: CUTOVER_TEST_ALICE", "password_file: empty"),
        {"empty": ""},
        "mail.accounts[0]: secret file is empty",
    ),
    (
        "both-secret-refs",
        GOOD.replace("password_env: CUTOVER_TEST_ALICE", "password_env: A, password_file: f"),
        {},
        "give password_env or password_file, not both",
    ),
    (
        "bad-pci-address",
        GOOD + "virt_host:\n  ssh: local://\n  devices:\n    - {address: '01:00.0'}\n",
        {},
        ":10: virt_host.devices[0].address: String should match pattern",
    ),
    (
        "device-without-id",
        GOOD + "virt_host:\n  ssh: local://\n  devices:\n    - {name: gpu}\n",
        {},
        "virt_host.devices[0]: a device needs an address",
    ),
    (
        "bad-ignore-regex",
        GOOD + "http:\n  vhosts:\n    - {host: www.example.test, ignore: ['(']}\n",
        {},
        "http.vhosts[0].ignore: not a valid regex",
    ),
    (
        "acceptance-choice",
        GOOD + "acceptance: {old_ip: maybe}\n",
        {},
        "acceptance.old_ip: Input should be 'forward' or 'closed'",
    ),
    ("missing-ca-file", GOOD + "tls: {ca_file: nowhere.pem}\n", {}, "tls.ca_file: no such file"),
    (
        "missing-ssh-config",
        GOOD + "ssh_config: /nonexistent/ssh_config\n",
        {},
        ":7: ssh_config: no such file: /nonexistent/ssh_config",
    ),
    (
        "mail-account-without-password",
        GOOD + "    - {user: d@example.test}\n",
        {},
        ":7: mail.accounts[1]: no password: a mail account needs password_env: VARIABLE or "
        "password_file: PATH",
    ),
    # Fleets: several pairs in one inventory.
    (
        "fleet-duplicate-pair-name",
        FLEET.replace("name: mail02", "name: web07"),
        {},
        ":12: pairs[1].name: pair name 'web07' is used twice (first by pairs[0])",
    ),
    (
        "fleet-bad-pair-name",
        FLEET.replace("name: mail02", "name: mail 02"),
        {},
        ":12: pairs[1].name: String should match pattern",
    ),
    (
        "fleet-pair-missing-old",
        FLEET.replace("    old: {address: 127.0.0.4}\n", ""),
        {},
        ":12: pairs[1].old: required field is missing",
    ),
    (
        "fleet-pair-missing-new",
        FLEET.replace("    new: {address: 127.0.0.3}\n", ""),
        {},
        ":7: pairs[0].new: required field is missing",
    ),
    (
        "fleet-unknown-key-in-pair",
        FLEET.replace("    mail: {accounts: []}\n", "    mail: {accounts: []}\n    colour: blue\n"),
        {},
        ":16: pairs[1].colour: unknown key",
    ),
    (
        "fleet-unknown-key-in-pair-section",
        FLEET.replace("mail: {accounts: []}", "mail: {acounts: []}"),
        {},
        ":15: pairs[1].mail.acounts: unknown key",
    ),
    (
        "fleet-top-level-old",
        "old: {address: 127.0.0.9}\n" + FLEET,
        {},
        ":1: old: with pairs: every pair gives its own old and new",
    ),
    ("fleet-no-pairs", "name: fleet\npairs: []\n", {}, ":2: pairs: must be a list of pairs"),
    (
        "fleet-same-addresses-in-pair",
        FLEET.replace("127.0.0.5", "127.0.0.4"),
        {},
        ":12: pairs[1]: old.address and new.address share 127.0.0.4",
    ),
    (
        "fleet-inherited-error-at-its-own-line",
        FLEET.replace("timeouts: {connect: 2}", "timeouts: {conect: 2}"),
        {},
        ":5: timeouts.conect: unknown key",
    ),
    (
        "fleet-secret-in-a-pair",
        FLEET.replace("mail: {accounts: []}", "mail: {accounts: [{user: b, password_env: NOPE}]}"),
        {},
        ":15: pairs[1].mail.accounts[0]: environment variable NOPE is not set",
    ),
    (
        "fleet-duplicate-account-in-a-pair",
        FLEET.replace(
            "mail: {accounts: []}",
            "mail: {accounts: [{user: b, password_env: CUTOVER_TEST_ALICE}, "
            "{user: b, password_env: CUTOVER_TEST_ALICE}]}",
        ),
        {},
        ":15: pairs[1].mail.accounts[1]: mail account 'b' is listed twice",
    ),
    (
        "fleet-duplicate-yaml-key-in-a-pair",
        FLEET.replace("    mail: {accounts: []}\n", "    mail: {accounts: []}\n    mail: {}\n"),
        {},
        ":16: pairs[1].mail: key given twice (first on line 15)",
    ),
    (
        "fleet-virt-host-without-ssh-in-a-pair",
        FLEET.replace("    mail: {accounts: []}\n", "    virt_host: {vm: win10}\n"),
        {},
        ":15: pairs[1].virt_host: no ssh: name the host to check",
    ),
    (
        "fleet-via-socket-without-old-ssh-of-a-pair",
        FLEET.replace("timeouts:", "mysql: {accounts: [{user: app, via_socket: true}]}\ntimeouts:"),
        {},
        (
            ":9: pairs[0].old.ssh: missing, but mysql.accounts[0]",
            ":14: pairs[1].old.ssh: missing, but mysql.accounts[0]",
        ),
    ),
    # Every problem is listed, in the file's order, shape and meaning together.
    (
        "several-problems",
        GOOD.replace("127.0.0.2", "old.example.test")
        + "    - {user: alice@example.test, password_env: CUTOVER_TEST_UNSET}\n"
        + "colour: blue\n"
        + "services:\n  - {name: imaps, port: 99999, protocol: imap}\n",
        {},
        (
            ":2: old.address: not a valid IP address: 'old.example.test'",
            ":7: mail.accounts[1]: mail account 'alice@example.test' is listed twice",
            ":7: mail.accounts[1]: environment variable CUTOVER_TEST_UNSET is not set",
            ":8: colour: unknown key",
            ":10: services[0].port: Input should be less than or equal to 65535",
        ),
    ),
    (
        # A reference of the wrong shape hides no other problem, not even in its own section.
        "bad-reference-beside-missing-secrets-and-files",
        GOOD.replace("CUTOVER_TEST_ALICE", "'alice password'")
        + "    - {user: bob@example.test, password_env: CUTOVER_TEST_UNSET}\n"
        + "    - {user: carol@example.test}\n"
        + "mysql:\n  admin: {user: ro, password_file: nowhere}\n"
        + "tls: {ca_file: nowhere.pem}\n"
        + "ssh_config: /nonexistent/ssh_config\n",
        {},
        (
            ":6: mail.accounts[0].password_env: String should match pattern",
            ":7: mail.accounts[1]: environment variable CUTOVER_TEST_UNSET is not set",
            ":8: mail.accounts[2]: no password: a mail account needs password_env",
            ":10: mysql.admin: secret file not found",
            ":11: tls.ca_file: no such file",
            ":12: ssh_config: no such file: /nonexistent/ssh_config",
        ),
    ),
    (
        "fleet-bad-reference-in-a-pair-beside-a-missing-file",
        FLEET.replace(
            "    mail: {accounts: []}\n",
            "    mail: {accounts: [{user: b, password_env: 'b pw'}]}\n"
            "    tls: {ca_file: nowhere.pem}\n",
        ),
        {},
        (
            ":15: pairs[1].mail.accounts[0].password_env: String should match pattern",
            ":16: pairs[1].tls.ca_file: no such file",
        ),
    ),
    (
        "several-secrets-missing",
        GOOD.replace("CUTOVER_TEST_ALICE", "CUTOVER_TEST_UNSET")
        + "mysql:\n  admin: {user: ro, password_file: nowhere}\n",
        {},
        (
            ":6: mail.accounts[0]: environment variable CUTOVER_TEST_UNSET is not set",
            ":8: mysql.admin: secret file not found",
        ),
    ),
]


def write_case(tmp_path: Path, text: str, files: dict[str, str]) -> Path:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "files", "expected"),
    [pytest.param(t, f, e, id=i) for i, t, f, e in BAD_CASES],
)
def test_bad_inventory_stops_the_run_with_one_line_per_problem(
    tmp_path: Path, text: str, files: dict[str, str], expected: str | tuple[str, ...]
) -> None:
    inventory = write_case(tmp_path, text, files)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            f"-c={REPO / 'pytest.ini'}",
            f"--rootdir={REPO}",
            "--phase=preflight",
            f"--inventory={inventory}",
            f"--reports-dir={tmp_path / 'r'}",
            str(REPO / "checks"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "CUTOVER_TEST_ALICE": "s3cret-alice"},
    )
    assert completed.returncode == 4, completed.stdout + completed.stderr
    output = (completed.stdout + completed.stderr).strip()
    assert "Traceback" not in output
    error_lines = [line for line in output.splitlines() if line.startswith("ERROR:")]
    fragments = (expected,) if isinstance(expected, str) else expected
    assert len(error_lines) == len(fragments), output
    for line, fragment in zip(error_lines, fragments, strict=True):
        assert line.startswith(f"ERROR: {inventory}"), line
        assert fragment in line, line
    assert "hunter2" not in output and "s3cret-alice" not in output


def test_the_good_inventory_loads(tmp_path: Path) -> None:
    inventory = load_inventory(
        write_case(tmp_path, GOOD, {}), environ={"CUTOVER_TEST_ALICE": "s3cret"}
    )
    assert str(inventory.new.address) == "127.0.0.3"
    assert inventory.mail.accounts[0].password.reveal() == "s3cret"
    assert "s3cret" not in repr(inventory)
    assert [s.port for s in inventory.services] == [110, 995, 143, 993, 25, 465, 587, 80, 3306]


def test_zone_names_are_normalised_once_when_loaded(tmp_path: Path) -> None:
    """Lower case, no final dot: the form the DNS probes compare and show (absolute_text)."""
    from cutover.probes.dns.engine import absolute_text

    text = GOOD + "dns:\n  zones:\n    - {name: Example.TEST.}\n    - {name: other.test}\n"
    inventory = load_inventory(write_case(tmp_path, text, {}), environ={"CUTOVER_TEST_ALICE": "s"})
    names = [zone.name for zone in inventory.dns.zones]
    assert names == ["example.test", "other.test"]
    assert [absolute_text(name) for name in names] == names


def test_secret_file_is_resolved_relative_to_the_inventory(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "alice").write_text("from-a-file\n")
    text = GOOD.replace("password_env: CUTOVER_TEST_ALICE", "password_file: secrets/alice")
    inventory = load_inventory(write_case(tmp_path, text, {}), environ={})
    assert inventory.mail.accounts[0].password.reveal() == "from-a-file"


def test_the_example_inventory_is_valid() -> None:
    example = REPO / "fixtures" / "inventory.example.yaml"
    inventory = load_inventory(example, environ={"CUTOVER_ALICE_PASSWORD": "x"})
    assert inventory.name == "lab"


def test_an_unknown_phase_is_a_usage_error(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "cutover", "run", "postflight", "-i", "x.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert completed.returncode == 4
    assert "invalid choice: 'postflight'" in completed.stderr


def _validate_cli(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cutover", "validate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


def test_validate_lists_every_problem_on_its_own_line(tmp_path: Path) -> None:
    _, text, files, expected = next(case for case in BAD_CASES if case[0] == "several-problems")
    completed = _validate_cli(str(write_case(tmp_path, text, files)), env=ENV_ALICE)
    assert completed.returncode == 4, completed.stderr
    lines = completed.stderr.splitlines()
    assert len(lines) == len(expected), completed.stderr
    for line, fragment in zip(lines, expected, strict=True):
        assert line.startswith(f"cutover: {tmp_path / 'inventory.yaml'}:") and fragment in line


def test_validate_no_secrets_checks_a_file_without_its_secrets(tmp_path: Path) -> None:
    text = GOOD + "mysql:\n  admin: {user: ro, password_file: secrets/mysql-ro}\n"
    inventory = str(write_case(tmp_path, text, {}))
    refused = _validate_cli(inventory)
    assert refused.returncode == 4
    assert "CUTOVER_TEST_ALICE is not set" in refused.stderr
    assert "secret file not found" in refused.stderr
    accepted = _validate_cli("--no-secrets", inventory)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.startswith(f"{inventory}: ok (secrets not read) — migration shop")
    # The references' shape is still checked, and everything else.
    bad = text.replace("CUTOVER_TEST_ALICE", "'alice password'").replace("shop", "a shop")
    completed = _validate_cli("--no-secrets", str(write_case(tmp_path, bad, {})))
    assert completed.returncode == 4
    assert ":1: name: String should match pattern" in completed.stderr
    assert ":6: mail.accounts[0].password_env: String should match pattern" in completed.stderr


def test_validate_no_secrets_still_needs_a_reference_and_the_files(tmp_path: Path) -> None:
    """Without secrets a reference's shape is still checked: a mail account must have one.

    tls.ca_file and ssh_config hold no secret: they must exist wherever the file is checked.
    """
    text = (
        GOOD
        + "    - {user: d@example.test}\n"
        + "ssh_config: /nonexistent/ssh_config\n"
        + "tls: {ca_file: nowhere.pem}\n"
    )
    completed = _validate_cli("--no-secrets", str(write_case(tmp_path, text, {})))
    assert completed.returncode == 4, completed.stdout
    assert [line.split(": ", 3)[2:] for line in completed.stderr.splitlines()] == [
        [
            "mail.accounts[1]",
            "no password: a mail account needs password_env: VARIABLE or password_file: PATH "
            "(the IMAP, POP3 and AUTH checks log in as it)",
        ],
        ["ssh_config", "no such file: /nonexistent/ssh_config"],
        ["tls.ca_file", f"no such file: {tmp_path / 'nowhere.pem'}"],
    ], completed.stderr


def test_validate_says_what_works_for_validate(tmp_path: Path) -> None:
    missing = _validate_cli(str(tmp_path / "missing.yaml"))
    assert missing.returncode == 4
    assert missing.stderr == (
        f"cutover: {tmp_path / 'missing.yaml'}: inventory not found "
        "(give it as `cutover validate PATH`, or set CUTOVER_INVENTORY)\n"
    )
    inventory = str(write_case(tmp_path, GOOD, {}))
    for typed in ([inventory], ["-i", inventory], ["--inventory", inventory]):
        completed = _validate_cli(*typed, env=ENV_ALICE)
        assert completed.returncode == 0, (typed, completed.stderr)
        assert completed.stdout.startswith(f"{inventory}: ok — migration shop"), completed.stdout
    both = _validate_cli(inventory, "-i", inventory, env=ENV_ALICE)
    unknown = _validate_cli("--colour", inventory, env=ENV_ALICE)
    for refused in (both, unknown):
        assert refused.returncode == 4
        assert refused.stderr.startswith("usage: cutover validate "), refused.stderr
        assert refused.stderr.splitlines()[-1].startswith("cutover validate: error: ")
    assert "unrecognized arguments: --colour" in unknown.stderr


def test_validate_counts_in_words(tmp_path: Path) -> None:
    one = GOOD + "mysql: {accounts: [{user: app}]}\ndns: {zones: [{name: example.test}]}\n"
    one += "services:\n  - {name: imaps, port: 993, protocol: imap, tls: implicit}\n"
    completed = _validate_cli(str(write_case(tmp_path, one, {})), env=ENV_ALICE)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.rstrip().endswith(
        "1 service, 1 mail account, 1 MySQL account, 1 DNS zone"
    ), completed.stdout
    two = GOOD + "    - {user: bob@example.test, password_env: CUTOVER_TEST_ALICE}\n"
    completed = _validate_cli(str(write_case(tmp_path, two, {})), env=ENV_ALICE)
    assert completed.stdout.rstrip().endswith(
        "9 services, 2 mail accounts, 0 MySQL accounts, 0 DNS zones"
    ), completed.stdout
    fleet = (tmp_path / "fleet.yaml", (tmp_path / "fleet.yaml").write_text(FLEET))[0]
    one_pair = fleet.with_name("one-pair.yaml")
    one_pair.write_text(FLEET.split("  - name: mail02")[0])
    for path, pairs in ((fleet, "2 pairs"), (one_pair, "1 pair")):
        completed = _validate_cli(str(path), env=ENV_ALICE)
        assert completed.returncode == 0, completed.stderr
        assert completed.stdout.splitlines()[0].endswith(f"fleet fleet: {pairs}"), completed.stdout


def test_a_tilde_in_a_path_is_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".cutover").mkdir(parents=True)
    (home / ".ssh").mkdir()
    (home / ".ssh" / "config").write_text("Host *\n")
    (home / ".cutover" / "alice").write_text("from-home\n")
    (home / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("HOME", str(home))
    text = (
        GOOD.replace("password_env: CUTOVER_TEST_ALICE", "password_file: ~/.cutover/alice")
        + "ssh_config: ~/.ssh/config\ntls: {ca_file: ~/ca.pem}\n"
    )
    (home / "inventory.yaml").write_text(text)
    inventory = load_inventory("~/inventory.yaml", environ={})
    assert inventory.mail.accounts[0].password.reveal() == "from-home"
    assert inventory.ssh_config == home / ".ssh" / "config"
    assert inventory.tls.ca_file == home / "ca.pem"
    assert inventory.source == home / "inventory.yaml"


# --- areas the inventory does not configure are not collected --------------------------


def _collected(inventory: Path, *args: str) -> list[str]:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            f"-c={REPO / 'pytest.ini'}",
            f"--rootdir={REPO}",
            "--phase=preflight",
            f"--inventory={inventory}",
            f"--reports-dir={inventory.parent / 'r'}",
            "--collect-only",
            "-q",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=inventory.parent,
        env={"PATH": "/usr/bin:/bin", "CUTOVER_TEST_ALICE": "s3cret-alice"},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return sorted({line.split("::")[0] for line in completed.stdout.splitlines() if "::" in line})


def test_an_area_the_inventory_does_not_configure_is_not_collected(tmp_path: Path) -> None:
    bare = write_case(tmp_path, GOOD.split("mail:")[0] + "mail: {accounts: []}\nmysql: {}\n", {})
    assert _collected(bare, str(REPO / "checks")) == ["checks/test_ports.py", "checks/test_tls.py"]
    configured = GOOD + (
        "http: {vhosts: [{host: www.example.test}]}\n"
        "mysql: {databases: [app]}\n"
        "dns: {zones: [{name: example.test, nameservers: [127.0.0.9]}]}\n"
        "virt_host: {ssh: 'local://'}\n"
    )
    assert _collected(write_case(tmp_path, configured, {}), str(REPO / "checks")) == [
        f"checks/test_{area}.py"
        for area in (
            "dns", "http", "imap", "mailclients", "mysql", "outbound", "ports", "tls", "vfio", "vm"
        )
    ]  # fmt: skip


def _outcomes(inventory: Path, check_file: str) -> dict[str, tuple[str, str]]:
    reports = inventory.parent / "r"
    run = run_suite(
        "preflight", inventory, reports, check_file, "-k", "test_new_server_facts", env=ENV_ALICE
    )
    return {case.name: (case.outcome, (case.message.splitlines() or [""])[0]) for case in run.cases}


def test_a_pair_without_the_area_of_another_pair_skips_it_saying_why(tmp_path: Path) -> None:
    fleet = FLEET.replace(
        "      - {name: imaps, port: 993, protocol: imap, tls: implicit}\n",
        "      - {name: imaps, port: 993, protocol: imap, tls: implicit}\n"
        "    mysql: {admin: {user: ro, password_env: CUTOVER_TEST_ALICE}}\n",
    )
    outcomes = _outcomes(write_case(tmp_path, fleet, {}), "checks/test_mysql.py")
    assert set(outcomes) == {"test_new_server_facts[web07]", "test_new_server_facts[mail02]"}
    assert outcomes["test_new_server_facts[mail02]"] == (
        "skipped",
        "pair mail02: its inventory has no mysql:",
    )
    assert outcomes["test_new_server_facts[web07]"][0] == "failed"  # nothing listens there


def test_a_module_named_on_the_command_line_skips_an_unconfigured_area(tmp_path: Path) -> None:
    outcomes = _outcomes(write_case(tmp_path, GOOD, {}), "checks/test_mysql.py")
    assert outcomes == {"test_new_server_facts": ("skipped", "the inventory has no mysql:")}


# --- the JSON Schema says what the loader says ------------------------------------------

SCHEMA = inventory_schema()
SCHEMA_VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)

# What the loader refuses and a JSON Schema cannot: each case, and why.
SCHEMA_CANNOT_SAY = {
    **dict.fromkeys(
        [
            "duplicate-service",
            "duplicate-mail-account",
            "duplicate-zone",
            "duplicate-mysql-account",
            "duplicate-database",
            "fleet-duplicate-pair-name",
            "fleet-duplicate-account-in-a-pair",
        ],
        "listed twice by one key (a name, a user, case-insensitive): JSON Schema's "
        "uniqueItems compares whole items only",
    ),
    **dict.fromkeys(
        ["duplicate-yaml-key", "duplicate-yaml-key-nested", "fleet-duplicate-yaml-key-in-a-pair"],
        "a YAML parser keeps the last of two equal keys: the schema sees one",
    ),
    **dict.fromkeys(
        ["same-addresses", "fleet-same-addresses-in-pair", "dual-stack-shared-address"],
        "two values compared with each other",
    ),
    **dict.fromkeys(
        ["via-socket-without-old-ssh", "fleet-via-socket-without-old-ssh-of-a-pair"],
        "a rule across sections, and in a fleet across a pair and the defaults it inherits",
    ),
    "probe-account-not-listed": "a reference to another list's entry",
    "bad-ignore-regex": "Python's regular expression syntax, not ECMA 262's",
    "port-as-float": "JSON Schema counts 993.0 as an integer; the loader takes integers as written",
    **dict.fromkeys(
        [
            "missing-env-secret",
            "missing-secret-file",
            "empty-secret-file",
            "missing-ca-file",
            "missing-ssh-config",
            "fleet-secret-in-a-pair",
            "several-secrets-missing",
        ],
        "the environment and the files are read when the inventory is loaded",
    ),
}


def _schema_refuses(text: str) -> bool:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return True  # not YAML: nothing for a schema to accept
    return not SCHEMA_VALIDATOR.is_valid(data)


@pytest.mark.parametrize(
    "text", [pytest.param(t, id=i) for i, t, _, _ in BAD_CASES if i not in SCHEMA_CANNOT_SAY]
)
def test_the_schema_refuses_what_the_loader_refuses(text: str) -> None:
    assert _schema_refuses(text)


@pytest.mark.parametrize(
    "text", [pytest.param(t, id=i) for i, t, _, _ in BAD_CASES if i in SCHEMA_CANNOT_SAY]
)
def test_what_the_schema_cannot_say_is_still_listed_correctly(text: str) -> None:
    """A case the schema learns to refuse leaves SCHEMA_CANNOT_SAY."""
    assert not _schema_refuses(text)


def test_every_exception_names_a_case_of_the_corpus() -> None:
    assert set(SCHEMA_CANNOT_SAY) <= {case[0] for case in BAD_CASES}


def _good_inventories(tmp_path: Path) -> dict[str, Path]:
    built = generate.build("healthy", tmp_path / "vfio")
    return {
        "good": write_case(tmp_path, GOOD, {}),
        "fleet": (tmp_path / "fleet.yaml", (tmp_path / "fleet.yaml").write_text(FLEET))[0],
        "example": REPO / "fixtures" / "inventory.example.yaml",
        "fleet-example": REPO / "fixtures" / "inventory.fleet.example.yaml",
        "vfio-healthy": built.inventory,
    }


def test_good_inventories_are_accepted_by_both(tmp_path: Path) -> None:
    for name, path in _good_inventories(tmp_path).items():
        load_fleet(path, secrets=False)
        errors = [e.message for e in SCHEMA_VALIDATOR.iter_errors(yaml.safe_load(path.read_text()))]
        assert not errors, f"{name}: {errors}"


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def _properties(node: object, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            yield f"{path}.{name}", prop
        for key, value in node.items():
            yield from _properties(value, f"{path}/{key}")
    elif isinstance(node, list):
        for value in node:
            yield from _properties(value, path)


def test_every_schema_field_has_a_description() -> None:
    fields = list(_properties(SCHEMA))
    assert len(fields) > 80
    # A property that is `false` forbids a key (old/new beside pairs), it is no field.
    missing = [path for path, prop in fields if prop is not False and not prop.get("description")]
    assert not missing, missing


def test_a_port_is_an_integer_in_both() -> None:
    port = SCHEMA["$defs"]["Service"]["properties"]["port"]
    assert port["type"] == "integer" and (port["minimum"], port["maximum"]) == (1, 65535)


def _with(section: dict[str, Any]) -> dict[str, Any]:
    return {"old": {"address": "127.0.0.2"}, "new": {"address": "127.0.0.3"}, **section}


@pytest.mark.parametrize(
    ("reference", "mail", "mysql"),
    [
        ({}, False, True),  # a MySQL account may log in without one (unix_socket, none set)
        ({"password_env": "A"}, True, True),
        ({"password_file": "f"}, True, True),
        ({"password_env": "A", "password_file": "f"}, False, False),
    ],
    ids=["none", "env", "file", "both"],
)
def test_a_password_is_given_one_way_and_a_mail_account_needs_one(
    reference: dict[str, str], mail: bool, mysql: bool
) -> None:
    mail_account = {"mail": {"accounts": [{"user": "alice", **reference}]}}
    mysql_account = {"mysql": {"accounts": [{"user": "app", **reference}]}}
    assert SCHEMA_VALIDATOR.is_valid(_with(mail_account)) is mail
    assert SCHEMA_VALIDATOR.is_valid(_with(mysql_account)) is mysql
