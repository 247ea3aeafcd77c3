"""What a bucketed search reads per document of its interval instead of as whole-index filters:
``where`` equalities as ``terms`` aggregations (``split_where``), and a ``CountWhere`` on one field from
the cells of that field (``cells_of``).

A ``filter`` aggregation is a query: an engine without leapfrogging evaluates it over the whole
index, not over the documents of the search (osmem-server drains it: a ``terms`` filter on half
of 100k documents cost ~290 ms where the rest of a one-minute search cost ~2 ms). A filter that
reads a single field is decided by the field's value alone, so a bucketed search (one interval)
counts it from aggregations that look at each of the interval's documents once:

* a keyword field (``Eq``, ``In``, ``Exists``, under ``Not`` / ``And`` / ``Or``): a ``terms``
  aggregation limited (``include``) to the values the filter names, and a ``missing`` count; the
  other present values are the rest of the documents;
* a numeric field (``Range``, ``Exists``, under ``Not`` / ``And`` / ``Or``): a ``range``
  aggregation cut at every bound the filter names, and a ``missing`` count.

The filter is then decided once per cell (a named value, the other values, no value; or an
interval between bounds), and the cells where it holds add up to the count. Counts are those of
the ``filter`` aggregation: bounds are cut as the query compares (``gt``/``lte`` just above the
bound), and a document without the field is in no ``terms`` or ``range`` bucket.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from watcher.query import Aggregate, Count, CountWhere, Histogram, Missing, Samples, Stats, Values
from watcher.query_filters import And, Eq, Exists, Filter, In, Not, Or, Range, Scalar, filter_fields
from watcher.store.mapping_check import KEYWORD_TYPES, NUMERIC_TYPES, FieldCatalog, FieldMappingError, Use

Json = dict[str, Any]
MISSING = "m"
"""The suffix of the ``missing`` aggregation's name beside the cells'."""

_OTHER = object()  # a present value the filter does not name
_NONE = object()  # no value


@dataclass(frozen=True)
class Cells:
    """How one single-field filter is counted: the cells asked, and in which of them it holds."""

    field: str
    numeric: bool
    names: tuple[str, ...]  # keyword: the values named; numeric: the sorted bounds (as text)
    bounds: tuple[float, ...]
    holds: tuple[bool, ...]
    """keyword: each named value, then the others, then no value; numeric: each interval
    (below the first bound, between bounds, above the last), then no value."""

    def aggregations(self, name: str) -> dict[str, Json]:
        """The aggregations to put beside the others, under ``name`` and ``name + MISSING``."""
        missing = {"missing": {"field": self.field}}
        if self.numeric:
            edges = self.bounds
            inner = ({"from": low, "to": high} for low, high in itertools.pairwise(edges))
            ranges = [{"to": edges[0]}, *inner, {"from": edges[-1]}]
            return {name: {"range": {"field": self.field, "ranges": ranges}}, name + MISSING: missing}
        terms = {"field": self.field, "include": list(self.names), "size": len(self.names)}
        return {name: {"terms": terms}, name + MISSING: missing}

    def count(self, doc_count: int, aggs: Mapping[str, Any], name: str) -> int:
        """The filter's count from one bucket's answer (``aggs`` holds both aggregations)."""
        missing = int((aggs.get(name + MISSING) or {}).get("doc_count", 0))
        buckets = (aggs.get(name) or {}).get("buckets", [])
        if self.numeric:
            cells = [int(bucket.get("doc_count", 0)) for bucket in buckets]
            if len(cells) != len(self.bounds) + 1:
                cells = [0] * (len(self.bounds) + 1)
        else:
            by_value = {str(bucket.get("key")): int(bucket.get("doc_count", 0)) for bucket in buckets}
            cells = [by_value.get(value, 0) for value in self.names]
            cells.append(max(doc_count - missing - sum(cells), 0))
        cells.append(missing)
        return sum(count for count, holds in zip(cells, self.holds, strict=True) if holds)


Pushed = tuple[tuple[str, frozenset[str]], ...]
"""``where`` equalities read by ``terms`` aggregations: (field, the keywords it may have)."""
_ADDITIVE = (Count, CountWhere, Missing, Histogram, Stats, Values)


def split_where(
    where: Filter, aggregates: Iterable[Aggregate], catalog: FieldCatalog
) -> tuple[Pushed, Filter]:
    """The equalities on keyword fields of a bucketed search's ``where``, and the rest of it.

    A bucketed search reads one interval (the newest, at a steady tick): its ``where`` equalities
    (``Eq``, ``In``, at the top or in an ``And``) become ``terms`` aggregations limited to the
    values named (``dsl._pushed_terms``), over the interval's documents only, instead of query
    clauses that an engine without leapfrogging evaluates over the whole index (osmem-server
    drains every clause: a ``term`` on a third of 100k documents cost ~50 ms, the rest of the
    search ~2 ms). Documents without the field are in no bucket, as they match no ``term``. An
    ``In`` folds several values' buckets into one group: only when every aggregate adds up
    exactly; a search of ``Samples`` alone pushes ``Eq`` only (its documents are one value's)."""
    aggregates = tuple(aggregates)
    samples = all(isinstance(aggregate, Samples) for aggregate in aggregates)
    if not samples and not all(isinstance(aggregate, _ADDITIVE) for aggregate in aggregates):
        return (), where
    parts = where.filters if isinstance(where, And) else (where,)
    pushed: list[tuple[str, frozenset[str]]] = []
    rest: list[Filter] = []
    for part in parts:
        if (isinstance(part, Eq) or (isinstance(part, In) and not samples)) and keyword_field(
            catalog, part.field
        ):
            values = (part.value,) if isinstance(part, Eq) else part.values
            pushed.append((part.field, frozenset(keyword_text(value) for value in values)))
        else:
            rest.append(part)
    return tuple(pushed), rest[0] if len(rest) == 1 else And(tuple(rest))


def cells_of(flt: Filter, catalog: FieldCatalog) -> Cells | None:
    """The cells that count ``flt``, or ``None`` when it reads several fields (or a field neither
    keyword nor numeric): then it stays a ``filter`` aggregation."""
    fields = filter_fields(flt)
    if len(fields) != 1:
        return None
    (name,) = fields
    return _cells(flt, name, catalog.types.get(name, frozenset()), keyword_field(catalog, name) == name)


@functools.lru_cache(maxsize=4096)
def _cells(flt: Filter, name: str, types: frozenset[str], keyword: bool) -> Cells | None:
    """Cached: the same rules ask the same counts at every tick."""
    if types and types <= NUMERIC_TYPES and _only(flt, (Range, Exists)):
        bounds = sorted(_bounds(flt))
        if not bounds:
            return None
        cells: list[object] = [-math.inf, *bounds, _NONE]
        holds = tuple(_holds(flt, cell) for cell in cells)
        return Cells(name, True, tuple(map(str, bounds)), tuple(bounds), holds)
    if keyword and _only(flt, (Eq, In, Exists)):
        names = tuple(sorted(_named(flt)))
        if not names:
            return None
        holds = tuple(_holds(flt, cell) for cell in (*names, _OTHER, _NONE))
        return Cells(name, False, names, (), holds)
    return None


def keyword_field(catalog: FieldCatalog, name: str) -> str | None:
    """The keyword field ``name`` is matched exactly through (itself, or its ``.keyword``
    sub-field), or ``None``: then its values are not compared as text."""
    try:
        exact = catalog.resolve(name, Use.EXACT)
    except FieldMappingError:
        return None
    types = catalog.types.get(exact, frozenset())
    return exact if types and types <= KEYWORD_TYPES else None


def _only(flt: Filter, leaves: tuple[type, ...]) -> bool:
    if isinstance(flt, Not):
        return _only(flt.filter, leaves)
    if isinstance(flt, And | Or):
        return all(_only(child, leaves) for child in flt.filters)
    return isinstance(flt, leaves)


def _bounds(flt: Filter) -> set[float]:
    """Where a numeric filter can change: ``gte``/``lt`` at the bound, ``gt``/``lte`` just above."""
    if isinstance(flt, Range):
        low = {float(b) for b in (flt.gte, flt.lt) if b is not None}
        high = {math.nextafter(float(b), math.inf) for b in (flt.gt, flt.lte) if b is not None}
        return low | high
    if isinstance(flt, Not):
        return _bounds(flt.filter)
    if isinstance(flt, And | Or):
        return set().union(*(_bounds(child) for child in flt.filters))
    return set()


def _named(flt: Filter) -> set[str]:
    if isinstance(flt, Eq):
        return {keyword_text(flt.value)}
    if isinstance(flt, In):
        return {keyword_text(value) for value in flt.values}
    if isinstance(flt, Not):
        return _named(flt.filter)
    if isinstance(flt, And | Or):
        return set().union(*(_named(child) for child in flt.filters))
    return set()


def _holds(flt: Filter, cell: object) -> bool:
    """Whether ``flt`` holds for every document of ``cell``: a named value, ``_OTHER``, ``_NONE``,
    or the lower end of an interval (constant over it, as its bounds are the filter's)."""
    if isinstance(flt, Not):
        return not _holds(flt.filter, cell)
    if isinstance(flt, And):
        return all(_holds(child, cell) for child in flt.filters)
    if isinstance(flt, Or):
        return any(_holds(child, cell) for child in flt.filters)
    if isinstance(flt, Exists):
        return cell is not _NONE
    if cell is _NONE or cell is _OTHER:
        return False
    if isinstance(flt, Eq):
        return cell == keyword_text(flt.value)
    if isinstance(flt, In):
        return cell in {keyword_text(value) for value in flt.values}
    if not isinstance(flt, Range) or not isinstance(cell, float):
        return False
    return (
        (flt.gte is None or cell >= flt.gte)
        and (flt.gt is None or cell > flt.gt)
        and (flt.lte is None or cell <= flt.lte)
        and (flt.lt is None or cell < flt.lt)
    )


def keyword_text(value: Scalar | None) -> str:
    """A keyword as a ``term`` query matches it: JSON's ``true``/``false``, anything else as written."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
