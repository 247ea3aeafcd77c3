"""The notification and the one interface every channel implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from watcher.incidents.model import Event, Incident


@dataclass(frozen=True)
class Notification:
    """One message to one receiver about a group of incidents (one incident until grouping).

    ``id`` is unique and stable: the outbox delivers at least once and the notifier or the
    outbox deduplicates on it. ``thread_key`` names the conversation (Slack thread) the message
    belongs to; ``thread_ref`` is what the channel returned for the first message of that thread.
    """

    id: str
    receiver: str
    event: Event
    incidents: tuple[Incident, ...]
    created_at: datetime
    thread_key: str
    thread_ref: Mapping[str, Any] | None = None
    group_labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """The outcome of one send attempt."""

    ok: bool
    error: str = ""
    retry_after: float | None = None  # seconds the service asked us to wait (429 / 503 Retry-After)
    permanent: bool = False  # retrying cannot help (bad token, channel not found)
    ref: Mapping[str, Any] | None = None  # e.g. Slack's {"channel", "ts"} to thread later messages


class Notifier(Protocol):
    """Talks to one service. Retries, pacing and dedup live in the outbox, not here."""

    def send(self, notification: Notification) -> Delivery: ...
