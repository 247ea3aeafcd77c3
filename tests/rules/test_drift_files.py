"""Drift settings in rule files: one mistake per file in testdata/drift/, each asserted against
its exact message and position; the good file loads with the significance it says."""

from __future__ import annotations

from pathlib import Path

from tests.rules.conftest import MistakesCheck
from watcher.config import Config
from watcher.rules.loader import load_rules

TESTDATA = Path(__file__).parent / "testdata" / "drift"
GOOD = "rule.good-drift.yaml"

RULE_MISTAKES = {
    "rule.significance-zero.yaml": "6:17: 'drift.significance' must be > 0, got 0",
    "rule.significance-negative.yaml": "6:17: 'drift.significance' must be > 0, got -0.01",
    "rule.significance-one.yaml": "6:17: 'drift.significance' must be < 1, got 1",
    "rule.significance-above-one.yaml": "6:17: 'drift.significance' must be < 1, got 1.5",
    "rule.significance-not-a-number.yaml": "6:17: 'drift.significance' must be a number, got 'often'",
}


def test_every_mistake_is_reported_alone_at_its_position(one_mistake_per_file: MistakesCheck) -> None:
    one_mistake_per_file(RULE_MISTAKES, GOOD)


def test_significance_loads_as_written_and_defaults_to_one_percent(config: Config) -> None:
    ruleset = load_rules([Path(GOOD)], config)
    assert ruleset.errors == []
    assert [rule.drift.significance for rule in ruleset.rules if rule.drift is not None] == [
        0.001,
        None,
        0.01,
    ]
