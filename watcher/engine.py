"""One tick of the pipeline: plan -> store -> detect -> incidents -> routing -> outbox.

The engine holds no clock: ``tick(now)`` is called by the daemon with wall time and by
``backtest`` with a simulated clock, so both run the same code. Everything a tick decides
(incident transitions, the dispatcher's groups and notifications, checkpoints) is written in
one state transaction.

A rule's checkpoint only moves past evaluations that got answers: when the store fails, the
rule's later windows wait and the failed one is evaluated again at the next tick (catch-up,
bounded by ``catch_up``), so incidents during a store outage are found after it, and an outage
is never taken for a flatline or a resolve.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.config import Route
from watcher.detect import DETECTORS
from watcher.detect.base import Finding, Status
from watcher.incidents.machine import step
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification
from watcher.query import Query, QueryResult
from watcher.routing.dispatch import Dispatcher
from watcher.rules.models import Rule
from watcher.schedule import DEFAULT_BACKLOG_PER_TICK, DEFAULT_CATCH_UP, Due, due
from watcher.store.base import LogStore, StoreError

log = logging.getLogger("watcher.engine")


@dataclass(frozen=True)
class Transition:
    """An incident event produced by a tick (what ``backtest`` prints)."""

    incident: Incident
    event: Event
    at: datetime


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a rule in a tick (what ``/metrics`` times and counts per rule).

    ``seconds`` is the rule's share of its source's batched store round trip (the batch's wall
    time times the rule's share of its queries) plus its own detection time; ``error`` when the
    store did not answer or the detector could not judge a group.
    """

    rule: str
    at: datetime
    seconds: float
    error: bool


@dataclass(frozen=True)
class _Answer:
    """The store's answers to one evaluation's queries, and its share of the round trip."""

    results: list[QueryResult]
    store_seconds: float


@dataclass
class TickReport:
    evaluations: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # rule -> store error
    transitions: list[Transition] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    round_trips: dict[str, int] = field(default_factory=dict)  # source -> store calls
    evaluated: list[Evaluation] = field(default_factory=list)  # one per evaluation, in plan order


class Engine:
    """Evaluates rules against their stores and records what changed."""

    def __init__(
        self,
        rules: Sequence[Rule],
        stores: Mapping[str, LogStore],
        state: StateStore,
        route: Route,
        catch_up: timedelta = DEFAULT_CATCH_UP,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        self.route = route
        self.stores = stores
        self.state = state
        self.catch_up = catch_up
        self.dispatcher = dispatcher or Dispatcher(state, route)
        self.rules: dict[str, Rule] = {}
        self.set_rules(rules)

    def set_rules(self, rules: Sequence[Rule]) -> None:
        """Replace the rule set (hot reload). Incidents of rules kept by name are kept."""
        self.rules = {rule.name: rule for rule in rules}

    # ------------------------------------------------------------------ the tick

    def tick(self, now: datetime) -> TickReport:
        report = TickReport()
        plan = due(
            self.rules.values(), now, self.state.checkpoints(), self.catch_up, DEFAULT_BACKLOG_PER_TICK
        )
        results = self._query(plan, report) if plan else {}
        open_incidents = {
            i.fingerprint: i for i in self.state.incidents(states=(State.PENDING, State.FIRING))
        }
        changed: dict[str, Incident] = {}
        deleted: set[str] = set()
        checkpoints: dict[str, datetime] = {}
        failed: set[str] = set()
        for item in plan:
            if item.rule.name in failed:
                continue  # waits for the failed earlier window, evaluated again next tick
            findings, error, seconds = self._findings(item, results, open_incidents)
            if error is None:
                checkpoints[item.rule.name] = item.at
            else:
                failed.add(item.rule.name)
                report.errors.setdefault(item.rule.name, error)
                findings = [finding for finding in findings if finding.status is Status.ERROR]
            for finding in findings:
                self._apply(item, finding, open_incidents, changed, deleted, report)
            report.evaluations += 1
            erred = error is not None or any(finding.status is Status.ERROR for finding in findings)
            report.evaluated.append(Evaluation(item.rule.name, item.at, seconds, erred))
        dispatch = self.dispatcher.plan(report.transitions, now, open_incidents)
        report.notifications = dispatch.notifications
        if plan or not dispatch.empty:
            self.state.commit(
                list(changed.values()),
                sorted(deleted - changed.keys()),
                report.notifications,
                checkpoints,
                writes=[dispatch.write],
            )
        return report

    def _query(self, plan: Sequence[Due], report: TickReport) -> dict[tuple[str, datetime], _Answer]:
        """One batched store call per source for every evaluation in the plan."""
        by_source: dict[str, list[tuple[Due, list[Query]]]] = defaultdict(list)
        for item in plan:
            detector = DETECTORS[item.rule.detector]
            by_source[item.rule.source].append((item, detector.queries(item.rule, item.at)))
        answers: dict[tuple[str, datetime], _Answer] = {}
        for source, entries in by_source.items():
            batch = [_tagged(query, item.at) for item, queries in entries for query in queries]
            started = time.perf_counter()
            results = self._evaluate(source, batch, report)
            per_query = (time.perf_counter() - started) / max(len(batch), 1)
            cursor = 0
            for item, queries in entries:
                own = results[cursor : cursor + len(queries)]
                answers[(item.rule.name, item.at)] = _Answer(own, per_query * len(queries))
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
        results: Mapping[tuple[str, datetime], _Answer],
        open_incidents: Mapping[str, Incident],
    ) -> tuple[list[Finding], str | None, float]:
        """The detector's findings, the store's error if a query was not answered, and the
        evaluation's seconds (its share of the store round trip plus detection)."""
        rule = item.rule
        share = results[(rule.name, item.at)]
        answers = share.results
        known = [i.group for i in open_incidents.values() if i.rule == rule.name]
        for answer in answers:
            if not answer.ok:
                log.error(
                    "rule %s: evaluation failed: %s", rule.name, answer.error, extra={"rule": rule.name}
                )
        started = time.perf_counter()
        findings = DETECTORS[rule.detector].evaluate(rule, answers, item.at, known)
        seconds = share.store_seconds + time.perf_counter() - started
        errors = [answer.error or "query failed" for answer in answers if not answer.ok]
        return findings, errors[0] if errors else None, seconds

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
        # The route's repeat_interval is the dispatcher's (per group); only a rule's own
        # repeat_interval makes the machine ask for an UPDATE of one incident.
        updated, events = step(current, finding, rule, item.at, None)
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


def _tagged(query: Query, at: datetime) -> Query:
    """Query ids unique within a batch that holds several evaluation times of one rule."""
    return Query(
        id=f"{query.id}@{at.isoformat()}",
        window=query.window,
        aggregates=query.aggregates,
        where=query.where,
        group_by=query.group_by,
    )
