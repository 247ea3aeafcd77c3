"""The state's schema and its migrations, one list for every backend.

``MIGRATIONS[n]`` upgrades version ``n`` to ``n + 1``; ``migrate`` runs the missing ones inside
the transaction that bumps the version (SQLite keeps it in ``PRAGMA user_version``, PostgreSQL in
``watcher_schema``). Migrations are additive (new tables, new nullable columns), so an older
state keeps its rows and a restart after an upgrade resumes where it was. They are written in
SQLite's terms; ``watcher.state.dialect`` rewrites the column types for PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from watcher.incidents.encoding import micros

if TYPE_CHECKING:
    from watcher.state.base import Backend

Step = str | Callable[["Backend"], None]
"""A migration's step: a statement (SQLite's terms), or a function that fills in rows."""

_V1 = (
    """CREATE TABLE incidents (
        fingerprint TEXT PRIMARY KEY,
        rule TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
        data TEXT NOT NULL
    )""",
    "CREATE INDEX incidents_by_rule ON incidents (rule, state)",
    # seq is the enqueue order: it breaks created_at ties so a thread's messages keep their order.
    """CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        receiver TEXT NOT NULL,
        thread_key TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '',
        next_attempt_at INTEGER NOT NULL,
        delivered_at INTEGER
    )""",
    "CREATE INDEX outbox_due ON outbox (status, next_attempt_at)",
    "CREATE INDEX outbox_thread ON outbox (receiver, thread_key, status)",
    # No foreign key to incidents: an outbox row outlives its incident (pending rows are deleted).
    """CREATE TABLE outbox_incidents (
        fingerprint TEXT NOT NULL,
        notification_id TEXT NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
        PRIMARY KEY (fingerprint, notification_id)
    ) WITHOUT ROWID""",
    "CREATE TABLE checkpoints (rule TEXT PRIMARY KEY, evaluated_at INTEGER NOT NULL)",
    """CREATE TABLE thread_refs (
        receiver TEXT NOT NULL,
        thread_key TEXT NOT NULL,
        ref TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (receiver, thread_key)
    )""",
    # Owned by watcher.routing.silences (matchers are a JSON list of matcher strings).
    """CREATE TABLE silences (
        id TEXT PRIMARY KEY,
        matchers TEXT NOT NULL,
        starts_at INTEGER NOT NULL,
        ends_at INTEGER NOT NULL,
        created_by TEXT NOT NULL DEFAULT '',
        comment TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL
    )""",
)

_V2 = (
    # Aggregation groups of the dispatcher (watcher.routing.groups): one row per (route, group
    # labels) with its timers, and one member row per incident episode in it.
    """CREATE TABLE dispatch_groups (
        key TEXT PRIMARY KEY,
        receiver TEXT NOT NULL,
        labels TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        next_flush_at INTEGER NOT NULL,
        last_sent_at INTEGER,
        opened INTEGER NOT NULL DEFAULT 0,
        group_interval INTEGER NOT NULL,
        repeat_interval INTEGER NOT NULL
    )""",
    "CREATE INDEX dispatch_groups_due ON dispatch_groups (next_flush_at)",
    """CREATE TABLE dispatch_members (
        group_key TEXT NOT NULL REFERENCES dispatch_groups (key) ON DELETE CASCADE,
        fingerprint TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('firing', 'resolved')),
        notified INTEGER NOT NULL DEFAULT 0,
        data TEXT NOT NULL,
        PRIMARY KEY (group_key, fingerprint, started_at)
    ) WITHOUT ROWID""",
    # Set while a drainer holds a notification (claim); a restarted daemon releases its claims.
    "ALTER TABLE outbox ADD COLUMN claimed_at INTEGER",
    "CREATE INDEX silences_by_end ON silences (ends_at)",
)

_V3 = (
    # When the oldest attempt whose outcome was never recorded started (the process died, or the
    # answer was lost on the way back). Set at claim, cleared when an answer is recorded. A claim
    # that finds it set knows the service may have the message already: the outbox asks the
    # channel (``Reconciler``) before sending again.
    "ALTER TABLE outbox ADD COLUMN attempt_started_at INTEGER",
)

_V4 = (
    # Incidents may be in the states nodata and error (a rule's on_nodata / on_error). A CHECK
    # constraint cannot be altered in SQLite: the table is copied into one with the new check.
    """CREATE TABLE incidents_v4 (
        fingerprint TEXT PRIMARY KEY,
        rule TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'firing', 'resolved', 'nodata', 'error')),
        data TEXT NOT NULL
    )""",
    "INSERT INTO incidents_v4 (fingerprint, rule, state, data) "
    "SELECT fingerprint, rule, state, data FROM incidents",
    "DROP TABLE incidents",
    "ALTER TABLE incidents_v4 RENAME TO incidents",
    "CREATE INDEX incidents_by_rule ON incidents (rule, state)",
)

_V5 = (
    # High availability (``ha:``, watcher.state.leases): one row per replica, refreshed every
    # heartbeat, and one lease per partition of the rules. ``epoch`` grows whenever a partition
    # changes hands, so a write carrying an older epoch is refused (fencing). Times are the
    # replicas' clocks in microseconds, like every time of the state.
    """CREATE TABLE replicas (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        last_seen INTEGER NOT NULL
    )""",
    """CREATE TABLE partitions (
        number INTEGER PRIMARY KEY,
        owner TEXT,
        epoch INTEGER NOT NULL DEFAULT 0,
        expires_at INTEGER NOT NULL DEFAULT 0
    )""",
)

_V6 = (
    # Several replicas on one PostgreSQL state. Who holds an outbox claim (``StateStore.owner``):
    # an attempt's outcome is recorded only by the drainer still holding its claim, so a drainer
    # whose lease ran out cannot reschedule the send another one has taken over.
    "ALTER TABLE outbox ADD COLUMN claimed_by TEXT",
    # Per-receiver circuit breakers (``watcher.notify.breaker``), shared by every replica: one
    # replica's 429 or dead receiver holds the receiver back for all of them.
    """CREATE TABLE receiver_circuits (
        receiver TEXT PRIMARY KEY,
        failures INTEGER NOT NULL DEFAULT 0,
        open_until INTEGER,
        probe_until INTEGER
    )""",
    # Bumped by every write of a group (``watcher.routing.groups``): a replica writes a group only
    # if it is still the revision it planned from, so two replicas never both flush it.
    "ALTER TABLE dispatch_groups ADD COLUMN revision INTEGER NOT NULL DEFAULT 0",
)

_V7 = (
    # Every raised episode of an incident (``watcher.incidents.episodes``): the incidents table
    # keeps only a fingerprint's latest, and reference windows leave out those that overlap one.
    """CREATE TABLE episodes (
        fingerprint TEXT NOT NULL,
        rule TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER NOT NULL,
        PRIMARY KEY (fingerprint, started_at)
    )""",
    "CREATE INDEX episodes_by_end ON episodes (ended_at)",
)

_V8 = (
    # Acknowledgements (``watcher.incidents.acks``): the latest per incident, with the incident as
    # it was acknowledged (episode, state, severity, flapping), so a change of any of them undoes it.
    """CREATE TABLE acks (
        fingerprint TEXT PRIMARY KEY,
        started_at INTEGER NOT NULL,
        state TEXT NOT NULL,
        severity TEXT NOT NULL,
        flapping INTEGER NOT NULL,
        acked_by TEXT NOT NULL,
        acked_at INTEGER NOT NULL,
        message TEXT NOT NULL,
        ends_at INTEGER
    )""",
)


def _fill_last_flips(backend: Backend) -> None:
    """Give the resolved incidents an older watcher wrote their ``last_flip_at`` (the newest of
    the flips their JSON holds), so the tick's look-up finds those that may still flap."""
    rows = backend.execute("SELECT fingerprint, data FROM incidents WHERE state = 'resolved'").fetchall()
    filled = []
    for fingerprint, data in rows:
        flips = json.loads(data).get("flips") or ()
        if flips:
            filled.append((micros(max(datetime.fromisoformat(flip) for flip in flips)), fingerprint))
    backend.executemany("UPDATE incidents SET last_flip_at = ? WHERE fingerprint = ?", filled)


_V9: tuple[Step, ...] = (
    # When an incident's evaluations last changed status (the newest of its flips, NULL without
    # any): each tick steps the resolved incidents that may still start flapping, and finds them
    # by this index instead of reading every resolved incident of the state's history.
    "ALTER TABLE incidents ADD COLUMN last_flip_at INTEGER",
    "CREATE INDEX incidents_by_last_flip ON incidents (state, last_flip_at)",
    _fill_last_flips,
)


def _fill_resolved_at(backend: Backend) -> None:
    """Give the resolved incidents an older watcher wrote their ``resolved_at`` (from their JSON),
    so retention (``watcher.incidents.retention``) can tell the old ones."""
    rows = backend.execute("SELECT fingerprint, data FROM incidents WHERE state = 'resolved'").fetchall()
    filled = []
    for fingerprint, data in rows:
        resolved_at = json.loads(data).get("resolved_at")
        if resolved_at:
            filled.append((micros(datetime.fromisoformat(resolved_at)), fingerprint))
    backend.executemany("UPDATE incidents SET resolved_at = ? WHERE fingerprint = ?", filled)


_V10: tuple[Step, ...] = (
    # Retention (``watcher.incidents.retention``): when an incident resolved, and the index by
    # which a tick finds the resolved incidents and delivered notifications old enough to forget.
    "ALTER TABLE incidents ADD COLUMN resolved_at INTEGER",
    "CREATE INDEX incidents_by_resolved ON incidents (state, resolved_at)",
    _fill_resolved_at,
    "CREATE INDEX outbox_done ON outbox (status, delivered_at)",
)

MIGRATIONS: tuple[tuple[Step, ...], ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10)
SCHEMA_VERSION = len(MIGRATIONS)


class StateStoreError(Exception):
    """The state cannot be used (not SQLite, unreachable, or written by a newer watcher)."""


def migrate(backend: Backend) -> int:
    """Bring the schema to ``SCHEMA_VERSION``; returns the version found. Runs in one transaction
    holding the backend's migration lock, so two processes opening a new state at once migrate it
    exactly once. The statements are SQLite's; the backend's dialect rewrites their types."""
    with backend.transaction():
        backend.lock_schema()
        found = backend.schema_version()
        if found > SCHEMA_VERSION:
            raise StateStoreError(
                f"{backend.name}: schema version {found} is newer than this watcher's ({SCHEMA_VERSION}); "
                "upgrade watcher"
            )
        for statements in MIGRATIONS[found:]:
            for step in statements:
                if isinstance(step, str):
                    backend.execute(backend.dialect.ddl(step))
                else:
                    step(backend)
        if found != SCHEMA_VERSION:
            backend.set_schema_version(SCHEMA_VERSION)
    return found
