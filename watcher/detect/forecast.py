"""``forecast``: alert before the signal crosses a limit (a quota, a 429 share), not after.

One bucketed query per evaluation: the signal per rule ``window`` over ``history`` (a
``date_histogram`` in the search store, a ``GROUP BY`` of time buckets in DuckDB), never raw
documents. Per group the values are fitted (``linear``, or ``seasonal``: the mean shape of each
season plus a linear trend of the rest) and the fit is carried ``horizon`` ahead; the group alerts
when it crosses ``above`` (or falls to ``below``) in that time. A limit written as levels
(``above: {warning: 0.8, critical: 0.95}``) makes the finding's severity the most severe level the
fit reaches within ``horizon``, so an incident escalates as the forecast worsens and de-escalates as
it eases. The finding's ``value`` is the latest window's signal and its ``threshold`` the limit;
``details`` hold the predicted crossing time (``crossing_at``, ``crossing_in``), the slope per
hour and the forecast points the chart draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from watcher.detect.base import Finding, Status, rule_window
from watcher.detect.groups import failed, split_by
from watcher.detect.signal import describe, signal_aggregates, signal_value
from watcher.duration import format_duration
from watcher.query import BUCKET, Query, QueryResult, Window
from watcher.rules.models import Rule
from watcher.rules.thresholds import Severity, Side, severity_rank
from watcher.rules.trend_specs import ForecastSpec

HOUR = 3600.0
MAX_POINTS = 120
"""Forecast points kept in a finding's details for the chart (as many as the recorded series)."""


def _spec(rule: Rule) -> ForecastSpec:
    assert rule.forecast is not None, "forecast detector on a rule without 'forecast'"
    return rule.forecast


def queries(rule: Rule, at: datetime) -> list[Query]:
    """The signal per ``window`` over ``history`` up to the rule's window end: one bucketed query."""
    spec, end = _spec(rule), rule_window(rule, at).end
    return [
        Query(
            id=f"{rule.name}#history",
            window=Window(end - spec.history, end),
            aggregates=signal_aggregates(rule.signal),
            where=rule.where,
            group_by=rule.group_by,
            buckets=rule.window,
        )
    ]


@dataclass(frozen=True)
class Fit:
    """A fitted series: one value per future window (``points``, from the window after the last)."""

    slope: float  # signal units per window
    points: list[float]


def evaluate(
    rule: Rule,
    results: Sequence[QueryResult],
    at: datetime,
    known_groups: Sequence[Mapping[str, str]] = (),
) -> list[Finding]:
    spec = _spec(rule)
    if (errors := failed(rule, results, known_groups)) is not None:
        return errors
    end = rule_window(rule, at).end
    size = int(spec.history / rule.window)
    start_ms = int((end - spec.history).timestamp() * 1000)
    step_ms = int(rule.window / timedelta(milliseconds=1))
    findings = []
    for labels, buckets in split_by(rule, results[0], BUCKET, known_groups).values():
        values: list[float | None] = [None] * size
        for bucket, answer in buckets.items():
            index = (int(bucket) - start_ms) // step_ms
            if 0 <= index < size:
                values[index] = signal_value(rule.signal, answer)
        findings.append(_judge(rule, spec, labels, values, end))
    return findings


def _filled(rule: Rule, values: list[float | None]) -> list[float | None]:
    """An empty window counts 0 documents; other signals are undefined there."""
    if rule.signal.kind != "count":
        return values
    first = next((i for i, value in enumerate(values) if value is not None), len(values))
    return [None if i < first else (value or 0.0) for i, value in enumerate(values)]


def _judge(
    rule: Rule, spec: ForecastSpec, group: Mapping[str, str], raw: list[float | None], end: datetime
) -> Finding:
    values = _filled(rule, raw)
    known = [i for i, value in enumerate(values) if value is not None]
    needed = spec.min_points if spec.min_points is not None else max(3, len(values) // 2)
    if len(known) < needed:
        reason = (
            f"not enough data: {len(known)} of {len(values)} windows of {format_duration(rule.window)} "
            f"have a value (need {needed})"
        )
        return Finding(rule.name, group, Status.NO_DATA, reason=reason)
    if spec.season is not None:
        covered = (len(values) - known[0]) * rule.window
        if covered < 2 * spec.season:
            reason = (
                f"not enough data: seasonal needs two seasons ({format_duration(2 * spec.season)}) "
                f"of history, the data covers {format_duration(covered)}"
            )
            return Finding(rule.name, group, Status.NO_DATA, reason=reason)
    ahead = max(1, math.ceil(spec.horizon / rule.window))
    fit = _seasonal(values, int(spec.season / rule.window), ahead) if spec.season else _linear(values, ahead)
    current = values[known[-1]]
    assert current is not None
    return _verdict(rule, spec, group, current, fit, end)


def _linear(values: list[float | None], ahead: int) -> Fit:
    x, y = _known(values)
    slope, intercept = np.polyfit(x, y, 1)
    last = len(values) - 1
    return Fit(float(slope), [float(intercept + slope * (last + k)) for k in range(ahead + 1)])


def _seasonal(values: list[float | None], season: int, ahead: int) -> Fit:
    """Mean shape per phase of the season, and a linear trend of what is left after it."""
    x, y = _known(values)
    phases = x.astype(int) % season
    overall = float(y.mean())
    shape = np.zeros(season)
    for phase in range(season):
        held = y[phases == phase]
        shape[phase] = float(held.mean()) - overall if held.size else 0.0
    slope, intercept = np.polyfit(x, y - shape[phases], 1)
    last = len(values) - 1
    points = [float(intercept + slope * (last + k) + shape[(last + k) % season]) for k in range(ahead + 1)]
    return Fit(float(slope), points)


def _known(values: list[float | None]) -> tuple[np.ndarray[Any, np.dtype[np.float64]], ...]:
    pairs = [(float(i), value) for i, value in enumerate(values) if value is not None]
    return np.array([i for i, _ in pairs]), np.array([v for _, v in pairs])


_SIDES: tuple[tuple[Side, float], ...] = (("above", 1.0), ("below", -1.0))
Crossing = tuple[float, Severity, float, Side]
"""The most severe level the forecast reaches in time: (windows from now, level, its limit, side)."""


def _crossing(fit: Fit, spec: ForecastSpec, default: Severity, reach: float) -> Crossing | None:
    """The most severe level of either limit the fitted points reach within ``reach`` windows,
    each side's levels judged as a threshold's are (``LeveledBounds.levels``); of two sides at one
    level, the sooner."""
    found: list[Crossing] = []
    for side, sign in _SIDES:
        for level, limit in spec.levels(side, default):  # most severe first
            steps = _reaches(fit.points, limit, sign)
            if steps is not None and steps <= reach:
                found.append((steps, level, limit, side))
                break
    return max(found, key=lambda hit: (severity_rank(hit[1]), -hit[0]), default=None)


def _reaches(points: list[float], limit: float, sign: float) -> float | None:
    """Windows from now until ``points`` reach ``limit`` (from below with sign 1, from above with
    -1), interpolated; None if they never do."""
    previous = points[0]
    if sign * (previous - limit) >= 0:
        return 0.0
    for k, point in enumerate(points[1:], 1):
        if sign * (point - limit) >= 0:
            return k - 1 + (limit - previous) / (point - previous)
        previous = point
    return None


def _verdict(
    rule: Rule, spec: ForecastSpec, group: Mapping[str, str], current: float, fit: Fit, end: datetime
) -> Finding:
    name, per_hour = describe(rule.signal), fit.slope * HOUR / rule.window.total_seconds()
    horizon = format_duration(spec.horizon)
    every = math.ceil(
        len(fit.points) / MAX_POINTS
    )  # a long horizon is thinned: the incident's row stays small
    points = [[(end + k * rule.window).isoformat(), fit.points[k]] for k in range(0, len(fit.points), every)]
    details: dict[str, Any] = {
        "signal": name,
        "method": spec.method,
        "current": current,
        "slope_per_hour": per_hour,
        "horizon": horizon,
        "forecast": points,
    }
    crossing = _crossing(fit, spec, rule.severity, spec.horizon / rule.window)
    if crossing is not None:
        steps, level, limit, side = crossing
        when = end + steps * rule.window
        within = format_duration(timedelta(seconds=round((when - end).total_seconds() / 60) * 60))
        details |= {"crossing_at": when.isoformat(), "crossing_in": within, "limit": limit}
        leveled = f" ({level})" if isinstance(spec.written(side), dict) else ""
        reason = (
            f"{name} {current:g} is forecast ({spec.method}) to go {side} {limit:g}{leveled} at "
            f"{when:%Y-%m-%d %H:%M} UTC, in {within}"
        )
        return Finding(rule.name, group, Status.ALERTING, current, limit, reason, details, severity=level)
    limit = spec.alert_bound(rule.severity)
    reason = f"{name} {current:g} is not forecast to cross {limit:g} within {horizon} ({per_hour:+.2g}/h)"
    return Finding(rule.name, group, Status.OK, current, limit, reason, details)
