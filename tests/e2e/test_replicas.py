"""Three real `watcher run` replicas on one PostgreSQL state and an osmem-server source (``ha:``):
every rule is evaluated exactly once per tick across them; a SIGKILLed replica's rules are
evaluated again within two ticks; a replica stopped (SIGSTOP) past its lease and resumed gets
no write accepted that another replica also made."""

from __future__ import annotations

import itertools
import json
import signal
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.daemon import WatcherProcess, wait_until, write_config
from tests.e2e.outage import SearchServer
from tests.e2e.storm import storm_env
from watcher.process.partitions import partition_of

pytestmark = [pytest.mark.e2e, pytest.mark.search]

EVERY = 2.0  # seconds between ticks
PARTITIONS = 6
RULES = [f"rule-{i:02d}" for i in range(30)]  # every partition holds rules
HA = {"replicas": 3, "partitions": PARTITIONS, "heartbeat": "1s", "lease": "2s"}


def rule(name: str) -> dict[str, Any]:
    """A rule that never fires: the test counts evaluations, not incidents."""
    return {
        "name": name,
        "source": "es",
        "every": f"{EVERY:g}s",
        "window": "4s",
        "signal": {"count": {}},
        "threshold": {"above": 1_000_000},
    }


def committed(process: WatcherProcess) -> list[tuple[float, str, str]]:
    """(log time, rule, evaluation time) of every evaluation the replica committed."""
    found = []
    for line in process.stderr().splitlines():
        if '"committed evaluations"' not in line:
            continue
        entry = json.loads(line)
        logged = datetime.fromisoformat(entry["time"]).timestamp()
        for evaluation in entry["evaluations"]:
            name, at = evaluation.split("@")
            found.append((logged, name, at))
    return found


def taken_over(killed: WatcherProcess, others: tuple[WatcherProcess, ...], kill_at: float) -> bool:
    """Whether another replica committed an evaluation of a rule the killed one held."""
    held = {name for _, name, _ in committed(killed)}
    return any(name in held and logged > kill_at for other in others for logged, name, _ in committed(other))


def test_three_replicas_evaluate_each_rule_once_per_tick_and_take_over_a_dead_one(
    tmp_path: Path, server: SearchServer, postgres_url: str
) -> None:
    assert {partition_of(name, PARTITIONS) for name in RULES} == set(range(PARTITIONS))
    source = {"store": "opensearch", "hosts": [server.url], "index": "app-logs", "time_field": "ts"}
    config = write_config(
        tmp_path, [rule(name) for name in RULES], sources={"es": source}, state={"url": postgres_url}, ha=HA
    )
    env, args = storm_env(tmp_path / "pycache"), ("--log-level", "debug")
    replicas = [WatcherProcess(config, env, args) for _ in range(3)]
    try:
        for replica in replicas:
            replica.wait_started(60)
        time.sleep(2 * EVERY)  # the three share the partitions
        killed, stopped, survivor = replicas
        kill_at = time.time()
        killed.kill()
        wait_until(lambda: taken_over(killed, (stopped, survivor), kill_at), timeout=30)
        time.sleep(EVERY)
        stopped.proc.send_signal(signal.SIGSTOP)
        stop_at = time.time()
        time.sleep(2.5)  # past the 2s lease: the survivor takes everything over
        wait_until(lambda: taken_over(stopped, (survivor,), stop_at), timeout=30)
        stopped.proc.send_signal(signal.SIGCONT)
        time.sleep(2 * EVERY)
    finally:
        running = [replica for replica in replicas if replica.proc.poll() is None]
        for replica in running:
            replica.proc.send_signal(signal.SIGCONT)
            replica.proc.send_signal(signal.SIGTERM)  # all stop at once
        for replica in running:
            assert replica.exited() == 0, replica.stderr()[-3000:]  # one SIGTERM each
    evaluations = {id(replica): committed(replica) for replica in replicas}
    every = [(name, at) for found in evaluations.values() for _, name, at in found]

    # Exactly once per rule and tick, across the replicas, with no tick missing in between.
    twice = [key for key, count in Counter(every).items() if count > 1]
    assert twice == [], f"evaluated more than once: {twice[:5]}"
    for name in RULES:
        times = sorted(datetime.fromisoformat(at) for rule_name, at in every if rule_name == name)
        gaps = {b - a for a, b in itertools.pairwise(times)}
        assert gaps == {timedelta(seconds=EVERY)}, f"{name}: ticks missing or doubled: {sorted(gaps)}"

    # The killed replica held rules; they were evaluated again within two ticks of the kill.
    killed_rules = {name for _, name, _ in evaluations[id(killed)]}
    assert killed_rules
    after = [
        logged
        for other in (stopped, survivor)
        for logged, name, _ in evaluations[id(other)]
        if name in killed_rules and logged > kill_at
    ]
    assert min(after) - kill_at <= 2 * EVERY + 1.0

    # The stopped replica, resumed after the survivor took its rules over: none of the windows the
    # survivor evaluated was accepted from it (its stale tick, if any, was fenced).
    held_before = {name for logged, name, _ in evaluations[id(stopped)] if logged < stop_at}
    during = {
        (name, at)
        for _, name, at in evaluations[id(survivor)]
        if name in held_before and stop_at < _epoch(at)
    }
    assert during
    woke = {(name, at) for _, name, at in evaluations[id(stopped)]}
    assert during.isdisjoint(woke)
    assert "lost partitions" in stopped.stderr() or "lease lost" in stopped.stderr()


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
