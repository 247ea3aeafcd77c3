"""The long-running daemon: APScheduler wiring, signals and graceful shutdown.

It holds no alerting logic. One scheduler job ticks the engine on the rules' common grid
(rules due at the same tick share one store round trip per source); another flushes the routing
groups every second and wakes the delivery workers. Both run on one scheduler thread, so ticks,
routing and the stores are never used concurrently within the process. Sending runs on one
delivery worker thread per receiver (``watcher.notify.workers``), so a receiver that hangs delays
no other; the workers only claim, send and record outbox rows (the state file serialises them). The scheduler
runs its jobs through a ``WriteGuard``: a job that cannot write watcher's files (a full disk) is caught
there, logged once a minute, turns ``/readyz`` 503 and sends ``watcher:state-unwritable``
directly (``watcher.process.write_guard``).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watcher.config import Config, EmbeddedSource
from watcher.engine import Engine
from watcher.notify.breaker import CircuitBreaker
from watcher.notify.outbox import Outbox, RetryPolicy
from watcher.notify.workers import DeliveryWorkers
from watcher.process import memory, receivers
from watcher.process.health import Clock, wall_clock
from watcher.process.meta import Watchdog
from watcher.process.operations import Operations
from watcher.process.partitions import LeaseLostError, Replica
from watcher.process.reload import (
    Reload,
    Reloader,
    orphans,
    reroute_incidents,
    retire_incidents,
    routes_changed,
)
from watcher.process.write_guard import TICK, DirectAlert, WriteError, WriteGuard
from watcher.routing.dispatch import Dispatcher
from watcher.rules.loader import ConfigError
from watcher.rules.models import Rule
from watcher.schedule import aligned, tick_interval
from watcher.state.factory import daemon_lock, open_state
from watcher.store.base import LogStore, live_partials
from watcher.store.embedded import EmbeddedStore
from watcher.store.factory import open_store, open_stores
from watcher.template_errors import rule_errors
from watcher.templates import Templates

log = logging.getLogger("watcher.process.daemon")


class Daemon:
    """Wires config, rules, stores, state and notifiers to a scheduler."""

    def __init__(
        self,
        config: Config,
        rules: list[Rule],
        clock: Clock = wall_clock,
        *,
        config_path: Path | None = None,
        files: Mapping[str, Path] | None = None,
    ) -> None:
        """``config_path`` (and ``files``, rule name -> file) enable hot reload."""
        self.config = config
        self.rules = rules
        self.clock = clock
        self.stopping = threading.Event()
        self.stores: dict[str, LogStore] = open_stores(config.sources, {r.source for r in rules})
        self.lock = daemon_lock(config.state, shared=config.ha is not None)
        self.lock.acquire()
        self.state = open_state(config.state)
        # Sends a crashed predecessor left unfinished are retried now; on a shared state only those
        # whose claim's lease ran out (another replica may be sending the others).
        self.state.release_claims(clock())
        self.dispatcher = Dispatcher.from_config(config, self.state)
        self.engine = Engine(
            rules,
            self.stores,
            self.state,
            config.route,
            dispatcher=self.dispatcher,
            partials=live_partials,
            gaps=config.gaps,
        )
        self.watchdog = Watchdog(self.state, self.dispatcher, config.meta.store_failures)
        self.templates = Templates(config.templates, rules, config.sources)
        self.outbox = Outbox(
            self.state,
            receivers.notifiers(config, self.templates),
            RetryPolicy.from_config(config.delivery.retry),
            clock=clock,
            breaker=CircuitBreaker.from_config(config.delivery.breaker, self.state),
        )
        self.operations = Operations(config, rules)
        self.replica = (
            None
            if config.ha is None
            else Replica(self.state, config.ha, clock, metrics=self.operations.metrics.replica())
        )
        self.workers = DeliveryWorkers(self.outbox, self.state, clock)
        self.actions = receivers.slack_actions(config, self.state, clock)
        alert = DirectAlert(lambda incident: self.dispatcher.routes(incident), lambda: self.outbox.notifiers)
        health, metrics = self.operations.health, self.operations.metrics
        self.guard = WriteGuard(self.state, health, metrics, alert, clock)
        self.beat()  # partitions held before the start's first tick and its orphans
        self.reloader = Reloader(config_path, config, files or {}, rules) if config_path is not None else None
        self._interval: timedelta | None = None  # the tick's, once scheduled
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )

    # ------------------------------------------------------------------ jobs

    def tick_job(self) -> None:
        """The scheduler's tick: a failed write is handled at this boundary (``WriteGuard``)."""
        self.guard.run(TICK, self.tick)

    def drain_job(self) -> None:
        self.guard.run("drain", self.drain)

    def tick(self) -> None:
        """Ingest new log lines (embedded sources), evaluate due rules, deliver."""
        now = self.clock()
        self._ingest(now)
        memory.trim()  # DuckDB's insert buffers go back before the fused query takes its own
        if self.replica is None:
            report = self.engine.tick(now)
        else:
            self.beat(now)  # leases renewed every tick, so the tick runs on what is held now
            try:
                report = self.engine.tick(now, self.replica)
            except LeaseLostError as lost:  # paused past its lease: another replica owns these rules now
                self.replica.fenced(lost)
                return
        self.operations.tick_done(report, self.state, now)
        self.watchdog.tick_done(report, self.engine.rules, now)
        if report.evaluated and log.isEnabledFor(logging.DEBUG):  # what was committed, rule by rule
            evaluations = [f"{item.rule}@{item.at.isoformat()}" for item in report.evaluated]
            replica = {} if self.replica is None else {"replica": self.replica.id}
            log.debug("committed evaluations", extra={"evaluations": evaluations, **replica})
        if report.evaluations:
            log.info(
                "tick evaluated %d rules: %d notifications, %d errors",
                report.evaluations,
                len(report.notifications),
                len(report.errors),
            )
        self.drain()
        self.release_memory()

    def beat_job(self) -> None:
        """Every ``ha.heartbeat``: the replica's heartbeat and leases (a database it cannot reach
        is reported by the write guard: ``/readyz`` 503 and ``watcher:state-unwritable``); the
        replica holding partition 0 raises ``watcher:replicas-missing`` for all."""
        self.guard.run("leases", self._heartbeat)

    def _heartbeat(self) -> None:
        now = self.clock()
        self.beat(now)
        if self.replica is not None and self.replica.leads:
            self.watchdog.replicas_seen(self.replica.alive, self.replica.config, now)

    def beat(self, now: datetime | None = None) -> None:
        """Heartbeat, renew and rebalance this replica's leases (nothing without ``ha``)."""
        if self.replica is not None:
            self.replica.beat(now)
            self.operations.replica_beat(len(self.replica.held), self.replica.alive)

    def drain(self, until: datetime | None = None) -> None:
        """Flush the routing groups that are due and deliver, then report what was delivered and
        alert on dead receivers. Once started, the delivery workers send (one per receiver, so a
        hanging receiver delays no other): this wakes them and collects what they did. Before
        ``start`` (tests, a stop without start) it delivers here; no send starts after ``until``."""
        flushed = self.dispatcher.flush(self.clock())
        if self.workers.running:
            self.workers.wake()
            report, errors = self.workers.collected()
        else:
            report, errors = self.outbox.drain(until=until), []
        self.operations.drain_done(report, self.state.outbox_depth() if flushed or report.attempted else None)
        self.watchdog.drain_done(report, self.clock())
        if errors:  # a worker could not write the state file: the write guard reports it
            raise errors[0]

    @staticmethod
    def release_memory() -> None:
        """Hand freed heap back to the OS after a tick (glibc and DuckDB's jemalloc keep it
        otherwise): a tick's fused query, a backlog of log lines or 1,000 rule files leave tens of
        MB of free arenas behind (``watcher.process.memory``)."""
        memory.release()

    def rule_errors_found(self, errors: list[str]) -> None:
        """At start: the rule files' errors raise (or, when empty, resolve) the invalid-rules alert."""
        self.watchdog.rules_loaded(errors, self.clock())

    def template_problems(self, files: Mapping[str, Path]) -> list[str]:
        """Mistakes in the rules' annotations and template overrides, logged. The rule still runs
        (a broken annotation is sent as its source and error, an override falls back to the default
        template); they count as rule errors for the
        ``watcher:rules-invalid`` alert, so they are fixed before someone reads a raw template."""
        problems = [str(error) for error in rule_errors(self.templates, self.rules, files)]
        for problem in problems:
            log.error("template mistake in a rule (it still runs): %s", problem)
        return problems

    def retire_orphans(self) -> None:
        """At start, after a clean load: end the incidents of rules removed while watcher was
        stopped. (With load errors a missing rule may only be broken, so nothing is ended.)"""
        found = orphans(self.state, self.engine.rules)
        retire_incidents(self.state, self.dispatcher, found, self.clock(), self.replica)

    def request_reload(self, signum: int = 0, frame: FrameType | None = None) -> None:
        """SIGHUP: reload watcher.yaml and the rules at the next poll, changed or not."""
        if self.reloader is not None:
            self.reloader.request()

    def reload(self) -> None:
        """The reload job: when a watched file changed (or on request), load and apply."""
        reloader, running = self.reloader, self.engine.rules
        if reloader is None or not reloader.due():
            return
        try:
            # Rebuilt: parsing every rule file again would leave the new rules in its garbage's holes.
            loaded = memory.rebuilt(lambda: reloader.load(running))
        except ConfigError as exc:
            for error in exc.errors:
                log.error("reload failed, keeping the running config: %s", error)
            self.operations.metrics.reloaded(ok=False)
            self.watchdog.rules_loaded([str(error) for error in exc.errors], self.clock())
            return
        self.apply(loaded)

    def apply(self, loaded: Reload) -> None:
        """Run the reloaded config and rules (``RELOADING=1`` … ``READY=1`` to systemd)."""
        self.operations.notify.reloading()
        try:
            self._apply(loaded)
        finally:
            self.operations.notify.ready(f"{len(self.rules)} rules loaded")

    def _apply(self, loaded: Reload) -> None:
        """Retire the incidents of rules that are gone, swap stores, routes, receivers and
        templates, and re-plan the tick if the grid changed."""
        assert self.reloader is not None
        changes, config, now = loaded.changes, loaded.config, self.clock()
        try:  # built first: a receiver that cannot be built leaves everything as it was
            templates = Templates(config.templates, changes.rules, config.sources)
            notifiers = receivers.notifiers(config, templates)
        except Exception as exc:
            log.error("reload failed, keeping the running config: %s", exc)
            self.operations.metrics.reloaded(ok=False)
            self.watchdog.rules_loaded([f"{self.reloader.config_path}: {exc}"], now)
            return
        for error in changes.errors:
            log.error("rule file error, keeping the last good version: %s", error)
        self._open_stores(config, changes.rules)
        rerouted = routes_changed(self.config, config)
        self.config, self.rules, self.outbox.notifiers = config, changes.rules, notifiers
        if self.workers.running:
            self.workers.sync(notifiers)
        self.templates = templates
        self.outbox.policy = RetryPolicy.from_config(config.delivery.retry)  # for the next attempts
        if self.outbox.breaker is not None:  # new thresholds; open circuits stay open
            self.outbox.breaker.configure(config.delivery.breaker)
        self.dispatcher = Dispatcher.from_config(config, self.state)
        self.engine.dispatcher, self.engine.route = self.dispatcher, config.route
        self.engine.gaps = config.gaps
        self.engine.set_rules(changes.rules)
        self.watchdog.dispatcher, self.watchdog.store_failures = self.dispatcher, config.meta.store_failures
        retire_incidents(self.state, self.dispatcher, changes.retired, now, self.replica)
        if rerouted:
            reroute_incidents(self.state, self.dispatcher, now)
        self.operations.rules_changed(changes.rules, changes.removed)
        errors = changes.errors + self.template_problems(changes.files)
        self.operations.metrics.reloaded(ok=not errors)
        self.watchdog.rules_loaded(errors, now)
        self.reloader.loaded(loaded)
        self._plan_ticks(now)
        log.info("reloaded: %s", changes.summary())
        memory.freeze()  # parsing every rule file again leaves garbage and free arenas behind

    def _open_stores(self, config: Config, rules: Sequence[Rule]) -> None:
        """Close the stores no rule uses any more or whose source changed; open the missing ones.
        A store that cannot be opened is logged: its rules fail and raise the store alert."""
        wanted = {rule.source for rule in rules} & config.sources.keys()
        for name in list(self.stores):
            if name not in wanted or config.sources[name] != self.config.sources.get(name):
                self.stores.pop(name).close()
        for name in sorted(wanted - self.stores.keys()):
            try:
                self.stores[name] = open_store(config.sources[name])
            except Exception as exc:
                log.error("source %s: cannot open the store: %s", name, exc, extra={"source": name})

    def _ingest(self, now: datetime) -> None:
        for name, source in self.config.sources.items():
            store = self.stores.get(name)
            if not isinstance(source, EmbeddedSource) or not isinstance(store, EmbeddedStore):
                continue
            if source.ingest:
                try:  # a failed ingest commits nothing and keeps its offsets: the lines wait
                    report = store.ingest_files(source.ingest, now=now)
                except Exception as exc:  # the tick stops: no rule runs on a store missing lines
                    raise WriteError(f"embedded store {name}", exc) from exc
                self.operations.metrics.lines_rejected(name, report.skipped)
            store.trim_cache()  # what it wrote and read stays cached otherwise: RSS grows with it

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        memory.freeze()  # what parsing left behind is collected; what lives on is never walked again
        # The port first: in use, the start stops before the scheduler runs a job (stopping a
        # scheduler in the middle of its first job could print a traceback).
        self.operations.listen()
        now = self.clock()
        self.scheduler.add_job(self.tick_job, "date", run_date=now, id="first-tick")
        self._plan_ticks(now)
        self.scheduler.add_job(self.drain_job, IntervalTrigger(seconds=1), id="drain")
        if self.config.ha is not None:
            every = self.config.ha.heartbeat.total_seconds()
            self.scheduler.add_job(self.beat_job, IntervalTrigger(seconds=every), id="leases")
        if self.reloader is not None:
            every = self.config.reload.interval.total_seconds()
            self.scheduler.add_job(self.reload, IntervalTrigger(seconds=every), id="reload")
        self.workers.sync(self.outbox.notifiers)
        if self.actions is not None:
            self.actions.start()
        self.scheduler.start()
        self.operations.started()
        log.info("watcher started: %d rules, tick every %s", len(self.rules), tick_interval(self.rules))

    def _plan_ticks(self, now: datetime) -> None:
        """(Re)schedule the tick on the rules' common grid; a reload may change the grid."""
        interval = tick_interval(self.rules)
        if interval == self._interval:
            return
        self._interval = interval
        first = aligned(now, interval) + interval
        trigger = IntervalTrigger(seconds=interval.total_seconds(), start_date=first)
        self.scheduler.add_job(self.tick_job, trigger, id="tick", replace_existing=True)

    def stop(self, flush_timeout: timedelta | None = None) -> None:
        """Let the in-flight job finish, flush the outbox for at most ``flush_timeout`` (default:
        ``delivery.flush_timeout``, 10s; plus one send's own timeout), close databases. What is not
        sent by then is sent at the next start."""
        log.info("stopping: finishing the in-flight tick")
        self.operations.stopping()
        if self.scheduler.running:  # not yet when the port was in use
            self.scheduler.shutdown(wait=True)
        if self.actions is not None:
            self.actions.stop()
        if flush_timeout is None:
            flush_timeout = self.config.delivery.flush_timeout
        try:
            until = self.clock() + flush_timeout
            self.guard.run("drain", lambda: self.drain(until=until))
            # Each worker finishes its send in flight and sends what is due until ``until``.
            self.workers.stop(until, join=flush_timeout + receivers.longest_send(self.config))
            left = self.state.outbox_depth()
            if left:
                log.warning(
                    "stopping with %d notifications in the outbox: they are sent at the next start", left
                )
        finally:
            if self.replica is not None:
                self.guard.run("leases", self.replica.leave)  # the others take over at once
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
        signal.signal(signal.SIGHUP, self.request_reload)
        self.start()
        self.stopping.wait()
        self.stop()
