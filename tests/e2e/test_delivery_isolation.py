"""One slow receiver never delays another: a real `watcher run` sends every incident to a Slack that
hangs on each post and to a webhook; the webhook gets each notification within a second of it being
written, while Slack's posts take seconds each (one delivery worker per receiver)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests.e2e.daemon import write_config
from tests.e2e.storm import RULE, BadStretch, daemon_in_storm, wait_until_settled
from tests.e2e.webhook_server import WebhookServer
from tests.notify.slack_server import SlackServer

pytestmark = pytest.mark.e2e

SERVICES = 4
HANG = 3.0  # seconds Slack takes to answer each post


def test_a_hanging_slack_does_not_delay_the_webhook(tmp_path: Path, slack_server: SlackServer) -> None:
    def hang(method: str, phase: str) -> None:
        if method == "chat.postMessage" and phase == "handled":
            time.sleep(HANG)

    slack_server.on_call = hang
    with WebhookServer() as hook:
        slack = {"token": slack_server.token, "channel": "#alerts", "base_url": slack_server.base_url}
        config = write_config(
            tmp_path,
            [RULE],
            receivers={
                "slack": {"slack": {**slack, "charts": False, "timeout": "10s"}},
                "hook": {"webhook": {"url": hook.url}},
            },
            route={
                "receiver": "hook",
                "group_by": ["svc"],
                "group_wait": "1s",
                "group_interval": "1s",
                "routes": [{"receiver": "slack", "continue": True}, {"receiver": "hook"}],
            },
        )
        with daemon_in_storm(tmp_path, config, SERVICES) as storm:
            start = time.time()
            storm.stretches = [BadStretch(f"svc{i:02d}", start + 4, start + 9) for i in range(SERVICES)]
            wait_until_settled(tmp_path, start + 14, timeout=120)
    with sqlite3.connect(tmp_path / "data" / "state.sqlite") as db:
        rows = db.execute(
            "SELECT receiver, (delivered_at - created_at) / 1e6 FROM outbox WHERE status = 'delivered'"
        ).fetchall()
    hook_delays = [delay for receiver, delay in rows if receiver == "hook"]
    slack_delays = [delay for receiver, delay in rows if receiver == "slack"]
    assert len(hook_delays) == len(slack_delays) == 2 * SERVICES  # a FIRING and a RESOLVED each
    # Slack's queue waits behind its own hanging posts; the webhook's never does.
    assert max(slack_delays) > 2 * HANG
    assert max(hook_delays) < 1.0, sorted(hook_delays)
