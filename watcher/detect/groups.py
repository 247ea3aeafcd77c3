"""Shared per-group plumbing for detectors that read one grouped query per rule."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from watcher.detect.base import Finding, Status
from watcher.query import AggValue, Group, QueryResult
from watcher.rules.models import Rule


def groups_with_known(
    result: QueryResult, known_groups: Sequence[Mapping[str, str]]
) -> Iterator[tuple[Mapping[str, str], Mapping[str, AggValue]]]:
    """Yield ``(group key, values)`` for every group in the result, then an empty group (no
    values: count 0) for each known group (an open incident's, or one seen within ``groups_from``)
    the result lacks.

    Why: a group that received no documents is absent from a store's answer, but it may still have
    an incident whose fate must be decided, or have just stopped (a flatline fires, ``min_events``
    keeps state).
    """
    seen: set[GroupKey] = set()
    for group in result.groups:
        seen.add(_key(group))
        yield group.key, group.values
    for key in known_groups:
        if group_key(key) not in seen:
            yield key, {}


GroupKey = tuple[tuple[str, str], ...]


def group_key(group: Mapping[str, str]) -> GroupKey:
    """A hashable, order-independent form of a group's labels."""
    return tuple(group.items()) if len(group) < 2 else tuple(sorted(group.items()))


def _key(group: Group) -> GroupKey:
    return group_key(group.key)


def values_by_group(result: QueryResult) -> dict[GroupKey, Mapping[str, AggValue]]:
    """A result's values looked up by group (a reference window's, to compare groups with)."""
    return {_key(group): group.values for group in result.groups}


def failed(
    rule: Rule, results: Sequence[QueryResult], known_groups: Sequence[Mapping[str, str]]
) -> list[Finding] | None:
    """ERROR findings when any query of an evaluation failed (see ``error_findings``), else None."""
    first = next((result for result in results if not result.ok), None)
    return None if first is None else error_findings(rule, known_groups, first.error or "")


def error_findings(rule: Rule, known_groups: Sequence[Mapping[str, str]], message: str) -> list[Finding]:
    """ERROR findings for a failed query: never a fire, a resolve or a flatline.

    Without grouping there is one group, always reported so the error is visible; with grouping
    the groups we know of (open incidents, recently seen groups) carry the error so none of them
    resolves.
    """
    groups = list(known_groups) if rule.group_by else [{}]
    return [Finding(rule.name, group, Status.ERROR, reason=f"store error: {message}") for group in groups]


Split = dict[GroupKey, tuple[Mapping[str, str], dict[str, Mapping[str, AggValue]]]]


def split_by(rule: Rule, result: QueryResult, key: str, known_groups: Sequence[Mapping[str, str]]) -> Split:
    """A result grouped by the rule's groups plus one more ``key`` (a time bucket, a canary's
    field) as, per rule group, its labels and its answers by that key's value. Known groups the
    result lacks have no answers; a rule without ``group_by`` always has its one group."""
    split: Split = {group_key(known): (known, {}) for known in known_groups}
    for group in result.groups:
        labels = {name: value for name, value in group.key.items() if name != key}
        split.setdefault(group_key(labels), (labels, {}))[1][group.key.get(key, "")] = group.values
    if not rule.group_by and not split:
        split[()] = ({}, {})
    return split
