"""Reference windows on a real embedded store and state file (issue 13, problem 2): a window that
held an incident of the rule and group, a configured store gap or the time before the first log
line is left out; several windows combined by their median shrug off one abnormal day."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from watcher.config import Gap, Route
from watcher.detect.base import Status
from watcher.engine import Engine
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.state import StateStore
from watcher.rules.models import Rule
from watcher.store.embedded import EmbeddedStore

DAY = timedelta(days=1)
TODAY = datetime(2026, 1, 8, tzinfo=UTC)
TEN = timedelta(minutes=10)
ROUTE = Route(receiver="console")


def spike_rule(**spike: Any) -> Rule:
    """Requests per 10 minutes against earlier windows: a 2x rise or fall alerts."""
    fields: dict[str, Any] = {
        "name": "traffic",
        "source": "app",
        "every": "10m",
        "window": "10m",
        "delay": "0s",
        "spike": {"direction": "both", "factor": 2, "min_volume": 20} | spike,
    }
    return Rule.model_validate(fields)


def renamed(rule: Rule) -> Rule:
    """The same rule under another name: evaluated afresh in the same state."""
    return rule.model_copy(update={"name": f"{rule.name}-again"})


def traffic(store: EmbeddedStore, start: datetime, end: datetime, per_minute: int) -> None:
    """``per_minute`` requests a minute in ``[start, end)``."""
    step = timedelta(minutes=1) / per_minute
    count = int((end - start) / step)
    store.ingest_lines([json.dumps({"@timestamp": (start + i * step).isoformat()}) for i in range(count)])


def daily(store: EmbeddedStore, days: range, per_minute: int = 5) -> None:
    """Normal traffic from 09:00 to 12:00 on each of ``days`` (0: today, -1: yesterday)."""
    for day in days:
        morning = TODAY + day * DAY + timedelta(hours=9)
        traffic(store, morning, morning + timedelta(hours=3), per_minute)


def run(engine: Engine, start: datetime, end: datetime) -> list[tuple[Event, datetime]]:
    """Tick every 10 minutes over ``[start, end]``; the incident events, in order."""
    events, now = [], start
    while now <= end:
        events += [(transition.event, transition.at) for transition in engine.tick(now).transitions]
        now += TEN
    return events


def test_an_incident_yesterday_does_not_fire_again_today(store: EmbeddedStore, state: StateStore) -> None:
    daily(store, range(-2, 1))
    burst = TODAY - DAY + timedelta(hours=10)
    traffic(store, burst, burst + 2 * TEN, 45)  # 50 a minute instead of 5 from 10:00 to 10:20
    engine = Engine([spike_rule(offset="1d")], {"app": store}, state, ROUTE)

    yesterday = run(engine, TODAY - DAY + timedelta(hours=9, minutes=30), TODAY - DAY + timedelta(hours=11))
    today = run(engine, TODAY + timedelta(hours=9, minutes=30), TODAY + timedelta(hours=11))

    assert yesterday == [(Event.FIRING, burst + TEN), (Event.RESOLVED, burst + 3 * TEN)]
    # Compared with yesterday's burst, today's normal 10:00-10:20 was a 10x "drop": it fired again.
    assert today == []


def test_one_abnormal_day_of_seven_does_not_move_the_median(store: EmbeddedStore, state: StateStore) -> None:
    daily(store, range(-7, 1))
    odd = TODAY - 6 * DAY + timedelta(hours=10)
    traffic(store, odd, odd + TEN, 95)  # 100 a minute for one window, six days ago; no incident then
    at = TODAY + timedelta(hours=10, minutes=10)
    # on_nodata: alerting, so that "not enough data" could not pass for a verdict here
    robust = spike_rule(reference={"offset": "1d", "count": 7}).model_copy(update={"on_nodata": "alerting"})
    median = Engine([robust], {"app": store}, state, ROUTE)

    assert median.tick(at).transitions == []
    mean = renamed(spike_rule(reference={"offset": "1d", "count": 7, "combine": "mean"}))
    (fired,) = Engine([mean], {"app": store}, state, ROUTE).tick(at).transitions
    # The mean of six days at 50 and one at 1,000 is 186: today's 50 reads as a drop to 0.27x.
    assert fired.event is Event.FIRING
    assert fired.incident.value == 50
    assert round(fired.incident.details["reference"]) == 186
    assert fired.incident.details["reference_windows"] == 7


def test_with_every_reference_window_left_out_it_is_not_enough_data_and_says_why(
    store: EmbeddedStore, state: StateStore
) -> None:
    daily(store, range(-1, 1))  # the store begins yesterday: two days back is before its first line
    rule = spike_rule(reference={"offset": "1d", "count": 2}).model_copy(
        update={"on_nodata": "nodata", "for_": timedelta(0)}
    )
    raised = TODAY - DAY + timedelta(hours=10)
    state.commit([_incident(rule, raised, resolved=raised + 2 * TEN)])
    engine = Engine([rule], {"app": store}, state, ROUTE)

    report = engine.tick(TODAY + timedelta(hours=10, minutes=10))

    reason = (
        "not enough reference data: reference windows excluded: 1 in the incident from 2026-01-07 10:00 "
        "to 10:20 UTC, 1 before the first log line (2026-01-07 09:00 UTC)"
    )
    (evaluation,) = report.evaluated  # what the backtest's summary and nodata lines print
    assert [(f.status, f.reason) for f in evaluation.findings] == [(Status.NO_DATA, reason)]
    (told,) = report.transitions
    assert told.event is Event.FIRING
    assert told.incident.state is State.NODATA
    assert told.incident.note.endswith(reason)


def test_a_reference_window_in_a_store_gap_is_left_out(store: EmbeddedStore, state: StateStore) -> None:
    daily(store, range(-2, -1))
    daily(store, range(0, 1))
    lost = TODAY - DAY + timedelta(hours=10)  # yesterday 10:00-10:20 lost most lines: 1 a minute arrived
    traffic(store, lost - timedelta(hours=1), lost, 5)
    traffic(store, lost, lost + 2 * TEN, 1)
    traffic(store, lost + 2 * TEN, lost + timedelta(hours=2), 5)
    gap = Gap.model_validate({"from": lost, "to": lost + 2 * TEN, "reason": "log shipper down"})
    rule = spike_rule(reference={"offset": "1d", "count": 2}, factor=1.5, min_volume=5)
    at = TODAY + timedelta(hours=10, minutes=10)

    without = Engine([rule], {"app": store}, state, ROUTE).tick(at).transitions
    # Today's normal 50 is 1.67x the median of yesterday's lost 10 and the 50 of two days ago.
    assert [t.event for t in without] == [Event.FIRING]
    with_gap = Engine([renamed(rule)], {"app": store}, state, ROUTE, gaps={"app": [gap]})
    report = with_gap.tick(at)
    assert report.evaluations == 1
    assert report.transitions == []  # compared with two days ago only


def _incident(rule: Rule, started: datetime, resolved: datetime) -> Incident:
    """A resolved incident of ``rule`` as an earlier run recorded it."""
    return Incident(
        fingerprint=fingerprint(rule.name, {}),
        rule=rule.name,
        group={},
        labels={},
        annotations={},
        severity="warning",
        state=State.RESOLVED,
        value=50.0,
        threshold=10.0,
        started_at=started,
        fired_at=started,
        resolved_at=resolved,
        last_alerting_at=resolved - TEN,
    )


def test_a_flatline_over_a_configured_gap_is_not_enough_data(store: EmbeddedStore, state: StateStore) -> None:
    lost = TODAY + timedelta(hours=10)  # the lines from 10:00 to 10:10 were lost
    traffic(store, lost - timedelta(hours=1), lost, 5)
    traffic(store, lost + TEN, lost + timedelta(hours=1), 5)
    gap = Gap.model_validate({"from": lost, "to": lost + TEN, "reason": "log shipper down"})
    flatline = Rule.model_validate(
        {
            "name": "quiet",
            "source": "app",
            "every": "10m",
            "window": "10m",
            "delay": "0s",
            "flatline": {"below": 1},
        }
    )

    assert [
        t.event for t in Engine([flatline], {"app": store}, state, ROUTE).tick(lost + TEN).transitions
    ] == [Event.FIRING]
    with_gap = Engine([renamed(flatline)], {"app": store}, state, ROUTE, gaps={"app": [gap]})
    report = with_gap.tick(lost + TEN)
    assert report.evaluations == 1
    assert report.transitions == []
