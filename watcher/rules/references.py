"""What the ML detectors compare a window with: a baseline profile, or earlier windows.

A ``baseline:`` is the path of a profile file (see ``watcher.baseline``), read once when the rule
is loaded so the detectors stay pure. A relative path is resolved against the ``base_dir`` in the
pydantic validation context (the rule loader passes the rule file's folder), else the working
directory. A rule can also be built in code with a ``Profile`` object in place of the path.

A ``reference:`` names earlier windows of the rule's own data (``offset`` back).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
)

from watcher.baseline import Profile, load_profile
from watcher.duration import Duration


class SpecModel(BaseModel):
    """The base of the detectors' settings: frozen, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --------------------------------------------------------------------------- baseline profiles


class BaselineRef(SpecModel):
    """A loaded profile and the path it was written as."""

    path: str
    profile: Profile
    file: Path | None = None
    """where it was read from (``path`` resolved against the rule file's folder)"""


def _load_baseline(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, BaselineRef):
        return value
    if isinstance(value, Profile):
        return BaselineRef(path=f"<{value.source}>", profile=value)
    if not isinstance(value, str | Path):
        raise ValueError("'baseline' is the path of a profile file (made by `watcher baseline build`)")
    path = Path(value)
    base_dir = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return BaselineRef(path=str(value), profile=load_profile(path), file=path)


Baseline = Annotated[
    BaselineRef,
    BeforeValidator(_load_baseline),
    PlainSerializer(lambda ref: ref.path, return_type=str),
    WithJsonSchema({"type": "string", "description": "path of a baseline profile JSON file"}),
]


# --------------------------------------------------------------------------- reference windows


class ReferenceSpec(SpecModel):
    offset: Duration = Field(description="compare with the window this much earlier, e.g. 7d")
