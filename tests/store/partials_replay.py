"""Replaying the shipped demo rules minute by minute through the real engine, with per-bucket
partials or re-reading every window, for the partials equivalence tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from watcher.engine import Engine
from watcher.incidents.state import StateStore
from watcher.routing.dispatch import Dispatcher
from watcher.rules.loader import load_config, load_rules
from watcher.rules.models import Rule
from watcher.store.base import LogStore

ROOT = Path(__file__).parents[2]


@dataclass(frozen=True)
class Replayed:
    """What a replay told: each transition (rule, group, event, at) with its value, and the ids of
    the notifications it sent."""

    events: list[tuple[str, str, str, datetime]]
    values: list[float | None]
    notifications: list[str]
    errors: int


def demo_rules() -> tuple[object, list[Rule]]:
    config = load_config(ROOT / "watcher.yaml")
    return config, list(load_rules([ROOT / "rules"], config).rules)


def replay(
    store: LogStore,
    workdir: Path,
    start: datetime,
    end: datetime,
    *,
    partials: bool,
    only: tuple[str, ...] = (),
    read_ahead: bool = False,
) -> Replayed:
    """The shipped rules (``only`` those named) replayed minute by minute over ``store``; with
    ``read_ahead``, as ``watcher backtest`` does (buckets read hours ahead of the clock)."""
    config, rules = demo_rules()
    rules = [rule for rule in rules if not only or rule.name in only]
    state = StateStore(workdir / f"state-{partials}-{read_ahead}.sqlite")
    dispatcher = Dispatcher.from_config(config, state)  # type: ignore[arg-type]
    engine = Engine(rules, {"demo": store}, state, config.route, dispatcher=dispatcher, partials=partials)  # type: ignore[attr-defined]
    if read_ahead:
        engine.read_ahead(end)
    events, values, notifications, errors = [], [], [], 0
    now = start
    while now <= end:
        report = engine.tick(now)
        errors += len(report.errors)
        for t in report.transitions:
            events.append((t.incident.rule, str(sorted(t.incident.group.items())), t.event.value, t.at))
            values.append(t.incident.value)
        notifications += [n.id for n in report.notifications]
        now += timedelta(minutes=1)
    state.close()
    return Replayed(events, values, notifications, errors)


def assert_same(got: Replayed, expected: Replayed, rel: float) -> None:
    assert got.errors == expected.errors == 0
    assert got.events == expected.events
    assert got.values == pytest.approx(expected.values, rel=rel)
    assert got.notifications == expected.notifications
