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

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from watcher.baseline import CategoricalFeature
from watcher.baseline_slots import slot_spans
from watcher.detect import stats
from watcher.detect.base import Finding, Status, rule_window
from watcher.detect.derived import derived
from watcher.detect.drift_bins import (
    COUNT,
    NEW_VALUES_SHOWN,
    Binned,
    Values,
    binned,
    drift_features,
    feature_bins,
    profile_entry,
)
from watcher.detect.groups import failed, group_key, groups_with_known, values_by_group
from watcher.detect.references import (
    NOTHING_EXCLUDED,
    Exclusions,
    combine_counts,
    excluded_reason,
    reference_windows,
)
from watcher.detect.verdicts import Verdicts
from watcher.query import (
    Aggregate,
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
from watcher.rules.ml_specs import DriftSpec
from watcher.rules.models import Rule

WINDOW_TERMS = 100  # values per window when, without a profile, two windows' terms are the bins
_VERDICTS = Verdicts()  # drift against a profile, judged for the evidence first


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
    for feature in drift_features(spec):
        name, stored = feature.name, profile_entry(spec, feature.name)
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
            judged = _VERDICTS.take(rule, group, values, window)
            findings.append(judged or _judge(rule, spec, group, values, None, window))
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


def alerts(rule: Rule, group: Mapping[str, str], values: Values, window: Window) -> bool:
    """Whether ``evaluate`` finds this group of the answer drifting, for a rule compared with a
    profile alone (reference windows are other answers): the condition on which the store is
    asked for the alert's evidence (``watcher.detect.evidence``). The finding is kept for
    ``evaluate``, which then judges the group no more (``watcher.detect.verdicts``)."""
    finding = _judge(rule, _spec(rule), group, values, None, window)
    return _VERDICTS.keep(rule, group, values, window, finding).status is Status.ALERTING


def _with_references(finding: Finding, used: int, left_out: Mapping[int, str]) -> Finding:
    """The finding with the reference windows it used and those left out in its details."""
    extra: dict[str, Any] = {"reference_windows": used}
    if left_out:
        extra["excluded"] = [left_out[position] for position in sorted(left_out)]
    return finding.evolve(details={**finding.details, **extra})


# --------------------------------------------------------------------------- judging


def _slots(spec: DriftSpec, window: Window) -> dict[str, float] | None:
    """The slots a seasonal profile compares ``window`` with, and the share of it in each."""
    profile = spec.baseline.profile if spec.baseline is not None else None
    if spec.reference is not None or profile is None or profile.by is None:
        return None
    return {name: round(share, 6) for name, share in slot_spans(window, profile.by).items()}


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
    for bins in feature_bins(spec):
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
        "significance": spec.significance,
        "severity": _severity(rule, scored, drifted),
        "drifted": drifted,
        "features": scored,
        "not_enough_data": short,
    }
    if (slots := _slots(spec, window)) is not None:
        details["slots"] = slots
    value = float(scored[worst]["score"])
    if not drifted:
        reason = f"no drift: max {spec.method} {value:.3g} ({worst}{_noise(scored[worst])})"
        return Finding(rule.name, group, Status.OK, value, warn, reason, details)
    reason, severity = _reason(spec, scored, drifted), details["severity"]
    return Finding(rule.name, group, Status.ALERTING, value, warn, reason, details, severity=severity)


def within_noise(finding: Finding) -> bool:
    """Whether a feature's score reached a level that its test held back as sampling noise (the
    backtest counts such evaluations, so a rule quiet for that reason says so)."""
    features = finding.details.get("features") if finding.status is Status.OK else None
    return isinstance(features, dict) and any(
        isinstance(info, dict) and "not_significant" in info for info in features.values()
    )


def _noise(info: Mapping[str, Any]) -> str:
    """How a score at a level was told from sampling noise, for the reason ("" below ``warn``)."""
    if "not_significant" in info:
        return f"; within noise: {p_text(info['p_value'])}"
    return ""


def p_text(p_value: float) -> str:
    """A p-value as people read it: two digits, or ``p < 0.001``."""
    return "p < 0.001" if p_value < 0.001 else f"p {p_value:.2g}"


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
    """A feature's score and level. A level counts only when the shift is significant: its p-value
    (the test's own for ks and chi2; for psi, js and kl ``stats.shift_p_value``, worked out only
    when the score reaches ``warn``) below ``significance``; otherwise the level is ``ok`` and
    ``not_significant`` keeps the level the score alone reached."""
    result = stats.score(spec.method, data.reference, data.current)
    warn, critical = spec.thresholds
    level = "critical" if result.value >= critical else "warning" if result.value >= warn else "ok"
    p_value, alpha = result.p_value, spec.significance
    if p_value is None and level != "ok" and alpha is not None:
        p_value = stats.shift_p_value(data.reference, data.current)
    info: dict[str, Any] = {
        "score": result.value,
        "level": level,
        "samples": int(sum(data.current)),
        "reference_samples": round(sum(data.reference)),
        "top_bins": moved_bins(data, spec.top_bins),
    }
    if p_value is not None:
        info["p_value"] = p_value
    if level != "ok" and alpha is not None and p_value is not None and p_value >= alpha:
        info["level"], info["not_significant"] = "ok", level
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
        significant = f"{p_text(info['p_value'])}; " if "p_value" in info else ""
        parts.append(f"{name} {info['score']:.3g} ({info['level']}; {significant}{move})")
    return f"{spec.method} drift in " + ", ".join(parts)
