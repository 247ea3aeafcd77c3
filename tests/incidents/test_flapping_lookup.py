"""A tick reads only the resolved incidents that may still start flapping (status changes within
the flapping window), through an index, however many resolved incidents the state's history
holds; a state written by an older watcher gets the column filled in, and ``watcher state
migrate`` carries it over."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.conftest import StateAt
from tests.test_engine import MIN, ROUTE, T0, requests, rule
from watcher.engine import Engine
from watcher.incidents.encoding import dumps
from watcher.incidents.model import Incident, State, fingerprint
from watcher.incidents.retention import forget_old
from watcher.incidents.schema import MIGRATIONS
from watcher.incidents.state import StateStore
from watcher.state.copy import copy_state
from watcher.state.postgres import PostgresBackend
from watcher.store.embedded import EmbeddedStore

DAY = timedelta(days=1)


def resolved(name: str, flips: Iterable[datetime] = ()) -> Incident:
    group = {"model": name}
    return Incident(
        fingerprint("old-rule", group), "old-rule", group, {"rule": "old-rule"}, {}, "warning",
        State.RESOLVED, 0.0, 0.05, T0 - 90 * DAY, resolved_at=T0 - 89 * DAY, flips=tuple(flips),
        last_status="ok",
    )  # fmt: skip


class _Fetched:
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows
        self.rowcount = len(rows)

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Any]:
        return self.rows


def count_incident_rows(state: StateStore) -> list[int]:
    """The rows each read of the incidents table returns (the real backend answers)."""
    counts: list[int] = []
    execute = state.backend.execute

    def counting(statement: str, args: Sequence[Any] = ()) -> Any:
        rows = execute(statement, args)
        if statement.startswith("SELECT data FROM incidents"):
            fetched = rows.fetchall()
            counts.append(len(fetched))
            return _Fetched(fetched)
        return rows

    state.backend.execute = counting  # type: ignore[method-assign]
    return counts


def test_a_tick_reads_only_the_resolved_incidents_that_may_still_flap(
    state_at: StateAt, store: EmbeddedStore
) -> None:
    requests(store, T0 - MIN, 2, "v3", 200)
    history = [resolved(f"old-{n}", [T0 - 89 * DAY]) for n in range(1500)]
    history += [resolved(f"quiet-{n}") for n in range(1500)]
    recent = [resolved("recent-1", [T0 - 5 * MIN]), resolved("recent-2", [T0 - 30 * MIN, T0 - 19 * MIN])]
    with state_at.open() as state:
        state.commit([*history, *recent])
        assert len(state.incidents(states=(State.RESOLVED,))) == 3002
        counts = count_incident_rows(state)
        engine = Engine([rule()], {"app": store}, state, ROUTE)
        engine.tick(T0)
        # The open incidents (none), then the two whose flips are within 20 evaluations of 1m.
        assert counts == [0, 2]
        window_start = T0 - 20 * MIN
        assert sorted(i.group["model"] for i in state.flipped_since(window_start)) == ["recent-1", "recent-2"]


def test_a_state_of_an_older_watcher_gets_its_last_flips_filled_in(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with sqlite3.connect(path) as db:
        for statements in MIGRATIONS[:8]:
            for statement in statements:
                assert isinstance(statement, str)
                db.execute(statement)
        db.execute("PRAGMA user_version = 8")
        for incident in (resolved("flapped", [T0 - 10 * MIN, T0 - 2 * MIN]), resolved("quiet")):
            db.execute(
                "INSERT INTO incidents (fingerprint, rule, state, data) VALUES (?, ?, 'resolved', ?)",
                (incident.fingerprint, incident.rule, dumps(incident.to_json())),
            )
    with StateStore(path) as state:
        assert [i.group["model"] for i in state.flipped_since(T0 - 3 * MIN)] == ["flapped"]
        assert state.flipped_since(T0 - 2 * MIN) == []
        with state.writing() as db:  # resolved_at was filled in too: retention finds the old ones
            forget_old(db, T0)
        assert [i.group["model"] for i in state.incidents()] == ["flapped"]


def test_state_migrate_carries_the_last_flips_over(tmp_path: Path, postgres_url: str) -> None:
    with StateStore(tmp_path / "state.sqlite") as source:
        source.commit([resolved("flapped", [T0 - 2 * MIN]), resolved("quiet")])
        with StateStore(PostgresBackend(postgres_url)) as target:
            copy_state(source.backend, target.backend)
            assert [i.group["model"] for i in target.flipped_since(T0 - 3 * MIN)] == ["flapped"]
