"""Crash test: a real `watcher run` fed an incident storm, SIGKILLed at random points 50+ times.

Afterwards every bad stretch was notified (none lost), every episode told firing was told resolved,
in that order, duplicates (at-least-once re-sends of a delivered notification) stay under 0.5 %,
and the state file passes PRAGMA integrity_check. The second test aims its kills at each step of a
Slack send: Slack gets every message and chart exactly once. ``bench/bench_crash.py`` runs more kills.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.slack_storm import STEPS, slack_storm
from tests.e2e.storm import crash_loop
from tests.e2e.webhook_server import RecordingProcess
from tests.notify.slack_server import SlackServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.timeout(1800)
def test_no_notification_is_lost_or_duplicated_across_50_sigkills(tmp_path: Path) -> None:
    with RecordingProcess(tmp_path / "deliveries.jsonl") as webhook:
        # A daemon lives 0-3s: duplicates come from kills between a receiver's answer and the
        # "delivered" mark (a few ms), so their rate is that window over the mean lifetime.
        result = crash_loop(tmp_path / "run", webhook, min_kills=50, max_life=3.0)
    print(result.summary())
    assert result.kills >= 50
    assert result.integrity == "ok"
    assert result.lost == []
    assert result.unexpected == []
    assert result.unresolved == []
    assert result.out_of_order == []
    assert result.told_twice == []
    assert result.stretches > 300
    assert result.duplicate_rate < 0.005, result.summary()


@pytest.mark.timeout(1800)
def test_kills_aimed_at_each_step_of_a_slack_send_post_nothing_twice(
    tmp_path: Path, slack_server: SlackServer
) -> None:
    """Slack with charts and a webhook; each kill lands at a chosen step of a Slack send (before
    the post, after Slack posted it, after its answer, mid-upload, after the chart was shared,
    between a RESOLVED's rewrite and its reply), one in four at a random moment.

    On a host at load ~17-20 this test used to fail with 3-10 bad stretches "lost" and a step never
    hit. Neither was a lost Slack message. The lost stretches were each service's first one, all
    over before the first daemon's first tick (a cold start compiles every module: 20-30 s there),
    and a daemon evaluates no window before its first tick; the webhook lost the very same ones,
    while the outbox held no dead letter and nothing pending, and Slack got each notification the
    daemon planned exactly once. The storm now begins its bad stretches once the first daemon has
    committed a tick. The step never hit was one the daemon did not get to in the 8 s an aimed kill
    waited, counted from its start, while it ingested and caught up; that wait now counts from its
    first request to Slack, a step is aimed at the least hit first, the kills go on (up to two
    more rounds of the steps) until every step was hit, and the summary names a step never reached.
    """
    with RecordingProcess(tmp_path / "deliveries.jsonl") as webhook:
        result = slack_storm(tmp_path / "run", slack_server, webhook, min_kills=36, length=50)
    print(result.summary())
    assert result.crash.kills >= 36
    assert set(result.aimed) == set(STEPS), result.summary()  # every step was hit
    assert result.crash.integrity == "ok"
    # Slack: exactly once, nothing lost, each incident's resolved after its firing.
    assert (result.duplicate_posts, result.duplicate_charts) == (0, 0), result.summary()
    assert result.lost == []
    assert result.unresolved == []
    assert result.out_of_order == []
    assert result.charts > 0
    assert result.dead == 0
    assert result.chart_steps == {"delivered": result.charts}  # every chart step done, once
    # The webhook: at least once, deduplicated: a re-send only of a send in doubt, the one in flight
    # at a kill or one whose answer timed out (the summary says how many were not in flight at a
    # kill: on a loaded host an answer can time out). Its rate is measured by the random kills
    # above, not here: a kill aimed at Slack lands while the daemon delivers a backlog (each life
    # starts with one), when the webhook's worker sends back to back and is in a send's last
    # moments far more often than over a daemon's life. On a host fast enough that the webhook
    # drains its backlog in step with Slack's, several percent (a quiet one: 4-8 of 100, the same
    # at the commit before this check; ~0.3 % on the slower hosts before); at most one per kill.
    assert result.crash.lost == []
    assert result.crash.unresolved == []
    assert result.crash.out_of_order == []
    assert result.crash.duplicates <= result.crash.kills, result.summary()
