"""One tick of the pipeline: plan -> store -> detect -> incidents -> routing -> outbox.

The engine holds no clock: ``tick(now)`` is called by the daemon with wall time and by
``backtest`` with a simulated clock, so both run the same code. Everything a tick decides
(incident transitions, the dispatcher's groups and notifications, checkpoints) is written in
one state transaction.

A rule's checkpoint only moves past evaluations that got answers: when the store fails, the
rule's later windows wait and the failed one is evaluated again at the next tick (catch-up,
bounded by ``catch_up``), so incidents during a store outage are found after it, and an outage
is never taken for a flatline or a resolve.

A grouped rule also judges the groups it knows but the answer lacks (``watcher.detect.known``):
a group seen recently (``groups_from``) or with an open incident is evaluated as empty, and one
silent for ``forget_after`` is forgotten and its incident resolved with a note.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from watcher.config import Gap, Route
from watcher.detect import DETECTORS
from watcher.detect.base import Finding, Status
from watcher.detect.evidence import evidence_query, with_evidence
from watcher.detect.known import Known, KnownGroups, forgotten_note
from watcher.detect.references import Exclusions, overlapping_incidents, reference_windows
from watcher.incidents.episodes import Episode
from watcher.incidents.machine import retire, step
from watcher.incidents.model import OPEN, Event, Incident, State, fingerprint
from watcher.incidents.retention import forget_old, forgetting
from watcher.incidents.state import StateStore, Write
from watcher.query import Query, QueryResult, Window
from watcher.routing.dispatch import Dispatch, Dispatcher
from watcher.rules.models import Rule
from watcher.schedule import DEFAULT_BACKLOG_PER_TICK, DEFAULT_CATCH_UP, Due, due
from watcher.store.base import LogStore, StoreError
from watcher.store.coverage import Coverage
from watcher.store.partials import Partials
from watcher.tick_report import Evaluation, TickReport, Transition

READ_AHEAD = timedelta(hours=6)
"""How far a backtest reads each rule's buckets ahead of its clock: a few statements per day."""

log = logging.getLogger("watcher.engine")


@dataclass(frozen=True)
class _Answer:
    """The store's answers to one evaluation's queries, its share of the round trip, and the
    answers to the rule's known-groups lookback and to its evidence when they were sent with it."""

    queries: list[Query]
    results: list[QueryResult]
    store_seconds: float
    seed: QueryResult | None = None
    evidence: QueryResult | None = None


@dataclass(frozen=True)
class _Outcome:
    """One evaluation: the detector's findings, the groups it forgot, the store's error if a
    query was not answered, and its seconds (its share of the store round trip plus detection)."""

    findings: list[Finding]
    known: Known
    error: str | None
    seconds: float


class Ownership(Protocol):
    """Which rules this process evaluates when replicas share the state, and the write that
    refuses the tick if their leases moved on (``watcher.process.partitions.Replica``)."""

    def owns(self, rule: str) -> bool: ...

    def fence(self, rules: Collection[str]) -> Write: ...


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
        partials: bool | Callable[[LogStore], bool] = True,
        gaps: Mapping[str, Sequence[Gap]] | None = None,
        evidence: bool = True,
    ) -> None:
        self.route = route
        self.evidence = evidence  # sample documents with alerts (False: a backtest that prints no alert)
        self.stores = stores
        self.gaps = gaps or {}  # per source (``Config.gaps``): reference windows there are left out
        self.partials = partials
        self._partials: dict[str, Partials] = {}
        self._coverage = Coverage(stores)
        self._read_ahead: tuple[timedelta, datetime | None] = (timedelta(0), None)
        self.state = state
        self.catch_up = catch_up
        self.dispatcher = dispatcher or Dispatcher(state, route)
        self.rules: dict[str, Rule] = {}
        self.known = KnownGroups()
        self._forgotten_at: datetime | None = None  # the tick that last ran ``forget_old``
        self.set_rules(rules)

    def set_rules(self, rules: Sequence[Rule]) -> None:
        """Replace the rule set (hot reload). Incidents of rules kept by name are kept; the known
        groups of rules that did not change too (a new or edited rule's are looked up again)."""
        self.rules = {rule.name: rule for rule in rules}
        self.known.set_rules(rules)

    def read_ahead(self, until: datetime, stretch: timedelta = READ_AHEAD) -> None:
        """Replay mode: each fetch of a rule's buckets reads up to ``stretch`` further, not past
        ``until`` (the end of the backtest), so the store answers many ticks per statement."""
        self._read_ahead = (stretch, until)
        self._partials.clear()

    # ------------------------------------------------------------------ the tick

    def tick(self, now: datetime, ownership: Ownership | None = None) -> TickReport:
        """Evaluate the rules due at ``now`` (with ``ownership``, only the rules this replica
        holds, their writes fenced by its leases) and commit what changed in one transaction."""
        report = TickReport()
        rules = [r for r in self.rules.values() if ownership is None or ownership.owns(r.name)]
        plan = due(rules, now, self.state.checkpoints(), self.catch_up, DEFAULT_BACKLOG_PER_TICK)
        results = self._query(plan, report) if plan else {}
        self._coverage = Coverage(self.stores, self.gaps)  # asked once per source per tick, when needed
        episodes = self._episodes(plan)
        changes = _Changes({i.fingerprint: i for i in self.state.incidents(states=OPEN)}, report)
        changes.ended = {i.fingerprint: i for i in self._may_flap(plan)}
        checkpoints: dict[str, datetime] = {}
        failed: set[str] = set()
        for item in plan:
            if item.rule.name in failed:
                continue  # waits for the failed earlier window, evaluated again next tick
            outcome = self._findings(item, results, changes.open, episodes)
            findings, error = outcome.findings, outcome.error
            if error is None:
                checkpoints[item.rule.name] = item.at
                for group in outcome.known.forgotten:
                    changes.retire(item, group)
            else:
                failed.add(item.rule.name)
                report.errors.setdefault(item.rule.name, error)
                findings = [finding for finding in findings if finding.status is Status.ERROR]
            for finding in findings:
                changes.apply(item, finding)
            report.evaluations += 1
            erred = error is not None or any(finding.status is Status.ERROR for finding in findings)
            report.evaluated.append(
                Evaluation(item.rule.name, item.at, outcome.seconds, erred, tuple(findings))
            )
        fence = None if ownership is None else ownership.fence({item.rule.name for item in plan})
        forgets = forgetting(self._forgotten_at, now)

        def commit(dispatch: Dispatch) -> None:
            if plan or not dispatch.empty:
                self.state.commit(
                    list(changes.changed.values()),
                    sorted(changes.deleted - changes.changed.keys()),
                    dispatch.notifications,
                    checkpoints,
                    writes=[dispatch.write, *([lambda db: forget_old(db, now)] if forgets else [])],
                    fence=fence,
                    durable=False,  # flushed to disk only with a notification: watcher.state.sqlite
                )

        dispatch = self.dispatcher.settle(report.transitions, now, commit, changes.open)
        report.notifications = dispatch.notifications
        if forgets and (plan or not dispatch.empty):  # committed
            self._forgotten_at = now
        report.open = changes.open
        return report

    def _query(self, plan: Sequence[Due], report: TickReport) -> dict[tuple[str, datetime], _Answer]:
        """One batched store call per source for every evaluation in the plan, with the known-groups
        lookback of each rule that needs one sent along with its first evaluation."""
        by_source: dict[str, list[tuple[Due, list[Query], tuple[Query | None, Query | None]]]] = defaultdict(
            list
        )
        looked_back: set[str] = set()
        for item in plan:
            rule = item.rule
            suffix = f"@{item.at.isoformat()}"
            asked = DETECTORS[rule.detector].queries(rule, item.at)
            queries = [_tagged(q, suffix, rule.every) for q in asked]
            seed = None if rule.name in looked_back else self.known.seed_query(rule, item.at)
            looked_back.add(rule.name)
            evidence = evidence_query(rule, queries, item.at) if self.evidence else None
            # Answers for the engine, not the detector: the known-groups lookback and the evidence.
            # No ``every`` on the evidence: documents have no partials, so it is asked as it is.
            extras = (seed, None if evidence is None else _tagged(evidence, suffix, None))
            by_source[rule.source].append((item, queries, extras))
        answers: dict[tuple[str, datetime], _Answer] = {}
        for source, entries in by_source.items():
            batch = [q for _, queries, extras in entries for q in [*queries, *extras] if q is not None]
            started = time.perf_counter()
            results = iter(self._evaluate(source, batch, report))
            per_query = (time.perf_counter() - started) / max(len(batch), 1)
            for item, queries, extras in entries:
                own = [next(results) for _ in queries]
                seeded, shown = (None if q is None else next(results) for q in extras)
                share = per_query * (len(queries) + sum(q is not None for q in extras))
                answers[(item.rule.name, item.at)] = _Answer(queries, own, share, seeded, shown)
        return answers

    def _episodes(self, plan: Sequence[Due]) -> list[Episode]:
        """The incident episodes the plan's reference windows may overlap, read once per tick."""
        starts = [window.start for item in plan for window in reference_windows(item.rule, item.at)]
        return self.state.episodes(min(starts)) if starts else []

    def _exclusions(self, rule: Rule, windows: Sequence[Window], episodes: Sequence[Episode]) -> Exclusions:
        """The reference windows of an evaluation left out: the source has no data for them (for
        every group), or they overlap an incident of the rule (for its group)."""
        uncovered = self._coverage.excluded(rule.source, windows, rule.every)
        return Exclusions(uncovered, overlapping_incidents(rule, windows, episodes))

    def _store(self, source: str) -> LogStore | None:
        """The source's store, behind its per-bucket partials (``watcher.store.partials``) when
        ``partials`` says so for it; a store replaced by a reload gets fresh partials."""
        store = self.stores.get(source)
        if store is None or not (self.partials(store) if callable(self.partials) else self.partials):
            return store
        partials = self._partials.get(source)
        if partials is None or partials.store is not store:
            stretch, until = self._read_ahead
            partials = self._partials[source] = Partials(store, stretch, until)
        return partials

    def _evaluate(self, source: str, batch: list[Query], report: TickReport) -> list[QueryResult]:
        store = self._store(source)
        report.round_trips[source] = report.round_trips.get(source, 0) + 1
        try:
            if store is None:
                raise StoreError(f"source {source!r} is not configured")
            return store.evaluate(batch)
        except StoreError as exc:
            log.error("store %s failed: %s", source, exc, extra={"source": source})
            return [QueryResult(query.id, error=str(exc)) for query in batch]

    def _may_flap(self, plan: Sequence[Due]) -> list[Incident]:
        """Resolved incidents that may still start flapping: status changes within the flapping
        window of the earliest evaluation due (older ones would be dropped by the step anyway)."""
        lookbacks = [item.rule.flapping.lookback(item.rule.every) for item in plan if item.rule.flapping]
        if not lookbacks:
            return []
        return self.state.flipped_since(min(item.at for item in plan) - max(lookbacks))

    def _findings(
        self,
        item: Due,
        results: Mapping[tuple[str, datetime], _Answer],
        open_incidents: Mapping[str, Incident],
        episodes: Sequence[Episode],
    ) -> _Outcome:
        """Judge one evaluation: the detector's findings on the answers and the known groups."""
        rule = item.rule
        share = results[(rule.name, item.at)]
        answers, asked = share.results, (share.queries, share.results)
        open_groups = [i.group for i in open_incidents.values() if i.rule == rule.name]
        known = self.known.known(rule, item.at, asked, share.seed, open_groups)
        for answer in answers:
            if not answer.ok:
                log.error(
                    "rule %s: evaluation failed: %s", rule.name, answer.error, extra={"rule": rule.name}
                )
        started = time.perf_counter()
        judged = share.queries if reads_absence(rule) else past_windows(share.queries, item.at - rule.delay)
        references = reference_windows(rule, item.at)  # judged one by one: _exclusions
        if references:
            judged = [query for query in judged if query.window not in references]
        uncovered = None if errors_in(answers) else self._coverage.uncovered(rule.source, judged, rule.every)
        if uncovered is not None:  # before the first log line: never a fire, never a resolve
            groups = known.groups if rule.group_by else [{}]
            findings = [Finding(rule.name, group, Status.NO_DATA, reason=uncovered) for group in groups]
            return _Outcome(findings, Known(known.groups), None, share.store_seconds)
        detector = DETECTORS[rule.detector]
        if references:
            excluded = self._exclusions(rule, references, episodes)
            findings = detector.evaluate(rule, answers, item.at, known.groups, excluded=excluded)
        else:
            findings = detector.evaluate(rule, answers, item.at, known.groups)
        findings = with_evidence(rule, findings, share.evidence)
        seconds = share.store_seconds + time.perf_counter() - started
        errors = [answer.error or "query failed" for answer in answers if not answer.ok]
        if not errors:
            self.known.record(rule, item.at, asked, known)
        return _Outcome(findings, known, errors[0] if errors else None, seconds)


@dataclass
class _Changes:
    """What a tick changes: the open incidents as they stand now, those changed and deleted, and
    the transitions (in ``report``)."""

    open: dict[str, Incident]
    report: TickReport
    changed: dict[str, Incident] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    ended: dict[str, Incident] = field(default_factory=dict)

    def apply(self, item: Due, finding: Finding) -> None:
        """Step the finding's incident through the state machine."""
        key = fingerprint(item.rule.name, finding.group)
        if finding.status is Status.ERROR:
            self.report.errors[item.rule.name] = finding.reason
        current = self.open.get(key) or self.ended.get(key)
        # The route's repeat_interval is the dispatcher's (per group); only a rule's own
        # repeat_interval makes the machine ask for an UPDATE of one incident.
        self._record(item, key, current, *step(current, finding, item.rule, item.at, None))

    def retire(self, item: Due, group: Mapping[str, str]) -> None:
        """End the open incident of a group the rule forgot (``forget_after``), with a note why."""
        key = fingerprint(item.rule.name, group)
        current = self.open.get(key)
        if current is not None:
            self._record(item, key, current, *retire(current, item.at, forgotten_note(item.rule, group)))

    def _record(
        self, item: Due, key: str, current: Incident | None, updated: Incident | None, events: list[Event]
    ) -> None:
        if updated is None:
            if current is not None:
                self.deleted.add(key)
                self.open.pop(key, None)
                self.changed.pop(key, None)
            return
        if events:
            # The state store records the same on commit; set here so a catch-up tick that
            # evaluates this rule again sees when it was last notified.
            updated = updated.evolve(last_notified_at=item.at)
        if updated != current:
            self.changed[key] = updated
        if updated.state is State.RESOLVED:
            self.open.pop(key, None)
            self.ended[key] = updated
        else:
            self.open[key] = updated
        for event in events:
            self.report.transitions.append(Transition(updated, event, item.at))


def reads_absence(rule: Rule) -> bool:
    """Whether a low value means trouble (a flatline, a ``below`` bound): then a window before the
    data would look like an outage. A rule alerting on high values judges what its window holds,
    however little (``min_events`` guards small samples); only its reference windows must be covered."""
    return rule.flatline is not None or (rule.threshold is not None and rule.threshold.below is not None)


def past_windows(queries: Sequence[Query], end: datetime) -> list[Query]:
    """The reference and history windows of an evaluation: those ending before its own window."""
    return [query for query in queries if query.window.end < end]


def errors_in(answers: Sequence[QueryResult]) -> bool:
    return any(not answer.ok for answer in answers)


def _tagged(query: Query, suffix: str, every: timedelta | None) -> Query:
    """Query ids unique within a batch that holds several evaluation times of one rule (``suffix``:
    ``@`` and the time); ``every`` tells the partials how soon the same question comes back. The
    detector's query copied at once, not built field by field through its frozen ``__init__``
    again: a zscore spike asks 13 windows per evaluation, and a backtest evaluates every minute."""
    tagged = object.__new__(Query)
    tagged.__dict__.update(query.__dict__, id=query.id + suffix, every=every)
    return tagged
