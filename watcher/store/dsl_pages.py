"""One ``_msearch`` response of a fused search read into groups (``read_page``): each bucket's
group key and the values of its aggregates.

Beside ``watcher.store.dsl`` (which compiles the search) and ``watcher.store.answers`` (which reads
one aggregation's answer, through the readers ``dsl.group_values`` decides once per search).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from watcher.query import BUCKET, AggValue
from watcher.store.answers import key_text
from watcher.store.dsl import BUCKET_SOURCE, GROUPS, FusedSearch, Json, group_values


@dataclass(frozen=True)
class Page:
    """What one response adds to a fused search, and the ``after`` key of the next page if any."""

    groups: list[tuple[dict[str, str], dict[str, AggValue]]]
    after: Json | None


def read_page(fused: FusedSearch, response: Mapping[str, Any], page_size: int) -> Page:
    """Parse one search response of ``fused`` (a successful ``_msearch`` item)."""
    aggregations = response.get("aggregations") or {}
    if not fused.labels:
        if fused.pushed:
            inner = _pushed_buckets(fused, aggregations)
            return Page([({}, group_values(fused, int(b.get("doc_count", 0)), b)) for b in inner], None)
        total = response.get("hits", {}).get("total", {})
        count = int(total.get("value", 0)) if isinstance(total, Mapping) else int(total)
        return Page([({}, group_values(fused, count, aggregations))], None)
    composite = aggregations.get(GROUPS, {})
    buckets = composite.get("buckets", [])
    groups = [
        (_key(fused, bucket["key"]), group_values(fused, int(inner.get("doc_count", 0)), inner))
        for bucket in buckets
        for inner in _pushed_buckets(fused, bucket)
    ]
    after = composite.get("after_key")
    more = after is not None and len(buckets) >= page_size
    return Page(groups, after if more else None)


def _pushed_buckets(fused: FusedSearch, bucket: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The buckets of the pushed ``where`` values inside ``bucket`` (``dsl._pushed_terms``), in key
    order; ``bucket`` itself when nothing is pushed. Several values of one key (an ``In``) are
    groups with one key, folded into one like a missing and an empty value
    (``FusedSearch._merged_groups``)."""
    found = [bucket]
    for i in range(len(fused.pushed)):
        found = [inner for outer in found for inner in (outer.get(f"w{i}") or {}).get("buckets", [])]
    return found


def _key(fused: FusedSearch, key: Mapping[str, Any]) -> dict[str, str]:
    labels = {name: key_text(key.get(f"k{i}")) for i, name in enumerate(fused.group_by)}
    if fused.buckets is not None:
        labels[BUCKET] = str(int(key[BUCKET_SOURCE]))
    return labels
