"""Fixtures for notifier tests: a fake Slack server (``slack_server.py``), a webhook endpoint
(``hook``) and real SMTP servers (aiosmtpd, ``smtp_server.py``), all on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from hook_server import Hook, serve_hook
from slack_server import SlackServer
from smtp_server import Certificate, SmtpServer, make_certificate


@pytest.fixture
def slack_server() -> Iterator[SlackServer]:
    """A fresh fake Slack on 127.0.0.1 for one test; ``.base_url``, ``.webhook_url``, ``.token``."""
    with SlackServer() as server:
        yield server


@pytest.fixture(scope="session")
def smtp_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1; its ``cert`` file is the CA to trust."""
    folder: Path = tmp_path_factory.mktemp("smtp-tls")
    return make_certificate(folder)


@pytest.fixture
def smtp_server(smtp_certificate: Certificate) -> Iterator[Callable[..., SmtpServer]]:
    """Starts aiosmtpd servers for one test: ``smtp_server(security="starttls", users={...})``."""
    with ExitStack() as stack:

        def start(**options: Any) -> SmtpServer:
            options.setdefault("cert", smtp_certificate)
            return stack.enter_context(SmtpServer(**options))

        yield start


@pytest.fixture
def hook() -> Iterator[Hook]:
    """A webhook endpoint on 127.0.0.1 for one test (``hook_server.Hook``)."""
    with serve_hook() as endpoint:
        yield endpoint
