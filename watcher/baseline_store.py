"""Baseline profiles from a log store: aggregations over the training range, no raw row leaves
the store. Three rounds for the whole range (counts and stats to infer types, then deciles or
terms, then bin counts) and, for a seasonal profile, one more: the same bins per hour
(``Query.buckets``), summed into the slots of ``watcher.baseline_slots``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from watcher.baseline import (
    DECILES,
    TAILS,
    CategoricalFeature,
    Feature,
    FeatureType,
    NumericFeature,
    Profile,
    categorical,
    decile_edges,
    shares_of,
)
from watcher.baseline_seasonal import SlotTally, bucket_start, category_counts, seasonal
from watcher.baseline_slots import HOUR, SlotBy, range_hours, slot_of
from watcher.query import (
    BUCKET,
    Aggregate,
    AggValue,
    Count,
    CountWhere,
    Histogram,
    Missing,
    Percentiles,
    Query,
    Stats,
    Terms,
    Window,
)
from watcher.query_filters import MATCH_ALL, Eq, Filter
from watcher.store.mapping_check import FieldMappingError, Use
from watcher.store.search import SearchStore

if TYPE_CHECKING:
    from watcher.store.base import LogStore


def profile_from_store(
    store: LogStore,
    *,
    source: str,
    window: Window,
    features: Sequence[str],
    built_at: datetime,
    where: Filter = MATCH_ALL,
    where_text: str | None = None,
    types: Mapping[str, FeatureType] | None = None,
    top: int = 20,
    max_values: int = 1000,
) -> Profile:
    """Profile ``features`` of the documents in ``window`` matching ``where`` with three rounds of
    aggregations: counts and stats (to infer types), then deciles or terms, then bin counts.
    A feature is numeric when every present value is a number, unless ``types`` says."""
    ask = _Asker(store, window, where)
    given = _mapped_kinds(store, features) | dict(types or {})
    first = ask(
        {"rows": Count()}
        | {f"{f}/missing": Missing(f) for f in features}
        | {f"{f}/stats": Stats(f) for f in features if given.get(f) != "categorical"}
    )
    rows = _int(first["rows"])
    present = {f: rows - _int(first[f"{f}/missing"]) for f in features}
    kinds = {f: given.get(f) or _store_type(first[f"{f}/stats"], present[f]) for f in features}
    numeric = [f for f in features if kinds[f] == "numeric"]
    shape = ask(
        {f"{f}/tails": Percentiles(f, (*TAILS, *DECILES)) for f in numeric}
        | {f"{f}/terms": Terms(f, size=max_values + 1) for f in features if f not in numeric}
    )
    edges = {f: _edges(first[f"{f}/stats"], shape[f"{f}/tails"]) for f in numeric}
    bins = ask({f"{f}/bins": Histogram(f, edges[f]) for f in numeric if edges[f]})
    profiled: dict[str, Feature] = {}
    for f in features:
        missing_rate = 1 - present[f] / rows if rows else 0.0
        if f in edges:
            profiled[f] = _numeric_from_aggregates(
                first[f"{f}/stats"],
                shape[f"{f}/tails"],
                bins.get(f"{f}/bins"),
                edges[f],
                present[f],
                missing_rate,
            )
        else:
            terms = shape[f"{f}/terms"]
            counts = {str(k): _int(v) for k, v in terms.items()} if isinstance(terms, dict) else {}
            profiled[f] = categorical(counts, present[f], missing_rate, top, max_values)
    return Profile(
        built_at=built_at,
        source=source,
        where=where_text,
        start=window.start,
        end=window.end,
        rows=rows,
        features=profiled,
    )


def _mapped_kinds(store: LogStore, features: Sequence[str]) -> dict[str, FeatureType]:
    """The features a search index maps as something other than a number (a keyword): categorical
    without asking, since the store refuses a number's statistics of them. An embedded store has
    no mapping; its statistics tell."""
    catalog = store.catalog(set(features)) if isinstance(store, SearchStore) else None
    if catalog is None:
        return {}
    kinds: dict[str, FeatureType] = {}
    for feature in features:
        try:
            catalog.resolve(feature, Use.NUMERIC)
        except FieldMappingError:
            if catalog.types.get(feature):  # mapped, not as a number (an unmapped one fails later, named)
                kinds[feature] = "categorical"
    return kinds


def _store_type(stats: AggValue, present: int) -> FeatureType:
    numbers = _int(_number(stats, "count"))
    return "numeric" if present and numbers == present else "categorical"


class _Asker:
    """One round of aggregations over the baseline's window and filter."""

    def __init__(self, store: LogStore, window: Window, where: Filter) -> None:
        self._store, self._window, self._where = store, window, where

    def __call__(self, aggregates: Mapping[str, Aggregate]) -> dict[str, AggValue]:
        if not aggregates:
            return {}
        query = Query(id="baseline", window=self._window, aggregates=aggregates, where=self._where)
        (result,) = self._store.evaluate([query])
        if result.error is not None:
            raise ValueError(f"the store could not build the baseline: {result.error}")
        return dict(result.groups[0].values) if result.groups else {}


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _number(mapping: object, key: object) -> float | None:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _edges(stats: object, percentiles: object) -> tuple[float, ...]:
    low, high = _number(stats, "min"), _number(stats, "max")
    if low is None or high is None:
        return ()
    inner = [v for v in (_number(percentiles, q) for q in DECILES) if v is not None]
    return decile_edges(low, inner, high)


def _numeric_from_aggregates(
    stats: object,
    percentiles: object,
    bins: object,
    edges: tuple[float, ...],
    present: int,
    missing_rate: float,
) -> NumericFeature:
    counts = [_int(c) for c in bins] if isinstance(bins, list) else [present]
    return NumericFeature(
        count=present,
        missing_rate=missing_rate,
        edges=edges,
        shares=shares_of(counts, sum(counts)),
        min=_number(stats, "min"),
        max=_number(stats, "max"),
        p0_1=_number(percentiles, TAILS[0]),
        p99_9=_number(percentiles, TAILS[1]),
    )


# --------------------------------------------------------------------------- seasonal


def seasonal_from_store(
    store: LogStore, profile: Profile, *, window: Window, where: Filter = MATCH_ALL, by: SlotBy
) -> Profile:
    """``profile`` (built over ``window``, whole hours) with slots of ``by``: its bins counted per
    hour in one bucketed query, each hour added to its slot."""
    aggregates: dict[str, Aggregate] = {"rows": Count()}
    for name, feature in profile.features.items():
        aggregates[f"{name}/missing"] = Missing(name)
        if isinstance(feature, NumericFeature) and feature.edges:
            aggregates[f"{name}/bins"] = Histogram(name, feature.edges)
        elif isinstance(feature, CategoricalFeature):
            for index, category in enumerate(feature.categories):
                aggregates[f"{name}/category{index}"] = CountWhere(Eq(name, category))
    query = Query("baseline-slots", window, aggregates, where=where, buckets=HOUR)
    (result,) = store.evaluate([query])
    if result.error is not None:
        raise ValueError(f"the store could not build the baseline's slots: {result.error}")
    tallies: dict[str, SlotTally] = {}
    for group in result.groups:
        slot = slot_of(bucket_start(group.key[BUCKET]), by)
        rows, present, bins = _hour(profile, group.values)
        tallies.setdefault(slot, SlotTally()).add(rows, present, bins)
    return seasonal(profile, by, tallies, range_hours(window.start, window.end, by))


def _hour(
    profile: Profile, values: Mapping[str, AggValue]
) -> tuple[int, dict[str, int], dict[str, list[float]]]:
    """One hour's rows, rows with a value and bin counts per feature."""
    rows = _int(values.get("rows"))
    present = {name: rows - _int(values.get(f"{name}/missing")) for name in profile.features}
    bins: dict[str, list[float]] = {}
    for name, feature in profile.features.items():
        if isinstance(feature, CategoricalFeature):
            counts = {c: _int(values.get(f"{name}/category{i}")) for i, c in enumerate(feature.categories)}
            bins[name] = category_counts(counts, present[name], feature)
            continue
        counts_ = values.get(f"{name}/bins")
        bins[name] = (
            [float(_int(c)) for c in counts_] if isinstance(counts_, list) else [float(present[name])]
        )
    return rows, present, bins
