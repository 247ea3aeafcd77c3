"""The default templates tell nodata, error and flapping apart from an ordinary firing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.test_templates import NOW, incident, notification, rule
from watcher.incidents.model import Event, State
from watcher.templates import Templates

NOTE = "not enough data (on_nodata: nodata): 12 < min_events 200"
FLAPPING = "flapping: 4 status changes in the last 20 evaluations"


@pytest.mark.parametrize(
    ("state", "note", "word"), [(State.NODATA, NOTE, "NO DATA"), (State.ERROR, "store error", "STORE ERROR")]
)
def test_nodata_and_error_have_their_own_words_and_say_why(state: State, note: str, word: str) -> None:
    templates = Templates(rules=[rule()])
    told = notification(Event.FIRING, incident(state=state, value=None, note=note))

    assert templates.render(told, "console").startswith(f"{word} critical prediction-5xx")
    assert f"[{note}]" in templates.render(told, "console")
    assert templates.render(told, "slack").startswith(f":red_circle: *{word}: ")
    assert templates.render(told, "sms").startswith(f"{word} prediction-5xx: ")


def test_flapping_start_and_end_are_told_as_such() -> None:
    templates = Templates(rules=[rule()])
    started = notification(Event.FIRING, incident(flapping=True, note=FLAPPING))
    ended = incident(state=State.RESOLVED, resolved_at=NOW - timedelta(minutes=2), flap_ended=True)

    assert templates.render(started, "console").startswith("FLAPPING critical prediction-5xx")
    assert f"_{FLAPPING}_" in templates.render(started, "slack")
    assert templates.render(notification(Event.RESOLVED, ended), "console").startswith(
        "RESOLVED (flapping ended) critical prediction-5xx"
    )
    updated = notification(Event.UPDATE, incident(flap_ended=True))
    assert templates.render(updated, "console").startswith("FLAPPING ENDED, STILL FIRING critical")
