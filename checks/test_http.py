"""Name-based virtual hosts answer the same on both IPs, and the new Apache config is sound."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from checks.declare import check
from checks.observe.http import Vhosts, old_vhost
from checks.record import Records
from checks.support import expectations_for, observed, parametrize
from checks.targets.services import VhostTarget, vhost_targets
from cutover.model.inventory import Inventory
from cutover.model.phases import PhaseExpectations, Side, serving_ip
from cutover.probes.connect import ProbeError
from cutover.probes.services.apache import ApacheConfig

Record = Callable[..., None]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "vhost" in metafunc.fixturenames:
        config = metafunc.config
        parametrize(
            metafunc, "vhost", lambda inv: vhost_targets(inv, expectations_for(config, inv))
        )


@check("HTTP01", phases=("preflight", "cutover", "acceptance"))
def test_vhost_same_content(
    vhost: VhostTarget,
    vhost_responses: Vhosts,
    inventory: Inventory,
    expect: PhaseExpectations,
    vhost_records: Records,
    record: Record,
) -> None:
    """HTTP01: each name-based vhost answers on this IP with the old server's status and content.

    Why: the Apache 2.2 -> 2.4 config move is exactly where a vhost gets lost:
    its requests then fall through to the default vhost, which answers 200
    with the wrong site. Requested by Host header on each IP, the status and
    the body digest (after removing the vhost's `ignore` regexes) must equal
    the old server's. A 403 where old answered is named as such: access
    rules a partial 2.2 -> 2.4 conversion changed (an `Allow from` exception
    dropped next to a `Require all denied`).
    Inputs: http.vhosts (host, path, ignore), requested on every address of
    old and new; the old server (live on its first address in preflight, the
    baseline later).
    Fix: migrate the missing vhost's config (sites-enabled) and DocumentRoot;
    for a 403, convert each `Order`/`Allow`/`Deny` group to its `Require` lines.
    """
    response = observed(vhost_responses, vhost, vhost.where)
    digest = response.digest(vhost.vhost.ignore)
    record(status=response.status, body_sha256=digest)
    old_side = serving_ip(expect, Side.OLD)
    if old_side is not None:
        old = old_vhost(vhost, inventory, old_side)
        old_response = observed(vhost_responses, old, old.where)
        reference = {
            "status": old_response.status,
            "digest": old_response.digest(vhost.vhost.ignore),
        }
        source = f"the old server ({old.endpoint.where})"
    else:
        reference = vhost_records.get("vhosts", vhost.key)
        source = "the old server as recorded in preflight"
        if reference is None:
            pytest.skip(
                f"{vhost.where}: no record of the old server's answer "
                "(run preflight before the cutover to record it)"
            )
    differences = []
    if response.status != reference["status"]:
        differences.append(f"status {response.status} instead of {reference['status']}")
    if digest != reference["digest"]:
        differences.append(
            f"body sha256 {digest[:16]} ({len(response.body)} bytes) instead of "
            f"{str(reference['digest'])[:16]}"
        )
    if differences:
        denied = response.status == 403 and reference["status"] != 403
        pytest.fail(
            f"{vhost.where} differs from {source}: "
            + ", ".join(differences)
            + (
                " — access is denied here: its access rules differ (Apache 2.2 "
                "`Order`/`Allow from` converted to `Require` only in part?)"
                if denied
                else " — the vhost is missing or different (requests fall through to the "
                "default vhost?)"
            ),
            pytrace=False,
        )


@check("HTTP02", phases=("preflight", "cutover", "acceptance"))
def test_apache_config(
    inventory: Inventory, apache_config: ApacheConfig | ProbeError | None, record: Record
) -> None:
    """HTTP02: the new server's Apache config passes `apachectl -t` and has no 2.2-only directives.

    Why: a config that does not parse stops Apache at its next restart, not
    now (a graceful reload refuses it and keeps the old config running).
    Apache 2.2's `Order`/`Allow from`/`Deny from`/`Satisfy` exist in 2.4 only
    through mod_access_compat: without it each one is "Invalid command"
    (named with its file:line); with it they are valid and only recorded.
    `NameVirtualHost` does nothing in 2.4, with or without the module.
    Inputs: new.ssh (a testinfra host spec); ssh_config; timeouts.operation.
    Fix: correct the reported errors; replace `Order`/`Allow`/`Deny`/`Satisfy`
    with `Require` (or load mod_access_compat), remove `NameVirtualHost`.
    """
    if not inventory.new.ssh:
        pytest.skip("new.ssh is not given: the Apache config cannot be read")
    where = f"Apache on the new server ({inventory.new.ssh})"
    if isinstance(apache_config, ProbeError):
        pytest.fail(f"{where}: {apache_config}", pytrace=False)
    assert apache_config is not None  # new.ssh is given
    config = apache_config
    record(
        config_files=len(config.files),
        syntax=config.syntax_output[:200],
        access_compat="loaded" if config.access_compat else "not loaded",
        directives_22=len(config.legacy),
    )
    problems = []
    if not config.syntax_ok:
        problems.append(f"`apachectl -t` fails: {config.syntax_output}")
    access = [d for d in config.unsupported if d.needs_access_compat]
    if access:
        problems.append(
            "Apache 2.2 access directives without mod_access_compat (2.4 rejects them): "
            + "; ".join(str(d) for d in access)
        )
    others = [d for d in config.unsupported if not d.needs_access_compat]
    if others:
        problems.append(
            "Apache 2.2-only directives (no effect in 2.4): " + "; ".join(str(d) for d in others)
        )
    if problems:
        pytest.fail(f"{where}: " + " | ".join(problems), pytrace=False)
