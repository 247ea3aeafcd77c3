"""Replaying log files through the real pipeline with a simulated clock (``backtest``, ``demo``).

The files are loaded into a fresh embedded store per source used by the rules, with the time
field and settings the config gives that source; state lives in a fresh SQLite file. Then the
clock steps over ``[start, end]`` at the scheduler's tick interval and the same ``Engine`` the
daemon uses evaluates each tick.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from watcher.config import Config
from watcher.engine import Engine, TickReport
from watcher.incidents.state import StateStore
from watcher.routing.dispatch import Dispatcher
from watcher.rules.models import Rule
from watcher.schedule import tick_interval
from watcher.store.embedded import EmbeddedStore
from watcher.store.ingest import IngestReport


@dataclass(frozen=True)
class Tick:
    now: datetime
    report: TickReport


class Replay:
    """A throw-away pipeline over log files in ``workdir``."""

    def __init__(self, config: Config, rules: Sequence[Rule], logs: Sequence[Path], workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.rules = list(rules)
        names = sorted({rule.source for rule in rules})
        self.stores: dict[str, EmbeddedStore] = {}
        self.ingested: dict[str, IngestReport] = {}
        globs = [str(path) for path in logs]
        for name in names:
            source = config.sources[name]
            store = EmbeddedStore(workdir / f"{name}.duckdb", time_field=source.time_field)
            self.ingested[name] = store.ingest_files(globs)
            self.stores[name] = store
        self.state = StateStore(workdir / "state.sqlite")
        dispatcher = Dispatcher.from_config(config, self.state)
        self.engine = Engine(self.rules, self.stores, self.state, config.route, dispatcher=dispatcher)

    def ticks(
        self, start: datetime, end: datetime, after_tick: Callable[[Tick], None] | None = None
    ) -> Iterator[Tick]:
        """Evaluate every tick in ``[start, end]`` (on the tick grid), oldest first."""
        step = tick_interval(self.rules)
        now = start
        while now <= end:
            tick = Tick(now, self.engine.tick(now))
            if after_tick is not None:
                after_tick(tick)
            yield tick
            now += step

    def tick_count(self, start: datetime, end: datetime) -> int:
        step = tick_interval(self.rules)
        return int((end - start) / step) + 1 if end >= start else 0

    def close(self) -> None:
        self.state.close()
        for store in self.stores.values():
            store.close()
