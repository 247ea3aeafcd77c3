"""Rule ownership by leases: which rules this replica evaluates, when several share the state.

Rules are hashed into ``ha.partitions`` partitions (``partition_of``: BLAKE2b of the rule name, the
same in every process and Python version). Every ``ha.heartbeat`` and at the start of every tick a
``Replica`` beats (``beat``):

1. it refreshes its row in ``replicas`` and renews the leases it holds (``expires_at = now + lease``);
2. it counts the live replicas (a heartbeat within ``lease``) and its fair share: partitions
   divided by live replicas, the remainder going to the first replicas by id, so every replica
   computes the same quotas;
3. over its share (a replica joined), it releases its highest partitions; under it (a replica
   died or left), it takes free partitions and those whose lease expired, each with a
   conditional UPDATE that only one replica can win, its epoch increased.

A dead replica's partitions are thus taken over within ``lease + heartbeat``, and a new replica
gets its share within a few heartbeats, without a restart of the others. The tick evaluates only
the rules of the partitions held (``owns``) and commits with ``fence`` first in its transaction:
the leases of its rules' partitions are locked and checked (owner and epoch), so a replica that
was paused past its lease (SIGSTOP, a long store query) and wakes up writes nothing -- no
transition, no group change, no outbox row, no checkpoint. The new owner evaluates those windows
from the checkpoints. All beats run on the scheduler thread, so partitions never change hands
under a running tick of the same process.

The SQL lives with the state layer (``watcher.state.leases``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from watcher.config import HaConfig
from watcher.incidents.state import StateStore, Write
from watcher.state import leases
from watcher.state.base import Db
from watcher.state.leases import Lease, LeaseLostError, ReplicaRow

if TYPE_CHECKING:  # prometheus-client is not loaded for ``watcher status``
    from watcher.process.metrics import ReplicaMetrics

log = logging.getLogger("watcher.process.partitions")

FORGET_DEAD_AFTER = timedelta(hours=1)
"""How long ``watcher status`` still lists a replica that stopped heartbeating."""

Clock = Callable[[], datetime]

__all__ = ["LeaseLostError", "Replica", "partition_of", "quota"]


def partition_of(rule: str, partitions: int) -> int:
    """The partition of a rule: stable across processes, hosts and Python versions."""
    digest = hashlib.blake2b(rule.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def quota(live: Collection[str], me: str, partitions: int) -> int:
    """My fair share of ``partitions`` among the ``live`` replica ids (``me`` among them)."""
    ranked = sorted(set(live) | {me})
    base, extra = divmod(partitions, len(ranked))
    return base + (1 if ranked.index(me) < extra else 0)


class Replica:
    """This process as one of the replicas sharing a state (see the module's docstring)."""

    def __init__(
        self,
        state: StateStore,
        config: HaConfig,
        clock: Clock,
        *,
        metrics: ReplicaMetrics | None = None,
        replica_id: str | None = None,
    ) -> None:
        self.state, self.config, self.clock, self.metrics = state, config, clock, metrics
        host, pid = socket.gethostname(), os.getpid()
        self.id = replica_id or state.owner
        state.owner = self.id  # one name for the replica's heartbeat, leases and outbox claims
        self.row = ReplicaRow(self.id, host, pid, clock(), clock())
        self.held: dict[int, int] = {}  # partition -> epoch of this replica's tenure
        self.alive = 0
        with state.writing() as db:
            leases.ensure_partitions(db, config.partitions, clock())

    # ------------------------------------------------------------------ the beat

    def beat(self, now: datetime | None = None) -> None:
        """Heartbeat, renew, rebalance (module docstring). Each step is its own short transaction,
        so a replica never holds one row while waiting for another replica's."""
        now = now or self.clock()
        until = now + self.config.lease
        with self.state.writing() as db:
            leases.heartbeat(db, self.row, now)
            held = leases.renew(db, self.id, until)
        lost = self.held.keys() - held.keys()
        if lost:
            log.warning("lost partitions %s to other replicas (lease expired)", ranges(lost))
        self.held = held
        with self.state.reading() as db:
            live = [r.id for r in leases.replicas(db) if r.last_seen > now - self.config.lease]
            table = leases.leases(db)
        self.alive = len(set(live) | {self.id})
        share = quota(live, self.id, self.config.partitions)
        if len(self.held) > share:
            self._release(len(self.held) - share)
        elif len(self.held) < share:
            self._take(table, share - len(self.held), now, until, live)
        self._count(renewed=len(held))

    def _release(self, count: int) -> None:
        """Give back ``count`` partitions, the highest first, for a replica under its share."""
        given = dict(sorted(self.held.items())[-count:])
        with self.state.writing() as db:
            leases.release(db, self.id, given)
        for number in given:
            del self.held[number]
        log.info("released partitions %s for another replica", ranges(given))

    def _take(self, table: list[Lease], count: int, now: datetime, until: datetime, live: list[str]) -> None:
        """Take up to ``count`` free or expired partitions, one conditional UPDATE each. The outbox
        claims of a replica whose partitions were taken and whose heartbeat expired (dead) are
        released at once, so its sends cut short go out now rather than when their claim lease ends."""
        free = [lease for lease in table if lease.owner is None or lease.expires_at <= now]
        taken: list[int] = []
        dead: set[str] = set()
        for lease in free:
            if len(taken) >= count:
                break
            with self.state.writing() as db:
                epoch = leases.take(db, lease.number, self.id, now, until)
            if epoch is None:
                continue  # another replica was faster
            self.held[lease.number] = epoch
            taken.append(lease.number)
            if lease.owner is not None and lease.owner != self.id:
                dead |= {lease.owner} - set(live)
                if self.metrics is not None:
                    self.metrics.takeovers.inc()
        if taken:
            log.info("took partitions %s", ranges(taken))
        released = self.state.release_claims(now, of=sorted(dead)) if dead else 0
        if released:
            log.info("released %d outbox claim(s) of dead replica(s) %s", released, ", ".join(sorted(dead)))

    def _count(self, *, renewed: int) -> None:
        if self.metrics is None:
            return
        self.metrics.lease_renewals.inc(renewed)
        self.metrics.partitions_held.set(len(self.held))
        self.metrics.replicas_alive.set(self.alive)

    # ------------------------------------------------------------------ what a tick asks

    def owns(self, rule: str) -> bool:
        return partition_of(rule, self.config.partitions) in self.held

    @property
    def leads(self) -> bool:
        """Whether this replica speaks for all (partition 0's owner): it raises the alerts about
        the replicas as a whole, so they are raised once."""
        return 0 in self.held

    def fence(self, rules: Collection[str]) -> Write:
        """The first write of a tick evaluating ``rules``: their partitions' leases still ours."""
        numbers = {partition_of(rule, self.config.partitions) for rule in rules}
        held = {number: self.held.get(number, -1) for number in numbers}

        def check(db: Db) -> None:
            leases.fence(db, self.id, held)

        return check

    def fenced(self, error: LeaseLostError) -> None:
        """A tick's writes were refused: count it; its partitions are gone until the next beat."""
        log.warning("%s; the new owner evaluates those windows", error)
        for number in error.lost:
            self.held.pop(number, None)
        if self.metrics is not None:
            self.metrics.fenced_writes.inc()
            self.metrics.partitions_held.set(len(self.held))

    # ------------------------------------------------------------------ leaving

    def leave(self) -> None:
        """A clean stop: partitions and the replica's row are given back at once, so the others
        take them over at their next beat rather than after the lease."""
        with self.state.writing() as db:
            leases.release(db, self.id, self.held)
            leases.leave(db, self.id)
            leases.forget_replicas(db, self.clock() - FORGET_DEAD_AFTER)
        self.held = {}


def ranges(numbers: Collection[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``0-2, 5``: a log line names 64 partitions in a few characters."""
    spans: list[list[int]] = []
    for number in sorted(numbers):
        if spans and spans[-1][1] == number - 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
