"""Lab profiles (`up --profile NAME`): recorded, followed by every verb, and faults
refuse a lab of a profile they do not know how to break.

The legacy profile's own behaviour (TLS 1.0 only, pre-4.1 hashes, Dovecot 1.x,
Apache 2.2, MyDNS tables) is proven by the tests of each area and by the
detection matrix's legacy section; this module proves the plumbing.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from lab import profiles
from lab import state as lab_state
from lab.run import LabError
from tests.conftest import Lab, lab_cli
from tests.suite import REPO


def faults_listed() -> list[tuple[str, bool]]:
    """(fault name, for the legacy profile only) as `fault --list` shows them."""
    found = []
    for line in lab_cli("fault", "--list").stdout.splitlines():
        if line.strip():
            found.append((line.split()[0].split(":")[0], "[profile legacy]" in line))
    return found


def lab_fails(*args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "lab", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    return completed.stderr.strip()


def test_an_unknown_profile_is_one_clear_line() -> None:
    with pytest.raises(LabError, match="unknown profile 'centos'; one of: default, legacy"):
        profiles.select("centos")


def test_the_cli_offers_every_profile_and_the_sync_methods() -> None:
    up = lab_cli("up", "--help").stdout
    for name in profiles.PROFILES:
        assert name in up
    assert "dsync" in lab_cli("sync", "--help").stdout
    assert "rsync" in lab_cli("sync", "--help").stdout


def test_default_lab_records_its_profile_and_refuses_legacy_faults(up_lab: Lab) -> None:
    assert lab_state.load()["profile"] == "default"
    assert "profile: default" in lab_cli("status").stdout
    legacy = [name for name, only_legacy in faults_listed() if only_legacy]
    assert legacy, "no fault is marked [profile legacy]"
    message = lab_fails("fault", legacy[0])
    assert message.startswith(f"lab: error: fault {legacy[0]}")
    assert "this lab runs profile default" in message
    assert not lab_state.load()["faults"]


def test_legacy_lab_records_its_profile_and_refuses_default_faults(legacy_up_lab: Lab) -> None:
    assert lab_state.load()["profile"] == "legacy"
    assert "profile: legacy" in lab_cli("status").stdout
    message = lab_fails("fault", "imap-flags-lost")
    assert "this lab runs profile legacy" in message
    assert "--profile default" in message
    assert not lab_state.load()["faults"]
