"""ElastAlert 2 ``query_string`` filters of the simple form ``field:value AND NOT field:"a b"``.

Lucene's query syntax is a language of its own (free text, wildcards, ranges, fuzziness, boosts,
``OR`` with precedence). Only conjunctions of exact field matches mean the same in watcher; any
other query is refused with the part that could not be read.
"""

from __future__ import annotations

import re
from typing import Any

FIELD_MATCH = re.compile(
    r'^(?P<negated>NOT\s+|-)?(?P<field>[A-Za-z_@][\w.@-]*):(?:"(?P<quoted>[^"\\]*)"|(?P<bare>[^\s"*?~\[\]{}()/:\\^]+))$'
)
AND = re.compile(r"\s+AND\s+|\s*&&\s*")
NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


class QueryStringError(ValueError):
    """The query is not a conjunction of ``field:value`` terms; the message says which part."""


def parse_query_string(query: str) -> list[dict[str, Any]]:
    """The watcher filters, one per term, of ``field:value AND field:"x" AND NOT field:y``."""
    if not query.strip():
        raise QueryStringError("the query is empty")
    return [_term(part.strip()) for part in AND.split(query.strip())]


def _term(part: str) -> dict[str, Any]:
    found = FIELD_MATCH.match(part)
    if found is None:
        raise QueryStringError(
            f"{part!r} is not field:value (free text, OR, wildcards, ranges and groups are not)"
        )
    value: Any = found.group("quoted")
    if value is None:
        bare = found.group("bare")
        value = (
            float(bare) if NUMBER.match(bare) and "." in bare else int(bare) if NUMBER.match(bare) else bare
        )
    match = {found.group("field"): value}
    return {"not": match} if found.group("negated") else match
