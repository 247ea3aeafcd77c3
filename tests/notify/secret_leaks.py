"""A shared check, run on every notifier's failure paths (as Alertmanager's notify/test does):
a failed delivery goes through the real outbox and state file, and its secrets must not show in
the returned error, the stored error (what ``watcher incidents`` and dead letters show), anything
logged at any level, anything printed, or the context its templates are rendered with.

(Named ``secret_leaks`` rather than ``secrets``: a test module called ``secrets`` would shadow the
standard library's.)
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

import pytest
from samples import NOW, notification

from watcher.channels import CHANNELS
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification, Notifier
from watcher.notify.outbox import Outbox, RetryPolicy
from watcher.templates import Templates

TEST_SERVERS = ("mail.log",)


def assert_no_leak(secrets: Iterable[str], *texts: str) -> None:
    for secret in secrets:
        assert secret, "a test secret must not be empty"
        for text in texts:
            assert secret not in text, f"secret {secret[:4]}... leaked into: {text[:300]!r}"


def deliver_and_check(
    notifier: Notifier,
    secrets: Iterable[str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    templates: Templates | None = None,
    sent: Notification | None = None,
) -> str:
    """Drain one notification through ``notifier`` (expected to fail) and check every output for
    ``secrets``. Returns the error the outbox stored, for the caller's own assertions."""
    secrets = list(secrets)
    caplog.set_level(logging.DEBUG)
    sent = sent or notification(receiver="under-test")
    with StateStore(tmp_path / "state.sqlite") as store:
        store.commit(list(sent.incidents), [], [sent])
        policy = RetryPolicy(max_attempts=1)
        clock = lambda: NOW + timedelta(seconds=1)  # noqa: E731
        outbox = Outbox(store, {sent.receiver: notifier}, policy, clock=clock, rng=random.Random(1))
        report = outbox.drain()
        item = store.outbox_item(sent.id)
    assert report.sent == 0, "the scenario was meant to fail"
    assert item is not None
    printed = capsys.readouterr()
    # Everything logged in the process but by the test servers (aiosmtpd logs what it receives).
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(TEST_SERVERS))
    assert_no_leak(secrets, item.last_error or "", logged, printed.out, printed.err)
    if templates is not None:
        for channel in CHANNELS:
            assert_no_leak(secrets, repr(templates.context(sent, channel)))
    return item.last_error or ""
