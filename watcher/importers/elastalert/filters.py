"""ElastAlert 2 filters (Elasticsearch query DSL) as watcher ``where`` filters.

A rule's ``filter:`` is a list of query clauses, all of which must match. Each clause form has
one converter in ``FORMS``; a form watcher cannot express exactly is refused with the reason and
the line of the clause. ``bool`` clauses nest (``must``/``filter`` -> and, ``should`` -> or,
``must_not`` -> not), and the legacy ``{query: ...}`` wrapper is unwrapped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from watcher.importers.elastalert.options import RuleOptions
from watcher.importers.elastalert.query_string import QueryStringError, parse_query_string

Filter = dict[str, Any]
Path = tuple[Any, ...]
Converter = Callable[[RuleOptions, Path, Any], Filter]

RANGE_OPS = ("gte", "gt", "lte", "lt")
RANGE_IGNORED = ("boost",)
QUERY_STRING_IGNORED = ("analyze_wildcard", "lenient", "default_operator")


def convert_filters(options: RuleOptions, key: str) -> Filter | None:
    """The option ``key`` (a list of clauses) as one watcher filter, or None when it is empty."""
    clauses = options.get(key) or []
    if isinstance(clauses, dict):
        clauses = [clauses]
    if not isinstance(clauses, list):
        raise options.refuse(f"'{key}' must be a list of query clauses", key)
    return all_of([clause(options, (key, index), item) for index, item in enumerate(clauses)])


def all_of(parts: list[Filter]) -> Filter | None:
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"and": parts}


def clause(options: RuleOptions, path: Path, node: Any) -> Filter:
    """One query clause: a mapping of exactly one form (``term``, ``bool``, ...) to its body."""
    if not isinstance(node, dict) or len(node) != 1:
        raise options.refuse(f"a filter clause is a mapping of one query type, got {node!r}", *path)
    ((form, body),) = node.items()
    converter = FORMS.get(str(form))
    if converter is None:
        known = ", ".join(sorted(FORMS))
        raise options.refuse(f"filter '{form}' has no watcher equivalent (convertible: {known})", *path, form)
    return converter(options, (*path, form), body)


def _field_body(options: RuleOptions, path: Path, body: Any) -> tuple[str, Any]:
    if not isinstance(body, dict) or len(body) != 1:
        raise options.refuse(f"'{path[-1]}' takes one field, got {body!r}", *path)
    ((name, value),) = body.items()
    return str(name), value


def _scalar(options: RuleOptions, path: Path, value: Any) -> Any:
    if isinstance(value, str | int | float | bool):
        return value
    raise options.refuse(f"expected a string, number or boolean, got {value!r}", *path)


def term(options: RuleOptions, path: Path, body: Any) -> Filter:
    name, value = _field_body(options, path, body)
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    return {name: _scalar(options, (*path, name), value)}


def terms(options: RuleOptions, path: Path, body: Any) -> Filter:
    name, values = _field_body(options, path, body)
    if not isinstance(values, list) or not values:
        raise options.refuse(f"'terms' on '{name}' takes a non-empty list of values", *path, name)
    return {name: [_scalar(options, (*path, name), value) for value in values]}


def range_(options: RuleOptions, path: Path, body: Any) -> Filter:
    name, bounds = _field_body(options, path, body)
    if not isinstance(bounds, dict):
        raise options.refuse(f"'range' on '{name}' takes gte, gt, lte or lt", *path, name)
    unknown = sorted(set(bounds) - {*RANGE_OPS, *RANGE_IGNORED})
    if unknown:
        raise options.refuse(f"'range' on '{name}': {unknown[0]!r} has no watcher equivalent", *path, name)
    out = {op: bounds[op] for op in RANGE_OPS if op in bounds}
    for op, bound in out.items():
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            raise options.refuse(
                f"'range' on '{name}': {op} {bound!r} is not a number (date math and text ranges "
                "have no watcher equivalent)",
                *path,
                name,
            )
    if not out:
        raise options.refuse(f"'range' on '{name}' has no bound", *path, name)
    return {name: out}


def exists(options: RuleOptions, path: Path, body: Any) -> Filter:
    if not isinstance(body, dict) or not isinstance(body.get("field"), str):
        raise options.refuse("'exists' takes {field: NAME}", *path)
    return {body["field"]: {"exists": True}}


def query_string(options: RuleOptions, path: Path, body: Any) -> Filter:
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise options.refuse("'query_string' takes {query: TEXT}", *path)
    unknown = sorted(set(body) - {"query", *QUERY_STRING_IGNORED})
    if unknown:
        raise options.refuse(f"query_string option {unknown[0]!r} has no watcher equivalent", *path)
    try:
        parts = parse_query_string(body["query"])
    except QueryStringError as exc:
        raise options.refuse(f"query_string {body['query']!r}: {exc}", *path) from None
    options.approximated(
        f"query_string {body['query']!r}: each field:value is an exact match in watcher; "
        "Elasticsearch matches a text field's analysed words (case, stemming)",
        *path,
    )
    result = all_of(parts)
    assert result is not None
    return result


def wildcard(options: RuleOptions, path: Path, body: Any) -> Filter:
    name, pattern = _field_body(options, path, body)
    if isinstance(pattern, dict):
        pattern = pattern.get("value", pattern.get("wildcard"))
    if isinstance(pattern, str) and not any(char in pattern for char in "*?"):
        return {name: pattern}
    raise options.refuse(
        f"wildcard {pattern!r} on '{name}': watcher filters match exact values, with no pattern or "
        "prefix (only a wildcard without * or ? converts, as an exact match)",
        *path,
        name,
    )


def bool_(options: RuleOptions, path: Path, body: Any) -> Filter:
    if not isinstance(body, dict):
        raise options.refuse("'bool' takes must, filter, should and must_not", *path)
    unknown = sorted(set(body) - {"must", "filter", "should", "must_not", "minimum_should_match"})
    if unknown:
        raise options.refuse(f"bool option {unknown[0]!r} has no watcher equivalent", *path, unknown[0])
    if body.get("minimum_should_match", 1) not in (1, "1"):
        raise options.refuse(
            "bool minimum_should_match other than 1 has no watcher equivalent", *path, "minimum_should_match"
        )
    parts = [*_clauses(options, path, body, "must"), *_clauses(options, path, body, "filter")]
    should = _clauses(options, path, body, "should")
    if should:
        parts.append(should[0] if len(should) == 1 else {"or": should})
    parts += [{"not": part} for part in _clauses(options, path, body, "must_not")]
    if not parts:
        raise options.refuse("an empty 'bool' matches every document; leave it out", *path)
    result = all_of(parts)
    assert result is not None
    return result


def _clauses(options: RuleOptions, path: Path, body: dict[str, Any], occur: str) -> list[Filter]:
    items = body.get(occur) or []
    if isinstance(items, dict):
        return [clause(options, (*path, occur), items)]
    return [clause(options, (*path, occur, index), item) for index, item in enumerate(items)]


def query(options: RuleOptions, path: Path, body: Any) -> Filter:
    """The legacy wrapper ``{query: {query_string: ...}}`` (ElastAlert's old filter form)."""
    return clause(options, path, body)


FORMS: dict[str, Converter] = {
    "term": term,
    "terms": terms,
    "range": range_,
    "exists": exists,
    "query_string": query_string,
    "wildcard": wildcard,
    "bool": bool_,
    "query": query,
}
