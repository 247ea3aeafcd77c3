"""The notification and the one interface every channel implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from watcher.incidents.model import Event, Incident
from watcher.notify.pacing import Pace


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
    # Which step of a send this row is: the message itself, or a follow-up a notifier asked for
    # once the message was delivered (Slack's chart upload: ``CHARTS``). Each step is its own
    # outbox row, so a crash in a later step never sends an earlier one again.
    part: str = "message"


MESSAGE = "message"
CHARTS = "charts"


@dataclass(frozen=True)
class Delivery:
    """The outcome of one send attempt."""

    ok: bool
    error: str = ""
    retry_after: float | None = None  # seconds the service asked us to wait (429 / 503 Retry-After)
    permanent: bool = False  # retrying cannot help (bad token, channel not found)
    ref: Mapping[str, Any] | None = None  # e.g. Slack's {"channel", "ts"} to thread later messages
    # No answer came back (a timeout after the request went out): the service may have it. The
    # next attempt is then in doubt and asks the channel first (``Reconciler``).
    maybe_sent: bool = False
    # Further steps of this send, enqueued in the transaction that records this one as delivered.
    followups: tuple[Notification, ...] = ()


class Notifier(Protocol):
    """Talks to one service. Retries, pacing and dedup live in the outbox, not here."""

    def send(self, notification: Notification) -> Delivery: ...


@runtime_checkable
class Paced(Protocol):
    """A notifier whose service limits how fast it takes messages (``watcher.notify.pacing``)."""

    def pace(self, notification: Notification) -> tuple[str, Pace] | None:
        """The pace key (e.g. the Slack channel) and its pace for this notification, or None."""
        ...


@runtime_checkable
class Reconciler(Protocol):
    """A notifier whose service can be asked whether it already has a notification.

    The outbox calls ``find`` before sending a notification whose earlier attempt is in doubt (it
    started at ``since`` and its outcome was never recorded: the process died, or no answer came
    back). It returns a successful ``Delivery`` (with the ``ref`` the send would have returned)
    when the service has it, None when it does not, and a failed ``Delivery`` when the service
    could not be asked: then nothing is sent and the lookup is tried again later, because sending
    blind is exactly the duplicate this avoids."""

    def find(self, notification: Notification, since: datetime) -> Delivery | None: ...
