"""What the live mapping of a search index says about the fields a query uses.

The search store asks ``_field_caps`` once per index pattern (cached) and checks every query
against the answer before sending it, because Elasticsearch answers a query on an unmapped field
with an empty result -- which a detector would read as "no traffic". Here it is an error with a
clear message instead. The same check backs ``watcher check --online``.

Rule for exact matching: a field mapped as analysed ``text`` is matched, grouped and counted
through its ``<field>.keyword`` sub-field (the default dynamic mapping of Elasticsearch and
OpenSearch); a text field without one is an error. Mind ``ignore_above`` (256 by default): longer
values are not indexed in the keyword sub-field, so they never match and group as missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

from watcher.config import SearchSource, Source
from watcher.query import (
    Aggregate,
    Cardinality,
    Count,
    CountWhere,
    Histogram,
    Missing,
    Percentiles,
    Query,
    Samples,
    Stats,
    Terms,
    Values,
    aggregate_fields,
)
from watcher.query_documents import FirstSeen, Latest, Timeline
from watcher.query_filters import And, Eq, Exists, Filter, In, Not, Or, Range
from watcher.rules.models import Rule
from watcher.store.base import StoreError

NUMERIC_TYPES = frozenset(
    {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long"}
)
DATE_TYPES = frozenset({"date", "date_nanos"})
KEYWORD_TYPES = frozenset({"keyword", "constant_keyword", "wildcard"})
TEXT_TYPES = frozenset({"text", "match_only_text"})
_FAMILIES: tuple[tuple[str, frozenset[str]], ...] = (
    ("number", NUMERIC_TYPES),
    ("date", DATE_TYPES),
    ("keyword", KEYWORD_TYPES),
    ("text", TEXT_TYPES),
    ("boolean", frozenset({"boolean"})),
    ("ip", frozenset({"ip"})),
)


class Use(Enum):
    """How a query uses a field, which decides the mapping types that work."""

    NUMERIC = "numeric"  # range filter, percentiles, stats, histogram
    EXACT = "exact"  # eq / in filter, group_by, terms, cardinality
    PRESENCE = "presence"  # exists filter, missing count


class FieldMappingError(ValueError):
    """A field a query uses is unmapped or mapped with a type that cannot answer it."""


@dataclass(frozen=True)
class FieldCatalog:
    """The mapped types of some fields across the indices an index pattern resolves to."""

    index: str
    indices: tuple[str, ...]
    types: Mapping[str, frozenset[str]]

    def resolve(self, name: str, use: Use) -> str:
        """The field to put in the query DSL for ``name`` used as ``use``; raise ``FieldMappingError``."""
        types = self.types.get(name, frozenset())
        if not types:
            raise FieldMappingError(f"field {name!r} is not mapped in index {self.index!r}")
        if "object" in types or "nested" in types:
            raise FieldMappingError(f"field {name!r} is an object in index {self.index!r}, not a value")
        families = _families(types)
        if len(families) > 1:
            raise FieldMappingError(
                f"field {name!r} has conflicting mappings across {self.index!r}: {', '.join(sorted(types))}"
            )
        family = families[0] if families else "other"
        if use is Use.PRESENCE:
            return name
        if use is Use.NUMERIC:
            if family in ("number", "date"):
                return name
            kinds = ", ".join(sorted(types))
            raise FieldMappingError(
                f"field {name!r} is mapped as {kinds} in index {self.index!r}, not as a number"
            )
        if family == "text":
            keyword = f"{name}.keyword"
            if self.types.get(keyword, frozenset()) and _families(self.types[keyword]) == ["keyword"]:
                return keyword
            raise FieldMappingError(
                f"field {name!r} is analysed text in index {self.index!r} with no keyword sub-field: "
                "it cannot be matched exactly, grouped or counted"
            )
        return name

    def time_problem(self, time_field: str) -> str | None:
        """Why ``time_field`` cannot bound a window, or ``None`` when it is a date field."""
        types = self.types.get(time_field, frozenset())
        if not types:
            return f"time field {time_field!r} is not mapped in index {self.index!r}"
        if not types <= DATE_TYPES:
            kinds = ", ".join(sorted(types))
            return f"time field {time_field!r} is mapped as {kinds} in index {self.index!r}, not as a date"
        return None


def _families(types: frozenset[str]) -> list[str]:
    return [family for family, members in _FAMILIES if types & members]


def field_uses(query: Query) -> Iterator[tuple[str, Use]]:
    """Every (field, use) a query needs, filters first."""
    yield from filter_uses(query.where)
    for name in query.group_by:
        yield name, Use.EXACT
    for aggregate in query.aggregates.values():
        yield from aggregate_uses(aggregate)


def filter_uses(flt: Filter) -> Iterator[tuple[str, Use]]:
    if isinstance(flt, Eq | In):
        yield flt.field, Use.EXACT
    elif isinstance(flt, Range):
        yield flt.field, Use.NUMERIC
    elif isinstance(flt, Exists):
        yield flt.field, Use.PRESENCE
    elif isinstance(flt, Not):
        yield from filter_uses(flt.filter)
    elif isinstance(flt, And | Or):
        for child in flt.filters:
            yield from filter_uses(child)


def aggregate_uses(aggregate: Aggregate) -> Iterator[tuple[str, Use]]:
    if isinstance(aggregate, Count):
        return
    if isinstance(aggregate, CountWhere):
        yield from filter_uses(aggregate.filter)
    elif isinstance(aggregate, Percentiles | Stats | Histogram):
        yield aggregate.field, Use.NUMERIC
    elif isinstance(aggregate, Cardinality | Terms):
        yield aggregate.field, Use.EXACT
    elif isinstance(aggregate, Missing):
        yield aggregate.field, Use.PRESENCE
    elif isinstance(aggregate, Values):
        yield aggregate.field, Use.NUMERIC if aggregate.numeric else Use.EXACT
    elif isinstance(aggregate, Timeline | FirstSeen | Latest):
        for name in aggregate_fields(aggregate):
            yield name, Use.EXACT
    elif isinstance(aggregate, Samples):
        yield from filter_uses(aggregate.filter)
        if aggregate.sort:
            yield aggregate.sort, Use.NUMERIC


def query_problem(catalog: FieldCatalog, time_field: str, query: Query) -> str | None:
    """The first reason ``query`` cannot be answered from this mapping, or ``None``."""
    if not catalog.indices:
        return f"index pattern {catalog.index!r} matches no index"
    problem = catalog.time_problem(time_field)
    if problem:
        return problem
    for name, use in field_uses(query):
        try:
            catalog.resolve(name, use)
        except FieldMappingError as exc:
            return str(exc)
    return None


def fields_used(time_field: str, queries: Sequence[Query]) -> set[str]:
    """Every field the queries read, and the time field: what to ask ``_field_caps`` about."""
    names = {time_field}
    for query in queries:
        names |= {name for name, _ in field_uses(query)}
    return names


# --------------------------------------------------------------------------- watcher check --online


class CatalogSource(Protocol):
    """What the online check needs of a store: the mapping of some fields (``SearchStore``)."""

    def catalog(self, names: set[str]) -> FieldCatalog: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class MappingProblem:
    """One reason a rule cannot run on its live store."""

    source: str
    rule: str | None  # None: the whole source
    message: str

    def __str__(self) -> str:
        if self.rule is None:
            return f"source {self.source!r}: {self.message}"
        return f"rule {self.rule!r} (source {self.source!r}): {self.message}"


def check_online(
    rules: Sequence[Rule],
    sources: Mapping[str, Source],
    at: datetime,
    open_store: Callable[[SearchSource], CatalogSource] | None = None,
) -> list[MappingProblem]:
    """Check every rule on a search source against the live mapping: the index pattern exists and
    each field the rule's queries use (at ``at``) is mapped with a type that can answer them."""
    from watcher.detect import DETECTORS
    from watcher.store.search import SearchStore

    opener: Callable[[SearchSource], CatalogSource] = open_store or SearchStore
    problems: list[MappingProblem] = []
    for name, source in sorted(sources.items()):
        own = [rule for rule in rules if rule.source == name and rule.enabled]
        if not isinstance(source, SearchSource) or not own:
            continue
        planned = {rule.name: DETECTORS[rule.detector].queries(rule, at) for rule in own}
        every = [query for queries in planned.values() for query in queries]
        store = opener(source)
        try:
            catalog = store.catalog(fields_used(source.time_field, every))
        except StoreError as exc:
            problems.append(MappingProblem(name, None, str(exc)))
            continue
        finally:
            store.close()
        problems += _source_problems(name, source, catalog, planned)
    return problems


def _source_problems(
    name: str, source: SearchSource, catalog: FieldCatalog, planned: Mapping[str, Sequence[Query]]
) -> list[MappingProblem]:
    if not catalog.indices:
        return [MappingProblem(name, None, f"index pattern {source.index!r} matches no index")]
    time_problem = catalog.time_problem(source.time_field)
    if time_problem:
        return [MappingProblem(name, None, time_problem)]
    problems = []
    for rule, queries in planned.items():
        seen: set[str] = set()
        for query in queries:
            problem = query_problem(catalog, source.time_field, query)
            if problem and problem not in seen:
                seen.add(problem)
                problems.append(MappingProblem(name, rule, problem))
    return problems
