"""``match``: fire on the documents the rule's ``where`` matches (ElastAlert 2's ``any``).

Not one message per document: the group's documents in the window are one count, and the group
one incident that fires, stays firing while matches keep coming (re-notified on the route's
``repeat_interval``) and resolves after a window without any.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from watcher.detect.base import Finding, Status, rule_query, rule_window
from watcher.detect.groups import failed, groups_with_known
from watcher.detect.signal import COUNT, signal_count
from watcher.duration import format_duration
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
    assert rule.match is not None
    if (errors := failed(rule, results, known_groups)) is not None:
        return errors
    (result,) = results
    need, window = rule.match.min, format_duration(rule.window)
    findings = []
    for group, values in groups_with_known(result, known_groups):
        count = signal_count(values)
        status = Status.ALERTING if count >= need else Status.OK
        reason = f"{count} matching document{'s' if count != 1 else ''} in {window}"
        if status is Status.OK and count:
            reason += f" (< {need})"
        findings.append(Finding(rule.name, group, status, count, need, reason, {"events": count}))
    return findings
