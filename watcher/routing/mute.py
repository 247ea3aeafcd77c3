"""Muting: silences and inhibitions behind one ``Muter`` protocol, used by one mute stage.

A muted incident is still tracked (state machine, ``watcher incidents``); it is only left out of
notifications. The dispatcher asks the mute stage at each flush, so an incident whose silence
ends, or whose inhibiting incident resolves, is notified at its group's next flush.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from watcher.config import InhibitRule
from watcher.incidents.model import Incident
from watcher.routing.matchers import matches_all


class Muter(Protocol):
    """Anything that can mute an incident by its labels (a set of silences, the inhibitor)."""

    def mutes(self, labels: Mapping[str, str]) -> bool: ...


class MuteStage:
    """The one mute stage: an incident is muted when any of ``muters`` mutes it."""

    def __init__(self, muters: Sequence[Muter]) -> None:
        self.muters = tuple(muters)

    def mutes(self, labels: Mapping[str, str]) -> bool:
        return any(muter.mutes(labels) for muter in self.muters)


class Inhibitor:
    """Inhibition rules against the incidents firing now (Alertmanager's semantics).

    An incident matching a rule's ``target`` is muted while another firing incident matches its
    ``source`` and has the same values for the ``equal`` labels (a label both lack counts as
    equal). An incident matching both sides does not inhibit itself.
    """

    def __init__(self, rules: Sequence[InhibitRule], firing: Iterable[Incident]) -> None:
        labels = [dict(incident.labels) for incident in firing]
        self._sources = [(rule, [s for s in labels if matches_all(rule.source, s)]) for rule in rules]

    def mutes(self, labels: Mapping[str, str]) -> bool:
        return self.inhibited_by(labels) is not None

    def inhibited_by(self, labels: Mapping[str, str]) -> Mapping[str, str] | None:
        """The labels of an incident inhibiting one with ``labels``, or None."""
        for rule, sources in self._sources:
            if not sources or not matches_all(rule.target, labels):
                continue
            for source in sources:
                if source != labels and all(source.get(n, "") == labels.get(n, "") for n in rule.equal):
                    return source
        return None
