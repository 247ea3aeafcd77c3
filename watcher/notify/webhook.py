"""Webhooks: every notification as a versioned JSON document POSTed to a URL (see docs/webhook.md).

The payload is not templated: it is a schema (``"version": 1``) that a receiving service can
rely on, with the rule annotations rendered as plain text. With a ``secret`` the request is signed:
``X-Watcher-Signature: sha256=<hex>`` is the HMAC-SHA256 of ``<timestamp>.<raw body>`` where the
timestamp is the ``X-Watcher-Timestamp`` header (Unix seconds). Signing the timestamp with the
body lets a receiver refuse replays: it checks the signature, then that the timestamp is recent.
``X-Watcher-Delivery`` and ``Idempotency-Key`` carry the notification id, the same on every retry
(and on a re-send after a crash), to deduplicate on.

Answers: 2xx is delivered; 408, 425, 429 and 5xx are retried by the outbox (honouring
Retry-After); any other status is permanent, redirects included (a moved endpoint is a
configuration to fix, and following a redirect would turn the POST into a GET). The URL, the
secret and the custom header values never appear in errors or logs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from watcher import __version__
from watcher.config import WebhookReceiver
from watcher.incidents.model import Incident
from watcher.incidents.series import SERIES_KEY, samples
from watcher.notify.answers import http_failure, scrub
from watcher.notify.base import Delivery, Notification
from watcher.templates import Templates

SCHEMA_VERSION = 1
SIGNATURE_HEADER = "X-Watcher-Signature"
TIMESTAMP_HEADER = "X-Watcher-Timestamp"


class WebhookNotifier:
    """POSTs each notification to one URL."""

    def __init__(
        self,
        settings: WebhookReceiver,
        templates: Templates,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._templates = templates
        self._session = session or requests.Session()
        self._clock = clock
        self._url = settings.url.get_secret_value()
        # HTTP client errors quote the URL, or only its path ("url: /hooks/T0/secret"): both are secret.
        parts = urlsplit(self._url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        secrets = [self._url, *(value.get_secret_value() for value in settings.headers.values())]
        secrets += [path] if len(path) > 1 else []
        if settings.secret is not None:
            secrets.append(settings.secret.get_secret_value())
        self._secrets = secrets

    def body(self, notification: Notification) -> bytes:
        """The request body, exactly as sent: compact UTF-8 JSON of ``payload``."""
        data = payload(notification, self._templates)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()

    def headers(self, notification: Notification, body: bytes, timestamp: int) -> dict[str, str]:
        """The request headers: the custom ones, then watcher's (which win on a clash)."""
        headers = {name: value.get_secret_value() for name, value in self._settings.headers.items()}
        headers.update(
            {
                "Content-Type": "application/json",
                "User-Agent": f"watcher/{__version__}",
                "X-Watcher-Event": notification.event.value,
                "X-Watcher-Delivery": notification.id,
                # The name most HTTP frameworks and API gateways deduplicate on (IETF draft
                # "The Idempotency-Key HTTP Header Field"); the same value as X-Watcher-Delivery.
                "Idempotency-Key": notification.id,
                TIMESTAMP_HEADER: str(timestamp),
            }
        )
        if self._settings.secret is not None:
            key = self._settings.secret.get_secret_value().encode()
            headers[SIGNATURE_HEADER] = "sha256=" + signature(key, timestamp, body)
        return headers

    def send(self, notification: Notification) -> Delivery:
        body = self.body(notification)
        now = self._clock()
        try:
            answer = self._session.post(
                self._url,
                data=body,
                headers=self.headers(notification, body, int(now)),
                timeout=self._settings.timeout.total_seconds(),
                allow_redirects=False,
            )
        except requests.RequestException as err:
            error = f"webhook: network error: {type(err).__name__}: {err}"
            return Delivery(ok=False, error=scrub(error, self._secrets))
        if 200 <= answer.status_code < 300:
            return Delivery(ok=True)
        detail = scrub(answer.text, self._secrets)
        return http_failure(
            "webhook", answer.status_code, detail, answer.headers, datetime.fromtimestamp(now, UTC)
        )


def signature(key: bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``<timestamp>.<body>``: what ``X-Watcher-Signature`` carries."""
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def payload(notification: Notification, templates: Templates) -> dict[str, Any]:
    """The JSON document of schema version 1 (docs/webhook.md)."""
    context = templates.context(notification, "webhook")
    return {
        "version": SCHEMA_VERSION,
        "id": notification.id,
        "event": notification.event.value,
        "receiver": notification.receiver,
        "created_at": notification.created_at.isoformat(),
        "thread_key": notification.thread_key,
        "group_labels": dict(notification.group_labels),
        "counts": context["counts"],
        "incidents": [
            _incident(incident, view)
            for incident, view in zip(notification.incidents, context["incidents"], strict=True)
        ],
    }


def _incident(incident: Incident, view: Mapping[str, Any]) -> dict[str, Any]:
    details = {key: value for key, value in incident.details.items() if key != SERIES_KEY}
    return {
        "fingerprint": incident.fingerprint,
        "rule": incident.rule,
        "description": view["rule_description"],
        "signal": view["signal"],
        "severity": incident.severity,
        "state": incident.state.value,
        "group": dict(incident.group),
        "labels": dict(incident.labels),
        "annotations": {key: str(text) for key, text in view["annotations"].items()},
        "value": incident.value,
        "threshold": incident.threshold,
        "started_at": _time(incident.started_at),
        "fired_at": _time(incident.fired_at),
        "resolved_at": _time(incident.resolved_at),
        "found_late": incident.found_late,
        "left_route": incident.left_route,
        "note": incident.note,
        "ack": None if incident.ack is None else dict(incident.ack),
        "links": dict(view["links"]),
        "series": [[at.isoformat(), value] for at, value in samples(incident.details)],
        "evidence": json.loads(json.dumps([dict(document) for document in incident.evidence], default=str)),
        "details": json.loads(json.dumps(details, default=str)),
    }


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
