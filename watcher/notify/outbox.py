"""The delivery stage: drain the outbox through the notifiers, with retries.

Guarantees, given the state store's transactional enqueue:

- at least once: a notification stays pending until a notifier reports success; a send whose
  outcome was never recorded (the process died) is retried after the claim's lease;
- at most once after success: a notification is claimed (an atomic check that it is still
  pending and due) right before it is sent, and ``mark_delivered`` is idempotent, so a
  delivered id is never sent again, by this drainer, a second one, or after a restart; the one
  exception is a crash between the service taking it and the mark's commit (the
  duplicate window: the answer's way back, the worker taking the GIL from the tick's thread, the
  mark's three statements), after which it is in doubt and looked up or sent again (below);
- thread order: a thread's later messages wait while an earlier one is pending, and they carry
  the thread ref the first delivered message returned (read from the store just before sending).

- in doubt: a notification whose earlier attempt started but was never answered (a crash
  mid-send, a timeout) is looked up at the receiver first when its notifier can be asked
  (``Reconciler``: Slack); found, it is marked delivered and not sent again;
- steps: a notifier may return follow-ups with a delivery (Slack's chart upload); they are
  enqueued in the transaction that records the delivery, so a crash in a follow-up never re-sends
  the message.

Failures back off exponentially with jitter; a service's ``Retry-After`` replaces the backoff; a
permanent failure, ``max_attempts`` failures or a notification older than ``max_age`` go to the
dead letters (``StateStore.dead_letters``), reported in ``DrainReport.dead_letters`` for a
meta-alert; an attempt the service answered with ``Retry-After`` never dead-letters by count (the
service is alive and rate limiting). A notifier that raises is a retryable failure, never a crash
of the drain. A per-receiver circuit breaker (``watcher.notify.breaker``) holds a receiver's
notifications back, without spending attempts, while its service is down or asked us to wait.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from watcher.duration import format_duration
from watcher.incidents.state import OutboxItem, StateStore
from watcher.notify.base import Delivery, Notification, Notifier, Paced, Reconciler
from watcher.notify.breaker import CircuitBreaker
from watcher.notify.pacing import Pacer

if TYPE_CHECKING:
    from watcher.config import RetryConfig

log = logging.getLogger("watcher.outbox")

_BATCH = 100


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the outbox tries. The n-th failure waits ``min(max_backoff, base * factor**(n-1))``
    shortened by up to ``jitter`` (a fraction), so retries of many notifications spread out but
    never exceed ``max_backoff``. ``lease`` is how long a claimed notification is held by the
    drainer sending it; it must outlast a notifier's own timeout."""

    max_attempts: int = 10
    base: timedelta = timedelta(seconds=2)
    factor: float = 2.0
    max_backoff: timedelta = timedelta(minutes=10)
    jitter: float = 0.2
    max_age: timedelta = timedelta(hours=24)
    lease: timedelta = timedelta(minutes=2)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base <= timedelta(0) or self.max_backoff < self.base:
            raise ValueError("backoff needs 0 < base <= max_backoff")
        if self.factor < 1:
            raise ValueError(f"factor must be at least 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter is a fraction in [0, 1), got {self.jitter}")
        if self.lease <= timedelta(0):
            raise ValueError("lease must be longer than 0s")

    @classmethod
    def from_config(cls, retry: RetryConfig) -> RetryPolicy:
        """The policy ``delivery.retry`` of watcher.yaml describes (same names)."""
        return cls(
            max_attempts=retry.max_attempts,
            base=retry.base,
            factor=retry.factor,
            max_backoff=retry.max_backoff,
            jitter=retry.jitter,
            max_age=retry.max_age,
            lease=retry.lease,
        )

    def backoff(self, failures: int, rng: random.Random) -> timedelta:
        """The wait after the ``failures``-th failed attempt (1 for the first)."""
        cap = self.max_backoff.total_seconds()
        try:
            raw = min(cap, self.base.total_seconds() * self.factor ** max(failures - 1, 0))
        except OverflowError:
            raw = cap
        return timedelta(seconds=raw * (1 - self.jitter * rng.random()))


@dataclass
class DrainReport:
    """What one ``Outbox.drain`` did."""

    sent: int = 0
    retried: int = 0  # failed, scheduled again
    dead: int = 0  # failed for good: now dead letters
    skipped: int = 0  # delivered or claimed by another drainer between listing and sending
    dead_letters: list[str] = field(default_factory=list)  # ids, for a meta-alert
    deferred: int = 0  # held back: the receiver's circuit breaker is open
    reconciled: int = 0  # in doubt after a crash, found at the receiver: marked delivered, not re-sent
    paced: int = 0  # held back: the service's pace (Slack: a message a second per channel)
    next_token: datetime | None = field(default=None, compare=False)  # when a paced one may go
    held: set[str] = field(default_factory=set, compare=False)  # pace keys that held one back
    delivered_to: set[str] = field(default_factory=set, compare=False)  # receivers that took one
    # The counts above per receiver, for /metrics (compare=False: tests compare the totals).
    sent_to: Counter[str] = field(default_factory=Counter, compare=False)
    retried_to: Counter[str] = field(default_factory=Counter, compare=False)
    dead_to: Counter[str] = field(default_factory=Counter, compare=False)

    def add(self, other: DrainReport) -> None:
        """Count ``other`` (another drain, e.g. another receiver's worker) into this report. Kept
        beside the fields: a field added above must be added here too."""
        self.sent += other.sent
        self.retried += other.retried
        self.dead += other.dead
        self.skipped += other.skipped
        self.deferred += other.deferred
        self.reconciled += other.reconciled
        self.paced += other.paced
        self.dead_letters += other.dead_letters
        self.delivered_to |= other.delivered_to
        self.sent_to.update(other.sent_to)
        self.retried_to.update(other.retried_to)
        self.dead_to.update(other.dead_to)

    @property
    def failed(self) -> int:
        return self.retried + self.dead

    @property
    def attempted(self) -> int:
        return self.sent + self.failed + self.skipped


class Outbox:
    """Delivers due notifications through ``notifiers`` (receiver name -> notifier)."""

    def __init__(
        self,
        state: StateStore,
        notifiers: Mapping[str, Notifier],
        policy: RetryPolicy | None = None,
        *,
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._state = state
        self.notifiers = notifiers  # swapped by a reload of watcher.yaml
        self.policy = policy or RetryPolicy()  # swapped by a reload: the next attempts use it
        self._clock = clock
        self._rng = rng or random.Random()
        self.breaker = breaker  # None: every due notification is tried
        self.pacer = Pacer()

    def drain(
        self, max_items: int | None = None, *, until: datetime | None = None, receiver: str | None = None
    ) -> DrainReport:
        """Try every due notification once (at most ``max_items``), oldest first; only
        ``receiver``'s with one (its delivery worker). A notification that became due by being next
        in its thread is tried in the same drain. With ``until`` (a shutdown's deadline) no send
        starts after that time; the rest wait in the outbox."""
        report = DrainReport()
        # Listing as of the drain's start: a retry scheduled during the drain is never due again
        # in it, however long slow sends take, so every pass brings new notifications.
        started = self._clock()
        tried: set[str] = set()
        while max_items is None or report.attempted < max_items:
            room = _BATCH if max_items is None else min(_BATCH, max_items - report.attempted)
            listed = self._state.due_notifications(started, room, receiver)
            due = [item for item in listed if item.notification.id not in tried]
            if not due:
                break
            for item in due:
                if until is not None and self._clock() >= until:
                    return report
                tried.add(item.notification.id)
                self._deliver(item, report)
        return report

    def _deliver(self, item: OutboxItem, report: DrainReport) -> None:
        notification = item.notification
        now = self._clock()
        notifier = self.notifiers.get(notification.receiver)
        if notifier is None:
            known = ", ".join(sorted(self.notifiers)) or "none"
            failure = Delivery(
                ok=False, permanent=True, error=f"unknown receiver {notification.receiver!r} (known: {known})"
            )
            self._fail(item, failure, now, report)
            return
        if self.breaker is not None and not self.breaker.allows(notification.receiver, now):
            report.deferred += 1
            return
        if not self._paced_through(notifier, notification, now, report):
            return
        claim = self._state.claim(notification.id, now, now + self.policy.lease)
        if claim is None:
            report.skipped += 1
            return
        notification = self._threaded(notification)
        found = None
        if claim.in_doubt_since is not None and isinstance(notifier, Reconciler):
            found = self._find(notifier, notification, claim.in_doubt_since)
            if found is not None and found.ok:
                report.reconciled += 1
        delivery = found or self._send(notifier, notification)
        done = self._clock()
        if self.breaker is not None and self.breaker.record(notification.receiver, delivery, done):
            # The receiver is back: what waited out its backoff while it was down goes now, in order.
            self._state.expedite(notification.receiver, done)
        if delivery.ok:
            self._state.mark_delivered(notification.id, done, delivery.ref, delivery.followups)
            report.sent += 1
            report.sent_to[notification.receiver] += 1
            report.delivered_to.add(notification.receiver)
            return
        self._fail(item, delivery, done, report)

    def _paced_through(
        self, notifier: Notifier, notification: Notification, now: datetime, report: DrainReport
    ) -> bool:
        """Whether the service's pace lets this send go now; if not, when it will."""
        paced = notifier.pace(notification) if isinstance(notifier, Paced) else None
        # Once a key held one notification, its later ones wait too in this drain, even if a token
        # came meanwhile: they would overtake it.
        if paced is None or (paced[0] not in report.held and self.pacer.take(*paced, now)):
            return True
        report.held.add(paced[0])
        report.paced += 1
        ready = self.pacer.ready_at(*paced, now)
        report.next_token = ready if report.next_token is None else min(report.next_token, ready)
        return False

    @staticmethod
    def _find(notifier: Reconciler, notification: Notification, since: datetime) -> Delivery | None:
        """Whether the service already has an in-doubt notification. A lookup that fails keeps the
        notification in doubt (``maybe_sent``) and sends nothing: it is asked again at the retry."""
        try:
            found = notifier.find(notification, since)
        except Exception as exc:  # a notifier bug must not stop the other deliveries
            found = Delivery(ok=False, error=f"{type(exc).__name__}: {exc}")
        if found is not None and not found.ok:
            return replace(found, error=f"looking up an in-doubt send: {found.error}", maybe_sent=True)
        if found is not None:
            log.info("notification %s was already delivered (found at the receiver)", notification.id)
        return found

    def _threaded(self, notification: Notification) -> Notification:
        ref = self._state.thread_ref(notification.receiver, notification.thread_key)
        if ref is None or notification.thread_ref is not None:
            return notification
        return replace(notification, thread_ref=ref)

    @staticmethod
    def _send(notifier: Notifier, notification: Notification) -> Delivery:
        try:
            return notifier.send(notification)
        except Exception as exc:  # a notifier bug must not stop the other deliveries
            return Delivery(ok=False, error=f"{type(exc).__name__}: {exc}")

    def _fail(self, item: OutboxItem, delivery: Delivery, now: datetime, report: DrainReport) -> None:
        notification, policy = item.notification, self.policy
        failures = item.attempts + 1
        error = redact(delivery.error) or "failed without an error message"
        verdict = ""
        if delivery.permanent:
            verdict = "permanent failure"
        elif failures >= policy.max_attempts and delivery.retry_after is None:
            # A service that answers Retry-After is alive and rate limiting: only max_age gives up.
            verdict = f"gave up after {failures} attempts"
        elif now - notification.created_at >= policy.max_age:
            verdict = f"gave up after {format_duration(policy.max_age)}"
        if verdict:
            self._state.mark_failed(notification.id, now, f"{verdict}: {error}", None)
            report.dead += 1
            report.dead_to[notification.receiver] += 1
            report.dead_letters.append(notification.id)
            _log_failure(logging.ERROR, notification, failures, f"dead letter, {verdict}: {error}")
            return
        # A service's Retry-After replaces the backoff rather than adding to it: the service said
        # when it can take the message, and a backoff grown over a long outage would leave the
        # message waiting long after that.
        if delivery.retry_after is not None:
            wait = timedelta(seconds=delivery.retry_after)
        else:
            wait = policy.backoff(failures, self._rng)
        self._state.mark_failed(notification.id, now, error, now + wait, maybe_sent=delivery.maybe_sent)
        report.retried += 1
        report.retried_to[notification.receiver] += 1
        _log_failure(logging.WARNING, notification, failures, f"retry in {format_duration(wait)}: {error}")


def _log_failure(level: int, notification: Notification, attempt: int, outcome: str) -> None:
    """One line per failed attempt; ``rule``, ``fingerprint`` and ``receiver`` are also fields of
    the JSON log line, so a log query finds every failure of one incident."""
    fingerprints = ",".join(incident.fingerprint for incident in notification.incidents)
    rules = ",".join(sorted({incident.rule for incident in notification.incidents}))
    log.log(
        level,
        "delivery failed: receiver=%s notification=%s incidents=%s attempt=%d %s",
        notification.receiver,
        notification.id,
        fingerprints,
        attempt,
        outcome,
        extra={"rule": rules, "fingerprint": fingerprints, "receiver": notification.receiver},
    )


# A URL's path and query may hold a secret (a Slack webhook, a token parameter) and its userinfo
# a password; only the scheme and host are kept. urllib3 also names the path alone ("url: /...").
_URL = re.compile(r"(?P<keep>[a-z][a-z0-9+.-]*://)(?:[^\s/@'\"]*@)?(?P<host>[^\s/'\"?#]+)[^\s'\"),]*", re.I)
_URL_PATH = re.compile(r"(?P<keep>\burl: )/[^\s'\"),]*")


def redact(error: str) -> str:
    """An error text fit for logs and the dead-letter list: URLs cut down to scheme and host.
    Notifiers are expected to keep secrets out of ``Delivery.error``; this is the backstop for
    exception texts (HTTP client errors quote the URL they failed on)."""
    error = _URL.sub(r"\g<keep>\g<host>/<redacted>", error)
    return _URL_PATH.sub(r"\g<keep>/<redacted>", error)
