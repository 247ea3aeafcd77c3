"""The JSON Schema of a rule file, for editors (yaml-language-server) and ``watcher schema``.

It starts from ``Rule.model_json_schema`` and corrects what pydantic cannot know: filters
(``where``, ``of``) are written as mappings, not as the dataclasses they are parsed into;
durations default to ``5m``, not ISO 8601; ``signal: count`` is a shorthand; a rule has
exactly one detector; label names have a pattern; ``groups_from`` and ``forget_after`` need
``group_by`` (their lengths against the window are the loader's to check). The schema
accepts a file holding one rule or ``rules:`` with a list of them, like the loader.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from watcher.duration import format_duration
from watcher.query_filters import And, Eq, Exists, In, Not, Or, Range
from watcher.rules.models import DETECTOR_KINDS, GROUPED_ONLY, SIGNAL_KINDS, Rule, Signal

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_FILTER_DEFS = {cls.__name__ for cls in (Eq, In, Range, Exists, Not, And, Or)}


class _RuleSchema(GenerateJsonSchema):
    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration(dft)
        return super().encode_default(dft)


def rule_json_schema() -> dict[str, Any]:
    """A JSON Schema (2020-12) that a valid rule file satisfies, in either of its two forms."""
    rule = Rule.model_json_schema(by_alias=True, schema_generator=_RuleSchema)
    defs: dict[str, Any] = rule.pop("$defs", {})
    for name in _FILTER_DEFS:
        defs.pop(name, None)
    _plain_filters(rule)
    _plain_filters(defs)
    _require_one(rule, DETECTOR_KINDS)
    _require_one(defs["Signal"], SIGNAL_KINDS)
    _exact_keys(rule)
    rule["dependentRequired"] = {name: ["group_by"] for name in GROUPED_ONLY}
    defs["Rule"] = rule
    rule["properties"]["signal"] = {
        "description": defs["Signal"].get("description", ""),
        "anyOf": [{"enum": _shorthand_signals()}, {"$ref": "#/$defs/Signal"}],
    }
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "watcher rule file",
        "description": "One rule, or 'rules:' with a list of rules.",
        "anyOf": [
            {"$ref": "#/$defs/Rule"},
            {
                "type": "object",
                "properties": {"rules": {"type": "array", "items": {"$ref": "#/$defs/Rule"}}},
                "required": ["rules"],
                "additionalProperties": False,
            },
        ],
        "$defs": defs,
    }


def _plain_filters(node: Any) -> None:
    """Replace the parsed-filter union with the mapping users write (described, not enforced)."""
    if isinstance(node, list):
        for item in node:
            _plain_filters(item)
    if not isinstance(node, dict):
        return
    refs = {ref.get("$ref", "").rsplit("/", 1)[-1] for ref in node.get("anyOf", []) if isinstance(ref, dict)}
    if refs and refs <= _FILTER_DEFS:
        del node["anyOf"]
        node["type"] = "object"
    for value in node.values():
        _plain_filters(value)


def _require_one(schema: dict[str, Any], kinds: tuple[str, ...]) -> None:
    schema["oneOf"] = [{"required": [kind]} for kind in kinds]


def _exact_keys(schema: dict[str, Any]) -> None:
    """Mappings with a key pattern (labels) accept no key outside it, as the loader does."""
    for prop in schema.get("properties", {}).values():
        if "patternProperties" in prop and "additionalProperties" not in prop:
            prop["additionalProperties"] = False


def _shorthand_signals() -> list[str]:
    """Signal kinds with no required settings, which may be written as a bare word (``signal: count``)."""
    fields = Signal.model_fields
    return [kind for kind in SIGNAL_KINDS if _no_required(fields[kind].annotation)]


def _no_required(annotation: Any) -> bool:
    for member in getattr(annotation, "__args__", (annotation,)):
        if isinstance(member, type) and hasattr(member, "model_fields"):
            return not any(info.is_required() for info in member.model_fields.values())
    return False
