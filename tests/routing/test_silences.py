"""Silences in a real state file: states over time, expiry, errors, and two processes at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import StateAt
from watcher.incidents.state import StateStore
from watcher.routing.matchers import Matcher
from watcher.routing.silences import Silence, SilenceError, Silences, SilenceStore, new_silence

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def state(state_at: StateAt) -> Iterator[StateStore]:
    """Silences on each backend (tests/conftest.py: SQLite, PostgreSQL)."""
    with state_at.open() as opened:
        yield opened


def silence(*matchers: str, start: datetime = T0, length: timedelta = HOUR) -> Silence:
    return new_silence([Matcher.parse(m) for m in matchers], start, start + length, "ann", "deploy v4", T0)


def test_a_silence_is_pending_then_active_then_expired() -> None:
    s = silence("team=ml", start=T0 + HOUR)
    assert [s.state(T0), s.state(T0 + HOUR), s.state(T0 + 2 * HOUR)] == ["pending", "active", "expired"]


def test_active_silences_mute_matching_labels_only() -> None:
    muter = Silences([silence("team=ml", "severity!=critical"), silence("team=web", start=T0 + HOUR)], T0)
    assert muter.mutes({"team": "ml", "severity": "warning"})
    assert not muter.mutes({"team": "ml", "severity": "critical"})
    assert not muter.mutes({"team": "web"})  # not started yet


def test_stored_silences_round_trip_and_list_hides_expired_ones(state: StateStore) -> None:
    store = SilenceStore(state)
    kept = store.add(silence('summary="a b"', "model=~v[23]"))
    gone = store.add(silence("team=web", length=timedelta(minutes=5)))
    assert store.list(T0 + timedelta(minutes=10)) == [kept]
    assert {s.id: s for s in store.list(T0 + timedelta(minutes=10), expired=True)} == {
        kept.id: kept,
        gone.id: gone,
    }
    assert store.active(T0).mutes({"team": "web"})


def test_expire_ends_a_silence_now(state: StateStore) -> None:
    store = SilenceStore(state)
    added = store.add(silence("team=ml"))
    ended = store.expire(added.id, T0 + timedelta(minutes=1))
    assert ended.ends_at == T0 + timedelta(minutes=1)
    assert not store.active(T0 + timedelta(minutes=2)).mutes({"team": "ml"})
    with pytest.raises(SilenceError) as caught:
        store.expire(added.id, T0 + timedelta(minutes=3))
    assert str(caught.value) == f"silence {added.id} already expired at 2026-01-05T09:01:00+00:00"
    with pytest.raises(SilenceError) as unknown:
        store.expire("nope", T0)
    assert str(unknown.value) == "no silence 'nope' (see `watcher silence ls`)"


@pytest.mark.parametrize(
    ("matchers", "start", "end", "comment", "message"),
    [
        ([], T0, T0 + HOUR, "x", "a silence needs at least one matcher, e.g. severity=critical"),
        (["a=b"], T0, T0, "x", "the silence ends (2026-01-05T09:00:00+00:00) before it starts "
         "(2026-01-05T09:00:00+00:00)"),
        (["a=b"], T0 - 2 * HOUR, T0 - HOUR, "x", "the silence ends in the past (2026-01-05T08:00:00+00:00)"),
        (["a=b"], T0, T0 + HOUR, " ", "a silence needs a comment saying why"),
    ],
)  # fmt: skip
def test_bad_silences_are_refused(
    matchers: list[str], start: datetime, end: datetime, comment: str, message: str
) -> None:
    with pytest.raises(SilenceError) as caught:
        new_silence([Matcher.parse(m) for m in matchers], start, end, "ann", comment, T0)
    assert str(caught.value) == message


def test_a_silence_added_by_another_process_is_seen_by_an_open_store(
    state_at: StateAt, state: StateStore
) -> None:
    script = textwrap.dedent(
        f"""
        from datetime import datetime, timedelta, UTC
        from watcher.config import StateConfig
        from watcher.state.factory import open_state
        from watcher.routing.matchers import Matcher
        from watcher.routing.silences import SilenceStore, new_silence
        now = datetime.now(UTC)
        with open_state(StateConfig.model_validate_json({state_at.config.model_dump_json()!r})) as state:
            SilenceStore(state).add(new_silence([Matcher.parse("team=ml")], now, now + timedelta(hours=1),
                                                "cli", "from another process", now))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert SilenceStore(state).active(datetime.now(UTC)).mutes({"team": "ml"})
