"""Daemons sharing one PostgreSQL state with ``ha:``: no one-daemon lock, ``/readyz`` and
``/metrics`` per replica, ``watcher:replicas-missing`` raised once by partition 0's owner, and a
database it cannot reach is told at the next heartbeat, even by a replica holding nothing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.daemon import write_config
from tests.test_reload import RULE
from watcher.cli.common import load
from watcher.incidents.model import State
from watcher.incidents.schema import StateStoreError
from watcher.process.daemon import Daemon
from watcher.process.meta import REPLICAS_MISSING
from watcher.process.write_guard import STATE_UNWRITABLE
from watcher.state import leases

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HEARTBEAT = timedelta(seconds=10)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Daemons:
    """Daemons on one config in a folder, sharing the state at ``url``, on one fake clock."""

    def __init__(self, folder: Path, url: str, ha: dict[str, object] | None) -> None:
        extra = {} if ha is None else {"ha": ha}
        self.loaded = load(write_config(folder, [RULE], state={"url": url}, **extra))
        self.clock = Clock()
        self.running: list[Daemon] = []

    def start(self, replicas: int | None = None) -> Daemon:
        config = self.loaded.config
        if replicas is not None:  # more than one on an embedded source: only `watcher check` refuses it
            assert config.ha is not None
            config = config.model_copy(update={"ha": config.ha.model_copy(update={"replicas": replicas})})
        daemon = Daemon(config, self.loaded.rules, clock=self.clock)
        daemon.scheduler.start(paused=True)  # jobs are run by the test
        self.running.append(daemon)
        return daemon

    def heartbeat(self, *daemons: Daemon) -> None:
        for daemon in daemons:
            daemon.beat_job()
        self.clock.now += HEARTBEAT

    def stop(self) -> None:
        for daemon in self.running:
            daemon.stop()


@pytest.fixture
def daemons(tmp_path: Path, postgres_url: str) -> Iterator[Daemons]:
    started = Daemons(tmp_path, postgres_url, {"replicas": 1, "partitions": 8})
    yield started
    started.stop()


def ready(daemon: Daemon) -> tuple[bool, tuple[str, ...], int]:
    """Whether ``/readyz`` is fine about partitions (no tick ran: the source is not reached yet)."""
    verdict = daemon.operations.health.readiness()
    reasons = tuple(reason for reason in verdict.reasons if "source app" not in reason)
    return not reasons, reasons, verdict.details["partitions_held"]


def sample(daemon: Daemon, name: str) -> float | None:
    return daemon.operations.metrics.registry.get_sample_value(name)


def test_without_ha_a_second_daemon_is_refused_with_ha_both_run(tmp_path: Path, postgres_url: str) -> None:
    alone = Daemons(tmp_path / "one", postgres_url, None)
    alone.start()
    try:
        with pytest.raises(StateStoreError, match="another watcher daemon"):
            alone.start()
    finally:
        alone.stop()
    shared = Daemons(tmp_path / "ha", postgres_url, {"replicas": 1, "partitions": 8})
    try:
        a, b = shared.start(), shared.start()
        shared.heartbeat(a, b)
        shared.heartbeat(a, b)
        assert (len(a.replica.held), len(b.replica.held)) == (4, 4)  # type: ignore[union-attr]
    finally:
        shared.stop()


def test_a_replica_is_ready_while_it_holds_partitions_and_counts_them(daemons: Daemons) -> None:
    a = daemons.start()
    assert ready(a) == (True, (), 8)
    assert sample(a, "watcher_ha_partitions_held") == 8
    b = daemons.start()  # a holds every partition until its next heartbeat gives half back
    assert ready(b) == (False, ("holds no rule partition (2 replicas alive share them)",), 0)
    daemons.heartbeat(a, b)
    assert ready(a) == (True, (), 4)
    assert ready(b) == (True, (), 4)
    assert sample(b, "watcher_ha_replicas_alive") == 2
    assert sample(b, "watcher_ha_lease_renewals_total") == 4  # b's leases renewed at its last beat
    a.stop()  # a clean stop gives its partitions back: b takes them at its next heartbeat
    daemons.running.remove(a)
    daemons.heartbeat(b)
    assert ready(b) == (True, (), 8)
    assert sample(b, "watcher_ha_takeovers_total") == 0  # handed over, not taken from a live one


def test_fewer_replicas_than_configured_is_one_alert_from_partition_0_s_owner(daemons: Daemons) -> None:
    a = daemons.start(replicas=2)
    for _ in range(2):
        daemons.heartbeat(a)
    assert a.state.incidents(rule=REPLICAS_MISSING)[0].state is State.PENDING  # not for a lease yet
    daemons.heartbeat(a)
    (missing,) = a.state.incidents(rule=REPLICAS_MISSING)
    assert missing.state is State.FIRING
    assert "1 of 2 watcher replicas alive" in missing.annotations["summary"]
    b = daemons.start(replicas=2)
    daemons.heartbeat(b, a, b)
    (missing,) = a.state.incidents(rule=REPLICAS_MISSING)
    assert missing.state is State.RESOLVED
    leader = a if a.replica.leads else b  # type: ignore[union-attr]
    other = b if leader is a else a
    assert not other.replica.leads  # type: ignore[union-attr]


def test_a_database_it_cannot_reach_is_told_at_the_next_heartbeat(
    daemons: Daemons, postgres_url: str
) -> None:
    a = daemons.start()
    backend = a.state.backend
    backend.url = postgres_url.rsplit(":", 1)[0] + ":1/gone"  # type: ignore[attr-defined]  # the server is away
    backend.connection().close()  # the connection it had is dropped; reconnecting fails
    daemons.heartbeat(a)
    ok, reasons, _ = ready(a)
    assert not ok
    assert reasons[0].startswith("cannot write the state file for ")
    assert "postgresql://postgres:***@127.0.0.1:1/gone: cannot use the state database" in reasons[0]
    assert a.guard.alert.incident is not None
    assert a.guard.alert.incident.rule == STATE_UNWRITABLE
    backend.url = postgres_url  # type: ignore[attr-defined]  # back: the next heartbeat works again
    daemons.heartbeat(a)
    assert ready(a) == (True, (), 8)


def test_a_replica_with_another_partitions_count_refuses_to_start_and_leaves_the_table(
    tmp_path: Path, postgres_url: str
) -> None:
    """A replica on 8 partitions is running; one configured with 16 would hash the rules to other
    partitions than the running one's (rules evaluated twice, or never): it exits 2 with a message
    naming both counts, and the table is not rewritten."""
    running = Daemons(tmp_path / "a", postgres_url, {"replicas": 1, "partitions": 8})
    running.clock.now = datetime.now(UTC)  # its leases are live for the other process's clock
    try:
        a = running.start()
        assert len(a.replica.held) == 8  # type: ignore[union-attr]
        other = write_config(
            tmp_path / "b", [RULE], state={"url": postgres_url}, ha={"replicas": 1, "partitions": 16}
        )
        result = subprocess.run(
            [sys.executable, "-m", "watcher", "run", "--config", str(other)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr[-2000:]
        assert "ha.partitions is 16 but the state's other replicas use 8" in result.stderr
        assert "Traceback" not in result.stderr
        with a.state.reading() as db:
            assert [lease.number for lease in leases.leases(db)] == list(range(8))
        a.beat_job()
        assert len(a.replica.held) == 8  # type: ignore[union-attr]
    finally:
        running.stop()


def test_a_new_partitions_count_is_taken_once_every_replica_stopped(
    tmp_path: Path, postgres_url: str
) -> None:
    first = Daemons(tmp_path / "a", postgres_url, {"replicas": 1, "partitions": 8})
    first.start()
    first.stop()  # a clean stop gives every lease back
    second = Daemons(tmp_path / "b", postgres_url, {"replicas": 1, "partitions": 16})
    try:
        b = second.start()
        assert len(b.replica.held) == 16  # type: ignore[union-attr]
    finally:
        second.stop()
