"""`lab scale`: generated zones and accounts that the suite checks green, like the lab's own.

Runs last in the story (the `scaled_lab` state): the data it adds stays until
the lab is taken down.
"""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import IN_CI, Lab, lab_cli

DOMAINS, ACCOUNTS = 4, 3
ZONES = [f"zone{i:04d}.test" for i in range(1, DOMAINS + 1)]


def test_scaled_zones_and_accounts_are_checked_and_green(scaled_lab: Lab) -> None:
    # After the switch: zones on both nameservers, accounts in both passdbs (no
    # `sync`: the old services are stopped by now; logins need no mail).
    lab_cli("scale", "--domains", str(DOMAINS), "--accounts", str(ACCOUNTS), "--messages", "0")
    # What the whole preflight recorded (tests/trust/test_lab_trust.py): login methods, MX.
    recorded = scaled_lab.reports / "trust-baseline.json"
    if not recorded.exists():
        message = "needs the preflight baseline of tests/trust/test_lab_trust.py: run tests/ whole"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    copy = scaled_lab.reports / "scale" / "baseline.json"
    copy.parent.mkdir(exist_ok=True)
    shutil.copyfile(recorded, copy)
    baseline = f"--baseline={copy}"
    dns = scaled_lab.suite("acceptance", "-m", "dns", baseline)
    for zone in ZONES:
        mine = [c for c in dns.cases if c.name.endswith(f"{zone}]")]  # incl. mail._domainkey.
        # DNS01-06 and MAIL01-04 (SPF, reverse DNS, DKIM key, MX) for each generated zone.
        assert {c.check_id for c in mine} >= {"DNS01", "DNS05", "MAIL01", "MAIL03"}, dns.summary()
    assert dns.cases and not dns.failing(), dns.summary()
    logins = scaled_lab.suite("acceptance", "-k", "test_account_logs_in_everywhere", baseline)
    users = {c.properties.get("account", c.name) for c in logins.cases}
    assert len(logins.cases) >= ACCOUNTS + 3, logins.summary()
    assert not logins.failing(), logins.summary()
    assert any("user00001" in u for u in users), users
