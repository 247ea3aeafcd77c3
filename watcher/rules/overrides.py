"""Per-group overrides: other bounds for some groups of a grouped ``threshold`` or ``flatline`` rule.

Written inline, ``overrides: [{group: {tenant: a}, threshold: {above: 500}}]``, or in a file next
to the rule, ``overrides_file: quotas.csv`` (a CSV whose header names ``group_by`` fields and the
detector's settings: ``tenant,above`` or ``tenant,above.warning,above.critical``), or a YAML list of
the inline entries. An entry's group may name some of the ``group_by`` fields; it applies to every
group with those values, and replaces the rule's whole detector setting for it. The first entry
that matches wins, inline entries before the file's; a group no entry matches uses the rule's.

The file is read when the rule is loaded (a relative path against the rule file's folder, as for
baselines) and watched with it, so an edited file is a reload.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

from watcher.rules.thresholds import SEVERITIES, FlatlineSpec, ThresholdSpec

OverridableKind = Literal["threshold", "flatline"]
OVERRIDABLE: tuple[OverridableKind, ...] = ("threshold", "flatline")
_SETTINGS: dict[OverridableKind, tuple[str, ...]] = {
    "threshold": ("above", "below", *(f"{side}.{lv}" for side in ("above", "below") for lv in SEVERITIES)),
    "flatline": ("below",),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Override(_Model):
    """The detector setting for the groups whose labels include ``group``."""

    group: dict[str, str] = Field(min_length=1, description="group_by field: value, e.g. {tenant: a}")
    threshold: ThresholdSpec | None = None
    flatline: FlatlineSpec | None = None

    @model_validator(mode="after")
    def _one_setting(self) -> Override:
        if (self.threshold is None) == (self.flatline is None):
            raise ValueError("an override sets exactly one of 'threshold' or 'flatline', as its rule does")
        return self

    @property
    def detector(self) -> OverridableKind:
        return "threshold" if self.threshold is not None else "flatline"

    def named(self) -> str:
        return ",".join(f"{key}={value}" for key, value in sorted(self.group.items()))


class OverridesFile(_Model):
    """An overrides file as read: the path as written, where it was read from, its entries."""

    path: str
    file: Path | None = None
    entries: tuple[Override, ...] = ()


def check_override(entry: Override, group_by: Sequence[str], detector: str) -> str | None:
    """What is wrong with ``entry`` for a rule grouped by ``group_by`` with ``detector``, or None."""
    if detector not in OVERRIDABLE:
        return f"'overrides' apply to threshold and flatline rules, not {detector}"
    if entry.detector != detector:
        setting = entry.detector
        return f"the override for {entry.named()} sets '{setting}' but the rule's detector is '{detector}'"
    for name in entry.group:
        if name not in group_by:
            return f"override group field '{name}' is not in group_by ({', '.join(group_by)})"
    return None


def duplicate(entries: Iterable[Override]) -> Override | None:
    """The first entry whose group an earlier entry already has."""
    seen: set[tuple[tuple[str, str], ...]] = set()
    for entry in entries:
        key = tuple(sorted(entry.group.items()))
        if key in seen:
            return entry
        seen.add(key)
    return None


@dataclass(frozen=True)
class OverrideIndex:
    """Overrides looked up by group in one dict lookup per distinct set of fields they name."""

    entries: tuple[Override, ...] = ()
    by_fields: dict[tuple[str, ...], dict[tuple[str, ...], int]] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: Sequence[Override]) -> OverrideIndex:
        by_fields: dict[tuple[str, ...], dict[tuple[str, ...], int]] = {}
        for rank, entry in enumerate(entries):
            fields = tuple(sorted(entry.group))
            by_fields.setdefault(fields, {}).setdefault(tuple(entry.group[f] for f in fields), rank)
        return cls(tuple(entries), by_fields)

    def find(self, group: Mapping[str, str]) -> Override | None:
        """The first entry whose group ``group`` includes, or None."""
        ranks = []
        for fields, values in self.by_fields.items():
            if all(name in group for name in fields):
                rank = values.get(tuple(group[name] for name in fields))
                if rank is not None:
                    ranks.append(rank)
        return self.entries[min(ranks)] if ranks else None


# --------------------------------------------------------------------------- the file


def _load(value: Any, info: ValidationInfo) -> Any:
    if value is None or isinstance(value, OverridesFile):
        return value
    if not isinstance(value, str | Path):
        raise ValueError("'overrides_file' is the path of a CSV or YAML file of overrides")
    detector = next((kind for kind in OVERRIDABLE if info.data.get(kind) is not None), None)
    if detector is None:
        others = (
            "spike",
            "drift",
            "validity",
            "forecast",
            "canary",
            "match",
            "values",
            "new_value",
            "change",
        )
        if any(info.data.get(kind) is not None for kind in others):
            raise ValueError("'overrides_file' applies to threshold and flatline rules")
        return None  # the rule's detector is itself in error: that is the mistake to report
    path = Path(value)
    base_dir = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "it is not UTF-8 text"
        raise ValueError(f"cannot read overrides file {value}: {why}") from None
    group_by = tuple(info.data.get("group_by") or ())
    read = _csv_entries if path.suffix.lower() == ".csv" else _yaml_entries
    entries = read(text, str(value), detector, group_by)
    return OverridesFile(path=str(value), file=path, entries=tuple(entries))


OverridesFileRef = Annotated[
    OverridesFile,
    BeforeValidator(_load),
    PlainSerializer(lambda ref: ref.path, return_type=str),
    WithJsonSchema(
        {"type": "string", "description": "CSV (group_by fields and settings as columns) or YAML list"}
    ),
]


def _csv_entries(text: str, name: str, detector: OverridableKind, group_by: Sequence[str]) -> list[Override]:
    rows = [(line, row) for line, row in enumerate(csv.reader(io.StringIO(text)), start=1) if any(row)]
    settings = _SETTINGS[detector]
    if not rows:
        expected = ", ".join(settings[:2])
        raise ValueError(f"{name}: empty file: the first row names group_by fields and {expected}")
    (_, header), body = rows[0], rows[1:]
    for column in header:
        if column not in group_by and column not in settings:
            fields, knobs = ", ".join(group_by), " or ".join(settings[:2])
            raise ValueError(
                f"{name}:1: unknown column '{column}': columns are group_by fields ({fields}) and {knobs}"
            )
    if not any(column in group_by for column in header):
        raise ValueError(f"{name}:1: no group_by column ({', '.join(group_by)})")
    entries = []
    for line, row in body:
        if len(row) != len(header):
            raise ValueError(f"{name}:{line}: {len(row)} cells, the header has {len(header)}")
        raw = _csv_entry(dict(zip(header, row, strict=True)), group_by, detector, name, line)
        entries.append(_validated(raw, name, line))
    return entries


def _csv_entry(
    cells: Mapping[str, str], group_by: Sequence[str], detector: str, name: str, line: int
) -> dict[str, Any]:
    group = {column: cell for column, cell in cells.items() if column in group_by and cell}
    setting: dict[str, Any] = {}
    for column, cell in cells.items():
        if column in group_by or not cell.strip():
            continue
        try:
            number = float(cell)
        except ValueError:
            raise ValueError(f"{name}:{line}: '{column}' must be a number, got {cell!r}") from None
        side, _, level = column.partition(".")
        if level:
            setting.setdefault(side, {})[level] = number
        else:
            setting[side] = number
    return {"group": group, detector: setting}


def _yaml_entries(text: str, name: str, detector: OverridableKind, group_by: Sequence[str]) -> list[Override]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{name}{where}: invalid YAML") from None
    if not isinstance(data, list):
        raise ValueError(f"{name}: expected a list of overrides ({{group: {{...}}, {detector}: {{...}}}})")
    entries = [_validated(raw, name, f"entry {rank}") for rank, raw in enumerate(data, start=1)]
    for rank, entry in enumerate(entries, start=1):
        problem = check_override(entry, group_by, detector)
        if problem:
            raise ValueError(f"{name}: entry {rank}: {problem}")
    return entries


def _validated(raw: Any, name: str, where: int | str) -> Override:
    try:
        return Override.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = "" if error["type"] == "value_error" else ".".join(str(step) for step in error["loc"])
        at = f"{name}:{where}" if isinstance(where, int) else f"{name}: {where}"
        raise ValueError(f"{at}: {loc + ': ' if loc else ''}{message}") from None
