"""Flapping on the pure state machine: one notification when it starts, one when it settles,
nothing in between; per-rule settings and watcher.yaml's default."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.incidents.test_state_machine import ALERTING, MIN, OK, T0, finding, make_rule
from watcher.incidents.flapping import FlappingSpec
from watcher.incidents.machine import step
from watcher.incidents.model import Event, Incident, State
from watcher.rules.loader import ConfigError, load_config, load_rules
from watcher.rules.models import Rule

TESTDATA = Path(__file__).parent / "testdata"


def alternating(rule: Rule, minutes: int, then_ok: int) -> list[tuple[int, State | None, Event, Incident]]:
    """Alerting on even minutes, ok on odd ones, then ok: each event with its minute and snapshot."""
    incident: Incident | None = None
    told = []
    for minute in range(minutes + then_ok):
        seen = finding(
            ALERTING if minute < minutes and minute % 2 == 0 else OK, 0.2 if minute % 2 == 0 else 0.01
        )
        incident, events = step(incident, seen, rule, T0 + minute * MIN, None)
        told += [(minute, incident.state if incident else None, event, incident) for event in events]
        assert incident is not None
    return told


def test_a_signal_hovering_at_its_threshold_is_told_twice_start_and_end() -> None:
    told = alternating(make_rule(**{"for": "2m"}), minutes=12, then_ok=30)

    assert [(minute, state, event) for minute, state, event, _ in told] == [
        (3, State.FIRING, Event.FIRING),  # the 4th change: ok->alerting, ->ok, ->alerting, ->ok
        (30, State.RESOLVED, Event.RESOLVED),  # at most one change left in the last 20 evaluations
    ]
    started, ended = told[0][3], told[1][3]
    assert (started.flapping, started.note) == (True, "flapping: 4 status changes in the last 20 evaluations")
    assert (ended.flapping, ended.flap_ended) == (False, True)


def test_without_for_the_episodes_before_the_fourth_change_are_told_then_nothing_until_it_settles() -> None:
    told = alternating(make_rule(), minutes=12, then_ok=30)

    assert [(minute, event) for minute, _, event, _ in told] == [
        (0, Event.FIRING),
        (1, Event.RESOLVED),
        (2, Event.FIRING),
        (3, Event.UPDATE),  # would have resolved: flapping, it stays firing
        (30, Event.RESOLVED),
    ]


def test_flapping_that_settles_while_alerting_is_one_update_and_keeps_firing() -> None:
    rule = make_rule()
    incident: Incident | None = None
    told = []
    for minute in range(40):
        seen = finding(ALERTING if minute >= 8 or minute % 2 == 0 else OK)
        incident, events = step(incident, seen, rule, T0 + minute * MIN, None)
        told += [(minute, event) for event in events]
    assert incident is not None
    assert told[-1] == (27, Event.UPDATE)
    assert (incident.state, incident.flapping) == (State.FIRING, False)


def test_a_rule_can_set_its_own_numbers_or_turn_flapping_off() -> None:
    assert [e for _, _, e, _ in alternating(make_rule(flapping=False), minutes=12, then_ok=5)].count(
        Event.FIRING
    ) == 6
    told = alternating(make_rule(**{"for": "2m", "flapping": {"window": 10, "changes": 6}}), 12, 30)
    assert [(minute, event) for minute, _, event, _ in told] == [(5, Event.FIRING), (19, Event.RESOLVED)]


def test_watcher_yaml_sets_the_default_of_every_rule(tmp_path: Path) -> None:
    (tmp_path / "watcher.yaml").write_text("sources: {app: {store: embedded}}\nflapping: false\n")
    (tmp_path / "a.yaml").write_text("name: a\nsource: app\nthreshold: {above: 1}\n")
    (tmp_path / "b.yaml").write_text(
        "name: b\nsource: app\nthreshold: {above: 1}\nflapping: {window: 10, changes: 3}\n"
    )
    config = load_config(tmp_path / "watcher.yaml", environ={})
    rules = load_rules([tmp_path / "a.yaml", tmp_path / "b.yaml"], config).rules
    assert [(r.flapping.enabled, r.flapping.window, r.flapping.changes) for r in rules if r.flapping] == [
        (False, 20, 4),
        (True, 10, 3),
    ]
    assert make_rule().flapping == FlappingSpec(window=20, changes=4)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("rule.flapping-window.yaml", "5:20: 'flapping.window' must be >= 2, got 1"),
        ("rule.flapping-changes.yaml", "5:33: 'flapping.changes' must be an integer, got 'many'"),
        (
            "rule.on-nodata.yaml",
            "5:12: 'on_nodata' must be one of 'keep', 'ok', 'alerting' or 'nodata', got 'error'",
        ),
    ],
)
def test_each_rule_mistake_is_reported_at_its_position(
    monkeypatch: pytest.MonkeyPatch, name: str, expected: str
) -> None:
    monkeypatch.chdir(TESTDATA)
    assert [str(error) for error in load_rules([Path(name)]).errors] == [f"{name}:{expected}"]


def test_a_bad_default_in_watcher_yaml_is_reported_at_its_position(tmp_path: Path) -> None:
    (tmp_path / "watcher.yaml").write_text(
        "sources: {app: {store: embedded}}\nflapping: {window: 20, chnges: 4}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "watcher.yaml", environ={})
    assert str(caught.value).endswith("watcher.yaml:2:24: unknown key 'chnges' (did you mean 'changes'?)")
