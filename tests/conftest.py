"""Fixtures for every test: the state on each backend (SQLite, and a real PostgreSQL server).

``state_at`` is the contract suite's parametrized fixture (as APScheduler tests its data stores):
a test that takes it runs once on a SQLite file and once on a fresh PostgreSQL database, and
opens the state (again, for a restart or "another process") with ``state_at.open()``. The
PostgreSQL server is started once per session (``tests.pg_server``); without ``initdb`` its cases
are skipped, unless WATCHER_REQUIRE_TOOLS names ``postgres`` (CI sets it): then they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from tests import pg_server
from watcher.config import StateConfig
from watcher.incidents.state import StateStore
from watcher.state.factory import open_state
from watcher.state.postgres import PostgresBackend
from watcher.store.embedded import EmbeddedStore

BACKENDS = ("sqlite", "postgresql")


def _required() -> bool:
    tools = os.environ.get("WATCHER_REQUIRE_TOOLS", "")
    return "postgres" in {name.strip() for name in tools.split(",")}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pg_server.PostgresServer]:
    yield from _postgres()


@pytest.fixture
def private_postgres() -> Iterator[pg_server.PostgresServer]:
    """A server of the test's own, which it may stop and start (an outage) without the others'."""
    yield from _postgres()


def _postgres() -> Iterator[pg_server.PostgresServer]:
    initdb = pg_server.find_initdb()
    if initdb is None:
        why = "no initdb (PostgreSQL server) found: apt-get install postgresql"
        if _required():
            pytest.fail(f"postgres is required by WATCHER_REQUIRE_TOOLS but {why}")
        pytest.skip(why)
    server = pg_server.start(initdb)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: pg_server.PostgresServer) -> Iterator[str]:
    """A new, empty database of the session's server (dropped after the test)."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(url)


@dataclass(frozen=True)
class StateAt:
    """Where a test's state lives; ``open`` opens it (once more: a restart, another process)."""

    kind: str
    config: StateConfig

    def open(self, *, busy_timeout: timedelta = timedelta(seconds=5)) -> StateStore:
        if self.config.url is not None:
            return StateStore(PostgresBackend(self.config.url))
        return StateStore(self.config.path, busy_timeout=busy_timeout)

    def factory_open(self) -> StateStore:
        return open_state(self.config)


@pytest.fixture(params=BACKENDS)
def state_at(request: pytest.FixtureRequest, tmp_path: Path) -> StateAt:
    if request.param == "sqlite":
        return StateAt("sqlite", StateConfig(path=tmp_path / "data" / "state.sqlite"))
    url = request.getfixturevalue("postgres_url")
    return StateAt("postgresql", StateConfig(url=url))


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    """A fresh SQLite state file (for tests of one backend; the contract suite takes ``state_at``)."""
    with StateStore(tmp_path / "state.sqlite") as opened:
        yield opened


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    """A fresh embedded store (a real DuckDB file), time field ``@timestamp``."""
    opened = EmbeddedStore(tmp_path / "logs.duckdb")
    yield opened
    opened.close()
