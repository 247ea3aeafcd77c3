"""A backtest's rules replayed by several processes at once (``Replay(..., processes=N)``).

A replay is Python per evaluation (partials, detectors, the state machine, the state's commit) and
one process uses one core. A rule's transitions depend only on its own answers and its own
incidents, so the rules are split into shares of about equal work (``split``): the main process
replays the first share, and each other share is replayed by a spawned worker with its own engine
and scratch state, over the same store files opened read-only. The main process merges each tick's
reports in the order one engine makes them (evaluation time, then rule name: ``merged``), so the
transitions, the not-enough-data records and the summary are the same as with one process.

What the shares do not share is the dispatcher: notifications are grouped and inhibited per share,
so a replay whose notifications are shown (``demo``) runs in one process. The state machine's
repeated UPDATE counts from an incident's last notification, which that grouping decides: a rule
with its own ``repeat_interval`` keeps the replay in one process (``splittable``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from watcher.config import Config
from watcher.config.sources import TimeFormat
from watcher.detect import DETECTORS
from watcher.rules.models import Rule
from watcher.store.base import LogStore
from watcher.store.embedded import EmbeddedStore
from watcher.tick_report import TickReport

MAX_PROCESSES = 4
"""Processes a backtest uses at most by default: each replays its share's ticks, whose fixed costs
(the state's commit, the schedule) every process pays again."""
PIPE_BYTES = 1024 * 1024
"""The pipe a worker writes its batches to: Linux's default limit for an unprivileged process."""
BATCH = 64
"""Tick reports a worker sends at a time: fewer messages, and still far ahead of the main process."""


@dataclass(frozen=True)
class StoreFile:
    """An embedded store a worker opens read-only: the file the main process loaded the logs into."""

    source: str
    path: Path
    time_field: str
    time_format: TimeFormat


@dataclass(frozen=True)
class Job:
    """What a worker replays: its share of the rules, over ``stores``, on the whole replay's tick grid."""

    config: Config
    rules: list[Rule]
    stores: list[StoreFile]
    workdir: Path
    start: datetime
    end: datetime
    step: timedelta


def processes() -> int:
    """The processes a backtest uses by default: the cores this process may run on, at most
    ``MAX_PROCESSES``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, MAX_PROCESSES))


def splittable(rules: Sequence[Rule]) -> bool:
    """Whether the rules' transitions do not depend on one another's notifications."""
    return len(rules) > 1 and all(rule.repeat_interval is None for rule in rules)


def split(rules: Sequence[Rule], shares: int) -> list[list[Rule]]:
    """``rules`` in at most ``shares`` non-empty shares of about equal work, each in the rules' order,
    the lightest first (the main process takes it: it also merges the others' reports).

    Rules asking a same series (a ratio and its spike: same filter, groups and aggregates) stay in
    one share, so one process reads and sums its buckets for both. Such units go heaviest first to
    the lightest share; a rule's work is the aggregates its evaluation asks (a spike's history
    windows, a drift's features) per second of its interval."""
    at = datetime(2000, 1, 1)  # what a rule asks does not depend on when
    unit: dict[str, str] = {}  # rule -> a rule of its unit (union-find)

    def root(name: str) -> str:
        while unit[name] != name:
            name = unit[name]
        return name

    weight: dict[str, float] = {}
    asking: dict[tuple[object, ...], str] = {}  # series -> the first rule asking it
    for rule in rules:
        unit[rule.name] = rule.name
        asked = DETECTORS[rule.detector].queries(rule, at)
        weight[rule.name] = sum(len(q.aggregates) for q in asked) / max(rule.every.total_seconds(), 1.0)
        for q in asked:
            other = asking.setdefault(
                (rule.source, q.where, q.group_by, frozenset(q.aggregates.values())), rule.name
            )
            unit[root(rule.name)] = root(other)
    units: dict[str, list[Rule]] = {}
    for rule in rules:
        units.setdefault(root(rule.name), []).append(rule)
    loads = [0.0] * max(1, min(shares, len(units)))
    owner: dict[str, int] = {}
    for members in sorted(units.values(), key=lambda m: -sum(weight[r.name] for r in m)):
        lightest = loads.index(min(loads))
        loads[lightest] += sum(weight[r.name] for r in members)
        owner.update(dict.fromkeys((r.name for r in members), lightest))
    order = sorted(range(len(loads)), key=lambda share: loads[share])
    return [[rule for rule in rules if owner[rule.name] == share] for share in order]


def merged(reports: Sequence[TickReport]) -> TickReport:
    """One tick's reports of several shares as one engine reports it: evaluations and transitions
    in plan order (time, then rule name; a sort that keeps each evaluation's own order)."""
    if len(reports) == 1:
        return reports[0]
    out = TickReport()
    for report in reports:
        out.evaluations += report.evaluations
        out.errors.update(report.errors)
        out.transitions += report.transitions
        out.notifications += report.notifications
        out.evaluated += report.evaluated
        for source, trips in report.round_trips.items():
            out.round_trips[source] = out.round_trips.get(source, 0) + trips
    out.transitions.sort(key=lambda t: (t.at, t.incident.rule))
    out.evaluated.sort(key=lambda e: (e.at, e.rule))
    return out


class Worker:
    """A worker process replaying one share: ``python -m watcher.replay_workers``, its job pickled on
    its stdin, its tick reports pickled in batches on its stdout (a traceback's text when it fails),
    read by a thread so it never waits for the main process. Started before the logs are loaded, so
    its imports overlap the ingestion. A process of its own, not ``multiprocessing``: spawning runs
    the caller's main module again, which a script without a ``__main__`` guard cannot take."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[1])  # this watcher, wherever it was imported from
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
        command = [sys.executable, "-m", "watcher.replay_workers"]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert self._process.stdout is not None
        _widen(self._process.stdout.fileno())
        self._batches: queue.SimpleQueue[list[TickReport] | str | None] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._pending: list[TickReport] = []

    def start(self, job: Job) -> None:
        assert self._process.stdin is not None
        pickle.dump(job, self._process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self._process.stdin.close()

    def report(self) -> TickReport:
        """The next tick's report of this share (in tick order); raises when the worker failed."""
        while not self._pending:
            batch = self._batches.get()
            if batch is None:
                raise RuntimeError(f"backtest worker exited ({self._process.wait()})")
            if isinstance(batch, str):
                raise RuntimeError(f"backtest worker failed:\n{batch}")
            self._pending = batch[::-1]
        return self._pending.pop()

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._reader.join()
        if self._process.stdin is not None and not self._process.stdin.closed:
            self._process.stdin.close()

    def _read(self) -> None:
        assert self._process.stdout is not None
        with self._process.stdout as stream:
            while True:
                try:
                    self._batches.put(pickle.load(stream))
                except (EOFError, OSError, pickle.UnpicklingError):
                    self._batches.put(None)
                    return


def _widen(pipe: int) -> None:
    """Give the worker's pipe room for several batches (Linux; elsewhere it keeps its size): a batch
    is ~200 KB, and with the default 64 KB the worker waited, at each batch, for the main process's
    reader thread to take the interpreter lock a few times."""
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):  # above /proc/sys/fs/pipe-max-size
            fcntl.fcntl(pipe, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _serve(job: Job, out: BinaryIO) -> None:
    """Replay ``job``'s share, writing its tick reports to ``out`` in batches (a traceback's text
    when it fails)."""
    from watcher.replay import Replay

    try:
        stores: dict[str, LogStore] = {
            s.source: EmbeddedStore(s.path, s.time_field, time_format=s.time_format, read_only=True)
            for s in job.stores
        }
        replay = Replay(job.config, job.rules, (), job.workdir, stores=stores)
        try:
            batch: list[TickReport] = []
            for tick in replay.ticks(job.start, job.end, step=job.step):
                tick.report.open = None  # the daemon's gauges only: not sent
                batch.append(tick.report)
                if len(batch) == BATCH:
                    _send(batch, out)
                    batch = []
            _send(batch, out)
        finally:
            replay.close()
    except BrokenPipeError:
        return  # the main process is gone (it failed, or stopped reading): nobody to tell
    except Exception:
        _send(traceback.format_exc(), out)


def _send(message: list[TickReport] | str, out: BinaryIO) -> None:
    pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()


if __name__ == "__main__":
    # Ctrl-C reaches the whole process group: the main process stops its workers (``Worker.close``).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        job = pickle.load(sys.stdin.buffer)
    except EOFError:  # the replay ended before its ticks (no usable log line, a failed ingestion)
        sys.exit(0)
    _serve(job, sys.stdout.buffer)
