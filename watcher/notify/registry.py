"""The one list of notifiers: receiver kind (the key under a receiver in ``watcher.yaml``) -> factory.

A new channel is one module and one line here (plus its ``Receiver`` field in ``watcher.config`` and
its escaper in ``watcher.channels.CHANNELS``).
"""

from __future__ import annotations

import importlib

from watcher.config import Receiver
from watcher.notify.base import Notifier
from watcher.templates import Templates

# Receiver kind -> "module:class". Each class takes the receiver's settings model
# (``Receiver.settings``) and the templates. Modules are imported only for the kinds configured,
# so a daemon without Slack does not load slack-sdk (RSS is a budget: 150 MB with 1,000 rules).
NOTIFIERS: dict[str, str] = {
    "console": "watcher.notify.console:ConsoleNotifier",
    "slack": "watcher.notify.slack:SlackNotifier",
    "email": "watcher.notify.email:EmailNotifier",
    "sms": "watcher.notify.sms:SmsNotifier",
    "webhook": "watcher.notify.webhook:WebhookNotifier",
}


def build_notifier(name: str, receiver: Receiver, templates: Templates) -> Notifier:
    """The notifier for one configured receiver, with the receiver's template overrides applied."""
    target = NOTIFIERS.get(receiver.kind)
    if target is None:
        known = ", ".join(sorted(NOTIFIERS))
        raise ValueError(f"receiver {name!r}: no notifier for {receiver.kind!r} (known: {known})")
    module, _, attribute = target.partition(":")
    factory = getattr(importlib.import_module(module), attribute)
    notifier: Notifier = factory(receiver.settings, templates.for_receiver(receiver.templates))
    return notifier
