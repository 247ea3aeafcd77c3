"""The metrics a Prometheus scrape of watcher shows."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from watcher.process.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.exposition()
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(process=False), Metrics(process=False)
    first.observe_evaluation("a", 0.2)
    assert ("watcher_rule_evaluations_total", (("rule", "a"),)) in samples(first)
    assert ("watcher_rule_evaluations_total", (("rule", "a"),)) not in samples(second)


def test_evaluations_errors_and_duration_per_rule() -> None:
    metrics = Metrics(process=False)
    metrics.observe_evaluation("p99", 0.02)
    metrics.observe_evaluation("p99", 0.3, error=True)
    metrics.observe_evaluation("ok-rule", 0.001)
    found = samples(metrics)
    assert found[("watcher_rule_evaluations_total", (("rule", "p99"),))] == 2
    assert found[("watcher_rule_errors_total", (("rule", "p99"),))] == 1
    assert found[("watcher_rule_errors_total", (("rule", "ok-rule"),))] == 0
    assert found[("watcher_rule_evaluation_seconds_count", (("rule", "p99"),))] == 2
    assert found[("watcher_rule_evaluation_seconds_bucket", (("le", "0.025"), ("rule", "p99")))] == 1


def test_the_evaluation_histogram_reads_as_prometheus_client_writes_it() -> None:
    metrics = Metrics(process=False)
    for seconds in (0.004, 0.005, 0.3, 61.0):
        metrics.observe_evaluation("slow", seconds)
    found = samples(metrics)

    def bucket(le: str) -> float:
        return found[("watcher_rule_evaluation_seconds_bucket", (("le", le), ("rule", "slow")))]

    assert [bucket(le) for le in ("0.005", "0.25", "0.5", "60.0", "+Inf")] == [2, 2, 3, 3, 4]
    assert found[("watcher_rule_evaluation_seconds_count", (("rule", "slow"),))] == 4
    assert found[("watcher_rule_evaluation_seconds_sum", (("rule", "slow"),))] == 0.004 + 0.005 + 0.3 + 61.0
    assert ("watcher_rule_evaluation_seconds_created", (("rule", "slow"),)) in found
    assert ("watcher_rule_evaluations_created", (("rule", "slow"),)) in found


def test_a_deleted_rule_stops_being_exported() -> None:
    metrics = Metrics(process=False)
    metrics.observe_evaluation("gone", 0.1, error=True)
    metrics.forget_rule("gone")
    metrics.forget_rule("never-seen")
    assert not [key for key in samples(metrics) if ("rule", "gone") in key[1]]


def test_incidents_by_state_reset_missing_open_states_to_zero() -> None:
    metrics = Metrics(process=False)
    metrics.set_incidents({"firing": 3, "pending": 1})
    metrics.set_incidents({"firing": 2})
    found = samples(metrics)
    assert found[("watcher_incidents", (("state", "firing"),))] == 2
    assert found[("watcher_incidents", (("state", "pending"),))] == 0


def test_notifications_per_receiver_and_outbox_depth() -> None:
    metrics = Metrics(process=False)
    metrics.notification_sent("ml-slack")
    metrics.notification_failed("ml-slack", retrying=True)
    metrics.notification_failed("ml-slack", retrying=False)
    metrics.outbox_depth.set(4)
    found = samples(metrics)
    assert found[("watcher_notifications_sent_total", (("receiver", "ml-slack"),))] == 1
    assert found[("watcher_notifications_failed_total", (("receiver", "ml-slack"),))] == 2
    assert found[("watcher_notifications_retried_total", (("receiver", "ml-slack"),))] == 1
    assert found[("watcher_outbox_depth", ())] == 4


def test_store_round_trips_and_last_success() -> None:
    metrics = Metrics(process=False)
    at = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    metrics.store_called("ml-api", ok=True, at=at)
    metrics.store_called("ml-api", ok=False)
    found = samples(metrics)
    assert found[("watcher_store_round_trips_total", (("source", "ml-api"),))] == 2
    assert found[("watcher_store_last_success_timestamp_seconds", (("source", "ml-api"),))] == at.timestamp()


def test_reloads_and_rules_loaded() -> None:
    metrics = Metrics(process=False)
    metrics.rules_loaded.set(4)
    metrics.reloaded(ok=True)
    metrics.reloaded(ok=False)
    found = samples(metrics)
    assert found[("watcher_rules_loaded", ())] == 4
    assert found[("watcher_config_reloads_total", (("result", "failure"),))] == 1


def test_process_metrics_are_included_by_default() -> None:
    assert any(name == "process_cpu_seconds_total" for name, _ in samples(Metrics()))


def test_openmetrics_when_the_scraper_asks_for_it() -> None:
    body, content_type = Metrics(process=False).exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
