"""One delivery worker per receiver, so a slow or dead receiver never delays another.

Each worker is a thread that drains only its receiver's notifications (``Outbox.drain(receiver=…)``)
in order, one at a time: a Slack that hangs until its timeout holds up Slack's queue, not the
webhook's. A worker sleeps until it is woken (the daemon wakes every worker after each commit that
may have enqueued notifications), until its receiver's next retry is due, until its circuit
breaker lets a probe through, or at most ``idle``.

The workers only send and record (claim, delivered, failed); they never plan or commit a tick.
What a drain did (``DrainReport``), and any error it met (a state file that cannot be written), is
handed back through ``collected`` so that metrics, the receiver-dead alert and the write guard are
updated on the daemon's scheduler thread, which owns routing and ticks.
Workers are started and stopped as receivers come and go (``sync``, on a reload). ``stop`` lets
each worker finish its send in flight, drain until a deadline, and exit.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from watcher.incidents.state import StateStore
from watcher.notify.outbox import DrainReport, Outbox

log = logging.getLogger("watcher.delivery")


class _Worker:
    def __init__(self, name: str, pool: DeliveryWorkers) -> None:
        self.name = name
        self.pool = pool
        self.wake = threading.Event()
        self.stopping = False
        self.deadline: datetime | None = None  # with stopping: drain until then, then exit
        self.thread = threading.Thread(target=self._run, name=f"deliver-{name}", daemon=True)

    def _run(self) -> None:
        pool = self.pool
        while True:
            if self.stopping and (self.deadline is None or pool.clock() >= self.deadline):
                return
            until = self.deadline if self.stopping else None
            try:
                report = pool.outbox.drain(receiver=self.name, until=until)
            except Exception as exc:  # the state file failed: the daemon's drain job reports it
                pool.errors.put(exc)
                report = None
            if report is not None and (report.attempted or report.dead):
                pool.reports.put(report)
                continue  # more may be due now (a thread's next message, a full batch)
            if self.stopping:
                return  # nothing left that is due
            self.wake.wait(self._idle_for(report))
            self.wake.clear()

    def _idle_for(self, report: DrainReport | None) -> float:
        """Seconds until something of this receiver can be sent: its next retry, the end of an
        open circuit, or its pace's next token; at most ``idle``."""
        pool, now = self.pool, self.pool.clock()
        waits = [pool.idle]
        if report is not None and report.next_token is not None:
            waits.append((report.next_token - now).total_seconds())
        breaker = pool.outbox.breaker
        try:  # both are rows of the state (the breaker's too, shared by replicas)
            due = pool.state.next_due(self.name)
            opened = breaker.open_until(self.name) if breaker is not None else None
        except Exception:  # the state is in trouble (a database down): the guard reports it on
            due = opened = None  # the next drain; this thread must live on to send once it is back
        for then in (due, opened):
            if then is not None and then > now:
                waits.append((then - now).total_seconds())
        return max(0.01, min(waits))


class DeliveryWorkers:
    """The delivery workers of one outbox, one per receiver name."""

    def __init__(
        self,
        outbox: Outbox,
        state: StateStore,
        clock: Callable[[], datetime],
        *,
        idle: float = 1.0,
    ) -> None:
        self.outbox = outbox
        self.state = state
        self.clock = clock
        self.idle = idle
        self.reports: queue.SimpleQueue[DrainReport] = queue.SimpleQueue()
        self.errors: queue.SimpleQueue[Exception] = queue.SimpleQueue()
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()

    def sync(self, receivers: Iterable[str]) -> None:
        """Run one worker per name in ``receivers``: start the missing ones, stop the others
        (a receiver removed by a reload; its notifications wait, or dead-letter as unknown)."""
        wanted = set(receivers)
        with self._lock:
            for name in sorted(self._workers.keys() - wanted):
                worker = self._workers.pop(name)
                worker.stopping = True
                worker.wake.set()
            for name in sorted(wanted - self._workers.keys()):
                worker = self._workers[name] = _Worker(name, self)
                worker.thread.start()

    def wake(self) -> None:
        """Something may be due: every worker looks now instead of at its next wake-up."""
        with self._lock:
            for worker in self._workers.values():
                worker.wake.set()

    @property
    def running(self) -> bool:
        with self._lock:
            return bool(self._workers)

    def collected(self) -> tuple[DrainReport, list[Exception]]:
        """What the workers did since the last call, summed into one report, and the errors they
        met (a state file that cannot be written), for the daemon's scheduler thread to report."""
        total, errors = DrainReport(), []
        while not self.reports.empty():
            total.add(self.reports.get_nowait())
        while not self.errors.empty():
            errors.append(self.errors.get_nowait())
        return total, errors

    def stop(self, until: datetime | None, join: timedelta) -> None:
        """Stop every worker: each finishes its send in flight, then sends what is due until
        ``until`` (None: nothing more), and exits. Waits at most ``join`` for them."""
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for worker in workers:
            worker.deadline, worker.stopping = until, True
            worker.wake.set()
        deadline = self.clock() + join
        for worker in workers:
            left = max(0.0, (deadline - self.clock()).total_seconds())
            worker.thread.join(left)
            if worker.thread.is_alive():
                log.warning(
                    "delivery to %s still running at shutdown; it is retried at the next start", worker.name
                )
