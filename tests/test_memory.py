"""Handing freed memory back to the OS, and rebuilding long-lived data in fresh memory."""

from __future__ import annotations

import gc
import json
import sys
import threading
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.e2e.daemon import write_config
from watcher.cli.common import load
from watcher.config import Config
from watcher.process import memory
from watcher.process.daemon import Daemon
from watcher.rules.loader import load_rules

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def test_rebuilt_rules_equal_the_loaded_ones(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "name: errors\nsource: app\nevery: 1m\nwindow: 5m\nsignal: count\nthreshold: {above: 10}\n"
    )
    made = load_rules([tmp_path])
    again = memory.rebuilt(lambda: load_rules([tmp_path]))
    assert again.rules == made.rules
    assert again.rules[0] is not made.rules[0]
    assert again.files == made.files


def test_what_cannot_be_pickled_is_returned_as_made() -> None:
    lock = threading.Lock()
    assert memory.rebuilt(lambda: lock) is lock


def test_release_works_with_duckdb_loaded_and_leaves_it_working(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "x.duckdb"), config={"threads": 1})
    con.execute("CREATE TABLE t AS SELECT range AS i FROM range(100000)")
    memory.release()
    memory.trim()
    row = con.execute("SELECT sum(i) FROM t").fetchone()
    assert row == (4999950000,)
    con.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; jemalloc and glibc builds")
def test_trim_returns_what_a_duckdb_query_freed() -> None:
    con = duckdb.connect(config={"threads": 1})
    con.execute("SELECT count(DISTINCT range::VARCHAR) FROM range(2000000)").fetchall()
    before = _rss_mb()
    memory.trim()
    assert before - _rss_mb() > 50  # about 110 MB of jemalloc's dirty pages, kept until purged
    con.close()


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_config_survives_a_rebuild() -> None:
    config = Config.model_validate({"sources": {"app": {"store": "embedded", "path": "logs.duckdb"}}})
    assert memory.rebuilt(lambda: config) == config


class _Node:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_after_freeze_ticks_still_collect_their_garbage_and_a_reload_frees_the_old_heap() -> None:
    try:
        old = _Node()  # e.g. a rule alive at start-up
        old_ref = weakref.ref(old)
        memory.freeze()
        assert gc.get_freeze_count() > 0
        del old  # replaced by a reload
        memory.release()
        assert old_ref() is not None  # frozen: per-tick collections never walk it (that is the point)
        new = _Node()  # garbage a tick makes
        new_ref = weakref.ref(new)
        del new
        memory.release()
        assert new_ref() is None  # still collected at the tick's end
        memory.freeze()  # the reload's freeze thaws first, so the replaced heap is collected
        assert old_ref() is None
    finally:
        gc.unfreeze()


def _full_collections() -> tuple[list[int], Callable[[str, dict[str, int]], None]]:
    """A list that counts the collector's full collections, and the callback that fills it."""
    started: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            started.append(1)

    return started, count


def test_a_daemons_ticks_that_leave_no_cyclic_garbage_collect_in_full_a_few_times(tmp_path: Path) -> None:
    rules = [
        {"name": "errors", "source": "app", "every": "1m", "window": "5m", "signal": "count"},
        {"name": "slow", "source": "app", "every": "1m", "window": "5m", "signal": "count"},
    ]
    path = write_config(tmp_path, [{**rule, "threshold": {"above": 100}} for rule in rules])
    (tmp_path / "logs" / "app.jsonl").write_text(json.dumps({"ts": T0.timestamp(), "status": 500}) + "\n")
    loaded = load(path)
    now = [T0]
    daemon = Daemon(loaded.config, loaded.rules, clock=lambda: now[0])
    daemon.scheduler.start(paused=True)
    started, count = _full_collections()
    try:
        daemon.tick()  # the first tick: the store opened, its mapping and buckets read
        memory.freeze()  # as the daemon's start does
        gc.callbacks.append(count)
        for minute in range(1, 41):
            now[0] = T0 + timedelta(minutes=minute)
            daemon.tick()
    finally:
        if count in gc.callbacks:
            gc.callbacks.remove(count)
        daemon.stop()
        gc.unfreeze()
    assert len(started) <= 10  # one after each of the 40 ticks before: ~0.4 ms of a 9 ms tick at 10 rules


def test_cyclic_garbage_a_tick_leaves_is_freed_within_the_bound_and_then_at_every_tick() -> None:
    try:
        memory.freeze()
        for _ in range(3 * memory.FULL_EVERY_MAX):
            memory.release()  # quiet ticks: full collections spaced out to the bound
        node = _Node()
        node_ref = weakref.ref(node)
        gc.collect(1)  # alive through the tick's young collections: in the oldest generation
        del node
        for _ in range(memory.FULL_EVERY_MAX):
            memory.release()
            if node_ref() is None:
                break
        assert node_ref() is None
        for _ in range(20):  # found garbage: every tick's end collects again, while ticks leave some
            node = _Node()
            node_ref = weakref.ref(node)
            gc.collect(1)
            del node
            memory.release()
            assert node_ref() is None
    finally:
        gc.unfreeze()


class _Holder:
    """1 MB held by a reference cycle."""

    def __init__(self) -> None:
        self.me = self
        self.held = bytearray(1 << 20)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_rss_stays_flat_when_every_tick_leaves_a_megabyte_in_a_cycle() -> None:
    try:
        memory.freeze()
        for _ in range(3 * memory.FULL_EVERY_MAX):
            memory.release()
        for tick in range(100):
            holder = _Holder()
            gc.collect(1)
            del holder
            memory.release()
            if tick == 10:
                settled = _rss_mb()
        assert _rss_mb() - settled < 5
    finally:
        gc.unfreeze()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; glibc")
def test_a_ticks_end_returns_glibc_heap_freed_between_live_blocks() -> None:
    blocks = [bytes(64 << 10) for _ in range(800)]  # 50 MB under glibc's mmap threshold
    kept = blocks[9::10]  # every tenth stays: glibc cannot shrink its heap's top past them
    del blocks
    before = _rss_mb()
    memory.release()
    assert before - _rss_mb() > 30
    assert len(kept) == 80
