"""Is this message already in Slack? The lookup behind exactly-once delivery to Slack.

Every message watcher posts carries its notification id in Slack's message ``metadata``
(``event_type: watcher_notification``), and every chart it uploads carries it in the file name.
When a send is in doubt -- the daemon died after the request went out, or no answer came back --
the outbox asks here before posting again: ``conversations.history`` (a top-level post) or
``conversations.replies`` (a reply, a chart in a thread) in the target channel, from a little
before the in-doubt attempt started, with ``include_all_metadata``. Found: the send is recorded
with the ``ts`` Slack has; not found: it is posted.

Scopes: ``channels:history`` (``groups:history`` for a private channel) to read the channel, and
``channels:read`` (``groups:read``) when the receiver names the channel (``#alerts``) rather than
by id (``C0123…``). Without them the lookup cannot be made: watcher logs a warning and posts
(at least once: a crash in the send's last milliseconds may then show a message twice). A lookup
that fails for a reason that passes (network, 429, 5xx) sends nothing and is tried again later.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.client import HTTPException
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web import WebClient

from watcher.notify.answers import retry_after

log = logging.getLogger("watcher.notify.slack")

EVENT_TYPE = "watcher_notification"
SKEW = timedelta(minutes=1)  # look this much before the attempt started: Slack's clock is not ours
MAX_PAGES = 10  # of 200 messages: an in-doubt send is among the channel's newest
PAGE = 200
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
# Errors that mean the lookup can never be made with this token: post rather than wait forever.
CANNOT_LOOK = frozenset({"missing_scope", "not_allowed_token_type", "no_permission", "not_in_channel"})


def metadata(notification_id: str) -> dict[str, Any]:
    """The ``metadata`` argument of ``chat.postMessage`` that names the notification."""
    return {"event_type": EVENT_TYPE, "event_payload": {"notification_id": notification_id}}


class SlackLookupError(Exception):
    """Slack could not be asked now (network, rate limit, server error): try again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Found:
    """Where the in-doubt message is: its channel id and ``ts``."""

    channel: str
    ts: str


class SlackLookup:
    """Finds watcher's own messages and charts in one Slack workspace (one receiver's token)."""

    def __init__(self, client: WebClient) -> None:
        self._client = client
        self._ids: dict[str, str] = {}  # channel name -> id, learnt from posts and conversations.list

    def learn(self, channel: str, channel_id: str) -> None:
        """Remember the id Slack answered a post to ``channel`` with (saves a conversations.list)."""
        self._ids[channel] = channel_id

    def message(
        self, channel: str, notification_id: str, since: datetime, thread_ts: str | None = None
    ) -> Found | None:
        """The message carrying ``notification_id`` posted since ``since`` (less ``SKEW``), in the
        channel or, with ``thread_ts``, in that thread. None when Slack does not have it, or when
        this token cannot look (logged). Raises ``SlackLookupError`` when Slack cannot be asked now."""
        channel_id = self._channel_id(channel)
        if channel_id is None:
            return None
        for message in self._messages(channel_id, since, thread_ts):
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("notification_id") == notification_id:
                return Found(channel_id, str(message["ts"]))
        return None

    def files(self, channel: str, thread_ts: str, names: set[str], since: datetime) -> bool:
        """Whether every file named in ``names`` is already shared in the thread (a chart upload
        that completed before the daemon could record it)."""
        channel_id = self._channel_id(channel)
        if channel_id is None or not names:
            return False
        shared = {
            str(file.get("name"))
            for message in self._messages(channel_id, since, thread_ts)
            for file in message.get("files") or []
        }
        return names <= shared

    # ------------------------------------------------------------------ Slack calls

    def _messages(
        self, channel_id: str, since: datetime, thread_ts: str | None
    ) -> Iterator[Mapping[str, Any]]:
        oldest = f"{(since - SKEW).timestamp():.6f}"
        cursor = None
        for _ in range(MAX_PAGES):
            args: dict[str, Any] = {
                "channel": channel_id,
                "oldest": oldest,
                "limit": PAGE,
                "include_all_metadata": True,
                "cursor": cursor,
            }
            if thread_ts is None:
                answer = self._call("conversations.history", self._client.conversations_history, args)
            else:
                answer = self._call(
                    "conversations.replies", self._client.conversations_replies, {**args, "ts": thread_ts}
                )
            if answer is None:
                return
            yield from answer.get("messages") or []
            cursor = (answer.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return

    def _channel_id(self, channel: str) -> str | None:
        if _CHANNEL_ID.match(channel):
            return channel
        if channel in self._ids:
            return self._ids[channel]
        name, cursor = channel.lstrip("#"), None
        for _ in range(MAX_PAGES):
            args = {
                "types": "public_channel,private_channel",
                "exclude_archived": True,
                "limit": 1000,
                "cursor": cursor,
            }
            answer = self._call("conversations.list", self._client.conversations_list, args)
            if answer is None:
                return None
            for found in answer.get("channels") or []:
                if found.get("name") == name:
                    self._ids[channel] = str(found["id"])
                    return self._ids[channel]
            cursor = (answer.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        log.warning(
            "Slack channel %s not found by conversations.list: cannot look for in-doubt sends", channel
        )
        return None

    @staticmethod
    def _call(method: str, call: Any, args: dict[str, Any]) -> Mapping[str, Any] | None:
        """One lookup call: its data; None when this token can never make it (logged); raises
        ``SlackLookupError`` when it may work later."""
        try:
            return dict(call(**{key: value for key, value in args.items() if value is not None}).data)
        except SlackApiError as err:
            data = err.response.data
            code = str(data.get("error", "")) if isinstance(data, dict) else ""
            if code in CANNOT_LOOK:
                log.warning("Slack %s refused (%s): in-doubt sends are posted without a lookup", method, code)
                return None
            raise SlackLookupError(
                f"slack {method}: {code or 'error'} (HTTP {err.response.status_code})",
                retry_after(err.response.headers),
            ) from None
        except (OSError, HTTPException) as err:
            raise SlackLookupError(f"slack {method}: network error: {type(err).__name__}") from None
