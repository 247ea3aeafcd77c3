"""Values a detector derives from a rule's settings: once per settings object, never stale."""

from __future__ import annotations

import gc

from watcher.detect.derived import derived
from watcher.rules.ml_specs import DriftFeature


def test_a_value_is_derived_once_per_settings_object_and_anew_for_an_edited_one() -> None:
    calls: list[str] = []

    @derived
    def upper(feature: DriftFeature) -> str:
        calls.append(feature.name)
        return feature.name.upper()

    loaded = DriftFeature(name="country")
    assert [upper(loaded), upper(loaded)] == ["COUNTRY", "COUNTRY"]
    edited = DriftFeature(name="plan")  # a reload builds new settings objects
    assert upper(edited) == "PLAN"
    assert calls == ["country", "plan"]


def test_a_value_goes_with_its_settings() -> None:
    @derived
    def name(feature: DriftFeature) -> str:
        return feature.name

    for index in range(100):
        assert name(DriftFeature(name=f"f{index}")) == f"f{index}"
    gc.collect()
    assert len(name._values) <= 1  # the cache keeps nothing for settings gone
