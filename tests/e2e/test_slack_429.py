"""Slack answers 429 with Retry-After for a while: a real `watcher run` drops nothing, duplicates
nothing and keeps each incident's order (its resolved message replies in its firing thread)."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.daemon import write_config
from tests.e2e.storm import RULE, BadStretch, daemon_in_storm, wait_until_settled
from tests.notify.slack_server import SlackServer

pytestmark = pytest.mark.e2e

TEMPLATE = "{{ event }} {% for i in incidents %}{{ i.group.svc }}@{{ i.started_at }} {% endfor %}\n"
SERVICES = 5


def slack_config(workdir: Path, slack: SlackServer, rule: dict[str, Any] = RULE) -> Path:
    for event in ("firing", "update", "resolved"):
        (workdir / "templates" / "slack").mkdir(parents=True, exist_ok=True)
        (workdir / "templates" / "slack" / f"{event}.md.j2").write_text(TEMPLATE)
    receiver = {"slack": {"token": slack.token, "channel": "#alerts", "base_url": slack.base_url}}
    return write_config(
        workdir,
        [rule],
        receivers={"slack": receiver},
        route={"receiver": "slack", "group_by": ["svc"], "group_wait": "1s", "group_interval": "1s"},
        templates=str(workdir / "templates"),
    )


def test_a_rate_limited_slack_gets_every_message_once_in_order(
    tmp_path: Path, slack_server: SlackServer
) -> None:
    # What is told must not hang on the daemon's timing: on a loaded host its scheduler can stall
    # for seconds. A bad stretch shorter than a stall fired and resolved before the FIRING was
    # flushed (told once, as a RESOLVED found after the fact: no thread, no reply), so it lasts
    # 10s; and ``for: 1s`` makes a FIRING carry two samples, so it has a chart even when the
    # drain job flushes it before the next tick adds a sample.
    config = slack_config(tmp_path, slack_server, {**RULE, "for": "1s"})
    with daemon_in_storm(tmp_path, config, SERVICES) as storm:
        start = time.time()
        storm.stretches = [BadStretch(f"svc{i:02d}", start + 4, start + 14) for i in range(SERVICES)]
        slack_server.rate_limit(times=8, retry_after=1)  # about 8s of 429s: one trial per second
        wait_until_settled(tmp_path, start + 18, timeout=90)
    # What Slack shows, after chat.update; the charts (file shares in the threads) are counted apart.
    messages = [m for m in slack_server.messages.values() if not m.get("files")]
    charts = [m for m in slack_server.messages.values() if m.get("files")]
    roots = {m["ts"]: m for m in messages if not m.get("thread_ts")}
    replies = [m for m in messages if m.get("thread_ts")]
    # Each incident: one post (rewritten when it resolved) and one reply in its thread, after it.
    assert len(roots) == SERVICES
    assert len(replies) == SERVICES
    for reply in replies:
        root = roots[reply["thread_ts"]]
        assert reply["text"].startswith("resolved ")
        assert root["text"] == reply["text"]
        assert float(reply["ts"]) > float(root["ts"])
    assert sorted(r["text"].split()[1].split("@")[0] for r in replies) == [
        f"svc{i:02d}" for i in range(SERVICES)
    ]
    # Every 429 was answered to a post that was sent again later: none lost, none doubled.
    assert len(slack_server.calls_to("chat.postMessage")) - len(messages) == 8
    # A chart after the post and one after the resolved reply, in each thread; none uploaded twice.
    names = [f["name"] for c in charts for f in c["files"]]
    assert len(names) == len(set(names)) == 2 * SERVICES
    assert {c["thread_ts"] for c in charts} == set(roots)
    with sqlite3.connect(tmp_path / "data" / "state.sqlite") as db:
        assert db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall() == [
            ("delivered", 10 + len(charts))
        ]


def test_after_a_rate_limit_storm_every_message_goes_within_twice_the_retry_after(
    tmp_path: Path, slack_server: SlackServer
) -> None:
    # Slack answers every call 429 with Retry-After 3-10 s for 100 s while incidents fire and
    # resolve. A backoff stacked on Retry-After (max(backoff, Retry-After): 64 s by the 7th attempt)
    # left messages waiting long after Slack was fine again; now they go at the first probe after it.
    config = slack_config(tmp_path, slack_server)
    waits = random.Random(3)
    with daemon_in_storm(tmp_path, config, SERVICES) as storm:
        start = time.time()
        storm.stretches = [
            BadStretch(f"svc{i:02d}", start + 6 + 3 * i, start + 12 + 3 * i) for i in range(SERVICES)
        ]
        recovered = start + 100
        slack_server.rate_limit_until(recovered, lambda: waits.uniform(3, 10))
        wait_until_settled(tmp_path, start + 30, timeout=200)
    posted = [c.at for c in slack_server.calls_to("chat.postMessage") if c.at >= recovered]
    assert len(posted) == 2 * SERVICES  # every FIRING and RESOLVED waited out the storm ...
    # ... and went within 2 x Retry-After of its end, plus the pacing of 1 message a second (burst 3).
    assert max(posted) - recovered <= 2 * 10 + (2 * SERVICES - 3) + 1
    messages = [m for m in slack_server.messages.values() if not m.get("files")]
    assert len(messages) == 2 * SERVICES  # none twice
