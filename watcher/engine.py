"""One tick of the pipeline: plan -> store -> detect -> incidents -> routing -> outbox.

The engine holds no clock: ``tick(now)`` is called by the daemon with wall time and by
``backtest`` with a simulated clock, so both run the same code. Everything a tick decides
(incident transitions, notifications, checkpoints) is written in one state transaction.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.config import Route
from watcher.detect import DETECTORS
from watcher.detect.base import Finding, Status
from watcher.incidents.machine import incident_labels, step
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification
from watcher.query import Query, QueryResult
from watcher.routing.tree import resolve
from watcher.rules.models import Rule
from watcher.schedule import DEFAULT_CATCH_UP, Due, due
from watcher.store.base import LogStore, StoreError

log = logging.getLogger("watcher.engine")


@dataclass(frozen=True)
class Transition:
    """An incident event produced by a tick (what ``backtest`` prints)."""

    incident: Incident
    event: Event
    at: datetime


@dataclass
class TickReport:
    evaluations: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # rule -> store error
    transitions: list[Transition] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    round_trips: dict[str, int] = field(default_factory=dict)  # source -> store calls


class Engine:
    """Evaluates rules against their stores and records what changed."""

    def __init__(
        self,
        rules: Sequence[Rule],
        stores: Mapping[str, LogStore],
        state: StateStore,
        route: Route,
        catch_up: timedelta = DEFAULT_CATCH_UP,
    ) -> None:
        self.route = route
        self.stores = stores
        self.state = state
        self.catch_up = catch_up
        self.rules: dict[str, Rule] = {}
        self.set_rules(rules)

    def set_rules(self, rules: Sequence[Rule]) -> None:
        """Replace the rule set (hot reload). Incidents of rules kept by name are kept."""
        self.rules = {rule.name: rule for rule in rules}

    # ------------------------------------------------------------------ the tick

    def tick(self, now: datetime) -> TickReport:
        report = TickReport()
        plan = due(self.rules.values(), now, self.state.checkpoints(), self.catch_up)
        if not plan:
            return report
        results = self._query(plan, report)
        open_incidents = {
            i.fingerprint: i for i in self.state.incidents(states=(State.PENDING, State.FIRING))
        }
        changed: dict[str, Incident] = {}
        deleted: set[str] = set()
        checkpoints: dict[str, datetime] = {}
        for item in plan:
            findings = self._findings(item, results, open_incidents)
            for finding in findings:
                self._apply(item, finding, open_incidents, changed, deleted, report)
            checkpoints[item.rule.name] = item.at
            report.evaluations += 1
        self.state.commit(
            list(changed.values()), sorted(deleted - changed.keys()), report.notifications, checkpoints
        )
        return report

    def _query(
        self, plan: Sequence[Due], report: TickReport
    ) -> dict[tuple[str, datetime], list[QueryResult]]:
        """One batched store call per source for every evaluation in the plan."""
        by_source: dict[str, list[tuple[Due, list[Query]]]] = defaultdict(list)
        for item in plan:
            detector = DETECTORS[item.rule.detector]
            by_source[item.rule.source].append((item, detector.queries(item.rule, item.at)))
        answers: dict[tuple[str, datetime], list[QueryResult]] = {}
        for source, entries in by_source.items():
            batch = [_tagged(query, item.at) for item, queries in entries for query in queries]
            results = self._evaluate(source, batch, report)
            cursor = 0
            for item, queries in entries:
                answers[(item.rule.name, item.at)] = results[cursor : cursor + len(queries)]
                cursor += len(queries)
        return answers

    def _evaluate(self, source: str, batch: list[Query], report: TickReport) -> list[QueryResult]:
        store = self.stores.get(source)
        report.round_trips[source] = report.round_trips.get(source, 0) + 1
        try:
            if store is None:
                raise StoreError(f"source {source!r} is not configured")
            return store.evaluate(batch)
        except StoreError as exc:
            log.error("store %s failed: %s", source, exc, extra={"source": source})
            return [QueryResult(query.id, error=str(exc)) for query in batch]

    def _findings(
        self,
        item: Due,
        results: Mapping[tuple[str, datetime], list[QueryResult]],
        open_incidents: Mapping[str, Incident],
    ) -> list[Finding]:
        rule = item.rule
        answers = results[(rule.name, item.at)]
        known = [i.group for i in open_incidents.values() if i.rule == rule.name]
        for answer in answers:
            if not answer.ok:
                log.error(
                    "rule %s: evaluation failed: %s", rule.name, answer.error, extra={"rule": rule.name}
                )
        return DETECTORS[rule.detector].evaluate(rule, answers, item.at, known)

    def _apply(
        self,
        item: Due,
        finding: Finding,
        open_incidents: dict[str, Incident],
        changed: dict[str, Incident],
        deleted: set[str],
        report: TickReport,
    ) -> None:
        rule = item.rule
        key = fingerprint(rule.name, finding.group)
        if finding.status is Status.ERROR:
            report.errors[rule.name] = finding.reason
        current = open_incidents.get(key)
        routes = resolve(self.route, incident_labels(rule, finding.group))
        repeat = routes[0].repeat_interval if routes else None
        updated, events = step(current, finding, rule, item.at, repeat)
        if updated is None:
            if current is not None:
                deleted.add(key)
                open_incidents.pop(key, None)
                changed.pop(key, None)
            return
        if events:
            # The state store records the same on commit; set here so a catch-up tick that
            # evaluates this rule again sees when it was last notified.
            updated = updated.evolve(last_notified_at=item.at)
        if updated != current:
            changed[key] = updated
        if updated.state is State.RESOLVED:
            open_incidents.pop(key, None)
        else:
            open_incidents[key] = updated
        for event in events:
            report.transitions.append(Transition(updated, event, item.at))
            for route in routes:
                report.notifications.append(_notification(updated, event, item.at, route.receiver))


def _tagged(query: Query, at: datetime) -> Query:
    """Query ids unique within a batch that holds several evaluation times of one rule."""
    return Query(
        id=f"{query.id}@{at.isoformat()}",
        window=query.window,
        aggregates=query.aggregates,
        where=query.where,
        group_by=query.group_by,
    )


def _notification(incident: Incident, event: Event, at: datetime, receiver: str) -> Notification:
    # The id is derived from what caused it, so re-running the same evaluation after a crash
    # produces the same id and the outbox's INSERT OR IGNORE keeps a single copy.
    started = incident.started_at.isoformat()
    raw = f"{incident.fingerprint}|{started}|{event.value}|{at.isoformat()}|{receiver}"
    return Notification(
        id=hashlib.sha256(raw.encode()).hexdigest()[:24],
        receiver=receiver,
        event=event,
        incidents=(incident,),
        created_at=at,
        thread_key=f"{incident.fingerprint}|{started}",
        group_labels=dict(incident.group),
    )
