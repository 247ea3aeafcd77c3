"""Liveness and readiness, as the daemon reports them and ``/healthz`` / ``/readyz`` serve them.

The daemon tells a ``Health`` what happened (rules loaded, a store answered, the scheduler
ticked); ``liveness()`` and ``readiness()`` turn that into a verdict at the injected clock's
``now``. The HTTP thread reads while scheduler threads write, hence the lock.

- **alive** (``/healthz``, the systemd watchdog): the scheduler's heartbeat is recent. A stuck
  scheduler makes the process useless even though it still answers HTTP, so it must fail.
- **ready** (``/readyz``): rules are loaded, every expected source was reached recently, and
  watcher's own files can be written: a failed write of the state file (or of an embedded store's
  ingest) makes it not ready at once, until the first write that works (``write_failed`` /
  ``write_worked``); a replica sharing the state (``ha:``) is ready only while it holds rule
  partitions (``partitions_held``). The process stays alive meanwhile: a restart does not free a disk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from watcher.duration import format_duration

Clock = Callable[[], datetime]

DEFAULT_HEARTBEAT_MAX_AGE = timedelta(minutes=2)
DEFAULT_STORE_MAX_AGE = timedelta(minutes=5)


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Verdict:
    """The answer of one check: ``ok`` plus the reasons it is not, and details for humans."""

    ok: bool
    reasons: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "fail", "reasons": list(self.reasons), **self.details}


class Health:
    """What the daemon knows about its own health, judged at the clock's ``now``.

    ``heartbeat_max_age`` should exceed the scheduler's tick interval by a margin;
    ``store_max_age`` should exceed the longest rule interval (a source is only contacted when
    one of its rules is due). The daemon may change both after a reload.
    """

    def __init__(
        self,
        *,
        clock: Clock = wall_clock,
        heartbeat_max_age: timedelta = DEFAULT_HEARTBEAT_MAX_AGE,
        store_max_age: timedelta = DEFAULT_STORE_MAX_AGE,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.heartbeat_max_age = heartbeat_max_age
        self.store_max_age = store_max_age
        self._started = clock()
        # Until the scheduler beats for the first time, the start counts as a beat: a process
        # that is starting up is alive, one that never beats turns not-alive after the max age.
        self._heartbeat = self._started
        self._rules: int | None = None
        self._sources: tuple[str, ...] = ()
        self._store_ok: dict[str, datetime] = {}
        self._store_error: dict[str, str] = {}
        self._unwritable: dict[str, tuple[str, datetime]] = {}  # file -> (error, failing since)
        self._partitions: tuple[int, int] | None = None  # (held, replicas alive), with ``ha:``

    # ------------------------------------------------------------------ what the daemon reports

    def rules_loaded(self, count: int) -> None:
        """A rule set of ``count`` rules is loaded (zero rules is loaded, but not ready)."""
        with self._lock:
            self._rules = count

    def expect_sources(self, names: Iterable[str]) -> None:
        """The sources readiness requires (those the loaded rules use)."""
        with self._lock:
            self._sources = tuple(sorted(set(names)))

    def store_reached(self, source: str, at: datetime | None = None) -> None:
        with self._lock:
            self._store_ok[source] = at or self._clock()
            self._store_error.pop(source, None)

    def store_failed(self, source: str, error: str) -> None:
        with self._lock:
            self._store_error[source] = error

    def write_failed(self, part: str, error: str, at: datetime | None = None) -> None:
        """A write of ``part`` (e.g. "the state file") failed: not ready until ``write_worked``."""
        with self._lock:
            since = self._unwritable.get(part, ("", at or self._clock()))[1]
            self._unwritable[part] = (error, since)

    def write_worked(self, part: str) -> None:
        with self._lock:
            self._unwritable.pop(part, None)

    def partitions_held(self, held: int, alive: int) -> None:
        """A replica sharing the state (``ha:``) holds ``held`` rule partitions, ``alive`` replicas
        heartbeat: without a partition it evaluates nothing, so it is not ready."""
        with self._lock:
            self._partitions = (held, alive)

    def heartbeat(self, at: datetime | None = None) -> None:
        """The scheduler is making progress (call it from every tick)."""
        with self._lock:
            self._heartbeat = at or self._clock()

    # ------------------------------------------------------------------ verdicts

    def liveness(self) -> Verdict:
        now = self._clock()
        with self._lock:
            age = now - self._heartbeat
        details = {"heartbeat_age_seconds": round(age.total_seconds(), 3)}
        if age > self.heartbeat_max_age:
            reason = (
                f"scheduler heartbeat is {format_duration(age)} old "
                f"(limit {format_duration(self.heartbeat_max_age)})"
            )
            return Verdict(False, (reason,), details)
        return Verdict(True, (), details)

    def readiness(self) -> Verdict:
        now = self._clock()
        with self._lock:
            rules, sources = self._rules, self._sources
            reached, errors = dict(self._store_ok), dict(self._store_error)
            unwritable = dict(self._unwritable)
            partitions = self._partitions
        reasons = [
            f"cannot write {part} for {format_duration(now - since)}: {error}"
            for part, (error, since) in sorted(unwritable.items())
        ]
        if not rules:
            reasons.append("no rules loaded" if rules is None else "the rule set is empty")
        stores: dict[str, Any] = {}
        for source in sources:
            last = reached.get(source)
            age = None if last is None else now - last
            stores[source] = {
                "last_success": None if last is None else last.isoformat(),
                "age_seconds": None if age is None else round(age.total_seconds(), 3),
                "error": errors.get(source),
            }
            problem = self._store_problem(source, age, errors.get(source))
            if problem:
                reasons.append(problem)
        details: dict[str, Any] = {"rules": rules or 0, "sources": stores}
        if partitions is not None:
            held, alive = partitions
            details["partitions_held"], details["replicas_alive"] = held, alive
            if not held:
                reasons.append(f"holds no rule partition ({alive} replicas alive share them)")
        if unwritable:
            details["unwritable"] = {part: error for part, (error, _) in unwritable.items()}
        return Verdict(not reasons, tuple(reasons), details)

    def _store_problem(self, source: str, age: timedelta | None, error: str | None) -> str | None:
        suffix = f": {error}" if error else ""
        if age is None:
            return f"source {source} not reached yet{suffix}"
        if age > self.store_max_age:
            return (
                f"source {source} last reached {format_duration(age)} ago "
                f"(limit {format_duration(self.store_max_age)}){suffix}"
            )
        return None
