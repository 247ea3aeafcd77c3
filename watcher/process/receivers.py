"""The daemon's receivers, built from the config: a notifier per receiver, the Slack Acknowledge
button's Socket Mode connections, and how long one send may take (the shutdown's wait for sends
in flight). Built at start and again at each reload (``watcher.process.daemon``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from watcher.config import Config
from watcher.notify.base import Notifier
from watcher.notify.registry import build_notifier
from watcher.templates import Templates

if TYPE_CHECKING:
    from watcher.incidents.state import StateStore
    from watcher.process.slack_actions import SlackActions


def slack_actions(config: Config, state: StateStore, clock: Callable[[], datetime]) -> SlackActions | None:
    """The Acknowledge button's Socket Mode connections, when a Slack receiver has an ``app_token``
    (slack-sdk's socket mode is imported only then). A reload does not change them: a restart does."""
    slack = [receiver.slack for receiver in config.receivers.values() if receiver.slack is not None]
    if not any(settings.app_token is not None for settings in slack):
        return None
    from watcher.process.slack_actions import SlackActions

    return SlackActions(config, state, clock)


def longest_send(config: Config) -> timedelta:
    """The longest one send may take: the largest receiver timeout (10s by default)."""
    timeouts = [getattr(receiver.settings, "timeout", None) for receiver in config.receivers.values()]
    return max([t for t in timeouts if isinstance(t, timedelta)], default=timedelta(seconds=10))


def notifiers(config: Config, templates: Templates) -> dict[str, Notifier]:
    """One notifier per configured receiver, rendering with the config's templates."""
    return {name: build_notifier(name, receiver, templates) for name, receiver in config.receivers.items()}
