"""Slack through slack-sdk: ``chat.postMessage`` with a bot token, or an incoming webhook.

FIRING posts a new message; its ``{"channel", "ts"}`` comes back as ``Delivery.ref`` so UPDATE and
RESOLVED can reply in its thread, and RESOLVED also rewrites the original message to show the end.
Without a thread reference (or with a webhook, which cannot thread) every message is a new post.
With a bot token, a PNG chart of each incident's signal (the first ``MAX_CHARTS``) is uploaded into
the message's thread (``files_upload_v2``, scope ``files:write``) as a separate outbox step (a
follow-up ``Notification`` with ``part=CHARTS``): the post is recorded the moment Slack answers, so
a crash during the upload never posts the message again. A chart that Slack refuses for good
(missing scope) is skipped with a warning; the message is delivered either way.

Exactly once: each post carries its notification id in the message ``metadata``, and each chart
file its id in its name, so a send left in doubt by a crash is looked up before it is repeated
(``find``, ``watcher.notify.slack_lookup``). An incoming webhook cannot be asked: it is at least once.

The text comes from the ``slack/<event>.md.j2`` templates (mrkdwn, escaped per ``watcher.templates``);
this module only lays it out as Block Kit and talks to Slack. slack-sdk's own retry handlers are
switched off: retries, pacing and Retry-After waits belong to the outbox, which reads them from
the returned ``Delivery``. Error texts are built here from Slack's error code, never copied from the
SDK, and the token and webhook URL are scrubbed from anything that leaves this module.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from http.client import HTTPException
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from watcher.config import SlackReceiver
from watcher.filters import labels
from watcher.incidents.model import Event, Incident
from watcher.incidents.series import samples
from watcher.notify.answers import retry_after
from watcher.notify.base import CHARTS, Delivery, Notification
from watcher.notify.chart import MIN_SAMPLES, render_chart
from watcher.notify.pacing import Pace
from watcher.notify.slack_layout import slack_message, with_ack_buttons
from watcher.notify.slack_lookup import SlackLookup, SlackLookupError, metadata
from watcher.templates import RenderError, Templates

log = logging.getLogger("watcher.notify.slack")
# slack-sdk logs request URLs at DEBUG, and an incoming-webhook URL is a secret: keep its logger quieter.
_SDK_LOG = logging.getLogger("watcher.notify.slack.sdk")
_SDK_LOG.setLevel(logging.INFO)

DEFAULT_BASE_URL = "https://slack.com/api/"
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
        self._lookup: SlackLookup | None = None
        pace = settings.pace
        self._pace = None if pace is None else Pace(pace.per_second, pace.burst)
        # The bucket is the channel's: receivers naming the same channel (or webhook) share it.
        target = settings.channel or (settings.webhook_url.get_secret_value() if settings.webhook_url else "")
        self._pace_key = "slack:" + hashlib.sha256(f"{settings.base_url}|{target}".encode()).hexdigest()[:16]
        timeout = max(1, round(settings.timeout.total_seconds()))
        if settings.token is not None and settings.channel:
            self._client = WebClient(
                token=settings.token.get_secret_value(),
                base_url=settings.base_url or DEFAULT_BASE_URL,
                timeout=timeout,
                logger=_SDK_LOG,
                retry_handlers=[],
            )
            self._lookup = SlackLookup(self._client)
        elif settings.webhook_url is not None:
            url = settings.webhook_url.get_secret_value()
            if not url.startswith(("https://", "http://")):
                # slack-sdk would log the whole (secret) URL in its error; say what is wrong without it.
                raise ValueError("slack webhook_url must start with https://")
            self._webhook = WebhookClient(
                url,
                timeout=timeout,
                logger=_SDK_LOG,
                retry_handlers=[],
            )

    def compose(self, notification: Notification) -> dict[str, Any]:
        """The message exactly as posted: ``chat.postMessage`` arguments (a webhook gets the same
        without ``channel``; a reply in a thread adds ``thread_ts``). Raises ``RenderError``."""
        message = slack_message(self._templates.render(notification, "slack"), _colour(notification))
        if self._settings.app_token is not None and notification.event is Event.FIRING:
            message = with_ack_buttons(message, notification.incidents, _colour(notification))
        return {"channel": self._settings.channel, **message} if self._client is not None else message

    def charts(self, notification: Notification) -> list[dict[str, Any]]:
        """The ``files_upload_v2`` uploads for a message: a PNG per incident that has a series."""
        uploads = []
        for incident in _charted(notification):
            png = render_chart(incident, self._templates.signal(incident.rule))
            if png is None:
                continue
            title = f"{incident.rule} ({labels(incident.group)})" if incident.group else incident.rule
            uploads.append(
                {
                    "file": png,
                    "filename": chart_name(incident, notification.id),
                    "title": title,
                    "alt_txt": f"chart of {title}",
                }
            )
        return uploads

    def send(self, notification: Notification) -> Delivery:
        if notification.part == CHARTS:
            return self._send_charts(notification)
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

    def pace(self, notification: Notification) -> tuple[str, Pace] | None:
        """Messages share their channel's pace (``watcher.notify.base.Paced``); chart uploads do not
        count as messages (Slack limits files on their own, and answers 429 if they go too fast)."""
        if self._pace is None or notification.part == CHARTS:
            return None
        return self._pace_key, self._pace

    def find(self, notification: Notification, since: datetime) -> Delivery | None:
        """The in-doubt ``notification`` if Slack has it already (``watcher.notify.base.Reconciler``):
        a delivery with its ref (and the chart step still to do), None when it is not there."""
        if self._lookup is None:
            return None  # an incoming webhook cannot be asked
        thread = _thread(notification.thread_ref)
        try:
            if notification.part == CHARTS:
                if thread is None:
                    return None
                names = {chart_name(incident, notification.id) for incident in _charted(notification)}
                return Delivery(ok=True) if self._lookup.files(*thread, names, since) else None
            reply = notification.event is not Event.FIRING and thread is not None
            channel = thread[0] if reply and thread else self._settings.channel or ""
            found = self._lookup.message(
                channel, notification.id, since, thread[1] if reply and thread else None
            )
        except SlackLookupError as err:
            return Delivery(
                ok=False, error=self._redact(str(err)), retry_after=err.retry_after, maybe_sent=True
            )
        if found is None:
            return None
        ref = {"channel": found.channel, "ts": found.ts}
        if reply and thread is not None:
            ref["thread_ts"] = thread[1]
        return self._delivered(notification, ref)

    # ------------------------------------------------------------------ Web API

    def _post(self, client: WebClient, notification: Notification, message: dict[str, Any]) -> Delivery:
        delivery = self._post_in_thread(client, notification, message)
        if not delivery.ok or delivery.ref is None:
            return delivery
        return self._delivered(notification, delivery.ref)

    def _delivered(self, notification: Notification, ref: Mapping[str, Any]) -> Delivery:
        """A delivered message, with its chart upload as the next step when it has charts.

        Only a FIRING (or a reply in its thread) gives the conversation its ``ref``: a RESOLVED or
        UPDATE posted on its own -- an episode found after the fact, whose FIRING was never told --
        must not become the thread a later episode's RESOLVED rewrites and replies to."""
        kept = ref if notification.event is Event.FIRING or notification.thread_ref is not None else None
        if not self._settings.charts or not _charted(notification):
            return Delivery(ok=True, ref=kept)
        thread = {"channel": ref["channel"], "ts": ref.get("thread_ts") or ref["ts"]}
        step = replace(notification, id=f"{notification.id}.{CHARTS}", part=CHARTS, thread_ref=thread)
        return Delivery(ok=True, ref=kept, followups=(step,))

    def _post_in_thread(
        self, client: WebClient, notification: Notification, message: dict[str, Any]
    ) -> Delivery:
        thread = _thread(notification.thread_ref)
        if notification.event is Event.FIRING or thread is None:
            return self._post_message(client, self._settings.channel or "", message, notification.id)
        channel, ts = thread
        if notification.event is Event.RESOLVED:
            failure = self._update_original(client, channel, ts, message)
            if failure is not None:
                return failure
        return self._post_message(client, channel, message, notification.id, thread_ts=ts)

    def _send_charts(self, notification: Notification) -> Delivery:
        """The chart step: upload the charts into the message's thread. Slack refusing them for
        good (a missing ``files:write`` scope) skips them with a warning: the message is delivered."""
        thread = _thread(notification.thread_ref)
        if self._client is None or thread is None:
            return Delivery(ok=True)
        try:
            uploads = self.charts(notification)
            if uploads:
                self._client.files_upload_v2(file_uploads=uploads, channel=thread[0], thread_ts=thread[1])
        except SlackApiError as err:
            failure = self._api_failure("files.upload", err)
            if failure.permanent:
                log.warning("chart not uploaded to Slack: %s", _error_code(err) or "error")
                return Delivery(ok=True)
            return replace(failure, maybe_sent=True)
        except (OSError, HTTPException) as err:
            return replace(self._network_failure("files.upload", err), maybe_sent=True)
        return Delivery(ok=True)

    def _post_message(
        self,
        client: WebClient,
        channel: str,
        message: dict[str, Any],
        notification_id: str,
        thread_ts: str | None = None,
    ) -> Delivery:
        try:
            answer = client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, metadata=metadata(notification_id), **message
            )
        except SlackApiError as err:
            return self._api_failure("chat.postMessage", err)
        except (OSError, HTTPException) as err:
            # The request may have reached Slack before the connection broke: the retry looks first.
            return replace(self._network_failure("chat.postMessage", err), maybe_sent=True)
        if self._lookup is not None and thread_ts is None:
            self._lookup.learn(channel, str(answer["channel"]))
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


def _charted(notification: Notification) -> list[Incident]:
    """The incidents of a message that get a chart: the first ``MAX_CHARTS``, those with a series
    (``render_chart`` draws nothing for fewer samples). Read without drawing: the in-doubt lookup
    needs only their file names."""
    return [i for i in notification.incidents[:MAX_CHARTS] if len(samples(i.details)) >= MIN_SAMPLES]


def chart_name(incident: Incident, notification_id: str) -> str:
    """A chart's file name: the rule, the incident's fingerprint (the incidents of one grouped
    message often share a rule) and the message's notification id, by which an in-doubt upload
    is found in the thread (``find``)."""
    return f"{incident.rule}.{incident.fingerprint[:8]}.{notification_id.split('.')[0][:12]}.png"
