"""Drift statistics on binned counts, checked against scipy on known distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, entropy, ks_2samp

from watcher.detect import stats

REFERENCE = [100, 200, 300, 400]
SHIFTED = [400, 300, 200, 100]


def _smoothed(counts: list[float]) -> np.ndarray:
    p = np.asarray(counts, dtype=float) / sum(counts)
    p = np.maximum(p, stats.SMOOTHING_FLOOR)
    return p / p.sum()


# --------------------------------------------------------------------------- against scipy


def test_psi_is_the_symmetrised_kl_of_scipy() -> None:
    r, c = _smoothed(REFERENCE), _smoothed(SHIFTED)
    expected = entropy(c, r) + entropy(r, c)
    assert stats.psi(REFERENCE, SHIFTED) == pytest.approx(expected, rel=1e-12)


def test_psi_textbook_value_without_empty_bins() -> None:
    # shares 0.1..0.4 vs 0.4..0.1: 2 * (0.3 ln 4 + 0.1 ln 1.5)
    assert stats.psi(REFERENCE, SHIFTED) == pytest.approx(2 * (0.3 * math.log(4) + 0.1 * math.log(1.5)))


def test_kl_matches_scipy_entropy_of_current_against_reference() -> None:
    expected = entropy(_smoothed(SHIFTED), _smoothed(REFERENCE))
    assert stats.kl_divergence(REFERENCE, SHIFTED) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("reference", "current"),
    [(REFERENCE, SHIFTED), ([5, 0, 5], [0, 10, 0]), ([1, 0, 0, 9], [1, 1, 1, 1]), ([7], [3])],
)
def test_js_matches_scipy_jensenshannon_base_2(reference: list[int], current: list[int]) -> None:
    expected = jensenshannon(reference, current, base=2)
    assert stats.js_distance(reference, current) == pytest.approx(expected, abs=1e-12)


def test_js_of_disjoint_distributions_is_one() -> None:
    assert stats.js_distance([5, 0], [0, 5]) == pytest.approx(1.0)


def test_ks_equals_scipy_ks_2samp_with_one_bin_per_value() -> None:
    rng = np.random.default_rng(7)
    a = rng.poisson(4, 3000)
    b = rng.poisson(5, 2000)
    values = np.arange(0, max(a.max(), b.max()) + 1)
    count_a = [int((a == v).sum()) for v in values]
    count_b = [int((b == v).sum()) for v in values]
    result = stats.ks_test(count_a, count_b)
    expected = ks_2samp(a, b, method="asymp")
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert result.score == result.statistic
    assert result.p_value == pytest.approx(expected.pvalue, rel=0.05)


def test_chi2_matches_scipy_chi2_contingency_without_yates() -> None:
    result = stats.chi2_test(REFERENCE, SHIFTED)
    statistic, p_value, _, _ = chi2_contingency(np.array([REFERENCE, SHIFTED]), correction=False)
    assert result.statistic == pytest.approx(statistic)
    assert result.p_value == pytest.approx(p_value)
    assert result.score == pytest.approx(math.sqrt(statistic / (sum(REFERENCE) + sum(SHIFTED))))


def test_chi2_drops_bins_empty_on_both_sides() -> None:
    result = stats.chi2_test([10, 0, 30, 5], [20, 0, 10, 5])
    statistic, p_value, dof, _ = chi2_contingency(np.array([[10, 30, 5], [20, 10, 5]]), correction=False)
    assert (result.statistic, result.p_value) == (pytest.approx(statistic), pytest.approx(p_value))
    assert dof == 2


# --------------------------------------------------------------------------- edge cases


def test_empty_bin_in_the_reference_is_smoothed_to_the_floor() -> None:
    reference, current = [50, 50, 0], [40, 40, 20]
    r, c = _smoothed(reference), _smoothed(current)
    assert r[2] == pytest.approx(stats.SMOOTHING_FLOOR, rel=1e-3)
    assert stats.psi(reference, current) == pytest.approx(float(np.sum((c - r) * np.log(c / r))))
    assert math.isfinite(stats.kl_divergence(reference, current))


def test_new_category_in_other_bin_is_a_major_shift() -> None:
    # the profile had no '__other__' traffic; now 30% of the values are new
    score = stats.psi([600, 400, 0], [420, 280, 300])
    assert score > 0.25


def test_one_bin_means_nothing_can_move() -> None:
    assert stats.psi([10], [99]) == 0
    assert stats.kl_divergence([10], [99]) == 0
    assert stats.js_distance([10], [99]) == 0
    assert stats.ks_test([10], [99]).statistic == 0
    assert stats.chi2_test([10], [99]) == stats.TwoSampleResult(0.0, 1.0, 0.0)


def test_constant_feature_in_the_same_bin_scores_zero() -> None:
    reference, current = [0, 1000, 0], [0, 37, 0]
    for method in stats.METHODS:
        assert stats.score(method, reference, current).value == pytest.approx(0, abs=1e-12)


def test_constant_feature_that_moved_bins_scores_high() -> None:
    assert stats.psi([0, 1000, 0], [0, 0, 1000]) > 10
    assert stats.ks_test([0, 1000, 0], [0, 0, 1000]).statistic == 1
    assert stats.js_distance([0, 1000, 0], [0, 0, 1000]) == pytest.approx(1)


@pytest.mark.parametrize(
    ("current", "message"),
    [
        ([1, float("nan"), 2], "current counts must be finite and non-negative, got nan"),
        ([1, float("inf"), 2], "current counts must be finite and non-negative, got inf"),
        ([1, -1, 2], "current counts must be finite and non-negative, got -1.0"),
        ([0, 0, 0], "current is empty: no counts in any bin"),
        ([1, 2], "reference has 3 bins and current has 2; they must match"),
        ([], "current needs at least one bin"),
    ],
)
def test_bad_counts_are_refused_with_a_message(current: list[float], message: str) -> None:
    for method in stats.METHODS:
        with pytest.raises(ValueError, match=f"^{message}$") as caught:
            stats.score(method, [1, 2, 3], current)
        assert str(caught.value) == message


def test_empty_reference_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^reference is empty: no counts in any bin$"):
        stats.psi([0, 0], [1, 1])


def test_unknown_method_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"^unknown drift method 'hellinger' \(use one of psi, js, kl, ks, chi2\)$"
    ):
        stats.score("hellinger", [1], [1])


def test_tests_report_p_values_and_distances_do_not() -> None:
    assert stats.score("ks", REFERENCE, SHIFTED).p_value is not None
    assert stats.score("chi2", REFERENCE, SHIFTED).p_value is not None
    assert stats.score("psi", REFERENCE, SHIFTED).p_value is None


# --------------------------------------------------------------------------- properties

counts = st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=12).filter(
    lambda c: sum(c) > 0
)


@settings(max_examples=150, deadline=None)
@given(counts, st.integers(min_value=1, max_value=50))
def test_identical_or_proportional_distributions_score_zero(bins: list[int], scale: int) -> None:
    scaled = [c * scale for c in bins]
    for method in stats.METHODS:
        assert stats.score(method, bins, scaled).value == pytest.approx(0, abs=1e-9)


@st.composite
def pairs(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    size = draw(st.integers(min_value=1, max_value=12))
    side = st.lists(st.integers(min_value=0, max_value=10_000), min_size=size, max_size=size)
    return draw(side.filter(lambda c: sum(c) > 0)), draw(side.filter(lambda c: sum(c) > 0))


@settings(max_examples=150, deadline=None)
@given(pairs())
def test_symmetric_metrics_are_symmetric(pair: tuple[list[int], list[int]]) -> None:
    a, b = pair
    for method in ("psi", "js", "ks", "chi2"):
        assert stats.score(method, a, b).value == pytest.approx(stats.score(method, b, a).value, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(pairs())
def test_scores_are_non_negative_and_bounded_where_the_metric_is(pair: tuple[list[int], list[int]]) -> None:
    a, b = pair
    assert stats.psi(a, b) >= 0
    assert stats.kl_divergence(a, b) >= 0
    assert 0 <= stats.js_distance(a, b) <= 1
    assert 0 <= stats.ks_test(a, b).statistic <= 1
    assert 0 <= stats.chi2_test(a, b).score <= 1
    assert stats.js_distance(a, b) == pytest.approx(jensenshannon(a, b, base=2), abs=1e-9)


def _tables(size: int) -> st.SearchStrategy[tuple[list[int], list[int]]]:
    side = st.lists(st.integers(min_value=0, max_value=10_000), min_size=size, max_size=size)
    return st.tuples(side.filter(lambda c: sum(c) > 0), side.filter(lambda c: sum(c) > 0))


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=2, max_value=80).flatmap(_tables))
def test_chi2_matches_scipy_on_random_tables(pair: tuple[list[int], list[int]]) -> None:
    """The statistic ``chi2_test`` shares with the noise test (``shift_p_value``), and its closed-form
    tail, against SciPy on tables of up to 80 bins."""
    a, b = pair
    result = stats.chi2_test(a, b)
    kept = np.array([[x, y] for x, y in zip(a, b, strict=True) if x + y > 0]).T
    if kept.shape[1] < 2:
        assert result.p_value == 1.0
        return
    statistic, p_value, _, _ = chi2_contingency(kept, correction=False)
    assert result.statistic == pytest.approx(statistic, rel=1e-9, abs=1e-9)
    assert result.p_value == pytest.approx(p_value, rel=1e-9, abs=1e-12)
