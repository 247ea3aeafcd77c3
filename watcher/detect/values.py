"""``values``: fire on documents whose field is denied (``deny``, ElastAlert 2's ``blacklist``) or
not allowed (``allow``, ``whitelist``).

The list becomes part of the query's filter, so the store counts only offending documents and
lists their distinct values (``Timeline``); the group's incident names them with their counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from watcher.detect.base import Finding, Status, rule_query, rule_window
from watcher.detect.groups import failed, groups_with_known
from watcher.detect.seen import details, listing
from watcher.detect.signal import COUNT, signal_count
from watcher.query import Aggregate, Count, Query, QueryResult
from watcher.query_documents import Timeline
from watcher.query_filters import And, Exists, Filter, In, Not
from watcher.rules.document_specs import ValuesSpec
from watcher.rules.models import Rule

FOUND = "found"


def offending(spec: ValuesSpec) -> Filter:
    """The documents the list makes offending: a denied value, or one not allowed (with ``missing:
    alert``, also no value at all)."""
    listed = In(spec.field, spec.listed.values)
    if spec.deny is not None:
        return listed
    if spec.missing == "alert":
        return Not(listed)
    return And((Exists(spec.field), Not(listed)))


def queries(rule: Rule, at: datetime) -> list[Query]:
    assert rule.values is not None
    where = And((rule.where, offending(rule.values)))
    aggregates: dict[str, Aggregate] = {COUNT: Count(), FOUND: Timeline((rule.values.field,))}
    return [rule_query(rule, rule_window(rule, at), aggregates, where=where)]


def evaluate(
    rule: Rule,
    results: Sequence[QueryResult],
    at: datetime,
    known_groups: Sequence[Mapping[str, str]] = (),
) -> list[Finding]:
    spec = rule.values
    assert spec is not None
    if (errors := failed(rule, results, known_groups)) is not None:
        return errors
    (result,) = results
    verdict = f"denied {spec.field}" if spec.deny is not None else f"{spec.field} not allowed"
    findings = []
    for group, values in groups_with_known(result, known_groups):
        count = signal_count(values)
        if not count:
            reason = f"no document with a {verdict}"
            findings.append(Finding(rule.name, group, Status.OK, 0, 1, reason, {"events": 0}))
            continue
        found = values.get(FOUND)
        seen = found if isinstance(found, tuple) else ()
        named = listing(seen) if seen else "values past the listing limit"
        reason = f"{count} document{'s' if count != 1 else ''} with a {verdict}: {named}"
        lacking = count - sum(item.count for item in seen)
        if isinstance(found, tuple) and lacking > 0:
            reason += f"; {lacking} without {spec.field}"
        info = {"events": count, "values": details(seen, (spec.field,))}
        findings.append(Finding(rule.name, group, Status.ALERTING, count, 1, reason, info))
    return findings
