"""How an observation engine tells its caller how far it got, without knowing who listens.

Engines that observe many targets at once (`Observations`, `observe_zones`,
`observe_answers`) take an optional `progress` callback and call it with
(done, total) as results come in; `total` may grow (DNS asks MX targets in a
second round). The caller owns the stage: its name, its clock, its display.

>>> seen = []
>>> report: Progress = lambda done, total: seen.append(f"{done}/{total}")
>>> report(1, 3); seen
['1/3']
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress"]

Progress = Callable[[int, int], None]
