"""Distribution distances on binned counts: PSI, Jensen-Shannon, KL, KS and chi-square.

Every function takes two equally long sequences of bin counts -- the *reference* (a baseline
profile's shares times its row count, or a reference window) and the *current* window -- in the
same bin order. Counts may be fractional (a profile stores shares), must be finite and
non-negative, and each side needs a positive total: an empty window raises ``ValueError``, and the
drift detector reports it as "not enough data" before it gets here.

Smoothing: PSI and KL divide by shares, so an empty bin would make them infinite. Both use
``smoothed_shares``: every share is raised to at least ``SMOOTHING_FLOOR`` (1e-4) and the vector
is renormalised to sum to 1. Identical distributions stay identical (score 0); a bin that is new
in the current window scores as if the reference had held 0.01% there. Jensen-Shannon, KS and
chi-square are finite on empty bins and use the raw shares.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SMOOTHING_FLOOR = 1e-4

Counts = Sequence[float] | npt.NDArray[np.float64]
_Vector = npt.NDArray[np.float64]


def _checked(name: str, counts: Counts) -> list[float]:
    """``counts`` as floats, refused with a message unless they are one non-empty row of finite,
    non-negative numbers with a positive total. Plain floats, not an array: a drift rule scores a
    handful of bins per feature at every evaluation, where NumPy's per-call cost was most of PSI's."""
    if isinstance(counts, np.ndarray) and counts.ndim != 1:
        raise ValueError(f"{name} needs at least one bin")
    values = [float(v) for v in counts]
    if not values:
        raise ValueError(f"{name} needs at least one bin")
    for value in values:
        if not 0 <= value < math.inf:  # NaN fails both comparisons
            raise ValueError(f"{name} counts must be finite and non-negative, got {value}")
    if not any(values):
        raise ValueError(f"{name} is empty: no counts in any bin")
    return values


def _counts(name: str, counts: Counts) -> _Vector:
    return np.asarray(_checked(name, counts), dtype=np.float64)


def _pair(reference: Counts, current: Counts) -> tuple[_Vector, _Vector]:
    ref, cur = _checked_pair(reference, current)
    return np.asarray(ref, dtype=np.float64), np.asarray(cur, dtype=np.float64)


def _checked_pair(reference: Counts, current: Counts) -> tuple[list[float], list[float]]:
    ref, cur = _checked("reference", reference), _checked("current", current)
    if len(ref) != len(cur):
        raise ValueError(f"reference has {len(ref)} bins and current has {len(cur)}; they must match")
    return ref, cur


def _smoothed(counts: list[float], floor: float = SMOOTHING_FLOOR) -> list[float]:
    """``smoothed_shares`` of checked counts, in plain floats."""
    total = sum(counts)
    raised = [max(count / total, floor) for count in counts]
    scale = sum(raised)
    return [share / scale for share in raised]


def shares(counts: Counts) -> _Vector:
    """Counts as shares summing to 1."""
    values = _counts("counts", counts)
    out: _Vector = values / values.sum()
    return out


def smoothed_shares(counts: Counts, floor: float = SMOOTHING_FLOOR) -> _Vector:
    """Shares with every bin raised to at least ``floor`` and renormalised (see the module doc)."""
    return np.asarray(_smoothed(_checked("counts", counts), floor), dtype=np.float64)


def psi(reference: Counts, current: Counts) -> float:
    """Population Stability Index: sum((c - r) * ln(c / r)) over smoothed shares. Symmetric, >= 0.

    Rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift.
    """
    ref, cur = _checked_pair(reference, current)
    r, c = _smoothed(ref), _smoothed(cur)
    return max(sum([(c_i - r_i) * math.log(c_i / r_i) for r_i, c_i in zip(r, c, strict=True)]), 0.0)


def kl_divergence(reference: Counts, current: Counts) -> float:
    """KL(current || reference) in nats over smoothed shares: the information lost when the
    reference describes today's traffic. Not symmetric."""
    ref, cur = _checked_pair(reference, current)
    r, c = _smoothed(ref), _smoothed(cur)
    return max(sum([c_i * math.log(c_i / r_i) for r_i, c_i in zip(r, c, strict=True)]), 0.0)


def js_distance(reference: Counts, current: Counts) -> float:
    """Jensen-Shannon distance with base-2 logs: sqrt of the JS divergence, in [0, 1]. Symmetric.

    Equal to ``scipy.spatial.distance.jensenshannon(r, c, base=2)``; empty bins need no smoothing.
    """
    ref, cur = _pair(reference, current)
    r, c = shares(ref), shares(cur)
    m = (r + c) / 2
    divergence = (_kl_bits(r, m) + _kl_bits(c, m)) / 2
    return math.sqrt(min(max(divergence, 0.0), 1.0))


def _kl_bits(p: _Vector, q: _Vector) -> float:
    mask = p > 0  # 0 * log(0 / q) is 0; q > 0 wherever p > 0 because q is a mixture containing p
    return float(np.sum(p[mask] * np.log2(p[mask] / q[mask])))


@dataclass(frozen=True)
class TwoSampleResult:
    """A two-sample test on binned counts: the statistic, its p-value and the effect size used as
    the drift score (KS: the statistic D itself; chi-square: Cramer's V)."""

    statistic: float
    p_value: float
    score: float


def ks_test(reference: Counts, current: Counts) -> TwoSampleResult:
    """Two-sample Kolmogorov-Smirnov on cumulative binned counts, in bin order (numeric bins only).

    D is the largest gap between the two empirical CDFs at a bin edge; with one bin per distinct
    value it equals ``scipy.stats.ks_2samp``. The p-value is the asymptotic Kolmogorov one with the
    effective size n*m/(n+m); binning makes it conservative.
    """
    from scipy.stats import kstwobign

    ref, cur = _pair(reference, current)
    gaps = np.abs(np.cumsum(ref) / ref.sum() - np.cumsum(cur) / cur.sum())
    statistic = float(min(gaps.max(), 1.0))
    n, m = ref.sum(), cur.sum()
    effective = n * m / (n + m)
    p_value = float(kstwobign.sf(statistic * math.sqrt(effective))) if statistic > 0 else 1.0
    return TwoSampleResult(statistic=statistic, p_value=p_value, score=statistic)


def chi2_test(reference: Counts, current: Counts) -> TwoSampleResult:
    """Chi-square test of homogeneity on the 2 x k table (reference, current) without Yates'
    correction; bins empty on both sides are dropped. Equal to ``scipy.stats.chi2_contingency``.

    The score is Cramer's V = sqrt(chi2 / N), an effect size in [0, 1] that, unlike the statistic
    and the p-value, does not grow with traffic: with a million rows every p-value is ~0.
    """
    ref, cur = _checked_pair(reference, current)
    columns = [(r, c) for r, c in zip(ref, cur, strict=True) if r + c > 0]
    statistic = _homogeneity(columns, sum(ref), sum(cur))
    p_value = chi2_sf(statistic, len(columns) - 1) if len(columns) > 1 else 1.0
    total = sum(ref) + sum(cur)
    return TwoSampleResult(statistic=statistic, p_value=p_value, score=math.sqrt(min(statistic / total, 1.0)))


def _homogeneity(columns: Sequence[tuple[float, float]], ref_total: float, cur_total: float) -> float:
    """The chi-square statistic of the 2 x k table whose columns are (reference, current) counts,
    each with a count on some side: sum of (observed - expected)^2 / expected over both rows."""
    total = ref_total + cur_total
    statistic = 0.0
    for r, c in columns:
        expected_r, expected_c = ref_total * (r + c) / total, cur_total * (r + c) / total
        statistic += (r - expected_r) ** 2 / expected_r + (c - expected_c) ** 2 / expected_c
    return statistic


# --------------------------------------------------------------------------- is a shift more than noise


MIN_EXPECTED = 5.0
"""Expected count a bin needs in the chi-square test below; smaller bins are pooled (Cochran's rule)."""


def shift_p_value(reference: Counts, current: Counts) -> float:
    """The p-value of a chi-square test that the current window's counts come from the same
    distribution as the reference's: the 2 x k homogeneity test, which against a profile of many
    rows is the goodness-of-fit test of the window against the profile's shares. A window of n rows
    in k bins moves PSI, JS and KL by about (k - 1) / n through sampling alone; this tells such noise
    from a shift. Bins whose expected count is below ``MIN_EXPECTED`` on either side are pooled into
    one (then that pool too reaches it, taking the next smallest bins), so rare bins cannot inflate
    the statistic; when fewer than two columns are left, nothing can be told and the p-value is 1.
    Plain floats and a closed-form tail, no SciPy: it runs per drifted feature per evaluation."""
    ref, cur = _checked_pair(reference, current)
    ref_total, cur_total = sum(ref), sum(cur)
    smaller = min(ref_total, cur_total) / (ref_total + cur_total)
    columns = sorted(((r, c) for r, c in zip(ref, cur, strict=True) if r + c > 0), key=sum)
    pool_r = pool_c = 0.0
    taken = 0
    for r, c in columns:
        small = (r + c) * smaller < MIN_EXPECTED
        if not small and (taken == 0 or (pool_r + pool_c) * smaller >= MIN_EXPECTED):
            break
        pool_r, pool_c, taken = pool_r + r, pool_c + c, taken + 1
    kept = columns[taken:] + ([(pool_r, pool_c)] if taken else [])
    if len(kept) < 2:
        return 1.0
    return chi2_sf(_homogeneity(kept, ref_total, cur_total), len(kept) - 1)


def chi2_sf(statistic: float, dof: int) -> float:
    """``scipy.stats.chi2.sf(statistic, dof)`` for a whole ``dof``: the regularized upper incomplete
    gamma function Q(dof / 2, statistic / 2) in closed form, its terms summed in log space."""
    if statistic <= 0:
        return 1.0
    half = statistic / 2
    log_half = math.log(half)
    if dof % 2 == 0:  # Q(m, y) = e^-y * sum_{i < m} y^i / i!
        tail = sum(math.exp(i * log_half - half - math.lgamma(i + 1)) for i in range(dof // 2))
    else:  # Q(m + 1/2, y) = erfc(sqrt y) + e^-y * sum_{i < m} y^(i + 1/2) / Gamma(i + 3/2)
        tail = math.erfc(math.sqrt(half)) + sum(
            math.exp((i + 0.5) * log_half - half - math.lgamma(i + 1.5)) for i in range(dof // 2)
        )
    return min(max(tail, 0.0), 1.0)


@dataclass(frozen=True)
class Score:
    """One drift score: higher means more drift. ``p_value`` only for the tests (ks, chi2)."""

    value: float
    p_value: float | None = None


METHODS = ("psi", "js", "kl", "ks", "chi2")


def score(method: str, reference: Counts, current: Counts) -> Score:
    """The drift score of ``method`` (one of ``METHODS``) for one feature."""
    if method == "psi":
        return Score(psi(reference, current))
    if method == "js":
        return Score(js_distance(reference, current))
    if method == "kl":
        return Score(kl_divergence(reference, current))
    if method == "ks":
        result = ks_test(reference, current)
        return Score(result.score, result.p_value)
    if method == "chi2":
        result = chi2_test(reference, current)
        return Score(result.score, result.p_value)
    raise ValueError(f"unknown drift method {method!r} (use one of {', '.join(METHODS)})")


# --------------------------------------------------------------------------- one side worse (canary)


def two_proportion(hits_a: float, total_a: float, hits_b: float, total_b: float) -> TwoSampleResult:
    """One-sided two-proportion z-test that group B's share (``hits_b / total_b``) is above group
    A's, with the pooled standard error. The score is B's share minus A's. Two equal shares of 0
    or 1 (no variance) give a p-value of 1."""
    from scipy.stats import norm

    share_a, share_b = hits_a / total_a, hits_b / total_b
    pooled = (hits_a + hits_b) / (total_a + total_b)
    error = math.sqrt(pooled * (1 - pooled) * (1 / total_a + 1 / total_b))
    if error == 0:
        return TwoSampleResult(statistic=0.0, p_value=1.0, score=share_b - share_a)
    z = (share_b - share_a) / error
    return TwoSampleResult(statistic=z, p_value=float(norm.sf(z)), score=share_b - share_a)


def mann_whitney_binned(counts_a: Counts, counts_b: Counts) -> TwoSampleResult:
    """One-sided Mann-Whitney U test that group B's values tend to be larger than A's, on the two
    groups' counts in the same ordered bins (values in one bin are ties), with the normal
    approximation, tie correction and continuity correction: ``scipy.stats.mannwhitneyu(b, a,
    alternative="greater", method="asymptotic")`` on values one per bin. No raw value is needed,
    so a store's histogram is enough. The score is U / (n_a n_b): the chance that a value of B is
    above one of A (0.5: neither is larger)."""
    from scipy.stats import norm

    a, b = _pair(counts_a, counts_b)
    below_a = np.cumsum(a) - a  # A's values in the bins below each bin
    u = float(np.sum(b * (below_a + a / 2)))
    n_a, n_b = float(a.sum()), float(b.sum())
    n, ties = n_a + n_b, a + b
    variance = n_a * n_b / 12 * ((n + 1) - float(np.sum(ties**3 - ties)) / (n * (n - 1)))
    mean, score = n_a * n_b / 2, u / (n_a * n_b)
    if variance <= 0:
        return TwoSampleResult(statistic=u, p_value=1.0, score=score)
    z = (u - mean - 0.5) / math.sqrt(variance)
    return TwoSampleResult(statistic=u, p_value=float(norm.sf(z)), score=score)
