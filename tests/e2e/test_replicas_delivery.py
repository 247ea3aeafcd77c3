"""Delivery by three real `watcher run` replicas on one PostgreSQL state, one killed again and again.

An incident storm on an osmem-server source: every service alternates 5 s of failures and 5 s of
health, and six rules (one per partition, so every replica holds two) fire on the same failures,
so each group (route ``group_by: [svc]``) gathers incidents of rules held by different replicas.
Notifications go to the fake Slack and to a webhook. Every few seconds a random replica is
SIGKILLed and started again. Then the storm ends, everything resolves and is delivered, and the
receivers' view is checked: no Slack message posted twice, each group's thread started once and
every update and resolved reply in it, webhook duplicates at most one per kill, nothing left
pending or dead.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.e2e.daemon import WatcherProcess, wait_until, write_config
from tests.e2e.outage import SearchServer
from tests.e2e.slack_storm import ROUTE_SLACK_AND_HOOK
from tests.e2e.storm import RULE, SearchStorm, storm_env
from tests.e2e.webhook_server import WebhookServer
from tests.notify.slack_server import SlackServer
from watcher.process.partitions import partition_of

pytestmark = [pytest.mark.e2e, pytest.mark.search, pytest.mark.slow]

PARTITIONS = 6
HA = {"replicas": 3, "partitions": PARTITIONS, "heartbeat": "1s", "lease": "2s"}
SERVICES = ("alpha", "beta", "gamma", "delta")
KILLS = int(os.environ.get("WATCHER_HA_KILLS", "6"))  # bench/bench_replicas_crash.py runs 50 and more
KILL_EVERY = 2.0  # seconds a replica runs, once started, before the next kill


def rule_names() -> list[str]:
    """One rule per partition (the first names that land in each), so every replica holds some."""
    names: dict[int, str] = {}
    for n in range(1000):
        names.setdefault(partition_of(f"svc-errors-{n}", PARTITIONS), f"svc-errors-{n}")
        if len(names) == PARTITIONS:
            return sorted(names.values())
    raise AssertionError("rule names do not cover the partitions")


def rule(name: str) -> dict[str, Any]:
    """The storm's rule (a service fails when more than half its requests do) under another name."""
    return {**RULE, "name": name, "source": "es"}


class Alternating(SearchStorm):
    """8 requests a second per service; each service fails in alternate 5 s (1.3 s after the one
    before it) until ``calm`` is set."""

    def __init__(self, server: SearchServer) -> None:
        super().__init__(server, SERVICES, rate=8)
        self.start, self.calm = time.time(), threading.Event()

    def failing(self, service: str, at: float) -> bool:
        index = SERVICES.index(service)
        return not self.calm.is_set() and int((at - self.start + 1.3 * index) / 5) % 2 == 1


def settled(url: str) -> bool:
    """No incident open and nothing left to send."""
    with psycopg.connect(url) as db:
        (open_,) = db.execute(
            "SELECT count(*) FROM incidents WHERE state IN ('pending', 'firing')"
        ).fetchone()
        (pending,) = db.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()
    return int(open_) == 0 and int(pending) == 0


def test_three_replicas_killed_at_random_deliver_everything_once_and_threaded(
    tmp_path: Path, server: SearchServer, postgres_url: str, slack_server: SlackServer
) -> None:
    source = {"store": "opensearch", "hosts": [server.url], "index": "app-logs", "time_field": "ts"}
    bot = {"token": slack_server.token, "channel": "#alerts", "base_url": slack_server.base_url,
           "charts": False, "timeout": "3s", "pace": {"per_second": 20, "burst": 5}}  # fmt: skip
    with WebhookServer() as hook:
        config = write_config(
            tmp_path,
            [rule(name) for name in rule_names()],
            sources={"es": source},
            state={"url": postgres_url},
            ha=HA,
            receivers={"slack": {"slack": bot}, "hook": {"webhook": {"url": hook.url, "timeout": "3s"}}},
            route=ROUTE_SLACK_AND_HOOK,
            # A killed replica's claimed sends are taken over once their claim's lease ends.
            delivery={"retry": {"lease": "6s", "base": "500ms", "max_backoff": "2s"}},
        )
        env = storm_env(tmp_path / "pycache")
        replicas = [WatcherProcess(config, env) for _ in range(3)]
        rng, kills = random.Random(14), 0
        try:
            with Alternating(server) as storm:
                for replica in replicas:
                    replica.wait_started(60)
                storm.start = time.time()
                while kills < KILLS:
                    time.sleep(KILL_EVERY)
                    victim = rng.randrange(3)
                    replicas[victim].kill()
                    kills += 1
                    replicas[victim] = WatcherProcess(config, env)
                    replicas[victim].wait_started(60)
                storm.calm.set()  # every service healthy: everything resolves
                wait_until(lambda: settled(postgres_url), timeout=120)
        finally:
            for replica in replicas:
                replica.proc.send_signal(signal.SIGTERM)  # all stop at once
            codes = [replica.proc.wait(30) for replica in replicas]  # one SIGTERM each: a second kills
        assert codes == [0, 0, 0], replicas[codes.index(next(c for c in codes if c))].stderr()[-3000:]
        webhook = hook.snapshot()

    with psycopg.connect(postgres_url) as db:
        sql = "SELECT id, receiver, thread_key, status, payload FROM outbox ORDER BY seq"
        rows = db.execute(sql).fetchall()
        refs = {key: json.loads(ref) for key, ref in db.execute("SELECT thread_key, ref FROM thread_refs")}
    assert {status for *_, status, _ in rows} == {"delivered"}
    event = {nid: json.loads(payload)["event"] for nid, *_, payload in rows}
    slack_rows = {nid: thread for nid, receiver, thread, *_ in rows if receiver == "slack"}
    assert Counter(event[nid] for nid in slack_rows)["firing"] >= 4  # the storm opened groups to tell

    calls = slack_server.calls_to("chat.postMessage")
    posted = Counter(str(call.body["metadata"]["event_payload"]["notification_id"]) for call in calls)
    hooked = Counter(delivery.id for delivery in webhook)
    hook_rows = {nid for nid, receiver, *_ in rows if receiver == "hook"}
    # A flush sends the group's RESOLVED notifications before its FIRING (routing/dispatch.py): one
    # enqueued before the thread's FIRING (an episode found after the fact) cannot reply in a thread
    # that does not exist yet, and stands alone. Every message enqueued after the FIRING replies in it.
    order = {nid: index for index, (nid, *_) in enumerate(rows)}
    started = {thread: order[nid] for nid, thread in slack_rows.items() if event[nid] == "firing"}
    resolved = [
        (nid, thread)
        for nid, thread in slack_rows.items()
        if event[nid] == "resolved" and thread in refs and order[nid] > started.get(thread, len(rows))
    ]
    outside = [nid for nid, thread in resolved if not _in_thread(nid, thread, calls, refs)]
    print(  # the figures bench/bench_replicas_crash.py reports
        f"replicas-crash: kills={kills} notifications={len(rows)} "
        f"lost={len(set(slack_rows) - set(posted)) + len(hook_rows - set(hooked))} "
        f"slack_duplicates={sum(n - 1 for n in posted.values())} "
        f"webhook_duplicates={sum(n - 1 for n in hooked.values())}/{len(hook_rows)} "
        f"({100 * sum(n - 1 for n in hooked.values()) / max(1, len(hook_rows)):.2f} %) "
        f"resolved_outside_thread={len(outside)}"
    )
    # Slack: every notification posted exactly once (in-doubt sends were looked up, not repeated).
    posts = {}
    for call in calls:
        nid = str(call.body["metadata"]["event_payload"]["notification_id"])
        assert nid not in posts, f"{nid} ({event.get(nid)}) posted twice"
        posts[nid] = call.body
    assert set(posts) == set(slack_rows)
    # Each group's thread is started once, by its FIRING; its updates and resolved replies are in it.
    firing = Counter(thread for nid, thread in slack_rows.items() if event[nid] == "firing")
    assert set(firing.values()) == {1}
    for nid, thread in slack_rows.items():
        if event[nid] == "firing":
            assert "thread_ts" not in posts[nid]
            assert refs[thread]["ts"] == str(posts[nid].get("ts", refs[thread]["ts"]))
        elif thread in firing and order[nid] < started[thread]:
            assert "thread_ts" not in posts[nid], (nid, event[nid])  # before the thread: on its own
        elif thread in firing:
            assert posts[nid]["thread_ts"] == refs[thread]["ts"], (nid, event[nid])

    # The webhook cannot be asked: a kill mid-send may send one again (Idempotency-Key dedups).
    assert set(hooked) == hook_rows
    assert sum(count - 1 for count in hooked.values()) <= kills


def _in_thread(nid: str, thread: str, calls: list[Any], refs: dict[str, Any]) -> bool:
    """Whether every post of the RESOLVED ``nid`` replied in its group's thread."""
    mine = [c.body for c in calls if str(c.body["metadata"]["event_payload"]["notification_id"]) == nid]
    return bool(mine) and all(body.get("thread_ts") == refs[thread]["ts"] for body in mine)
