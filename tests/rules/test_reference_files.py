"""Reference windows in rule files: one mistake per file in testdata/references/, each asserted
against its exact message; a source's gaps load (their mistakes: ``test_config_file.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.rules.conftest import MistakesCheck
from watcher.config import Config
from watcher.rules.loader import load_rules

TESTDATA = Path(__file__).parent / "testdata" / "references"
GOOD = "rule.good-references.yaml"

RULE_MISTAKES = {
    "rule.reference-count-zero.yaml": "4:34: 'spike.reference.count' must be >= 1, got 0",
    "rule.reference-count-too-many.yaml": "4:34: 'spike.reference.count' must be <= 60, got 400",
    "rule.reference-count-not-a-number.yaml": "4:34: 'spike.reference.count' must be an integer, got 'seven'",
    "rule.reference-combine-unknown.yaml": "4:46: 'spike.reference.combine' must be one of 'median' or "
    "'mean', got 'avg'",
    "rule.reference-and-offset.yaml": "4:3: 'offset' is short for 'reference: {offset: ...}': write one "
    "of them",
    "rule.reference-without-offset.yaml": "4:3: missing required key 'offset'",
    "rule.reference-offset-zero.yaml": "5:15: 'offset' must be longer than 0s",
}


def test_every_rule_mistake_is_reported_alone_at_its_position(one_mistake_per_file: MistakesCheck) -> None:
    one_mistake_per_file(RULE_MISTAKES, GOOD)


def test_references_and_gaps_load(config: Config) -> None:
    ruleset = load_rules([Path(GOOD)], config)
    assert ruleset.errors == []
    (rule,) = ruleset.rules
    assert rule.spike is not None
    assert rule.spike.references is not None
    assert rule.spike.references.shifts() == [timedelta(days=k) for k in range(1, 8)]
    assert rule.spike.references.combine == "median"
    (gap,) = config.gaps["api"]
    # Times with any offset are read as UTC: 14:00+02:00 is 12:00 UTC.
    assert (gap.start, gap.end) == (
        datetime(2026, 12, 5, 10, tzinfo=UTC),
        datetime(2026, 12, 5, 12, tzinfo=UTC),
    )
    assert gap.reason == "log shipper down"
