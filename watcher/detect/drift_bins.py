"""A drift rule's bins: what each feature's bins owe to the rule alone (``feature_bins``, derived
once per rule) and a window's counts aligned with its reference's in them (``binned``): a
numeric feature's histogram, a profile's categories plus ``__other__``, or, without a profile,
the values either window's ``Terms`` returned."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from watcher.baseline import OTHER, CategoricalFeature, NumericFeature
from watcher.baseline_slots import expected_counts
from watcher.detect.derived import derived
from watcher.query import AggValue, Window
from watcher.rules.ml_specs import DriftFeature, DriftSpec

COUNT = "count"
NEW_VALUES_SHOWN = 5
Values = Mapping[str, AggValue]


def profile_entry(spec: DriftSpec, name: str) -> NumericFeature | CategoricalFeature | None:
    return spec.baseline.profile.features.get(name) if spec.baseline is not None else None


@derived
def drift_features(spec: DriftSpec) -> tuple[DriftFeature, ...]:
    return tuple(spec.resolved_features())


@dataclass(frozen=True)
class FeatureBins:
    """What one feature's bins owe to the rule alone (``derived`` once per rule, not at every
    evaluation): the feature, its profile entry, its bins' labels, the profile's counts in them
    (a whole-range profile's reference) and the values the profile knows."""

    feature: DriftFeature
    stored: NumericFeature | CategoricalFeature | None
    labels: tuple[str, ...] = ()
    profile: tuple[float, ...] = ()
    known: frozenset[str] = frozenset()


@derived
def feature_bins(spec: DriftSpec) -> tuple[FeatureBins, ...]:
    bins = []
    for feature in drift_features(spec):
        stored = profile_entry(spec, feature.name)
        if feature.edges is not None:
            numeric = stored if isinstance(stored, NumericFeature) else None
            labels = bin_labels(feature.edges, maximum=numeric.max if numeric is not None else None)
            profile = tuple(numeric.bin_counts()) if numeric is not None else ()
            bins.append(FeatureBins(feature, stored, tuple(labels), profile))
        elif isinstance(stored, CategoricalFeature):
            labels = [*stored.categories, OTHER]
            profile = tuple(stored.shares.get(label, 0.0) * stored.count for label in labels)
            known = frozenset(stored.values or stored.categories)
            bins.append(FeatureBins(feature, stored, tuple(labels), profile, known))
        else:
            bins.append(FeatureBins(feature, stored))
    return tuple(bins)


@dataclass(frozen=True)
class Binned:
    """One feature's counts in aligned bins, reference and current."""

    labels: Sequence[str]
    reference: Sequence[float]
    current: list[float]
    new_values: dict[str, int] = field(default_factory=dict)


def binned(
    spec: DriftSpec,
    bins: FeatureBins,
    values: Values,
    earlier: Values | None,
    window: Window | None = None,
) -> Binned:
    """Align the current window's counts with the reference's (earlier window, or profile: the
    slots of ``window`` in a seasonal one)."""
    feature, stored, labels = bins.feature, bins.stored, bins.labels
    seasonal = _seasonal(spec, feature.name, window) if earlier is None else None
    if feature.edges is not None:
        current = _histogram(values, feature.name, len(labels))
        if earlier is not None:
            return Binned(labels, _histogram(earlier, feature.name, len(labels)), current)
        assert isinstance(stored, NumericFeature)
        return Binned(labels, seasonal or bins.profile, current)
    if isinstance(stored, CategoricalFeature):
        categories = len(labels) - 1  # the last is OTHER
        current = _profile_categories(values, feature.name, categories)
        if earlier is not None:
            reference: Sequence[float] = _profile_categories(earlier, feature.name, categories)
        else:
            reference = seasonal or bins.profile
        return Binned(labels, reference, current, _new_values(values, feature.name, bins.known))
    terms, old_terms = _terms(values, feature.name), _terms(earlier or {}, feature.name)
    names = sorted(old_terms.keys() | terms.keys(), key=lambda v: (-old_terms.get(v, 0), v))
    reference = _window_categories(earlier or {}, feature.name, old_terms, names)
    return Binned([*names, OTHER], reference, _window_categories(values, feature.name, terms, names))


def _seasonal(spec: DriftSpec, name: str, window: Window | None) -> list[float] | None:
    """The expected counts of ``window``'s slots, when the profile is seasonal."""
    profile = spec.baseline.profile if spec.baseline is not None else None
    if profile is None or profile.slots is None or profile.by is None or window is None:
        return None
    return expected_counts(profile.slots, name, window, profile.by)


def _present(values: Values, name: str) -> int:
    count, missing = values.get(COUNT, 0), values.get(f"{name}/missing", 0)
    return int(count) - int(missing) if isinstance(count, int) and isinstance(missing, int) else 0


def _profile_categories(values: Values, name: str, size: int) -> list[float]:
    counts = []
    for index in range(size):
        count = values.get(f"{name}/category{index}", 0)
        counts.append(float(count) if isinstance(count, int | float) else 0.0)
    return [*counts, float(max(_present(values, name) - sum(counts), 0))]


def _new_values(values: Values, name: str, known: frozenset[str]) -> dict[str, int]:
    new = sorted(
        ((v, c) for v, c in _terms(values, name).items() if v not in known), key=lambda item: -item[1]
    )
    return dict(new[:NEW_VALUES_SHOWN])


def _terms(values: Values, name: str) -> dict[str, int]:
    raw = values.get(f"{name}/terms")
    if not isinstance(raw, dict):
        return {}
    return {str(k): int(v) for k, v in raw.items() if isinstance(v, int | float)}


def _window_categories(
    values: Values, name: str, terms: Mapping[str, int], names: Sequence[str]
) -> list[float]:
    counts = [float(terms.get(label, 0)) for label in names]
    present = max(_present(values, name), sum(terms.values()))
    return [*counts, float(max(present - sum(counts), 0))]


def _histogram(values: Values, name: str, size: int) -> list[float]:
    counts = values.get(f"{name}/bins")
    if not isinstance(counts, list):
        return [0.0] * size
    if len(counts) != size:
        raise ValueError(f"store returned {len(counts)} bins for {name!r}, expected {size}")
    return [float(c) for c in counts]


def bin_labels(edges: Sequence[float], *, maximum: float | None = None) -> list[str]:
    """``< e0``, ``[e0, e1)``, ..., ``>= ek`` -- the ``Histogram`` buckets, as users read them.
    A built profile's last edge sits one float above the baseline ``maximum`` (see
    ``decile_edges``): then the last bin reads ``[e, max]`` and the overflow ``> max``."""
    labels = [f"< {edges[0]:g}"] + [f"[{low:g}, {high:g})" for low, high in itertools.pairwise(edges)]
    if maximum is None or edges[-1] != math.nextafter(maximum, math.inf):
        return [*labels, f">= {edges[-1]:g}"]
    if len(edges) > 1:
        labels[-1] = f"[{edges[-2]:g}, {maximum:g}]"
    return [*labels, f"> {maximum:g}"]
