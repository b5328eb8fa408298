"""Dual stack for the services checks, without a lab: which endpoints each check judges.

Comparison checks (CAP01, TLS04) run on every endpoint where the phase expects
the new server; a single-address inventory keeps its historic ids and only
gains the old IP (through its forward) in cutover and acceptance. MySQL over
TCP and watch mode run per address. The reference is one per server: its
first address that answers.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from checks.causes import Result
from checks.observe.mysql import direct_login_targets, mysql_servers_of, new_mysql_targets
from checks.observe.services import first_answer, reference_endpoint
from checks.targets.services import parity_targets
from checks.verdict import VerdictSummary
from cutover.cli.watch import render_table, watch_endpoints
from cutover.model.endpoints import side_endpoints
from cutover.model.inventory import Inventory, load_inventory
from cutover.model.phases import Phase, Side, expectations
from cutover.probes.connect import ProbeError
from cutover.probes.services import Observations

SERVICES = """\
services:
  - {name: imaps, port: 993, protocol: imap, tls: implicit}
  - {name: http, port: 80, protocol: http}
mysql:
  accounts: [{user: app, host: localhost, via_socket: true, password_env: CUTOVER_T_PW}]
"""
SSH = "ssh: ssh://root@old.example.net"
DUAL = f'old: {{address: [203.0.113.10, "2001:db8::10"], {SSH}}}\n' + (
    'new: {address: [203.0.113.20, "2001:db8::20"]}\n'
)
SINGLE = f"old: {{address: 203.0.113.10, {SSH}}}\nnew: {{address: 203.0.113.20}}\n"
V6_ONLY = f'old: {{address: "2001:db8::10", {SSH}}}\nnew: {{address: "2001:db8::20"}}\n'


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUTOVER_T_PW", "not-a-password")


def _inventory(tmp_path: Path, hosts: str) -> Inventory:
    path = tmp_path / "inventory.yaml"
    path.write_text(hosts + SERVICES)
    return load_inventory(path)


def _ids(targets: list[object]) -> list[str]:
    return [t.id for t in targets]  # type: ignore[attr-defined]


def test_parity_single_address_keeps_its_ids_and_adds_the_forwarded_old_ip(tmp_path: Path) -> None:
    inv = _inventory(tmp_path, SINGLE)
    assert _ids(parity_targets(inv, expectations("preflight"), tls=True)) == ["imaps-993"]
    cutover = parity_targets(inv, expectations("cutover"), mail=True)
    assert _ids(cutover) == ["imaps-993-old", "imaps-993"]
    # The historic test keeps its properties exactly; the new one names its endpoint.
    assert list(cutover[1].junit_properties()) == [("service", "imaps-993"), ("port", "993")]
    assert dict(cutover[0].junit_properties()) == {
        "service": "imaps-993",
        "side": "old",
        "address": "203.0.113.10",
        "port": "993",
    }
    assert cutover[0].where == "imaps 203.0.113.10:993 (old IP)"
    closed = expectations("acceptance", old_ip_closed=True)
    assert _ids(parity_targets(inv, closed, mail=True)) == ["imaps-993"]


def test_parity_dual_stack_judges_every_address_the_new_server_must_answer_on(
    tmp_path: Path,
) -> None:
    inv = _inventory(tmp_path, DUAL)
    assert _ids(parity_targets(inv, expectations("preflight"), mail=True)) == [
        "imaps-993-new-v4",
        "imaps-993-new-v6",
    ]
    cutover = parity_targets(inv, expectations("acceptance"), tls=True)
    assert _ids(cutover) == [
        "imaps-993-old-v4",
        "imaps-993-old-v6",
        "imaps-993-new-v4",
        "imaps-993-new-v6",
    ]
    props = dict(cutover[1].junit_properties())
    assert props["family"] == "v6" and props["address"] == "2001:db8::10", props
    assert cutover[1].where == "imaps [2001:db8::10]:993 (old IP)"
    # Only the mail protocols / TLS services: http is in neither list.
    assert not [t for t in cutover if t.service.name == "http"]


def test_an_ipv6_only_inventory_is_a_single_address_one(tmp_path: Path) -> None:
    inv = _inventory(tmp_path, V6_ONLY)
    assert _ids(parity_targets(inv, expectations("cutover"), mail=True)) == [
        "imaps-993-old",
        "imaps-993",
    ]
    assert _ids(new_mysql_targets(inv)) == ["mysql-new"]
    assert new_mysql_targets(inv)[0].server.where == "mysql [2001:db8::20]:3306 (new IP)"


def test_mysql_over_tcp_per_new_address(tmp_path: Path) -> None:
    single = _inventory(tmp_path, SINGLE)
    assert _ids(direct_login_targets(single)) == ["app@localhost"]
    assert list(direct_login_targets(single)[0].junit_properties()) == [
        ("account", "app@localhost")
    ]
    dual = _inventory(tmp_path, DUAL)
    logins = direct_login_targets(dual)
    assert _ids(logins) == ["app@localhost-mysql-new-v4", "app@localhost-mysql-new-v6"]
    assert dict(logins[1].junit_properties())["family"] == "v6"
    assert [t.server.address for t in new_mysql_targets(dual)] == ["203.0.113.20", "2001:db8::20"]
    # Grants and data are read once per server: on its first address.
    servers = mysql_servers_of(dual)
    assert (servers[Side.OLD].address, servers[Side.NEW].address) == (
        "203.0.113.10",
        "203.0.113.20",
    )


def test_watch_measures_each_family_separately(tmp_path: Path) -> None:
    endpoints = watch_endpoints(_inventory(tmp_path, DUAL))
    assert _ids(endpoints)[:4] == [
        "imaps-993-old-v4",
        "imaps-993-old-v6",
        "imaps-993-new-v4",
        "imaps-993-new-v6",
    ]
    assert _ids(watch_endpoints(_inventory(tmp_path, SINGLE))) == [
        "imaps-993-old",
        "imaps-993-new",
        "http-80-old",
        "http-80-new",
    ]


def _table(ids: list[str]) -> list[str]:
    entry = {"probes": 3, "windows": [], "downtime_s": 0.0}
    entries = [{"id": i, "first_answered_by": "a", "last_answered_by": "a", **entry} for i in ids]
    return render_table({"started": 0.0, "stopped": 1.0, "interval_s": 1, "endpoints": entries})


def test_watch_table_keeps_its_columns_for_short_ids_and_widens_for_long_ones() -> None:
    short = _table(["imaps-993-old"])
    assert short[1].index("probes") == 23  # the 22 columns of a single-address table
    long_id = "submission-587-old-v6-2"
    wide = _table(["imaps-993-old", long_id])
    assert wide[3].startswith(long_id + "  ")
    assert wide[2].index(" 3 ") == wide[3].index(" 3 ")  # the columns line up


def _observations(inv: Inventory, broken: set[str]) -> Observations:
    def observe(endpoint):  # a fake probe: refused where `broken` says, else names the address
        if endpoint.id in broken:
            raise ProbeError(f"connection refused by {endpoint.address}")
        return SimpleNamespace(who=f"server at {endpoint.address}")

    return Observations(
        [e for side in Side for s in inv.services for e in side_endpoints(inv, s, side)], observe
    )


def test_the_reference_is_the_first_address_that_answers(tmp_path: Path) -> None:
    inv = _inventory(tmp_path, DUAL)
    imaps = inv.services[0]
    seen = _observations(inv, set())
    found = first_answer(seen, inv, imaps, Side.OLD)
    assert found is not None and found[0].id == "imaps-993-old-v4"
    seen = _observations(inv, {"imaps-993-old-v4"})
    found = first_answer(seen, inv, imaps, Side.OLD)
    assert found is not None and found[1].who == "server at 2001:db8::10"
    assert reference_endpoint(seen, inv, imaps, Side.OLD).id == "imaps-993-old-v6"
    seen = _observations(inv, {"imaps-993-old-v4", "imaps-993-old-v6"})
    assert first_answer(seen, inv, imaps, Side.OLD) is None
    # Nothing answers: the first address is the reference, its check says why.
    assert reference_endpoint(seen, inv, imaps, Side.OLD).id == "imaps-993-old-v4"


def _matrix(rows: list[tuple[dict[str, str], str]]) -> list[str]:
    summary = VerdictSummary(None, Phase.CUTOVER)  # type: ignore[arg-type]
    summary.results = [Result(props, outcome) for props, outcome in rows]
    return summary.matrix_lines()


def test_the_terminal_matrix_has_one_column_per_address() -> None:
    one = {"service": "imaps-993", "port": "993"}
    single = _matrix(
        [
            ({**one, "side": "old", "address": "203.0.113.10"}, "failed"),
            ({**one, "side": "new", "address": "203.0.113.20"}, "passed"),
        ]
    )
    assert single == ["service           old IP  new IP  ", "imaps-993         FAIL    ok      "]
    dual = _matrix(
        [
            ({**one, "side": side, "address": a, "family": f}, outcome)
            for side, a, f, outcome in (
                ("old", "203.0.113.10", "v4", "passed"),
                ("old", "2001:db8::10", "v6", "failed"),
                ("old", "2001:db8::11", "v6", "passed"),
                ("new", "203.0.113.20", "v4", "passed"),
                ("new", "2001:db8::20", "v6", "passed"),
            )
        ]
    )
    header = "service old v4 old v6 old v6-2 new v4 new v6"
    assert " ".join(dual[0].split()) == header
    assert dual[1].split() == ["imaps-993", "ok", "FAIL", "ok", "ok", "ok"]
