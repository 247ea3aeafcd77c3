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
buckets it gained minus those it left (a sliding sum, ``window_sums``), not the sum of all its
buckets again. What a query's plan needs but its window's times (its *shape*: series, bucket
length, each aggregate's place) is worked out once per rule query, not at every tick.

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
from datetime import datetime, timedelta

from watcher.query import (
    BUCKET,
    SKETCH_ERROR,
    Group,
    Percentiles,
    Query,
    QueryResult,
    Window,
)
from watcher.query_documents import VALUES_LIMIT
from watcher.store.base import LogStore
from watcher.store.buckets import Runs, bucket_size, bucket_starts, from_ms, merge_spans, runs, within
from watcher.store.partial_plans import Held, Plan, Series, Shape
from watcher.store.partial_values import DISTINCT_LIMIT, Layout, Part, finisher, partial_of
from watcher.store.window_sums import COUNT, Key, summed, window_groups

log = logging.getLogger("watcher.store.partials")

FORGET_AFTER = timedelta(hours=1)


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
        distinct_limit: int = DISTINCT_LIMIT,
    ) -> None:
        self.store = store
        self.values_limit = values_limit
        # A cardinality's buckets as distinct values without counts, when the store lists them so
        # (``distinct_values``); else as values with their counts, up to ``values_limit``.
        self.distinct = distinct_limit if getattr(store, "distinct_values", False) else 0
        self.read_ahead = read_ahead
        self.horizon = horizon
        self.held: dict[Series, Held] = {}
        self.layouts: dict[Series, Layout] = {}
        self.direct: set[Series] = set()  # a bucket had too many distinct values: asked directly
        # Exact series whose numbers were too many: their percentiles come from a sketch, when
        # the store can round numbers to one (``sketches``), instead of re-reading their windows.
        self.sketched: set[Series] = set()
        self.sketches = bool(getattr(store, "sketches", False))
        self.buckets_asked = 0  # buckets the store was asked for (tests and benches count them)
        self.next_forget: datetime | None = None  # when unasked series are looked for next
        self.shapes: dict[tuple[object, ...], Shape] = {}
        # One object per series: rules with equal filters (a ratio and its spike) make equal
        # series, and a map lookup with an equal but other object compares their filter trees.
        self.interned: dict[Series, Series] = {}
        # Conditional queries (by ``_condition_key``) whose condition held when last evaluated.
        self.held_if: dict[tuple[object, ...], datetime] = {}

    def evaluate(self, queries: Sequence[Query]) -> list[QueryResult]:
        plans = [self._plan(query) for query in queries]
        fetches = self._fetches(plans)
        asked = [plan.query for plan in plans if plan.series is None]
        bucketed = [query for _, query in fetches]
        # The buckets go first, so a query needed only if a window's answer says so (an alert's
        # evidence, ``Query.only_if``) is asked only then, in a second call (``_early``).
        summed = {plan.query.id for plan in plans if plan.series is not None}
        early = self._early(asked, summed)
        answers = iter(self._ask([*early, *bucketed]))
        direct = {query.id: next(answers) for query in early}
        failed = self._take(fetches, answers)
        known = {plan.query.id: self._answer(plan, {}, failed) for plan in plans if plan.series}
        held = {query.id: self._held(query, known) for query in asked if _waits(query, summed)}
        direct.update((id_, QueryResult(id_)) for id_, holds in held.items() if not holds and id_ in direct)
        later = [query for query in asked if query.id not in direct]
        needed = [query for query in later if held.get(query.id, True)]
        direct.update((query.id, QueryResult(query.id)) for query in later)
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

    def _early(self, asked: Sequence[Query], summed: set[str]) -> list[Query]:
        """The direct queries asked with the buckets. A search store's calls are requests: it asks
        there every query that does not wait for the buckets' answer, and those that wait but
        whose condition held at their last evaluation, so a lasting alert's evidence comes in the
        tick's one request (dropped if the condition no longer holds). The embedded store asks
        them all in the second call: fused with windows re-read in full, the newest buckets'
        statement would compute its columns for every row of those windows (0.38 s vs 0.25 s)."""
        if not getattr(self.store, "one_request", False):
            return []
        return [
            query for query in asked if not _waits(query, summed) or _condition_key(query) in self.held_if
        ]

    def _held(self, query: Query, known: Mapping[str, QueryResult | None]) -> bool:
        """Whether the condition of ``query`` (one that waits for the buckets) holds, remembered
        until its next evaluation."""
        key, held = _condition_key(query), _needed(query, known)
        if held:
            self.held_if[key] = query.window.end
        else:
            self.held_if.pop(key, None)
        return held

    def _ask(self, queries: list[Query]) -> list[QueryResult]:
        return self.store.evaluate(queries) if queries else []

    # ------------------------------------------------------------------ planning

    def _plan(self, query: Query) -> Plan:
        shape = self._shape(query)
        exact = shape.exact
        if exact is None or (self.direct and exact in self.direct):
            return Plan(query, shape)
        if not self.sketched or exact not in self.sketched:
            return Plan(query, shape, exact)
        if shape.sketch is None:
            shape.sketch = self._series(query, exact.size, SKETCH_ERROR)
        return Plan(query, shape, shape.sketch)

    def _shape(self, query: Query) -> Shape:
        """The query's shape: made again only when its filter or aggregates changed."""
        window = query.window
        length = window.end - window.start
        key = (id(query.where), query.group_by, tuple(query.aggregates), length, query.every,
               query.buckets, window.start.microsecond % 1000)  # fmt: skip
        shape = self.shapes.get(key)
        if shape is not None and shape.fits(query):
            return shape
        size = bucket_size(query)
        shape = self.shapes[key] = Shape(query)
        if size is None or (query.every is not None and query.every >= length and not self.read_ahead):
            return shape
        try:
            shape.exact = self._series(query, size, 0.0)
        except ValueError:
            return shape
        shape.count = length // size
        return shape

    def _series(self, query: Query, size: timedelta, sketch: float) -> Series:
        limit, distinct = self.values_limit, self.distinct
        partial = (partial_of(agg, limit, sketch, distinct) for agg in query.aggregates.values())
        series = Series(query.where, query.group_by, frozenset(partial) | {COUNT}, size)
        return self.interned.setdefault(series, series)

    def _fetches(self, plans: Sequence[Plan]) -> list[tuple[Series, Query]]:
        """One bucketed query per run of consecutive buckets not held, per series."""
        missing: dict[Series, set[datetime]] = {}
        seen: set[tuple[Series, Window]] = set()  # rules sharing a series share windows
        for plan in plans:
            series, window = plan.series, plan.query.window
            if series is None or (series, window) in seen:
                continue
            seen.add((series, window))
            held = self.held.get(series)
            if held is None:
                gaps = [(window.start, window.end)]
            else:
                plan.known = _known(held, plan)
                if plan.known is not None:
                    continue
                gaps = held.runs.gaps(window.start, window.end)
            for first, end in gaps:  # at a steady tick, the newest bucket only
                missing.setdefault(series, set()).update(bucket_starts(first, end, series.size))
        fetches: list[tuple[Series, Query]] = []
        for series, starts in missing.items():
            layout = self._layout(series)
            for number, (first, end) in enumerate(runs(sorted(starts), series.size)):
                end = self._ahead(series, end)
                window = Window(first, end)
                query = Query(f"partials:{id(series)}:{number}", window, layout.asked,
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
            held = self.held.get(series)
            if held is None:
                held = self.held[series] = Held(series.size, query.window.end, layout)
            size, start, group_by = series.size, query.window.start, series.group_by
            fresh: dict[datetime, dict[Key, Part]] = {
                start + k * size: {} for k in range((query.window.end - start) // size)
            }
            last: tuple[str, dict[Key, Part]] | None = None  # most answers are one bucket's groups
            for group in answer.groups:
                millis = group.key[BUCKET]
                if last is None or last[0] != millis:
                    last = (millis, fresh[from_ms(int(millis))])
                key = tuple([group.key[name] for name in group_by]) if group_by else ()
                last[1][key] = layout.part(group.values)
            held.buckets.update(fresh)
            held.runs.add(start, query.window.end)
        return failed

    def _answer(
        self, plan: Plan, direct: dict[str, QueryResult], failed: dict[Series, str]
    ) -> QueryResult | None:
        query, series = plan.query, plan.series
        if series is None:
            return direct[query.id]
        if failed and series in failed:
            return QueryResult(query.id, error=failed[series])
        held = self.held[series]
        if query.window.end > held.last_end:
            held.last_end = query.window.end
        known = plan.known or _known(held, plan)  # the first may answer another's window
        if known is not None:
            return QueryResult(query.id, known)
        layout = held.layout
        totals = summed(held.sums, held.buckets, layout, query.window.start, plan.shape.count, series.size)
        if layout.limited and not all(layout.answerable(total) for total in totals.values()):
            self._too_many(plan)
            return None
        named = plan.shape.named.get(series)
        if named is None:
            limit, sketch, distinct = self.values_limit, plan.sketch, self.distinct
            named = plan.shape.named[series] = [
                (name, layout.index[partial_of(agg, limit, sketch, distinct)], finisher(agg))
                for name, agg in query.aggregates.items()
            ]
        groups = window_groups(query.group_by, totals, layout, named)
        held.answers[(query.window.start, query.window.end, plan.shape.names)] = (query.aggregates, groups)
        return QueryResult(query.id, groups)

    def _too_many(self, plan: Plan) -> None:
        """A bucket of ``plan`` has more than its values limit: percentiles go to a sketch (the
        store permitting), else the query is asked directly from now on."""
        exact = plan.shape.exact
        assert exact is not None
        percentiles = any(isinstance(agg, Percentiles) for agg in plan.query.aggregates.values())
        if self.sketches and percentiles and not plan.sketch:
            log.info("query %s has too many distinct values: its percentiles from a sketch", plan.query.id)
            self.sketched.add(exact)
        else:
            log.info("query %s has too many distinct values: asked directly from now on", plan.query.id)
            self.direct.add(exact)

    # ------------------------------------------------------------------ memory

    def _prune(self, plans: Sequence[Plan]) -> None:
        """Keep each asked series' buckets inside the windows asked (and read ahead of them).
        Amortised: a series is pruned once its buckets are twice those in use or its answers twice
        those kept last time (a spike's history windows stay); unasked series are looked for every
        few minutes of the clock. Looking at every window asked at every tick cost more than the
        answers."""
        due = {
            s for s, h in self.held.items() if len(h.buckets) > h.limits[0] or len(h.answers) > h.limits[1]
        }
        if due:
            keep: dict[Series, list[tuple[datetime, datetime]]] = {}
            for plan in plans:
                if plan.series in due:
                    window = plan.query.window
                    keep.setdefault(plan.series, []).append((window.start, window.end + self.read_ahead))
            for series, spans in keep.items():
                _prune_series(self.held[series], spans)
        latest = max((plan.query.window.end for plan in plans), default=None)
        if latest is not None and (self.next_forget is None or latest >= self.next_forget):
            self.next_forget = latest + FORGET_AFTER / 12
            for series in [
                s for s, h in self.held.items() if latest - h.last_end > 3 * h.every + FORGET_AFTER
            ]:
                del self.held[series]
                self.layouts.pop(series, None)
            self.held_if = {key: end for key, end in self.held_if.items() if latest - end <= FORGET_AFTER}
        if len(self.shapes) > 2 * len(plans) + 64:  # filters made afresh per tick, rules reloaded
            used = {id(plan.shape) for plan in plans}
            self.shapes = {key: shape for key, shape in self.shapes.items() if id(shape) in used}
            kept = [s for shape in self.shapes.values() for s in (shape.exact, shape.sketch) if s is not None]
            self.interned = {series: series for series in [*self.held, *kept]}


def _prune_series(held: Held, spans: list[tuple[datetime, datetime]]) -> None:
    # Answers apart from buckets: a 30-minute window every 5 s has 360 buckets, and as many
    # answers kept until the buckets were pruned cost 60 MB with 1,000 rules.
    size = held.every
    buckets = 2 * sum((hi - lo) // size for lo, hi in merge_spans(spans)) + 16
    if len(held.buckets) > buckets:
        held.buckets = {s: v for s, v in held.buckets.items() if within(s, s, spans)}
        held.runs = Runs.of(held.buckets, size)
    answers = 2 * max(len(spans), held.answers_kept) + 4
    if len(held.answers) > answers:
        held.answers = {m: a for m, a in held.answers.items() if within(m[0], m[1], spans)}
        held.answers_kept = len(held.answers)
        answers = 2 * max(len(spans), held.answers_kept) + 4
    held.limits = (buckets, answers)


def _known(held: Held, plan: Plan) -> tuple[Group, ...] | None:
    """The groups answered before for the plan's window and aggregates (equal, not hashed:
    filters are shared), or None."""
    window, aggregates = plan.query.window, plan.query.aggregates
    known = held.answers.get((window.start, window.end, plan.shape.names))
    if known is not None and (known[0] is aggregates or known[0] == aggregates):
        return known[1]
    return None


def _waits(query: Query, summed: set[str]) -> bool:
    """Whether ``query``'s condition reads an answer summed from partials: it waits for them."""
    return query.only_if is not None and query.only_if.query in summed


def _condition_key(query: Query) -> tuple[object, ...]:
    """A conditional query's own from one evaluation to the next (its window moved on). Its
    filter and aggregates by identity, as shapes are: a rule's evidence asks the same objects at
    every evaluation (``watcher.detect.evidence``), and hashing them walked their filter trees;
    another object (a reloaded rule) is only asked in the second call until its condition holds."""
    window = query.window
    aggregates = tuple(map(id, query.aggregates.values()))
    return (id(query.where), query.group_by, aggregates, window.end - window.start)


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
