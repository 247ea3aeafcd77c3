"""Search bodies serialized once per fused search's shape; each tick fills in its time range only.

A live tick asks the same searches every minute with the window moved on: compiling a body
(``dsl.search_body``: filters, aggregations, field names through the mapping) and encoding it as
JSON cost more CPU than reading its answer. ``BodyCache`` compiles a shape once, encodes it to
bytes with markers where the window goes (the time range's bounds, a bucketed search's grid
offset), and renders the next windows by joining the bytes around their numbers. A rendered body
is byte for byte the one ``encode(search_body(...))`` gives.

A shape is a fused search's ``where``, ``group_by``, bucket length and named aggregates; the
mapping decides its field names, so the store clears the cache whenever it fetches the mapping.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from watcher.query import Aggregate
from watcher.query_filters import Filter
from watcher.store.cells import Cells, Pushed
from watcher.store.dsl import BUCKET_SOURCE, GROUPS, FusedSearch, Json, epoch_millis, search_body
from watcher.store.mapping_check import FieldCatalog

MAX_SHAPES = 4096
"""Shapes kept at most: a rule reload can leave old ones behind, so past this the cache starts over."""

_START, _END, _OFFSET = ("\x00watcher-start\x00", "\x00watcher-end\x00", "\x00watcher-offset\x00")

Shape = tuple[Filter, tuple[str, ...], timedelta | None, tuple[tuple[str, Aggregate], ...]]


def encode(body: Json) -> bytes:
    """A body as the clients encode JSON (compact, UTF-8, non-ASCII kept as is)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class Template:
    """A body's bytes cut where the window's numbers go, and what compiling it decided."""

    parts: tuple[bytes, ...]
    """Around the start, the end and (bucketed) the grid offset, in the order they occur."""
    slots: tuple[str, ...]
    pushed: Pushed
    cells: dict[str, Cells]

    def render(self, fused: FusedSearch) -> bytes:
        """The first page's body of ``fused`` (a search of this shape)."""
        fused.pushed, fused.cells = self.pushed, dict(self.cells)
        start = epoch_millis(fused.window.start)
        numbers = {_START: b"%d" % start, _END: b"%d" % epoch_millis(fused.window.end)}
        if fused.buckets is not None:
            millis = fused.buckets // timedelta(milliseconds=1)
            numbers[_OFFSET] = b'"%dms"' % (start % millis)
        out = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:], strict=True):
            out += (numbers[slot], part)
        return b"".join(out)


class BodyCache:
    """First-page bodies by shape, for one state of the mapping (``clear`` when it changes)."""

    def __init__(self, time_field: str, page_size: int) -> None:
        self.time_field = time_field
        self.page_size = page_size
        self._templates: dict[Shape, Template | None] = {}
        # The same by the identity of the shape's objects, kept with it (so no other object takes
        # their ids): a tick asks with the same filter and aggregate objects as the tick before,
        # and hashing their trees for every search cost more than rendering its body.
        self._by_identity: dict[tuple[object, ...], tuple[Shape, Template | None]] = {}

    def clear(self) -> None:
        self._templates.clear()
        self._by_identity.clear()

    def body(self, fused: FusedSearch, catalog: FieldCatalog, after: Json | None) -> bytes:
        """The encoded body of one page of ``fused``; a next page (``after``) is compiled anew."""
        if after is not None:
            return encode(search_body(fused, catalog, self.time_field, self.page_size, after))
        key = (id(fused.where), fused.group_by, fused.buckets, *fused.aggs, *map(id, fused.aggs.values()))
        kept = self._by_identity.get(key)
        if kept is None:
            if len(self._templates) >= MAX_SHAPES or len(self._by_identity) >= MAX_SHAPES:
                self.clear()
            shape: Shape = (fused.where, fused.group_by, fused.buckets, tuple(fused.aggs.items()))
            if shape not in self._templates:
                self._templates[shape] = self._compile(fused, catalog)
            kept = self._by_identity[key] = (shape, self._templates[shape])
        template = kept[1]
        if template is None:
            return encode(search_body(fused, catalog, self.time_field, self.page_size))
        return template.render(fused)

    def _compile(self, fused: FusedSearch, catalog: FieldCatalog) -> Template | None:
        """The shape's template, or ``None`` when a marker cannot be told apart from the body's own
        text (a filter value spelled like one): that shape is compiled every time."""
        body = search_body(fused, catalog, self.time_field, self.page_size)
        pushed, cells = fused.pushed, dict(fused.cells)
        bounds = body["query"]["bool"]["filter"][0]["range"][self.time_field]
        bounds["gte"], bounds["lt"] = _START, _END
        if fused.buckets is not None:
            _grid(body)["offset"] = _OFFSET
        text = encode(body)
        found = sorted((text.find(_marker(slot)), slot) for slot in (_START, _END, _OFFSET))
        slots = tuple(slot for at, slot in found if at >= 0)
        if any(text.count(_marker(slot)) != 1 for slot in slots):
            return None
        parts, rest = [], text
        for slot in slots:
            before, rest = rest.split(_marker(slot))
            parts.append(before)
        return Template((*parts, rest), slots, pushed, cells)


def _grid(body: Json) -> dict[str, Any]:
    """The ``date_histogram`` of a bucketed search's composite (its last source)."""
    grid: dict[str, Any] = body["aggs"][GROUPS]["composite"]["sources"][-1][BUCKET_SOURCE]["date_histogram"]
    return grid


def _marker(slot: str) -> bytes:
    return json.dumps(slot).encode()
