"""The one list of notifiers: receiver kind (the key under a receiver in ``watcher.yaml``) -> factory.

A new channel is one module and one line here (plus its ``Receiver`` field in ``watcher.config`` and
its escaper in ``watcher.templates.CHANNELS``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from watcher.config import Receiver
from watcher.notify.base import Notifier
from watcher.notify.console import ConsoleNotifier
from watcher.notify.slack import SlackNotifier
from watcher.templates import Templates

# Each factory takes the receiver's settings model (``Receiver.settings``) and the templates.
NOTIFIERS: dict[str, Callable[[Any, Templates], Notifier]] = {
    "console": ConsoleNotifier,
    "slack": SlackNotifier,
}


def build_notifier(name: str, receiver: Receiver, templates: Templates) -> Notifier:
    """The notifier for one configured receiver, with the receiver's template overrides applied."""
    factory = NOTIFIERS.get(receiver.kind)
    if factory is None:
        known = ", ".join(sorted(NOTIFIERS))
        raise ValueError(f"receiver {name!r}: no notifier for {receiver.kind!r} (known: {known})")
    return factory(receiver.settings, templates.for_receiver(receiver.templates))
