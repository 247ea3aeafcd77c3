"""What a reload of the rule files changes: the next rule set, and whose incidents end.

Pure: ``merge`` compares the running rules with a fresh ``RuleSet`` and decides, rule by rule:

- **added** / **changed**: run the new version. A changed rule keeps its incidents when its
  *identity* (name, source, detector, ``group_by``) is unchanged, so raising a threshold does
  not resolve and re-fire anything; the next evaluation decides with the new settings.
- **replaced**: same name, new identity. Its incidents belonged to a different signal or other
  groups, so they are ended (``retired``) and the new version starts afresh.
- **kept**: a rule whose file now has an error keeps running its last good version. One typo
  must not silence an alert, nor resolve its incidents.
- **removed**: gone from the files (file deleted, entry removed). Its incidents are ended
  with a note, so nobody waits for a resolve that can never come.

A rule switched to ``enabled: false`` is also retired: it is no longer evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from watcher.rules.loader import RuleSet
from watcher.rules.models import Rule


def identity(rule: Rule) -> tuple[str, str, str, tuple[str, ...]]:
    """What an incident of ``rule`` is about; incidents survive edits that keep it."""
    return (rule.name, rule.source, rule.detector, rule.group_by)


@dataclass(frozen=True)
class Retired:
    """A rule whose open incidents end, and why (shown in the resolve note)."""

    name: str
    reason: str


@dataclass(frozen=True)
class RuleChanges:
    """The outcome of ``merge``: the rules to run from now on and what changed."""

    rules: list[Rule]
    files: dict[str, Path]
    errors: list[str]
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    retired: list[Retired] = field(default_factory=list)

    @property
    def removed(self) -> list[str]:
        running = {rule.name for rule in self.rules}
        return [r.name for r in self.retired if r.name not in running]

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.retired)

    def summary(self) -> str:
        parts = [
            f"{len(self.added)} added",
            f"{len(self.changed)} changed",
            f"{len(self.removed)} removed",
        ]
        if self.kept:
            parts.append(f"{len(self.kept)} kept at their last good version ({', '.join(self.kept)})")
        return f"{len(self.rules)} rules: " + ", ".join(parts)


def merge(running: Mapping[str, Rule], files: Mapping[str, Path], loaded: RuleSet) -> RuleChanges:
    """The rule set after a reload that produced ``loaded``, given the ``running`` rules and the
    file each came from."""
    broken = {error.path.resolve() for error in loaded.errors}
    fresh = {rule.name: rule for rule in loaded.rules}
    changes = RuleChanges(rules=[], files=dict(loaded.files), errors=[str(e) for e in loaded.errors])
    for rule in loaded.rules:
        _compare(running.get(rule.name), rule, changes)
    for name, old in running.items():
        if name in fresh:
            continue
        path = files.get(name)
        # A missing rule folder (an unmounted volume) is an error on the folder: its rules are kept.
        if path is not None and not broken.isdisjoint({path.resolve(), *path.resolve().parents}):
            changes.rules.append(old)
            changes.files[name] = path
            changes.kept.append(name)
        else:
            where = f" from {path}" if path is not None else ""
            changes.retired.append(Retired(name, f"rule {name} was removed{where}"))
    return changes


def _compare(old: Rule | None, new: Rule, changes: RuleChanges) -> None:
    changes.rules.append(new)
    if old is None:
        changes.added.append(new.name)
        return
    if old == new:
        return
    changes.changed.append(new.name)
    if identity(old) != identity(new):
        labels = ("name", "source", "detector", "group_by")
        what = ", ".join(k for k, a, b in zip(labels, identity(old), identity(new), strict=True) if a != b)
        reason = f"rule {new.name} changed its {what}; its incidents start over"
        changes.retired.append(Retired(new.name, reason))
    elif old.enabled and not new.enabled:
        changes.retired.append(Retired(new.name, f"rule {new.name} was disabled"))
