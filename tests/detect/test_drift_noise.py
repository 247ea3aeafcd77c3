"""Drift that is sampling noise does not fire: a low-traffic service's small windows, drawn from
the profile's own distribution, stay quiet at (at most) the rule's ``significance`` per feature,
while a real shift in windows of the same size fires and large windows are judged as before."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from watcher.baseline import OTHER, CategoricalFeature, NumericFeature, Profile
from watcher.detect import drift, stats
from watcher.detect.base import Status
from watcher.query import Group, QueryResult
from watcher.rules.models import Rule

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
AGE, COUNTRY = "features.age", "features.country"
EDGES = tuple(float(edge) for edge in range(20, 70, 5))  # 10 edges: 11 bins, as a profile's deciles
AGE_SHARES = (0.0, *[0.1] * 10)
COUNTRIES = {"US": 0.35, "DE": 0.2, "FR": 0.15, "GB": 0.12, "ES": 0.1, "IT": 0.08, OTHER: 0.0}
PROFILE = Profile(
    built_at=datetime(2026, 1, 1, tzinfo=UTC),
    source="bench",
    rows=200_000,
    features={
        AGE: NumericFeature(count=200_000, missing_rate=0.0, edges=EDGES, shares=AGE_SHARES),
        COUNTRY: CategoricalFeature(
            count=200_000, missing_rate=0.0, shares=COUNTRIES, values=tuple(COUNTRIES)[:-1]
        ),
    },
)
WINDOWS = 1000


def rule(**spec: Any) -> Rule:
    """The bench's low-traffic drift rule: 5-minute windows, ``min_samples: 10``."""
    drift_spec = {"baseline": PROFILE, "features": [AGE, COUNTRY], "min_samples": 10} | spec
    return Rule.model_validate(
        {"name": "drift", "source": "demo", "window": "5m", "delay": "0s", "drift": drift_spec}
    )


def window(rng: np.random.Generator, rows: int, age: tuple[float, ...], countries: list[float]) -> Any:
    """A group's values as the store returns them, ``rows`` drawn from the given shares."""
    ages = rng.multinomial(rows, np.asarray(age) / sum(age))
    drawn = rng.multinomial(rows, np.asarray(countries) / sum(countries))
    values: dict[str, Any] = {"count": rows, f"{AGE}/bins": [int(n) for n in ages], f"{COUNTRY}/missing": 0}
    names = list(COUNTRIES)[:-1]
    values[f"{COUNTRY}/terms"] = {name: int(n) for name, n in zip(names, drawn, strict=False) if n}
    values |= {f"{COUNTRY}/category{i}": int(n) for i, n in enumerate(drawn[: len(names)])}
    return values


def judge(drift_rule: Rule, values: dict[str, Any]) -> Any:
    (finding,) = drift.evaluate(drift_rule, [QueryResult("current", (Group({}, values),))], AT)
    return finding


def fired(drift_rule: Rule, seed: int, shift: bool) -> tuple[float, dict[str, float]]:
    """The share of ``WINDOWS`` seeded windows of 100 to 200 rows that alert, and per feature the
    share at a level."""
    rng = np.random.default_rng(seed)
    age = SHIFTED if shift else AGE_SHARES
    countries = list(COUNTRIES.values())
    alerts, levels = 0, dict.fromkeys([AGE, COUNTRY], 0)
    for _ in range(WINDOWS):
        finding = judge(drift_rule, window(rng, int(rng.integers(100, 200, endpoint=True)), age, countries))
        alerts += finding.status is Status.ALERTING
        for name, info in finding.details["features"].items():
            levels[name] += info["level"] != "ok"
    return alerts / WINDOWS, {name: count / WINDOWS for name, count in levels.items()}


SHIFTED = (0.0, 0.02, 0.03, 0.05, 0.1, 0.1, 0.1, 0.1, 0.1, 0.15, 0.25)  # PSI ~0.5 against AGE_SHARES
NOISE = 3 * (0.01 * 0.99 / WINDOWS) ** 0.5  # three standard deviations of a 1 % share in WINDOWS
NOISE_TWO = 3 * (0.02 * 0.98 / WINDOWS) ** 0.5


@pytest.mark.parametrize(
    ("method", "features", "fired_before"),
    [
        ("psi", [AGE, COUNTRY], 0.15),
        ("js", [AGE, COUNTRY], 0.5),
        ("kl", [AGE, COUNTRY], 0.0),
        ("ks", [AGE], 0.03),
    ],
)
def test_normal_small_windows_fire_at_most_at_the_significance_per_feature(
    method: str, features: list[str], fired_before: float
) -> None:
    # Without the test a large share of these normal windows crosses warn through noise alone
    # (KL's noise is about half PSI's, (k - 1) / 2n: it crosses 0.1 less often).
    before, _ = fired(rule(method=method, features=features, significance=None), seed=13, shift=False)
    assert before >= fired_before
    # With it: a feature is at a level in at most significance (0.01) of the windows.
    after, levels = fired(rule(method=method, features=features), seed=13, shift=False)
    assert after <= min(before, len(features) * 0.01 + NOISE_TWO)
    assert all(share <= 0.01 + NOISE for share in levels.values()), levels


@pytest.mark.parametrize("method", ["psi", "js", "kl", "ks"])
def test_a_real_shift_in_windows_of_the_same_size_still_fires(method: str) -> None:
    after, _ = fired(rule(method=method, features=[AGE]), seed=14, shift=True)
    assert after >= 0.95


def test_a_stricter_significance_fires_less_often() -> None:
    loose, _ = fired(rule(significance=0.2), seed=15, shift=False)
    strict, _ = fired(rule(significance=0.001), seed=15, shift=False)
    assert strict < loose


def test_a_window_within_noise_says_so_and_keeps_its_score() -> None:
    rng = np.random.default_rng(16)
    drift_rule = rule()
    for _ in range(200):  # the first normal window whose PSI reaches warn
        values = window(rng, 120, AGE_SHARES, list(COUNTRIES.values()))
        finding = judge(drift_rule, values)
        age = finding.details["features"][AGE]
        if "not_significant" in age:
            break
    else:
        pytest.fail("no normal window of 120 rows reached warn")
    assert finding.status is Status.OK
    assert age["level"] == "ok"
    assert age["not_significant"] in ("warning", "critical")
    assert age["score"] >= 0.1
    assert age["score"] == stats.psi(*_counts(finding, values))
    assert age["p_value"] >= 0.01
    assert finding.details["significance"] == 0.01
    if finding.details["features"][COUNTRY]["score"] < age["score"]:
        assert finding.reason.endswith(f"({AGE}; within noise: p {age['p_value']:.2g})")


def _counts(finding: Any, values: dict[str, Any]) -> tuple[list[float], list[float]]:
    return [share * 200_000 for share in AGE_SHARES], [float(n) for n in values[f"{AGE}/bins"]]


def test_an_alert_names_its_p_value() -> None:
    rng = np.random.default_rng(17)
    finding = judge(rule(), window(rng, 150, SHIFTED, list(COUNTRIES.values())))
    assert finding.status is Status.ALERTING
    age = finding.details["features"][AGE]
    assert age["p_value"] < 0.01
    assert f"{AGE} {age['score']:.3g} ({age['level']}; p " in finding.reason


@pytest.mark.parametrize("shift", [False, True])
def test_large_windows_are_judged_as_before(shift: bool) -> None:
    """With 20,000 rows a level is never noise: the same findings with or without the test."""
    rng = np.random.default_rng(18)
    slight = (0.0, 0.05, 0.06, 0.07, 0.1, 0.1, 0.1, 0.1, 0.1, 0.14, 0.18)  # PSI ~0.13
    for _ in range(20):
        values = window(rng, 20_000, slight if shift else AGE_SHARES, list(COUNTRIES.values()))
        tested, untested = judge(rule(), values), judge(rule(significance=None), values)
        assert tested.status is untested.status is (Status.ALERTING if shift else Status.OK)
        assert tested.value == untested.value
        for name in (AGE, COUNTRY):
            assert tested.details["features"][name]["level"] == untested.details["features"][name]["level"]


def test_shift_p_value_is_the_chi_square_test_of_the_pooled_bins() -> None:
    from scipy.stats import chi2, chi2_contingency

    reference, current = [3000.0, 2000.0, 1000.0, 500.0], [30.0, 20.0, 15.0, 10.0]
    expected = chi2_contingency(np.array([reference, current]), correction=False).pvalue
    assert stats.shift_p_value(reference, current) == pytest.approx(expected, rel=1e-12)
    # A bin expected below 5 times is pooled with the next smallest: [1, 0] joins [500, 10].
    pooled = chi2_contingency(np.array([[3000, 2000, 501], [30, 20, 10]]), correction=False).pvalue
    assert stats.shift_p_value([3000, 2000, 500, 1], [30, 20, 10, 0]) == pytest.approx(pooled, rel=1e-12)
    # Too few rows for two bins expected 5 times: nothing can be told.
    assert stats.shift_p_value([1000, 1000], [3, 4]) == 1.0
    for dof in (1, 2, 5, 10, 99):
        for statistic in (0.1, 3.0, 20.0, 150.0):
            assert stats.chi2_sf(statistic, dof) == pytest.approx(
                chi2.sf(statistic, dof), rel=1e-9, abs=1e-300
            )
