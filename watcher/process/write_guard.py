"""When watcher cannot write its own files: loud at once, never a traceback a second.

The daemon runs its scheduler jobs (tick, drain) through ``WriteGuard.run``. A job that fails
because the state file cannot be written (disk full, I/O error: any ``sqlite3`` error, or an
``OSError`` of the disk) -- or because an embedded store's ingest failed (``WriteError``) -- is
caught there, at the job boundary:

- one log line per kind of failure per ``LOG_EVERY`` (the next one says how many were not logged);
- ``watcher_state_write_errors_total`` counts the failed jobs on the state file;
- ``/readyz`` answers 503 at once, with the reason, until the first write that works; the
  scheduler's heartbeat goes on (``/healthz`` stays 200: a restart does not free a disk);
- ``watcher:state-unwritable`` is sent by ``DirectAlert``, which needs no state file (see there).

Nothing of a failed tick is lost: its transaction wrote nothing, so the rules' checkpoints did not
move and the first tick that can write evaluates the missed windows (catch-up); an ingest that
failed did not move its file offsets. The guard also keeps the journal bounded: at most every
``TRUNCATE_EVERY`` after a job, failing or not, it cuts the WAL back (``StateStore.truncate_wal``).

Any other failure of a job is logged the same way (with its traceback, once per ``LOG_EVERY``)
and changes neither readiness nor liveness.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from watcher.duration import format_duration
from watcher.incidents.model import Event, Incident
from watcher.incidents.state import StateStore, StateStoreError
from watcher.notify.base import Delivery, Notification, Notifier
from watcher.process.health import Health
from watcher.process.meta import observe
from watcher.process.metrics import Metrics
from watcher.routing.dispatch import META_PREFIX
from watcher.routing.tree import RouteMatch

log = logging.getLogger("watcher.process.write_guard")

STATE_UNWRITABLE = f"{META_PREFIX}state-unwritable"
STATE_FILE = "the state file"
TICK = "tick"
LOG_EVERY = timedelta(minutes=1)
TRUNCATE_EVERY = timedelta(seconds=30)
ALERT_EVERY = timedelta(minutes=5)
RESOLVE_AFTER = timedelta(seconds=10)
RETRY_EVERY = timedelta(seconds=30)
_DISK_ERRNOS = {errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EROFS}

Clock = Callable[[], datetime]


class WriteError(Exception):
    """A write of one of watcher's files other than the state file failed; ``part`` names it
    (e.g. "embedded store app")."""

    def __init__(self, part: str, cause: BaseException) -> None:
        super().__init__(f"{part}: {cause}")
        self.part = part
        self.cause = cause


def failed_part(error: BaseException) -> str | None:
    """Which of watcher's files a job's failure is about, or None when it is no write failure."""
    if isinstance(error, WriteError):
        return error.part
    if isinstance(error, sqlite3.Error) or (isinstance(error, OSError) and error.errno in _DISK_ERRNOS):
        return STATE_FILE
    if _postgres_error(error) or isinstance(error, StateStoreError):
        return STATE_FILE  # the state database: down, unreachable (no reconnection), or refusing the write
    return None


def _postgres_error(error: BaseException) -> bool:
    """Whether ``error`` is psycopg's (a PostgreSQL state); psycopg is imported only for such a
    state, so it is recognised by its class rather than imported here."""
    return any(
        cls.__module__.split(".")[0] == "psycopg" and cls.__name__ == "Error" for cls in type(error).__mro__
    )


class DirectAlert:
    """``watcher:state-unwritable``, sent without the state file: the outbox lives in the very file
    that cannot be written. The incident is kept in memory (``watcher.process.meta.observe``, as the
    ``Watchdog``'s), routed like other meta-alerts (``routes``: ``meta.receiver``, else the route
    tree) and handed straight to the receiver's notifier.

    At most one FIRING per ``every`` while the trouble lasts (a reminder after that); a RESOLVED
    once writes have worked for ``resolve_after``, so a disk on the edge does not flap the receiver.
    Best effort: a send that fails is logged and tried again at most every ``retry_every``.
    """

    def __init__(
        self,
        routes: Callable[[Incident], list[RouteMatch]],
        notifiers: Callable[[], Mapping[str, Notifier]],
        *,
        every: timedelta = ALERT_EVERY,
        resolve_after: timedelta = RESOLVE_AFTER,
        retry_every: timedelta = RETRY_EVERY,
    ) -> None:
        self.routes, self.notifiers = routes, notifiers
        self.every, self.resolve_after, self.retry_every = every, resolve_after, retry_every
        self.incident: Incident | None = None
        self.told = False  # a FIRING of the open incident reached a receiver
        self._last_fired: datetime | None = None
        self._next_try: datetime | None = None
        self._healthy_since: datetime | None = None

    def failing(self, summary: str, now: datetime) -> None:
        """Writes failed at ``now``: fire, or remind when ``every`` has passed since the last FIRING."""
        self._healthy_since = None
        self.incident, _ = observe(self.incident, True, now, rule=STATE_UNWRITABLE, group={}, summary=summary)
        if self._last_fired is not None and now - self._last_fired < self.every:
            return
        if self._next_try is not None and now < self._next_try:
            return
        if self._send(Event.FIRING, now):
            self._last_fired, self._next_try, self.told = now, None, True
        else:
            self._next_try = now + self.retry_every

    def healthy(self, now: datetime) -> None:
        """Writes work at ``now``: resolve once they have worked for ``resolve_after``."""
        if self.incident is None:
            return
        self._healthy_since = self._healthy_since or now
        if now - self._healthy_since < self.resolve_after:
            return
        self.incident, _ = observe(self.incident, False, now, rule=STATE_UNWRITABLE, group={}, summary="")
        if self.told:
            self._send(Event.RESOLVED, now)
        self.incident, self.told, self._next_try = None, False, None

    def _send(self, event: Event, now: datetime) -> bool:
        """Send the incident to each receiver it routes to; True when one took it."""
        assert self.incident is not None
        incident, notifiers, sent = self.incident, self.notifiers(), False
        matches = self.routes(incident)
        if not matches:
            log.error("watcher alert %s has no receiver: set meta.receiver", STATE_UNWRITABLE)
        for match in matches:
            notifier = notifiers.get(match.receiver)
            delivery = Delivery(ok=False, error="no such receiver")
            if notifier is not None:
                delivery = _attempt(notifier, _notification(incident, match, event, now))
            _log_send(incident, event, match.receiver, delivery)
            sent = sent or delivery.ok
        return sent


def _log_send(incident: Incident, event: Event, receiver: str, delivery: Delivery) -> None:
    if not delivery.ok:
        log.error(
            "watcher alert %s %s not sent to %s: %s", incident.rule, event.value, receiver, delivery.error
        )
        return
    summary = incident.annotations.get("summary", "").removeprefix("{% raw %}").removesuffix("{% endraw %}")
    log.warning("watcher alert %s %s sent to %s: %s", incident.rule, event.value, receiver, summary)


def _attempt(notifier: Notifier, notification: Notification) -> Delivery:
    try:
        return notifier.send(notification)
    except Exception as exc:  # a notifier bug must not take the failure handling down with it
        return Delivery(ok=False, error=f"{type(exc).__name__}: {exc}")


def _notification(incident: Incident, match: RouteMatch, event: Event, now: datetime) -> Notification:
    thread = f"{incident.rule}|{incident.started_at.isoformat()}"
    return Notification(
        id=f"{incident.fingerprint[:12]}-{event.value}-{int(now.timestamp() * 1000)}",
        receiver=match.receiver,
        event=event,
        incidents=(incident,),
        created_at=now,
        thread_key=thread,
        group_labels=match.group_labels(incident.labels),
    )


class WriteGuard:
    """The job boundary: runs a job and turns a failed write into logs, metrics, readiness and
    ``watcher:state-unwritable``."""

    def __init__(
        self,
        state: StateStore,
        health: Health,
        metrics: Metrics,
        alert: DirectAlert,
        clock: Clock,
        *,
        log_every: timedelta = LOG_EVERY,
        truncate_every: timedelta = TRUNCATE_EVERY,
    ) -> None:
        self.state, self.health, self.metrics, self.alert, self.clock = state, health, metrics, alert, clock
        self.log_every, self.truncate_every = log_every, truncate_every
        self.failing: dict[str, tuple[str, datetime]] = {}  # part -> (error, since)
        self._logged: dict[tuple[str, str], datetime] = {}
        self._unlogged: Counter[tuple[str, str]] = Counter()
        self._truncated_at: datetime | None = None

    def run(self, job: str, work: Callable[[], None]) -> None:
        """Run one scheduler job; nothing it raises escapes (the scheduler would log a traceback)."""
        writes = self.state.writes
        try:
            work()
        except Exception as exc:
            self._failed(job, exc)
        else:
            self._worked(job, wrote=self.state.writes > writes)
        self._bound_journal()

    def _failed(self, job: str, error: Exception) -> None:
        now, part = self.clock(), failed_part(error)
        self._log(job, part, error, now)
        if part is None:
            return
        text = str(error.cause if isinstance(error, WriteError) else error) or type(error).__name__
        self.failing[part] = (text, self.failing.get(part, (text, now))[1])
        if part == STATE_FILE:
            self.metrics.state_write_errors.inc()
        self.health.write_failed(part, text, now)
        self.health.heartbeat(now)  # the scheduler is alive; a restart would not free the disk
        self.alert.failing(self._summary(), now)

    def _worked(self, job: str, *, wrote: bool) -> None:
        """A job went through: a write to the state file clears it; a tick clears the stores (its
        ingest ran)."""
        now = self.clock()
        back = [p for p in self.failing if (p == STATE_FILE and wrote) or (p != STATE_FILE and job == TICK)]
        for part in back:
            _, since = self.failing.pop(part)
            self.health.write_worked(part)
            log.warning("%s can be written again, after %s", part, format_duration(now - since))
        if not self.failing:
            self.alert.healthy(now)

    def _summary(self) -> str:
        now = self.clock()
        told = [f"cannot write {part} for {format_duration(now - since)}: {error}"
                for part, (error, since) in sorted(self.failing.items())]  # fmt: skip
        return "; ".join(told) + " (the incidents meanwhile are found once writes work)"

    def _log(self, job: str, part: str | None, error: Exception, now: datetime) -> None:
        """One line per kind of failure per ``log_every``; the next line counts the ones left out."""
        kind = (part or f"{job} job", type(error).__name__)
        last = self._logged.get(kind)
        if last is not None and now - last < self.log_every:
            self._unlogged[kind] += 1
            return
        self._logged[kind] = now
        more = self._unlogged.pop(kind, 0)
        also = f" ({more} more since the last line)" if more else ""
        every = format_duration(self.log_every)
        if part is None:
            log.error("%s failed%s: %s (logged at most once per %s)", job, also, error, every, exc_info=error)
        else:
            log.error("%s: cannot write %s%s: %s (logged at most once per %s)", job, part, also, error, every)

    def _bound_journal(self) -> None:
        """Cut the WAL back every ``truncate_every``, failing or not (it may free the disk)."""
        now = self.clock()
        if self._truncated_at is not None and now - self._truncated_at < self.truncate_every:
            return
        self._truncated_at = now
        try:
            self.state.truncate_wal()
        except (sqlite3.Error, OSError) as exc:
            log.debug("the state file's WAL could not be truncated: %s", exc)
