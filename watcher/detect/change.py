"""``change``: fire when a field's value changes for the same key (ElastAlert 2's ``change``).

One query over the lookback and the window asks, per key (the rule's ``group_by``, ``change.by``),
for the last value before the window (``Latest``) and the values in it, by first time
(``Timeline``). The key changed when the window holds a value other than the one before it, or
more than one value. A key's first value ever is no change. Documents without the field are
ignored (ElastAlert 2's ``ignore_null``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from watcher.detect.base import Finding, Status, rule_query, rule_window
from watcher.detect.groups import failed, groups_with_known
from watcher.detect.seen import details, shown
from watcher.query import Aggregate, Query, QueryResult, Window
from watcher.query_documents import Latest, Seen, Timeline
from watcher.rules.models import Rule

BEFORE, NOW = "before", "now"


def queries(rule: Rule, at: datetime) -> list[Query]:
    spec = rule.change
    assert spec is not None
    window = rule_window(rule, at)
    reach = Window(window.start - spec.lookback, window.end)
    aggregates: dict[str, Aggregate] = {
        BEFORE: Latest(spec.field, window.start),
        NOW: Timeline((spec.field,), window.start, spec.max_values),
    }
    return [rule_query(rule, reach, aggregates)]


def evaluate(
    rule: Rule,
    results: Sequence[QueryResult],
    at: datetime,
    known_groups: Sequence[Mapping[str, str]] = (),
) -> list[Finding]:
    spec = rule.change
    assert spec is not None
    if (errors := failed(rule, results, known_groups)) is not None:
        return errors
    (result,) = results
    findings = []
    for group, values in groups_with_known(result, known_groups):
        before, now = values.get(BEFORE), values.get(NOW, ())
        if not isinstance(now, tuple):
            reason = (
                f"more than {spec.max_values} values of {spec.field} in the window (raise change.max_values)"
            )
            findings.append(Finding(rule.name, group, Status.ERROR, reason=reason))
            continue
        previous = before if isinstance(before, str) else None
        changes = _changes(previous, now)
        if not changes:
            reason = f"{spec.field} unchanged" if now else f"no {spec.field} in the window"
            findings.append(Finding(rule.name, group, Status.OK, 0, 1, reason))
            continue
        start = shown((previous,)) if previous is not None else shown(now[0].value)
        steps = " → ".join(f"{shown(seen.value)} at {seen.first:%H:%M:%S}" for seen in changes)
        reason = f"{spec.field} changed from {start} to {steps}"
        info = {"previous": previous, "values": details(now, (spec.field,))}
        findings.append(Finding(rule.name, group, Status.ALERTING, len(changes), 1, reason, info))
    return findings


def _changes(previous: str | None, now: Sequence[Seen]) -> list[Seen]:
    """The window's values, by first time, that differ from the value before them (the key's last
    value before the window, or for a first value ever the window's first). What comes back is each
    value's first time, so A -> B -> A reads as two changes, A -> B -> A -> B as two as well."""
    current = (previous,) if previous is not None else now[0].value if now else None
    steps = []
    for seen in now:
        if seen.value != current:
            steps.append(seen)
            current = seen.value
    return steps
