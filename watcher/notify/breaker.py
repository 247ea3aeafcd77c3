"""A circuit breaker per receiver: stop hammering a service that is down or asks us to wait.

Closed, a receiver gets every due notification. ``Retry-After`` (429/503) opens it for exactly
that long: the service is alive and said when to come back. ``threshold`` other failures in a row
open it for ``cooldown``. When the time is up the circuit is half-open: exactly one notification is
let through as a probe. A success closes the circuit (and the outbox sends the receiver's queue at
once, in order); a failure opens it for another ``cooldown`` -- the same length every time, so a
service that comes back is found within one cooldown however long it was down (a cooldown that
doubled per opening left messages waiting minutes after the service was fine again).

While open, the outbox leaves the receiver's notifications pending without an attempt, so a long
outage or rate limit costs no retries and dead-letters nothing by attempt count (``max_age``
still applies).

The circuits live in the state (``receiver_circuits``), so every replica on a shared PostgreSQL
state sees them: one replica's 429 pauses the receiver for all of them until its Retry-After, a
receiver that failed ``threshold`` times in a row (at any replicas) is held back by all, and of all
replicas exactly one sends the half-open probe (a conditional write takes it; a probe whose replica
died is taken again after ``PROBE_LEASE``). A pause is only ever lengthened by another failure,
never cut short. A restarted daemon finds its circuits as they were. Each check is one read
of the state; only failures, probes and a first success after failures write. The thresholds
come from ``delivery.breaker`` in watcher.yaml; a reload changes them, never the circuits.
Thread-safe: each receiver's delivery worker records its own outcomes.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from watcher.incidents.encoding import from_micros, micros
from watcher.notify.base import Delivery

if TYPE_CHECKING:
    from watcher.config import BreakerConfig
    from watcher.incidents.state import StateStore

PROBE_LEASE = timedelta(minutes=2)
"""How long a half-open probe holds the circuit for its replica (the outbox's default claim
lease): a replica that dies while probing lets another probe after that."""

# The later of a circuit's stored end and the one a new failure asks for (NULL: none stored).
_LATER = "CASE WHEN receiver_circuits.open_until > ? THEN receiver_circuits.open_until ELSE ? END"


class CircuitBreaker:
    """One circuit per receiver name, kept in ``state``."""

    def __init__(
        self, state: StateStore, threshold: int = 3, cooldown: timedelta = timedelta(seconds=5)
    ) -> None:
        self._state = state
        self._failing: set[str] = set()  # receivers whose circuit the last check found (a success closes it)
        self._lock = threading.Lock()
        self._set(threshold, cooldown)

    @classmethod
    def from_config(cls, breaker: BreakerConfig, state: StateStore) -> CircuitBreaker:
        """The breaker ``delivery.breaker`` of watcher.yaml describes (same names)."""
        return cls(state, breaker.threshold, breaker.cooldown)

    def configure(self, breaker: BreakerConfig) -> None:
        """Take reloaded settings. Every circuit keeps its state: an open one stays open until its
        time is up, and failures already counted count towards the new threshold."""
        self._set(breaker.threshold, breaker.cooldown)

    def _set(self, threshold: int, cooldown: timedelta) -> None:
        if threshold < 1:
            raise ValueError(f"threshold must be at least 1, got {threshold}")
        if cooldown <= timedelta(0):
            raise ValueError("circuit breaker needs a cooldown longer than 0s")
        self.threshold = threshold
        self.cooldown = cooldown

    def allows(self, receiver: str, now: datetime) -> bool:
        """Whether ``receiver`` may be tried now: closed, or open with its time up and no probe out
        yet at any replica (the caller's attempt is then the probe, and must be ``record``ed)."""
        with self._state.reading() as db:
            row = db.execute(
                "SELECT open_until FROM receiver_circuits WHERE receiver = ?", (receiver,)
            ).fetchone()
        with self._lock:
            (self._failing.add if row is not None else self._failing.discard)(receiver)
        if row is None or row[0] is None:
            return True
        if now < from_micros(row[0]):
            return False
        with self._state.writing(durable=False) as db:
            probe = db.execute(
                "UPDATE receiver_circuits SET probe_until = ? WHERE receiver = ? AND open_until <= ? "
                "AND (probe_until IS NULL OR probe_until <= ?)",
                (micros(now + PROBE_LEASE), receiver, micros(now), micros(now)),
            )
            return probe.rowcount == 1

    def open_until(self, receiver: str) -> datetime | None:
        with self._state.reading() as db:
            row = db.execute(
                "SELECT open_until FROM receiver_circuits WHERE receiver = ?", (receiver,)
            ).fetchone()
        return None if row is None or row[0] is None else from_micros(row[0])

    def record(self, receiver: str, delivery: Delivery, now: datetime) -> bool:
        """Learn from one attempt's outcome. True when this success ended a run of failures (the
        receiver recovered: its waiting notifications may all go now). A success does not close
        a circuit another replica opened after this attempt was let through."""
        if delivery.ok:
            with self._lock:
                if receiver not in self._failing:
                    return False  # nothing to close: no write
                self._failing.discard(receiver)
            with self._state.writing(durable=False) as db:
                closed = db.execute(
                    "DELETE FROM receiver_circuits WHERE receiver = ? "
                    "AND (open_until IS NULL OR open_until <= ?)",
                    (receiver, micros(now)),
                )
                return closed.rowcount > 0
        with self._lock:
            self._failing.add(receiver)
        if delivery.retry_after is not None:
            until = micros(now + timedelta(seconds=delivery.retry_after))
            statement = (
                "INSERT INTO receiver_circuits (receiver, failures, open_until) VALUES (?, 0, ?) "
                f"ON CONFLICT (receiver) DO UPDATE SET probe_until = NULL, open_until = {_LATER}"
            )
            args: tuple[object, ...] = (receiver, until, until, until)
        else:
            until = micros(now + self.cooldown)
            first = until if self.threshold <= 1 else None
            statement = (
                "INSERT INTO receiver_circuits (receiver, failures, open_until) VALUES (?, 1, ?) "
                "ON CONFLICT (receiver) DO UPDATE SET failures = receiver_circuits.failures + 1, "
                "probe_until = NULL, open_until = CASE WHEN receiver_circuits.failures + 1 >= ? "
                f"OR receiver_circuits.open_until IS NOT NULL THEN {_LATER} END"
            )
            args = (receiver, first, self.threshold, until, until)
        with self._state.writing(durable=False) as db:
            db.execute(statement, args)
        return False
