"""What the ML detectors compare a window with: a baseline profile, or earlier windows.

A ``baseline:`` is the path of a profile file (see ``watcher.baseline``), read once when the rule
is loaded so the detectors stay pure. A relative path is resolved against the ``base_dir`` in the
pydantic validation context (the rule loader passes the rule file's folder), else the working
directory. A rule can also be built in code with a ``Profile`` object in place of the path.

A ``reference:`` names earlier windows of the rule's own data (``offset`` back).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
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


Combine = Literal["median", "mean"]
MAX_REFERENCE_WINDOWS = 60


class ReferenceSpec(SpecModel):
    """Earlier windows of the rule's own data: ``offset``, 2 x ``offset``, ... ``count`` x
    ``offset`` back, each as long as the rule's ``window``, combined by ``combine`` (spike: the
    signal's value per window; drift: each bin's count). A window that overlaps an incident of
    the same rule and group, a source's ``gaps`` or the time before the first log line is left
    out (``watcher.detect.references``); the median shrugs off one abnormal window of several,
    the mean does not.
    """

    offset: Duration = Field(description="compare with the window this much earlier, e.g. 7d")
    count: int = Field(
        default=1, ge=1, le=MAX_REFERENCE_WINDOWS, description="earlier windows, offset apart (default 1)"
    )
    combine: Combine = Field(default="median", description="how the windows are combined: median or mean")

    @model_validator(mode="after")
    def _positive(self) -> ReferenceSpec:
        if self.offset <= timedelta(0):
            raise ValueError("'offset' must be longer than 0s")
        return self

    def shifts(self) -> list[timedelta]:
        """How far back each reference window is, nearest first."""
        return [k * self.offset for k in range(1, self.count + 1)]
