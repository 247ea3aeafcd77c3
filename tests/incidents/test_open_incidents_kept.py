"""The open incidents a state store wrote are not read back at every tick: on a state one daemon
owns, the engine's next read takes them as the store's own commits left them. Another connection's
commit (another daemon or process on the file), or a replica on PostgreSQL, makes it read again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import StateAt
from watcher.incidents.model import OPEN, Incident, State, fingerprint
from watcher.incidents.state import StateStore

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def incident(model: str, state: State = State.FIRING, **fields: object) -> Incident:
    group = {"model": model}
    values: dict[str, object] = {
        "fingerprint": fingerprint("api-5xx", group),
        "rule": "api-5xx",
        "group": group,
        "labels": {"rule": "api-5xx", "model": model},
        "annotations": {},
        "severity": "critical",
        "state": state,
        "value": 0.2,
        "threshold": 0.05,
        "started_at": T0,
        "details": {"series": [[T0.isoformat(), 0.2]]},
    }
    return Incident(**(values | fields))  # type: ignore[arg-type]


@contextmanager
def counted_reads(store: StateStore) -> Iterator[list[str]]:
    """The statements that read incident rows, run through ``store`` meanwhile."""
    reads: list[str] = []
    backend = store.backend
    execute = backend.execute

    def counting(statement: str, args: object = ()) -> object:
        if statement.startswith("SELECT data FROM incidents"):
            reads.append(statement)
        return execute(statement, args)  # type: ignore[arg-type]

    backend.execute = counting  # type: ignore[method-assign,assignment]
    try:
        yield reads
    finally:
        backend.execute = execute  # type: ignore[method-assign]


def test_the_open_incidents_a_store_wrote_are_taken_as_written(state_at: StateAt) -> None:
    with state_at.open() as store:
        gone, kept = incident("v1", State.PENDING), incident("v2")
        assert store.incidents(states=OPEN) == []
        store.commit([gone, kept])
        later = kept.evolve(value=0.3, last_evaluated_at=T0 + timedelta(minutes=1))
        store.commit([later, incident("v3", State.RESOLVED)], deletes=[gone.fingerprint])
        with counted_reads(store) as reads:
            found = store.incidents(states=OPEN)
        assert found == [later]
        assert found[0] is later
        assert len(reads) == (0 if state_at.kind == "sqlite" else 1)  # PostgreSQL: replicas write them
        assert {i.group["model"] for i in store.incidents()} == {"v2", "v3"}  # other reads read


def test_another_connections_commit_is_read(state_at: StateAt) -> None:
    with state_at.open() as daemon, state_at.open() as other:
        daemon.commit([incident("v1")])
        assert [i.group["model"] for i in daemon.incidents(states=OPEN)] == ["v1"]
        other.commit([incident("v2")], deletes=[incident("v1").fingerprint])
        assert [i.group["model"] for i in daemon.incidents(states=OPEN)] == ["v2"]
        daemon.commit([incident("v3")])
        assert sorted(i.group["model"] for i in daemon.incidents(states=OPEN)) == ["v2", "v3"]


def test_a_snapshot_json_would_not_give_back_is_read_from_its_row(state_at: StateAt) -> None:
    with state_at.open() as store:
        store.incidents(states=OPEN)
        odd = incident("v1", details={"bins": (1, 2), "at": T0})
        store.commit([odd])
        (read,) = store.incidents(states=OPEN)
        assert read.details == {"bins": [1, 2], "at": T0.isoformat()}
        assert read == Incident.from_json(json.loads(odd.encoded()))


def test_a_failed_commit_keeps_nothing_of_it(state_at: StateAt) -> None:
    with state_at.open() as store:
        store.commit([incident("v1")])
        store.incidents(states=OPEN)

        def refuse(_: object) -> None:
            raise RuntimeError("lease lost")

        with pytest.raises(RuntimeError, match="lease lost"):
            store.commit([incident("v2")], deletes=[incident("v1").fingerprint], fence=refuse)
        assert [i.group["model"] for i in store.incidents(states=OPEN)] == ["v1"]
