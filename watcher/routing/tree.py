"""The route tree: which receivers an incident's labels reach (Alertmanager's semantics).

A node matches when all its matchers match. Children are tried in order; the first matching
child wins unless it sets ``continue: true``, in which case later siblings are tried too. A
node none of whose children match handles the alert itself. Settings (receiver, group_by,
timings) are inherited from the parent when a child leaves them unset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from watcher.config import Route

DEFAULT_GROUP_WAIT = timedelta(seconds=30)
DEFAULT_GROUP_INTERVAL = timedelta(minutes=5)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)


@dataclass(frozen=True)
class RouteMatch:
    """Where a set of labels goes, with the settings in force at the matching node."""

    receiver: str
    group_by: tuple[str, ...]
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    path: tuple[int, ...]  # child indexes from the root: identifies the route for grouping


def matches(route: Route, labels: Mapping[str, str]) -> bool:
    return all(labels.get(name) == value for name, value in route.match.items())


def resolve(root: Route, labels: Mapping[str, str]) -> list[RouteMatch]:
    """All receivers ``labels`` reach, in tree order (deduplicated by route)."""
    base = RouteMatch(
        receiver=root.receiver or "",
        group_by=tuple(root.group_by) if root.group_by is not None else ("rule",),
        group_wait=root.group_wait or DEFAULT_GROUP_WAIT,
        group_interval=root.group_interval or DEFAULT_GROUP_INTERVAL,
        repeat_interval=root.repeat_interval or DEFAULT_REPEAT_INTERVAL,
        path=(),
    )
    return _walk(root, labels, base)


def _walk(node: Route, labels: Mapping[str, str], inherited: RouteMatch) -> list[RouteMatch]:
    found: list[RouteMatch] = []
    for index, child in enumerate(node.routes):
        if not matches(child, labels):
            continue
        found += _walk(child, labels, _inherit(child, inherited, index))
        if not child.continue_:
            break
    return found or [inherited]


def _inherit(child: Route, parent: RouteMatch, index: int) -> RouteMatch:
    return RouteMatch(
        receiver=child.receiver or parent.receiver,
        group_by=tuple(child.group_by) if child.group_by is not None else parent.group_by,
        group_wait=child.group_wait or parent.group_wait,
        group_interval=child.group_interval or parent.group_interval,
        repeat_interval=child.repeat_interval or parent.repeat_interval,
        path=(*parent.path, index),
    )
