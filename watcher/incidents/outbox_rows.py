"""The outbox's rows in the state: enqueue, claim, mark, list (``StateStore`` inherits them).

Kept apart from ``watcher.incidents.state`` (transactions, incidents, checkpoints) so each module
reads on its own; both share one backend, lock and transaction helper, which ``StateStore``
provides. All writes here run inside ``StateStore``'s transactions: delivery bookkeeping (claim,
delivered, failed, expedite) commits without waiting for the disk (see the backends).

Several replicas may drain one outbox (a shared PostgreSQL state). A claim locks its row where
the database can (PostgreSQL: ``FOR UPDATE SKIP LOCKED``) and moves its next attempt to the end of
a lease, so no two drainers send a row at once; the claim names its drainer (``owner``), and a
failed attempt is recorded only by the drainer still holding the claim. Claims are released at a
start only on a state one daemon owns (SQLite); on a shared one a claim is left to its lease, as
its drainer may be alive and sending.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from watcher.incidents.encoding import (
    dumps,
    from_micros,
    micros,
    notification_from_json,
    notification_text,
)
from watcher.notify.base import Notification
from watcher.state.base import Backend

OutboxStatus = Literal["pending", "delivered", "dead"]
_ITEM_COLUMNS = "payload, attempts, status, last_error, next_attempt_at, delivered_at"


@dataclass(frozen=True)
class Claim:
    """A notification taken for sending (``StateStore.claim``)."""

    in_doubt_since: datetime | None = None  # an earlier attempt started then; its outcome is unknown


@dataclass(frozen=True)
class OutboxItem:
    """A notification in the outbox and how its delivery is going."""

    notification: Notification
    attempts: int
    status: OutboxStatus
    last_error: str
    next_attempt_at: datetime
    delivered_at: datetime | None


class OutboxRows:
    """The outbox half of ``StateStore``."""

    _db: Backend
    _lock: threading.RLock
    owner: str
    """Names this store's claims: the host, the process and a random part (``StateStore``)."""

    def _transaction(self, durable: bool = True) -> AbstractContextManager[None]:
        raise NotImplementedError  # StateStore's

    def _enqueue(self, notifications: Sequence[Notification]) -> dict[str, datetime]:
        """Insert new outbox rows; returns fingerprint -> latest created_at of those inserted."""
        notified: dict[str, datetime] = {}
        for notification in notifications:
            created = micros(notification.created_at)
            inserted = self._db.execute(
                "INSERT INTO outbox (id, receiver, thread_key, created_at, payload, next_attempt_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (
                    notification.id,
                    notification.receiver,
                    notification.thread_key,
                    created,
                    notification_text(notification),
                    created,
                ),
            ).rowcount
            if not inserted:
                continue
            for incident in notification.incidents:
                self._db.execute(
                    "INSERT INTO outbox_incidents (fingerprint, notification_id) VALUES (?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (incident.fingerprint, notification.id),
                )
                previous = notified.get(incident.fingerprint)
                notified[incident.fingerprint] = max(
                    previous or notification.created_at, notification.created_at
                )
        return notified

    # ------------------------------------------------------------------ outbox

    def due_notifications(
        self, now: datetime, limit: int = 100, receiver: str | None = None
    ) -> list[OutboxItem]:
        """Pending notifications whose next attempt is due (of one ``receiver``, or all), oldest
        first. A notification waits while one of the same (receiver, thread_key) enqueued before it
        is still pending, so a thread's first message is always delivered (or dead) before its
        replies. Enqueue order, not ``created_at``: replicas stamp a notification with their tick's
        time, so a reply enqueued after the first message (a group is written only at the revision
        read) may carry an earlier time, and would otherwise go first, outside the thread."""
        only = "" if receiver is None else "AND o.receiver = ? "
        sql = (
            f"SELECT {_ITEM_COLUMNS} FROM outbox AS o WHERE o.status = 'pending' AND o.next_attempt_at <= ? "
            f"{only}AND NOT EXISTS (SELECT 1 FROM outbox AS e WHERE e.receiver = o.receiver "
            "AND e.thread_key = o.thread_key AND e.status = 'pending' AND e.seq < o.seq) "
            "ORDER BY o.created_at, o.seq LIMIT ?"
        )
        args = (micros(now), limit) if receiver is None else (micros(now), receiver, limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_item(row) for row in rows]

    def next_due(self, receiver: str) -> datetime | None:
        """When ``receiver``'s next pending notification is due, or None when it has none."""
        with self._lock:
            (value,) = self._db.execute(
                "SELECT min(next_attempt_at) FROM outbox WHERE status = 'pending' AND receiver = ?",
                (receiver,),
            ).fetchone()
        return None if value is None else from_micros(value)

    def outbox_item(self, notification_id: str) -> OutboxItem | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM outbox WHERE id = ?", (notification_id,)
            ).fetchone()
        return None if row is None else _item(row)

    def claim(self, notification_id: str, now: datetime, until: datetime) -> Claim | None:
        """Take a due, pending notification for sending: its next attempt moves to ``until`` (a
        lease), so a second drainer, in this process or another replica, cannot send it too. None
        if it is delivered, dead, not due, or already claimed. A drainer that dies while sending
        leaves it to be retried at ``until``, or at once by the next daemon on a SQLite file
        (``release_claims``).

        The claim says whether an earlier attempt is *in doubt*: it started and its outcome was
        never recorded (the process died mid-send, or the answer was lost), so the service may
        have the message already and the caller should look before sending again."""
        with self._lock, self._transaction(durable=False):
            row = self._db.execute(
                "SELECT attempt_started_at FROM outbox "
                "WHERE id = ? AND status = 'pending' AND next_attempt_at <= ?" + self._db.dialect.skip_locked,
                (notification_id, micros(now)),
            ).fetchone()
            if row is None:
                return None
            self._db.execute(
                "UPDATE outbox SET next_attempt_at = ?, claimed_at = ?, claimed_by = ?, "
                "attempt_started_at = coalesce(attempt_started_at, ?) WHERE id = ?",
                (micros(until), micros(now), self.owner, micros(now), notification_id),
            )
        return Claim(in_doubt_since=None if row[0] is None else from_micros(row[0]))

    def release_claims(self, now: datetime, *, of: Sequence[str] = ()) -> int:
        """Make claimed, unfinished notifications due again at the time they were claimed; returns
        how many. The daemon calls it at start, so a send cut short by a crash is retried at once.
        On a state one daemon owns (SQLite: it holds the file's lock) that is every claim; on a
        shared state (replicas on PostgreSQL) only claims whose lease ran out by ``now``: another
        claim's drainer may be alive and sending it, and releasing it would send it twice -- unless
        ``of`` names their drainers, replicas known dead (their partitions were taken over)."""
        params: tuple[str | int, ...] = ()
        if of:
            where, params = f" AND claimed_by IN ({', '.join('?' * len(of))})", tuple(of)
        elif self._db.shared:
            where, params = " AND next_attempt_at <= ?", (micros(now),)
        else:
            where = ""
        with self._lock, self._transaction():
            cursor = self._db.execute(
                "UPDATE outbox SET next_attempt_at = claimed_at, claimed_at = NULL, claimed_by = NULL "
                "WHERE status = 'pending' AND claimed_at IS NOT NULL" + where,
                params,
            )
        return cursor.rowcount

    def mark_delivered(
        self,
        notification_id: str,
        now: datetime,
        ref: Mapping[str, Any] | None = None,
        followups: Sequence[Notification] = (),
    ) -> None:
        """Record a successful send. Idempotent: a delivered notification stays as first marked.
        ``ref`` becomes the thread's ref unless the thread already has one. ``followups`` (further
        steps of the same send, e.g. Slack's chart upload) are enqueued in the same transaction,
        so the send is recorded the moment the service answered and each later step is its own
        outbox row, retried and deduplicated on its own."""
        with self._lock, self._transaction(durable=False):
            marked = self._db.execute(
                "UPDATE outbox SET status = 'delivered', delivered_at = ?, last_error = '', "
                "claimed_at = NULL, claimed_by = NULL, attempt_started_at = NULL "
                "WHERE id = ? AND status != 'delivered'",
                (micros(now), notification_id),
            ).rowcount
            if not marked:
                self._thread_of(notification_id)  # delivered before, or unknown: KeyError
            if ref is not None:
                self._db.execute(
                    "INSERT INTO thread_refs (receiver, thread_key, ref, created_at) "
                    "SELECT receiver, thread_key, ?, ? FROM outbox WHERE id = ? ON CONFLICT DO NOTHING",
                    (dumps(dict(ref)), micros(now), notification_id),
                )
            self._enqueue(followups)

    def mark_failed(
        self,
        notification_id: str,
        now: datetime,
        error: str,
        next_attempt_at: datetime | None,
        *,
        maybe_sent: bool = False,
    ) -> None:
        """Record a failed attempt: retry at ``next_attempt_at``, or dead letter if it is None.
        Ignored unless the notification is still pending (it may have been delivered meanwhile)
        and no other drainer claimed it since (this one's lease ran out: the other's send must not
        be rescheduled, or a third drainer could send it while it is in flight).
        ``maybe_sent``: the service may have taken it (no answer came back), so the attempt stays
        in doubt and the next claim says so."""
        status = "dead" if next_attempt_at is None else "pending"
        next_at = micros(now if next_attempt_at is None else next_attempt_at)
        with self._lock, self._transaction(durable=False):
            self._thread_of(notification_id)
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, claimed_at = NULL, "
                "claimed_by = NULL, status = ?, "
                "attempt_started_at = CASE WHEN ? THEN attempt_started_at END, "
                "next_attempt_at = ? WHERE id = ? AND status = 'pending' "
                "AND (claimed_by IS NULL OR claimed_by = ?)",
                (error, status, bool(maybe_sent), next_at, notification_id, self.owner),
            )

    def expedite(self, receiver: str, now: datetime) -> int:
        """Make every pending, unclaimed notification of ``receiver`` due at ``now``; returns how
        many. Called when a receiver answers again after failing: its queue drains at once, in
        order, instead of each notification waiting out the backoff it got while it was down."""
        with self._lock, self._transaction(durable=False):
            cursor = self._db.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE receiver = ? AND status = 'pending' "
                "AND claimed_at IS NULL AND next_attempt_at > ?",
                (micros(now), receiver, micros(now)),
            )
        return cursor.rowcount

    def _thread_of(self, notification_id: str) -> tuple[str, str]:
        row = self._db.execute(
            "SELECT receiver, thread_key FROM outbox WHERE id = ?", (notification_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no notification {notification_id!r} in the outbox")
        return row[0], row[1]

    def outbox_depth(self) -> int:
        """How many notifications wait to be delivered."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0])

    def dead_letters(self) -> list[OutboxItem]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM outbox WHERE status = 'dead' ORDER BY created_at, seq"
            ).fetchall()
        return [_item(row) for row in rows]

    def last_notification(self, fingerprint: str) -> OutboxItem | None:
        """The most recently enqueued notification about an incident, whatever its status."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM outbox JOIN outbox_incidents ON notification_id = id "
                "WHERE fingerprint = ? ORDER BY created_at DESC, seq DESC LIMIT 1",
                (fingerprint,),
            ).fetchone()
        return None if row is None else _item(row)

    def thread_ref(self, receiver: str, thread_key: str) -> Mapping[str, Any] | None:
        """What the channel returned for the first delivered message of a thread (e.g. Slack's ts)."""
        with self._lock:
            row = self._db.execute(
                "SELECT ref FROM thread_refs WHERE receiver = ? AND thread_key = ?", (receiver, thread_key)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))


def _item(row: Sequence[Any]) -> OutboxItem:
    payload, attempts, status, last_error, next_attempt_at, delivered_at = row
    return OutboxItem(
        notification=notification_from_json(json.loads(payload)),
        attempts=attempts,
        status=status,
        last_error=last_error,
        next_attempt_at=from_micros(next_attempt_at),
        delivered_at=None if delivered_at is None else from_micros(delivered_at),
    )
