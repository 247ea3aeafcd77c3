"""An episode found after the fact (fired and resolved before it could be told) says so on every
channel, with when it fired and resolved; an ordinary RESOLVED does not."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tests.notify.samples import notification, resolved
from watcher.incidents.model import Event, Incident
from watcher.notify.webhook import payload
from watcher.templates import Templates

SCHEMA = json.loads((Path(__file__).parents[1] / "docs" / "webhook.schema.json").read_text())
CHANNELS = ("console", "slack", "email", "email_subject", "email_html", "sms")
FIRED, ENDED = "2024-05-01 11:48:00 UTC", "2024-05-01 11:58:00 UTC"  # the sample's fired_at, resolved_at


def told(*incidents: Incident, channel: str) -> str:
    return Templates().render(notification(Event.RESOLVED, *incidents), channel)


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_found_late_episode_says_so_with_its_times(channel: str) -> None:
    text = told(resolved(found_late=True), channel=channel)
    assert "found after the fact" in text.lower()
    if channel != "email_subject":  # one line: the mark, the times are in the body
        assert FIRED in text
        assert ENDED in text


@pytest.mark.parametrize("channel", CHANNELS)
def test_an_ordinary_resolved_does_not(channel: str) -> None:
    assert "found after the fact" not in told(resolved(), channel=channel).lower()


def test_each_incident_of_a_grouped_message_carries_its_own_mark() -> None:
    other = resolved(fingerprint="f2", group={"model_version": "v3"})
    lines = told(resolved(found_late=True), other, channel="console").strip().splitlines()
    assert ["found after the fact" in line for line in lines] == [True, False]


def test_the_webhook_payload_carries_a_boolean() -> None:
    both = notification(Event.RESOLVED, resolved(found_late=True), resolved(fingerprint="f2"))
    body = payload(both, Templates())
    jsonschema.validate(body, SCHEMA)
    assert [incident["found_late"] for incident in body["incidents"]] == [True, False]


def test_state_written_before_the_mark_still_loads() -> None:
    old = resolved().to_json()
    del old["found_late"]
    assert Incident.from_json(old).found_late is False
