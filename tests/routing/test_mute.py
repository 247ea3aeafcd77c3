"""Inhibition (Alertmanager's semantics) and the one mute stage over several muters."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from watcher.config import InhibitRule
from watcher.incidents.model import Incident, State, fingerprint
from watcher.routing.mute import Inhibitor, MuteStage

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
RULE = InhibitRule.model_validate(
    {"source": {"severity": "critical"}, "target": ["severity=~warning|info"], "equal": ["model_version"]}
)


def firing(**labels: str) -> Incident:
    return Incident(
        fingerprint=fingerprint("r", labels),
        rule="r",
        group={},
        labels=labels,
        annotations={},
        severity=labels.get("severity", "warning"),
        state=State.FIRING,
        value=1.0,
        threshold=0.5,
        started_at=T0,
    )


def test_a_firing_source_inhibits_targets_with_equal_labels() -> None:
    inhibitor = Inhibitor([RULE], [firing(severity="critical", model_version="v3")])
    assert inhibitor.mutes({"severity": "warning", "model_version": "v3"})
    assert not inhibitor.mutes({"severity": "warning", "model_version": "v2"})
    assert not inhibitor.mutes({"severity": "error", "model_version": "v3"})


def test_a_label_both_lack_counts_as_equal() -> None:
    inhibitor = Inhibitor([RULE], [firing(severity="critical")])
    assert inhibitor.mutes({"severity": "info"})
    assert not inhibitor.mutes({"severity": "info", "model_version": "v1"})


def test_an_incident_does_not_inhibit_itself() -> None:
    both = InhibitRule.model_validate({"source": ["team=ml"], "target": ["team=ml"]})
    source = {"team": "ml", "rule": "a"}
    inhibitor = Inhibitor([both], [firing(**source)])
    assert not inhibitor.mutes(source)
    assert inhibitor.mutes({"team": "ml", "rule": "b"})


def test_without_firing_sources_nothing_is_inhibited() -> None:
    assert not Inhibitor([RULE], []).mutes({"severity": "warning"})


class Fixed:
    def __init__(self, muted: bool) -> None:
        self.muted = muted

    def mutes(self, labels: Mapping[str, Any]) -> bool:
        return self.muted


def test_the_mute_stage_mutes_when_any_muter_does() -> None:
    assert MuteStage([Fixed(False), Fixed(True)]).mutes({})
    assert not MuteStage([Fixed(False)]).mutes({})
    assert not MuteStage([]).mutes({})
