"""``spike``: the rule's signal against a reference -- the same signal in earlier windows (``offset``
back, or ``count`` windows ``offset`` apart combined per value: see ``watcher.detect.references``),
or its own recent history as a robust z-score (see ``watcher.rules.ml_specs.SpikeSpec``).

Findings keep the signal's units: ``value`` is the current signal and ``threshold`` the level it had
to reach to alert (reference x factor, or median + above x scale), so templates read like a
threshold rule's; the ratio or z-score, the reference and the history are in ``details``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from watcher.detect.base import Finding, Status, rule_query, rule_window
from watcher.detect.groups import failed, group_key, groups_with_known, values_by_group
from watcher.detect.references import NOTHING_EXCLUDED, Exclusions, combine, excluded_reason
from watcher.detect.signal import describe, signal_aggregates, signal_count, signal_value, too_few
from watcher.duration import format_duration
from watcher.query import AggValue, Query, QueryResult
from watcher.rules.ml_specs import SpikeSpec
from watcher.rules.models import Rule

# Scale of the MAD (and of the mean absolute deviation) that makes it estimate a normal sigma.
MAD_SCALE = 1.4826
MEAN_AD_SCALE = 1.2533

Values = Mapping[str, AggValue]


def _spec(rule: Rule) -> SpikeSpec:
    assert rule.spike is not None, "spike detector on a rule without 'spike'"
    return rule.spike


def queries(rule: Rule, at: datetime) -> list[Query]:
    """The current window first, then the offset window or the ``history`` windows before it."""
    spec = _spec(rule)
    window = rule_window(rule, at)
    reference = spec.references
    shifts = (
        reference.shifts()
        if reference is not None
        else [k * rule.window for k in range(1, _history(spec) + 1)]
    )
    windows = [("current", window)] + [
        (f"earlier{k}", window.shifted(shift)) for k, shift in enumerate(shifts, 1)
    ]
    aggregates = signal_aggregates(rule.signal)
    return [rule_query(rule, w, aggregates, tag) for tag, w in windows]


def _history(spec: SpikeSpec) -> int:
    return spec.zscore.history if spec.zscore is not None else 1


def evaluate(
    rule: Rule,
    results: Sequence[QueryResult],
    at: datetime,
    known_groups: Sequence[Mapping[str, str]] = (),
    excluded: Exclusions = NOTHING_EXCLUDED,
) -> list[Finding]:
    """One finding per group; ``excluded`` names the reference windows left out (offset mode)."""
    spec = _spec(rule)
    if (errors := failed(rule, results, known_groups)) is not None:
        return errors
    current, *earlier = results
    lookups = [values_by_group(result) for result in earlier]
    findings = []
    for group, values in groups_with_known(current, known_groups):
        key = group_key(group)
        references = [lookup.get(key, {}) for lookup in lookups]
        if spec.references is not None:
            left_out = excluded.of(rule, group)
            findings.append(_by_offset(rule, spec, group, values, references, left_out))
        else:
            findings.append(_by_zscore(rule, spec, group, values, references))
    return findings


def _not_enough(rule: Rule, spec: SpikeSpec, group: Mapping[str, str], values: Values) -> Finding | None:
    count = signal_count(values)
    if (short := too_few(count, min_volume=spec.min_volume, min_events=rule.min_events)) is not None:
        return Finding(rule.name, group, Status.NO_DATA, reason=short)
    if signal_value(rule.signal, values) is None:
        reason = f"{describe(rule.signal)} is undefined over {count} documents"
        return Finding(rule.name, group, Status.NO_DATA, reason=reason)
    return None


def _by_offset(
    rule: Rule,
    spec: SpikeSpec,
    group: Mapping[str, str],
    values: Values,
    references: list[Values],
    excluded: Mapping[int, str],
) -> Finding:
    reference_spec = spec.references
    assert reference_spec is not None
    short = _not_enough(rule, spec, group, values)
    if short is not None:
        return short
    name, offset = describe(rule.signal), format_duration(reference_spec.offset)
    used: list[tuple[float, int]] = []
    for position, window in enumerate(references, 1):
        count, number = signal_count(window), signal_value(rule.signal, window)
        if position not in excluded and count >= spec.min_volume and number is not None:
            used.append((number, count))
    if not used:
        reason = _no_reference(spec, references, excluded)
        return Finding(rule.name, group, Status.NO_DATA, reason=reason, details=_left_out(excluded))
    reference = combine([number for number, _ in used], reference_spec.combine)
    reference_count = round(combine([count for _, count in used], reference_spec.combine))
    value = signal_value(rule.signal, values)
    assert value is not None
    ratio = value / reference if reference else (1.0 if value == 0 else math.inf)
    up, down = reference * spec.ratio, reference / spec.ratio
    details: dict[str, Any] = {
        "signal": name,
        "mode": "offset",
        "offset": offset,
        "current": value,
        "reference": reference,
        "ratio": ratio if math.isfinite(ratio) else None,
        "factor": spec.ratio,
        "events": signal_count(values),
        "reference_events": reference_count,
        **_left_out(excluded),
    }
    its, earlier = f"its value {offset} earlier", f"{offset} earlier"
    if reference_spec.count > 1:
        windows = f"{len(used)} window{'s' if len(used) > 1 else ''} {offset} apart"
        earlier = f"in the {reference_spec.combine} of {windows}"
        its = f"the {reference_spec.combine} of its values in {windows}"
        details["reference_windows"] = len(used)
    if math.isfinite(ratio):
        said = f"{name} {value:g} is {ratio:.3g}x {its} ({reference:g})"
    else:
        said = f"{name} {value:g} was 0 {earlier}"
    if _up(spec, value) and value >= up and value > reference:
        return Finding(
            rule.name, group, Status.ALERTING, value, up, f"{said}; spike at {spec.ratio:g}x", details
        )
    if spec.direction in ("down", "both") and value <= down and value < reference:
        reason = f"{said}; drop at 1/{spec.ratio:g}"
        return Finding(rule.name, group, Status.ALERTING, value, down, reason, details)
    bound = down if spec.direction == "down" else up
    return Finding(rule.name, group, Status.OK, value, bound, said, details)


def _no_reference(spec: SpikeSpec, references: list[Values], excluded: Mapping[int, str]) -> str:
    """Why no reference window could be used: those left out, and those with too few documents."""
    reference_spec = spec.references
    assert reference_spec is not None
    offset = format_duration(reference_spec.offset)
    if not excluded and len(references) == 1:
        return f"not enough reference data: {signal_count(references[0])} documents {offset} earlier"
    parts = [excluded_reason(list(excluded.values()))] if excluded else []
    thin = len(references) - len(excluded)
    if thin:
        parts.append(f"{thin} with fewer than {spec.min_volume} documents")
    return "not enough reference data: " + "; ".join(parts)


def _left_out(excluded: Mapping[int, str]) -> dict[str, Any]:
    """The reference windows left out, for the incident (``details["excluded"]``)."""
    return {"excluded": [excluded[position] for position in sorted(excluded)]} if excluded else {}


def _up(spec: SpikeSpec, value: float) -> bool:
    """Up-spikes count unless the signal is still below ``min_value``."""
    return spec.direction in ("up", "both") and (spec.min_value is None or value >= spec.min_value)


def _by_zscore(
    rule: Rule, spec: SpikeSpec, group: Mapping[str, str], values: Values, references: list[Values]
) -> Finding:
    assert spec.zscore is not None
    short = _not_enough(rule, spec, group, values)
    if short is not None:
        return short
    history = [
        number
        for window in references
        if signal_count(window) >= spec.min_volume
        and (number := signal_value(rule.signal, window)) is not None
    ]
    if len(history) < spec.zscore.needed:
        reason = (
            f"not enough history: {len(history)} of {spec.zscore.history} earlier windows have "
            f"{spec.min_volume}+ documents (need {spec.zscore.needed})"
        )
        return Finding(rule.name, group, Status.NO_DATA, reason=reason)
    value = signal_value(rule.signal, values)
    assert value is not None
    return _judge_z(rule, spec, group, value, history, signal_count(values))


def robust_scale(history: Sequence[float]) -> tuple[float, float]:
    """(median, scale): scale is 1.4826 x MAD, or 1.2533 x the mean absolute deviation when over
    half the history is identical (MAD 0); 0 only when the history is constant."""
    median = statistics.median(history)
    deviations = [abs(x - median) for x in history]
    mad = statistics.median(deviations)
    scale = MAD_SCALE * mad if mad > 0 else MEAN_AD_SCALE * statistics.fmean(deviations)
    return median, scale


def _judge_z(
    rule: Rule, spec: SpikeSpec, group: Mapping[str, str], value: float, history: list[float], count: int
) -> Finding:
    assert spec.zscore is not None
    above, name = spec.zscore.above, describe(rule.signal)
    median, scale = robust_scale(history)
    if scale > 0:
        z = (value - median) / scale
    else:  # a constant history: any change is infinitely unusual
        z = 0.0 if value == median else math.copysign(math.inf, value - median)
    up, down = median + above * scale, median - above * scale
    details: dict[str, Any] = {
        "signal": name,
        "mode": "zscore",
        "current": value,
        "median": median,
        "scale": scale,
        "zscore": z if math.isfinite(z) else None,
        "above": above,
        "history": history,
        "events": count,
    }
    shown = f"z={z:.2f}" if math.isfinite(z) else f"history constant at {median:g}"
    said = f"{name} {value:g} ({shown} against the median {median:g} of {len(history)} earlier windows)"
    if _up(spec, value) and z >= above:
        return Finding(rule.name, group, Status.ALERTING, value, up, f"{said}; spike at z={above:g}", details)
    if spec.direction in ("down", "both") and z <= -above:
        return Finding(
            rule.name, group, Status.ALERTING, value, down, f"{said}; drop at z=-{above:g}", details
        )
    bound = down if spec.direction == "down" else up
    return Finding(rule.name, group, Status.OK, value, bound, said, details)
