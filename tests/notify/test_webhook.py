"""WebhookNotifier against a real HTTP server on 127.0.0.1 (http.server), and its payload schema."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hook_server import Hook
from pydantic import SecretStr, ValidationError
from samples import EVIDENCE, LONG_ERROR, NOW, RULE, SECRET_TOKEN, incident, notification, resolved

from watcher.config import WebhookReceiver
from watcher.incidents.model import Event
from watcher.notify.base import Delivery
from watcher.notify.webhook import WebhookNotifier
from watcher.templates import Templates

SCHEMA = Path(__file__).parents[2] / "docs" / "webhook.schema.json"
SECRET = "hmac-signing-secret-42"
CLOCK = NOW.timestamp()


def notifier(url: str, **settings: Any) -> WebhookNotifier:
    receiver = WebhookReceiver.model_validate({"url": url, **settings})
    return WebhookNotifier(receiver, Templates(rules=[RULE]), clock=lambda: CLOCK)


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does (docs/webhook.md): recompute the HMAC over "<timestamp>.<body>"."""
    timestamp = headers["X-Watcher-Timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Watcher-Signature"], f"sha256={expected}")


# --------------------------------------------------------------------------- delivery


def test_posts_a_signed_versioned_json_document(hook: Hook) -> None:
    delivery = notifier(hook.url, secret=SECRET).send(notification())

    assert delivery == Delivery(ok=True)
    [(path, headers, body)] = hook.requests
    assert path == "/hooks/token-in-path-0123"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Watcher-Event"] == "firing"
    assert headers["X-Watcher-Delivery"] == "n1"
    assert headers["Idempotency-Key"] == "n1"
    assert headers["X-Watcher-Timestamp"] == str(int(CLOCK))
    assert verify(SECRET, headers, body)
    assert not verify("another-secret", headers, body)
    document = json.loads(body)
    assert document["version"] == 1
    assert (document["id"], document["event"], document["receiver"]) == ("n1", "firing", "oncall")
    [item] = document["incidents"]
    assert item["annotations"] == {
        "summary": "5xx rate 7.12% for model v2",
        "runbook": "https://runbooks.example.com/5xx",
    }
    assert (item["value"], item["threshold"], item["signal"]) == (0.0712, 0.05, "ratio")
    assert item["fired_at"] == "2024-05-01T11:48:00+00:00"
    assert len(item["series"]) == 30
    assert "series" not in item["details"]


def test_evidence_is_a_json_field_redacted_and_cut(hook: Hook) -> None:
    assert notifier(hook.url).send(notification(Event.FIRING, incident(evidence=EVIDENCE))).ok

    [(_, _, body)] = hook.requests
    [item] = json.loads(body)["incidents"]
    assert [document["status"] for document in item["evidence"]] == [503, 502]
    first = item["evidence"][0]
    assert first["route"] == "/predict <!channel>"  # JSON carries the value as logged
    assert first["authorization"] == "[redacted]"
    assert first["error.message"] == LONG_ERROR[:499] + "…"  # cut at 500 characters when kept
    assert SECRET_TOKEN not in body.decode()
    assert item["evidence"][1]["error.message"] == "retry with Bearer [redacted]"


def test_every_event_matches_the_published_schema(hook: Hook) -> None:
    schema = json.loads(SCHEMA.read_text())
    sender = notifier(hook.url)
    many = (
        incident(evidence=EVIDENCE),
        incident(fingerprint="f2", group={"model_version": "v3"}, details={}),
    )
    for sent in (notification(), notification(Event.RESOLVED, resolved()), notification(Event.UPDATE, *many)):
        assert sender.send(sent).ok
    for _, _, body in hook.requests:
        jsonschema.validate(json.loads(body), schema)


def test_without_a_secret_there_is_no_signature(hook: Hook) -> None:
    assert notifier(hook.url).send(notification()).ok
    assert "X-Watcher-Signature" not in hook.requests[0][1]


def test_custom_headers_are_sent_and_cannot_replace_watchers(hook: Hook) -> None:
    headers = {"Authorization": "Bearer abc123", "X-Watcher-Event": "forged", "X-Team": "ml"}
    assert notifier(hook.url, headers=headers).send(notification()).ok
    sent = hook.requests[0][1]
    assert (sent["Authorization"], sent["X-Team"], sent["X-Watcher-Event"]) == (
        "Bearer abc123",
        "ml",
        "firing",
    )


# --------------------------------------------------------------------------- failure answers


@pytest.mark.parametrize("status", [429, 503])
def test_rate_limits_and_unavailability_are_retried_after_retry_after(hook: Hook, status: int) -> None:
    hook.replies.append((status, {"Retry-After": "17"}, b"slow down"))
    delivery = notifier(hook.url).send(notification())
    assert delivery == Delivery(ok=False, error=f"webhook: HTTP {status}: slow down", retry_after=17.0)


@pytest.mark.parametrize(("status", "body"), [(400, b'{"error": "bad payload"}'), (404, b""), (410, b"gone")])
def test_other_client_errors_are_permanent(hook: Hook, status: int, body: bytes) -> None:
    hook.replies.append((status, {}, body))
    delivery = notifier(hook.url).send(notification())
    detail = f": {body.decode()}" if body else ""
    assert delivery == Delivery(ok=False, error=f"webhook: HTTP {status}{detail}", permanent=True)


def test_a_redirect_is_not_followed_and_is_permanent(hook: Hook) -> None:
    hook.replies.append((302, {"Location": "/elsewhere"}, b""))
    delivery = notifier(hook.url).send(notification())
    assert delivery == Delivery(ok=False, error="webhook: HTTP 302", permanent=True)
    assert [path for path, _, _ in hook.requests] == ["/hooks/token-in-path-0123"]


def test_an_error_body_echoing_secrets_is_scrubbed(hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hook.replies.append((401, {}, f"bad token Bearer abc123 for {hook.url}".encode()))
    delivery = notifier(hook.url, headers={"Authorization": "Bearer abc123"}).send(notification())
    assert delivery == Delivery(ok=False, error="webhook: HTTP 401: bad token *** for ***", permanent=True)
    assert "abc123" not in caplog.text


def test_a_refused_connection_is_retryable_and_hides_the_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    delivery = notifier(f"http://127.0.0.1:{port}/hooks/secret-token-xyz").send(notification())
    assert (delivery.ok, delivery.permanent) == (False, False)
    assert delivery.error.startswith("webhook: network error: ConnectionError: ")
    assert "secret-token-xyz" not in delivery.error


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"url": "ftp://example.com/x"}, "webhook 'url' must start with https:// or http://"),
        ({"url": "https://x", "headers": {"Bad Name": "v"}}, "webhook header name 'Bad Name' is not a valid"),
        (
            {"url": "https://x", "headers": {"X-A": "v\r\nX-B: injected"}},
            "webhook header 'X-A' has a line break",
        ),
    ],
)
def test_bad_settings_are_refused_without_showing_values(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        WebhookReceiver.model_validate(settings)
    assert "injected" not in caught.value.errors()[0]["msg"]


def test_url_headers_and_secret_are_secrets() -> None:
    settings = WebhookReceiver.model_validate(
        {
            "url": "https://hooks.example.com/T0/secret",
            "secret": SECRET,
            "headers": {"Authorization": "Bearer z"},
        }
    )
    assert isinstance(settings.url, SecretStr)
    assert "secret" not in repr(settings).replace("secret=SecretStr", "")
    assert SECRET not in repr(settings)
    assert "Bearer z" not in repr(settings)
