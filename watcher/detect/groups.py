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
    values: count 0) for each known group (one with an open incident) the result lacks.

    Why: a group that received no documents is absent from a store's answer, but it still has
    an incident whose fate must be decided (a flatline fires, ``min_events`` keeps state).
    """
    seen: set[tuple[tuple[str, str], ...]] = set()
    for group in result.groups:
        seen.add(_key(group))
        yield group.key, group.values
    for key in known_groups:
        if tuple(sorted(key.items())) not in seen:
            yield key, {}


def _key(group: Group) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(group.key.items()))


def error_findings(rule: Rule, known_groups: Sequence[Mapping[str, str]], message: str) -> list[Finding]:
    """ERROR findings for a failed query: never a fire, a resolve or a flatline.

    Without grouping there is one group, always reported so the error is visible; with grouping
    the groups we know of (open incidents) carry the error so none of them resolves.
    """
    groups = list(known_groups) if rule.group_by else [{}]
    return [Finding(rule.name, group, Status.ERROR, reason=f"store error: {message}") for group in groups]
