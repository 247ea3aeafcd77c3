"""Rule settings of the document-level detectors: ``match``, ``values``, ``new_value``, ``change``.

They fire on what individual log documents hold (ElastAlert 2's ``any``, ``whitelist`` /
``blacklist``, ``new_term`` and ``change``), yet each is answered in the store like an aggregate
(``watcher.query_documents.Timeline``, ``FirstSeen``, ``Latest``): counts and distinct values come back,
never the documents. A group's matching documents make one incident with a count, grouped and
throttled like every other.

``values`` lists may sit in a file next to the rules (``deny: {file: blocked.txt}``: one value per
line, ``#`` comments), read when the rule is loaded -- a relative path against the rule file's
folder -- and watched with it, so an edited list is a reload.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, ValidationInfo, WithJsonSchema, model_validator

from watcher.duration import Duration, format_duration
from watcher.query_documents import NEW_VALUES_LIMIT, VALUES_LIMIT
from watcher.query_filters import Scalar
from watcher.rules.reader import ReadError, read_text
from watcher.rules.references import SpecModel


class MatchSpec(SpecModel):
    """Fire on the documents ``where`` matches in the window (ElastAlert 2's ``any``): one incident
    per group, with the count. ``match: {}`` fires on the first document."""

    min: int = Field(default=1, ge=1, description="matching documents in the window needed to fire")


# --------------------------------------------------------------------------- value lists


class ValueList(SpecModel):
    """Values, written inline or read from a file (``file``: the path as written)."""

    values: tuple[Scalar, ...]
    file: str | None = None
    path: Path | None = None


def _load_list(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, ValueList):
        return value
    if isinstance(value, list):
        bad = [item for item in value if not isinstance(item, str | int | float | bool)]
        if bad:
            raise ValueError(f"list entries are strings, numbers or booleans, got {bad[0]!r}")
        if not value:
            raise ValueError("the list is empty: give at least one value (or {file: name})")
        return ValueList(values=tuple(value))
    if not isinstance(value, dict) or set(value) != {"file"} or not isinstance(value["file"], str):
        raise ValueError("a list of values, or {file: name} (one value per line, # comments)")
    path = Path(value["file"])
    base_dir = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    try:
        text = read_text(path)
    except ReadError as exc:
        where = f":{exc.mark.line}:{exc.mark.col}" if exc.mark.line > 1 or exc.mark.col > 1 else ""
        raise ValueError(f"list file {value['file']}{where}: {exc.message}") from None
    entries = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    values = tuple(entry for entry in entries if entry)
    if not values:
        raise ValueError(f"list file {value['file']}: no values in it (one value per line, # comments)")
    return ValueList(values=values, file=value["file"], path=path)


ValueListRef = Annotated[
    ValueList,
    BeforeValidator(_load_list),
    PlainSerializer(lambda ref: ref.file or list(ref.values), return_type=Any),
    WithJsonSchema(
        {
            "description": "values inline, or {file: name}: one value per line, # comments",
            "anyOf": [
                {"type": "array", "items": {"type": ["string", "number", "boolean"]}, "minItems": 1},
                {
                    "type": "object",
                    "properties": {"file": {"type": "string"}},
                    "required": ["file"],
                    "additionalProperties": False,
                },
            ],
        }
    ),
]


class ValuesSpec(SpecModel):
    """Fire on documents whose ``field`` is in ``deny`` (ElastAlert 2's ``blacklist``) or not in
    ``allow`` (``whitelist``); the incident names the offending values with their counts."""

    field: str = Field(min_length=1)
    allow: ValueListRef | None = None
    deny: ValueListRef | None = None
    missing: Literal["ignore", "alert"] = Field(
        default="ignore",
        description="with 'allow': a document without the field is ignored, or alerts like a value "
        "not allowed (ElastAlert 2's ignore_null: false)",
    )

    @model_validator(mode="after")
    def _one_list(self) -> ValuesSpec:
        if (self.allow is None) == (self.deny is None):
            raise ValueError("'values' takes exactly one of 'allow' or 'deny'")
        if self.deny is not None and self.missing != "ignore":
            raise ValueError("'missing' applies to 'allow': a document without the field is never denied")
        return self

    @property
    def listed(self) -> ValueList:
        listed = self.allow or self.deny
        assert listed is not None
        return listed


# --------------------------------------------------------------------------- new values, changes


class NewValueSpec(SpecModel):
    """Fire on values of ``fields`` (their combination) in the window that the ``lookback`` before
    it never saw (ElastAlert 2's ``new_term``), with the time each was first seen."""

    fields: tuple[str, ...] = Field(min_length=1, description="the value is the combination of these")
    lookback: Duration = Field(default=timedelta(days=30), description="how far back a value counts as known")
    max_values: int = Field(
        default=NEW_VALUES_LIMIT,
        ge=1,
        description="distinct values the lookback may hold (the store buckets them all); past it the "
        "evaluation is an error, never a silent miss",
    )

    @model_validator(mode="after")
    def _check(self) -> NewValueSpec:
        if self.lookback <= timedelta(0):
            raise ValueError(f"'lookback' must be longer than 0s, got {format_duration(self.lookback)}")
        if len(set(self.fields)) != len(self.fields):
            raise ValueError("'fields' names a field twice")
        return self


class ChangeSpec(SpecModel):
    """Fire when ``field`` changes for the same key ``by`` (ElastAlert 2's ``change``): its values in
    the window against the last value before it, looked for up to ``lookback`` back."""

    field: str = Field(min_length=1)
    by: tuple[str, ...] = Field(min_length=1, description="the key (the rule's group_by)")
    lookback: Duration = Field(
        default=timedelta(days=1), description="how far back the value before the window is looked for"
    )
    max_values: int = Field(default=VALUES_LIMIT, ge=1, description="distinct values per key in a window")

    @model_validator(mode="after")
    def _check(self) -> ChangeSpec:
        if self.lookback <= timedelta(0):
            raise ValueError(f"'lookback' must be longer than 0s, got {format_duration(self.lookback)}")
        if self.field in self.by:
            raise ValueError(f"'by' is the key whose '{self.field}' changes: it cannot hold '{self.field}'")
        return self


DocumentKind = Literal["match", "values", "new_value", "change"]
DOCUMENT_KINDS: tuple[DocumentKind, ...] = ("match", "values", "new_value", "change")
