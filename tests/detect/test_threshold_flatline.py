from datetime import UTC, datetime, timedelta
from typing import Any

from watcher.detect import flatline, threshold
from watcher.detect.base import Status, rule_window
from watcher.query import Count, CountWhere, Group, Percentiles, QueryResult
from watcher.rules.models import Rule

AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def make_rule(**fields: Any) -> Rule:
    base: dict[str, Any] = {"name": "r", "source": "s"}
    return Rule.model_validate(base | fields)


def result(*groups: tuple[dict[str, str], dict[str, Any]]) -> QueryResult:
    return QueryResult("r#main", tuple(Group(key, values) for key, values in groups))


def test_window_ends_delay_before_the_evaluation_time() -> None:
    rule = make_rule(window="5m", delay="30s", threshold={"above": 1})
    window = rule_window(rule, AT)
    assert (window.start, window.end) == (AT - timedelta(minutes=5, seconds=30), AT - timedelta(seconds=30))


def test_ratio_rule_asks_for_count_and_matching_count() -> None:
    rule = make_rule(signal={"ratio": {"of": {"status": {"gte": 500}}}}, threshold={"above": 0.05})
    (query,) = threshold.queries(rule, AT)
    assert isinstance(query.aggregates["count"], Count)
    assert isinstance(query.aggregates["value"], CountWhere)


def test_ratio_above_threshold_alerts_per_group() -> None:
    rule = make_rule(
        signal={"ratio": {"of": {"status": {"gte": 500}}}},
        threshold={"above": 0.05},
        group_by=["model_version"],
        min_events=100,
    )
    findings = threshold.evaluate(
        rule,
        [
            result(
                ({"model_version": "v3"}, {"count": 1000, "value": 200}),
                ({"model_version": "v2"}, {"count": 1000, "value": 3}),
            )
        ],
        AT,
    )
    by_group = {f.group["model_version"]: f for f in findings}
    assert by_group["v3"].status is Status.ALERTING
    assert by_group["v3"].value == 0.2
    assert by_group["v3"].reason == "ratio 0.2 > 0.05"
    assert by_group["v2"].status is Status.OK


def test_below_min_events_is_not_enough_data_not_ok() -> None:
    rule = make_rule(threshold={"above": 0.05}, signal={"ratio": {"of": {"status": 500}}}, min_events=200)
    (finding,) = threshold.evaluate(rule, [result(({}, {"count": 12, "value": 12}))], AT)
    assert finding.status is Status.NO_DATA
    assert finding.reason == "not enough data: 12 < min_events 200"


def test_percentile_signal_below_threshold() -> None:
    rule = make_rule(signal={"percentile": {"field": "latency_ms", "q": 99}}, threshold={"above": 800})
    (query,) = threshold.queries(rule, AT)
    assert query.aggregates["value"] == Percentiles("latency_ms", (99.0,))
    (finding,) = threshold.evaluate(rule, [result(({}, {"count": 500, "value": {99.0: 310.5}}))], AT)
    assert (finding.status, finding.value) == (Status.OK, 310.5)


def test_a_known_group_missing_from_the_answer_is_evaluated_as_empty() -> None:
    rule = make_rule(threshold={"above": 0.05}, signal={"ratio": {"of": {"status": 500}}}, group_by=["m"])
    (finding,) = threshold.evaluate(rule, [result()], AT, known_groups=[{"m": "v3"}])
    assert finding.group == {"m": "v3"}
    assert finding.status is Status.NO_DATA


def test_a_store_error_is_an_error_state_never_ok_or_alerting() -> None:
    rule = make_rule(threshold={"above": 1})
    (finding,) = threshold.evaluate(rule, [QueryResult("r#main", error="index_not_found")], AT)
    assert finding.status is Status.ERROR
    assert finding.reason == "store error: index_not_found"


def test_flatline_fires_on_an_empty_window() -> None:
    rule = make_rule(flatline={"below": 300})
    (finding,) = flatline.evaluate(rule, [result(({}, {"count": 0}))], AT)
    assert (finding.status, finding.value) == (Status.ALERTING, 0)


def test_flatline_fires_for_a_known_group_that_vanished() -> None:
    rule = make_rule(flatline={"below": 10}, group_by=["endpoint"])
    findings = flatline.evaluate(
        rule, [result(({"endpoint": "/a"}, {"count": 50}))], AT, [{"endpoint": "/b"}]
    )
    assert {f.group["endpoint"]: f.status for f in findings} == {"/a": Status.OK, "/b": Status.ALERTING}


def test_flatline_never_fires_on_a_store_error() -> None:
    rule = make_rule(flatline={"below": 300})
    (finding,) = flatline.evaluate(rule, [QueryResult("r#main", error="connection refused")], AT)
    assert finding.status is Status.ERROR
