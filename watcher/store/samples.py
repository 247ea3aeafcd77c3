"""The documents of a ``Samples`` answer, the same from every store: flattened to dotted field
names, cut to the fields asked for, in the order the query sorts them.

Both stores return whole documents (``_source`` or the stored JSON text); the fields are picked
here, once, so a nested field (``error.message``) reads the same from either.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from watcher.query import Sample, Samples


def sample_of(document: Mapping[str, Any], query: Samples) -> Sample:
    """``document`` flattened (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``), with only the query's fields
    (all of them when it names none), in the order named."""
    flat: Sample = {}
    _flatten(document, "", flat)
    if not query.fields:
        return flat
    return {name: flat[name] for name in query.fields if name in flat}


def samples_of_json(texts: Iterable[str | None], query: Samples) -> tuple[Sample, ...]:
    """Samples from documents stored as JSON text (the embedded store's ``doc`` column)."""
    found = []
    for text in texts:
        try:
            document = json.loads(text) if text else None
        except ValueError:
            continue  # the store only keeps valid JSON; an unreadable one is no evidence
        if isinstance(document, Mapping):
            found.append(sample_of(document, query))
    return tuple(found)


def _flatten(value: Mapping[str, Any], prefix: str, flat: Sample) -> None:
    """Into ``flat``, depth first. A JSON object is a ``dict``: that exact type is checked before
    the ``Mapping`` ABC, whose check was most of the time of reading a tick's evidence."""
    for key, item in value.items():
        name = f"{prefix}{key}"
        if type(item) is dict or (type(item) not in _LEAVES and isinstance(item, Mapping)):
            _flatten(item, name + ".", flat)
        else:
            flat[name] = item


_LEAVES = frozenset({str, int, float, bool, list, type(None)})
"""What a JSON document holds besides objects: never a ``Mapping``."""
