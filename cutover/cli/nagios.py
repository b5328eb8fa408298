"""A phase run as a Nagios/Icinga plugin: one status line, perfdata, exit 0/1/2/3.

Built from the run's JSON report (docs/json-report.md), following the
Nagios plugin guidelines: `SERVICE STATE - text | 'label'=value;warn;crit;min;max`.

>>> line, code = render("preflight", {"totals": {"checks": 2, "passed": 2, "failed": 0,
...     "error": 0, "skipped": 0}, "areas": {"ports": {"passed": 2, "failed": 0, "error": 0,
...     "skipped": 0}}, "checks": []})
>>> line
"CUTOVER PREFLIGHT OK - 2 checks: 2 passed, 0 failed, 0 error, 0 skipped; ports ok (2 passed) \
| 'checks'=2;;;0 'passed'=2;;;0;2 'failed'=0;;0;0;2 'error'=0;0;;0;2 'skipped'=0;;;0;2 \
'ports_failed'=0;;0;0;2"
>>> code
0
>>> unknown("cutover", "no check ran")
('CUTOVER CUTOVER UNKNOWN - no check ran', 3)
"""

from __future__ import annotations

from typing import Any

__all__ = ["STATES", "render", "state_of", "unknown"]

STATES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}
VERDICTS = ("passed", "failed", "error", "skipped")


def state_of(totals: dict[str, int]) -> str:
    """CRITICAL: a check failed. WARNING: none failed, but some could not be judged
    (errors) or nothing was verified (all skipped). UNKNOWN: no check ran."""
    if not totals.get("checks"):
        return "UNKNOWN"
    if totals.get("failed"):
        return "CRITICAL"
    if totals.get("error") or not totals.get("passed"):
        return "WARNING"
    return "OK"


def unknown(phase: str, why: str) -> tuple[str, int]:
    """The line for a run that could not judge anything (bad inventory, no check ran)."""
    return f"CUTOVER {phase.upper()} UNKNOWN - {_one_line(why)}", STATES["UNKNOWN"]


def render(phase: str, report: dict[str, Any]) -> tuple[str, int]:
    """The status line and exit code for a run's JSON report."""
    totals: dict[str, int] = report["totals"]
    state = state_of(totals)
    if state == "UNKNOWN":
        return unknown(phase, "no check ran")
    counts = ", ".join(f"{totals.get(v, 0)} {v}" for v in VERDICTS)
    areas = ", ".join(_area_text(area, c) for area, c in report["areas"].items())
    failing = sorted({c["id"] for c in report["checks"] if c["verdict"] in ("failed", "error")})
    text = f"{totals['checks']} checks: {counts}"
    if failing:
        text += f"; failing: {' '.join(failing)}"
    text += f"; {areas}"
    return f"CUTOVER {phase.upper()} {state} - {text} | {_perfdata(report)}", STATES[state]


def _area_text(area: str, counts: dict[str, int]) -> str:
    verdict = "FAIL" if counts.get("failed") or counts.get("error") else "ok"
    if not counts.get("passed") and verdict == "ok":
        verdict = "skipped"
    detail = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts.get(v))
    return f"{area} {verdict} ({detail})"


def _perfdata(report: dict[str, Any]) -> str:
    """Guideline perfdata: `'label'=value[UOM];[warn];[crit];[min];[max]`, space separated.

    Thresholds are Nagios ranges: `0` alerts on any value above 0.
    """
    totals: dict[str, int] = report["totals"]
    total = totals["checks"]
    items = [
        _metric("checks", total, "", "", None),
        _metric("passed", totals["passed"], "", "", total),
        _metric("failed", totals["failed"], "", "0", total),
        _metric("error", totals["error"], "0", "", total),
        _metric("skipped", totals["skipped"], "", "", total),
    ]
    for area, counts in report["areas"].items():
        items.append(_metric(f"{area}_failed", counts["failed"], "", "0", sum(counts.values())))
    return " ".join(items)


def _metric(label: str, value: int, warn: str, crit: str, maximum: int | None) -> str:
    quoted = label.replace("'", "''").replace("=", "_")
    tail = f";{warn};{crit};0" + (f";{maximum}" if maximum is not None else "")
    return f"'{quoted}'={value}{tail}"


def _one_line(text: str) -> str:
    """Nagios shows the first line only; `|` would start the perfdata."""
    first = text.strip().splitlines()[0] if text.strip() else "no output"
    return first.replace("|", "/")
