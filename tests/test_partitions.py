"""Rule ownership by leases on a real PostgreSQL state, with a fake clock: several ``Replica``
objects on one database spread the partitions evenly, a new one gets its share without a restart
of the others, a dead one's partitions are taken over after its lease, and a replica paused past
its lease writes nothing (fencing)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from tests.notify.samples import incident, resolved
from tests.test_engine import rule
from watcher.config import HaConfig, Route
from watcher.engine import Engine
from watcher.incidents.model import OPEN, Event
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification
from watcher.process.metrics import ReplicaMetrics
from watcher.process.partitions import LeaseLostError, Replica, partition_of, quota
from watcher.state.postgres import PostgresBackend
from watcher.store.embedded import EmbeddedStore

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HA = HaConfig(replicas=3, partitions=64, heartbeat=timedelta(seconds=10), lease=timedelta(seconds=30))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Replicas:
    """Replicas on one database, each with its own connection (its own process, in production)."""

    def __init__(self, url: str, ha: HaConfig = HA) -> None:
        self.url, self.ha, self.clock = url, ha, Clock()
        self.opened: list[StateStore] = []
        self.metrics: dict[str, ReplicaMetrics] = {}

    def start(self, name: str) -> Replica:
        state = StateStore(PostgresBackend(self.url))
        self.opened.append(state)
        self.metrics[name] = ReplicaMetrics(CollectorRegistry())
        return Replica(state, self.ha, self.clock, metrics=self.metrics[name], replica_id=name)

    def close(self) -> None:
        for state in self.opened:
            state.close()


@pytest.fixture
def replicas(postgres_url: str) -> Iterator[Replicas]:
    opened = Replicas(postgres_url)
    yield opened
    opened.close()


def beat(*replicas: Replica, rounds: int = 1, clock: Clock | None = None) -> None:
    """Every replica beats, ``rounds`` times, a heartbeat apart."""
    for _ in range(rounds):
        for replica in replicas:
            replica.beat()
        if clock is not None:
            clock.advance(HA.heartbeat.total_seconds())


def held(*replicas: Replica) -> list[int]:
    return [len(replica.held) for replica in replicas]


def assert_disjoint_and_complete(*replicas: Replica, partitions: int = 64) -> None:
    numbers = [number for replica in replicas for number in replica.held]
    assert sorted(numbers) == list(range(partitions))


def test_a_rule_s_partition_is_the_same_everywhere_and_rules_spread_over_all_partitions() -> None:
    assert partition_of("api-5xx", 64) == 21  # pinned: BLAKE2b, not hash()
    assert {partition_of(f"rule-{i}", 64) for i in range(1000)} == set(range(64))
    assert [quota(["a", "b", "c"], me, 64) for me in "abc"] == [22, 21, 21]


def test_three_replicas_share_the_partitions_evenly_and_each_rule_has_one_owner(replicas: Replicas) -> None:
    a, b, c = (replicas.start(name) for name in "abc")
    beat(a, b, c, rounds=3, clock=replicas.clock)
    assert held(a, b, c) == [22, 21, 21]
    assert_disjoint_and_complete(a, b, c)
    names = [f"rule-{i}" for i in range(300)]
    assert all([a.owns(n), b.owns(n), c.owns(n)].count(True) == 1 for n in names)


def test_a_new_replica_takes_its_share_without_a_restart_of_the_others(replicas: Replicas) -> None:
    a, b = replicas.start("a"), replicas.start("b")
    beat(a, b, rounds=2, clock=replicas.clock)
    assert held(a, b) == [32, 32]
    c = replicas.start("c")
    beat(c, a, b, c, rounds=2, clock=replicas.clock)  # a and b release what is over their share
    assert held(a, b, c) == [22, 21, 21]
    assert_disjoint_and_complete(a, b, c)
    assert replicas.metrics["c"].takeovers._value.get() == 0  # given back, not taken from anyone


def test_a_dead_replica_s_partitions_are_taken_over_once_its_lease_ends(replicas: Replicas) -> None:
    a, b, c = (replicas.start(name) for name in "abc")
    beat(a, b, c, rounds=2, clock=replicas.clock)
    lost = set(c.held)
    # c dies: the others go on beating; c's leases last until its last renewal + lease.
    beat(a, b, rounds=2, clock=replicas.clock)
    assert held(a, b) == [22, 21]
    assert not lost & (a.held.keys() | b.held.keys())
    beat(a, b, rounds=2, clock=replicas.clock)  # 40 s after c's last beat: lease + heartbeat
    assert held(a, b) == [32, 32]
    assert_disjoint_and_complete(a, b)
    taken_over = replicas.metrics["a"].takeovers._value.get() + replicas.metrics["b"].takeovers._value.get()
    assert taken_over == len(lost) == 21
    assert a.alive == b.alive == 2


def test_a_clean_stop_hands_its_partitions_over_at_the_next_beat(replicas: Replicas) -> None:
    a, b = replicas.start("a"), replicas.start("b")
    beat(a, b, rounds=2, clock=replicas.clock)
    b.leave()
    beat(a)
    assert held(a) == [64]
    assert a.alive == 1


def test_a_replica_paused_past_its_lease_writes_nothing(replicas: Replicas, store: EmbeddedStore) -> None:
    """a holds every partition and starts a tick; it is paused (SIGSTOP) between its beat and its
    commit; b takes its partitions over; a's commit is refused whole: no incident, no outbox row,
    no checkpoint. b then evaluates the same window and fires once."""
    lines = [
        json.dumps({"@timestamp": (T0 - timedelta(seconds=50 - i)).isoformat(), "model": "v2", "status": 503})
        for i in range(10)
    ]
    store.ingest_lines(lines)
    route = Route.model_validate({"receiver": "slack", "group_by": ["rule"], "group_wait": "0s"})
    a = replicas.start("a")
    a.beat()
    assert len(a.held) == 64
    replicas.clock.advance(45)  # a is stopped: no heartbeat for longer than the lease
    b = replicas.start("b")
    b.beat()
    assert len(b.held) == 64
    assert replicas.metrics["b"].takeovers._value.get() == 64

    engine_a = Engine([rule()], {"app": store}, a.state, route)
    with pytest.raises(LeaseLostError):
        engine_a.tick(T0, a)  # a wakes up and commits the tick it had started
    assert a.state.incidents() == []
    assert a.state.outbox_depth() == 0
    assert a.state.checkpoints() == {}
    a.fenced(LeaseLostError(sorted(a.held)))
    assert replicas.metrics["a"].fenced_writes._value.get() == 1
    assert a.held == {}

    report = Engine([rule()], {"app": store}, b.state, route).tick(T0, b)
    assert [t.event.value for t in report.transitions] == ["firing"]
    assert len(b.state.incidents(states=OPEN)) == 1
    assert b.state.outbox_depth() == 1
    a.beat()  # a back: it counts b, takes nothing b holds, and is not ready
    assert a.held == {}


def test_a_dead_replica_s_outbox_claims_are_released_when_its_partitions_are_taken_over(
    replicas: Replicas,
) -> None:
    """c claimed a notification (a send in flight) and died: once b takes c's partitions over, the
    claim is released, so the send goes out now rather than when the claim's 2-minute lease ends.
    A live replica's claim survives the rebalance a new replica causes."""
    a, b, c = (replicas.start(name) for name in "abc")
    beat(a, b, c, rounds=2, clock=replicas.clock)
    at = replicas.clock.now
    sent = [
        Notification(f"slack-0-{event.value}", "slack", event, (told,), at, thread_key="thread-0")
        for event, told in ((Event.FIRING, incident(details={})), (Event.RESOLVED, resolved(details={})))
    ]
    c.state.commit(notifications=sent)
    assert c.state.claim("slack-0-firing", at, at + timedelta(minutes=2))
    assert a.state.claim("slack-0-resolved", at, at + timedelta(minutes=2))
    d = replicas.start("d")
    beat(d, a, b, c, rounds=2, clock=replicas.clock)  # a joiner: nobody dead, no claim released
    assert b.state.claim("slack-0-firing", replicas.clock.now, replicas.clock.now) is None

    beat(a, b, d, rounds=4, clock=replicas.clock)  # c dies: its lease ends, its partitions are taken
    assert held(a, b, d) == [22, 21, 21]
    now = replicas.clock.now
    assert now < at + timedelta(minutes=2)  # the claim's own lease has not ended
    assert b.state.claim("slack-0-firing", now, now + timedelta(minutes=2)) is not None
    assert b.state.claim("slack-0-resolved", now, now + timedelta(minutes=2)) is None  # a's: alive
