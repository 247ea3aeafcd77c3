"""SlackNotifier with the real slack-sdk clients against the fake Slack server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from samples import EVIDENCE, LONG_ERROR, SECRET_TOKEN
from slack_server import WEBHOOK_PATH, SlackServer

from watcher.config import Receiver, SearchSource, SlackReceiver
from watcher.incidents.model import Event, Incident, State
from watcher.notify.base import CHARTS, Delivery, Notification
from watcher.notify.registry import build_notifier
from watcher.notify.slack import SlackNotifier
from watcher.notify.slack_layout import MAX_BLOCK_TEXT, MAX_BLOCKS, TRUNCATED
from watcher.notify.slack_lookup import metadata
from watcher.rules.models import Rule
from watcher.templates import Templates

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RULE = Rule.model_validate(
    {
        "name": "prediction-5xx",
        "source": "ml-api",
        "signal": {"ratio": {"of": {"status": {"gte": 500}}}},
        "threshold": {"above": 0.05},
        "severity": "critical",
    }
)


@pytest.fixture
def slack_server(slack_server: SlackServer) -> SlackServer:
    """The conftest's fake Slack, posting at ``NOW`` (so ``ts`` values are known)."""
    slack_server.clock = NOW.timestamp
    return slack_server


def incident(**changes: Any) -> Incident:
    base = Incident(
        fingerprint="f1",
        rule="prediction-5xx",
        group={"model_version": "v2"},
        labels={"team": "ml"},
        annotations={
            "summary": "5xx rate {{ value | percent }} for model {{ group.model_version }}",
            "runbook": "https://runbooks.example.com/5xx",
        },
        severity="critical",
        state=State.FIRING,
        value=0.0712,
        threshold=0.05,
        started_at=NOW - timedelta(minutes=14),
        fired_at=NOW - timedelta(minutes=12),
    )
    return base.evolve(**changes)


def notification(event: Event = Event.FIRING, *incidents: Incident, thread_ref: Any = None) -> Notification:
    return Notification(
        id="n1",
        receiver="ml-slack",
        event=event,
        incidents=incidents or (incident(),),
        created_at=NOW,
        thread_key="f1|start",
        thread_ref=thread_ref,
    )


def resolved() -> Incident:
    return incident(state=State.RESOLVED, resolved_at=NOW - timedelta(minutes=2))


def bot(server: SlackServer, token: str | None = None, templates: Templates | None = None) -> SlackNotifier:
    settings = SlackReceiver(
        token=SecretStr(token or server.token), channel="#ml-alerts", base_url=server.base_url
    )
    return SlackNotifier(settings, templates or Templates(rules=[RULE]))


def hook(server: SlackServer) -> SlackNotifier:
    return SlackNotifier(SlackReceiver(webhook_url=SecretStr(server.webhook_url)), Templates(rules=[RULE]))


def texts(body: dict[str, Any]) -> list[str]:
    return [block["text"]["text"] for block in body["attachments"][0]["blocks"]]


# --------------------------------------------------------------------------- the bot token (Web API)


def test_firing_posts_a_coloured_message_with_summary_value_labels_and_runbook(
    slack_server: SlackServer,
) -> None:
    delivery = bot(slack_server).send(notification())

    [call] = slack_server.calls_to("chat.postMessage")
    assert delivery == Delivery(ok=True, ref={"channel": "C00000001", "ts": f"{int(NOW.timestamp())}.000001"})
    assert call.headers["Authorization"] == f"Bearer {slack_server.token}"
    assert call.body["channel"] == "#ml-alerts"
    assert call.body["text"] == ":red_circle: *CRITICAL: 5xx rate 7.12% for model v2*"
    assert call.body["attachments"][0]["color"] == "#d72b3f"
    assert texts(call.body) == [
        "*prediction-5xx* · `model_version=v2`\n"
        "Value *7.12%* vs threshold 5% · firing since 12m ago\n"
        ":book: <https://runbooks.example.com/5xx|Runbook>",
    ]


def test_resolved_rewrites_the_original_then_replies_in_its_thread(slack_server: SlackServer) -> None:
    notifier = bot(slack_server)
    first = notifier.send(notification())
    assert first.ref is not None

    delivery = notifier.send(notification(Event.RESOLVED, resolved(), thread_ref=first.ref))

    assert [call.method for call in slack_server.calls] == [
        "chat.postMessage",
        "chat.update",
        "chat.postMessage",
    ]
    update, reply = slack_server.calls[1:]
    assert (update.body["channel"], update.body["ts"]) == (first.ref["channel"], first.ref["ts"])
    assert reply.body["thread_ts"] == first.ref["ts"]
    assert reply.body["channel"] == first.ref["channel"]
    original = slack_server.messages[(first.ref["channel"], first.ref["ts"])]
    assert original["text"] == ":white_check_mark: *RESOLVED: 5xx rate 7.12% for model v2*"
    assert original["attachments"][0]["color"] == "#2eb886"
    assert "Resolved after firing for *10m*" in texts(reply.body)[0]
    assert delivery == Delivery(
        ok=True,
        ref={"channel": "C00000001", "ts": f"{int(NOW.timestamp())}.000002", "thread_ts": first.ref["ts"]},
    )


def test_a_one_line_resolved_template_clears_the_original_attachment(
    slack_server: SlackServer, tmp_path: Path
) -> None:
    (tmp_path / "done.j2").write_text("{{ rule }} resolved")
    notifier = bot(slack_server, templates=Templates(tmp_path, [RULE]).for_receiver({"resolved": "done.j2"}))
    first = notifier.send(notification())
    assert first.ref is not None
    assert notifier.send(notification(Event.RESOLVED, resolved(), thread_ref=first.ref)).ok
    original = slack_server.messages[(first.ref["channel"], first.ref["ts"])]
    assert (original["text"], original["attachments"]) == ("prediction-5xx resolved", [])


def test_update_replies_in_the_thread_without_touching_the_original(slack_server: SlackServer) -> None:
    notifier = bot(slack_server)
    first = notifier.send(notification())
    assert first.ref is not None

    assert notifier.send(notification(Event.UPDATE, thread_ref=first.ref)).ok

    assert [call.method for call in slack_server.calls] == ["chat.postMessage", "chat.postMessage"]
    assert slack_server.calls[1].body["thread_ts"] == first.ref["ts"]
    assert slack_server.calls[1].body["text"].startswith(":red_circle: *Still firing:")


def test_without_a_thread_reference_update_and_resolved_are_new_messages(slack_server: SlackServer) -> None:
    notifier = bot(slack_server)
    assert notifier.send(notification(Event.UPDATE)).ok
    assert notifier.send(notification(Event.RESOLVED, resolved())).ok
    assert [call.method for call in slack_server.calls] == ["chat.postMessage", "chat.postMessage"]
    assert all("thread_ts" not in call.body for call in slack_server.calls)


def test_resolved_still_replies_when_the_original_cannot_be_updated(slack_server: SlackServer) -> None:
    gone = {"channel": "C00000001", "ts": "1600000000.000100"}
    delivery = bot(slack_server).send(notification(Event.RESOLVED, resolved(), thread_ref=gone))
    assert delivery.ok
    assert [call.method for call in slack_server.calls] == ["chat.update", "chat.postMessage"]


def test_a_rate_limited_update_is_retried_later_before_anything_is_posted(slack_server: SlackServer) -> None:
    notifier = bot(slack_server)
    first = notifier.send(notification())
    slack_server.rate_limit(retry_after=7, method="chat.update")
    delivery = notifier.send(notification(Event.RESOLVED, resolved(), thread_ref=first.ref))
    assert delivery == Delivery(ok=False, error="slack chat.update: ratelimited (HTTP 429)", retry_after=7.0)
    assert len(slack_server.calls_to("chat.postMessage")) == 1


def test_channel_mention_in_log_data_arrives_escaped(slack_server: SlackServer) -> None:
    hostile = incident(group={"model_version": "<!channel>"}, labels={"team": "<!here>"})
    assert bot(slack_server).send(notification(Event.FIRING, hostile)).ok

    raw = json.dumps(slack_server.calls[0].body)
    assert "<!channel>" not in raw
    assert "model_version=&lt;!channel&gt;" in texts(slack_server.calls[0].body)[0]
    assert "for model &lt;!channel&gt;*" in slack_server.calls[0].body["text"]


def test_evidence_is_a_code_block_escaped_redacted_and_cut(slack_server: SlackServer) -> None:
    assert bot(slack_server).send(notification(Event.FIRING, incident(evidence=EVIDENCE))).ok

    [call] = slack_server.calls_to("chat.postMessage")
    raw = json.dumps(call.body)
    [text] = texts(call.body)
    lines = text.split("Sample logs:\n```\n")[1].split("\n```")[0].split("\n")
    assert len(lines) == 2  # one line per document
    assert lines[0].startswith("status=503 route=/predict &lt;!channel&gt; ")
    assert f"error.message={LONG_ERROR[:59]}… " in lines[0]  # each value cut at 60 characters
    assert "authorization=[redacted]" in lines[0]
    assert "`" not in "".join(lines)  # a backtick from the log cannot close the code block
    assert "<!channel>" not in raw
    assert "<script>" not in raw
    assert SECRET_TOKEN not in raw
    assert lines[1] == "status=502 route=/predict error.message=retry with Bearer [redacted]"


def test_long_messages_are_truncated_not_rejected(slack_server: SlackServer) -> None:
    long = incident(annotations={"summary": "x", "description": "word " * 2000})
    many = [incident(fingerprint=f"f{n}", group={"model_version": f"v{n}"}) for n in range(60)]

    assert bot(slack_server).send(notification(Event.FIRING, long)).ok
    assert bot(slack_server).send(notification(Event.FIRING, *many)).ok

    long_texts, many_texts = (texts(call.body) for call in slack_server.calls)
    assert len(long_texts[0]) == MAX_BLOCK_TEXT
    assert long_texts[0].endswith(TRUNCATED)
    assert len(many_texts) == MAX_BLOCKS
    assert many_texts[-1] == TRUNCATED


def test_rate_limit_returns_retry_after_without_retrying_in_the_client(slack_server: SlackServer) -> None:
    slack_server.rate_limit(retry_after=3)
    delivery = bot(slack_server).send(notification())
    assert delivery == Delivery(
        ok=False, error="slack chat.postMessage: ratelimited (HTTP 429)", retry_after=3.0
    )
    assert len(slack_server.calls) == 1


def test_invalid_auth_is_permanent_and_the_token_never_shows(
    slack_server: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "xoxb-wrong-token-987654321"
    delivery = bot(slack_server, token=wrong).send(notification())
    assert delivery == Delivery(
        ok=False, error="slack chat.postMessage: invalid_auth (HTTP 200)", permanent=True
    )
    assert wrong not in caplog.text
    assert wrong not in repr(delivery)


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived", "missing_scope"])
def test_channel_and_scope_errors_are_permanent(slack_server: SlackServer, error: str) -> None:
    slack_server.fail(error)
    delivery = bot(slack_server).send(notification())
    assert delivery == Delivery(ok=False, error=f"slack chat.postMessage: {error} (HTTP 200)", permanent=True)


def test_server_errors_are_retryable(slack_server: SlackServer) -> None:
    slack_server.fail("internal_error", status=503)
    delivery = bot(slack_server).send(notification())
    assert delivery == Delivery(ok=False, error="slack chat.postMessage: internal_error (HTTP 503)")


def test_network_errors_are_retryable() -> None:
    with socket.socket() as probe:  # a port on 127.0.0.1 that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = SlackReceiver(
        token=SecretStr("xoxb-secret"), channel="#a", base_url=f"http://127.0.0.1:{port}/api/"
    )
    delivery = SlackNotifier(settings, Templates()).send(notification())
    assert not delivery.ok
    assert not delivery.permanent
    assert delivery.error.startswith("slack chat.postMessage: network error: ")
    assert "Connection refused" in delivery.error


def test_a_template_that_cannot_render_is_a_permanent_failure(
    slack_server: SlackServer, tmp_path: Path
) -> None:
    (tmp_path / "slack").mkdir()
    (tmp_path / "slack" / "firing.md.j2").write_text("{{ nope }}")
    delivery = bot(slack_server, templates=Templates(tmp_path)).send(notification())
    assert delivery == Delivery(
        ok=False, error="template slack/firing.md.j2: 'nope' is undefined", permanent=True
    )
    assert slack_server.calls == []


# --------------------------------------------------------------------------- incoming webhook


def test_webhook_posts_the_same_message_without_a_thread(slack_server: SlackServer) -> None:
    notifier = hook(slack_server)
    assert notifier.send(notification()) == Delivery(ok=True)
    assert notifier.send(
        notification(Event.RESOLVED, resolved(), thread_ref={"channel": "C1", "ts": "1.2"})
    ).ok

    firing, done = slack_server.calls
    assert firing.path == WEBHOOK_PATH
    assert firing.body["text"] == ":red_circle: *CRITICAL: 5xx rate 7.12% for model v2*"
    assert "Authorization" not in firing.headers
    assert "thread_ts" not in done.body
    assert done.body["attachments"][0]["color"] == "#2eb886"


@pytest.mark.parametrize(("error", "status"), [("channel_is_archived", 410), ("invalid_token", 403)])
def test_webhook_client_errors_are_permanent_and_hide_the_url(
    slack_server: SlackServer, caplog: pytest.LogCaptureFixture, error: str, status: int
) -> None:
    caplog.set_level(logging.DEBUG)
    slack_server.fail(error)
    delivery = hook(slack_server).send(notification())
    assert delivery == Delivery(ok=False, error=f"slack webhook: {error} (HTTP {status})", permanent=True)
    assert "webhook-secret" not in caplog.text


def test_webhook_rate_limit_returns_retry_after(slack_server: SlackServer) -> None:
    slack_server.rate_limit(retry_after=2)
    delivery = hook(slack_server).send(notification())
    assert delivery == Delivery(ok=False, error="slack webhook: ratelimited (HTTP 429)", retry_after=2.0)


def test_a_webhook_url_that_is_not_http_is_refused_without_showing_it() -> None:
    # Refused when watcher.yaml is read (watcher check), before any notifier is built.
    with pytest.raises(ValueError, match="slack 'webhook_url' must start with https:// or http://") as raised:
        SlackReceiver(webhook_url=SecretStr("ftp://hooks.example.com/T0/B0/secret"))
    assert "secret" not in str(raised.value).replace("SecretStr", "")


# --------------------------------------------------------------------------- registry


def test_build_notifier_applies_the_receiver_template_overrides(
    slack_server: SlackServer, tmp_path: Path
) -> None:
    (tmp_path / "short.j2").write_text("{{ rule }} is {{ event }}")
    receiver = Receiver.model_validate(
        {
            "slack": {"token": slack_server.token, "channel": "#a", "base_url": slack_server.base_url},
            "templates": {"firing": "short.j2"},
        }
    )
    notifier = build_notifier("ml-slack", receiver, Templates(tmp_path))
    assert isinstance(notifier, SlackNotifier)
    assert notifier.send(notification()).ok
    assert slack_server.calls[0].body == {
        "channel": "#a",
        "text": "prediction-5xx is firing",
        "metadata": metadata("n1"),
    }


# --------------------------------------------------------------------------- charts (files_upload_v2)

SERIES = [[(NOW - timedelta(minutes=30 - i)).isoformat(), 0.02 if i < 16 else 0.0712] for i in range(30)]


def test_the_chart_is_a_second_step_uploaded_into_the_message_thread(slack_server: SlackServer) -> None:
    notifier = bot(slack_server)
    delivery = notifier.send(notification(Event.FIRING, incident(details={"series": SERIES})))

    # The post is delivered the moment Slack answers; the chart is the next outbox step.
    assert delivery.ok
    assert delivery.ref is not None
    assert [call.method for call in slack_server.calls] == ["chat.postMessage"]
    [step] = delivery.followups
    assert (step.id, step.part, step.thread_ref) == ("n1.charts", CHARTS, dict(delivery.ref))
    assert notifier.send(step).ok
    assert [call.method for call in slack_server.calls][1:] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    [chart] = slack_server.files.values()
    assert chart.data.startswith(b"\x89PNG")
    assert (chart.filename, chart.title) == ("prediction-5xx.f1.n1.png", "prediction-5xx (model_version=v2)")
    assert (chart.channel, chart.thread_ts) == (delivery.ref["channel"], delivery.ref["ts"])


def test_the_resolved_chart_goes_into_the_incident_thread(slack_server: SlackServer) -> None:
    notifier = bot(slack_server)
    first = notifier.send(notification())
    assert first.ref is not None
    assert first.followups == ()  # no series, no chart step
    done = resolved().evolve(details={"series": SERIES})
    delivery = notifier.send(notification(Event.RESOLVED, done, thread_ref=first.ref))
    [step] = delivery.followups
    assert notifier.send(step).ok
    [chart] = slack_server.files.values()
    assert chart.thread_ts == first.ref["ts"]


def test_a_chart_slack_refuses_for_good_is_skipped_and_a_rate_limit_is_retried(
    slack_server: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = bot(slack_server)
    [step] = notifier.send(notification(Event.FIRING, incident(details={"series": SERIES}))).followups
    slack_server.rate_limit(retry_after=3, method="files.getUploadURLExternal")
    limited = notifier.send(step)
    assert (limited.ok, limited.retry_after, limited.maybe_sent) == (False, 3, True)
    slack_server.fail("missing_scope", method="files.getUploadURLExternal")
    assert notifier.send(step).ok  # nothing to retry: the message itself is delivered
    assert "chart not uploaded to Slack: missing_scope" in caplog.text
    assert len(slack_server.calls_to("chat.postMessage")) == 1


def test_no_chart_without_a_series_with_charts_off_or_through_a_webhook(slack_server: SlackServer) -> None:
    with_series = notification(Event.FIRING, incident(details={"series": SERIES}))
    settings = SlackReceiver(
        token=SecretStr(slack_server.token), channel="#a", base_url=slack_server.base_url, charts=False
    )
    assert bot(slack_server).send(notification()).ok
    assert SlackNotifier(settings, Templates(rules=[RULE])).send(with_series).ok
    assert hook(slack_server).send(with_series).ok
    assert slack_server.files == {}


def test_a_discover_link_is_shown_when_the_source_has_dashboards(slack_server: SlackServer) -> None:
    source = SearchSource.model_validate(
        {"store": "opensearch", "hosts": ["https://os:9200"], "index": "ml-*",
         "dashboards_url": "https://dashboards.example.com/"}
    )  # fmt: skip
    templates = Templates(rules=[RULE.model_copy(update={"source": "ml-api"})], sources={"ml-api": source})
    assert bot(slack_server, templates=templates).send(notification()).ok
    [section] = texts(slack_server.calls[0].body)
    runbook, logs = section.splitlines()[-1].split(" · ")
    assert runbook == ":book: <https://runbooks.example.com/5xx|Runbook>"
    assert logs.startswith(
        ":mag: <https://dashboards.example.com/app/discover#/?_g=(time:(from:'2024-05-01T11:40:30.000Z'"
    )
    assert logs.endswith("|Logs in Discover>")
    assert "&amp;_a=" in logs  # Slack wants & escaped inside links
