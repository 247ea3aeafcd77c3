"""The long-running daemon: APScheduler wiring, signals and graceful shutdown.

It holds no alerting logic. One scheduler job ticks the engine on the rules' common grid
(rules due at the same tick share one store round trip per source); another drains the
outbox every second so retries do not wait for the next tick. Both run on one worker thread,
so the state database and stores are never used concurrently within the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watcher.config import Config, EmbeddedSource
from watcher.engine import Engine
from watcher.incidents.lock import DaemonLock
from watcher.incidents.state import StateStore
from watcher.meta import Watchdog
from watcher.notify.breaker import CircuitBreaker
from watcher.notify.outbox import Outbox
from watcher.notify.registry import build_notifier
from watcher.operations import Operations
from watcher.routing.dispatch import Dispatcher
from watcher.rules.models import Rule
from watcher.schedule import aligned, tick_interval
from watcher.store.base import LogStore
from watcher.store.embedded import EmbeddedStore
from watcher.store.factory import open_stores
from watcher.templates import Templates

log = logging.getLogger("watcher.daemon")
_LIBC_NAME = ctypes.util.find_library("c")
_LIBC = ctypes.CDLL(_LIBC_NAME) if _LIBC_NAME and hasattr(ctypes.CDLL(_LIBC_NAME), "malloc_trim") else None
Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Daemon:
    """Wires config, rules, stores, state and notifiers to a scheduler."""

    def __init__(self, config: Config, rules: list[Rule], clock: Clock = wall_clock) -> None:
        self.config = config
        self.rules = rules
        self.clock = clock
        self.stopping = threading.Event()
        self.stores: dict[str, LogStore] = open_stores(config.sources, {r.source for r in rules})
        config.state.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = DaemonLock(config.state.path)
        self.lock.acquire()
        self.state = StateStore(config.state.path)
        self.state.release_claims()  # sends a crashed predecessor left unfinished are retried now
        self.dispatcher = Dispatcher.from_config(config, self.state)
        self.engine = Engine(rules, self.stores, self.state, config.route, dispatcher=self.dispatcher)
        self.watchdog = Watchdog(self.state, self.dispatcher, config.meta.store_failures)
        templates = Templates(config.templates, rules, config.sources)
        notifiers = {name: build_notifier(name, rcv, templates) for name, rcv in config.receivers.items()}
        self.outbox = Outbox(self.state, notifiers, clock=clock, breaker=CircuitBreaker())
        self.operations = Operations(config, rules)
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )

    # ------------------------------------------------------------------ jobs

    def tick(self) -> None:
        """Ingest new log lines (embedded sources), evaluate due rules, deliver."""
        now = self.clock()
        self._ingest(now)
        report = self.engine.tick(now)
        self.operations.tick_done(report, self.state, now)
        self.watchdog.tick_done(report, self.engine.rules, now)
        if report.evaluations:
            log.info(
                "tick evaluated %d rules: %d notifications, %d errors",
                report.evaluations,
                len(report.notifications),
                len(report.errors),
            )
        self.drain()
        self.release_memory()

    def drain(self) -> None:
        """Flush the routing groups that are due, deliver, and alert on dead receivers."""
        self.dispatcher.flush(self.clock())
        report = self.outbox.drain()
        self.watchdog.drain_done(report, self.clock())

    @staticmethod
    def release_memory() -> None:
        """Hand freed heap back to the OS after a tick (glibc keeps it otherwise): parsing a
        backlog of log lines or 1,000 rule files leaves tens of MB of free arenas behind."""
        gc.collect()
        if _LIBC is not None:
            _LIBC.malloc_trim(0)

    def reload_rules(self, rules: list[Rule], errors: list[str]) -> None:
        """Swap the rule set (hot reload) and raise or resolve the invalid-rules alert."""
        self.rules = rules
        self.engine.set_rules(rules)
        self.watchdog.rules_loaded(errors, self.clock())

    def _ingest(self, now: datetime) -> None:
        for name, source in self.config.sources.items():
            store = self.stores.get(name)
            if isinstance(source, EmbeddedSource) and isinstance(store, EmbeddedStore) and source.ingest:
                store.ingest_files(source.ingest, now=now)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.release_memory()  # what parsing the config and rule files left behind
        interval = tick_interval(self.rules)
        now = self.clock()
        first = aligned(now, interval) + interval
        self.scheduler.add_job(self.tick, "date", run_date=now, id="first-tick")
        self.scheduler.add_job(
            self.tick, IntervalTrigger(seconds=interval.total_seconds(), start_date=first), id="tick"
        )
        self.scheduler.add_job(self.drain, IntervalTrigger(seconds=1), id="drain")
        self.scheduler.start()
        self.operations.started()
        log.info("watcher started: %d rules, tick every %s", len(self.rules), interval)

    def stop(self, timeout: timedelta = timedelta(seconds=10)) -> None:
        """Let the in-flight job finish, flush the outbox once more, close databases."""
        log.info("stopping: finishing the in-flight tick")
        self.operations.stopping()
        self.scheduler.shutdown(wait=True)
        try:
            self.drain()
        finally:
            self.state.close()
            for store in self.stores.values():
                store.close()
            self.lock.release()
        log.info("stopped")

    def request_stop(self, signum: int = 0, frame: FrameType | None = None) -> None:
        self.stopping.set()

    def run_forever(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.start()
        self.stopping.wait()
        self.stop()
