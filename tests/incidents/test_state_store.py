"""The state store on both backends (a SQLite file, a real PostgreSQL): atomic ticks, restarts, the
outbox, two processes. Tests of the SQLite file itself (its PRAGMAs, its write lock) take ``path``."""

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import StateAt
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.state import (
    SCHEMA_VERSION,
    StateStore,
    StateStoreError,
    notification_from_json,
    notification_to_json,
)
from watcher.notify.base import Notification

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)


def incident(name: str = "v3", state: State = State.FIRING, **fields: Any) -> Incident:
    group = {"model_version": name}
    values: dict[str, Any] = {
        "fingerprint": fingerprint("api-5xx", group),
        "rule": "api-5xx",
        "group": group,
        "labels": {"rule": "api-5xx", "model_version": name},
        "annotations": {"summary": "5xx {{ value }}"},
        "severity": "critical",
        "state": state,
        "value": 0.2,
        "threshold": 0.05,
        "started_at": T0,
        "fired_at": T0,
        "details": {"count": 1000, "bins": [1, 2]},
    }
    return Incident(**(values | fields))


def notification(
    id: str, *incidents: Incident, receiver: str = "slack", thread: str = "t1", at: datetime = T0
) -> Notification:
    return Notification(
        id=id,
        receiver=receiver,
        event=Event.FIRING,
        incidents=incidents or (incident(),),
        created_at=at,
        thread_key=thread,
        group_labels={"rule": "api-5xx"},
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "state.sqlite"


@pytest.fixture
def store(state_at: StateAt) -> Iterator[StateStore]:
    with state_at.open() as opened:
        yield opened


def due_ids(store: StateStore, now: datetime) -> list[str]:
    return [item.notification.id for item in store.due_notifications(now)]


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def intact(state_at: StateAt) -> bool:
    """A SQLite file passes its integrity check (PostgreSQL keeps its own files whole)."""
    return state_at.kind != "sqlite" or integrity(state_at.config.path) == "ok"


# ---------------------------------------------------------------------- the file


def test_new_file_is_created_with_the_current_schema_in_wal_mode(path: Path) -> None:
    StateStore(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"incidents", "outbox", "outbox_incidents", "checkpoints", "thread_refs", "silences"} <= tables
    assert integrity(path) == "ok"


def test_reopening_does_not_migrate_again(state_at: StateAt) -> None:
    state_at.open().close()
    with state_at.open() as store:
        store.commit([incident()])
    with state_at.open() as store:
        assert len(store.incidents()) == 1


def test_a_file_from_a_newer_watcher_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StateStoreError) as caught:
        StateStore(path)
    assert str(caught.value) == (
        f"{path}: schema version 99 is newer than this watcher's ({SCHEMA_VERSION}); upgrade watcher"
    )


def test_a_file_that_is_not_sqlite_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text("sources: {}\n" * 100)
    with pytest.raises(StateStoreError) as caught:
        StateStore(path)
    assert str(caught.value) == f"{path}: cannot use the state file (file is not a database)"


# ---------------------------------------------------------------------- commit


def test_commit_survives_a_restart(state_at: StateAt) -> None:
    with state_at.open() as store:
        store.commit([incident()], [], [notification("n1")], {"api-5xx": T0})
    with state_at.open() as store:
        assert store.incidents() == [incident(last_notified_at=T0)]
        assert due_ids(store, T0) == ["n1"]
        assert store.checkpoints() == {"api-5xx": T0}
    assert intact(state_at)


def test_incidents_filter_by_rule_and_state(store: StateStore) -> None:
    pending = incident("v1", State.PENDING, fired_at=None)
    other = incident("v2").evolve(rule="other", fingerprint="f-other")
    store.commit([incident(), pending, other])
    assert [i.fingerprint for i in store.incidents(states=[State.PENDING])] == [pending.fingerprint]
    assert {i.rule for i in store.incidents(rule="api-5xx")} == {"api-5xx"}
    assert len(store.incidents(rule="api-5xx", states=[State.FIRING, State.PENDING])) == 2
    assert store.incidents(states=[]) == []
    assert store.incident("missing") is None


def test_deleting_a_pending_incident_makes_it_inactive(store: StateStore) -> None:
    pending = incident(state=State.PENDING, fired_at=None)
    store.commit([pending])
    store.commit([], [pending.fingerprint])
    assert store.incident(pending.fingerprint) is None


def test_changing_and_deleting_the_same_incident_is_refused(store: StateStore) -> None:
    with pytest.raises(
        ValueError, match=rf"^incident {incident().fingerprint} is both changed and deleted in one commit$"
    ):
        store.commit([incident()], [incident().fingerprint])


def test_enqueue_is_idempotent_on_the_notification_id(store: StateStore) -> None:
    store.commit([incident()], [], [notification("n1")])
    store.commit([incident()], [], [notification("n1", receiver="email"), notification("n1")])
    (item,) = store.due_notifications(T0)
    assert item.notification.receiver == "slack"
    assert store.outbox_depth() == 1


def test_a_delivered_notification_enqueued_again_after_a_crash_is_not_due_again(state_at: StateAt) -> None:
    with state_at.open() as store:
        store.commit([incident()], [], [notification("n1")])
        store.mark_delivered("n1", T0 + SEC, None)
    with state_at.open() as store:  # the restarted daemon re-evaluates the same tick
        store.commit([incident()], [], [notification("n1")])
        assert store.due_notifications(T0 + timedelta(days=1)) == []
        item = store.outbox_item("n1")
        assert item is not None
        assert (item.status, item.delivered_at) == ("delivered", T0 + SEC)


def test_enqueue_sets_last_notified_at_of_changed_and_stored_incidents(store: StateStore) -> None:
    store.commit([incident()])
    later = T0 + timedelta(minutes=5)
    store.commit([], [], [notification("n1", incident(), at=later)])
    assert store.incidents()[0].last_notified_at == later
    store.commit([incident(value=0.3)], [], [notification("n2", at=later + SEC)])
    assert store.incidents()[0] == incident(value=0.3, last_notified_at=later + SEC)


def test_an_ignored_duplicate_does_not_move_last_notified_at(store: StateStore) -> None:
    store.commit([incident()], [], [notification("n1")])
    store.commit([incident()], [], [notification("n1", at=T0 + timedelta(hours=1))])
    assert store.incidents()[0].last_notified_at is None


def test_checkpoints_only_move_forward(store: StateStore) -> None:
    store.commit(checkpoints={"a": T0, "b": T0})
    store.commit(checkpoints={"a": T0 + SEC, "b": T0 - SEC})
    assert store.checkpoints() == {"a": T0 + SEC, "b": T0}
    assert store.checkpoint("a") == T0 + SEC
    assert store.checkpoint("missing") is None


def test_naive_datetimes_are_refused_and_nothing_is_written(store: StateStore) -> None:
    with pytest.raises(
        ValueError, match=r"^naive datetime 2026-01-05T09:00:00: watcher stores timezone-aware UTC times$"
    ):
        store.commit([incident()], [], [notification("n1")], {"api-5xx": datetime(2026, 1, 5, 9)})
    assert (store.incidents(), store.outbox_depth(), store.checkpoints()) == ([], 0, {})


@pytest.mark.parametrize(
    "failing",
    [
        "BEFORE INSERT ON outbox",
        "BEFORE INSERT ON outbox_incidents",
        "BEFORE UPDATE ON incidents",
        "BEFORE DELETE ON incidents",
        "BEFORE INSERT ON checkpoints",
    ],
)
def test_a_failure_inside_the_transaction_leaves_nothing_half_written(path: Path, failing: str) -> None:
    store = StateStore(path)
    old, gone = incident("v1", value=0.1), incident("v2", State.PENDING, fired_at=None)
    store.commit([old, gone], [], [], {"api-5xx": T0})
    with sqlite3.connect(path) as db:  # the disk "fails" at one step of the next tick
        db.execute(f"CREATE TRIGGER crash {failing} BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
    tick = [old.evolve(value=0.9, state=State.RESOLVED), incident("v3")]
    with pytest.raises(sqlite3.IntegrityError, match="disk on fire"):
        store.commit(tick, [gone.fingerprint], [notification("n1", *tick)], {"api-5xx": T0 + SEC})
    store.close()
    with StateStore(path) as reopened:
        assert reopened.incidents() == [old, gone]
        assert reopened.outbox_depth() == 0
        assert reopened.last_notification(old.fingerprint) is None
        assert reopened.checkpoints() == {"api-5xx": T0}
    assert integrity(path) == "ok"


# ---------------------------------------------------------------------- the outbox


def test_due_notifications_are_oldest_first_and_wait_for_their_time(store: StateStore) -> None:
    store.commit(
        notifications=[
            notification("late", at=T0 + SEC, thread="a"),
            notification("early", at=T0, thread="b"),
            notification("future", at=T0 + timedelta(hours=1), thread="c"),
        ]
    )
    assert due_ids(store, T0) == ["early"]
    assert due_ids(store, T0 + SEC) == ["early", "late"]
    assert [item.notification.id for item in store.due_notifications(T0 + SEC, limit=1)] == ["early"]


def test_a_thread_reply_waits_while_the_first_message_is_pending(store: StateStore) -> None:
    store.commit(notifications=[notification("first", thread="t"), notification("other", thread="u")])
    store.commit(notifications=[notification("reply", thread="t", at=T0 + SEC)])
    store.mark_failed("first", T0, "timeout", T0 + timedelta(minutes=1))
    assert due_ids(store, T0 + 2 * SEC) == ["other"]
    store.mark_failed("first", T0 + 2 * SEC, "gone", None)  # a dead first message unblocks the thread
    assert due_ids(store, T0 + 2 * SEC) == ["other", "reply"]


def test_same_thread_key_of_another_receiver_is_another_thread(store: StateStore) -> None:
    store.commit(notifications=[notification("a", receiver="slack"), notification("b", receiver="email")])
    assert due_ids(store, T0) == ["a", "b"]


def test_thread_order_follows_enqueue_order_when_created_at_ties(store: StateStore) -> None:
    store.commit(notifications=[notification("zz-first"), notification("aa-second")])
    assert due_ids(store, T0) == ["zz-first"]


def test_a_reply_enqueued_later_with_an_earlier_time_still_waits_for_the_first_message(
    store: StateStore,
) -> None:
    """Replicas stamp notifications with their own tick's time: a group's RESOLVED enqueued by one
    replica after another replica's FIRING may carry an earlier time; it must still wait for it
    (sent first, it would start the thread and the FIRING would land outside it)."""
    store.commit(notifications=[notification("firing", thread="t", at=T0 + SEC)])
    store.commit(notifications=[notification("resolved", thread="t", at=T0)])
    assert due_ids(store, T0 + SEC) == ["firing"]


def test_mark_delivered_stores_the_threads_first_ref_and_is_idempotent(store: StateStore) -> None:
    store.commit(notifications=[notification("n1"), notification("n2", at=T0 + SEC)])
    store.mark_delivered("n1", T0 + SEC, {"channel": "C1", "ts": "1.000"})
    store.mark_delivered("n1", T0 + 9 * SEC, {"channel": "C1", "ts": "9.000"})
    store.mark_delivered("n2", T0 + 3 * SEC, {"channel": "C1", "ts": "3.000"})
    assert store.thread_ref("slack", "t1") == {"channel": "C1", "ts": "1.000"}
    assert store.thread_ref("slack", "other") is None
    item = store.outbox_item("n1")
    assert item is not None
    assert (item.status, item.delivered_at) == ("delivered", T0 + SEC)
    assert store.outbox_depth() == 0


def test_mark_failed_counts_attempts_and_dead_letters(store: StateStore) -> None:
    store.commit(notifications=[notification("n1")])
    store.mark_failed("n1", T0, "HTTP 500", T0 + 2 * SEC)
    item = store.outbox_item("n1")
    assert item is not None
    assert (item.status, item.attempts, item.last_error, item.next_attempt_at) == (
        "pending",
        1,
        "HTTP 500",
        T0 + 2 * SEC,
    )
    store.mark_failed("n1", T0 + 2 * SEC, "HTTP 404", None)
    (dead,) = store.dead_letters()
    assert (dead.notification.id, dead.status, dead.attempts, dead.last_error) == (
        "n1",
        "dead",
        2,
        "HTTP 404",
    )
    assert store.outbox_depth() == 0
    assert store.due_notifications(T0 + timedelta(days=1)) == []


def test_a_late_failure_does_not_undo_a_delivery(store: StateStore) -> None:
    store.commit(notifications=[notification("n1")])
    store.mark_delivered("n1", T0, None)
    store.mark_failed("n1", T0 + SEC, "timeout", None)
    item = store.outbox_item("n1")
    assert item is not None
    assert (item.status, item.attempts) == ("delivered", 0)


def test_marking_an_unknown_notification_is_an_error(store: StateStore) -> None:
    with pytest.raises(KeyError, match="no notification 'nope' in the outbox"):
        store.mark_delivered("nope", T0, None)
    with pytest.raises(KeyError, match="no notification 'nope' in the outbox"):
        store.mark_failed("nope", T0, "x", None)


def test_a_claim_holds_a_notification_until_its_lease_ends(store: StateStore) -> None:
    store.commit(notifications=[notification("n1")])
    assert store.claim("n1", T0, T0 + timedelta(minutes=2))
    assert not store.claim("n1", T0 + SEC, T0 + timedelta(minutes=3))
    assert due_ids(store, T0 + timedelta(minutes=1)) == []
    assert due_ids(store, T0 + timedelta(minutes=2)) == ["n1"]
    store.mark_delivered("n1", T0, None)
    assert not store.claim("n1", T0 + timedelta(hours=1), T0 + timedelta(hours=2))


def test_last_notification_of_an_incident(store: StateStore) -> None:
    a, b = incident("a"), incident("b")
    store.commit([a, b], [], [notification("n1", a, b), notification("n2", a, at=T0 + SEC, thread="x")])
    last_a, last_b = store.last_notification(a.fingerprint), store.last_notification(b.fingerprint)
    assert (last_a and last_a.notification.id, last_b and last_b.notification.id) == ("n2", "n1")
    assert store.last_notification("unknown") is None


def test_notification_json_round_trip() -> None:
    original = notification("n1", incident(last_notified_at=T0, note="x"))
    original = Notification(**{**original.__dict__, "thread_ref": {"channel": "C1", "ts": "1.0"}})
    assert notification_from_json(notification_to_json(original)) == original


def test_odd_detail_values_are_stored_rather_than_failing_the_tick(store: StateStore) -> None:
    odd = incident(details={"at": T0, "seen": {"b", "a"}, "path": Path("/x")})
    store.commit([odd])
    assert store.incidents()[0].details == {"at": T0.isoformat(), "seen": ["a", "b"], "path": "/x"}


# ---------------------------------------------------------------------- two processes


def test_one_store_reads_while_another_writes(state_at: StateAt) -> None:
    writer, reader = state_at.open(), state_at.open()
    writer.commit([incident()], [], [notification("n1")])
    assert reader.incidents() == [incident(last_notified_at=T0)]
    reader.mark_delivered("n1", T0, {"ts": "1"})  # the CLI may write too
    assert writer.outbox_depth() == 0
    writer.close()
    reader.close()


def test_a_writer_waits_for_another_processes_write_lock(path: Path) -> None:
    store = StateStore(path)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO checkpoints VALUES ('held', 0)")
    assert store.incidents() == []  # WAL: reading is never blocked by the writer
    release = threading.Timer(0.2, lambda: holder.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    store.commit([incident()])
    assert time.monotonic() - started >= 0.15
    release.join()
    holder.close()
    assert len(store.incidents()) == 1
    store.close()


def test_a_writer_gives_up_after_the_busy_timeout(path: Path) -> None:
    store = StateStore(path, busy_timeout=timedelta(milliseconds=50))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        store.commit([incident()])
    holder.execute("ROLLBACK")
    holder.close()
    store.commit([incident()])  # still usable afterwards
    store.close()


CHILD = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    from watcher.incidents.model import Event, Incident, State
    from watcher.incidents.state import StateStore
    from watcher.notify.base import Notification
    from watcher.state.postgres import PostgresBackend

    where = sys.argv[1]
    store = StateStore(PostgresBackend(where) if where.startswith("postgresql:") else Path(where))
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    for n in range(int(sys.argv[2])):
        at = t0 + timedelta(seconds=n)
        group = {"n": str(n)}
        inc = Incident(f"f{n}", "r", group, {}, {}, "critical", State.FIRING, 1.0, 0.5, at, fired_at=at)
        note = Notification(f"n{n}", "slack", Event.FIRING, (inc,), at, f"t{n}")
        store.commit([inc], [], [note], {"r": at})
        if n == 5:
            print("committing", flush=True)
            sys.stdin.readline()  # the parent has read a partial state; go on
    """
)


def where(state_at: StateAt) -> str:
    """The state as the child process gets it on its command line."""
    return state_at.config.url or str(state_at.config.path)


def test_another_process_commits_while_this_one_reads(state_at: StateAt) -> None:
    state_at.open().close()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, where(state_at), "1000"], stdout=subprocess.PIPE, stdin=subprocess.PIPE
    )
    assert child.stdout is not None
    assert child.stdin is not None
    assert child.stdout.readline() == b"committing\n"
    with state_at.open() as store:
        counts = [len(store.incidents())]
        child.stdin.write(b"go\n")
        child.stdin.close()
        while child.poll() is None:
            counts.append(len(store.incidents()))
            assert store.outbox_depth() >= counts[-1]  # the child's ticks are seen whole, never half
        assert child.wait() == 0
        assert counts == sorted(counts)
        assert any(0 < count < 1000 for count in counts)
        assert (len(store.incidents()), store.outbox_depth()) == (1000, 1000)
    assert intact(state_at)


def test_a_killed_writer_leaves_whole_ticks_only(state_at: StateAt) -> None:
    state_at.open().close()
    child = subprocess.Popen([sys.executable, "-c", CHILD, where(state_at), "100000"], stdout=subprocess.PIPE)
    assert child.stdout is not None
    assert child.stdout.readline() == b"committing\n"
    time.sleep(0.2)
    child.kill()
    child.wait()
    assert intact(state_at)
    with state_at.open() as store:
        checkpoint = store.checkpoint("r")
        assert checkpoint is not None
        ticks = int((checkpoint - datetime(2026, 1, 5, tzinfo=UTC)).total_seconds()) + 1
        assert ticks > 5
        assert len(store.incidents()) == ticks
        assert store.outbox_depth() == ticks
        assert all(store.last_notification(f"f{n}") for n in range(ticks))
