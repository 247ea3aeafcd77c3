"""The embedded store's file cursors: how far each log file was read, kept in its DuckDB file.

Split from ``watcher.store.embedded`` to keep the table and its two statements in one place. The
cursors live in the same file as the rows and are written in the same transaction as the rows
they account for (``save_cursor`` runs in the caller's), so a crash between the two cannot lose
or duplicate lines. ``FileCursor`` itself (and resuming one) is in ``watcher.store.ingest``.
"""

from __future__ import annotations

import duckdb

from watcher.store.ingest import FileCursor

SCHEMA = """
CREATE TABLE IF NOT EXISTS ingest_cursors (
    path VARCHAR NOT NULL, device UBIGINT NOT NULL, inode UBIGINT NOT NULL, "offset" BIGINT NOT NULL,
    head_len INTEGER NOT NULL, head_hash VARCHAR NOT NULL
);
ALTER TABLE ingest_cursors ADD COLUMN IF NOT EXISTS line BIGINT DEFAULT 0;
"""


def load_cursors(cur: duckdb.DuckDBPyConnection) -> list[FileCursor]:
    """The read offsets of every file a pass has read."""
    rows = cur.execute(
        'SELECT path, device, inode, "offset", head_len, head_hash, line FROM ingest_cursors'
    ).fetchall()
    return [FileCursor(*row) for row in rows]


def save_cursor(cur: duckdb.DuckDBPyConnection, cursor: FileCursor) -> None:
    """Record how far ``cursor.path`` was read, in the caller's transaction (with its rows)."""
    cur.execute("DELETE FROM ingest_cursors WHERE path = ?", [cursor.path])
    cur.execute(
        'INSERT INTO ingest_cursors (path, device, inode, "offset", head_len, head_hash, line) '
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            cursor.path,
            cursor.device,
            cursor.inode,
            cursor.offset,
            cursor.head_len,
            cursor.head_hash,
            cursor.line,
        ],
    )
