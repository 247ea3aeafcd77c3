"""The state forgets what ended more than 30 days ago (``watcher.incidents.retention``), in a tick's
transaction, on both backends: old resolved incidents (not those that may still flap), delivered
notifications and dead letters, ended silences. Open incidents and recent history stay."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.conftest import StateAt
from tests.test_engine import MIN, ROUTE, T0, requests, rule
from watcher.engine import Engine
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.notify.base import Notification
from watcher.routing.matchers import Matcher
from watcher.routing.silences import SilenceStore, new_silence
from watcher.store.embedded import EmbeddedStore

DAY = timedelta(days=1)


def incident(
    name: str, state: State, resolved_at: datetime | None = None, flips: tuple[datetime, ...] = ()
) -> Incident:
    group = {"model": name}
    return Incident(
        fingerprint("old-rule", group), "old-rule", group, {"rule": "old-rule"}, {}, "warning",
        state, 0.0, 0.05, T0 - 60 * DAY, resolved_at=resolved_at, flips=flips,
    )  # fmt: skip


def note(nid: str, at: datetime) -> Notification:
    return Notification(nid, "slack", Event.FIRING, (incident("open", State.FIRING),), at, f"t-{nid}")


def test_a_tick_forgets_what_ended_more_than_30_days_ago(state_at: StateAt, store: EmbeddedStore) -> None:
    requests(store, T0 - MIN, 2, "v3", 200)
    incidents = [
        incident("open", State.FIRING),
        incident("old", State.RESOLVED, T0 - 40 * DAY),
        incident("old-but-flipping", State.RESOLVED, T0 - 40 * DAY, (T0 - 5 * MIN,)),
        incident("recent", State.RESOLVED, T0 - 10 * DAY),
    ]
    with state_at.open() as state:
        old, recent = T0 - 40 * DAY, T0 - DAY
        state.commit(incidents, notifications=[note(n, old) for n in ("old", "dead", "waiting")])
        state.commit(notifications=[note("recent", recent)])
        for nid, at in (("old", old), ("recent", recent)):
            assert state.claim(nid, at, at + MIN)
            state.mark_delivered(nid, at)
        assert state.claim("dead", old, old + MIN)
        state.mark_failed("dead", old, "HTTP 404", None)
        silences = SilenceStore(state)
        for days, comment in ((40, "old"), (5, "recent")):
            ends = T0 - days * DAY
            silences.add(
                new_silence([Matcher.parse("team=ml")], ends - DAY, ends, "ann", comment, ends - DAY)
            )

        Engine([rule()], {"app": store}, state, ROUTE).tick(T0)

        assert sorted(i.group["model"] for i in state.incidents()) == ["old-but-flipping", "open", "recent"]
        kept = {nid: state.outbox_item(nid) is not None for nid in ("old", "dead", "waiting", "recent")}
        assert kept == {"old": False, "dead": False, "waiting": True, "recent": True}
        assert [s.comment for s in silences.list(T0, expired=True)] == ["recent"]


def test_a_tick_forgets_once_every_ten_minutes_so_a_row_goes_at_most_that_late(
    state_at: StateAt, store: EmbeddedStore
) -> None:
    requests(store, T0 - MIN, 2, "v3", 200)
    aging = incident("aging", State.RESOLVED, T0 - 30 * DAY + MIN)  # older than 30 days from T0 + 1 min
    with state_at.open() as state:
        state.commit([aging])
        engine = Engine([rule()], {"app": store}, state, ROUTE)
        engine.tick(T0)  # forgets: nothing is old enough yet
        engine.tick(T0 + 2 * MIN)
        assert [i.group["model"] for i in state.incidents()] == ["aging"]
        engine.tick(T0 + 10 * MIN)
        assert state.incidents() == []
