"""The bounded series of recent values the state machine keeps on an incident for charts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from watcher.detect.base import Finding, Status
from watcher.incidents.machine import step
from watcher.incidents.series import HORIZON, MAX_SAMPLES, recorded, samples
from watcher.rules.models import Rule

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
RULE = Rule.model_validate({"name": "r", "source": "s", "threshold": {"above": 0.05}, "for": "2m"})


def finding(value: float | None, status: Status = Status.ALERTING) -> Finding:
    return Finding("r", {}, status, value=value, threshold=0.05, details={"count": 100})


def test_each_evaluation_of_an_open_incident_adds_a_sample() -> None:
    incident = None
    for minute, (value, status) in enumerate(
        [(0.1, Status.ALERTING), (0.2, Status.ALERTING), (None, Status.NO_DATA), (0.3, Status.ALERTING),
         (0.01, Status.OK)]
    ):  # fmt: skip
        incident, _ = step(incident, finding(value, status), RULE, T0 + minute * MIN, None)
    assert incident is not None
    assert incident.state.value == "resolved"
    assert samples(incident.details) == [
        (T0, 0.1),
        (T0 + MIN, 0.2),
        (T0 + 3 * MIN, 0.3),
        (T0 + 4 * MIN, 0.01),
    ]
    assert incident.details["count"] == 100  # the detector's details are kept beside it


def test_a_new_episode_keeps_the_recent_series() -> None:
    incident, _ = step(None, finding(0.1), RULE, T0, None)
    incident, _ = step(incident, finding(0.1), RULE, T0 + 2 * MIN, None)
    incident, _ = step(incident, finding(0.01, Status.OK), RULE, T0 + 3 * MIN, None)
    again, _ = step(incident, finding(0.2), RULE, T0 + 10 * MIN, None)
    assert again is not None
    assert [value for _, value in samples(again.details)] == [0.1, 0.1, 0.01, 0.2]


def test_the_series_is_bounded_in_count_and_age() -> None:
    details: dict[str, object] = {}
    for minute in range(MAX_SAMPLES + 30):
        details = recorded({}, details, float(minute), T0 + minute * MIN)
    kept = samples(details)
    assert len(kept) == MAX_SAMPLES
    assert kept[-1] == (T0 + (MAX_SAMPLES + 29) * MIN, float(MAX_SAMPLES + 29))
    old = recorded({}, details, 1.0, T0 + HORIZON + (MAX_SAMPLES + 40) * MIN)
    assert samples(old) == [(T0 + HORIZON + (MAX_SAMPLES + 40) * MIN, 1.0)]


def test_a_repeated_evaluation_time_replaces_the_later_samples() -> None:
    details = recorded({}, None, 1.0, T0)
    details = recorded({}, details, 2.0, T0 + MIN)
    details = recorded({}, details, 3.0, T0 + MIN)  # the same evaluation again after a crash
    assert samples(details) == [(T0, 1.0), (T0 + MIN, 3.0)]


def test_nan_and_none_add_nothing_and_malformed_entries_are_skipped() -> None:
    details = recorded({}, {"series": [["not a time", 1], [T0.isoformat(), "x"], [T0.isoformat(), 1.5]]},
                       float("nan"), T0 + MIN)  # fmt: skip
    assert samples(details) == [(T0, 1.5)]
    assert samples(recorded({}, details, None, T0 + 2 * MIN)) == [(T0, 1.5)]


def test_a_series_not_as_recorded_writes_it_is_read_sample_by_sample_and_written_afresh() -> None:
    written_elsewhere = [
        ["2026-01-05T09:02:00Z", 2],  # "Z", an int
        [T0.isoformat(), 1.0],
        [(T0 + MIN).isoformat(), 1.5],
        [(T0 + MIN).isoformat(), 1.5],  # twice
    ]
    details = recorded({}, {"series": written_elsewhere}, 3.0, T0 + 3 * MIN)
    assert details["series"] == [
        [T0.isoformat(), 1.0],
        [(T0 + MIN).isoformat(), 1.5],
        [(T0 + MIN).isoformat(), 1.5],
        [(T0 + 2 * MIN).isoformat(), 2.0],
        [(T0 + 3 * MIN).isoformat(), 3.0],
    ]
    again = recorded({}, details, 4.0, T0 + 2 * MIN)  # a replayed time replaces the later samples
    assert again["series"] == [*details["series"][:3], [(T0 + 2 * MIN).isoformat(), 4.0]]


def test_a_series_changed_after_it_was_written_is_checked_again() -> None:
    """``recorded`` knows the series it wrote by identity (the next step gets that very list back
    from the state store); a list changed since is read sample by sample, as any other."""
    details = recorded({}, None, 1.0, T0)
    details = recorded({}, details, 2.0, T0 + MIN)
    series = details["series"]
    series.append([(T0 + MIN).isoformat(), 5.0])  # the same time twice: not as recorded writes it
    again = recorded({}, details, 3.0, T0 + 2 * MIN)
    assert again["series"] == [
        [T0.isoformat(), 1.0],
        [(T0 + MIN).isoformat(), 2.0],
        [(T0 + MIN).isoformat(), 5.0],
        [(T0 + 2 * MIN).isoformat(), 3.0],
    ]
    other = recorded({}, recorded({}, None, 1.0, T0), 2.0, T0 + MIN)
    other["series"][-1] = ["not a time", 2.0]  # the same length, another last entry
    written = recorded({}, other, 4.0, T0 + 3 * MIN)["series"]
    assert written == [[T0.isoformat(), 1.0], [(T0 + 3 * MIN).isoformat(), 4.0]]


def test_a_series_written_here_is_read_back_as_written() -> None:
    details: dict[str, object] = {}
    for minute in range(MAX_SAMPLES + 5):
        details = recorded({}, details, float(minute), T0 + minute * MIN)
    replayed = recorded({}, details, 9.0, T0 + (MAX_SAMPLES + 2) * MIN)  # a replay drops the later two
    kept = samples(replayed)
    assert kept[-3:] == [(T0 + MAX_SAMPLES * MIN, float(MAX_SAMPLES)),
                         (T0 + (MAX_SAMPLES + 1) * MIN, float(MAX_SAMPLES + 1)),
                         (T0 + (MAX_SAMPLES + 2) * MIN, 9.0)]  # fmt: skip
    assert kept[0] == (T0 + 5 * MIN, 5.0)
