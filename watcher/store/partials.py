"""Each log row aggregated once per rule: windows answered from per-bucket partial aggregates.

A rule evaluated every minute over a 5-minute window used to make the store re-read its whole
window every minute (five times each row); a backtest re-read every row ``window / every`` times.
``Partials`` wraps any ``LogStore``. A query that says how often it comes back (``Query.every``) is
cut into buckets of ``gcd(window, every)``, aligned on its window's end so that consecutive
evaluations share bucket edges. The store is asked, in the tick's one batched call, only for the
buckets not held yet -- at a steady tick, the newest one -- as one bucketed query per run of
missing buckets (``Query.buckets``: one DuckDB statement branch, or searches of the run); the
window's answer is the sum of its buckets' partials (``partial_values``), equal to re-reading it.
A window moved on since the last evaluation of the same length is its previous sum plus the
buckets it gained minus those it left (a sliding sum), not the sum of all its buckets again.

What is kept: per *series* (same ``where``, ``group_by``, partial aggregates and bucket length)
the buckets inside the windows asked in the last batch that asked it, plus, in a backtest, those
read ahead (``read_ahead``). A series not asked for three of its intervals (and an hour) is
dropped. Nothing survives a restart: the first evaluation asks for all its buckets.

Late data: a bucket once read is final. Rows arriving later than the rule's ``delay`` are not
counted (before, a later window re-read them), as with ElastAlert 2.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.query import (
    BUCKET,
    SKETCH_ERROR,
    Aggregate,
    Count,
    Group,
    Percentiles,
    Query,
    QueryResult,
    Window,
)
from watcher.query_documents import VALUES_LIMIT
from watcher.query_filters import Filter
from watcher.store.base import LogStore
from watcher.store.buckets import bucket_size, bucket_starts, from_ms, merge_spans, runs, within
from watcher.store.partial_values import Layout, Part, final, partial_of

log = logging.getLogger("watcher.store.partials")

_COUNT: Aggregate = Count()
FORGET_AFTER = timedelta(hours=1)

Key = tuple[str, ...]


@dataclass(frozen=True)
class Series:
    """What a bucket's partials depend on: the rows (``where``), the groups and the aggregates."""

    where: Filter
    group_by: tuple[str, ...]
    aggregates: frozenset[Aggregate]
    size: timedelta
    hashed: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Hashed once: a series is a key of several maps per query and per tick, and a filter's
        # hash walks its whole tree every time.
        object.__setattr__(self, "hashed", hash((self.where, self.group_by, self.aggregates, self.size)))

    def __hash__(self) -> int:
        return self.hashed


@dataclass
class _Sum:
    """The sum of the buckets in ``[start, end)`` per group: a sliding window's running total."""

    start: datetime
    end: datetime
    totals: dict[Key, Part]


@dataclass
class _Held:
    """One series' buckets (start -> group key -> partials) and when it was last asked."""

    every: timedelta
    last_end: datetime
    layout: Layout
    buckets: dict[datetime, dict[Key, Part]] = field(default_factory=dict)
    sums: dict[int, _Sum] = field(default_factory=dict)
    """The latest window of each length (in buckets), summed: the next one slides from it."""
    answers: dict[tuple[Window, tuple[str, ...]], tuple[Mapping[str, Aggregate], tuple[Group, ...]]] = field(
        default_factory=dict
    )
    """Windows answered, by window and aggregates: a spike's earlier windows are answered again
    at later ticks, a catch-up's too."""


@dataclass(frozen=True)
class _Plan:
    """How one query is answered: from a series' buckets, or asked directly (``series`` None)."""

    query: Query
    series: Series | None = None
    count: int = 0
    """Buckets in the window (from its start): listed only when needed, a 30-minute window every
    5 s has 360, and listing them for 1,000 rules was most of a live tick."""
    exact: Series | None = None
    """The series with exact values (``series`` is its sketch once its values were too many)."""

    @property
    def sketch(self) -> float:
        return SKETCH_ERROR if self.series is not self.exact else 0.0


class Partials:
    """A ``LogStore`` answering repeated queries from per-bucket partials of ``store``.

    ``read_ahead`` (a backtest) makes each fetch of a series read up to that much further, not
    past ``horizon``, so a replay asks the store once per stretch instead of once per tick.
    """

    def __init__(
        self,
        store: LogStore,
        read_ahead: timedelta = timedelta(0),
        horizon: datetime | None = None,
        values_limit: int = VALUES_LIMIT,
    ) -> None:
        self.store = store
        self.values_limit = values_limit
        self.read_ahead = read_ahead
        self.horizon = horizon
        self.held: dict[Series, _Held] = {}
        self.layouts: dict[Series, Layout] = {}
        self.direct: set[Series] = set()  # a bucket had too many distinct values: asked directly
        # Exact series whose numbers were too many: their percentiles come from a sketch, when
        # the store can round numbers to one (``sketches``), instead of re-reading their windows.
        self.sketched: set[Series] = set()
        self.sketches = bool(getattr(store, "sketches", False))
        self.buckets_asked = 0  # buckets the store was asked for (tests and benches count them)

    def evaluate(self, queries: Sequence[Query]) -> list[QueryResult]:
        plans = [self._plan(query) for query in queries]
        fetches = self._fetches(plans)
        asked = [plan.query for plan in plans if plan.series is None]
        bucketed = [query for _, query in fetches]
        if getattr(self.store, "one_request", False):  # a search store: its calls are requests
            answers = iter(self._ask([*asked, *bucketed]))
            direct = {query.id: next(answers) for query in asked}
            failed = self._take(fetches, answers)
            results = [self._answer(plan, direct, failed) for plan in plans]
        else:
            # Two calls, not one: fused with windows re-read in full, the newest buckets' statement
            # would compute its columns for every row of those windows (measured 0.38 s vs 0.25 s).
            # The buckets go first, so a query needed only if a window's answer says so (an
            # alert's evidence, ``Query.only_if``) is asked only then.
            failed = self._take(fetches, iter(self._ask(bucketed)))
            known = {plan.query.id: self._answer(plan, {}, failed) for plan in plans if plan.series}
            needed = [query for query in asked if _needed(query, known)]
            direct = {query.id: QueryResult(query.id) for query in asked}
            direct.update(zip((query.id for query in needed), self._ask(needed), strict=True))
            results = [known[plan.query.id] if plan.series else direct[plan.query.id] for plan in plans]
        again = [i for i, result in enumerate(results) if result is None]
        if again:  # a bucket past VALUES_LIMIT: those queries are asked as they are, once
            for i, result in zip(again, self.store.evaluate([plans[i].query for i in again]), strict=True):
                results[i] = result
        self._prune(plans)
        return [result for result in results if result is not None]

    def close(self) -> None:
        self.store.close()

    def _ask(self, queries: list[Query]) -> list[QueryResult]:
        return self.store.evaluate(queries) if queries else []

    # ------------------------------------------------------------------ planning

    def _plan(self, query: Query) -> _Plan:
        size = bucket_size(query)
        if size is None or (query.every is not None and query.every >= query.window.end - query.window.start
                            and not self.read_ahead):  # fmt: skip
            return _Plan(query)
        try:
            exact = self._series(query, size, 0.0)
        except ValueError:
            return _Plan(query)
        if exact in self.direct:
            return _Plan(query)
        series = self._series(query, size, SKETCH_ERROR) if exact in self.sketched else exact
        count = (query.window.end - query.window.start) // size
        return _Plan(query, series, count, exact)

    def _series(self, query: Query, size: timedelta, sketch: float) -> Series:
        partial = (partial_of(agg, self.values_limit, sketch) for agg in query.aggregates.values())
        return Series(query.where, query.group_by, frozenset(partial) | {_COUNT}, size)

    def _fetches(self, plans: Sequence[_Plan]) -> list[tuple[Series, Query]]:
        """One bucketed query per run of consecutive buckets not held, per series."""
        missing: dict[Series, set[datetime]] = {}
        seen: set[tuple[Series, datetime, int]] = set()  # rules sharing a series share windows
        for plan in plans:
            if plan.series is None or (plan.series, plan.query.window.start, plan.count) in seen:
                continue
            seen.add((plan.series, plan.query.window.start, plan.count))
            held = self.held.get(plan.series)
            wanted = missing.setdefault(plan.series, set())
            inside = bucket_starts(plan.query.window.start, plan.query.window.end, plan.series.size)
            wanted.update(start for start in inside if held is None or start not in held.buckets)
        fetches: list[tuple[Series, Query]] = []
        for series, starts in missing.items():
            layout = self._layout(series)
            for number, (first, end) in enumerate(runs(sorted(starts), series.size)):
                end = self._ahead(series, end)
                window = Window(first, end)
                query = Query(f"partials:{id(series)}:{number}", window,
                              {f"p{i}": agg for i, agg in enumerate(layout.order)},
                              series.where, series.group_by, buckets=series.size)  # fmt: skip
                self.buckets_asked += (end - first) // series.size
                fetches.append((series, query))
        return fetches

    def _layout(self, series: Series) -> Layout:
        layout = self.layouts.get(series)
        if layout is None:
            layout = self.layouts[series] = Layout(series.aggregates)
        return layout

    def _ahead(self, series: Series, end: datetime) -> datetime:
        if not self.read_ahead or self.horizon is None or end >= self.horizon:
            return end
        limit = min(end + self.read_ahead, self.horizon)
        return end + math.ceil((limit - end) / series.size) * series.size

    # ------------------------------------------------------------------ answers

    def _take(
        self, fetches: Sequence[tuple[Series, Query]], answers: Iterable[QueryResult]
    ) -> dict[Series, str]:
        """Keep the fetched buckets (an empty one as read, with no group); return the failed series."""
        failed: dict[Series, str] = {}
        for (series, query), answer in zip(fetches, answers, strict=False):
            if not answer.ok:
                failed.setdefault(series, answer.error or "query failed")
                continue
            layout = self._layout(series)
            held = self.held.setdefault(series, _Held(series.size, query.window.end, layout))
            size, start = series.size, query.window.start
            fresh: dict[datetime, dict[Key, Part]] = {
                start + k * size: {} for k in range((query.window.end - start) // size)
            }
            for group in answer.groups:
                bucket = from_ms(int(group.key[BUCKET]))
                key = tuple(group.key[name] for name in series.group_by)
                fresh[bucket][key] = layout.part(group.values)
            held.buckets.update(fresh)
        return failed

    def _answer(
        self, plan: _Plan, direct: dict[str, QueryResult], failed: dict[Series, str]
    ) -> QueryResult | None:
        query = plan.query
        if plan.series is None:
            return direct[query.id]
        if plan.series in failed:
            return QueryResult(query.id, error=failed[plan.series])
        held = self.held[plan.series]
        held.last_end = max(held.last_end, query.window.end)
        memo = (query.window, tuple(query.aggregates))
        known = held.answers.get(memo)
        if known is not None and known[0] == query.aggregates:  # equal, not hashed: filters are shared
            return QueryResult(query.id, known[1])
        layout = held.layout
        totals = _summed(held, query.window.start, plan.count, plan.series.size)
        if not all(layout.answerable(total) for total in totals.values()):
            self._too_many(plan)
            return None
        limit, sketch = self.values_limit, plan.sketch
        positions = [layout.index[partial_of(agg, limit, sketch)] for agg in query.aggregates.values()]
        groups = _groups(query, totals, layout, positions)
        held.answers[memo] = (query.aggregates, groups)
        return QueryResult(query.id, groups)

    def _too_many(self, plan: _Plan) -> None:
        """A bucket of ``plan`` has more than its values limit: percentiles go to a sketch (the
        store permitting), else the query is asked directly from now on."""
        assert plan.exact is not None
        percentiles = any(isinstance(agg, Percentiles) for agg in plan.query.aggregates.values())
        if self.sketches and percentiles and not plan.sketch:
            log.info("query %s has too many distinct values: its percentiles from a sketch", plan.query.id)
            self.sketched.add(plan.exact)
        else:
            log.info("query %s has too many distinct values: asked directly from now on", plan.query.id)
            self.direct.add(plan.exact)

    # ------------------------------------------------------------------ memory

    def _prune(self, plans: Sequence[_Plan]) -> None:
        """Keep each asked series' buckets inside the windows asked (and read ahead of them)."""
        keep: dict[Series, list[tuple[datetime, datetime]]] = {}
        latest = None
        for plan in plans:
            if plan.series is not None and plan.series in self.held:
                spans = keep.setdefault(plan.series, [])
                spans.append((plan.query.window.start, plan.query.window.end + self.read_ahead))
            latest = plan.query.window.end if latest is None else max(latest, plan.query.window.end)
        for series, spans in keep.items():
            held = self.held[series]
            needed = sum((hi - lo) // series.size for lo, hi in merge_spans(spans))
            # Amortised, not every tick; answers apart from buckets: a 30-minute window every 5 s
            # has 360 buckets, and as many answers kept until the buckets were pruned cost 60 MB
            # with 1,000 rules.
            if len(held.buckets) > 2 * needed + 16:
                held.buckets = {s: v for s, v in held.buckets.items() if within(s, s, spans)}
            if len(held.answers) > 2 * len(spans) + 4:
                held.answers = {m: a for m, a in held.answers.items() if within(m[0].start, m[0].end, spans)}
        if latest is not None:
            for series in [
                s for s, h in self.held.items() if latest - h.last_end > 3 * h.every + FORGET_AFTER
            ]:
                del self.held[series]
                self.layouts.pop(series, None)


def _needed(query: Query, known: Mapping[str, QueryResult | None]) -> bool:
    """Whether ``query`` must be asked: it has no condition, or the answer its condition reads is
    not known from partials, or a group of that answer meets it."""
    condition = query.only_if
    if condition is None or condition.query not in known:
        return True
    answer = known[condition.query]
    if answer is None:  # past its values limit: asked directly, after this
        return True
    return answer.ok and any(condition.met(group) for group in answer.groups)


def _summed(held: _Held, first: datetime, count: int, size: timedelta) -> dict[Key, Part]:
    """The window's sum per group: slid on from the last window of its length when they overlap
    (its newest buckets added, its oldest taken off), else added up from its buckets."""
    end = first + count * size
    last = held.sums.get(count)
    if last is not None and last.start <= first < last.end <= end:
        leaving, entering = bucket_starts(last.start, first, size), bucket_starts(last.end, end, size)
        if all(start in held.buckets for start in (*leaving, *entering)):
            for start in entering:
                _add(held.layout, last.totals, held.buckets[start])
            for start in leaving:
                _take_off(held.layout, last.totals, held.buckets[start])
            last.start, last.end = first, end
            return last.totals
    totals: dict[Key, Part] = {}
    for start in bucket_starts(first, end, size):
        _add(held.layout, totals, held.buckets[start])
    if held.layout.slides and (last is None or end >= last.end):
        held.sums[count] = _Sum(first, end, totals)  # answers are finalised copies: no aliasing
    return totals


def _add(layout: Layout, totals: dict[Key, Part], bucket: Mapping[Key, Part]) -> None:
    for key, part in bucket.items():
        total = totals.get(key)
        if total is None:
            totals[key] = layout.copy(part)
        else:
            layout.add(total, part)


def _take_off(layout: Layout, totals: dict[Key, Part], bucket: Mapping[Key, Part]) -> None:
    """Subtract a bucket that left the window; a group left without rows is dropped."""
    count = layout.index[_COUNT]
    for key, part in bucket.items():
        total = totals[key]
        layout.subtract(total, part)
        if not total[count]:
            del totals[key]


def _groups(
    query: Query, totals: dict[Key, Part], layout: Layout, positions: Sequence[int]
) -> tuple[Group, ...]:
    """The window's groups: one always without ``group_by``, else those with rows, by key."""
    if not query.group_by:
        totals = {(): totals.get(()) or layout.empty()}
    count = layout.index[_COUNT]
    named = list(zip(query.aggregates.items(), positions, strict=True))
    groups = [
        Group(
            dict(zip(query.group_by, key, strict=True)),
            {name: final(agg, total[index]) for (name, agg), index in named},
        )
        for key, total in totals.items()
        if not query.group_by or total[count]
    ]
    groups.sort(key=lambda group: tuple(group.key.values()))
    return tuple(groups)
