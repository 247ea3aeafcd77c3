"""Rule settings of the ML detectors: ``spike``, ``drift`` and ``validity``.

What they compare with -- a baseline profile, earlier windows -- is ``watcher.rules.references``.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from watcher.baseline import FeatureType
from watcher.duration import Duration
from watcher.rules.references import Baseline, ReferenceSpec, SpecModel
from watcher.rules.thresholds import Bound, Levels, Severity, severity_rank

# --------------------------------------------------------------------------- spike


class ZScoreSpec(SpecModel):
    """Compare with the signal's own recent history: the ``history`` windows just before the
    current one, each as long as the rule's ``window``. Robust z = (x - median) / (1.4826 * MAD).

    The history is the raw past, alerting windows included: an incident that lasts longer than
    about half the history becomes the new median and resolves. Use ``offset`` (or a threshold
    rule) for conditions that may last.
    """

    history: int = Field(default=12, ge=3, le=200, description="number of earlier windows")
    above: float = Field(default=3.5, gt=0, description="alert when |z| reaches this")
    min_history: int | None = Field(
        default=None, ge=3, description="windows with data needed (default: half of history, at least 3)"
    )

    @model_validator(mode="after")
    def _fits(self) -> ZScoreSpec:
        if self.min_history is not None and self.min_history > self.history:
            raise ValueError(f"min_history {self.min_history} is more than history {self.history}")
        return self

    @property
    def needed(self) -> int:
        return self.min_history if self.min_history is not None else max(3, self.history // 2)


class SpikeSpec(SpecModel):
    """The rule's signal against a reference. Exactly one of:

    - ``reference: {offset: 1d, count: 7, combine: median}`` -- the same signal in earlier
      windows (see ``ReferenceSpec``; ``offset: 1d`` is short for ``reference: {offset: 1d}``);
      alert when current / reference reaches ``factor`` (up) or falls to 1 / ``factor`` (down);
    - ``zscore: {history: 12, above: 3.5}`` -- the robust z-score against recent windows.

    Each compared window needs ``min_volume`` documents: a reference window with fewer is left
    out, and without the current window or any reference window the group is "not enough data".
    ``min_value`` ignores up-spikes of a signal that is still small (a 429 share going from 0.1%
    to 0.3% is a tripling, not a storm).
    """

    offset: Duration | None = Field(default=None, description="short for reference: {offset: ...}")
    reference: ReferenceSpec | None = None
    factor: float | None = Field(default=None, gt=1, description="ratio that counts as a spike (default 2)")
    zscore: ZScoreSpec | None = None
    direction: Literal["up", "down", "both"] = "up"
    min_volume: int = Field(default=100, ge=0, description="documents needed in each compared window")
    min_value: float | None = Field(default=None, description="ignore up-spikes whose value is below this")

    @model_validator(mode="after")
    def _one_mode(self) -> SpikeSpec:
        if self.offset is not None and self.reference is not None:
            raise ValueError("'offset' is short for 'reference: {offset: ...}': write one of them")
        if self.offset is not None and self.offset <= timedelta(0):
            raise ValueError("'offset' must be longer than 0s")
        if (self.references is None) == (self.zscore is None):
            raise ValueError(
                "spike needs exactly one of 'offset' or 'reference' (compare with earlier windows) "
                "or 'zscore' (compare with recent history)"
            )
        if self.zscore is not None and self.factor is not None:
            raise ValueError("'factor' applies to 'offset'; a zscore spike uses 'zscore.above'")
        return self

    @property
    def references(self) -> ReferenceSpec | None:
        """The earlier windows compared with (``offset`` alone is one window), None in zscore mode."""
        if self.offset is not None:
            return ReferenceSpec(offset=self.offset)
        return self.reference

    @property
    def ratio(self) -> float:
        return self.factor if self.factor is not None else 2.0


# --------------------------------------------------------------------------- drift

DriftMethod = Literal["psi", "js", "kl", "ks", "chi2"]
DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = {
    "psi": (0.1, 0.25),  # the industry rule of thumb
    "js": (0.1, 0.2),  # JS distance, base 2, in [0, 1]
    "kl": (0.1, 0.25),  # nats
    "ks": (0.1, 0.2),  # KS statistic D
    "chi2": (0.1, 0.25),  # Cramer's V: small / medium effect
}

DEFAULT_SIGNIFICANCE = 0.01  # a normal window crosses a level through noise at most this often, per feature


class DriftFeature(SpecModel):
    """A feature to compare. Written as its field name; the mapping form declares what a baseline
    would otherwise tell: ``{name: country, type: categorical}``, ``{name: age, edges: [18, 30, 50]}``."""

    name: str = Field(min_length=1)
    type: FeatureType | None = None
    edges: tuple[float, ...] | None = Field(default=None, description="numeric bin edges, increasing")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """The schema admits the bare field name too, as the loader does."""
        return {"anyOf": [{"type": "string", "minLength": 1}, handler(schema)]}

    @model_validator(mode="after")
    def _edges(self) -> DriftFeature:
        if self.edges is not None:
            if self.type == "categorical":
                raise ValueError(f"feature {self.name!r}: a categorical feature has no 'edges'")
            if not self.edges or any(b <= a for a, b in itertools.pairwise(self.edges)):
                raise ValueError(f"feature {self.name!r}: 'edges' must be a non-empty increasing list")
        return self

    @property
    def kind(self) -> FeatureType | None:
        return "numeric" if self.edges is not None else self.type


class DriftSpec(SpecModel):
    """Feature distributions in the window against a ``baseline`` profile, or against the same
    features in ``reference`` windows (``{offset: 7d}``, or several combined per bin:
    ``{offset: 1d, count: 7, combine: median}``). With both, the reference windows supply the counts
    and the profile the bins. Scores per ``method`` (higher = more drift; see
    ``watcher.detect.stats``); a feature at ``warn`` alerts, at ``critical`` the finding says so,
    and either level counts only when the shift is also significant: its test's p-value below
    ``significance`` (``watcher.detect.stats.shift_p_value`` for psi, js and kl; ks and chi2 use
    their own), so a small window's sampling noise is no drift. A feature with fewer than
    ``min_samples`` values is "not enough data".
    """

    baseline: Baseline | None = None
    reference: ReferenceSpec | None = None
    features: tuple[DriftFeature, ...] = Field(default=(), description="default: every baseline feature")
    method: DriftMethod = "psi"
    warn: float | None = Field(default=None, gt=0, description="default per method (psi: 0.1)")
    critical: float | None = Field(default=None, gt=0, description="default per method (psi: 0.25)")
    min_samples: int = Field(default=1000, ge=1)
    significance: float | None = Field(
        default=DEFAULT_SIGNIFICANCE,
        gt=0,
        lt=1,
        description="a level counts only when the shift's p-value is below this (null: every level counts)",
    )
    top_bins: int = Field(default=3, ge=1, le=20, description="bins that moved most, named per feature")

    @model_validator(mode="after")
    def _coherent(self) -> DriftSpec:
        if self.baseline is None and self.reference is None:
            raise ValueError(
                "drift needs 'baseline' (a profile file), 'reference: {offset: ...}' "
                "(an earlier window), or both"
            )
        if not self.features and self.baseline is None:
            raise ValueError("drift needs 'features' when there is no baseline")
        for feature in self.resolved_features():
            self._check_feature(feature)
        warn, critical = self.thresholds
        if critical < warn:
            raise ValueError(f"'critical' ({critical:g}) is below 'warn' ({warn:g})")
        return self

    def _check_feature(self, feature: DriftFeature) -> None:
        profile = self.baseline.profile if self.baseline else None
        known = profile is not None and feature.name in profile.features
        if self.reference is None and not known:
            assert self.baseline is not None
            names = ", ".join(sorted(self.baseline.profile.features)) or "none"
            raise ValueError(
                f"feature {feature.name!r} is not in baseline {self.baseline.path} (it has: {names})"
            )
        if feature.kind is None:
            raise ValueError(
                f"feature {feature.name!r} needs 'type: categorical' or numeric 'edges' "
                "(or a baseline that has it)"
            )
        if feature.kind == "numeric" and not feature.edges:
            raise ValueError(f"numeric feature {feature.name!r} has no bins: its baseline has no values")
        if self.method == "ks" and feature.kind == "categorical":
            raise ValueError(
                f"method ks compares ordered bins; feature {feature.name!r} is categorical "
                "(use psi, js, kl or chi2)"
            )

    def resolved_features(self) -> list[DriftFeature]:
        """The features with type and numeric edges filled in from the baseline."""
        profile = self.baseline.profile if self.baseline else None
        declared = self.features or tuple(
            DriftFeature(name=name) for name in (profile.features if profile else ())
        )
        resolved = []
        for feature in declared:
            stored = profile.features.get(feature.name) if profile else None
            if stored is not None and feature.kind is None:
                edges = stored.edges if stored.type == "numeric" else None
                feature = DriftFeature(name=feature.name, type=stored.type, edges=edges)
            resolved.append(feature)
        return resolved

    @property
    def thresholds(self) -> tuple[float, float]:
        """(warn, critical), defaults per method."""
        warn, critical = DEFAULT_THRESHOLDS[self.method]
        return (
            self.warn if self.warn is not None else warn,
            self.critical if self.critical is not None else critical,
        )


# --------------------------------------------------------------------------- validity


class Bounds(SpecModel):
    """Explicit valid range of a numeric feature (inclusive)."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if self.min is None and self.max is None:
            raise ValueError("bounds need 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"bounds min {self.min:g} is above max {self.max:g}")
        return self


ValidityCheck = Literal["unseen", "missing", "out_of_range"]
SHARE_LEVELS = "a share, or levels: {warning: 0.01, critical: 0.05}"


class ValiditySpec(SpecModel):
    """Checks of each feature's values in the window; a group alerts when any share is over its limit.

    - ``unseen_share_above``: share of present values of a categorical feature not among the
      baseline's values, counted exactly in the store;
    - ``missing_share_above``: the margin the missing share may exceed the baseline's missing rate
      by (without a baseline: the missing share itself);
    - ``out_of_range_share_above``: share of present numeric values outside ``bounds`` (else the
      baseline's p0.1 .. p99.9, which by construction leaves ~0.2% outside).

    Each limit is a share (crossing it alerts at the rule's ``severity``) or severity levels,
    ``{warning: 0.01, critical: 0.05}``: the finding's severity is the most severe level any check
    crosses. A check set to null is off. Fewer than ``min_samples`` documents is "not enough data".
    """

    baseline: Baseline | None = None
    features: tuple[str, ...] = Field(
        default=(), description="default: every baseline feature and bounds key"
    )
    unseen_levels: Bound | None = Field(default=0.01, alias="unseen_share_above", description=SHARE_LEVELS)
    missing_levels: Bound | None = Field(default=0.05, alias="missing_share_above", description=SHARE_LEVELS)
    out_of_range_levels: Bound | None = Field(
        default=0.01, alias="out_of_range_share_above", description=SHARE_LEVELS
    )
    bounds: dict[str, Bounds] = Field(default_factory=dict)
    min_samples: int = Field(default=100, ge=1)
    top_values: int = Field(default=5, ge=0, le=50, description="unseen values named in the incident")

    @model_validator(mode="after")
    def _coherent(self) -> ValiditySpec:
        checks = (self.unseen_share_above, self.missing_share_above, self.out_of_range_share_above)
        if all(check is None for check in checks):
            raise ValueError(
                "validity needs at least one of unseen_share_above, missing_share_above, "
                "out_of_range_share_above"
            )
        for check in ("unseen", "missing", "out_of_range"):
            _check_share_levels(f"{check}_share_above", self.limit(check))
        if not self.checked_features():
            raise ValueError("validity needs 'baseline', or 'features' / 'bounds' to check")
        if self.baseline is not None:
            profile = self.baseline.profile
            for name in self.checked_features():
                if name not in profile.features and name not in self.bounds:
                    have = ", ".join(sorted(profile.features)) or "none"
                    raise ValueError(
                        f"feature {name!r} is not in baseline {self.baseline.path} "
                        f"(it has: {have}) and has no bounds"
                    )
        return self

    def checked_features(self) -> list[str]:
        if self.features:
            return list(self.features)
        names = list(self.baseline.profile.features) if self.baseline else []
        return names + [name for name in self.bounds if name not in names]

    @property
    def unseen_share_above(self) -> float | None:
        """The share of unseen values that alerts (the least severe level's), or None (off)."""
        return _least(self.levels("unseen", "warning"))

    @property
    def missing_share_above(self) -> float | None:
        """The missing share's margin that alerts (the least severe level's), or None (off)."""
        return _least(self.levels("missing", "warning"))

    @property
    def out_of_range_share_above(self) -> float | None:
        """The share out of range that alerts (the least severe level's), or None (off)."""
        return _least(self.levels("out_of_range", "warning"))

    def limit(self, check: ValidityCheck) -> float | Levels | None:
        """The limit of ``check`` as written: a share, levels, or None (off)."""
        return {
            "unseen": self.unseen_levels,
            "missing": self.missing_levels,
            "out_of_range": self.out_of_range_levels,
        }[check]

    def levels(self, check: ValidityCheck, default: Severity) -> list[tuple[Severity, float]]:
        """The limit of ``check`` as (level, share), most severe first; a plain share is ``default``."""
        limit = self.limit(check)
        if limit is None:
            return []
        if not isinstance(limit, dict):
            return [(default, limit)]
        return sorted(limit.items(), key=lambda item: -severity_rank(item[0]))


def _least(levels: list[tuple[Severity, float]]) -> float | None:
    return levels[-1][1] if levels else None


def _check_share_levels(name: str, limit: float | Levels | None) -> None:
    """Shares within 0..1; a more severe level is a larger share."""
    if limit is None:
        return
    levels = limit if isinstance(limit, dict) else {"share": limit}
    if not levels:
        raise ValueError(f"'{name}' has no level: write {{warning: ..., critical: ...}}")
    for level, share in levels.items():
        if not 0 <= share <= 1:
            where = f"'{name}'" if level == "share" else f"'{name}' level '{level}'"
            raise ValueError(f"{where} must be a share between 0 and 1, got {share:g}")
    ordered = sorted(levels.items(), key=lambda item: severity_rank(item[0]))
    for (low, low_share), (high, high_share) in itertools.pairwise(ordered):
        if high_share <= low_share:
            raise ValueError(
                f"'{name}': '{high}' ({high_share:g}) must be above '{low}' ({low_share:g}), "
                "a more severe level is crossed later"
            )
