"""Time intervals: Alertmanager's syntax in watcher.yaml, routes muted or active by them, what a
muted route holds and later sends, and ``watcher routes test --at``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.routing.test_dispatch import ROUTE, Run, fired, resolved, summary
from watcher.cli import main
from watcher.config import Route, TimeInterval
from watcher.incidents.state import StateStore
from watcher.routing.dispatch import Dispatcher
from watcher.routing.intervals import holds

TESTDATA = Path(__file__).parent / "testdata"
MONDAY = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # 10:00 in Berlin
MIN = timedelta(minutes=1)


def interval(**fields: object) -> list[TimeInterval]:
    return [TimeInterval.model_validate(fields)]


def test_business_hours_are_read_in_their_location() -> None:
    office = interval(
        times=[{"start_time": "09:00", "end_time": "17:00"}],
        weekdays=["monday:friday"],
        location="Europe/Berlin",
    )

    assert holds(office, MONDAY)
    assert not holds(office, datetime(2026, 1, 5, 7, 30, tzinfo=UTC))  # 08:30 in Berlin
    assert holds(office, datetime(2026, 1, 5, 15, 59, tzinfo=UTC))  # 16:59 in Berlin
    assert not holds(office, datetime(2026, 1, 5, 16, 0, tzinfo=UTC))  # the end is excluded
    assert not holds(office, datetime(2026, 1, 10, 9, 0, tzinfo=UTC))  # a Saturday


def test_negative_days_count_from_the_end_of_each_month() -> None:
    month_end = interval(days_of_month=["-3:-1"], months=["january:march"], years=["2026"])

    assert holds(month_end, datetime(2026, 2, 26, 12, tzinfo=UTC))  # February has 28 days in 2026
    assert not holds(month_end, datetime(2026, 2, 25, 12, tzinfo=UTC))
    assert holds(month_end, datetime(2026, 3, 31, 12, tzinfo=UTC))
    assert not holds(month_end, datetime(2026, 4, 30, 12, tzinfo=UTC))  # not in january:march
    assert not holds(month_end, datetime(2027, 1, 31, 12, tzinfo=UTC))  # not in 2026


# --------------------------------------------------------------------------- the dispatcher

NIGHTS = {"nights": interval(times=[{"start_time": "00:00", "end_time": "08:00"}])}


def muted_pager(state: StateStore, field: str = "mute_time_intervals") -> Run:
    route = ROUTE.model_dump(by_alias=True)
    route["routes"][0][field] = ["nights"]
    return Run(state, Dispatcher(state, Route.model_validate(route), intervals=NIGHTS))


@pytest.fixture
def state(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state.sqlite")


def test_a_route_in_a_mute_interval_holds_its_firing_and_sends_it_when_the_interval_ends(
    state: StateStore,
) -> None:
    run = muted_pager(state)
    night = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)

    first = run.step(night + MIN, fired("v1", night, severity="critical"), fired("v2", night))
    held = [run.step(night + k * 5 * MIN) for k in range(1, 12)]  # until 07:55

    assert summary(first) == [("slack", "firing", ["v2"])]  # a route without the interval sends
    assert [n for sent in held for n in sent] == []
    assert summary(run.step(datetime(2026, 1, 5, 8, 0, 30, tzinfo=UTC))) == [("pager", "firing", ["v1"])]


def test_a_resolve_in_a_mute_interval_is_sent_after_it_when_the_firing_was_told(state: StateStore) -> None:
    run = muted_pager(state)
    evening = datetime(2026, 1, 4, 23, 50, tzinfo=UTC)
    told = run.step(evening + 30 * timedelta(seconds=1), fired("v1", evening, severity="critical"))
    told += run.step(evening + MIN)

    run.step(
        datetime(2026, 1, 5, 1, 0, tzinfo=UTC),
        resolved("v1", evening, datetime(2026, 1, 5, 1, 0, tzinfo=UTC), severity="critical"),
    )
    during = run.step(datetime(2026, 1, 5, 7, 59, tzinfo=UTC))
    after = run.step(datetime(2026, 1, 5, 8, 1, tzinfo=UTC))

    assert ("pager", "firing", ["v1"]) in summary(told)
    assert [n for n in during if n.receiver == "pager"] == []
    assert summary(after) == [("pager", "resolved", ["v1"])]


def test_an_incident_that_fires_and_resolves_inside_a_mute_interval_is_never_sent(state: StateStore) -> None:
    run = muted_pager(state)
    night = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
    run.step(night, fired("v1", night, severity="critical"))
    run.step(night + 10 * MIN, resolved("v1", night, night + 10 * MIN, severity="critical"))

    later = [run.step(night + k * 30 * MIN) for k in range(1, 16)]  # until 09:30

    assert [n for sent in later for n in sent if n.receiver == "pager"] == []


def test_an_active_interval_sends_only_inside_it(state: StateStore) -> None:
    run = muted_pager(state, "active_time_intervals")
    day = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    outside = run.step(day + MIN, fired("v1", day, severity="critical"))
    outside += [n for k in range(1, 36) for n in run.step(day + k * 25 * MIN)]  # until 23:35

    assert outside == []  # outside the active 00:00-08:00
    assert summary(run.step(datetime(2026, 1, 6, 0, 1, tzinfo=UTC))) == [("pager", "firing", ["v1"])]


# --------------------------------------------------------------------------- watcher routes test --at


def test_routes_test_at_a_time_says_which_receivers_are_muted(capsys: pytest.CaptureFixture[str]) -> None:
    config = str(TESTDATA / "intervals-good.yaml")

    saturday = main(
        ["routes", "test", "severity=critical", "--config", config, "--at", "2026-01-10T10:00:00Z"]
    )
    month_end = main(
        ["routes", "test", "severity=critical", "--config", config, "--at", "2026-01-30T10:00:00Z"]
    )
    office = main(["routes", "test", "severity=critical", "--config", config, "--at", "2026-01-14T10:00:00Z"])

    assert (saturday, month_end, office) == (0, 0, 0)
    assert capsys.readouterr().out.splitlines() == [
        "pager",
        "  pager: muted: outside active_time_intervals 'business-hours'",
        "pager",
        "  pager: muted: in mute_time_intervals 'month-end'",
        "pager",
        "  pager: sends at 2026-01-14T10:00:00+00:00",
    ]
