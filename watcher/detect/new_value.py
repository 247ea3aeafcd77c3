"""``new_value``: fire on values of some fields in the window that the ``lookback`` before it never
saw (ElastAlert 2's ``new_term``), each with the time it was first seen.

One query over the lookback and the window asks the store for the values first seen in the window
(``FirstSeen``): every value of the lookback is bucketed there, only the new ones come back. A new
value fires its group once, in the window where it appears; the next window it is known, and the
incident resolves unless another new value came.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from watcher.detect.base import Finding, Status, rule_query, rule_window
from watcher.detect.groups import failed, groups_with_known
from watcher.detect.seen import details, listing
from watcher.duration import format_duration
from watcher.query import Query, QueryResult, Window
from watcher.query_documents import FirstSeen
from watcher.rules.models import Rule

NEW = "new"


def queries(rule: Rule, at: datetime) -> list[Query]:
    spec = rule.new_value
    assert spec is not None
    window = rule_window(rule, at)
    reach = Window(window.start - spec.lookback, window.end)
    return [rule_query(rule, reach, {NEW: FirstSeen(spec.fields, window.start, spec.max_values)})]


def evaluate(
    rule: Rule,
    results: Sequence[QueryResult],
    at: datetime,
    known_groups: Sequence[Mapping[str, str]] = (),
) -> list[Finding]:
    spec = rule.new_value
    assert spec is not None
    if (errors := failed(rule, results, known_groups)) is not None:
        return errors
    (result,) = results
    fields, lookback = ", ".join(spec.fields), format_duration(spec.lookback)
    findings = []
    for group, values in groups_with_known(result, known_groups):
        found = values.get(NEW, ())
        if not isinstance(found, tuple):
            reason = (
                f"more than {spec.max_values} distinct values of {fields} in {lookback}: cannot tell the new "
                "ones (raise new_value.max_values, or narrow 'where')"
            )
            findings.append(Finding(rule.name, group, Status.ERROR, reason=reason))
            continue
        if not found:
            reason = f"no {fields} value unseen in the {lookback} before"
            findings.append(Finding(rule.name, group, Status.OK, 0, 1, reason))
            continue
        reason = f"new {fields} (unseen in the {lookback} before): {listing(found, first_seen=True)}"
        info = {"new_values": details(found, spec.fields)}
        findings.append(Finding(rule.name, group, Status.ALERTING, len(found), 1, reason, info))
    return findings
