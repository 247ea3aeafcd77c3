"""Replaying logs through the real pipeline with a simulated clock (``backtest``, ``demo``).

Log files are loaded into a fresh embedded store per source used by the rules, with the time
field and time format the config gives that source (what each skipped is in ``ingested``); or the
configured stores themselves are queried (``backtest --source``). State lives in a fresh SQLite file. Then the
clock steps over ``[start, end]`` at the scheduler's tick interval and the same ``Engine`` the
daemon uses evaluates each tick. With ``processes``, the rules are shared among that many processes
over the loaded files (``watcher.replay_workers``), their tick reports merged as one engine's.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watcher.config import Config, Source
from watcher.detect import DETECTORS
from watcher.engine import Engine
from watcher.incidents.state import StateStore
from watcher.replay_workers import Job, StoreFile, Worker, merged, split, splittable
from watcher.routing.dispatch import Dispatcher
from watcher.rules.models import Rule
from watcher.schedule import tick_interval
from watcher.state.sqlite import SQLiteBackend
from watcher.store.base import LogStore
from watcher.store.embedded import EmbeddedStore
from watcher.store.ingest import IngestReport
from watcher.tick_report import TickReport


@dataclass(frozen=True)
class Tick:
    now: datetime
    report: TickReport


class Replay:
    """A throw-away pipeline in ``workdir``: over log files loaded into fresh embedded stores, or,
    with ``stores``, over the stores given (a backtest against the live sources)."""

    def __init__(
        self,
        config: Config,
        rules: Sequence[Rule],
        logs: Sequence[Path],
        workdir: Path,
        *,
        stores: Mapping[str, LogStore] | None = None,
        evidence: bool = False,
        processes: int = 1,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config, self.workdir = config, workdir
        self.rules = list(rules)
        self.ingested: dict[str, IngestReport] = {}
        self.stores: dict[str, LogStore] = dict(stores) if stores is not None else {}
        shared = stores is None and processes > 1 and splittable(self.rules)
        self.shares = split(self.rules, processes) if shared else [self.rules]
        # Spawned first: a worker's imports overlap the ingestion.
        self.workers = [Worker() for _ in self.shares[1:]]
        try:
            if stores is None:
                for name in sorted({rule.source for rule in rules}):
                    read = [rule for rule in rules if rule.source == name]
                    loaded = _loaded(config.sources[name], read, logs, workdir / name)
                    self.stores[name], self.ingested[name] = loaded
            # Read by every process, so read-only in each.
            self.files = [
                _reopened(self.stores, name, config.sources[name])
                for name in sorted(self.stores)
                if self.workers
            ]
        except BaseException:
            for worker in self.workers:
                worker.close()
            raise
        self.state = StateStore(SQLiteBackend(workdir / "state.sqlite", scratch=True))
        dispatcher = Dispatcher.from_config(config, self.state)
        # Evidence only where notifications are shown (the demo): per-bucket partials cannot sum
        # documents, so a backtest with it would re-read every window for them.
        self.engine = Engine(
            self.shares[0],
            self.stores,
            self.state,
            config.route,
            dispatcher=dispatcher,
            gaps=config.gaps,
            evidence=evidence,
        )

    def ticks(
        self,
        start: datetime,
        end: datetime,
        after_tick: Callable[[Tick], None] | None = None,
        step: timedelta | None = None,
    ) -> Iterator[Tick]:
        """Evaluate every tick in ``[start, end]`` (on the tick grid, or every ``step``), oldest first.
        With workers, once."""
        step = step or tick_interval(self.rules)
        self.engine.read_ahead(end)  # each rule's buckets read a stretch at a time, not per tick
        for number, (worker, share) in enumerate(zip(self.workers, self.shares[1:], strict=True), 1):
            workdir = self.workdir / f"share-{number}"
            worker.start(Job(self.config, share, self.files, workdir, start, end, step))
        now = start
        while now <= end:
            report = self.engine.tick(now)
            if self.workers:
                report = merged([report, *(worker.report() for worker in self.workers)])
            tick = Tick(now, report)
            if after_tick is not None:
                after_tick(tick)
            yield tick
            now += step

    def tick_count(self, start: datetime, end: datetime) -> int:
        step = tick_interval(self.rules)
        return int((end - start) / step) + 1 if end >= start else 0

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self.state.close()
        for store in self.stores.values():
            store.close()


def _reopened(stores: dict[str, LogStore], name: str, source: Source) -> StoreFile:
    """Store ``name``'s file closed and opened again read-only (DuckDB lets several processes read
    a file only when none writes it): what a worker opens."""
    store = stores[name]
    assert isinstance(store, EmbeddedStore)
    store.close()
    stores[name] = EmbeddedStore(
        store.path, source.time_field, time_format=source.time_format, read_only=True
    )
    return StoreFile(name, store.path, source.time_field, source.time_format)


def _loaded(
    source: Source, rules: Sequence[Rule], logs: Sequence[Path], path: Path
) -> tuple[EmbeddedStore, IngestReport]:
    """A fresh embedded store at ``path`` holding ``logs``, read with the source's time settings,
    the fields ``rules`` read kept as columns filled as the rows are inserted."""
    store = EmbeddedStore(
        path.with_suffix(".duckdb"), time_field=source.time_field, time_format=source.time_format
    )
    at = datetime.now(UTC)  # the fields a rule reads do not depend on when
    store.keep_columns([query for rule in rules for query in DETECTORS[rule.detector].queries(rule, at)])
    return store, store.ingest_files([glob.escape(str(log)) for log in logs])
