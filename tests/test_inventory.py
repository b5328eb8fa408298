"""A bad inventory stops the run at start: one clear line, file:line and field, exit 4.

Each case is run through pytest exactly as an operator would start the suite,
so the promise covers the whole path (no traceback, no partial run).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cutover.inventory import InventoryError, load_inventory
from tests.suite import REPO

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

# (case id, inventory text, extra files {name: content}, expected fragment of the one line)
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
    ("yaml-tab", "old:\n\taddress: 127.0.0.2\n", {}, ":2: YAML syntax error"),
    ("not-a-mapping", "- old\n- new\n", {}, ":1: the inventory must be a mapping"),
    ("empty-file", "", {}, ":1: the inventory must be a mapping"),
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
        "old.address and new.address are the same",
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
        "service name 'x' is used twice",
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
        GOOD + "virt_host:\n  devices:\n    - {address: '01:00.0'}\n",
        {},
        ":9: virt_host.devices[0].address: String should match pattern",
    ),
    (
        "device-without-id",
        GOOD + "virt_host:\n  devices:\n    - {name: gpu}\n",
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
        ":12: pairs[1]: old.address and new.address are the same",
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
def test_bad_inventory_stops_the_run_with_one_line(
    tmp_path: Path, text: str, files: dict[str, str], expected: str
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
    assert len(error_lines) == 1, output
    assert error_lines[0].startswith(f"ERROR: {inventory}"), error_lines[0]
    assert expected in error_lines[0], error_lines[0]
    assert "hunter2" not in output and "s3cret-alice" not in output


def test_the_good_inventory_loads(tmp_path: Path) -> None:
    inventory = load_inventory(
        write_case(tmp_path, GOOD, {}), environ={"CUTOVER_TEST_ALICE": "s3cret"}
    )
    assert str(inventory.new.address) == "127.0.0.3"
    assert inventory.mail.accounts[0].password.reveal() == "s3cret"
    assert "s3cret" not in repr(inventory)
    assert [s.port for s in inventory.services] == [110, 995, 143, 993, 25, 465, 587, 80, 3306]


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


def test_an_inventory_error_names_only_the_first_problem_and_counts_the_rest(
    tmp_path: Path,
) -> None:
    text = GOOD.replace("127.0.0.2", "x").replace("127.0.0.3", "y")
    with pytest.raises(InventoryError) as caught:
        load_inventory(write_case(tmp_path, text, {}), environ={"CUTOVER_TEST_ALICE": "s"})
    message = str(caught.value)
    assert "\n" not in message
    assert message.endswith("(and 1 more problem)"), message
    assert textwrap.shorten(message, 400) == message
