"""``threshold``: the rule's signal, per group, against fixed ``above`` / ``below`` bounds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from watcher.detect.base import Finding, Status, rule_query, rule_window
from watcher.detect.groups import failed, groups_with_known
from watcher.detect.signal import describe, signal_aggregates, signal_count, signal_value
from watcher.query import Query, QueryResult
from watcher.rules.models import Rule


def queries(rule: Rule, at: datetime) -> list[Query]:
    return [rule_query(rule, rule_window(rule, at), signal_aggregates(rule.signal))]


def evaluate(
    rule: Rule,
    results: Sequence[QueryResult],
    at: datetime,
    known_groups: Sequence[Mapping[str, str]] = (),
) -> list[Finding]:
    spec = rule.threshold
    assert spec is not None
    if (errors := failed(rule, results, known_groups)) is not None:
        return errors
    (result,) = results
    findings = []
    name = describe(rule.signal)
    for group, values in groups_with_known(result, known_groups):
        count = signal_count(values)
        if count < rule.min_events:
            reason = f"not enough data: {count} < min_events {rule.min_events}"
            findings.append(Finding(rule.name, group, Status.NO_DATA, reason=reason))
            continue
        value = signal_value(rule.signal, values)
        if value is None:
            reason = f"{name} is undefined over {count} documents"
            findings.append(Finding(rule.name, group, Status.NO_DATA, reason=reason))
            continue
        findings.append(_judge(rule, group, value, count, name))
    return findings


def _judge(rule: Rule, group: Mapping[str, str], value: float, count: int, name: str) -> Finding:
    spec = rule.threshold
    assert spec is not None
    details = {"signal": name, "events": count}
    if spec.above is not None and value > spec.above:
        reason = f"{name} {value:g} > {spec.above:g}"
        return Finding(rule.name, group, Status.ALERTING, value, spec.above, reason, details)
    if spec.below is not None and value < spec.below:
        reason = f"{name} {value:g} < {spec.below:g}"
        return Finding(rule.name, group, Status.ALERTING, value, spec.below, reason, details)
    bound = spec.above if spec.above is not None else spec.below
    return Finding(rule.name, group, Status.OK, value, bound, f"{name} {value:g} within bounds", details)
