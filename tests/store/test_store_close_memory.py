"""Closing the daemon's store at shutdown must not take more memory than running did: DuckDB's
own checkpoint at close compressed up to 16 MB of WAL under the full memory limit, and a daemon
under systemd's ``MemoryMax`` would be killed at every stop (``EmbeddedStore.close``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from watcher.store.embedded import EmbeddedStore

CHILD = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from watcher.config import EmbeddedSource
    from watcher.demo import write_log
    from watcher.store.embedded import from_source

    def mb(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024

    work = Path(sys.argv[1])
    write_log(work / "app.jsonl", start=datetime.now(UTC) - timedelta(hours=6), length=timedelta(hours=6))
    store = from_source(EmbeddedSource(store="embedded", path=work / "logs.duckdb"))
    store.ingest_files([str(work / "app.jsonl")])
    store.trim_cache()  # as after each of the daemon's ticks
    wal = (work / "logs.duckdb.wal").stat().st_size
    Path("/proc/self/clear_refs").write_text("5")  # the high-water mark from here on
    before = mb("VmRSS")
    store.close()
    print(wal, before, mb("VmHWM"))
    """
)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc")
def test_closing_a_store_with_a_full_wal_stays_near_its_running_memory(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, env=env, check=True
    )
    wal, before, peak = (float(word) for word in done.stdout.split())
    assert wal > 8_000_000  # the checkpoint at close has megabytes of rows to compress (old code: +20 MB)
    assert peak - before < 10, f"closing took RSS from {before:.0f} MB to {peak:.0f} MB"
    store = EmbeddedStore(tmp_path / "logs.duckdb", read_only=True)  # nothing lost: every line is there
    try:
        lines = (tmp_path / "app.jsonl").read_bytes().count(b"\n")
        assert store.row_count() == lines
    finally:
        store.close()
    assert not (tmp_path / "logs.duckdb.wal").exists() or (tmp_path / "logs.duckdb.wal").stat().st_size == 0
