"""A group judged once: the verdict reached for an alert's evidence, kept for the detector.

Through per-bucket partials (``watcher.store.partials``) a drift or validity rule's group is
judged before the store is asked for its evidence (the ``Condition`` that a group alerts,
``watcher.detect.evidence``), then the detector judged the very same answer again in the same
tick: drift's bins, scores and moved bins twice per group, most of a drift rule's evaluation.
``Verdicts`` keeps the first finding until the detector asks for it.

Kept by the identity of the group's values (an answer's own mapping, alive while it is kept
here, so its id is never another's) and checked against the rule object, the group and the
window: a reloaded rule, another answer or another window is judged afresh. A verdict the
detector never takes (the evaluation failed, or its window was before the data) is dropped
once ``LIMIT`` are kept, oldest first.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from watcher.detect.base import Finding
from watcher.query import Window
from watcher.rules.models import Rule

LIMIT = 4096
"""Verdicts kept at most: a tick's conditional groups, taken by the detectors in the same tick."""


class Verdicts:
    """Findings judged for a condition, taken once by the detector's evaluation of that answer."""

    def __init__(self) -> None:
        self._kept: dict[int, tuple[Mapping[str, Any], Rule, Mapping[str, str], Window, Finding]] = {}

    def keep(self, rule: Rule, group: Mapping[str, str], values: Mapping[str, Any], window: Window,
             finding: Finding) -> Finding:  # fmt: skip
        """Keep ``finding`` for the group with ``values`` in ``window``; return it."""
        if len(self._kept) >= LIMIT:
            for key in list(itertools.islice(self._kept, LIMIT // 2)):
                self._kept.pop(key, None)
        self._kept[id(values)] = (values, rule, group, window, finding)
        return finding

    def take(
        self, rule: Rule, group: Mapping[str, str], values: Mapping[str, Any], window: Window
    ) -> Finding | None:
        """The finding kept for exactly this rule, group, values and window (forgotten now), or None."""
        kept = self._kept.pop(id(values), None)
        if kept is None:
            return None
        held, judged_rule, judged_group, judged_window, finding = kept
        if held is not values or judged_rule is not rule or judged_window != window:
            return None
        return finding if judged_group is group or judged_group == group else None
