"""What operators see of a running daemon: /metrics, /healthz, /readyz and systemd's sd_notify.

The daemon calls these hooks at start, after each tick and at stop; they hold no alerting logic.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from watcher.config import Config
from watcher.incidents.model import OPEN
from watcher.incidents.state import StateStore
from watcher.notify.outbox import DrainReport
from watcher.process.health import Health
from watcher.process.http import HttpServer, start_http_server
from watcher.process.metrics import Metrics
from watcher.process.systemd import Notify, Watchdog, watchdog_interval
from watcher.rules.models import Rule
from watcher.schedule import tick_interval
from watcher.tick_report import TickReport

log = logging.getLogger("watcher.process.operations")


class Operations:
    """Metrics, health and systemd notifications for one daemon."""

    def __init__(self, config: Config, rules: list[Rule]) -> None:
        self.config = config
        self.health = Health()
        self.metrics = Metrics()
        self.notify = Notify()
        self.watchdog = Watchdog(self.notify, lambda: self.health.liveness().ok, watchdog_interval())
        self.http: HttpServer | None = None
        self.rules: dict[str, Rule] = {}
        self.rules_changed(rules, ())

    def listen(self) -> None:
        """Bind the HTTP port, before any job runs: a port in use stops the start right there."""
        if self.config.http.enabled:
            self.http = start_http_server(self.config.http.listen, self.metrics, self.health)
            log.info("serving /metrics, /healthz and /readyz on %s", self.http.url)

    def started(self) -> None:
        self.watchdog.start()
        self.notify.ready(f"{len(self.rules)} rules loaded")

    def rules_changed(self, rules: Sequence[Rule], removed: Sequence[str]) -> None:
        """After a reload: readiness and gauges follow the new rule set; removed rules' series go."""
        self.rules = {rule.name: rule for rule in rules}
        interval = tick_interval(rules)
        longest = max((rule.every for rule in rules), default=interval)
        # Margins of three intervals, so a slow tick or a rule that runs every 5m is not "stale".
        self.health.heartbeat_max_age = max(timedelta(minutes=2), 3 * interval)
        self.health.store_max_age = max(timedelta(minutes=5), 3 * longest)
        self.health.rules_loaded(len(rules))
        self.health.expect_sources({rule.source for rule in rules})
        self.metrics.rules_loaded.set(len(rules))
        for name in removed:
            self.metrics.forget_rule(name)

    def tick_done(self, report: TickReport, state: StateStore, now: datetime) -> None:
        self.health.heartbeat(now)
        for evaluation in report.evaluated:
            self.metrics.observe_evaluation(evaluation.rule, evaluation.seconds, error=evaluation.error)
        for source in report.round_trips:
            # The store counts as failed when every rule on it failed (one bad rule is not an outage).
            own = {name for name, rule in self.rules.items() if rule.source == source}
            ok = not own or not own <= report.errors.keys()
            self.metrics.store_called(source, ok=ok, at=now)
            if ok:
                self.health.store_reached(source, now)
            else:
                self.health.store_failed(source, "evaluation failed: see the log")
        active = state.incidents(states=OPEN) if report.open is None else list(report.open.values())
        counts = Counter(incident.state.value for incident in active)
        self.metrics.set_incidents(counts)
        self.metrics.flapping.set(sum(incident.flapping for incident in active))
        self.metrics.outbox_depth.set(state.outbox_depth())

    def replica_beat(self, held: int, alive: int) -> None:
        """After a beat of this replica (``ha:``): ready only while it holds partitions."""
        self.health.partitions_held(held, alive)

    def drain_done(self, report: DrainReport, outbox_depth: int | None = None) -> None:
        """Count one drain's deliveries per receiver: each failed attempt is a failure, and a
        retried one is also a retry (a dead letter is not). ``outbox_depth``, when the drain
        changed it, updates the gauge between ticks."""
        if outbox_depth is not None:
            self.metrics.outbox_depth.set(outbox_depth)
        for receiver in report.sent_to.elements():
            self.metrics.notification_sent(receiver)
        for receiver in report.retried_to.elements():
            self.metrics.notification_failed(receiver, retrying=True)
        for receiver in report.dead_to.elements():
            self.metrics.notification_failed(receiver, retrying=False)

    def stopping(self) -> None:
        self.notify.stopping("finishing the in-flight tick")
        self.watchdog.stop()
        if self.http is not None:
            self.http.close()
