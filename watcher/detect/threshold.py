"""``threshold``: the rule's signal, per group, against fixed ``above`` / ``below`` bounds.

A bound written as levels (``above: {warning: 0.02, critical: 0.05}``) makes the finding's
severity the most severe level crossed; a plain number alerts at the rule's ``severity``. A group
with an override (``overrides``, ``overrides_file``) is judged by the override's bounds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from watcher.detect.base import Finding, Status, rule_query, rule_window
from watcher.detect.groups import failed, groups_with_known
from watcher.detect.signal import describe, signal_aggregates, signal_count, signal_value
from watcher.query import AggValue, Query, QueryResult
from watcher.rules.models import Rule
from watcher.rules.thresholds import Severity, Side, ThresholdSpec


def queries(rule: Rule, at: datetime) -> list[Query]:
    return [rule_query(rule, rule_window(rule, at), signal_aggregates(rule.signal))]


def evaluate(
    rule: Rule,
    results: Sequence[QueryResult],
    at: datetime,
    known_groups: Sequence[Mapping[str, str]] = (),
) -> list[Finding]:
    assert rule.threshold is not None
    if (errors := failed(rule, results, known_groups)) is not None:
        return errors
    (result,) = results
    findings = []
    name = describe(rule.signal)
    for group, values in groups_with_known(result, known_groups):
        count, value, spec, crossed = _reading(rule, group, values)
        if value is None:
            if count < rule.min_events:
                reason = f"not enough data: {count} < min_events {rule.min_events}"
            else:
                reason = f"{name} is undefined over {count} documents"
            findings.append(Finding(rule.name, group, Status.NO_DATA, reason=reason))
            continue
        assert spec is not None
        findings.append(_judge(rule, group, name, count, value, spec, crossed))
    return findings


def alerts(rule: Rule, group: Mapping[str, str], values: Mapping[str, AggValue]) -> bool:
    """Whether ``evaluate`` finds this group of the answer alerting: the condition on which the
    store is asked for the alert's evidence (``watcher.detect.evidence``). Both read the group
    through ``_reading``, so they cannot disagree."""
    assert rule.threshold is not None
    return _reading(rule, group, values)[3] is not None


Crossed = tuple[Severity, float, Side]
"""The most severe level a value crosses: (level, its bound, side)."""


def _reading(
    rule: Rule, group: Mapping[str, str], values: Mapping[str, AggValue]
) -> tuple[int, float | None, ThresholdSpec | None, Crossed | None]:
    """One group's answer judged once: (documents, signal value, the bounds that judge the group,
    the level crossed). The value is None, and nothing else is computed, when there are fewer than
    ``min_events`` documents or the signal is undefined over them; crossed is None within bounds."""
    count = signal_count(values)
    if count < rule.min_events:
        return count, None, None, None
    value = signal_value(rule.signal, values)
    if value is None:
        return count, None, None, None
    spec = rule.threshold_for(group)
    return count, value, spec, spec.crossed(value, rule.severity)


def _judge(
    rule: Rule,
    group: Mapping[str, str],
    name: str,
    count: int,
    value: float,
    spec: ThresholdSpec,
    crossed: Crossed | None,
) -> Finding:
    details: dict[str, Any] = {"signal": name, "events": count}
    override = rule.override_for(group)
    if override is not None:
        details["override"] = dict(override.group)
    if crossed is None:
        reason = f"{name} {value:g} within bounds"
        bound = spec.alert_bound(rule.severity)
        return Finding(rule.name, group, Status.OK, value, bound, reason, details)
    level, bound, side = crossed
    reason = f"{name} {value:g} {'>' if side == 'above' else '<'} {bound:g}"
    if isinstance(spec.written(side), dict):
        reason += f" ({level})"
    return Finding(rule.name, group, Status.ALERTING, value, bound, reason, details, severity=level)
