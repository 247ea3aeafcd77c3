"""``flatline``: traffic (documents per group) below a floor.

An empty window is a count of 0 and fires; a store error is an ERROR finding and never fires,
so an outage of the log store is not mistaken for an outage of the service. A group with an
override (``overrides``, ``overrides_file``) is judged against the override's floor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from watcher.detect.base import Finding, Status, rule_query, rule_window
from watcher.detect.groups import failed, groups_with_known
from watcher.detect.signal import COUNT, signal_count
from watcher.query import Count, Query, QueryResult
from watcher.rules.models import Rule


def queries(rule: Rule, at: datetime) -> list[Query]:
    return [rule_query(rule, rule_window(rule, at), {COUNT: Count()})]


def evaluate(
    rule: Rule,
    results: Sequence[QueryResult],
    at: datetime,
    known_groups: Sequence[Mapping[str, str]] = (),
) -> list[Finding]:
    assert rule.flatline is not None
    if (errors := failed(rule, results, known_groups)) is not None:
        return errors
    (result,) = results
    findings = []
    for group, values in groups_with_known(result, known_groups):
        count = signal_count(values)
        spec = rule.flatline_for(group)  # an override's floor for this group, else the rule's
        details: dict[str, Any] = {"signal": "count", "events": count}
        if (override := rule.override_for(group)) is not None:
            details["override"] = dict(override.group)
        if count < spec.below:
            reason = f"{count} events < {spec.below:g} expected in {rule.window}"
            findings.append(Finding(rule.name, group, Status.ALERTING, count, spec.below, reason, details))
        else:
            reason = f"{count} events >= {spec.below:g}"
            findings.append(Finding(rule.name, group, Status.OK, count, spec.below, reason, details))
    return findings
