"""Rule settings of the ``forecast`` and ``canary`` detectors.

``forecast`` extrapolates the rule's signal from its recent per-window values and alerts before it
crosses a limit; ``canary`` compares two values of a field (a new model version against the stable
one) in the same window. What they compute is ``watcher.detect.forecast`` and
``watcher.detect.canary``; the checks that need the rule's ``window`` are ``fits_window``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from watcher.duration import Duration, format_duration
from watcher.rules.ml_specs import DriftFeature, DriftMethod
from watcher.rules.references import SpecModel
from watcher.rules.thresholds import Bound, LeveledBounds

# --------------------------------------------------------------------------- forecast


class ForecastSpec(LeveledBounds):
    """Fit the signal over ``history`` (one value per rule ``window``, from one bucketed query) and
    alert when the fit crosses ``above`` (or falls to ``below``) within ``horizon``. Each limit is a
    number (alerts at the rule's ``severity``) or severity levels, as a threshold's are
    (``above: {warning: 0.8, critical: 0.95}``): the finding's severity is the most severe level the
    fit reaches within ``horizon``.

    ``method: linear`` is a least-squares line (Prometheus' ``predict_linear``); ``seasonal`` adds
    the mean shape of each ``season`` (a day's traffic curve) to a linear trend of what is left,
    and needs two seasons of history, so a daily peak is not read as a climb.
    """

    KIND: ClassVar[str] = "forecast"

    above_levels: Bound | None = Field(
        default=None, alias="above", description="alert when the forecast reaches this (a number, or levels)"
    )
    below_levels: Bound | None = Field(
        default=None, alias="below", description="alert when the forecast falls to this (a number, or levels)"
    )
    history: Duration = Field(default=timedelta(hours=6), description="past fitted, a multiple of window")
    horizon: Duration = Field(default=timedelta(hours=1), description="how far ahead a crossing alerts")
    method: Literal["linear", "seasonal"] = "linear"
    season: Duration | None = Field(default=None, description="seasonal only: 1d, 1w, 1h")
    min_points: int | None = Field(
        default=None, ge=2, description="windows with a value needed (default: half of the history's)"
    )

    @model_validator(mode="after")
    def _coherent(self) -> ForecastSpec:
        self._check_bounds("forecast needs a limit: 'above' or 'below'")
        if self.horizon <= timedelta(0):
            raise ValueError("'horizon' must be longer than 0s")
        if self.method == "seasonal" and self.season is None:
            raise ValueError("method seasonal needs 'season' (e.g. 1d)")
        if self.method == "linear" and self.season is not None:
            raise ValueError("'season' applies to method seasonal; method linear fits a line")
        if self.season is not None and self.history < 2 * self.season:
            history, season = format_duration(self.history), format_duration(self.season)
            twice = format_duration(2 * self.season)
            raise ValueError(
                f"'history' ({history}) must hold two seasons: at least {twice} for season {season}"
            )
        return self


# --------------------------------------------------------------------------- canary

NEWEST = "newest"


class CanarySpec(SpecModel):
    """Compare ``candidate`` with ``baseline``, two values of ``field``, in the rule's window.

    What is compared follows the rule's signal: a ``ratio`` (share of errors: two-proportion
    z-test), a ``percentile`` or ``stat`` of a field (a latency: Mann-Whitney U on the field's
    histogram, ``edges``), or, with ``feature``, that feature's distribution (drift between the
    two groups, scored by ``method``). The candidate is worse when the test is significant at
    ``confidence`` and the difference passes ``margin``; with fewer than ``min_samples`` documents
    in either group the verdict is "inconclusive". ``candidate: newest`` is the value of ``field``
    first seen last in the window.
    """

    field: str = Field(min_length=1, description="the field telling the groups apart (model_version)")
    baseline: str = Field(min_length=1, description="the stable value")
    candidate: str = Field(min_length=1, description="the value judged, or 'newest'")
    confidence: float = Field(default=0.95, gt=0.5, lt=1, description="e.g. 0.95: a p-value below 0.05")
    margin: float | None = Field(
        default=None,
        ge=0,
        description="ratio: share points (0.01); latency: relative (0.1 = 10% slower); feature: the "
        "drift score (default 0, 0.1, the method's warn)",
    )
    min_samples: int = Field(default=100, ge=1, description="documents needed in each group")
    edges: tuple[float, ...] | None = Field(
        default=None, description="latency bins (default: 1 to 100000 in 25% steps)"
    )
    feature: DriftFeature | None = Field(default=None, description="compare this feature's distribution")
    method: DriftMethod = "psi"

    @model_validator(mode="after")
    def _coherent(self) -> CanarySpec:
        if self.baseline == self.candidate:
            raise ValueError(f"'baseline' and 'candidate' are both {self.baseline!r}")
        if self.edges is not None and (not self.edges or list(self.edges) != sorted(set(self.edges))):
            raise ValueError("'edges' must be a non-empty increasing list")
        if self.feature is not None and self.feature.kind is None:
            raise ValueError(f"feature {self.feature.name!r} needs 'type: categorical' or numeric 'edges'")
        if self.method == "ks" and self.feature is not None and self.feature.kind == "categorical":
            raise ValueError(f"method ks compares ordered bins; feature {self.feature.name!r} is categorical")
        return self


DEFAULT_EDGES: tuple[float, ...] = tuple(round(1.25**k, 3) for k in range(52))
"""Latency bins when a canary sets none: 1 to about 110000 (ms), each 25% wider than the last."""


# --------------------------------------------------------------------------- checks needing the rule


def fits_window(
    forecast: ForecastSpec | None,
    canary: CanarySpec | None,
    window: timedelta,
    signal: str,
    group_by: tuple[str, ...] = (),
) -> str | None:
    """What is wrong with a forecast or canary given the rule's ``window``, signal kind and groups,
    or None."""
    if forecast is not None:
        for name, length in (("history", forecast.history), ("season", forecast.season)):
            if length is not None and length % window:
                wrote, each = format_duration(length), format_duration(window)
                return f"forecast '{name}' ({wrote}) must be a multiple of 'window' ({each})"
        if forecast.history < 3 * window:
            return f"forecast 'history' must hold at least 3 windows of {format_duration(window)}"
        windows = forecast.history // window
        if forecast.min_points is not None and forecast.min_points > windows:
            history, wanted = format_duration(forecast.history), forecast.min_points
            return f"'min_points' ({wanted}) is more than the {windows} windows in 'history' ({history})"
    if canary is not None and canary.field in group_by:
        return (
            f"'group_by' holds the canary's 'field' ({canary.field}), whose values the canary compares "
            "within each group: remove it from 'group_by'"
        )
    if canary is not None and canary.feature is None and signal not in ("ratio", "percentile", "stat"):
        return (
            f"'canary' compares a ratio, a percentile or a stat of a field, or a 'feature'; "
            f"the signal is {signal}"
        )
    return None
