"""A tick that enqueues no notification commits without the fsync (SQLite ``synchronous=NORMAL``);
one that enqueues is flushed to disk (``FULL``), and so syncs every tick before it. A process
killed right after a tick keeps it either way: the WAL holds it (``watcher.state.sqlite``)."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from tests.test_engine import MIN, ROUTE, T0, requests, rule
from watcher.engine import Engine
from watcher.incidents.model import OPEN, Incident, State
from watcher.incidents.state import StateStore
from watcher.routing.dispatch import Change, Dispatch, Dispatcher
from watcher.state.base import Db
from watcher.store.embedded import EmbeddedStore

FULL, NORMAL = 2, 1


class Observed(Dispatcher):
    """The real dispatcher; its group writes also note ``PRAGMA synchronous`` inside the tick's
    transaction, the level its COMMIT runs at."""

    levels: list[int]

    def plan(
        self, changes: list[Change], now: datetime, current: dict[str, Incident] | None = None
    ) -> Dispatch:
        dispatch = super().plan(changes, now, current)
        write = dispatch.write

        def observed(db: Db) -> None:
            self.levels.append(db.execute("PRAGMA synchronous").fetchone()[0])
            write(db)

        dispatch.write = observed  # type: ignore[method-assign]
        return dispatch


def test_only_a_tick_that_enqueues_a_notification_waits_for_the_disk(
    store: EmbeddedStore, state: StateStore
) -> None:
    requests(store, T0 - MIN, 4, "v2", 503)
    dispatcher = Observed(state, ROUTE)
    dispatcher.levels = []
    engine = Engine([rule()], {"app": store}, state, ROUTE, dispatcher=dispatcher)
    first = engine.tick(T0)  # v2 fires and joins its group: told after group_wait
    assert [t.incident.state for t in first.transitions] == [State.FIRING]
    assert first.notifications == []
    assert len(engine.tick(T0 + MIN).notifications) == 1  # the group's FIRING
    assert engine.tick(T0 + 2 * MIN).notifications == []  # still firing, nothing to tell
    assert dispatcher.levels == [NORMAL, FULL, NORMAL]
    with state.writing() as db:  # every other writer: silences, acks, migrations
        assert db.execute("PRAGMA synchronous").fetchone()[0] == FULL
    assert state.outbox_depth() == 1


def test_a_process_killed_right_after_a_tick_that_skipped_the_fsync_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    script = (
        "import time; from pathlib import Path; from datetime import timedelta\n"
        "from tests.test_engine import MIN, ROUTE, T0, requests, rule\n"
        "from watcher.engine import Engine\n"
        "from watcher.incidents.state import StateStore\n"
        "from watcher.store.embedded import EmbeddedStore\n"
        f"store = EmbeddedStore(Path({str(tmp_path / 'logs.duckdb')!r}))\n"
        "requests(store, T0 - MIN, 4, 'v2', 503)\n"
        f"engine = Engine([rule()], {{'app': store}}, StateStore(Path({str(path)!r})), ROUTE)\n"
        "assert engine.tick(T0).notifications == []\n"
        "print('ticked', flush=True); time.sleep(60)\n"
    )
    ticking = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert ticking.stdout is not None
        assert ticking.stdout.readline().strip() == "ticked"
    finally:
        ticking.send_signal(signal.SIGKILL)
        ticking.wait(10)
    with StateStore(path) as state:
        (kept,) = state.incidents(states=OPEN)
        assert (kept.group, kept.state) == ({"model": "v2"}, State.FIRING)
        assert state.checkpoint("api-5xx") == T0
        with state.reading() as db:
            assert db.execute("SELECT count(*) FROM dispatch_members").fetchone() == (1,)
