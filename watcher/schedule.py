"""When rules run: evaluation times aligned to each rule's ``every``, with bounded catch-up.

Evaluation times are multiples of ``every`` since the Unix epoch, so ``run`` and ``backtest``
evaluate the same windows, and a restart knows exactly which windows it missed (those after
the rule's checkpoint), evaluating them oldest first up to a horizon.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from watcher.rules.models import Rule

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_CATCH_UP = timedelta(hours=1)
DEFAULT_BACKLOG_PER_TICK = 120
"""Evaluations of one rule per tick while it catches up: a long backlog spreads over ticks."""


def aligned(at: datetime, every: timedelta) -> datetime:
    """The latest evaluation time of an ``every`` grid at or before ``at``."""
    step = every.total_seconds()
    elapsed = (at - EPOCH).total_seconds()
    return EPOCH + timedelta(seconds=math.floor(elapsed / step + 1e-9) * step)


@dataclass(frozen=True)
class Due:
    """One evaluation of one rule at one (aligned) time."""

    rule: Rule
    at: datetime


def due(
    rules: Iterable[Rule],
    now: datetime,
    checkpoints: Mapping[str, datetime],
    catch_up: timedelta = DEFAULT_CATCH_UP,
    limit: int | None = None,
) -> list[Due]:
    """Evaluations due at ``now``, oldest first.

    A rule never evaluated before runs once, at its latest grid time. A rule with a checkpoint
    runs at every grid time after it up to ``now`` -- but not further back than ``catch_up``,
    so a long outage does not stall the daemon on hours of history. With ``limit``, a rule runs
    at most its ``limit`` oldest due times; the rest are due at the next call.
    """
    plan: list[Due] = []
    grids: dict[timedelta, tuple[datetime, datetime]] = {}  # per interval: latest, catch-up start
    for rule in rules:
        if not rule.enabled:
            continue
        if (grid := grids.get(rule.every)) is None:
            grid = grids[rule.every] = (
                aligned(now, rule.every),
                aligned(now - catch_up, rule.every) + rule.every,
            )
        latest, horizon = grid
        last = checkpoints.get(rule.name)
        if last is None:
            plan.append(Due(rule, latest))
            continue
        first = max(last + rule.every, horizon)
        at = aligned(first, rule.every)
        if at < first:
            at += rule.every
        count = 0
        while at <= latest and (limit is None or count < limit):
            plan.append(Due(rule, at))
            at += rule.every
            count += 1
    plan.sort(key=lambda item: (item.at, item.rule.name))
    return plan


def tick_interval(rules: Sequence[Rule]) -> timedelta:
    """How often the scheduler must wake so that every rule's grid time is hit: the greatest
    common divisor of the rules' intervals (at least one second)."""
    seconds = 0
    for rule in rules:
        seconds = math.gcd(seconds, max(1, int(rule.every.total_seconds())))
    return timedelta(seconds=seconds or 60)
