"""``canary``: a candidate (a new model version, a canary host group) against the baseline, in the
same window, so the time of day, the traffic mix and an upstream incident hit both alike.

One query per evaluation, grouped by the rule's ``group_by`` plus the canary ``field``; per rule
group, the two values' answers are compared by the test the signal calls for (as Kayenta judges a
canary, and with Argo Rollouts' three outcomes):

- a ``ratio`` (an error share): one-sided two-proportion z-test; ``margin`` in share points;
- a ``percentile`` or ``stat`` of a field (a latency): one-sided Mann-Whitney U on the field's
  histogram (the store's bins, ``edges``), and the signal's relative increase past ``margin``
  (the effect size: 0.1 = the candidate's p99 10% above the baseline's);
- a ``feature``: its distribution in the two groups, scored by ``method`` (``stats.score``) past
  ``margin``, significant by a chi-square test of homogeneity.

The candidate is worse (ALERTING) when the test's p-value is below ``1 - confidence`` and the
difference passes the margin; fewer than ``min_samples`` documents on either side, or a group
missing, is "inconclusive" (NO_DATA: the incident keeps its state) with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from watcher.detect.base import Finding, Status, rule_query, rule_window
from watcher.detect.groups import failed, split_by
from watcher.detect.signal import describe, signal_aggregates, signal_count, signal_value
from watcher.detect.stats import TwoSampleResult, chi2_test, mann_whitney_binned, score, two_proportion
from watcher.query import Aggregate, AggValue, Histogram, Query, QueryResult, Terms
from watcher.query_documents import Timeline
from watcher.rules.ml_specs import DEFAULT_THRESHOLDS
from watcher.rules.models import Rule
from watcher.rules.trend_specs import DEFAULT_EDGES, NEWEST, CanarySpec

BINS, FIRST = "canary/bins", "canary/first"
TERMS_SIZE = 100
Values = Mapping[str, AggValue]


def _spec(rule: Rule) -> CanarySpec:
    assert rule.canary is not None, "canary detector on a rule without 'canary'"
    return rule.canary


def queries(rule: Rule, at: datetime) -> list[Query]:
    """The rule's window grouped by its groups and the canary field, with what the test needs."""
    spec = _spec(rule)
    aggregates: dict[str, Aggregate] = signal_aggregates(rule.signal)
    if spec.feature is not None:
        feature = spec.feature
        numeric = feature.kind == "numeric" and feature.edges is not None
        aggregates[BINS] = (
            Histogram(feature.name, feature.edges or ()) if numeric else Terms(feature.name, TERMS_SIZE)
        )
    elif (field := _measured(rule)) is not None:
        aggregates[BINS] = Histogram(field, spec.edges or DEFAULT_EDGES)
    if spec.candidate == NEWEST:
        aggregates[FIRST] = Timeline((spec.field,))
    query = rule_query(rule, rule_window(rule, at), aggregates)
    group_by = query.group_by if spec.field in query.group_by else (*query.group_by, spec.field)
    return [Query(query.id, query.window, query.aggregates, query.where, group_by)]


def _measured(rule: Rule) -> str | None:
    """The field a percentile or stat signal measures (a latency), or None (a ratio)."""
    signal = rule.signal.percentile or rule.signal.stat
    return signal.field if signal is not None else None


def evaluate(
    rule: Rule,
    results: Sequence[QueryResult],
    at: datetime,
    known_groups: Sequence[Mapping[str, str]] = (),
) -> list[Finding]:
    spec = _spec(rule)
    if (errors := failed(rule, results, known_groups)) is not None:
        return errors
    arms = split_by(rule, results[0], spec.field, known_groups)
    return [_judge(rule, spec, labels, values) for labels, values in arms.values()]


def _candidate(spec: CanarySpec, values: Mapping[str, Values]) -> str | None:
    """The candidate named, or the value first seen last in the window (``newest``)."""
    if spec.candidate != NEWEST:
        return spec.candidate
    firsts = {
        value: min(seen.first for seen in found)
        for value, answer in values.items()
        if value != spec.baseline and isinstance(found := answer.get(FIRST), tuple) and found
    }
    return max(firsts, key=lambda value: (firsts[value], value)) if firsts else None


def _judge(rule: Rule, spec: CanarySpec, group: Mapping[str, str], values: Mapping[str, Values]) -> Finding:
    candidate = _candidate(spec, values)
    if candidate is None:
        return _inconclusive(rule, group, f"no {spec.field} other than {spec.baseline!r} in the window")
    sides = {"baseline": spec.baseline, "candidate": candidate}
    for side, name in sides.items():
        count = signal_count(values.get(name, {}))
        if count < spec.min_samples:
            found = f"{spec.field}={name} ({side}) has {count} documents < min_samples {spec.min_samples}"
            return _inconclusive(rule, group, found)
    base, cand = values[spec.baseline], values[candidate]
    if spec.feature is not None:
        return _by_feature(rule, spec, group, sides, base, cand)
    signal_b, signal_c = signal_value(rule.signal, base), signal_value(rule.signal, cand)
    if signal_b is None or signal_c is None:
        return _inconclusive(rule, group, f"{describe(rule.signal)} is undefined in one of the groups")
    if rule.signal.ratio is not None:
        test = two_proportion(_hits(base), signal_count(base), _hits(cand), signal_count(cand))
        margin = spec.margin or 0.0
        limit, passed, name = signal_b + margin, test.score > margin, "two-proportion z-test"
    else:
        bins_b, bins_c = _bins(base.get(BINS)), _bins(cand.get(BINS))
        if not sum(bins_b) or not sum(bins_c) or len(bins_b) != len(bins_c):
            return _inconclusive(rule, group, f"no {_measured(rule)} values in one of the groups")
        test = mann_whitney_binned(bins_b, bins_c)
        margin = spec.margin or 0.0
        limit, name = signal_b * (1 + margin), "Mann-Whitney U"
        passed = signal_c > limit
    return _verdict(rule, spec, group, sides, (signal_b, signal_c, limit), test, passed, name)


def _hits(values: Values) -> float:
    hits = values.get("value")
    return float(hits) if isinstance(hits, int | float) else 0.0


def _bins(answer: AggValue) -> list[float]:
    return [float(count) for count in answer] if isinstance(answer, list) else []


def _by_feature(
    rule: Rule,
    spec: CanarySpec,
    group: Mapping[str, str],
    sides: Mapping[str, str],
    base: Values,
    cand: Values,
) -> Finding:
    answer_b, answer_c = base.get(BINS), cand.get(BINS)
    if isinstance(answer_b, dict) and isinstance(answer_c, dict):
        keys = sorted({str(key) for key in answer_b} | {str(key) for key in answer_c})
        lookup_b = {str(key): value for key, value in answer_b.items()}
        lookup_c = {str(key): value for key, value in answer_c.items()}
        bins_b = [float(lookup_b.get(key) or 0) for key in keys]
        bins_c = [float(lookup_c.get(key) or 0) for key in keys]
    else:
        bins_b, bins_c = _bins(answer_b), _bins(answer_c)
    assert spec.feature is not None
    if not sum(bins_b) or not sum(bins_c) or len(bins_b) != len(bins_c):
        return _inconclusive(rule, group, f"no {spec.feature.name} values in one of the groups")
    drift = score(spec.method, bins_b, bins_c).value
    margin = spec.margin if spec.margin is not None else DEFAULT_THRESHOLDS[spec.method][0]
    test = chi2_test(bins_b, bins_c)
    return _verdict(rule, spec, group, sides, (0.0, drift, margin), test, drift >= margin, "chi-square")


def _inconclusive(rule: Rule, group: Mapping[str, str], why: str) -> Finding:
    return Finding(rule.name, group, Status.NO_DATA, reason=f"inconclusive: not enough data: {why}")


def _verdict(
    rule: Rule,
    spec: CanarySpec,
    group: Mapping[str, str],
    sides: Mapping[str, str],
    numbers: tuple[float, float, float],
    test: TwoSampleResult,
    passed: bool,
    name: str,
) -> Finding:
    """ALERTING when significant and past the margin; ``numbers``: (baseline, candidate, limit)."""
    baseline, candidate, limit = numbers
    alpha = 1 - spec.confidence
    what = f"{spec.method} drift of {spec.feature.name}" if spec.feature else describe(rule.signal)
    details: dict[str, Any] = {
        "signal": what,
        "field": spec.field,
        "baseline": sides["baseline"],
        "candidate": sides["candidate"],
        **(
            {"drift": candidate}
            if spec.feature
            else {"baseline_value": baseline, "candidate_value": candidate}
        ),
        "test": name,
        "p_value": test.p_value,
        "confidence": spec.confidence,
    }
    shown = (
        f"{what} {candidate:.3g} between {spec.field}={sides['candidate']} and {sides['baseline']}"
        if spec.feature
        else f"{what} {candidate:.4g} for {spec.field}={sides['candidate']} vs {baseline:.4g} for "
        f"{sides['baseline']}"
    )
    said = f"{shown} ({name}, p={test.p_value:.3g})"
    if passed and test.p_value < alpha:
        details["verdict"] = "worse"
        reason = f"{said}: the candidate is worse at {spec.confidence:g} confidence"
        return Finding(rule.name, group, Status.ALERTING, candidate, limit, reason, details)
    details["verdict"] = "pass"
    return Finding(rule.name, group, Status.OK, candidate, limit, said, details)
