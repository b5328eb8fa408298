"""Behaviour unchanged: what collection gives users matches the golden files (no lab).

For the example inventory and the fleet example, each phase: the test ids
`cutover run PHASE --collect-only` lists and each one's JUnit properties, as
captured before issue #16's restructuring (tests/golden/capture.py says what
is normalised, and when and how to regenerate).
"""

from __future__ import annotations

import pytest

from tests.golden import capture


def test_collected_ids_and_properties_of_the_examples_are_unchanged() -> None:
    now = capture.example_files()
    assert len(now) == len(capture.INVENTORIES) * len(capture.PHASES)
    assert all(text.count("\n") > 10 for text in now.values()), now  # never a golden of nothing
    diff = capture.compare(capture.read_golden(now), now)
    if diff:
        pytest.fail(
            (
                "what users see at collection changed (regenerate only if meant: "
                "tests/golden/capture.py):\n" + diff
            ),
            pytrace=False,
        )
