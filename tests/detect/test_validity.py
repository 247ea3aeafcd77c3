"""The validity detector: unseen categories, missing values and out-of-range numbers, counted exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from watcher.baseline import OTHER, CategoricalFeature, NumericFeature, Profile
from watcher.detect import DETECTORS, validity
from watcher.detect.base import Status
from watcher.incidents.machine import step
from watcher.query import Count, CountWhere, Group, Missing, QueryResult, Terms
from watcher.query_filters import And, Exists, In, Not, Or, Range
from watcher.rules.models import Rule
from watcher.store.embedded import EmbeddedStore

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
AGE, COUNTRY = "features.age", "features.country"
AGE_OUT_OF_RANGE = f"{AGE}/out_of_range"
COUNTRY_MISSING, COUNTRY_UNSEEN, COUNTRY_TERMS = f"{COUNTRY}/missing", f"{COUNTRY}/unseen", f"{COUNTRY}/terms"
PROFILE = Profile(
    built_at=datetime(2026, 1, 1, tzinfo=UTC),
    source="train.csv",
    rows=10_000,
    features={
        AGE: NumericFeature(
            count=10_000,
            missing_rate=0.0,
            edges=(18.0, 90.0),
            shares=(0, 1, 0),
            min=18,
            max=89,
            p0_1=18.5,
            p99_9=88,
        ),
        COUNTRY: CategoricalFeature(
            count=9_800, missing_rate=0.02, shares={"DE": 0.6, "FR": 0.4, OTHER: 0.0}, values=("DE", "FR")
        ),
    },
)


def make_rule(**spec: Any) -> Rule:
    data = {
        "name": "valid",
        "source": "demo",
        "window": "10m",
        "delay": "0s",
        "validity": {"baseline": PROFILE} | spec,
    }
    return Rule.model_validate(data)


def group(count: int = 1000, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """A clean group's aggregate values, with ``changes`` applied."""
    values: dict[str, Any] = {"count": count, f"{AGE}/missing": 0, f"{COUNTRY}/missing": 0}
    values |= {f"{AGE}/out_of_range": 0, f"{COUNTRY}/unseen": 0, f"{COUNTRY}/terms": {"DE": 600, "FR": 400}}
    return values | (changes or {})


def evaluate(rule: Rule, values: dict[str, Any]) -> Any:
    (finding,) = validity.evaluate(rule, [QueryResult("q", (Group({}, values),))], AT)
    return finding


def test_is_registered() -> None:
    assert DETECTORS["validity"] is validity


def test_query_counts_unseen_values_exactly_and_out_of_range_values() -> None:
    (query,) = validity.queries(make_rule(), AT)
    assert query.aggregates == {
        "count": Count(),
        f"{AGE}/missing": Missing(AGE),
        f"{AGE}/out_of_range": CountWhere(Or((Range(AGE, lt=18.5), Range(AGE, gt=88)))),
        f"{COUNTRY}/missing": Missing(COUNTRY),
        f"{COUNTRY}/unseen": CountWhere(And((Exists(COUNTRY), Not(In(COUNTRY, ("DE", "FR")))))),
        f"{COUNTRY}/terms": Terms(COUNTRY, size=7),
    }


def test_explicit_bounds_replace_the_profile_range_and_may_be_one_sided() -> None:
    (query,) = validity.queries(make_rule(bounds={AGE: {"min": 0}}), AT)
    assert query.aggregates[f"{AGE}/out_of_range"] == CountWhere(Range(AGE, lt=0))


def test_clean_traffic_is_ok() -> None:
    finding = evaluate(make_rule(), group())
    assert finding.status is Status.OK
    assert finding.reason == "4 checks within limits"
    assert [(c["feature"], c["check"]) for c in finding.details["checks"]] == [
        (AGE, "missing"),
        (AGE, "out_of_range"),
        (COUNTRY, "missing"),
        (COUNTRY, "unseen"),
    ]


def test_unseen_categories_alert_and_are_named() -> None:
    values = group(changes={COUNTRY_UNSEEN: 150, COUNTRY_TERMS: {"DE": 500, "FR": 350, "XX": 140, "ZZ": 10}})
    finding = evaluate(make_rule(), values)
    assert finding.status is Status.ALERTING
    assert finding.value == pytest.approx(0.15)
    assert finding.threshold == 0.01
    assert finding.reason == f"{COUNTRY}: 15.0% unseen values (limit 1.0%): XX, ZZ"
    assert finding.details["violations"] == [f"{COUNTRY}:unseen"]


def test_missing_share_is_judged_against_the_baseline_rate_plus_margin() -> None:
    within = evaluate(make_rule(), group(changes={COUNTRY_MISSING: 60}))  # 6% <= 2% + 5%
    over = evaluate(make_rule(), group(changes={COUNTRY_MISSING: 100}))  # 10% > 7%
    assert within.status is Status.OK
    assert over.status is Status.ALERTING
    assert over.reason == f"{COUNTRY}: 10.0% missing (limit 7.0%)"


def test_unseen_share_is_of_the_present_values() -> None:
    finding = evaluate(
        make_rule(missing_share_above=None), group(changes={COUNTRY_MISSING: 900, COUNTRY_UNSEEN: 20})
    )
    unseen = next(c for c in finding.details["checks"] if c["check"] == "unseen")
    assert (unseen["count"], unseen["of"], unseen["share"]) == (20, 100, 0.2)


def test_out_of_range_values_alert_with_the_range() -> None:
    finding = evaluate(make_rule(), group(changes={AGE_OUT_OF_RANGE: 30}))
    assert finding.status is Status.ALERTING
    assert finding.reason == f"{AGE}: 3.0% out of range (limit 1.0%) outside [18.5, 88]"


def test_several_violations_are_all_reported_and_the_worst_is_the_value() -> None:
    values = group(changes={AGE_OUT_OF_RANGE: 30, COUNTRY_UNSEEN: 500, COUNTRY_MISSING: 0})
    finding = evaluate(make_rule(), values)
    assert finding.details["violations"] == [f"{AGE}:out_of_range", f"{COUNTRY}:unseen"]
    assert finding.value == pytest.approx(0.5)


def test_checks_can_be_switched_off() -> None:
    rule = make_rule(unseen_share_above=None, out_of_range_share_above=None)
    (query,) = validity.queries(rule, AT)
    assert set(query.aggregates) == {"count", f"{AGE}/missing", f"{COUNTRY}/missing"}
    assert evaluate(rule, group(changes={COUNTRY_UNSEEN: 900})).status is Status.OK


def test_too_few_documents_is_not_enough_data() -> None:
    finding = evaluate(make_rule(min_samples=500), group(count=120))
    assert (finding.status, finding.reason) == (
        Status.NO_DATA,
        "not enough data: 120 documents < min_samples 500",
    )


def test_a_store_error_is_an_error() -> None:
    (finding,) = validity.evaluate(make_rule(), [QueryResult("q", error="boom")], AT)
    assert finding.status is Status.ERROR


def test_bounds_only_rule_without_baseline() -> None:
    rule = Rule.model_validate(
        {"name": "v", "source": "demo", "validity": {"bounds": {"latency_ms": {"min": 0, "max": 30000}}}}
    )
    (query,) = validity.queries(rule, AT)
    assert query.aggregates["latency_ms/out_of_range"] == CountWhere(
        Or((Range("latency_ms", lt=0), Range("latency_ms", gt=30000)))
    )
    finding = evaluate(rule, {"count": 500, "latency_ms/missing": 0, "latency_ms/out_of_range": 0})
    assert finding.status is Status.OK


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"unseen_share_above": None, "missing_share_above": None, "out_of_range_share_above": None},
            "validity needs at least one of unseen_share_above, missing_share_above, "
            "out_of_range_share_above",
        ),
        ({"baseline": None}, "validity needs 'baseline', or 'features' / 'bounds' to check"),
        (
            {"features": ["features.plan"]},
            "feature 'features.plan' is not in baseline <train.csv> "
            "(it has: features.age, features.country) and has no bounds",
        ),
        ({"bounds": {AGE: {}}}, "bounds need 'min', 'max' or both"),
        ({"bounds": {AGE: {"min": 5, "max": 1}}}, "bounds min 5 is above max 1"),
        ({"unseen_share_above": 2}, "'unseen_share_above' must be a share between 0 and 1, got 2"),
        (
            {"missing_share_above": {"warning": 0.1, "critical": 0.05}},
            "'missing_share_above': 'critical' (0.05) must be above 'warning' (0.1), "
            "a more severe level is crossed later",
        ),
        (
            {"out_of_range_share_above": {"warning": 0.01, "critical": 1.5}},
            "'out_of_range_share_above' level 'critical' must be a share between 0 and 1, got 1.5",
        ),
        ({"unseen_share_above": {"warn": 0.01}}, "unknown level 'warn' (did you mean 'warning'?)"),
    ],
)
def test_bad_validity_specs_are_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make_rule(**spec)
    assert message in str(caught.value)


def test_validity_against_the_embedded_store(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "logs.duckdb")
    docs = []
    for i in range(1000):
        features: dict[str, Any] = {"age": 30 + i % 40, "country": ["DE", "FR"][i % 2]}
        if i % 10 == 0:
            features["country"] = "XX"  # 10% unseen
        if i % 50 == 0:
            features["age"] = 150  # 2% out of range
        if i % 100 == 1:
            del features["country"]  # 1% missing
        stamp = (AT - timedelta(minutes=9) + timedelta(milliseconds=500 * i)).isoformat()
        docs.append(json.dumps({"@timestamp": stamp, "features": features}))
    store.ingest_lines(docs)
    rule = make_rule()
    (finding,) = validity.evaluate(rule, store.evaluate(validity.queries(rule, AT)), AT)
    store.close()
    checks = {(c["feature"], c["check"]): c for c in finding.details["checks"]}
    assert finding.status is Status.ALERTING
    assert checks[(COUNTRY, "unseen")]["count"] == 100
    assert checks[(COUNTRY, "unseen")]["values"] == {"XX": 100}
    assert checks[(COUNTRY, "missing")]["count"] == 10
    assert checks[(AGE, "out_of_range")]["count"] == 20
    assert finding.details["violations"] == [f"{AGE}:out_of_range", f"{COUNTRY}:unseen"]


# --------------------------------------------------------------------------- severity levels

LEVELS = {"warning": 0.01, "critical": 0.05}


@pytest.mark.parametrize(
    ("changes", "severity", "reason"),
    [
        ({COUNTRY_UNSEEN: 30}, "warning", f"{COUNTRY}: 3.0% unseen values (warning: over 1.0%)"),
        ({COUNTRY_UNSEEN: 80}, "critical", f"{COUNTRY}: 8.0% unseen values (critical: over 5.0%)"),
        ({COUNTRY_MISSING: 100}, "critical", f"{COUNTRY}: 10.0% missing (critical: over 7.0%)"),
        (
            {AGE_OUT_OF_RANGE: 20},
            "warning",
            f"{AGE}: 2.0% out of range (warning: over 1.0%) outside [18.5, 88]",
        ),
    ],
)
def test_validity_levels_set_the_incidents_severity(
    changes: dict[str, int], severity: str, reason: str
) -> None:
    rule = make_rule(
        unseen_share_above=LEVELS,
        missing_share_above={"warning": 0.02, "critical": 0.05},  # over the baseline's 2% missing rate
        out_of_range_share_above=LEVELS,
    )

    finding = evaluate(rule, group(changes=changes))
    incident, _ = step(None, finding, rule, AT, None)

    assert (finding.status, finding.severity, finding.reason) == (Status.ALERTING, severity, reason)
    assert incident is not None
    assert (incident.severity, incident.labels["severity"]) == (severity, severity)


def test_the_most_severe_level_of_any_check_is_the_findings() -> None:
    rule = make_rule(unseen_share_above=LEVELS, out_of_range_share_above=LEVELS)
    finding = evaluate(rule, group(changes={COUNTRY_UNSEEN: 30, AGE_OUT_OF_RANGE: 60}))
    assert finding.severity == "critical"
    assert [c["level"] for c in finding.details["checks"] if c["alerting"]] == ["critical", "warning"]


def test_a_plain_share_alerts_at_the_rules_severity() -> None:
    rule = make_rule().model_copy(update={"severity": "info"})
    assert evaluate(rule, group(changes={COUNTRY_UNSEEN: 80})).severity == "info"
