"""How values are stored in the state file: times as integer microseconds since the Unix epoch
(UTC), so they sort and compare in SQL; records as compact JSON. Naive datetimes are refused."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from watcher.incidents.model import Event, Incident, json_default
from watcher.notify.base import Notification

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def micros(at: datetime) -> int:
    """``at`` as microseconds since the epoch; ``ValueError`` for a naive datetime."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()}: watcher stores timezone-aware UTC times")
    return (at - _EPOCH) // _MICRO


def from_micros(value: int) -> datetime:
    return _EPOCH + value * _MICRO


def span_micros(span: timedelta) -> int:
    return span // _MICRO


def dumps(data: Mapping[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), default=json_default)


def notification_to_json(notification: Notification) -> dict[str, Any]:
    """A JSON-ready dict of a notification (the outbox row's payload)."""
    return {
        "id": notification.id,
        "receiver": notification.receiver,
        "event": notification.event.value,
        "incidents": [incident.to_json() for incident in notification.incidents],
        "created_at": notification.created_at.isoformat(),
        "thread_key": notification.thread_key,
        "thread_ref": None if notification.thread_ref is None else dict(notification.thread_ref),
        "group_labels": dict(notification.group_labels),
        "part": notification.part,
    }


def notification_text(notification: Notification) -> str:
    """``notification_to_json`` as the outbox stores it (compact JSON, the same text), with each
    incident the text its snapshot encoded once (``Incident.encoded``): the snapshots of a
    notification are those the tick writes as rows and group members."""
    event = notification.event.value
    head = dumps({"id": notification.id, "receiver": notification.receiver, "event": event})
    tail = dumps(
        {
            "created_at": notification.created_at.isoformat(),
            "thread_key": notification.thread_key,
            "thread_ref": None if notification.thread_ref is None else dict(notification.thread_ref),
            "group_labels": dict(notification.group_labels),
            "part": notification.part,
        }
    )
    incidents = ",".join(incident.encoded() for incident in notification.incidents)
    return f'{head[:-1]},"incidents":[{incidents}],{tail[1:]}'


def notification_from_json(data: Mapping[str, Any]) -> Notification:
    """The inverse of ``notification_to_json``."""
    return Notification(
        id=data["id"],
        receiver=data["receiver"],
        event=Event(data["event"]),
        incidents=tuple(Incident.from_json(incident) for incident in data["incidents"]),
        created_at=datetime.fromisoformat(data["created_at"]),
        thread_key=data["thread_key"],
        thread_ref=data.get("thread_ref"),
        group_labels=dict(data.get("group_labels") or {}),
        part=data.get("part", "message"),
    )
