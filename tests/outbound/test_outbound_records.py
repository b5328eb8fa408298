"""What preflight records for MAIL04, written by the outbound observation layer's recorder.

No servers: the example inventory lists its zones' nameservers (no NS
discovery) and the MX answers are stubbed; the baseline is a file under
tmp_path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from checks.observe import outbound as observe_outbound
from checks.record import RecordContext, Records
from cutover.model.baseline import Baseline
from cutover.model.inventory import load_inventory
from cutover.model.phases import Phase, expectations
from cutover.probes.connect import ProbeError
from cutover.probes.outbound.mx import MxRecord
from tests.suite import REPO


def test_the_recorder_writes_every_mx_it_read_and_names_the_ones_it_could_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = load_inventory(
        REPO / "fixtures" / "inventory.example.yaml", environ={"CUTOVER_ALICE_PASSWORD": "x"}
    )

    def mx(domain: str, names: Any) -> tuple[MxRecord, ...]:
        if domain == "shop.test":
            raise ProbeError("198.51.100.53: shop.test MX: REFUSED")
        return (MxRecord(10, f"mail.{domain}"),)

    monkeypatch.setattr(observe_outbound, "observe_mx", mx)
    expect = expectations(Phase.PREFLIGHT)
    records = Records(Baseline(tmp_path / "baseline.json"), expect, "run")
    context = RecordContext(cast(pytest.Config, None), inventory, expect, records)
    with pytest.raises(ProbeError, match=r"^198\.51\.100\.53: shop\.test MX: REFUSED$"):
        observe_outbound.record_outbound(context)
    assert records.get("mx", "example.test") == [[10, "mail.example.test"]]
    assert records.get("mx", "shop.test") is None
