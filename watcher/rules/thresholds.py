"""Fixed bounds of the ``threshold`` and ``flatline`` detectors, and severity levels (also a
``forecast``'s limits: ``LeveledBounds``).

A bound is a number (crossing it alerts at the rule's ``severity``) or a mapping of severity
levels to numbers, ``above: {warning: 0.02, critical: 0.05}``: the incident's severity is the most
severe level the value crosses. A more severe level must be crossed later: higher for ``above``,
lower for ``below``.
"""

from __future__ import annotations

import difflib
import itertools
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

Severity = Literal["critical", "error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error", "critical")
"""Least severe first."""

Side = Literal["above", "below"]
Levels = dict[Severity, float]


def _levels(value: Any) -> Any:
    """A mapping of levels checked here, so a misspelt level is named (not two union branches)."""
    if not isinstance(value, dict):
        return value
    for level, bound in value.items():
        if level not in SEVERITIES:
            close = difflib.get_close_matches(str(level), SEVERITIES, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (levels: {', '.join(SEVERITIES)})"
            raise ValueError(f"unknown level '{level}'{hint}")
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            raise ValueError(f"level '{level}' must be a number, got {bound!r}")
    return value


Bound = Annotated[float | Levels, BeforeValidator(_levels)]


def severity_rank(severity: str) -> int:
    """Higher is more severe; an unknown name ranks below ``info``."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LeveledBounds(_Model):
    """An ``above`` and/or ``below`` bound, each a number or severity levels: what a threshold
    judges a value by and a forecast its fitted points by. ``KIND`` names the setting in errors."""

    KIND: ClassVar[str] = "threshold"

    above_levels: Bound | None = Field(
        default=None, alias="above", description="a number, or levels: {warning: 0.02, critical: 0.05}"
    )
    below_levels: Bound | None = Field(
        default=None, alias="below", description="a number, or levels: {warning: 10, critical: 1}"
    )

    def _check_bounds(self, missing: str) -> None:
        """Raise ``missing`` without a bound; each side's levels ordered as they are crossed."""
        if self.above_levels is None and self.below_levels is None:
            raise ValueError(missing)
        _check_levels(self.KIND, "above", self.above_levels)
        _check_levels(self.KIND, "below", self.below_levels)

    @property
    def above(self) -> float | None:
        """The value the signal alerts above (the least severe level's), or None."""
        return _least_severe(self.above_levels)

    @property
    def below(self) -> float | None:
        """The value the signal alerts below (the least severe level's), or None."""
        return _least_severe(self.below_levels)

    @property
    def leveled(self) -> bool:
        """Whether every bound given names its levels (so the rule's ``severity`` plays no part)."""
        bounds = [bound for bound in (self.above_levels, self.below_levels) if bound is not None]
        return all(isinstance(bound, dict) for bound in bounds)

    def written(self, side: Side) -> float | Levels | None:
        """The bound of ``side`` as written: a number, levels, or None."""
        return self.above_levels if side == "above" else self.below_levels

    def levels(self, side: Side, default: Severity) -> list[tuple[Severity, float]]:
        """The bound of ``side`` as (level, value), most severe first; a plain number is ``default``."""
        bound = self.written(side)
        if bound is None:
            return []
        if not isinstance(bound, dict):
            return [(default, bound)]
        return sorted(bound.items(), key=lambda item: -severity_rank(item[0]))

    def alert_bound(self, default: Severity) -> float:
        """The bound shown while the signal is within bounds: the least severe level of ``above``,
        else of ``below``."""
        levels = self.levels("above", default) or self.levels("below", default)
        return levels[-1][1]


class ThresholdSpec(LeveledBounds):
    """Alert when the signal is above and/or below a fixed value. Each bound is a number (alerts at
    the rule's severity) or severity levels, e.g. ``above: {warning: 0.02, critical: 0.05}``."""

    @model_validator(mode="after")
    def _bounds(self) -> ThresholdSpec:
        self._check_bounds("threshold needs 'above' or 'below'")
        return self

    def crossed(self, value: float, default: Severity) -> tuple[Severity, float, Side] | None:
        """The most severe level ``value`` crosses: (level, its bound, side), or None."""
        above, below = self.above_levels, self.below_levels
        if not isinstance(above, dict) and not isinstance(below, dict):  # plain numbers: one level
            if above is not None and value > above:  # every group of every evaluation judged here
                return default, above, "above"
            return (default, below, "below") if below is not None and value < below else None
        found: list[tuple[Severity, float, Side]] = []
        for level, bound in self.levels("above", default):
            if value > bound:
                found.append((level, bound, "above"))
                break
        for level, bound in self.levels("below", default):
            if value < bound:
                found.append((level, bound, "below"))
                break
        return max(found, key=lambda hit: severity_rank(hit[0]), default=None)


def _least_severe(bound: float | Levels | None) -> float | None:
    if isinstance(bound, dict):
        return min(bound.items(), key=lambda item: severity_rank(item[0]))[1] if bound else None
    return bound


def _check_levels(kind: str, side: str, bound: float | Levels | None) -> None:
    if not isinstance(bound, dict):
        return
    if not bound:
        raise ValueError(f"{kind} '{side}' has no level: write {{warning: ..., critical: ...}}")
    ordered = sorted(bound.items(), key=lambda item: severity_rank(item[0]))
    for (low, low_value), (high, high_value) in itertools.pairwise(ordered):
        later = high_value > low_value if side == "above" else high_value < low_value
        if not later:
            raise ValueError(
                f"{kind} '{side}': '{high}' ({high_value:g}) must be {side} '{low}' ({low_value:g}), "
                "a more severe level is crossed later"
            )


class FlatlineSpec(_Model):
    """Alert when traffic (the document count) falls below a floor. A store error is never a flatline."""

    below: float = Field(ge=0, description="minimum number of documents expected in the window")
