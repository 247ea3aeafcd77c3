"""Meta-alerts: watcher's own failures as incidents, routed like any other."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import StateAt
from watcher.config import Route
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification
from watcher.notify.outbox import DrainReport
from watcher.process.meta import RECEIVER_DEAD, RULES_INVALID, STORE_UNREACHABLE, Watchdog, observe
from watcher.routing.dispatch import Dispatcher
from watcher.rules.models import Rule
from watcher.tick_report import TickReport

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)
ROUTE = Route.model_validate(
    {
        "receiver": "slack",
        "group_wait": "0s",
        "group_interval": "1s",
        "routes": [{"matchers": ["rule=~watcher:.*"], "receiver": "ops"}],
    }
)
RULES = {
    "api-5xx": Rule.model_validate(
        {"name": "api-5xx", "source": "es", "threshold": {"above": 1}, "signal": {"count": {}}}
    )
}


def failing_tick(error: str = "connection refused") -> TickReport:
    return TickReport(evaluations=1, errors={"api-5xx": error}, round_trips={"es": 1})


def healthy_tick() -> TickReport:
    return TickReport(evaluations=1, round_trips={"es": 1})


def sent(state: StateStore, rule: str) -> list[tuple[str, str]]:
    item = state.last_notification(fingerprint(rule, {"source": "es"} if rule == STORE_UNREACHABLE else {}))
    return [] if item is None else [(item.notification.receiver, item.notification.event.value)]


def test_a_streak_fires_at_the_threshold_and_one_success_resolves() -> None:
    kwargs = {"rule": STORE_UNREACHABLE, "group": {"source": "es"}, "summary": "down", "needed": 2}
    first, events = observe(None, True, T0, **kwargs)  # type: ignore[arg-type]
    assert (first is not None and first.state, events) == (State.PENDING, [])
    second, events = observe(first, True, T0 + SEC, **kwargs)  # type: ignore[arg-type]
    assert (second is not None and second.state, events) == (State.FIRING, [Event.FIRING])
    done, events = observe(second, False, T0 + 2 * SEC, **kwargs)  # type: ignore[arg-type]
    assert (done is not None and done.state, events) == (State.RESOLVED, [Event.RESOLVED])
    assert observe(first, False, T0, **kwargs) == (None, [])  # type: ignore[arg-type]


def test_an_error_text_in_the_summary_is_never_a_template() -> None:
    incident, _ = observe(None, True, T0, rule=RULES_INVALID, group={}, summary="bad {{ x }} {% endraw %}")
    assert incident is not None
    assert incident.annotations["summary"] == "{% raw %}bad {{ x }} {% endraw %}"


def test_an_unreachable_store_raises_one_alert_after_n_ticks_and_resolves(state: StateStore) -> None:
    dog = Watchdog(state, Dispatcher(state, ROUTE), store_failures=3)
    for tick in range(3):
        dog.tick_done(failing_tick(), RULES, T0 + tick * SEC)
    (alert,) = state.incidents(rule=STORE_UNREACHABLE)
    assert (alert.state, alert.group, alert.value) == (State.FIRING, {"source": "es"}, 3.0)
    assert sent(state, STORE_UNREACHABLE) == [("ops", "firing")]
    for tick in range(3, 10):  # still down: nothing more
        dog.tick_done(failing_tick(), RULES, T0 + tick * SEC)
    assert state.outbox_depth() == 1
    dog.tick_done(healthy_tick(), RULES, T0 + 10 * SEC)
    dog.dispatcher.flush(T0 + 11 * SEC)  # the resolved message goes at the group's next flush
    assert sent(state, STORE_UNREACHABLE) == [("ops", "resolved")]


def test_a_short_blip_raises_nothing(state: StateStore) -> None:
    dog = Watchdog(state, Dispatcher(state, ROUTE), store_failures=3)
    dog.tick_done(failing_tick(), RULES, T0)
    dog.tick_done(healthy_tick(), RULES, T0 + SEC)
    assert (state.incidents(), state.outbox_depth()) == ([], 0)


def dead_letter(state: StateStore, receiver: str) -> str:
    incident = Incident(fingerprint("r", {}), "r", {}, {}, {}, "warning", State.FIRING, 1.0, 0.5, T0)
    notification = Notification(f"n-{receiver}", receiver, Event.FIRING, (incident,), T0, "t")
    state.commit(notifications=[notification])
    state.mark_failed(notification.id, T0, "slack chat.postMessage: invalid_auth (HTTP 200)", None)
    return notification.id


def test_a_dead_letter_alerts_through_another_receiver_until_the_receiver_works_again(
    state: StateStore,
) -> None:
    dog = Watchdog(state, Dispatcher(state, Route(receiver="slack", group_wait="0s")))
    config_meta = Watchdog(
        state, Dispatcher(state, Route(receiver="slack", group_wait="0s"), meta_receiver="ops")
    )
    assert dog.dispatcher.routes(_receiver_dead("slack")) == []  # never to the dead receiver itself
    config_meta.drain_done(DrainReport(dead=1, dead_letters=[dead_letter(state, "slack")]), T0)
    (alert,) = state.incidents(rule=RECEIVER_DEAD)
    assert alert.state is State.FIRING
    item = state.last_notification(alert.fingerprint)
    assert item is not None
    assert (item.notification.receiver, item.notification.event) == ("ops", Event.FIRING)
    config_meta.drain_done(DrainReport(sent=1, delivered_to={"slack"}), T0 + SEC)
    (alert,) = state.incidents(rule=RECEIVER_DEAD)
    assert alert.state is State.RESOLVED


def _receiver_dead(receiver: str) -> Incident:
    incident, _ = observe(None, True, T0, rule=RECEIVER_DEAD, group={"receiver": receiver}, summary="x")
    assert incident is not None
    return incident


def test_invalid_rules_after_a_reload_raise_an_alert_until_they_load(state: StateStore) -> None:
    dog = Watchdog(state, Dispatcher(state, ROUTE))
    errors = [f"rules/r{i}.yaml:1:1: bad" for i in range(5)]
    dog.rules_loaded(errors, T0)
    (alert,) = state.incidents(rule=RULES_INVALID)
    assert (alert.state, alert.severity) == (State.FIRING, "error")
    assert "5 rule file error(s): rules/r0.yaml:1:1: bad;" in alert.annotations["summary"]
    assert "(and 2 more)" in alert.annotations["summary"]
    dog.rules_loaded([], T0 + SEC)
    (alert,) = state.incidents(rule=RULES_INVALID)
    assert alert.state is State.RESOLVED


class Racing:
    """A real state whose next commit first lets another replica observe and commit (the race of
    replicas ticking at the same time on one shared state)."""

    def __init__(self, state: StateStore, other: Callable[[], object]) -> None:
        self.state, self.other = state, other

    def incident(self, key: str) -> Incident | None:
        return self.state.incident(key)

    def commit(self, *args: Any, **kwargs: Any) -> None:
        other, self.other = self.other, lambda: None
        other()
        self.state.commit(*args, **kwargs)


def test_two_replicas_seeing_a_store_fail_at_once_tell_it_once(state_at: StateAt) -> None:
    """b's failure lands between a's read and a's commit: a's commit is refused and a observes
    again on what b wrote, so the alert fires once and counts both failures."""
    a_state, b_state = state_at.open(), state_at.open()
    b = Watchdog(b_state, Dispatcher(b_state, ROUTE), store_failures=2)
    b_fails = lambda: b.tick_done(failing_tick(), RULES, T0 + SEC / 2)  # noqa: E731
    a = Watchdog(Racing(a_state, b_fails), Dispatcher(a_state, ROUTE), store_failures=2)  # type: ignore[arg-type]
    b.tick_done(failing_tick(), RULES, T0 - SEC)  # pending: one failure
    a.tick_done(failing_tick(), RULES, T0)
    incident = a_state.incident(fingerprint(STORE_UNREACHABLE, {"source": "es"}))
    assert incident is not None
    assert (incident.state, incident.value) == (State.FIRING, 3.0)
    with a_state.reading() as db:
        told = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    assert told == 1
    a_state.close()
    b_state.close()
