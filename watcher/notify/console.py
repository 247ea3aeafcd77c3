"""Prints notifications: readable lines (the demo, a safe default) or one JSON object per line.

The text comes from the ``console/<event>.txt.j2`` templates; terminal control characters from
log data are escaped there, and JSON output escapes them by construction.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from watcher.config import ConsoleReceiver
from watcher.incidents.series import SERIES_KEY
from watcher.notify.base import Delivery, Notification
from watcher.templates import RenderError, Templates


class ConsoleNotifier:
    """Writes to ``stream``; standard output (looked up at each send, so redirection works) if None."""

    def __init__(self, settings: ConsoleReceiver, templates: Templates, stream: TextIO | None = None) -> None:
        self._settings = settings
        self._templates = templates
        self._stream = stream

    def compose(self, notification: Notification) -> str:
        """The line(s) written for a notification, without the final newline. Raises ``RenderError``."""
        text = self._templates.render(notification, "console")
        if self._settings.format == "json":
            text = json.dumps(self._record(notification, text), ensure_ascii=False, default=str)
        return text.rstrip("\n")

    def send(self, notification: Notification) -> Delivery:
        try:
            text = self.compose(notification)
        except RenderError as err:
            return Delivery(ok=False, error=str(err), permanent=True)
        stream = self._stream or sys.stdout
        try:
            stream.write(text + "\n")
            stream.flush()
        except (OSError, ValueError) as err:  # a closed or broken stream
            return Delivery(ok=False, error=f"console: cannot write: {err}")
        return Delivery(ok=True)

    def _record(self, notification: Notification, text: str) -> dict[str, Any]:
        """The JSON form: the rendered text plus the incidents with their rendered annotations."""
        views = self._templates.context(notification, "console")["incidents"]
        # The recent series (for charts) would make every line kilobytes long.
        incidents = [
            {
                **incident.to_json(),
                "annotations": dict(view["annotations"]),
                "details": {k: v for k, v in incident.details.items() if k != SERIES_KEY},
            }
            for incident, view in zip(notification.incidents, views, strict=True)
        ]
        return {
            "id": notification.id,
            "receiver": notification.receiver,
            "event": notification.event.value,
            "at": notification.created_at.isoformat(),
            "text": text.strip(),
            "incidents": incidents,
        }
