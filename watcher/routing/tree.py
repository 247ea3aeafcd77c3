"""The route tree: which receivers an incident's labels reach (Alertmanager's semantics).

A node matches when all its matchers (``match`` and ``matchers``) match. Children are tried in
order; the first matching child wins unless it sets ``continue: true``, in which case later
siblings are tried too. A
node none of whose children match handles the alert itself. Settings (receiver, group_by,
timings) are inherited from the parent when a child leaves them unset; ``mute_time_intervals``
and ``active_time_intervals`` are not (they hold for the node that names them, as in
Alertmanager). ``group_by: ["..."]`` groups by every label, i.e. one incident per group.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from watcher.config import Route
from watcher.routing.matchers import matches_all

DEFAULT_GROUP_WAIT = timedelta(seconds=30)
DEFAULT_GROUP_INTERVAL = timedelta(minutes=5)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)
ALL_LABELS = "..."


@dataclass(frozen=True)
class RouteMatch:
    """Where a set of labels goes, with the settings in force at the matching node."""

    receiver: str
    group_by: tuple[str, ...]
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    path: tuple[int, ...]  # child indexes from the root: identifies the route for grouping
    # Names of time intervals of the matching node itself (not inherited, as in Alertmanager).
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels naming the aggregation group an incident with ``labels`` joins on this route
        (a ``group_by`` label the incident lacks is left out, as in Alertmanager)."""
        if ALL_LABELS in self.group_by:
            return dict(labels)
        return {name: labels[name] for name in self.group_by if name in labels}


def matches(route: Route, labels: Mapping[str, str]) -> bool:
    """``match`` (exact values; the label must be present) and ``matchers`` all hold."""
    return all(labels.get(name) == value for name, value in route.match.items()) and matches_all(
        route.matchers, labels
    )


def resolve(root: Route, labels: Mapping[str, str]) -> list[RouteMatch]:
    """All receivers ``labels`` reach, in tree order (deduplicated by route)."""
    base = RouteMatch(
        receiver=root.receiver or "",
        group_by=tuple(root.group_by) if root.group_by is not None else ("rule",),
        group_wait=_either(root.group_wait, DEFAULT_GROUP_WAIT),
        group_interval=_either(root.group_interval, DEFAULT_GROUP_INTERVAL),
        repeat_interval=_either(root.repeat_interval, DEFAULT_REPEAT_INTERVAL),
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
        group_wait=_either(child.group_wait, parent.group_wait),
        group_interval=_either(child.group_interval, parent.group_interval),
        repeat_interval=_either(child.repeat_interval, parent.repeat_interval),
        path=(*parent.path, index),
        mute_time_intervals=tuple(child.mute_time_intervals),
        active_time_intervals=tuple(child.active_time_intervals),
    )


def _either(value: timedelta | None, default: timedelta) -> timedelta:
    """``value`` unless unset; ``group_wait: 0s`` is a setting (send at once), not unset."""
    return default if value is None else value
