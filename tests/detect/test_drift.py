"""The drift detector: binned counts from the store against a baseline profile or a reference window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from watcher.baseline import (
    OTHER,
    CategoricalFeature,
    NumericFeature,
    Profile,
    bucket_counts,
    profile_from_frame,
    save_profile,
)
from watcher.detect import DETECTORS, drift, stats
from watcher.detect.base import Status
from watcher.incidents.machine import step
from watcher.query import Count, CountWhere, Group, Histogram, Missing, QueryResult, Terms
from watcher.query_filters import Eq
from watcher.rules.models import Rule
from watcher.store.embedded import EmbeddedStore

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
INCOME = "features.income"
COUNTRY = "features.country"
EDGES = (0.0, 10.0, 20.0, 30.0)
PROFILE = Profile(
    built_at=datetime(2026, 1, 1, tzinfo=UTC),
    source="train.csv",
    rows=10_000,
    features={
        INCOME: NumericFeature(count=10_000, missing_rate=0.0, edges=EDGES, shares=(0.0, 0.3, 0.4, 0.3, 0.0)),
        COUNTRY: CategoricalFeature(
            count=10_000,
            missing_rate=0.0,
            shares={"DE": 0.5, "FR": 0.3, "US": 0.2, OTHER: 0.0},
            values=("DE", "FR", "US"),
        ),
    },
)


def make_rule(**drift_spec: Any) -> Rule:
    spec = {"baseline": PROFILE} | drift_spec
    return Rule.model_validate(
        {"name": "drift", "source": "demo", "window": "1h", "delay": "0s", "drift": spec}
    )


def values(income: list[int], country: dict[str, int], missing: int = 0) -> dict[str, Any]:
    """A group's aggregate values as the store returns them for the rule of ``make_rule``."""
    count = sum(country.values()) + missing
    categories = {f"{COUNTRY}/category{i}": country.get(name, 0) for i, name in enumerate(["DE", "FR", "US"])}
    return {
        "count": count,
        f"{INCOME}/bins": income,
        f"{COUNTRY}/terms": country,
        f"{COUNTRY}/missing": missing,
    } | categories


STABLE = values([0, 600, 800, 600, 0], {"DE": 1000, "FR": 600, "US": 400})
DRIFTED = values([0, 200, 400, 900, 500], {"DE": 1000, "FR": 600, "US": 400})


def evaluate(rule: Rule, *groups: dict[str, Any]) -> Any:
    results = [QueryResult(f"q{i}", (Group({}, g),)) for i, g in enumerate(groups)]
    (finding,) = drift.evaluate(rule, results, AT)
    return finding


def test_is_registered() -> None:
    assert DETECTORS["drift"] is drift


# --------------------------------------------------------------------------- queries


def test_baseline_mode_asks_for_histograms_terms_and_missing_counts() -> None:
    (query,) = drift.queries(make_rule(), AT)
    assert query.window.end == AT
    assert query.aggregates == {
        "count": Count(),
        f"{INCOME}/bins": Histogram(INCOME, EDGES),
        f"{COUNTRY}/missing": Missing(COUNTRY),
        f"{COUNTRY}/category0": CountWhere(Eq(COUNTRY, "DE")),
        f"{COUNTRY}/category1": CountWhere(Eq(COUNTRY, "FR")),
        f"{COUNTRY}/category2": CountWhere(Eq(COUNTRY, "US")),
        f"{COUNTRY}/terms": Terms(COUNTRY, size=8),
    }


def test_reference_mode_asks_for_the_same_counts_offset_earlier() -> None:
    current, reference = drift.queries(make_rule(reference={"offset": "7d"}), AT)
    assert reference.window == current.window.shifted(timedelta(days=7))
    assert reference.aggregates == current.aggregates
    assert current.aggregates[f"{COUNTRY}/category0"] == CountWhere(Eq(COUNTRY, "DE"))


def test_without_a_profile_categories_come_from_terms() -> None:
    rule = make_rule(
        baseline=None, reference={"offset": "7d"}, features=[{"name": COUNTRY, "type": "categorical"}]
    )
    (query, _) = drift.queries(rule, AT)
    assert query.aggregates == {
        "count": Count(),
        f"{COUNTRY}/missing": Missing(COUNTRY),
        f"{COUNTRY}/terms": Terms(COUNTRY, size=100),
    }


# --------------------------------------------------------------------------- verdicts


def test_traffic_like_the_baseline_is_ok() -> None:
    finding = evaluate(make_rule(), STABLE)
    assert finding.status is Status.OK
    assert finding.value == pytest.approx(0, abs=1e-12)
    assert finding.threshold == 0.1
    assert finding.reason.startswith("no drift: max psi ")


def test_shifted_numeric_feature_alerts_with_its_score_and_moved_bins() -> None:
    finding = evaluate(make_rule(), DRIFTED)
    income = finding.details["features"][INCOME]
    expected = stats.psi([0, 3000, 4000, 3000, 0], [0, 200, 400, 900, 500])
    assert finding.status is Status.ALERTING
    assert income["score"] == pytest.approx(expected)
    assert finding.value == pytest.approx(expected)
    assert income["level"] == "critical"
    assert finding.details["drifted"] == [INCOME]
    assert finding.details["severity"] == "critical"
    assert income["top_bins"][0] == {"bin": ">= 30", "reference": 0.0, "current": 0.25, "change": 0.25}
    assert income["samples"] == 2000
    assert finding.details["features"][COUNTRY]["level"] == "ok"
    moved = ">= 30 0.0% -> 25.0%"
    assert finding.reason == f"psi drift in {INCOME} {expected:.3g} (critical; p < 0.001; {moved})"


def test_new_categories_move_the_other_bin_and_are_named() -> None:
    finding = evaluate(
        make_rule(), values([0, 600, 800, 600, 0], {"DE": 700, "FR": 400, "US": 300, "XX": 500, "YY": 100})
    )
    country = finding.details["features"][COUNTRY]
    assert country["new_values"] == {"XX": 500, "YY": 100}
    assert country["top_bins"][0]["bin"] == OTHER
    assert country["top_bins"][0]["current"] == pytest.approx(0.3)
    assert country["level"] == "critical"
    assert finding.details["drifted"] == [COUNTRY]


def test_warning_level_between_warn_and_critical() -> None:
    finding = evaluate(make_rule(), values([0, 600, 800, 600, 0], {"DE": 600, "FR": 800, "US": 600}))
    assert finding.status is Status.ALERTING
    assert finding.details["features"][COUNTRY]["level"] == "warning"
    assert finding.details["severity"] == "warning"


def test_missing_values_do_not_count_as_a_category() -> None:
    finding = evaluate(
        make_rule(), values([0, 600, 800, 600, 0], {"DE": 1000, "FR": 600, "US": 400}, missing=900)
    )
    assert finding.details["features"][COUNTRY]["samples"] == 2000
    assert finding.status is Status.OK


@pytest.mark.parametrize("method", ["psi", "js", "kl", "ks", "chi2"])
def test_every_method_scores_the_same_counts(method: str) -> None:
    rule = make_rule(method=method, features=[INCOME])
    finding = evaluate(rule, DRIFTED)
    expected = stats.score(method, [0, 3000, 4000, 3000, 0], [0, 200, 400, 900, 500])
    assert finding.value == pytest.approx(expected.value)
    # psi, js and kl have no test of their own: a score at a level is tested by shift_p_value
    shift = stats.shift_p_value([0, 3000, 4000, 3000, 0], [0, 200, 400, 900, 500])
    p_value = expected.p_value if expected.p_value is not None else shift
    assert finding.details["features"][INCOME]["p_value"] == p_value
    assert finding.details["method"] == method


def test_custom_thresholds() -> None:
    finding = evaluate(make_rule(warn=5, critical=10), DRIFTED)
    assert finding.status is Status.OK
    assert (finding.details["warn"], finding.details["critical"]) == (5, 10)


def test_too_few_samples_is_not_enough_data_per_feature() -> None:
    small = values([0, 60, 80, 60, 0], {"DE": 1000, "FR": 600, "US": 400})
    finding = evaluate(make_rule(min_samples=1000), small)
    assert finding.status is Status.OK
    assert finding.details["not_enough_data"] == {INCOME: "has 200 values (min_samples 1000)"}
    empty = evaluate(make_rule(), {"count": 0})
    assert empty.status is Status.NO_DATA
    assert empty.reason == (
        f"not enough data: {INCOME} has 0 values (min_samples 1000); "
        f"{COUNTRY} has 0 values (min_samples 1000)"
    )


def test_a_store_error_is_an_error() -> None:
    (finding,) = drift.evaluate(make_rule(), [QueryResult("q", error="boom")], AT)
    assert (finding.status, finding.reason) == (Status.ERROR, "store error: boom")


def test_a_malformed_answer_is_an_error_not_a_verdict() -> None:
    finding = evaluate(make_rule(), STABLE | {f"{INCOME}/bins": [1, 2]})
    assert finding.status is Status.ERROR
    assert finding.reason == f"cannot score {INCOME}: store returned 2 bins for '{INCOME}', expected 5"


def test_groups_are_judged_separately() -> None:
    rule = Rule.model_validate(
        {"name": "d", "source": "demo", "group_by": ["model_version"], "drift": {"baseline": PROFILE}}
    )
    result = QueryResult(
        "q", (Group({"model_version": "v3"}, DRIFTED), Group({"model_version": "v2"}, STABLE))
    )
    findings = drift.evaluate(rule, [result], AT, known_groups=[{"model_version": "v1"}])
    assert [(f.group["model_version"], f.status) for f in findings] == [
        ("v3", Status.ALERTING),
        ("v2", Status.OK),
        ("v1", Status.NO_DATA),
    ]


# --------------------------------------------------------------------------- reference window


def test_reference_window_without_baseline_uses_declared_bins_and_terms() -> None:
    rule = make_rule(
        baseline=None,
        reference={"offset": "7d"},
        features=[{"name": INCOME, "edges": list(EDGES)}, {"name": COUNTRY, "type": "categorical"}],
    )
    last_week = values([0, 600, 800, 600, 0], {"DE": 1000, "FR": 600, "US": 400})
    today = values([0, 600, 800, 600, 0], {"DE": 1000, "FR": 600, "GB": 400})
    finding = evaluate(rule, today, last_week)
    country = finding.details["features"][COUNTRY]
    assert finding.details["drifted"] == [COUNTRY]
    assert {b["bin"] for b in country["top_bins"][:2]} == {"US", "GB"}
    assert country["reference_samples"] == 2000
    assert finding.details["features"][INCOME]["top_bins"][0]["bin"] in {
        "< 0",
        "[0, 10)",
        "[10, 20)",
        "[20, 30)",
        ">= 30",
    }


def test_reference_window_with_too_little_data() -> None:
    rule = make_rule(reference={"offset": "1d"}, features=[INCOME])
    finding = evaluate(rule, STABLE, {"count": 0})
    assert finding.status is Status.NO_DATA
    assert (
        finding.reason == f"not enough data: {INCOME} has 0 values in the reference window (min_samples 1000)"
    )


# --------------------------------------------------------------------------- rule validation


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"baseline": None},
            "drift needs 'baseline' (a profile file), 'reference: {offset: ...}' (an earlier window), "
            "or both",
        ),
        (
            {"baseline": None, "reference": {"offset": "1d"}},
            "drift needs 'features' when there is no baseline",
        ),
        (
            {"features": ["features.age"]},
            "feature 'features.age' is not in baseline <train.csv> "
            "(it has: features.country, features.income)",
        ),
        (
            {"baseline": None, "reference": {"offset": "1d"}, "features": ["x"]},
            "feature 'x' needs 'type: categorical' or numeric 'edges' (or a baseline that has it)",
        ),
        (
            {"method": "ks"},
            "method ks compares ordered bins; feature 'features.country' is categorical "
            "(use psi, js, kl or chi2)",
        ),
        ({"warn": 0.3}, "'critical' (0.25) is below 'warn' (0.3)"),
        ({"method": "wasserstein"}, "Input should be 'psi', 'js', 'kl', 'ks' or 'chi2'"),
        (
            {"features": [{"name": "x", "edges": [3, 1]}]},
            "feature 'x': 'edges' must be a non-empty increasing list",
        ),
        (
            {"features": [{"name": "x", "type": "categorical", "edges": [1]}]},
            "feature 'x': a categorical feature has no 'edges'",
        ),
        ({"baseline": "nowhere.json"}, "baseline nowhere.json: file not found"),
        ({"baseline": 3}, "'baseline' is the path of a profile file (made by `watcher baseline build`)"),
    ],
)
def test_bad_drift_specs_are_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make_rule(**spec)
    assert message in str(caught.value)


def test_baseline_path_is_resolved_against_the_rule_folder(tmp_path: Path) -> None:
    save_profile(PROFILE, tmp_path / "baselines" / "churn.json")
    data = {"name": "d", "source": "demo", "drift": {"baseline": "baselines/churn.json"}}
    rule = Rule.model_validate(data, context={"base_dir": tmp_path})
    assert rule.drift is not None
    assert rule.drift.baseline is not None
    assert rule.drift.baseline.profile == PROFILE
    assert rule.model_dump(mode="json", by_alias=True)["drift"]["baseline"] == "baselines/churn.json"


# --------------------------------------------------------------------------- against the store


def _train(rows: int, seed: int, shift: float = 1.0, us_share: float = 0.2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.lognormal(10.5, 0.4, rows) * shift,
            "country": rng.choice(["DE", "FR", "US"], rows, p=[0.8 - us_share, 0.2, us_share]),
        }
    )


def _ingest(store: EmbeddedStore, frame: pd.DataFrame, start: datetime) -> None:
    step = timedelta(hours=1) / len(frame)
    store.ingest_lines(
        json.dumps({"@timestamp": (start + i * step).isoformat(), "features": row})
        for i, row in enumerate(frame.to_dict("records"))
    )


def test_drift_against_a_profile_in_the_embedded_store(tmp_path: Path) -> None:
    profile = profile_from_frame(_train(5000, 1), built_at=AT, source="train", prefix="features.")
    store = EmbeddedStore(tmp_path / "logs.duckdb")
    drifted = _train(3000, 3, shift=1.8, us_share=0.5)
    _ingest(store, _train(3000, 2), AT - timedelta(hours=2))
    _ingest(store, drifted, AT - timedelta(hours=1))
    rule = make_rule(baseline=profile)
    quiet = drift.evaluate(rule, store.evaluate(drift.queries(rule, AT - timedelta(hours=1))), AT)[0]
    loud = drift.evaluate(rule, store.evaluate(drift.queries(rule, AT)), AT)[0]
    store.close()
    assert quiet.status is Status.OK
    assert loud.status is Status.ALERTING
    assert set(loud.details["drifted"]) == {INCOME, COUNTRY}
    # the store's counts give exactly the PSI of the raw values in the same bins
    income = profile.features[INCOME]
    assert isinstance(income, NumericFeature)
    raw = stats.psi(income.bin_counts(), bucket_counts(drifted["income"].to_numpy(), income.edges))
    assert loud.details["features"][INCOME]["score"] == pytest.approx(raw, abs=1e-9)


def test_rule_schema_accepts_features_by_name_or_mapping() -> None:
    import jsonschema

    from watcher.rules.schema import rule_json_schema

    validator = jsonschema.Draft202012Validator(rule_json_schema())
    good = {
        "name": "d",
        "source": "s",
        "drift": {"baseline": "b.json", "features": ["a", {"name": "b", "type": "categorical"}]},
    }
    bad = {"name": "d", "source": "s", "drift": {"baseline": "b.json", "features": [3]}}
    assert list(validator.iter_errors(good)) == []
    assert list(validator.iter_errors(bad)) != []


@pytest.mark.parametrize(
    ("income", "psi", "severity"),
    [([0, 340, 1060, 600, 0], 0.11, "warning"), ([0, 320, 260, 1120, 300], 1.65, "critical")],
)
def test_the_psi_level_sets_the_incidents_severity(income: list[int], psi: float, severity: str) -> None:
    rule = make_rule(features=[INCOME])

    finding = evaluate(rule, values(income, {"DE": 1000, "FR": 600, "US": 400}))
    incident, _ = step(None, finding, rule, AT, None)

    assert finding.value == pytest.approx(psi, abs=5e-4)
    assert incident is not None
    assert (incident.severity, incident.labels["severity"]) == (severity, severity)


def test_a_drift_rules_severity_is_its_warn_level() -> None:
    rule = make_rule(features=[INCOME]).model_copy(update={"severity": "info"})
    warned = evaluate(rule, values([0, 340, 1060, 600, 0], {"DE": 1000, "FR": 600, "US": 400}))
    critical = evaluate(rule, values([0, 320, 260, 1120, 300], {"DE": 1000, "FR": 600, "US": 400}))
    assert (warned.severity, critical.severity) == ("info", "critical")
