"""Fixtures for notifier tests: a fake Slack server (see ``slack_server.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_server import SlackServer


@pytest.fixture
def slack_server() -> Iterator[SlackServer]:
    """A fresh fake Slack on 127.0.0.1 for one test; ``.base_url``, ``.webhook_url``, ``.token``."""
    with SlackServer() as server:
        yield server
