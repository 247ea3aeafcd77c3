"""Replicas sharing one state route into the same aggregation groups: nothing lost, one flush.

Each replica is its own ``StateStore`` (its own connection; on each backend, PostgreSQL being the
one replicas share in production) with its own ``Dispatcher``, planning and committing through
``Dispatcher.settle`` as the engine does. The incidents of one group come from rules held by
different replicas.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import StateAt
from tests.routing.test_dispatch import ROUTE, SEC, T0, Change, fired, summary
from watcher.incidents.state import StateStore
from watcher.routing.dispatch import Dispatch, Dispatcher
from watcher.routing.groups import all_groups

WAIT = 30 * SEC  # ROUTE's group_wait


@pytest.fixture
def replicas(state_at: StateAt) -> Iterator[tuple[StateStore, StateStore]]:
    with state_at.open() as one, state_at.open() as two:
        yield one, two


def committing(state: StateStore, *changes: Change) -> Callable[[Dispatch], None]:
    """Commit a plan as the engine does: the incidents, their notifications and the groups in one
    transaction."""

    def commit(dispatch: Dispatch) -> None:
        incidents = [change.incident for change in changes]
        state.commit(incidents, notifications=dispatch.notifications, writes=[dispatch.write])

    return commit


def outbox(state: StateStore) -> list[tuple[str, str, list[str]]]:
    items = state.due_notifications(T0 + 3600 * SEC)
    return summary([item.notification for item in items])


def test_incidents_joining_one_group_at_two_replicas_at_once_are_both_told_in_one_thread(
    replicas: tuple[StateStore, StateStore],
) -> None:
    one, two = (Dispatcher(state, ROUTE) for state in replicas)
    plans = []
    v1, v2 = fired("v1", T0), fired("v2", T0 + SEC)

    def commit_one(dispatch: Dispatch) -> None:
        plans.append(dispatch)
        if len(plans) == 1:  # between replica one's read and its commit, replica two starts the group
            two.settle([v2], T0 + SEC, committing(replicas[1], v2))
        committing(replicas[0], v1)(dispatch)

    one.settle([v1], T0, commit_one)
    assert len(plans) == 2  # replica one planned again from the group replica two wrote
    with replicas[0].reading() as db:
        [group] = all_groups(db)
    assert sorted(member.incident.group["model_version"] for member in group.members) == ["v1", "v2"]
    assert group.created_at == T0 + SEC  # replica two's start: one group, one thread
    one.flush(T0 + SEC + WAIT)
    two.flush(T0 + SEC + WAIT)
    assert outbox(replicas[1]) == [("slack", "firing", ["v1", "v2"])]


def test_a_due_group_flushed_by_two_replicas_at_once_is_sent_once_and_its_timer_moves_once(
    replicas: tuple[StateStore, StateStore],
) -> None:
    one, two = (Dispatcher(state, ROUTE) for state in replicas)
    v1 = fired("v1", T0)
    one.settle([v1], T0, committing(replicas[0], v1))
    both_planned = threading.Barrier(2)
    flushed: list[int] = []

    def flush(dispatcher: Dispatcher, state: StateStore) -> None:
        planned = [0]

        def commit(dispatch: Dispatch) -> None:
            planned[0] += 1
            if planned[0] == 1:
                both_planned.wait(10)  # both replicas read the due group before either commits
            if not dispatch.empty:
                state.commit(notifications=dispatch.notifications, writes=[dispatch.write])
            flushed.append(len(dispatch.notifications))

        dispatcher.settle((), T0 + WAIT, commit)

    threads = [threading.Thread(target=flush, args=pair) for pair in zip((one, two), replicas, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(flushed) == [0, 1]  # one replica flushed it; the other planned again: not due
    assert outbox(replicas[0]) == [("slack", "firing", ["v1"])]
    with replicas[1].reading() as db:
        [group] = all_groups(db)
    assert group.next_flush_at == T0 + WAIT + 300 * SEC  # one group_interval later, not two
    assert group.revision == 1
