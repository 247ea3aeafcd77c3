"""How long the state keeps what is over: ``KEPT`` (30 days) after it ended.

Without it the state grows with every incident and every notification ever sent, and so do the
daemon's memory and its reads. A tick's transaction forgets, through indexes, once every
``FORGET_EVERY`` (its DELETEs were a few percent of a tick's commit, at every tick, for rows
that age by days: a row is forgotten at most that much later than ``KEPT``):

- resolved incidents resolved more than ``KEPT`` ago whose status has not changed since (those
  that may still flap stay; ``watcher.incidents.flapping``). Their episodes stay in the episodes
  table (``watcher.incidents.episodes``, 400 days) for reference windows;
- delivered notifications delivered more than ``KEPT`` ago, and dead letters enqueued more than
  ``KEPT`` ago (their incident links go with them). A replayed tick re-enqueues only what its
  catch-up reaches (an hour by default), far within ``KEPT``, so it still finds them delivered;
- silences that ended more than ``KEPT`` ago (``watcher silence list --expired`` shows the rest);
- episodes that ended more than ``EPISODES_KEPT`` (400 days) ago.

Tables not listed forget by themselves: aggregation groups when their last member is told,
acknowledgements when their incident changes, replicas when they stop.
Thread references (one per incident episode and receiver) are kept: a reply to a thread Slack
has must still find it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from watcher.incidents.encoding import micros
from watcher.incidents.episodes import EPISODES_KEPT
from watcher.state.base import Db

KEPT = timedelta(days=30)
FORGET_EVERY = timedelta(minutes=10)


def forgetting(last: datetime | None, now: datetime) -> bool:
    """Whether a tick at ``now`` forgets, the last one that did having been at ``last`` (None: none
    yet, as after a start; a clock set back forgets at once)."""
    return last is None or not last <= now < last + FORGET_EVERY


def forget_old(db: Db, now: datetime) -> None:
    """Delete what ended more than ``KEPT`` before ``now`` (see the module's docstring)."""
    before = micros(now - KEPT)
    db.execute(
        "DELETE FROM incidents WHERE state = 'resolved' AND resolved_at < ? "
        "AND (last_flip_at IS NULL OR last_flip_at < ?)",
        (before, before),
    )
    db.execute("DELETE FROM outbox WHERE status = 'delivered' AND delivered_at < ?", (before,))
    db.execute("DELETE FROM outbox WHERE status = 'dead' AND created_at < ?", (before,))
    db.execute("DELETE FROM silences WHERE ends_at < ?", (before,))
    db.execute("DELETE FROM episodes WHERE ended_at < ?", (micros(now - EPISODES_KEPT),))
