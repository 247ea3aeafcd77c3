"""Slack through slack-sdk: ``chat.postMessage`` with a bot token, or an incoming webhook.

FIRING posts a new message; its ``{"channel", "ts"}`` comes back as ``Delivery.ref`` so UPDATE and
RESOLVED can reply in its thread, and RESOLVED also rewrites the original message to show the end.
Without a thread reference (or with a webhook, which cannot thread) every message is a new post.
With a bot token, a PNG chart of each incident's signal (the first ``MAX_CHARTS``) is uploaded into
the message's thread (``files_upload_v2``, scope ``files:write``). The chart is an extra: when its
upload fails the message still counts as delivered (retrying would post the message twice).

The text comes from the ``slack/<event>.md.j2`` templates (mrkdwn, escaped per ``watcher.templates``);
this module only lays it out as Block Kit and talks to Slack. slack-sdk's own retry handlers are
switched off: retries, pacing and Retry-After waits belong to the outbox, which reads them from
the returned ``Delivery``. Error texts are built here from Slack's error code, never copied from the
SDK, and the token and webhook URL are scrubbed from anything that leaves this module.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from http.client import HTTPException
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from watcher.config import SlackReceiver
from watcher.filters import labels
from watcher.incidents.model import Event
from watcher.notify.answers import retry_after
from watcher.notify.base import Delivery, Notification
from watcher.notify.chart import render_chart
from watcher.templates import RenderError, Templates

log = logging.getLogger("watcher.notify.slack")
# slack-sdk logs request URLs at DEBUG, and an incoming-webhook URL is a secret: keep its logger quieter.
_SDK_LOG = logging.getLogger("watcher.notify.slack.sdk")
_SDK_LOG.setLevel(logging.INFO)

DEFAULT_BASE_URL = "https://slack.com/api/"
TIMEOUT_SECONDS = 10
MAX_BLOCKS = 50  # Slack rejects more blocks per message
MAX_BLOCK_TEXT = 3000  # ... and longer section texts
TRUNCATED = "… (truncated)"
COLOURS = {"critical": "#d72b3f", "error": "#e8590c", "warning": "#f2c744", "info": "#439fe0"}
RESOLVED_COLOUR = "#2eb886"
MAX_CHARTS = 3  # charts uploaded per message (one per incident, in order)

# Errors that retrying cannot fix: credentials, scopes, the channel, or the message itself.
PERMANENT_ERRORS = frozenset(
    {
        "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "no_permission",
        "missing_scope", "not_allowed_token_type", "ekm_access_denied", "team_access_not_granted",
        "org_login_required", "access_denied", "channel_not_found", "not_in_channel", "is_archived",
        "channel_is_archived", "restricted_action", "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel", "restricted_action_non_threadable_channel",
        "cannot_reply_to_message", "msg_too_long", "no_text", "invalid_blocks", "invalid_attachments",
        "too_many_attachments", "invalid_arguments", "invalid_arg_name", "invalid_token", "no_service",
        "no_service_id", "no_team", "team_disabled", "action_prohibited", "posting_to_general_channel_denied",
        "invalid_payload", "user_not_found",
    }
)  # fmt: skip
# chat.update failures that only mean the original cannot be rewritten; the thread reply still goes out.
UPDATE_SKIPPABLE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


class SlackNotifier:
    """Sends notifications to one Slack channel (bot token) or one incoming webhook.

    With both a token and a webhook URL configured, the token wins: only it can thread and update.
    """

    def __init__(self, settings: SlackReceiver, templates: Templates) -> None:
        self._settings = settings
        self._templates = templates
        self._secrets = [s.get_secret_value() for s in (settings.token, settings.webhook_url) if s]
        self._client: WebClient | None = None
        self._webhook: WebhookClient | None = None
        if settings.token is not None and settings.channel:
            self._client = WebClient(
                token=settings.token.get_secret_value(),
                base_url=settings.base_url or DEFAULT_BASE_URL,
                timeout=TIMEOUT_SECONDS,
                logger=_SDK_LOG,
                retry_handlers=[],
            )
        elif settings.webhook_url is not None:
            url = settings.webhook_url.get_secret_value()
            if not url.startswith(("https://", "http://")):
                # slack-sdk would log the whole (secret) URL in its error; say what is wrong without it.
                raise ValueError("slack webhook_url must start with https://")
            self._webhook = WebhookClient(
                url,
                timeout=TIMEOUT_SECONDS,
                logger=_SDK_LOG,
                retry_handlers=[],
            )

    def compose(self, notification: Notification) -> dict[str, Any]:
        """The message exactly as posted: ``chat.postMessage`` arguments (a webhook gets the same
        without ``channel``; a reply in a thread adds ``thread_ts``). Raises ``RenderError``."""
        message = slack_message(self._templates.render(notification, "slack"), _colour(notification))
        return {"channel": self._settings.channel, **message} if self._client is not None else message

    def charts(self, notification: Notification) -> list[dict[str, Any]]:
        """The ``files_upload_v2`` uploads for a message: a PNG per incident that has a series."""
        uploads = []
        for incident in notification.incidents[:MAX_CHARTS]:
            png = render_chart(incident, self._templates.signal(incident.rule))
            if png is None:
                continue
            title = f"{incident.rule} ({labels(incident.group)})" if incident.group else incident.rule
            uploads.append(
                {
                    "file": png,
                    "filename": f"{incident.rule}.png",
                    "title": title,
                    "alt_txt": f"chart of {title}",
                }
            )
        return uploads

    def send(self, notification: Notification) -> Delivery:
        try:
            message = self.compose(notification)
        except RenderError as err:
            return Delivery(ok=False, error=self._redact(str(err)), permanent=True)
        message.pop("channel", None)
        try:
            if self._client is not None:
                return self._post(self._client, notification, message)
            assert self._webhook is not None  # the settings validator guarantees one mode
            return self._post_webhook(self._webhook, message)
        except SlackClientError as err:  # a misconfiguration the SDK refused before sending
            return Delivery(ok=False, error=self._redact(f"slack: {err}"), permanent=True)

    # ------------------------------------------------------------------ Web API

    def _post(self, client: WebClient, notification: Notification, message: dict[str, Any]) -> Delivery:
        delivery = self._post_in_thread(client, notification, message)
        if delivery.ok and delivery.ref is not None and self._settings.charts:
            thread_ts = delivery.ref.get("thread_ts") or delivery.ref["ts"]
            self._upload_charts(client, notification, str(delivery.ref["channel"]), str(thread_ts))
        return delivery

    def _post_in_thread(
        self, client: WebClient, notification: Notification, message: dict[str, Any]
    ) -> Delivery:
        thread = _thread(notification.thread_ref)
        if notification.event is Event.FIRING or thread is None:
            return self._post_message(client, self._settings.channel or "", message)
        channel, ts = thread
        if notification.event is Event.RESOLVED:
            failure = self._update_original(client, channel, ts, message)
            if failure is not None:
                return failure
        return self._post_message(client, channel, message, thread_ts=ts)

    def _upload_charts(
        self, client: WebClient, notification: Notification, channel: str, thread_ts: str
    ) -> None:
        # The message is delivered already: nothing here may fail the send (a retry would post it twice).
        try:
            uploads = self.charts(notification)
            if uploads:
                client.files_upload_v2(file_uploads=uploads, channel=channel, thread_ts=thread_ts)
        except SlackApiError as err:
            log.warning("chart not uploaded to Slack: %s", _error_code(err) or "error")
        except Exception as err:  # network, SDK, or drawing the chart
            log.warning("chart not uploaded to Slack: %s", self._redact(f"{type(err).__name__}: {err}"))

    def _post_message(
        self, client: WebClient, channel: str, message: dict[str, Any], thread_ts: str | None = None
    ) -> Delivery:
        try:
            answer = client.chat_postMessage(channel=channel, thread_ts=thread_ts, **message)
        except SlackApiError as err:
            return self._api_failure("chat.postMessage", err)
        except (OSError, HTTPException) as err:
            return self._network_failure("chat.postMessage", err)
        ref = {"channel": answer["channel"], "ts": answer["ts"]}
        return Delivery(ok=True, ref=ref if thread_ts is None else {**ref, "thread_ts": thread_ts})

    def _update_original(
        self, client: WebClient, channel: str, ts: str, message: dict[str, Any]
    ) -> Delivery | None:
        # Updated before the reply is posted: an update is idempotent, so when it fails and the
        # outbox retries, nothing has been posted twice.
        try:
            # Slack keeps the old attachments unless told otherwise: a one-paragraph message clears them.
            client.chat_update(channel=channel, ts=ts, **{"attachments": [], **message})
        except SlackApiError as err:
            if _error_code(err) in UPDATE_SKIPPABLE:
                log.info("original Slack message not updated: %s", _error_code(err))
                return None
            return self._api_failure("chat.update", err)
        except (OSError, HTTPException) as err:
            return self._network_failure("chat.update", err)
        return None

    # ------------------------------------------------------------------ incoming webhook

    def _post_webhook(self, webhook: WebhookClient, message: dict[str, Any]) -> Delivery:
        try:
            answer = webhook.send_dict(message)
        except (OSError, HTTPException) as err:
            return self._network_failure("webhook", err)
        if answer.status_code == 200:
            return Delivery(ok=True)
        code = (answer.body or "").strip()[:100]
        return self._failure("webhook", answer.status_code, code, answer.headers)

    # ------------------------------------------------------------------ outcomes

    def _api_failure(self, method: str, err: SlackApiError) -> Delivery:
        return self._failure(method, err.response.status_code, _error_code(err), err.response.headers)

    def _network_failure(self, method: str, err: Exception) -> Delivery:
        return Delivery(ok=False, error=self._redact(f"slack {method}: network error: {err}"))

    def _failure(self, method: str, status: int, code: str, headers: Mapping[str, Any]) -> Delivery:
        error = self._redact(f"slack {method}: {code or 'error'} (HTTP {status})")
        wait = retry_after(headers)
        if status == 429 or code == "ratelimited":
            return Delivery(ok=False, error=error, retry_after=wait)
        permanent = code in PERMANENT_ERRORS or (method == "webhook" and 400 <= status < 500)
        return Delivery(ok=False, error=error, retry_after=wait, permanent=permanent)

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def slack_message(text: str, colour: str) -> dict[str, Any]:
    """Lay rendered mrkdwn out for Slack: the first paragraph is the message text (and the preview);
    each further paragraph is a section of an attachment whose bar has the severity colour.

    Slack's limits are met by truncating with a visible marker, never by failing: at most
    ``MAX_BLOCKS`` sections of at most ``MAX_BLOCK_TEXT`` characters.
    """
    paragraphs = [part.strip() for part in re.split(r"\n[ \t]*\n", text) if part.strip()] or ["(empty)"]
    head, sections = _truncate(paragraphs[0]), [_truncate(part) for part in paragraphs[1:]]
    if not sections:
        return {"text": head}
    if len(sections) > MAX_BLOCKS:
        sections = [*sections[: MAX_BLOCKS - 1], TRUNCATED]
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": section}} for section in sections]
    return {"text": head, "attachments": [{"color": colour, "fallback": head, "blocks": blocks}]}


def _truncate(text: str) -> str:
    if len(text) <= MAX_BLOCK_TEXT:
        return text
    return text[: MAX_BLOCK_TEXT - len(TRUNCATED) - 1] + " " + TRUNCATED


def _colour(notification: Notification) -> str:
    if notification.event is Event.RESOLVED:
        return RESOLVED_COLOUR
    order = list(COLOURS)
    ranks = [order.index(i.severity) for i in notification.incidents if i.severity in COLOURS]
    return COLOURS[order[min(ranks)]] if ranks else COLOURS["warning"]


def _error_code(err: SlackApiError) -> str:
    data = err.response.data
    return str(data.get("error", "")) if isinstance(data, dict) else ""


def _thread(ref: Mapping[str, Any] | None) -> tuple[str, str] | None:
    if not ref or not ref.get("channel") or not ref.get("ts"):
        return None
    return str(ref["channel"]), str(ref["ts"])
