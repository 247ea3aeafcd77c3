"""Fixtures for the e2e tests: the fake Slack of tests/notify and an osmem-server with the index
``app-logs`` (time field ``ts``), on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.outage import SearchServer
from tests.notify.slack_server import SlackServer


@pytest.fixture
def slack_server() -> Iterator[SlackServer]:
    with SlackServer() as server:
        yield server


@pytest.fixture
def server() -> Iterator[SearchServer]:
    started = SearchServer()
    started.request("PUT", "/app-logs", {"mappings": {"properties": {"ts": {"type": "date"}}}})
    yield started
    started.close()
