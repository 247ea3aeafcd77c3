from datetime import UTC, datetime, timedelta

from watcher.rules.models import Rule
from watcher.schedule import aligned, due, tick_interval


def rule(name: str = "r", every: str = "1m") -> Rule:
    return Rule.model_validate({"name": name, "source": "s", "every": every, "threshold": {"above": 1}})


T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def test_evaluation_times_are_aligned_to_the_rule_interval() -> None:
    assert aligned(T0 + timedelta(seconds=59), timedelta(minutes=1)) == T0
    assert aligned(T0 + timedelta(minutes=7), timedelta(minutes=5)) == T0 + timedelta(minutes=5)


def test_a_new_rule_runs_once_at_its_latest_grid_time() -> None:
    plan = due([rule()], T0 + timedelta(seconds=30), {})
    assert [(d.rule.name, d.at) for d in plan] == [("r", T0)]


def test_a_rule_already_evaluated_at_this_grid_time_is_not_due() -> None:
    assert due([rule()], T0 + timedelta(seconds=30), {"r": T0}) == []


def test_missed_windows_after_downtime_are_caught_up_oldest_first() -> None:
    plan = due([rule()], T0 + timedelta(minutes=3, seconds=5), {"r": T0})
    assert [d.at for d in plan] == [T0 + timedelta(minutes=m) for m in (1, 2, 3)]


def test_catch_up_is_bounded_by_the_horizon() -> None:
    plan = due([rule()], T0 + timedelta(hours=5), {"r": T0}, catch_up=timedelta(minutes=10))
    assert len(plan) == 10
    assert plan[-1].at == T0 + timedelta(hours=5)


def test_disabled_rules_never_run() -> None:
    disabled = Rule.model_validate({"name": "d", "source": "s", "enabled": False, "threshold": {"above": 1}})
    assert due([disabled], T0, {}) == []


def test_tick_interval_hits_every_rule_grid() -> None:
    assert tick_interval([rule("a", "1m"), rule("b", "90s")]) == timedelta(seconds=30)
    assert tick_interval([rule("a", "5m")]) == timedelta(minutes=5)


def test_a_long_backlog_is_spread_over_ticks_oldest_first() -> None:
    now = T0 + timedelta(minutes=30)
    first = due([rule()], now, {"r": T0}, limit=12)
    assert [d.at for d in first] == [T0 + timedelta(minutes=m) for m in range(1, 13)]
    second = due([rule()], now, {"r": first[-1].at}, limit=12)
    assert second[0].at == T0 + timedelta(minutes=13)
