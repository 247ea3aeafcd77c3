"""Every raised episode of an incident is kept (the incidents table holds only the latest), on each
state backend: reference windows leave out the ones they overlap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.conftest import StateAt
from watcher.incidents.episodes import EPISODES_KEPT, Episode
from watcher.incidents.model import Incident, State, fingerprint
from watcher.incidents.retention import forget_old

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
FP = fingerprint("api-5xx", {"model": "v3"})


def raised(started: datetime, **fields: object) -> Incident:
    base = Incident(
        fingerprint=FP,
        rule="api-5xx",
        group={"model": "v3"},
        labels={},
        annotations={},
        severity="warning",
        state=State.FIRING,
        value=0.6,
        threshold=0.5,
        started_at=started,
        fired_at=started,
        last_alerting_at=started,
    )
    return base.evolve(**fields)


def test_each_episode_is_kept_from_its_start_to_its_resolve(state_at: StateAt) -> None:
    with state_at.open() as state:
        state.commit([raised(T0, last_alerting_at=T0 + 5 * MIN)])  # open: up to its latest alerting
        assert state.episodes(T0) == [Episode(FP, "api-5xx", T0, T0 + 5 * MIN)]
        state.commit([raised(T0, state=State.RESOLVED, resolved_at=T0 + 9 * MIN)])
        later = T0 + timedelta(hours=3)
        state.commit([raised(later)])  # the same fingerprint raised again: its row is replaced
        pending = raised(later + MIN, fired_at=None).evolve(fingerprint="other", state=State.PENDING)
        state.commit([pending])  # never raised: no episode

        assert [i.started_at for i in state.incidents(rule="api-5xx")] == [later, later + MIN]
        assert state.episodes(T0) == [
            Episode(FP, "api-5xx", T0, T0 + 9 * MIN),
            Episode(FP, "api-5xx", later, later),
        ]
        assert state.episodes(T0 + 10 * MIN) == [Episode(FP, "api-5xx", later, later)]


def test_episodes_ended_long_before_are_forgotten_with_the_other_old_rows(state_at: StateAt) -> None:
    with state_at.open() as state:
        state.commit([raised(T0, state=State.RESOLVED, resolved_at=T0 + MIN)])
        much_later = T0 + MIN + EPISODES_KEPT + MIN
        state.commit([raised(much_later).evolve(fingerprint="other")])
        assert len(state.episodes(T0 - timedelta(days=1000))) == 2  # a commit alone forgets nothing
        state.commit(writes=[lambda db: forget_old(db, much_later - MIN)])
        assert len(state.episodes(T0 - timedelta(days=1000))) == 2  # not yet 400 days ended
        state.commit(writes=[lambda db: forget_old(db, much_later)])
        assert [e.fingerprint for e in state.episodes(T0 - timedelta(days=1000))] == ["other"]
