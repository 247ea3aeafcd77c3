"""Hot reload: when watcher.yaml or a rule file changes (or on SIGHUP), load them again.

``Reloader`` decides *when* (a settled file change, or a request) and loads; what the new rule
set is comes from ``watcher.rules.reload.merge`` (pure); ``retire`` ends the incidents of rules
that are gone, through the dispatcher, in one state transaction. The daemon applies the result
on its worker thread, between ticks, so a tick never sees half a reload.

A broken watcher.yaml changes nothing: the running config and rules stay, the errors are logged
with ``file:line:col`` and the ``watcher:rules-invalid`` meta-alert fires until a good version
is saved. A broken rule file keeps its last good rules, with the same alert. Both are read by
the loader ``watcher check`` uses, so a file that ``check`` refuses is refused the same way here.
Settings that a running daemon cannot swap (``state``, ``http``) are kept and a warning says
they apply at the next restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from watcher.config import Config
from watcher.engine import Ownership
from watcher.incidents.machine import retire
from watcher.incidents.model import OPEN, RAISED, Incident
from watcher.incidents.state import StateStore
from watcher.routing.dispatch import META_PREFIX, Dispatch, Dispatcher
from watcher.rules.loader import ConfigError, LoadError, load_config, load_rules
from watcher.rules.models import Rule
from watcher.rules.reload import Retired, RuleChanges, merge
from watcher.rules.watch import FileWatch, Stamp, snapshot
from watcher.tick_report import Transition

log = logging.getLogger("watcher.process.reload")

RESTART_ONLY = ("state", "http", "ha")
"""watcher.yaml sections a running daemon keeps: the state file is locked, the port bound, and the
replicas must agree on their partitions (``ha``: restart them all with the new one)."""


@dataclass(frozen=True)
class Reload:
    """A successful load: the config to run and the rule changes."""

    config: Config
    changes: RuleChanges
    stamps: dict[Path, Stamp] | None = None
    """the watched files as they were before the rule files were read (None: as they are now)"""


class Reloader:
    """Knows which files to watch and loads them when asked or when they changed."""

    def __init__(
        self, config_path: Path, config: Config, files: Mapping[str, Path], rules: Iterable[Rule] = ()
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.files = dict(files)
        self.requested = threading.Event()
        self.watch = FileWatch(self._watched(config, rules))

    def _watched(self, config: Config, rules: Iterable[Rule] = ()) -> list[Path]:
        """watcher.yaml, the rule files and folders, and the baseline profiles the rules read."""
        if not config.reload.watch:
            return []
        return [self.config_path, *config.rules, *baselines(rules)]

    def request(self) -> None:
        """Reload at the next poll, changed or not (SIGHUP). Safe in a signal handler."""
        self.requested.set()

    def due(self) -> bool:
        """Whether to reload now: requested, or a watched file changed and settled."""
        if self.requested.is_set():
            self.requested.clear()
            return True
        return self.watch.changed()

    def load(self, running: Mapping[str, Rule]) -> Reload:
        """Read watcher.yaml and the rules; raises ``ConfigError`` when watcher.yaml is invalid.

        The loader reports every mistake of a file as an error, whatever the file holds. Should a
        file still find a way to raise (a bug), the reload fails as for an invalid watcher.yaml
        rather than with a traceback: the running rules stay, the failure is counted, and
        ``watcher:rules-invalid`` says so."""
        try:
            return self._load(running)
        except ConfigError:
            raise
        except Exception as exc:
            log.exception("reload failed on an unexpected error")
            error = LoadError(self.config_path, 1, 1, f"reload failed: {type(exc).__name__}: {exc}")
            raise ConfigError([error]) from exc

    def _load(self, running: Mapping[str, Rule]) -> Reload:
        config = kept_restart_only(load_config(self.config_path), self.config)
        stamps = snapshot(self._watched(config, running.values()))  # first: a later save is a change
        changes = merge(running, self.files, load_rules(list(config.rules), config))
        if config.reload.watch:  # a baseline a rule starts to read now is watched from now on
            stamps.update(snapshot(set(baselines(changes.rules)) - stamps.keys()))
        return Reload(config, changes, stamps)

    def loaded(self, reload: Reload) -> None:
        """The daemon runs ``reload`` now: watch what it names from here on."""
        self.config = reload.config
        self.files = reload.changes.files
        self.watch.watch(self._watched(reload.config, reload.changes.rules), reload.stamps)


def baselines(rules: Iterable[Rule]) -> list[Path]:
    """The files rules read besides their own (``Rule.read_files``: the profiles drift and validity
    compare with, overrides files): a rebuilt baseline or an edited overrides file is a reload."""
    return sorted({path for rule in rules for path in rule.read_files()})


def kept_restart_only(new: Config, running: Config) -> Config:
    """``new`` with the running ``state``, ``http`` and ``ha`` settings, warning when they differ."""
    differ = [name for name in RESTART_ONLY if getattr(new, name) != getattr(running, name)]
    if not differ:
        return new
    log.warning("watcher.yaml: changes to %s take effect after a restart", " and ".join(differ))
    return new.model_copy(update={name: getattr(running, name) for name in RESTART_ONLY})


def retire_incidents(
    state: StateStore,
    dispatcher: Dispatcher,
    retired: Sequence[Retired],
    now: datetime,
    ownership: Ownership | None = None,
) -> list[Transition]:
    """End the open incidents of ``retired`` rules, notify the firing ones' resolve, commit.
    With ``ownership`` (replicas sharing the state), only those of rules this replica holds,
    fenced by their leases."""
    if ownership is not None:
        retired = [item for item in retired if ownership.owns(item.name)]
    reasons = {item.name: item.reason for item in retired}
    if not reasons:
        return []
    changes: list[Incident] = []
    deletes: list[str] = []
    transitions: list[Transition] = []
    for incident in state.incidents(states=OPEN):
        if incident.rule not in reasons:
            continue
        ended, events = retire(incident, now, reasons[incident.rule])
        if ended is None:
            deletes.append(incident.fingerprint)
            continue
        changes.append(ended)
        transitions += [Transition(ended, event, now) for event in events]
        log.info("incident %s of rule %s resolved: %s", ended.fingerprint, ended.rule, ended.note)
    if changes or deletes:
        fence = None if ownership is None else ownership.fence(reasons)
        dispatcher.settle(
            transitions,
            now,
            lambda dispatch: state.commit(
                changes, deletes, dispatch.notifications, writes=[dispatch.write], fence=fence
            ),
        )
    return transitions


def routes_changed(before: Config, after: Config) -> bool:
    """Whether a reload changed where incidents go: the route tree, or watcher's own alerts'
    receiver."""
    return before.route != after.route or before.meta.receiver != after.meta.receiver


def reroute_incidents(state: StateStore, dispatcher: Dispatcher, now: datetime) -> int:
    """After the routes changed: move the raised incidents to the groups of the routes they reach
    now (``Dispatcher.reroute``), in one commit, planned again if another replica wrote one of its
    groups meanwhile (every replica reloading does the same: what one wrote, the next finds done).
    Returns the groups written."""

    def commit(dispatch: Dispatch) -> None:
        if not dispatch.empty:
            state.commit(writes=[dispatch.write])

    dispatch = dispatcher.settled(lambda: dispatcher.reroute(state.incidents(states=RAISED), now), commit)
    if dispatch.groups:
        log.info("routes changed: %d group(s) rewritten for the open incidents", len(dispatch.groups))
    return len(dispatch.groups)


def orphans(state: StateStore, rules: Mapping[str, Rule]) -> list[Retired]:
    """Open incidents of rules not in ``rules`` or disabled (while watcher was stopped);
    watcher's own alerts are never orphans."""
    names = {i.rule for i in state.incidents(states=OPEN)}
    found = []
    for name in sorted(names):
        rule = rules.get(name)
        if name.startswith(META_PREFIX) or (rule is not None and rule.enabled):
            continue
        why = "is no longer defined in the rule files" if rule is None else "was disabled"
        found.append(Retired(name, f"rule {name} {why}"))
    return found
