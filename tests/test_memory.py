"""Handing freed memory back to the OS, and rebuilding long-lived data in fresh memory."""

from __future__ import annotations

import gc
import sys
import threading
import weakref
from pathlib import Path

import duckdb
import pytest

from watcher.config import Config
from watcher.process import memory
from watcher.rules.loader import load_rules


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
