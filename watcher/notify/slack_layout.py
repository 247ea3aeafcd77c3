"""How a rendered Slack message is laid out: its paragraphs as the text and the sections of a
coloured attachment, within Slack's limits (truncated with a visible marker, never refused), and
the Acknowledge buttons whose clicks reach the daemon through Socket Mode
(``watcher.process.slack_actions``). Pure: ``watcher.notify.slack`` sends what this builds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from watcher.filters import labels
from watcher.incidents.model import Incident

MAX_BLOCKS = 50  # Slack rejects more blocks per message
MAX_BLOCK_TEXT = 3000  # ... and longer section texts
TRUNCATED = "… (truncated)"


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


ACK_ACTION = "watcher_ack"
"""The ``action_id`` of the Acknowledge button; its ``value`` is the incident's fingerprint."""
MAX_BUTTONS = 5  # Slack's limit of elements in an actions block is 25; more buttons read as noise


def with_ack_buttons(message: dict[str, Any], incidents: Sequence[Incident], colour: str) -> dict[str, Any]:
    """``message`` with an Acknowledge button per incident (the first ``MAX_BUTTONS``) in its
    attachment, whose clicks reach the daemon through Socket Mode (``watcher.process.slack_actions``)."""
    buttons = [
        {
            "type": "button",
            "action_id": f"{ACK_ACTION}.{rank}",
            "value": incident.fingerprint,
            "text": {"type": "plain_text", "text": _button_text(incident, len(incidents))},
        }
        for rank, incident in enumerate(incidents[:MAX_BUTTONS])
    ]
    attachments = message.get("attachments") or [{"color": colour, "fallback": message["text"], "blocks": []}]
    actions = {"type": "actions", "elements": buttons}
    first = {**attachments[0], "blocks": [*attachments[0]["blocks"][: MAX_BLOCKS - 1], actions]}
    return {**message, "attachments": [first, *attachments[1:]]}


def _button_text(incident: Incident, count: int) -> str:
    if count == 1 or not incident.group:
        return "Acknowledge"
    return f"Acknowledge {labels(incident.group)}"[:75]  # Slack's limit for a button's text


def _truncate(text: str) -> str:
    if len(text) <= MAX_BLOCK_TEXT:
        return text
    return text[: MAX_BLOCK_TEXT - len(TRUNCATED) - 1] + " " + TRUNCATED
