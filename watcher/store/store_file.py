"""The embedded store's DuckDB file, opened once per process (``connect``): every store of one
file attaches it in one in-memory database, so that stores of one file share it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

Config = dict[str, str | bool | int | float | list[str]]
"""A DuckDB connection's configuration, as ``duckdb.connect`` types it."""


def connect(
    path: Path, config: Config, row_group_size: int | None, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """A connection to the store's file, attached as ``store`` (with ``row_group_size`` rows per
    row group; DuckDB sets it per attachment, not per connection) in the process's one DuckDB
    database of that file: the in-memory database named after the resolved path. Stores of one
    file in one process (two daemons on one data folder, a daemon and ``watcher ingest``) share
    it, as ``duckdb.connect(path)`` shares its file; a second ATTACH of the file from another
    database would fail ('Unique file handle conflict'). DuckDB closes the file with the last
    connection. The first store to attach sets the row groups (and ``read_only``, whether the file
    is attached read-only). The in-memory default database is detached, so every cursor reads and
    writes ``store``."""
    file = path.resolve()
    name = hashlib.sha256(str(file).encode()).hexdigest()[:24]
    spill = {"temp_directory": f"{file}.tmp"}  # where duckdb.connect(path) spills; in-memory: ./.tmp
    con = duckdb.connect(f":memory:watcher-{name}", config=config | spill)
    options = (
        " (READ_ONLY)" if read_only else f" (ROW_GROUP_SIZE {int(row_group_size)})" if row_group_size else ""
    )
    quoted = str(file).replace("'", "''")
    try:
        con.execute(
            f"ATTACH IF NOT EXISTS '{quoted}' AS store{options}; USE store; DETACH DATABASE IF EXISTS memory"
        )
    except BaseException:
        con.close()
        raise
    return con
