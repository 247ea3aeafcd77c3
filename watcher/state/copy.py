"""Moving a state from one backend to another (``watcher state migrate``): every row of every table.

Both ends are opened as ``StateStore``s first, so both are at the current schema and the copy is a
plain row-for-row transfer, ids (the outbox's ``seq``) included: open incidents, silences, the
outbox (pending rows, and delivered ones, which keep a replayed tick from sending again), thread
references (so updates land in the threads Slack already has), aggregation groups and the rules'
checkpoints. The target is written in one transaction: a copy that fails leaves it as it was.
"""

from __future__ import annotations

from watcher.incidents.schema import StateStoreError
from watcher.state.base import STATE_TABLES, Backend


class TargetNotEmptyError(StateStoreError):
    """The target already holds a state; replacing it takes ``force``."""


def copy_state(source: Backend, target: Backend, *, force: bool = False) -> dict[str, int]:
    """Copy every state table of ``source`` into ``target``; returns the rows copied per table.
    A target holding any row is refused (``TargetNotEmptyError``) unless ``force``, which
    replaces what it held."""
    copied: dict[str, int] = {}
    with target.transaction():
        if not target.empty():
            if not force:
                raise TargetNotEmptyError(
                    f"{target.name} already holds a watcher state; --force replaces it with {source.name}'s"
                )
            for table in reversed(STATE_TABLES):  # members and links before what they reference
                target.execute(f"DELETE FROM {table}")
        for table in STATE_TABLES:
            columns, rows = source.rows(table)
            batch = list(rows)
            marks = ", ".join("?" * len(columns))
            target.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", batch)
            copied[table] = len(batch)
        target.after_copy()
    return copied
