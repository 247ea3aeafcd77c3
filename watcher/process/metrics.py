"""The Prometheus metrics watcher exposes on ``/metrics``.

Every metric lives on the ``CollectorRegistry`` of one ``Metrics`` object rather than on
prometheus-client's global default registry, so each daemon (and each test) gets a fresh,
isolated set of series. The daemon creates one ``Metrics`` at start and passes it to the
stages that record into it and to the HTTP server that serves it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import choose_encoder
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from watcher.incidents.model import OPEN
from watcher.process.rule_metrics import RuleMetrics

# Rule evaluations are one batched store call plus pure detection: milliseconds when healthy,
# up to the store timeout (30s by default) when not.
EVALUATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """One isolated set of watcher's metrics.

    Attributes are the prometheus-client metric objects themselves, so a stage may also use the
    library API directly (``metrics.outbox_depth.set(3)``); the methods below cover the common
    updates in one call each. The per-rule series (three per rule) are ``rules``, a compact
    collector (``watcher.process.rule_metrics``): with 1,000 rules prometheus-client's own objects took
    4.6 MB.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        if process:
            # Process metrics (memory, CPU, open fds, start time) as the default registry would have.
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        reg = self.registry
        self._replica: ReplicaMetrics | None = None
        self.rules = RuleMetrics(EVALUATION_BUCKETS)
        reg.register(self.rules)
        self.rules_loaded = Gauge(
            "watcher_rules_loaded", "Rules currently loaded and scheduled.", registry=reg
        )
        self.config_reloads = Counter(
            "watcher_config_reloads", "Reloads of watcher.yaml and the rule files.", ["result"], registry=reg
        )
        self.incidents = Gauge("watcher_incidents", "Incidents by state.", ["state"], registry=reg)
        self.flapping = Gauge("watcher_incidents_flapping", "Incidents flapping now.", registry=reg)
        self.notifications_sent = Counter(
            "watcher_notifications_sent", "Notifications delivered.", ["receiver"], registry=reg
        )
        self.notifications_failed = Counter(
            "watcher_notifications_failed",
            "Notification send attempts that failed (each attempt counts).",
            ["receiver"],
            registry=reg,
        )
        self.notifications_retried = Counter(
            "watcher_notifications_retried",
            "Notifications scheduled for another attempt after a failure.",
            ["receiver"],
            registry=reg,
        )
        self.outbox_depth = Gauge(
            "watcher_outbox_depth", "Notifications waiting in the outbox.", registry=reg
        )
        self.state_write_errors = Counter(
            "watcher_state_write_errors",
            "Ticks and drains whose write to the state file failed (disk full, I/O error).",
            registry=reg,
        )
        self.store_round_trips = Counter(
            "watcher_store_round_trips",
            "Calls to a log store (one per source per tick).",
            ["source"],
            registry=reg,
        )
        self.ingest_rejected = Counter(
            "watcher_ingest_rejected",
            "Log lines skipped at ingestion, by reason (not_json, missing_timestamp, bad_timestamp, ...).",
            ["source", "reason"],
            registry=reg,
        )
        self.store_last_success = Gauge(
            "watcher_store_last_success_timestamp_seconds",
            "Unix time of the last successful call to a log store.",
            ["source"],
            registry=reg,
        )

    def replica(self) -> ReplicaMetrics:
        """The series of one replica sharing its state with others (``ha:``), registered once."""
        if self._replica is None:
            self._replica = ReplicaMetrics(self.registry)
        return self._replica

    # ------------------------------------------------------------------ updates

    def observe_evaluation(self, rule: str, seconds: float, *, error: bool = False) -> None:
        """Record one evaluation of ``rule`` that took ``seconds``. A rule with no errors yet
        shows ``0`` rather than no series, which keeps ``rate(watcher_rule_errors_total[5m])``
        alerts simple."""
        self.rules.observe(rule, seconds, error=error)

    def forget_rule(self, rule: str) -> None:
        """Drop a deleted rule's series so they stop being exported after a reload."""
        self.rules.forget(rule)

    def set_incidents(self, counts: Mapping[str, int]) -> None:
        """Set the incident gauge from ``{state: count}``; open states missing from ``counts`` read 0."""
        for open_state in OPEN:
            self.incidents.labels(state=open_state.value).set(0)
        for state, count in counts.items():
            self.incidents.labels(state=str(state)).set(count)

    def store_called(self, source: str, *, ok: bool, at: datetime | None = None) -> None:
        """Record one round trip to ``source``; ``at`` (when ``ok``) is when it answered."""
        self.store_round_trips.labels(source=source).inc()
        if ok:
            gauge = self.store_last_success.labels(source=source)
            if at is None:
                gauge.set_to_current_time()
            else:
                gauge.set(at.timestamp())

    def lines_rejected(self, source: str, skipped: Mapping[str, int]) -> None:
        """Count the log lines an ingestion of ``source`` skipped, ``{reason: lines}``."""
        for reason, count in skipped.items():
            self.ingest_rejected.labels(source=source, reason=reason).inc(count)

    def notification_sent(self, receiver: str) -> None:
        self.notifications_sent.labels(receiver=receiver).inc()

    def notification_failed(self, receiver: str, *, retrying: bool) -> None:
        """A send attempt failed; ``retrying`` when the outbox will try again (else dead letter)."""
        self.notifications_failed.labels(receiver=receiver).inc()
        if retrying:
            self.notifications_retried.labels(receiver=receiver).inc()

    def reloaded(self, *, ok: bool) -> None:
        self.config_reloads.labels(result="success" if ok else "failure").inc()

    # ------------------------------------------------------------------ exposition

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The scrape body and its content type, in the format the ``Accept`` header asks for
        (Prometheus text by default, OpenMetrics when requested)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class ReplicaMetrics:
    """What a replica holds and how its leases go (``watcher.process.partitions``); each replica
    serves its own on ``/metrics``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.partitions_held = Gauge(
            "watcher_ha_partitions_held", "Rule partitions this replica holds a lease on.", registry=registry
        )
        self.replicas_alive = Gauge(
            "watcher_ha_replicas_alive", "Replicas that heartbeat within the lease.", registry=registry
        )
        self.lease_renewals = Counter(
            "watcher_ha_lease_renewals",
            "Partition leases renewed (one per partition per beat).",
            registry=registry,
        )
        self.takeovers = Counter(
            "watcher_ha_takeovers",
            "Partitions taken over from a replica whose lease expired.",
            registry=registry,
        )
        self.fenced_writes = Counter(
            "watcher_ha_fenced_writes",
            "Ticks whose writes were refused because a partition's lease had moved on (fencing).",
            registry=registry,
        )
