"""A rule's on_nodata / on_error: each value, on the pure state machine; the visible states nodata
and error in the state file (a migration) and in ``watcher incidents``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.incidents.test_state_machine import ALERTING, OK, T0, finding, make_rule, run
from watcher.detect.base import Status
from watcher.incidents.machine import step
from watcher.incidents.model import Event, State
from watcher.incidents.schema import MIGRATIONS
from watcher.incidents.state import StateStore

NO_DATA = Status.NO_DATA
ERROR = Status.ERROR


def no_data() -> object:
    return finding(NO_DATA, None, "12 < min_events 200")


def test_keep_is_the_default_a_firing_incident_stays_firing_through_no_data_and_errors() -> None:
    rule = make_rule()
    trace = run(
        rule, (0, finding(ALERTING)), (1, finding(NO_DATA, None)), (2, finding(ERROR, None, "refused"))
    )
    assert trace == [(State.FIRING, [Event.FIRING]), (State.FIRING, []), (State.FIRING, [])]
    assert (rule.on_nodata, rule.on_error) == ("keep", "keep")


@pytest.mark.parametrize(("status", "field"), [(NO_DATA, "on_nodata"), (ERROR, "on_error")])
def test_ok_resolves_a_firing_incident(status: Status, field: str) -> None:
    trace = run(make_rule(**{field: "ok"}), (0, finding(ALERTING)), (1, finding(status, None, "why")))
    assert trace == [(State.FIRING, [Event.FIRING]), (State.RESOLVED, [Event.RESOLVED])]


@pytest.mark.parametrize(("status", "field"), [(NO_DATA, "on_nodata"), (ERROR, "on_error")])
def test_alerting_fires_after_for_like_an_alerting_finding(status: Status, field: str) -> None:
    rule = make_rule(**{field: "alerting", "for": "1m"})
    trace = run(rule, (0, finding(status, None)), (1, finding(status, None)))
    assert trace == [(State.PENDING, []), (State.FIRING, [Event.FIRING])]


@pytest.mark.parametrize(
    ("status", "field", "value", "state"),
    [(NO_DATA, "on_nodata", "nodata", State.NODATA), (ERROR, "on_error", "error", State.ERROR)],
)
def test_nodata_and_error_are_states_of_their_own_told_like_a_firing(
    status: Status, field: str, value: str, state: State
) -> None:
    rule = make_rule(**{field: value, "for": "1m"})
    trace = run(
        rule,
        (0, finding(status, None, "why")),
        (1, finding(status, None, "why")),  # held for `for`: told
        (2, finding(ALERTING)),  # the same episode, firing now: an update
        (3, finding(status, None, "why")),
        (4, finding(OK, 0.01)),
    )
    assert trace == [
        (State.PENDING, []),
        (state, [Event.FIRING]),
        (State.FIRING, [Event.UPDATE]),
        (state, [Event.UPDATE]),
        (State.RESOLVED, [Event.RESOLVED]),
    ]


def test_the_note_says_what_the_missing_measurement_was_taken_as() -> None:
    incident, _ = step(
        None, finding(NO_DATA, None, "12 < min_events 200"), make_rule(on_nodata="nodata"), T0, None
    )
    assert incident is not None
    assert incident.note == "not enough data (on_nodata: nodata): 12 < min_events 200"


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="on_error"):
        make_rule(on_error="nodata")


def test_a_state_file_of_version_3_takes_nodata_and_error_incidents(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with sqlite3.connect(path) as db:
        for statements in MIGRATIONS[:3]:
            for statement in statements:
                db.execute(statement)
        db.execute("INSERT INTO incidents VALUES ('f', 'r', 'firing', '{}')")
        db.execute("PRAGMA user_version = 3")
    incident, _ = step(None, finding(NO_DATA, None), make_rule(on_nodata="nodata"), T0, None)
    assert incident is not None

    with StateStore(path) as state:
        state.commit([incident])
        assert [i.state for i in state.incidents(states=(State.NODATA,))] == [State.NODATA]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT state FROM incidents WHERE fingerprint = 'f'").fetchone() == ("firing",)
