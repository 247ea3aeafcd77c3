"""The one label matcher, shared by routes, silences and inhibition (Alertmanager's syntax).

``severity=critical``, ``team!=web``, ``model=~"v[23]"``, ``env!~dev|test``. A regex matches the
whole value (it is anchored, as in Alertmanager). A label an incident lacks has the value ``""``,
so ``team!=web`` matches incidents without a ``team`` and ``team=""`` matches exactly those.

In ``watcher.yaml`` matchers are written as a list of strings (``matchers: ["team!=web"]``) or,
where only equality is needed, as a mapping (``{severity: critical}``); ``Matchers`` accepts both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, PlainValidator, WithJsonSchema

LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SYNTAX = re.compile(r"^\s*(?P<name>[^=!~\s]+)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*$", re.S)
_FORMS = "name=value, name!=value, name=~regex or name!~regex"


class Op(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


@dataclass(frozen=True)
class Matcher:
    """One condition on one label. Build with ``Matcher.parse`` or the constructor."""

    name: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not LABEL_NAME.fullmatch(self.name):
            raise ValueError(f"invalid label name {self.name!r} in matcher {str(self)!r}")
        if self.op in (Op.REGEX, Op.NOT_REGEX):
            try:
                compiled = re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"invalid regex in matcher {str(self)!r}: {exc}") from None
            object.__setattr__(self, "_regex", compiled)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """``name<op>value``; the value may be double-quoted (``name="a b"``)."""
        found = _SYNTAX.match(text)
        if found is None:
            raise ValueError(f"invalid matcher {text!r}: expected {_FORMS}")
        value = found["value"]
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"')
        return cls(found["name"], Op(found["op"]), value)

    @classmethod
    def equal(cls, name: str, value: str) -> Matcher:
        return cls(name, Op.EQUAL, value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self.op is Op.EQUAL:
            return value == self.value
        if self.op is Op.NOT_EQUAL:
            return value != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(value) is not None
        return found if self.op is Op.REGEX else not found

    def __str__(self) -> str:
        plain = re.fullmatch(r"[^\s\"]*", self.value) is not None and self.value != ""
        return f"{self.name}{self.op.value}{self.value if plain else _quoted(self.value)}"


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '\\"') + '"'


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(matcher.matches(labels) for matcher in matchers)


def parse_matchers(value: Any) -> tuple[Matcher, ...]:
    """A list of matcher strings, or a mapping label -> exact value, as ``Matcher``s."""
    return tuple(_one(item) for item in _items(value))


def _items(value: Any) -> Any:
    """A mapping as equality matchers; a list is left to the per-item validation."""
    if isinstance(value, Mapping):
        return [Matcher.equal(str(name), _text(name, item)) for name, item in value.items()]
    if isinstance(value, list | tuple):
        return value
    raise ValueError(f"expected a list of matchers such as ['severity=critical'] or a mapping, got {value!r}")


def _one(item: Any) -> Matcher:
    if isinstance(item, Matcher):
        return item
    if not isinstance(item, str):
        raise ValueError(f"a matcher is a string such as 'severity=critical', got {item!r}")
    return Matcher.parse(item)


def _text(name: Any, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"label {name!r} must be matched against a string, got {value!r} (put it in quotes)")
    return value


_Item = Annotated[
    Matcher,
    PlainValidator(_one),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["severity=~critical|error", "team!=web"]}),
]

Matchers = Annotated[
    tuple[_Item, ...],
    BeforeValidator(_items),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "array", "items": {"type": "string"}, "examples": [["severity=~critical|error"]]},
                {"type": "object", "additionalProperties": {"type": "string"}},
            ]
        }
    ),
]
"""A pydantic field type: matchers from a list of strings (each error at its item) or an
equality mapping."""
