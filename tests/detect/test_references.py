"""Several reference windows combined per value (spike) and per bin (drift); windows left out with
their reasons, and "not enough reference data" when none is left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from watcher.detect import drift, spike
from watcher.detect.base import Status, rule_window
from watcher.detect.references import Exclusions, combine_counts, overlapping_incidents, reference_windows
from watcher.incidents.episodes import Episode
from watcher.incidents.model import fingerprint
from watcher.query import Group, QueryResult
from watcher.rules.models import Rule

AT = datetime(2026, 1, 8, 12, 0, tzinfo=UTC)
COUNTRY = "country"
NORMAL = {"DE": 500, "FR": 300, "US": 200}
ODD = {"DE": 100, "FR": 100, "US": 800}


def drift_rule(**reference: Any) -> Rule:
    spec = {"reference": {"offset": "1d"} | reference, "features": [{"name": COUNTRY, "type": "categorical"}]}
    return Rule.model_validate({"name": "mix", "source": "app", "window": "1h", "delay": "0s", "drift": spec})


def spike_rule(**reference: Any) -> Rule:
    spec = {"reference": {"offset": "1d"} | reference, "direction": "both", "min_volume": 10}
    return Rule.model_validate(
        {"name": "traffic", "source": "app", "window": "1h", "delay": "0s", "spike": spec}
    )


def countries(counts: dict[str, int]) -> dict[str, Any]:
    return {"count": sum(counts.values()), f"{COUNTRY}/missing": 0, f"{COUNTRY}/terms": counts}


def answers(*windows: dict[str, Any]) -> list[QueryResult]:
    return [QueryResult(f"q{i}", (Group({}, values),)) for i, values in enumerate(windows)]


def test_one_odd_day_of_seven_moves_neither_a_bin_nor_the_verdict() -> None:
    week = [countries(ODD)] + [countries(NORMAL)] * 6  # yesterday was odd
    (median,) = drift.evaluate(drift_rule(count=7), answers(countries(NORMAL), *week), AT)
    (yesterday,) = drift.evaluate(drift_rule(), answers(countries(NORMAL), week[0]), AT)

    assert median.status is Status.OK
    assert median.value == 0
    assert median.details["reference_windows"] == 7
    assert yesterday.status is Status.ALERTING  # against the odd day alone, a normal day drifts


def test_windows_left_out_for_every_group_or_for_the_incident_s_group() -> None:
    rule = spike_rule(count=3)
    excluded = Exclusions(
        {3: "before the first log line"}, {fingerprint("traffic", {}): {1: "in the incident from A to B UTC"}}
    )
    results = answers({"count": 100}, {"count": 900}, {"count": 80}, {"count": 5})

    (finding,) = spike.evaluate(rule, results, AT, excluded=excluded)

    assert finding.status is Status.OK
    assert finding.details["reference"] == 80  # the one window left
    assert finding.details["excluded"] == ["in the incident from A to B UTC", "before the first log line"]
    assert finding.reason == "count 100 is 1.25x the median of its values in 1 window 1d apart (80)"


def test_with_no_window_left_the_reason_counts_each_cause() -> None:
    rule = spike_rule(count=3)
    excluded = Exclusions({2: "before the first log line", 3: "before the first log line"})

    (finding,) = spike.evaluate(rule, answers({"count": 100}, {"count": 5}, {}, {}), AT, excluded=excluded)

    assert finding.status is Status.NO_DATA
    assert finding.reason == (
        "not enough reference data: reference windows excluded: 2 before the first log line; "
        "1 with fewer than 10 documents"
    )


def test_drift_with_every_window_left_out_is_not_enough_data() -> None:
    excluded = Exclusions({1: "in the store gap from 2026-01-07 11:00 to 12:00 UTC (lost)"})
    (finding,) = drift.evaluate(
        drift_rule(), answers(countries(NORMAL), countries(NORMAL)), AT, excluded=excluded
    )
    assert finding.status is Status.NO_DATA
    assert finding.reason == (
        "not enough reference data: reference windows excluded: 1 in the store gap from 2026-01-07 11:00 "
        "to 12:00 UTC (lost)"
    )


def test_counts_are_combined_bin_by_bin_and_value_by_value() -> None:
    windows = [
        {"count": 10, "bins": [1, 2, 7], "terms": {"a": 4}},
        {"count": 20, "bins": [3, 2, 15], "terms": {"a": 2, "b": 6}},
        {"count": 90, "bins": [30, 30, 30], "terms": {"b": 9}},
    ]
    assert combine_counts(windows, "median") == {"count": 20, "bins": [3, 2, 15], "terms": {"a": 2, "b": 6}}
    assert combine_counts(windows, "mean") == {"count": 40, "bins": [11, 11, 17], "terms": {"a": 2, "b": 5}}
    assert combine_counts(windows[:1], "mean") is windows[0]


def test_an_incident_overlaps_the_reference_windows_its_evaluations_read() -> None:
    rule = spike_rule(count=2)
    windows = reference_windows(rule, AT)
    assert windows == [rule_window(rule, AT).shifted(timedelta(days=k)) for k in (1, 2)]
    # Raised at 12:30 and resolved at 12:50 the day before: its windows read 11:30 to 12:50.
    raised = AT - timedelta(days=1) + timedelta(minutes=30)
    episode = Episode("fp", "traffic", raised, raised + timedelta(minutes=20))
    other_rule = Episode("fp2", "other", raised, raised + timedelta(minutes=20))
    # The reference window 1d back is 11:00-12:00: the incident's first window reaches into it.
    assert overlapping_incidents(rule, windows, [episode, other_rule]) == {
        "fp": {1: "in the incident from 2026-01-07 12:30 to 12:50 UTC"}
    }
    later = Episode("fp", "traffic", AT - timedelta(days=1) + timedelta(hours=1, minutes=1), AT)
    assert overlapping_incidents(rule, windows, [later]) == {}
