"""The filters of the backend-neutral query (``watcher.query``): the ``Filter`` AST and its YAML form.

Filters are written in rule files as plain mappings (see ``parse_filter``)::

    {service: prediction-api}                 # equals
    {status: [500, 502]}                      # in
    {status: {gte: 500, lt: 600}}             # range
    {model: {ne: baseline}}                   # not equal
    {client_id: {exists: true}}               # present and not null
    {or: [{status: 429}, {status: 503}]}      # and / or / not combinators
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

Scalar: TypeAlias = str | int | float | bool


@dataclass(frozen=True)
class Eq:
    field: str
    value: Scalar


@dataclass(frozen=True)
class In:
    field: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Range:
    field: str
    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None


@dataclass(frozen=True)
class Exists:
    field: str


@dataclass(frozen=True)
class Not:
    filter: Filter


@dataclass(frozen=True)
class And:
    filters: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    filters: tuple[Filter, ...]


Filter: TypeAlias = Eq | In | Range | Exists | Not | And | Or
MATCH_ALL: Filter = And(())

_RANGE_OPS = {"gte", "gt", "lte", "lt"}
_FIELD_OPS = _RANGE_OPS | {"eq", "ne", "in", "not_in", "exists"}


def parse_filter(spec: Any) -> Filter:
    """Turn the mapping form used in rule files into a ``Filter``; raise ``ValueError`` on bad input."""
    if spec is None:
        return MATCH_ALL
    if isinstance(spec, Eq | In | Range | Exists | Not | And | Or):
        return spec
    if not isinstance(spec, Mapping):
        raise ValueError(f"a filter must be a mapping of field: condition, got {type(spec).__name__}")
    parts = [_parse_entry(str(key), value) for key, value in spec.items()]
    return parts[0] if len(parts) == 1 else And(tuple(parts))


_OPERATOR_TEXT = re.compile(r"^\s*(>=|<=|!=|==|=|>|<)\s*(\S.*?)\s*$")
_OPERATOR_NAMES = {">=": "gte", ">": "gt", "<=": "lte", "<": "lt", "!=": "ne", "==": "eq", "=": "eq"}


def _parse_entry(key: str, value: Any) -> Filter:
    if key in ("and", "or"):
        if not isinstance(value, list) or not value:
            raise ValueError(f"'{key}' takes a non-empty list of filters")
        children = tuple(parse_filter(item) for item in value)
        return And(children) if key == "and" else Or(children)
    if key == "not":
        return Not(parse_filter(value))
    if isinstance(value, list):
        return In(key, tuple(_scalar(key, v) for v in value))
    if isinstance(value, Mapping):
        return _parse_ops(key, value)
    if isinstance(value, str) and (found := _OPERATOR_TEXT.match(value)):
        # A string is compared as text: {status: ">=500"} would match no document, silently.
        op, operand = _OPERATOR_NAMES[found.group(1)], found.group(2)
        raise ValueError(
            f"{value!r} for field {key!r} is text, not a comparison (it would only match the string "
            f"{value!r}): write {key}: {{{op}: {operand}}}"
        )
    return Eq(key, _scalar(key, value))


def _parse_ops(name: str, ops: Mapping[str, Any]) -> Filter:
    unknown = sorted(set(map(str, ops)) - _FIELD_OPS)
    if unknown:
        allowed = ", ".join(sorted(_FIELD_OPS))
        hint = ""
        if len(ops) == 1 and not isinstance(ops[unknown[0]], Mapping):
            # {inputs: {country: US}} is a nested field written as a mapping: fields use dots.
            hint = f"; for the nested field write '{name}.{unknown[0]}: {ops[unknown[0]]}'"
        raise ValueError(f"unknown operator {unknown[0]!r} for field {name!r} (allowed: {allowed}){hint}")
    parts: list[Filter] = []
    bounds = {op: _number(name, op, ops[op]) for op in _RANGE_OPS if op in ops}
    if bounds:
        parts.append(Range(name, **bounds))
    if "eq" in ops:
        parts.append(Eq(name, _scalar(name, ops["eq"])))
    if "ne" in ops:
        parts.append(Not(Eq(name, _scalar(name, ops["ne"]))))
    if "in" in ops:
        parts.append(In(name, _scalar_list(name, "in", ops["in"])))
    if "not_in" in ops:
        parts.append(Not(In(name, _scalar_list(name, "not_in", ops["not_in"]))))
    if "exists" in ops:
        if not isinstance(ops["exists"], bool):
            raise ValueError(f"'exists' for field {name!r} must be true or false")
        parts.append(Exists(name) if ops["exists"] else Not(Exists(name)))
    if not parts:
        raise ValueError(f"no condition given for field {name!r}")
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _scalar(name: str, value: Any) -> Scalar:
    if isinstance(value, str | int | float | bool):
        return value
    raise ValueError(f"value for field {name!r} must be a string, number or boolean, got {value!r}")


def _scalar_list(name: str, op: str, value: Any) -> tuple[Scalar, ...]:
    if not isinstance(value, list):
        raise ValueError(f"'{op}' for field {name!r} takes a list")
    return tuple(_scalar(name, v) for v in value)


def _number(name: str, op: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"'{op}' for field {name!r} must be a number, got {value!r}")
    return float(value)


def filter_fields(flt: Filter) -> set[str]:
    """Every field a filter reads (stores use it to extract each field once)."""
    if isinstance(flt, Eq | In | Range | Exists):
        return {flt.field}
    if isinstance(flt, Not):
        return filter_fields(flt.filter)
    out: set[str] = set()
    for child in flt.filters:
        out |= filter_fields(child)
    return out
