"""Forecast and canary settings in rule files: one mistake per file in testdata/trends/, each
asserted against its exact message and position; the good file loads."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.rules.conftest import MistakesCheck
from watcher.cli import main
from watcher.config import Config
from watcher.rules.loader import load_rules

TESTDATA = Path(__file__).parent / "testdata" / "trends"
GOOD = "rule.good-trends.yaml"

RULE_MISTAKES = {
    "rule.forecast-no-limit.yaml": "3:1: forecast needs a limit: 'above' or 'below'",
    "rule.forecast-seasonal-no-season.yaml": "3:1: method seasonal needs 'season' (e.g. 1d)",
    "rule.forecast-short-history.yaml": "3:22: 'history' (1d) must hold two seasons: at least 2d for "
    "season 1d",
    "rule.forecast-linear-season.yaml": "3:22: 'season' applies to method seasonal; method linear fits "
    "a line",
    "rule.forecast-method-unknown.yaml": "3:30: 'forecast.method' must be one of 'linear' or 'seasonal', "
    "got 'holt'",
    "rule.forecast-history-not-multiple.yaml": "4:22: forecast 'history' (1h) must be a multiple of "
    "'window' (7m)",
    "rule.forecast-min-points-too-many.yaml": "4:35: 'min_points' (12) is more than the 6 windows in "
    "'history' (1h)",
    "rule.forecast-horizon-zero.yaml": "5:3: 'horizon' must be longer than 0s",
    "rule.canary-same-groups.yaml": "4:32: 'baseline' and 'candidate' are both 'v4'",
    "rule.canary-confidence-one.yaml": "4:73: 'canary.confidence' must be < 1, got 1",
    "rule.canary-no-field.yaml": "4:1: missing required key 'field'",
    "rule.canary-count-signal.yaml": "3:1: 'canary' compares a ratio, a percentile or a stat of a field, "
    "or a 'feature'; the signal is count",
    "rule.canary-min-samples-zero.yaml": "4:74: 'canary.min_samples' must be >= 1, got 0",
    "rule.canary-field-grouped.yaml": "3:1: 'group_by' holds the canary's 'field' (model_version), whose "
    "values the canary compares within each group: remove it from 'group_by'",
    "rule.forecast-overrides-file.yaml": "4:17: 'overrides_file' applies to threshold and flatline rules",
    "rule.canary-edges-decreasing.yaml": "4:61: 'edges' must be a non-empty increasing list",
    "rule.forecast-levels-out-of-order.yaml": "5:3: forecast 'above': 'critical' (0.8) must be above "
    "'warning' (0.9), a more severe level is crossed later",
    "rule.forecast-level-unknown.yaml": "4:34: unknown level 'crit' (did you mean 'critical'?)",
    "rule.forecast-severity-with-levels.yaml": "4:1: 'severity' comes from the levels of 'forecast': "
    "remove 'severity'",
    "rule.forecast-levels-empty.yaml": "4:12: forecast 'below' has no level: write {warning: ..., "
    "critical: ...}",
}


def test_every_mistake_is_reported_alone_at_its_position(one_mistake_per_file: MistakesCheck) -> None:
    one_mistake_per_file(RULE_MISTAKES, GOOD)


def test_watcher_check_refuses_forecast_levels_out_of_order(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["check", "--config", "watcher.yaml", "rule.forecast-levels-out-of-order.yaml"])

    assert code == 1
    assert capsys.readouterr().out.splitlines()[0] == (
        "rule.forecast-levels-out-of-order.yaml:5:3: forecast 'above': 'critical' (0.8) must be above "
        "'warning' (0.9), a more severe level is crossed later"
    )


def test_forecasts_and_canaries_load(config: Config) -> None:
    ruleset = load_rules([Path(GOOD)], config)
    assert ruleset.errors == []
    assert [rule.detector for rule in ruleset.rules] == [
        *("forecast", "forecast", "canary", "canary", "canary", "forecast")
    ]
    quota, daily, errors, latency, country, leveled = ruleset.rules
    assert quota.forecast is not None
    assert quota.forecast.horizon == timedelta(hours=1)
    assert leveled.forecast is not None
    assert leveled.forecast.levels("above", "info") == [("critical", 0.95), ("warning", 0.8)]
    assert daily.forecast is not None
    assert daily.forecast.season == timedelta(days=1)
    assert errors.canary is not None
    assert errors.canary.candidate == "newest"
    assert latency.canary is not None
    assert latency.canary.confidence == 0.99
    assert country.canary is not None
    assert country.canary.feature is not None
