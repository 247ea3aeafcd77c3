"""Every notifier's failure paths, through the real outbox: no token, password or secret URL in
errors, stored errors, logs, output or template context (see ``secret_leaks.py``)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import responses
from pydantic import SecretStr
from samples import RULE
from secret_leaks import deliver_and_check
from slack_server import SlackServer
from smtp_server import Certificate, SmtpServer

from watcher.config import EmailReceiver, SlackReceiver, SmsReceiver, WebhookReceiver
from watcher.notify.email import EmailNotifier
from watcher.notify.slack import SlackNotifier
from watcher.notify.sms import SmsNotifier
from watcher.notify.webhook import WebhookNotifier
from watcher.templates import Templates

TEMPLATES = Templates(rules=[RULE])
TOKEN = "xoxb-leaky-token-0000111122223333"
PASSWORD = "smtp-password-that-must-not-leak"
TWILIO_SID = "AC99990000111122223333444455556666"
TWILIO_TOKEN = "twilio-token-that-must-not-leak"
HMAC_SECRET = "hmac-secret-that-must-not-leak"
BEARER = "Bearer header-secret-that-must-not-leak"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


Check = Callable[..., str]


@pytest.fixture
def check(tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Check:
    def run(notifier: object, *secrets: str) -> str:
        return deliver_and_check(notifier, secrets, tmp_path, caplog, capsys, TEMPLATES)  # type: ignore[arg-type]

    return run


# --------------------------------------------------------------------------- Slack


def test_slack_bot_token(slack_server: SlackServer, check: Check) -> None:
    wrong = SlackReceiver(token=SecretStr(TOKEN), channel="#a", base_url=slack_server.base_url)
    assert (
        check(SlackNotifier(wrong, TEMPLATES), TOKEN)
        == "permanent failure: slack chat.postMessage: invalid_auth (HTTP 200)"
    )


def test_slack_bot_token_on_network_errors(check: Check) -> None:
    settings = SlackReceiver(
        token=SecretStr(TOKEN), channel="#a", base_url=f"http://127.0.0.1:{free_port()}/api/"
    )
    check(SlackNotifier(settings, TEMPLATES), TOKEN)


@pytest.mark.parametrize("failure", ["invalid_token", "network"])
def test_slack_webhook_url(slack_server: SlackServer, check: Check, failure: str) -> None:
    url = (
        slack_server.webhook_url
        if failure != "network"
        else f"http://127.0.0.1:{free_port()}/services/T0/B0/zz-secret"
    )
    if failure != "network":
        slack_server.fail(failure)
    check(SlackNotifier(SlackReceiver(webhook_url=SecretStr(url)), TEMPLATES), url, url.rsplit("/", 1)[1])


# --------------------------------------------------------------------------- email


def email(server_port: int, security: str, cert: Certificate | None) -> EmailNotifier:
    settings = EmailReceiver.model_validate(
        {"to": ["a@example.com"], "from": "w@example.com", "host": "127.0.0.1", "port": server_port,
         "security": security, "username": "watcher", "password": PASSWORD, "timeout": "5s",
         "ca_certs": cert.cert if cert else None}
    )  # fmt: skip
    return EmailNotifier(settings, TEMPLATES)


def test_email_password_on_refused_login(
    smtp_server: Callable[..., SmtpServer], smtp_certificate: Certificate, check: Check
) -> None:
    server = smtp_server(security="starttls", users={"watcher": "another"})
    error = check(email(server.port, "starttls", smtp_certificate), PASSWORD)
    assert error.startswith("permanent failure: email: authentication failed: 535")


def test_email_password_on_refused_recipient(
    smtp_server: Callable[..., SmtpServer], smtp_certificate: Certificate, check: Check
) -> None:
    server = smtp_server(security="starttls", users={"watcher": PASSWORD})
    server.refuse("RCPT", f"550 unknown user (password was {PASSWORD})")  # a server that echoes it
    check(email(server.port, "starttls", smtp_certificate), PASSWORD)


def test_email_password_on_network_errors(check: Check) -> None:
    check(email(free_port(), "tls", None), PASSWORD)


# --------------------------------------------------------------------------- SMS


def sms() -> SmsNotifier:
    settings = SmsReceiver.model_validate(
        {"to": ["+15550100"], "from": "+15550199", "account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN}
    )
    return SmsNotifier(settings, TEMPLATES)


def test_sms_auth_token_on_error_answers(check: Check) -> None:
    url = f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    with responses.RequestsMock() as twilio:
        twilio.post(
            url, json={"code": 20003, "message": f"bad {TWILIO_SID}:{TWILIO_TOKEN} at {url}"}, status=401
        )
        check(sms(), TWILIO_TOKEN, TWILIO_SID)


def test_sms_auth_token_on_network_errors(check: Check) -> None:
    url = f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    with responses.RequestsMock() as twilio:
        twilio.post(url, body=requests.ConnectionError(f"Max retries exceeded with url: {url}"))
        check(sms(), TWILIO_TOKEN, TWILIO_SID)


# --------------------------------------------------------------------------- webhook


def webhook(url: str) -> WebhookNotifier:
    settings = WebhookReceiver.model_validate(
        {"url": url, "secret": HMAC_SECRET, "headers": {"Authorization": BEARER}}
    )
    return WebhookNotifier(settings, TEMPLATES)


def test_webhook_url_header_and_secret_on_error_answers(slack_server: SlackServer, check: Check) -> None:
    # A 404 from a local server (the fake Slack, for an unknown path): urllib3 would log the path.
    url = f"{slack_server.url}/services/other/path-secret-token"
    check(webhook(url), url, "path-secret-token", HMAC_SECRET, BEARER)


def test_webhook_url_header_and_secret_on_network_errors(check: Check) -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks/path-secret-token"
    check(webhook(url), url, "path-secret-token", HMAC_SECRET, BEARER)
