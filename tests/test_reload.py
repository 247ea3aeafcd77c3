"""Hot reload in process: ending the incidents of retired rules on a real state file, and a
``Daemon`` (scheduler paused, fake clock) reloading edited files in ``tmp_path``."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from apscheduler.triggers.interval import IntervalTrigger

from tests.e2e.daemon import write_config
from tests.test_engine import rule
from watcher.cli.common import load
from watcher.config import Config, Route
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.state import StateStore
from watcher.notify.base import Delivery
from watcher.notify.outbox import RetryPolicy
from watcher.process.daemon import Daemon
from watcher.process.meta import RULES_INVALID
from watcher.process.reload import Reloader, kept_restart_only, orphans, retire_incidents
from watcher.routing.dispatch import Dispatcher
from watcher.rules.loader import ConfigError, load_config
from watcher.rules.models import ThresholdSpec
from watcher.rules.reload import Retired
from watcher.tick_report import Transition

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
FAR = T0 + timedelta(days=1)
ROUTE = Route.model_validate(
    {"receiver": "slack", "group_by": ["rule"], "group_wait": "0s", "group_interval": "1s"}
)
GONE = "rule api-5xx was removed from rules/api.yaml"


def incident(rule: str, model: str, state: State = State.FIRING, at: datetime = T0) -> Incident:
    group = {"model_version": model}
    return Incident(
        fingerprint=fingerprint(rule, group),
        rule=rule,
        group=group,
        labels={"rule": rule, "severity": "critical", "model_version": model},
        annotations={},
        severity="critical",
        state=state,
        value=0.2,
        threshold=0.05,
        started_at=at,
        fired_at=at if state is State.FIRING else None,
    )


def opened(state: StateStore, dispatcher: Dispatcher, *incidents: Incident) -> None:
    """Commit ``incidents`` as a tick would, their firing notified and delivered."""
    transitions = [Transition(i, Event.FIRING, T0) for i in incidents if i.state is State.FIRING]
    dispatch = dispatcher.plan(transitions, T0)
    state.commit(incidents, notifications=dispatch.notifications, writes=[dispatch.write])
    for item in state.due_notifications(FAR):
        state.mark_delivered(item.notification.id, T0)


# ---------------------------------------------------------------------- retire_incidents


def test_a_retired_rules_firing_incident_resolves_and_its_pending_one_goes(state: StateStore) -> None:
    dispatcher = Dispatcher(state, ROUTE)
    firing, pending = incident("api-5xx", "v3"), incident("api-5xx", "v4", State.PENDING)
    other = incident("latency", "v3")
    opened(state, dispatcher, firing, pending, other)
    firing = firing.evolve(last_notified_at=T0)  # as its firing was told
    now = T0 + 5 * MIN

    transitions = retire_incidents(state, dispatcher, [Retired("api-5xx", GONE)], now)

    ended = firing.evolve(state=State.RESOLVED, resolved_at=now, last_evaluated_at=now, note=GONE)
    assert transitions == [Transition(ended, Event.RESOLVED, now)]
    (stored,) = state.incidents(rule="api-5xx")
    assert stored == ended.evolve(last_notified_at=now)
    assert state.incidents(rule="latency") == [other.evolve(last_notified_at=T0)]
    (item,) = state.due_notifications(FAR)
    assert (item.notification.receiver, item.notification.event) == ("slack", Event.RESOLVED)
    assert [i.note for i in item.notification.incidents] == [GONE]

    assert retire_incidents(state, dispatcher, [Retired("api-5xx", GONE)], now + MIN) == []
    assert state.outbox_depth() == 1  # a second reload has nothing left to end


def test_retiring_rules_without_open_incidents_writes_nothing(state: StateStore) -> None:
    dispatcher = Dispatcher(state, ROUTE)
    opened(state, dispatcher, incident("latency", "v3"))
    assert retire_incidents(state, dispatcher, [], T0) == []
    assert retire_incidents(state, dispatcher, [Retired("api-5xx", GONE)], T0) == []
    assert [i.state for i in state.incidents()] == [State.FIRING]
    assert state.outbox_depth() == 0


# ---------------------------------------------------------------------- orphans


def test_orphans_are_open_incidents_of_rules_no_longer_defined(state: StateStore) -> None:
    opened(
        state,
        Dispatcher(state, ROUTE),
        incident("api-5xx", "v3"),
        incident("old-rule", "v3"),
        incident("old-pending", "v3", State.PENDING),
        incident("ancient", "v3", State.RESOLVED),
        incident(RULES_INVALID, "v3"),
    )
    assert orphans(state, {"api-5xx": rule()}) == [
        Retired("old-pending", "rule old-pending is no longer defined in the rule files"),
        Retired("old-rule", "rule old-rule is no longer defined in the rule files"),
    ]
    defined = {name: rule(name=name) for name in ("api-5xx", "old-rule", "old-pending")}
    assert orphans(state, defined) == []
    # A rule disabled while watcher was stopped is not evaluated any more: its incidents end too.
    assert orphans(state, defined | {"old-rule": rule(name="old-rule", enabled=False)}) == [
        Retired("old-rule", "rule old-rule was disabled")
    ]


# ---------------------------------------------------------------------- kept_restart_only


def config(**fields: Any) -> Config:
    return Config.model_validate({"sources": {"app": {"store": "embedded"}}, **fields})


def test_state_and_http_changes_wait_for_a_restart(caplog: pytest.LogCaptureFixture) -> None:
    running = config(state={"path": "/var/lib/watcher/state.sqlite"})
    new = config(
        state={"path": "/tmp/other.sqlite"},
        http={"listen": "127.0.0.1:9999"},
        route={"receiver": "console", "group_wait": "5s"},
    )
    with caplog.at_level(logging.WARNING, logger="watcher.process.reload"):
        kept = kept_restart_only(new, running)
    assert (kept.state, kept.http) == (running.state, running.http)
    assert kept.route == new.route
    assert caplog.messages == ["watcher.yaml: changes to state and http take effect after a restart"]


def test_ha_changes_wait_for_a_restart(caplog: pytest.LogCaptureFixture) -> None:
    """Replicas hash rules into the same partitions only with the same ``ha``: all restart with a new one."""
    state = {"url": "postgresql://watcher:secret@db:5432/watcher"}
    running = config(state=state, ha={"replicas": 3, "partitions": 64})
    new = config(state=state, ha={"replicas": 3, "partitions": 128})
    with caplog.at_level(logging.WARNING, logger="watcher.process.reload"):
        assert kept_restart_only(new, running).ha == running.ha
    assert caplog.messages == ["watcher.yaml: changes to ha take effect after a restart"]


def test_a_config_with_the_same_state_and_http_is_used_as_it_is(caplog: pytest.LogCaptureFixture) -> None:
    new = config(route={"receiver": "console", "group_wait": "5s"})
    with caplog.at_level(logging.WARNING, logger="watcher.process.reload"):
        assert kept_restart_only(new, config()) is new
    assert caplog.messages == []


# ---------------------------------------------------------------------- the daemon


RULE: dict[str, Any] = {
    "name": "app-errors",
    "source": "app",
    "every": "1m",
    "signal": {"ratio": {"of": {"status": {"gte": 500}}}},
    "threshold": {"above": 0.5},
}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon on a config in ``tmp_path`` whose scheduler runs paused: no job ever runs, but
    jobs are (re)scheduled as in production."""
    path = write_config(tmp_path, [RULE])
    loaded = load(path)
    running = Daemon(loaded.config, loaded.rules, clock=lambda: T0, config_path=path, files=loaded.files)
    running.scheduler.start(paused=True)
    try:
        yield running
    finally:
        running.stop()


def reloaded(daemon: Daemon) -> None:
    daemon.request_reload()
    daemon.reload()


def tick_trigger(daemon: Daemon) -> IntervalTrigger:
    job = daemon.scheduler.get_job("tick")
    assert job is not None
    assert isinstance(job.trigger, IntervalTrigger)
    return job.trigger


def reloads(daemon: Daemon, result: str) -> float | None:
    registry = daemon.operations.metrics.registry
    return registry.get_sample_value("watcher_config_reloads_total", {"result": result})


def test_a_new_rule_file_runs_and_the_tick_follows_its_grid(daemon: Daemon, tmp_path: Path) -> None:
    reloaded(daemon)  # nothing changed: the tick is planned on the 1m grid, as at start
    assert tick_trigger(daemon).interval == MIN
    (tmp_path / "rules" / "fast.yaml").write_text(yaml.safe_dump({**RULE, "name": "fast", "every": "20s"}))
    reloaded(daemon)
    assert sorted(daemon.engine.rules) == ["app-errors", "fast"]
    assert [rule.name for rule in daemon.rules] == ["app-errors", "fast"]
    trigger = tick_trigger(daemon)
    assert trigger.interval == timedelta(seconds=20)
    assert trigger.start_date == T0 + timedelta(seconds=20)
    assert daemon.reloader is not None
    assert daemon.reloader.files["fast"] == tmp_path / "rules" / "fast.yaml"
    assert reloads(daemon, "success") == 2


def test_an_edit_is_reloaded_once_it_settled_without_a_request(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "rules" / "app-errors.yaml").write_text(yaml.safe_dump({**RULE, "threshold": {"above": 0.2}}))
    daemon.reload()  # first look: the file may still be being written
    assert daemon.engine.rules["app-errors"].threshold == ThresholdSpec(above=0.5)
    daemon.reload()
    assert daemon.engine.rules["app-errors"].threshold == ThresholdSpec(above=0.2)
    daemon.reload()
    assert reloads(daemon, "success") == 1


def test_a_deleted_rule_file_resolves_its_incident(daemon: Daemon, tmp_path: Path) -> None:
    opened(daemon.state, daemon.dispatcher, incident("app-errors", "v3"))
    (tmp_path / "rules" / "app-errors.yaml").unlink()
    reloaded(daemon)
    assert daemon.engine.rules == {}
    (resolved,) = daemon.state.incidents(rule="app-errors")
    assert resolved.state is State.RESOLVED
    assert resolved.note == f"rule app-errors was removed from {tmp_path / 'rules' / 'app-errors.yaml'}"


def test_orphans_from_before_a_restart_resolve(daemon: Daemon) -> None:
    opened(daemon.state, daemon.dispatcher, incident("renamed-away", "v3"), incident("app-errors", "v3"))
    daemon.retire_orphans()
    states = {i.rule: (i.state, i.note) for i in daemon.state.incidents()}
    assert states == {
        "app-errors": (State.FIRING, ""),
        "renamed-away": (State.RESOLVED, "rule renamed-away is no longer defined in the rule files"),
    }


def test_a_broken_watcher_yaml_keeps_the_running_config_and_alerts(
    daemon: Daemon, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "watcher.yaml"
    good, before = path.read_text(), daemon.config
    path.write_text(good.replace("receiver: console", "receiver: nowhere", 1))
    with caplog.at_level(logging.ERROR, logger="watcher.process.daemon"):
        reloaded(daemon)
    assert daemon.config is before
    assert list(daemon.engine.rules) == ["app-errors"]
    (alert,) = daemon.state.incidents(rule=RULES_INVALID)
    assert alert.state is State.FIRING
    assert any(
        m.startswith(f"reload failed, keeping the running config: {path}:") and "nowhere" in m
        for m in caplog.messages
    )
    assert reloads(daemon, "failure") == 1

    path.write_text(good)
    reloaded(daemon)
    (alert,) = daemon.state.incidents(rule=RULES_INVALID)
    assert alert.state is State.RESOLVED


def test_a_new_route_and_receiver_apply_to_the_next_notifications(daemon: Daemon, tmp_path: Path) -> None:
    path = tmp_path / "watcher.yaml"
    settings = yaml.safe_load(path.read_text())
    settings["receivers"]["ops"] = {"console": {"format": "text"}}
    settings["route"] = {**settings["route"], "receiver": "ops"}
    path.write_text(yaml.safe_dump(settings))
    reloaded(daemon)
    assert sorted(daemon.outbox.notifiers) == ["console", "ops"]
    assert daemon.engine.route.receiver == "ops"
    assert daemon.engine.dispatcher is daemon.dispatcher
    assert daemon.dispatcher.route.receiver == "ops"
    assert daemon.watchdog.dispatcher is daemon.dispatcher
    assert daemon.config.route.receiver == "ops"


def test_an_open_incident_moves_to_the_route_a_reload_gives_it(daemon: Daemon, tmp_path: Path) -> None:
    """Firing and told on the console, it is told there as rerouted (still open) once the routes
    send it to ops, and ops is told it fires; a reload that leaves the routes writes nothing."""
    opened(daemon.state, daemon.dispatcher, incident("app-errors", "v3"))
    (told,) = daemon.dispatcher.flush(T0 + MIN)  # after group_wait
    assert (told.receiver, told.event) == ("console", Event.FIRING)
    daemon.state.mark_delivered(told.id, T0 + MIN)
    path = tmp_path / "watcher.yaml"
    settings = yaml.safe_load(path.read_text())
    reloaded(daemon)  # nothing changed in the routes: nothing written
    assert daemon.state.due_notifications(FAR) == []
    settings["receivers"]["ops"] = {"console": {"format": "text"}}
    settings["route"] = {**settings["route"], "receiver": "ops"}
    path.write_text(yaml.safe_dump(settings))
    reloaded(daemon)
    sent = daemon.dispatcher.flush(T0 + 2 * MIN)
    assert sorted(
        (n.receiver, n.event.value, n.incidents[0].left_route, n.incidents[0].rerouted) for n in sent
    ) == [
        ("console", "resolved", True, True),
        ("ops", "firing", False, False),
    ]


def test_a_source_s_gaps_apply_after_a_reload(daemon: Daemon, tmp_path: Path) -> None:
    path = tmp_path / "watcher.yaml"
    settings = yaml.safe_load(path.read_text())
    ((name, source),) = settings["sources"].items()
    source["gaps"] = [
        {"from": "2026-01-05T08:00:00Z", "to": "2026-01-05T08:30:00Z", "reason": "shipper down"}
    ]
    path.write_text(yaml.safe_dump(settings))
    assert daemon.engine.gaps == {name: ()}
    reloaded(daemon)
    ((gap,),) = daemon.engine.gaps.values()
    assert (gap.start, gap.end, gap.reason) == (T0 - timedelta(hours=1), T0 - 30 * MIN, "shipper down")


# ---------------------------------------------------------------------- delivery settings

SEC = timedelta(seconds=1)
DELIVERY: dict[str, Any] = {
    "retry": {
        "max_attempts": 4,
        "base": "1s",
        "factor": 3,
        "max_backoff": "1m",
        "jitter": 0,
        "max_age": "1h",
    },
    "breaker": {"threshold": 2, "cooldown": "1m"},
}
POLICY = RetryPolicy(max_attempts=4, base=SEC, factor=3.0, max_backoff=MIN, jitter=0.0, max_age=60 * MIN)
DOWN = Delivery(ok=False, error="connection refused")


def started(tmp_path: Path, **extra: Any) -> Daemon:
    """A daemon like the ``daemon`` fixture's, on a config with ``extra`` settings; stop it yourself."""
    path = write_config(tmp_path, [RULE], **extra)
    loaded = load(path)
    running = Daemon(loaded.config, loaded.rules, clock=lambda: T0, config_path=path, files=loaded.files)
    running.scheduler.start(paused=True)
    return running


def test_the_outbox_retries_and_trips_as_watcher_yaml_says(tmp_path: Path) -> None:
    running = started(tmp_path, delivery=DELIVERY)
    try:
        assert running.outbox.policy == POLICY
        breaker = running.outbox.breaker
        assert breaker is not None
        breaker.record("console", DOWN, T0)
        assert breaker.allows("console", T0)
        breaker.record("console", DOWN, T0)  # the second failure in a row opens it, for 1m
        assert breaker.open_until("console") == T0 + MIN
    finally:
        running.stop()


def test_a_reload_applies_delivery_settings_and_open_circuits_stay_open(
    daemon: Daemon, tmp_path: Path
) -> None:
    breaker = daemon.outbox.breaker
    assert breaker is not None
    for _ in range(3):  # the default threshold: open for the default 5s
        breaker.record("console", DOWN, T0)
    path = tmp_path / "watcher.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | {"delivery": DELIVERY}))
    reloaded(daemon)
    assert daemon.outbox.policy == POLICY
    assert daemon.outbox.breaker is breaker
    assert breaker.open_until("console") == T0 + 5 * SEC
    assert breaker.allows("console", T0 + 5 * SEC)  # the probe ...
    breaker.record("console", DOWN, T0 + 5 * SEC)  # ... fails: open again for the new 1m
    assert breaker.open_until("console") == T0 + 5 * SEC + MIN


@pytest.mark.parametrize(("flush_timeout", "sent"), [("0s", False), ("10s", True)])
def test_a_stop_delivers_for_the_configured_flush_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flush_timeout: str, sent: bool
) -> None:
    running = started(tmp_path, delivery={"flush_timeout": flush_timeout})
    firing = incident("app-errors", "v3")
    dispatcher = Dispatcher(running.state, ROUTE.model_copy(update={"receiver": "console"}))
    dispatch = dispatcher.plan([Transition(firing, Event.FIRING, T0)], T0)
    running.state.commit([firing], notifications=dispatch.notifications, writes=[dispatch.write])
    running.stop()  # the clock stands still: 0s sends nothing, 10s sends what is due
    assert ('"event": "firing"' in capsys.readouterr().out) is sent
    with StateStore(tmp_path / "data" / "state.sqlite") as state:
        assert state.outbox_depth() == (0 if sent else 1)


# ---------------------------------------------------------------------- Reloader


def test_an_edit_saved_while_a_reload_runs_is_reloaded_next(tmp_path: Path) -> None:
    path = write_config(tmp_path, [RULE])
    loaded = load(path)
    reloader = Reloader(path, loaded.config, loaded.files)
    rule_file = tmp_path / "rules" / "app-errors.yaml"
    rule_file.write_text(yaml.safe_dump({**RULE, "threshold": {"above": 0.2}}))
    assert [reloader.due(), reloader.due()] == [False, True]
    first = reloader.load({rule.name: rule for rule in loaded.rules})
    rule_file.write_text(yaml.safe_dump({**RULE, "threshold": {"above": 0.25}}))  # after it was read
    reloader.loaded(first)
    assert [reloader.due(), reloader.due(), reloader.due()] == [False, True, False]
    second = reloader.load({rule.name: rule for rule in first.changes.rules})
    assert second.changes.changed == ["app-errors"]


def test_a_rebuilt_baseline_profile_reloads_the_drift_rule_that_reads_it(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    drift = yaml.safe_load((repo / "rules" / "feature-drift.yaml").read_text()) | {"source": "app"}
    path = write_config(tmp_path, [drift])
    (tmp_path / "rules" / "baselines").mkdir()
    profile = tmp_path / "rules" / "baselines" / "demo-features.json"
    shutil.copy(repo / "rules" / "baselines" / "demo-features.json", profile)
    loaded = load(path)
    reloader = Reloader(path, loaded.config, loaded.files, loaded.rules)
    data = json.loads(profile.read_text())
    data["rows"] = data.get("rows", 0) + 1  # `watcher baseline build` wrote a new profile
    profile.write_text(json.dumps(data))
    assert [reloader.due(), reloader.due()] == [False, True]
    reload = reloader.load({rule.name: rule for rule in loaded.rules})
    assert reload.changes.changed == ["feature-drift"]
    assert reload.changes.retired == []  # same identity: its incidents are kept


def test_a_template_mistake_in_an_edited_rule_raises_the_alert_but_the_rule_runs(
    daemon: Daemon, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rule_file = tmp_path / "rules" / "app-errors.yaml"
    broken = {**RULE, "threshold": {"above": 0.3}, "annotations": {"summary": "rate {{ valeu }}"}}
    rule_file.write_text(yaml.safe_dump(broken))
    with caplog.at_level(logging.ERROR, logger="watcher.process.daemon"):
        reloaded(daemon)
    assert daemon.engine.rules["app-errors"].threshold == ThresholdSpec(above=0.3)  # the edit runs
    (problem,) = [r.getMessage() for r in caplog.records if "template mistake" in r.getMessage()]
    assert problem.startswith(f"template mistake in a rule (it still runs): {rule_file}:")
    assert "annotation 'summary'" in problem
    assert "valeu" in problem
    (alert,) = daemon.state.incidents(rule=RULES_INVALID)
    assert alert.state is State.FIRING
    assert reloads(daemon, "failure") == 1

    rule_file.write_text(yaml.safe_dump({**broken, "annotations": {"summary": "rate {{ value }}"}}))
    reloaded(daemon)
    (alert,) = daemon.state.incidents(rule=RULES_INVALID)
    assert alert.state is State.RESOLVED


@pytest.mark.parametrize(
    ("reload", "expected"),
    [
        ("{interval: 0s}", "3:20: 'interval' must be longer than 0s"),
        ("{interval: soon}", "3:20: invalid duration 'soon': use a number and a unit (ms, s, m, h, d, w), "
         "e.g. 30s, 5m, 1h30m"),
        ("{watch: maybe}", "3:17: 'reload.watch' must be true or false, got 'maybe'"),
    ],
)  # fmt: skip
def test_a_bad_reload_setting_is_reported_at_its_value(tmp_path: Path, reload: str, expected: str) -> None:
    path = tmp_path / "watcher.yaml"
    path.write_text(f"sources: {{app: {{store: embedded}}}}\n\nreload: {reload}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}:{expected}"


# ---------------------------------------------------------------------- hostile saves (issue 12)

TESTDATA = Path(__file__).parent / "rules" / "testdata"
HOSTILE = [
    "rule.control-character.yaml",
    "rule.duration-overflow.yaml",
    "rule.float-tag-not-a-number.yaml",
    "rule.integer-too-long.yaml",
    "rule.filter-nested-too-deep.yaml",
    "rule.alias-bomb.yaml",
    "rule.baseline-empty.yaml",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_rule_file_saved_while_running_keeps_the_last_good_rule_and_alerts(
    daemon: Daemon, tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    rule_file = tmp_path / "rules" / "app-errors.yaml"
    good, before = rule_file.read_bytes(), daemon.engine.rules["app-errors"]
    rule_file.write_bytes((TESTDATA / name).read_bytes().replace(b"source: local", b"source: app"))
    with caplog.at_level(logging.ERROR, logger="watcher.process.daemon"):
        reloaded(daemon)
    assert daemon.engine.rules == {"app-errors": before}
    (alert,) = daemon.state.incidents(rule=RULES_INVALID)
    assert alert.state is State.FIRING
    assert any(
        m.startswith(f"rule file error, keeping the last good version: {rule_file}:") for m in caplog.messages
    )
    assert reloads(daemon, "failure") == 1

    rule_file.write_bytes(good)
    reloaded(daemon)
    (alert,) = daemon.state.incidents(rule=RULES_INVALID)
    assert alert.state is State.RESOLVED


def test_a_watcher_yaml_whose_reload_interval_overflows_keeps_the_running_config(
    daemon: Daemon, tmp_path: Path
) -> None:
    path = tmp_path / "watcher.yaml"
    before = daemon.config
    path.write_text(
        yaml.safe_dump(yaml.safe_load(path.read_text()) | {"reload": {"interval": "99999999999999w"}})
    )
    reloaded(daemon)
    assert daemon.config is before
    (alert,) = daemon.state.incidents(rule=RULES_INVALID)
    assert alert.state is State.FIRING
    assert reloads(daemon, "failure") == 1


def test_an_unexpected_error_while_loading_fails_the_reload_not_the_daemon(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("a bug in the loader")

    monkeypatch.setattr("watcher.process.reload.load_rules", broken)
    reloaded(daemon)
    assert list(daemon.engine.rules) == ["app-errors"]
    (alert,) = daemon.state.incidents(rule=RULES_INVALID)
    assert alert.state is State.FIRING
    assert reloads(daemon, "failure") == 1
