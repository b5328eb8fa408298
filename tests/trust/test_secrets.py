"""No secret leaves the run: not in reports/, stdout/stderr, test ids, .pytest_cache, tracebacks.

Every run here fails on purpose (wrong passwords, refused logins, unreachable
servers, a lab fault) and is made as talkative as pytest gets: `--tb=long`,
`--showlocals`, `-rA`, the cache provider on. Then every byte it left behind
is searched for every secret value: the lab's real ones (.lab/secrets/*) and
the wrong-but-recognisable ones the test wrote.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import yaml

from tests.conftest import Lab
from tests.trust import peers
from tests.trust.peers import Peer
from tests.trust.support import junit_names, lab_secret_values, leaks, suite_with_cache

WRONG = "Wr0ng-but-Recognisable-{}-pw"


def assert_no_leak(run_dir: Path, cache: Path, run: object, needles: dict[str, str]) -> None:
    from tests.suite import SuiteRun

    assert isinstance(run, SuiteRun)
    found = leaks(
        needles,
        [run_dir, cache],
        {"stdout": run.stdout, "stderr": run.stderr, "JUnit test ids": junit_names(run)},
    )
    assert not found, "secret leaked:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "mysql_peer",
    [peers.mysql_refusing, peers.mysql_short_handshake],
    ids=["refusing", "short-handshake"],
)
def test_no_secret_from_refused_logins_and_unreachable_servers(
    mysql_peer: peers.Handler, tmp_path: Path
) -> None:
    """Offline: a MySQL peer refusing the login (or sending a handshake PyMySQL chokes on).

    The short handshake made PyMySQL raise UnboundLocalError, which escaped
    cutover/probes/mysql/session.py's `connect_mysql` with the password in a local: --showlocals
    printed it into the JUnit XML and HTML report (fixed: any library error
    becomes a ProbeError, and no local holds the revealed password).
    """
    old, new = "127.0.9.12", "127.0.9.13"
    secret = WRONG.format("mysql-admin")
    (tmp_path / "admin").write_text(secret + "\n")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "name": "trust-secrets",
                "old": {"address": old, "hostname": "old.trust.test"},
                "new": {"address": new, "hostname": "new.trust.test"},
                "services": [
                    {"name": "smtp", "port": 2526, "protocol": "smtp"},
                    {"name": "mysql", "port": 13307, "protocol": "mysql"},
                ],
                "mysql": {
                    "admin": {"user": "ro", "host": "%", "password_file": str(tmp_path / "admin")},
                    "accounts": [
                        {"user": "app", "host": "%", "password_file": str(tmp_path / "admin")}
                    ],
                    "databases": ["app"],
                },
                "timeouts": {"connect": 2, "operation": 2, "test": 60},
            }
        )
    )
    with contextlib.ExitStack() as stack:
        stack.enter_context(Peer(old, 2526, peers.smtp_good("old.trust.test"), "smtp"))
        stack.enter_context(Peer(old, 13307, mysql_peer, "mysql"))
        run = suite_with_cache("preflight", inventory, tmp_path / "r", tmp_path / "cache")
    assert run.failing(), run.summary()
    assert (tmp_path / "cache").is_dir(), "the cache provider did not run"
    assert not [c for c in run.cases if c.outcome == "error"], run.summary()
    messages = "\n".join(c.message for c in run.failing())
    assert "127.0.9.12:13307 (old IP)" in messages, run.summary()
    assert_no_leak(tmp_path / "r", tmp_path / "cache", run, {"wrong admin password": secret})


def wrong_secrets_inventory(lab: Lab, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The lab's inventory with every password file replaced by a wrong, recognisable one."""
    inventory = lab.inventory_variant(tmp_path)
    data = yaml.safe_load(inventory.read_text())
    wrong: dict[str, str] = {}

    def replace(ref: dict[str, str], label: str) -> None:
        value = WRONG.format(label)
        path = tmp_path / f"wrong-{label}"
        path.write_text(value + "\n")
        ref["password_file"] = str(path)
        wrong[f"wrong {label}"] = value

    for i, account in enumerate(data["mail"]["accounts"]):
        replace(account, f"mail{i}")
    replace(data["mysql"]["admin"], "mysql-admin")
    for i, account in enumerate(data["mysql"]["accounts"]):
        replace(account, f"mysql{i}")
    for i, sql in enumerate(data["dns"]["sql"]):
        replace(sql, f"pdns{i}")
    inventory.write_text(yaml.safe_dump(data, allow_unicode=True))
    return inventory, wrong


def real_secrets() -> dict[str, str]:
    values = lab_secret_values()
    assert values, "the lab has no secrets in .lab/secrets"
    return {f"lab secret {name}": value for name, value in values.items()}


def test_no_secret_with_wrong_passwords_everywhere(preflight_lab: Lab, tmp_path: Path) -> None:
    """Every account's password wrong: mail, mysql admin and accounts, PowerDNS SQL."""
    inventory, wrong = wrong_secrets_inventory(preflight_lab, tmp_path)
    run = suite_with_cache(
        "preflight",
        inventory,
        tmp_path / "r",
        tmp_path / "cache",
        namespace="cutover-client",
    )
    failing = run.failing_ids()
    assert {"IMAP01", "MYSQL04", "DNS06"} <= failing, run.summary()
    assert_no_leak(tmp_path / "r", tmp_path / "cache", run, {**wrong, **real_secrets()})


@pytest.mark.parametrize("fault", ["service-down:new:mysql", "service-down:new:imap"])
def test_no_secret_when_a_server_is_down(preflight_lab: Lab, fault: str, tmp_path: Path) -> None:
    """The real passwords, a server down: connections fail inside the client libraries."""
    with preflight_lab.fault(fault):
        run = suite_with_cache(
            "preflight",
            preflight_lab.inventory,
            tmp_path / "r",
            tmp_path / "cache",
            namespace="cutover-client",
        )
    assert run.failing(), run.summary()
    assert_no_leak(tmp_path / "r", tmp_path / "cache", run, real_secrets())
