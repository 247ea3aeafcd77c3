"""How pydantic errors become messages at positions, for shapes the rule models do not have yet."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from watcher.rules.diagnostics import explain
from watcher.rules.positions import parse


class Knob(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: int


class Panel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int | str = 0
    knob: Knob | str = "default"
    knobs: dict[str, Knob] = {}


def _explain(text: str) -> list[str]:
    located = parse(text)
    try:
        Panel.model_validate(located.data)
    except ValidationError as exc:
        return [f"{p.mark.line}:{p.mark.col}: {p.message}" for p in explain(exc, Panel, located)]
    return []


def test_a_union_failing_on_type_alone_names_every_type() -> None:
    assert _explain("size: [1, 2]\n") == ["1:7: 'size' must be an integer or a string, got a list"]


def test_a_union_reports_only_the_branch_that_got_furthest() -> None:
    assert _explain("knob:\n  level: high\n") == ["2:10: 'knob.level' must be an integer, got 'high'"]


def test_unknown_keys_inside_a_union_branch_are_suggested_from_that_branch() -> None:
    assert _explain("knob: {levl: 3}\n") == [
        "1:1: missing required key 'level'",
        "1:8: unknown key 'levl' (did you mean 'level'?)",
    ]


def test_models_inside_mappings_are_walked_by_key() -> None:
    assert _explain("knobs:\n  volume: {level: 1, lvl: 2}\n") == [
        "2:22: unknown key 'lvl' (did you mean 'level'?)"
    ]
