"""``drift``: feature distributions in the window against a baseline profile or a reference window.

Counts come from the store as aggregations, so no raw value leaves it: a ``Histogram`` on the
profile's bin edges for a numeric feature; for a categorical one, a filtered count per profile
category plus ``Missing``, so the bins -- the profile's top values and ``__other__`` (everything
else, including values never seen before; the validity detector counts those exactly) -- are
exact at any cardinality, and a ``Terms`` names the new values. Without a profile (a reference
window and ``type: categorical``) the bins are the values either window's ``Terms`` returned:
exact up to 100 distinct values per window, the rest folded into ``__other__``.

A seasonal profile (``watcher baseline build --by hour``) supplies the reference of the slots the
window falls in (``watcher.baseline_slots.expected_counts``): the same bins, each slot's shares
mixed by the time the window spends in it and its traffic; ``details["slots"]`` names them.

One finding per group: alerting when any feature scores ``warn`` or more. ``details`` holds per
feature the score, its level (ok / warning / critical), the sample sizes and the bins that moved
most. The finding's severity is ``critical`` when a feature reached ``critical``, else the rule's
``severity`` (``warning`` unless the rule says otherwise); ``details["severity"]`` says the same.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from watcher.baseline import OTHER, CategoricalFeature, NumericFeature
from watcher.baseline_slots import expected_counts, slot_spans
from watcher.detect import stats
from watcher.detect.base import Finding, Status, rule_window
from watcher.detect.derived import derived
from watcher.detect.groups import failed, group_key, groups_with_known, values_by_group
from watcher.detect.references import (
    NOTHING_EXCLUDED,
    Exclusions,
    combine_counts,
    excluded_reason,
    reference_windows,
)
from watcher.query import (
    Aggregate,
    AggValue,
    Count,
    CountWhere,
    Histogram,
    Missing,
    Query,
    QueryResult,
    Terms,
    Window,
)
from watcher.query_filters import Eq
from watcher.rules.ml_specs import DriftFeature, DriftSpec
from watcher.rules.models import Rule

COUNT = "count"
NEW_VALUES_SHOWN = 5
WINDOW_TERMS = 100  # values per window when, without a profile, two windows' terms are the bins
Values = Mapping[str, AggValue]


def _spec(rule: Rule) -> DriftSpec:
    assert rule.drift is not None, "drift detector on a rule without 'drift'"
    return rule.drift


def queries(rule: Rule, at: datetime) -> list[Query]:
    """The current window, then (with ``reference``) the windows ``offset`` apart before it."""
    spec = _spec(rule)
    window = rule_window(rule, at)
    windows = [("current", window)]
    for position, earlier in enumerate(reference_windows(rule, at), 1):
        windows.append(("reference" if position == 1 else f"reference{position}", earlier))
    aggregates = feature_aggregates(spec)
    return [
        Query(
            id=f"{rule.name}#{tag}", window=w, aggregates=aggregates, where=rule.where, group_by=rule.group_by
        )
        for tag, w in windows
    ]


@derived
def feature_aggregates(spec: DriftSpec) -> Mapping[str, Aggregate]:
    """What the store counts per window: the document count and each feature's bins. A profile's
    categories are counted one by one (exact, whatever the cardinality); ``Terms`` only names new
    values, or -- without a profile -- supplies the categories of both windows."""
    aggregates: dict[str, Aggregate] = {COUNT: Count()}
    for feature in _features(spec):
        name, stored = feature.name, _stored(spec, feature.name)
        if feature.edges is not None:
            aggregates[f"{name}/bins"] = Histogram(name, feature.edges)
            continue
        aggregates[f"{name}/missing"] = Missing(name)
        if isinstance(stored, CategoricalFeature):
            known = stored.values or stored.categories
            # Terms first: the embedded store then counts each category from its per-value counts.
            aggregates[f"{name}/terms"] = Terms(name, size=len(known) + NEW_VALUES_SHOWN)
            for index, category in enumerate(stored.categories):
                aggregates[f"{name}/category{index}"] = CountWhere(Eq(name, category))
        else:
            aggregates[f"{name}/terms"] = Terms(name, size=WINDOW_TERMS)
    return aggregates


def _stored(spec: DriftSpec, name: str) -> NumericFeature | CategoricalFeature | None:
    return spec.baseline.profile.features.get(name) if spec.baseline is not None else None


@derived
def _features(spec: DriftSpec) -> tuple[DriftFeature, ...]:
    return tuple(spec.resolved_features())


@dataclass(frozen=True)
class _Bins:
    """What one feature's bins owe to the rule alone (``derived`` once per rule, not at every
    evaluation): the feature, its profile entry, its bins' labels, the profile's counts in them
    (a whole-range profile's reference) and the values the profile knows."""

    feature: DriftFeature
    stored: NumericFeature | CategoricalFeature | None
    labels: tuple[str, ...] = ()
    profile: tuple[float, ...] = ()
    known: frozenset[str] = frozenset()


@derived
def _bins(spec: DriftSpec) -> tuple[_Bins, ...]:
    bins = []
    for feature in _features(spec):
        stored = _stored(spec, feature.name)
        if feature.edges is not None:
            numeric = stored if isinstance(stored, NumericFeature) else None
            labels = bin_labels(feature.edges, maximum=numeric.max if numeric is not None else None)
            profile = tuple(numeric.bin_counts()) if numeric is not None else ()
            bins.append(_Bins(feature, stored, tuple(labels), profile))
        elif isinstance(stored, CategoricalFeature):
            labels = [*stored.categories, OTHER]
            profile = tuple(stored.shares.get(label, 0.0) * stored.count for label in labels)
            known = frozenset(stored.values or stored.categories)
            bins.append(_Bins(feature, stored, tuple(labels), profile, known))
        else:
            bins.append(_Bins(feature, stored))
    return tuple(bins)


def evaluate(
    rule: Rule,
    results: Sequence[QueryResult],
    at: datetime,
    known_groups: Sequence[Mapping[str, str]] = (),
    excluded: Exclusions = NOTHING_EXCLUDED,
) -> list[Finding]:
    """One finding per group; ``excluded`` names the reference windows left out."""
    spec = _spec(rule)
    if (errors := failed(rule, results, known_groups)) is not None:
        return errors
    current, *earlier = results
    lookups = [values_by_group(result) for result in earlier]
    findings = []
    window = rule_window(rule, at)
    for group, values in groups_with_known(current, known_groups):
        if spec.reference is None:
            findings.append(_judge(rule, spec, group, values, None, window))
            continue
        left_out = excluded.of(rule, group)
        used = [
            lookup.get(group_key(group), {})
            for position, lookup in enumerate(lookups, 1)
            if position not in left_out
        ]
        if not used:
            reason = "not enough reference data: " + excluded_reason(list(left_out.values()))
            details = {"excluded": [left_out[position] for position in sorted(left_out)]}
            findings.append(Finding(rule.name, group, Status.NO_DATA, reason=reason, details=details))
            continue
        combined = combine_counts(used, spec.reference.combine)
        finding = _judge(rule, spec, group, values, combined, window)
        findings.append(_with_references(finding, len(used), left_out))
    return findings


def _with_references(finding: Finding, used: int, left_out: Mapping[int, str]) -> Finding:
    """The finding with the reference windows it used and those left out in its details."""
    extra: dict[str, Any] = {"reference_windows": used}
    if left_out:
        extra["excluded"] = [left_out[position] for position in sorted(left_out)]
    return replace(finding, details={**finding.details, **extra})


# --------------------------------------------------------------------------- distributions


@dataclass(frozen=True)
class Binned:
    """One feature's counts in aligned bins, reference and current."""

    labels: Sequence[str]
    reference: Sequence[float]
    current: list[float]
    new_values: dict[str, int] = field(default_factory=dict)


def binned(
    spec: DriftSpec,
    bins: _Bins,
    values: Values,
    earlier: Values | None,
    window: Window | None = None,
) -> Binned:
    """Align the current window's counts with the reference's (earlier window, or profile: the
    slots of ``window`` in a seasonal one)."""
    feature, stored, labels = bins.feature, bins.stored, bins.labels
    seasonal = _seasonal(spec, feature.name, window) if earlier is None else None
    if feature.edges is not None:
        current = _histogram(values, feature.name, len(labels))
        if earlier is not None:
            return Binned(labels, _histogram(earlier, feature.name, len(labels)), current)
        assert isinstance(stored, NumericFeature)
        return Binned(labels, seasonal or bins.profile, current)
    if isinstance(stored, CategoricalFeature):
        categories = len(labels) - 1  # the last is OTHER
        current = _profile_categories(values, feature.name, categories)
        if earlier is not None:
            reference: Sequence[float] = _profile_categories(earlier, feature.name, categories)
        else:
            reference = seasonal or bins.profile
        return Binned(labels, reference, current, _new_values(values, feature.name, bins.known))
    terms, old_terms = _terms(values, feature.name), _terms(earlier or {}, feature.name)
    names = sorted(old_terms.keys() | terms.keys(), key=lambda v: (-old_terms.get(v, 0), v))
    reference = _window_categories(earlier or {}, feature.name, old_terms, names)
    return Binned([*names, OTHER], reference, _window_categories(values, feature.name, terms, names))


def _seasonal(spec: DriftSpec, name: str, window: Window | None) -> list[float] | None:
    """The expected counts of ``window``'s slots, when the profile is seasonal."""
    profile = spec.baseline.profile if spec.baseline is not None else None
    if profile is None or profile.slots is None or profile.by is None or window is None:
        return None
    return expected_counts(profile.slots, name, window, profile.by)


def _slots(spec: DriftSpec, window: Window) -> dict[str, float] | None:
    """The slots a seasonal profile compares ``window`` with, and the share of it in each."""
    profile = spec.baseline.profile if spec.baseline is not None else None
    if spec.reference is not None or profile is None or profile.by is None:
        return None
    return {name: round(share, 6) for name, share in slot_spans(window, profile.by).items()}


def _present(values: Values, name: str) -> int:
    count, missing = values.get(COUNT, 0), values.get(f"{name}/missing", 0)
    return int(count) - int(missing) if isinstance(count, int) and isinstance(missing, int) else 0


def _profile_categories(values: Values, name: str, size: int) -> list[float]:
    counts = []
    for index in range(size):
        count = values.get(f"{name}/category{index}", 0)
        counts.append(float(count) if isinstance(count, int | float) else 0.0)
    return [*counts, float(max(_present(values, name) - sum(counts), 0))]


def _new_values(values: Values, name: str, known: frozenset[str]) -> dict[str, int]:
    new = sorted(
        ((v, c) for v, c in _terms(values, name).items() if v not in known), key=lambda item: -item[1]
    )
    return dict(new[:NEW_VALUES_SHOWN])


def _terms(values: Values, name: str) -> dict[str, int]:
    raw = values.get(f"{name}/terms")
    if not isinstance(raw, dict):
        return {}
    return {str(k): int(v) for k, v in raw.items() if isinstance(v, int | float)}


def _window_categories(
    values: Values, name: str, terms: Mapping[str, int], names: Sequence[str]
) -> list[float]:
    counts = [float(terms.get(label, 0)) for label in names]
    present = max(_present(values, name), sum(terms.values()))
    return [*counts, float(max(present - sum(counts), 0))]


def _histogram(values: Values, name: str, size: int) -> list[float]:
    counts = values.get(f"{name}/bins")
    if not isinstance(counts, list):
        return [0.0] * size
    if len(counts) != size:
        raise ValueError(f"store returned {len(counts)} bins for {name!r}, expected {size}")
    return [float(c) for c in counts]


def bin_labels(edges: Sequence[float], *, maximum: float | None = None) -> list[str]:
    """``< e0``, ``[e0, e1)``, ..., ``>= ek`` -- the ``Histogram`` buckets, as users read them.
    A built profile's last edge sits one float above the baseline ``maximum`` (see
    ``decile_edges``): then the last bin reads ``[e, max]`` and the overflow ``> max``."""
    labels = [f"< {edges[0]:g}"] + [f"[{low:g}, {high:g})" for low, high in itertools.pairwise(edges)]
    if maximum is None or edges[-1] != math.nextafter(maximum, math.inf):
        return [*labels, f">= {edges[-1]:g}"]
    if len(edges) > 1:
        labels[-1] = f"[{edges[-2]:g}, {maximum:g}]"
    return [*labels, f"> {maximum:g}"]


# --------------------------------------------------------------------------- judging


def _judge(
    rule: Rule,
    spec: DriftSpec,
    group: Mapping[str, str],
    values: Values,
    earlier: Values | None,
    window: Window,
) -> Finding:
    scored: dict[str, dict[str, Any]] = {}
    short: dict[str, str] = {}
    for bins in _bins(spec):
        feature = bins.feature
        try:
            data = binned(spec, bins, values, earlier, window)
            problem = _too_small(spec, data, earlier is not None)
            if not problem:
                scored[feature.name] = _score(spec, data)
        except ValueError as exc:  # the store broke the aggregate contract: an error, never a verdict
            return Finding(rule.name, group, Status.ERROR, reason=f"cannot score {feature.name}: {exc}")
        if problem:
            short[feature.name] = problem
    if not scored:
        reason = "not enough data: " + "; ".join(f"{name} {why}" for name, why in short.items())
        return Finding(rule.name, group, Status.NO_DATA, reason=reason, details={"not_enough_data": short})
    warn, critical = spec.thresholds
    drifted = [name for name, info in scored.items() if info["level"] != "ok"]
    worst = max(scored, key=lambda name: scored[name]["score"])
    details: dict[str, Any] = {
        "method": spec.method,
        "warn": warn,
        "critical": critical,
        "severity": _severity(rule, scored, drifted),
        "drifted": drifted,
        "features": scored,
        "not_enough_data": short,
    }
    if (slots := _slots(spec, window)) is not None:
        details["slots"] = slots
    value = float(scored[worst]["score"])
    if not drifted:
        reason = f"no drift: max {spec.method} {value:.3g} ({worst})"
        return Finding(rule.name, group, Status.OK, value, warn, reason, details)
    reason, severity = _reason(spec, scored, drifted), details["severity"]
    return Finding(rule.name, group, Status.ALERTING, value, warn, reason, details, severity=severity)


def _too_small(spec: DriftSpec, data: Binned, from_window: bool) -> str:
    current, reference = sum(data.current), sum(data.reference)
    if current < spec.min_samples:
        return f"has {current:.0f} values (min_samples {spec.min_samples})"
    if from_window and reference < spec.min_samples:
        return f"has {reference:.0f} values in the reference window (min_samples {spec.min_samples})"
    if reference <= 0:
        return "has no values in the baseline"
    return ""


def _score(spec: DriftSpec, data: Binned) -> dict[str, Any]:
    result = stats.score(spec.method, data.reference, data.current)
    warn, critical = spec.thresholds
    level = "critical" if result.value >= critical else "warning" if result.value >= warn else "ok"
    info: dict[str, Any] = {
        "score": result.value,
        "level": level,
        "samples": int(sum(data.current)),
        "reference_samples": round(sum(data.reference)),
        "top_bins": moved_bins(data, spec.top_bins),
    }
    if result.p_value is not None:
        info["p_value"] = result.p_value
    if data.new_values:
        info["new_values"] = data.new_values
    return info


def moved_bins(data: Binned, top: int) -> list[dict[str, Any]]:
    """The ``top`` bins whose share changed most, largest change first."""
    ref_total, cur_total = sum(data.reference) or 1.0, sum(data.current) or 1.0
    moves = [
        (label, ref / ref_total, cur / cur_total)
        for label, ref, cur in zip(data.labels, data.reference, data.current, strict=True)
    ]
    moves.sort(key=lambda move: -abs(move[2] - move[1]))
    return [
        {"bin": label, "reference": round(ref, 6), "current": round(cur, 6), "change": round(cur - ref, 6)}
        for label, ref, cur in moves[:top]
    ]


def _severity(rule: Rule, scored: Mapping[str, Mapping[str, Any]], drifted: list[str]) -> str | None:
    """``critical`` when a drifted feature reached the critical level, else the rule's severity."""
    if any(scored[name]["level"] == "critical" for name in drifted):
        return "critical"
    return rule.severity if drifted else None


def _reason(spec: DriftSpec, scored: Mapping[str, Mapping[str, Any]], drifted: list[str]) -> str:
    parts = []
    for name in sorted(drifted, key=lambda n: -scored[n]["score"]):
        info = scored[name]
        top = info["top_bins"][0]
        move = f"{top['bin']} {top['reference']:.1%} -> {top['current']:.1%}"
        parts.append(f"{name} {info['score']:.3g} ({info['level']}; {move})")
    return f"{spec.method} drift in " + ", ".join(parts)
