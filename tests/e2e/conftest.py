"""Fixtures for the e2e tests: the fake Slack of tests/notify, on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.notify.slack_server import SlackServer


@pytest.fixture
def slack_server() -> Iterator[SlackServer]:
    with SlackServer() as server:
        yield server
