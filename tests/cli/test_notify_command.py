"""`watcher notify test RECEIVER`: a [TEST] notification through the real receiver, its answer
reported; run as the real command against a fake Slack, a real SMTP server and a local webhook."""

from __future__ import annotations

import json
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.webhook_server import WebhookServer
from tests.notify.slack_server import SlackServer
from tests.notify.smtp_server import SmtpServer

ROOT = Path(__file__).parents[2]


def write_config(folder: Path, receivers: dict[str, Any]) -> Path:
    config = {
        "sources": {"demo": {"store": "embedded", "path": str(folder / "logs.duckdb")}},
        "state": {"path": str(folder / "state.sqlite")},
        "receivers": receivers,
        "route": {"receiver": next(iter(receivers))},
        "rules": [str(ROOT / "rules")],
        "templates": str(ROOT / "templates"),
    }
    path = folder / "watcher.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def notify_test(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "watcher", "notify", "test", "--config", str(config), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def slack_receiver(slack: SlackServer) -> dict[str, Any]:
    return {"slack": {"token": slack.token, "channel": "#alerts", "base_url": slack.base_url}}


def test_slack_gets_a_marked_message_and_its_chart(tmp_path: Path) -> None:
    with SlackServer() as slack:
        config = write_config(tmp_path, {"ml-slack": slack_receiver(slack)})
        result = notify_test(config, "ml-slack", "--rule", "prediction-5xx-rate")
        [post] = [post for post in slack.posts if not post.get("files")]
        uploads = slack.calls_to("files.completeUploadExternal")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "test notification delivered to ml-slack (slack) (2 steps: the message and its chart), channel="
    )
    assert post["text"].startswith(":red_circle: *CRITICAL: [TEST] 5xx rate ")
    assert "nothing is wrong" in json.dumps(post)
    assert len(uploads) == 1
    assert not (tmp_path / "state.sqlite").exists()  # never in the outbox, nor the state


def test_slack_refusing_is_reported_with_exit_1(tmp_path: Path) -> None:
    with SlackServer() as slack:
        slack.fail("channel_not_found")
        config = write_config(tmp_path, {"ml-slack": slack_receiver(slack)})
        result = notify_test(config, "ml-slack")
    assert result.returncode == 1
    assert result.stderr == (
        "watcher notify test: ml-slack (slack) did not take the test notification: "
        "slack chat.postMessage: channel_not_found (HTTP 200) (retrying will not help)\n"
    )


def test_email_through_a_real_smtp_server(tmp_path: Path) -> None:
    with SmtpServer(security="none") as smtp:
        email = {"to": ["oncall@example.com"], "from": "watcher@example.com", "host": "127.0.0.1"}
        receivers = {"oncall-email": {"email": {**email, "port": smtp.port, "security": "none"}}}
        result = notify_test(write_config(tmp_path, receivers), "oncall-email")
        [received] = smtp.messages
    assert (result.returncode, result.stdout) == (0, "test notification delivered to oncall-email (email)\n")
    message = message_from_bytes(received.data, policy=policy.default)
    assert message["Subject"] == "[INFO] [TEST] test notification from watcher"
    assert "nothing is wrong" in message.get_body(("plain",)).get_content()


def test_webhook_gets_the_test_label(tmp_path: Path) -> None:
    with WebhookServer() as hook:
        config = write_config(tmp_path, {"hook": {"webhook": {"url": hook.url}}})
        result = notify_test(config, "hook", "--event", "resolved")
        deliveries = hook.snapshot()
    assert (result.returncode, result.stdout) == (0, "test notification delivered to hook (webhook)\n")
    [delivery] = deliveries
    [incident] = delivery.incidents
    assert delivery.event == "resolved"
    assert incident["labels"]["test"] == "true"
    assert incident["annotations"]["summary"] == "[TEST] test notification from watcher"


def test_a_webhook_asking_to_wait_is_a_failure_with_its_retry_after(tmp_path: Path) -> None:
    with WebhookServer() as hook:
        hook.rate_limit(seconds=30, retry_after=7)
        result = notify_test(write_config(tmp_path, {"hook": {"webhook": {"url": hook.url}}}), "hook")
    assert result.returncode == 1
    assert result.stderr.startswith("watcher notify test: hook (webhook) did not take the test notification")
    assert result.stderr.endswith(" (the service asked to retry after 7s)\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "no receiver named 'nope' (receivers: hook)"),
        (["hook", "--rule", "nope"], "no rule named 'nope' (rules: feature-drift, "),
    ],
)
def test_an_unknown_receiver_or_rule_is_a_usage_error(tmp_path: Path, args: list[str], message: str) -> None:
    result = notify_test(write_config(tmp_path, {"hook": {"webhook": {"url": "http://127.0.0.1:9/"}}}), *args)
    assert result.returncode == 2
    assert result.stderr.startswith(f"watcher notify test: {message}")
