"""EmailNotifier with smtplib against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
from pydantic import SecretStr
from samples import EVIDENCE, LONG_ERROR, RULE, SECRET_TOKEN, incident, notification, resolved
from smtp_server import Certificate, SmtpServer

from watcher.config import EmailReceiver
from watcher.incidents.model import Event
from watcher.notify.base import Delivery
from watcher.notify.email import EmailNotifier, subject
from watcher.templates import Templates

StartServer = Callable[..., SmtpServer]
PASSWORD = "s3cret-smtp-password"


def notifier(server: SmtpServer | None, cert: Certificate | None = None, **settings: Any) -> EmailNotifier:
    values: dict[str, Any] = {
        "to": ["oncall@example.com"],
        "from": "watcher <watcher@example.com>",
        "host": "127.0.0.1",
        "port": server.port if server else 1,
        "security": server.security if server else "none",
        "ca_certs": cert.cert if cert else None,
        "timeout": "5s",
        **settings,
    }
    return EmailNotifier(EmailReceiver.model_validate(values), Templates(rules=[RULE]))


def parts(message: EmailMessage) -> list[str]:
    return [part.get_content_type() for part in message.walk()]


# --------------------------------------------------------------------------- delivery


def test_evidence_is_a_table_in_html_and_lines_in_text_escaped_redacted_and_cut(
    smtp_server: StartServer,
) -> None:
    server = smtp_server()
    assert notifier(server).send(notification(Event.FIRING, incident(evidence=EVIDENCE))).ok

    [received] = server.messages
    text, html = (received.message.get_body((kind,)) for kind in ("plain", "html"))
    assert text is not None
    assert html is not None
    plain, markup = text.get_content().replace("\r\n", "\n"), html.get_content()
    assert "  Sample logs:\n    status=503 route=/predict <!channel> " in plain
    assert f"error.message={LONG_ERROR[:99]}… " in plain  # cut at 100 characters
    assert "<th style" in markup
    assert ">error.message</th>" in markup
    assert f">{LONG_ERROR[:79]}…</td>" in markup  # cut at 80 characters
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    assert "<script>" not in markup
    assert ">[redacted]</td>" in markup
    assert SECRET_TOKEN not in received.message.as_string()


def test_starttls_with_auth_delivers_text_html_and_an_inline_chart(
    smtp_server: StartServer, smtp_certificate: Certificate
) -> None:
    server = smtp_server(security="starttls", users={"watcher": PASSWORD})
    email = notifier(server, smtp_certificate, username="watcher", password=PASSWORD)

    assert email.send(notification()) == Delivery(ok=True)

    [received] = server.messages
    assert (received.mail_from, received.rcpt_tos) == ("watcher@example.com", ["oncall@example.com"])
    assert (received.login, received.encrypted) == ("watcher", True)
    message = received.message
    assert message["Subject"] == "[CRITICAL] 5xx rate 7.12% for model v2"
    assert message["From"] == "watcher <watcher@example.com>"
    assert message["To"] == "oncall@example.com"
    assert message["Date"] == "Wed, 01 May 2024 12:00:00 +0000"
    assert message["X-Watcher-Event"] == "firing"
    assert parts(message) == [
        "multipart/alternative",
        "text/plain",
        "multipart/related",
        "text/html",
        "image/png",
    ]
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "Value 7.12% vs threshold 5%, firing since 12m ago." in text.get_content()
    assert "Runbook: https://runbooks.example.com/5xx" in text.get_content()
    [image] = [part for part in message.walk() if part.get_content_type() == "image/png"]
    cid = image["Content-ID"].strip("<>")
    assert f'<img src="cid:{cid}"' in html.get_content()
    assert image.get_content().startswith(b"\x89PNG")


# aiosmtpd warns that its AUTH does not require STARTTLS: with implicit TLS there is none to require.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls_delivers(smtp_server: StartServer, smtp_certificate: Certificate) -> None:
    server = smtp_server(security="tls", users={"watcher": PASSWORD})
    email = notifier(server, smtp_certificate, username="watcher", password=PASSWORD)
    assert email.send(notification()).ok
    assert [(m.login, m.encrypted) for m in server.messages] == [("watcher", True)]


def test_plain_smtp_without_auth_and_without_charts(smtp_server: StartServer) -> None:
    server = smtp_server(security="none")
    assert notifier(server, charts=False).send(notification()).ok
    assert parts(server.messages[0].message) == ["multipart/alternative", "text/plain", "text/html"]


def test_an_incident_without_series_has_no_chart(smtp_server: StartServer) -> None:
    server = smtp_server()
    assert notifier(server).send(notification(Event.FIRING, incident(details={}))).ok
    assert "image/png" not in parts(server.messages[0].message)


def test_updates_and_resolved_reply_to_the_firing_message(smtp_server: StartServer) -> None:
    server = smtp_server()
    email = notifier(server)
    assert email.send(notification()).ok
    assert email.send(notification(Event.RESOLVED, resolved(), id="n2")).ok

    firing, done = (received.message for received in server.messages)
    assert firing["Message-ID"].endswith("@example.com>")
    assert "In-Reply-To" not in firing
    assert done["In-Reply-To"] == done["References"] == firing["Message-ID"]
    assert done["Message-ID"] == "<n2@example.com>"
    assert done["Subject"] == "[RESOLVED] prediction-5xx (model_version=v2) after 10m"


# --------------------------------------------------------------------------- hostile log data


def test_line_breaks_in_log_data_cannot_inject_headers(smtp_server: StartServer) -> None:
    server = smtp_server()
    hostile = incident(group={"model_version": "v2\r\nBcc: thief@example.com\r\n\r\nfake body"})

    assert notifier(server).send(notification(Event.FIRING, hostile)).ok

    [received] = server.messages
    message = received.message
    assert received.rcpt_tos == ["oncall@example.com"]
    assert "Bcc" not in message
    assert message["Subject"] == "[CRITICAL] 5xx rate 7.12% for model v2 Bcc: thief@example.com fake body"


def test_subject_is_one_line_of_bounded_length() -> None:
    assert subject("  a\r\n b\u2028c\td  ") == "a b c d"
    long = subject("x" * 500)
    assert len(long) == 200
    assert long.endswith("…")


def test_html_from_log_data_is_escaped(smtp_server: StartServer) -> None:
    server = smtp_server()
    hostile = incident(group={"model_version": '<script>alert("x")</script>'})
    assert notifier(server).send(notification(Event.FIRING, hostile)).ok
    html = server.messages[0].message.get_body(("html",))
    assert html is not None
    assert "<script>" not in html.get_content()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html.get_content()


# --------------------------------------------------------------------------- failure answers


@pytest.mark.parametrize(
    ("command", "reply", "permanent"),
    [
        ("RCPT", "550 5.1.1 no such user", True),
        ("RCPT", "451 4.3.0 try again later", False),
        ("DATA", "554 5.7.1 rejected as spam", True),
        ("DATA", "452 4.3.1 insufficient storage", False),
        ("MAIL", "553 5.1.8 sender domain unknown", True),
    ],
)
def test_smtp_refusals_are_permanent_for_5xx_and_retryable_for_4xx(
    smtp_server: StartServer, command: Any, reply: str, permanent: bool
) -> None:
    server = smtp_server()
    server.refuse(command, reply)
    delivery = notifier(server).send(notification())
    what = "recipients refused: oncall@example.com (" if command == "RCPT" else "refused: "
    assert delivery.error == f"email: {what}{reply}" + (")" if command == "RCPT" else "")
    assert (delivery.ok, delivery.permanent) == (False, permanent)
    assert server.messages == []


def test_one_refused_recipient_of_two_still_delivers(
    smtp_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = smtp_server()
    server.refuse("RCPT", "550 5.1.1 no such user")
    email = notifier(server, to=["gone@example.com", "oncall@example.com"])

    assert email.send(notification()) == Delivery(ok=True)

    assert server.messages[0].rcpt_tos == ["oncall@example.com"]
    assert "some recipients refused: gone@example.com (550 5.1.1 no such user)" in caplog.text


def test_a_wrong_password_is_permanent_and_never_shown(
    smtp_server: StartServer, smtp_certificate: Certificate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = smtp_server(security="starttls", users={"watcher": "right"})
    delivery = notifier(server, smtp_certificate, username="watcher", password=PASSWORD).send(notification())

    assert delivery == Delivery(
        ok=False, error="email: authentication failed: 535 5.7.8 Authentication credentials invalid",
        permanent=True,
    )  # fmt: skip
    assert set(server.logins) == {("watcher", PASSWORD)}  # smtplib tries PLAIN, then LOGIN
    assert PASSWORD not in caplog.text


def test_a_refused_connection_is_retryable() -> None:
    with socket.socket() as probe:  # a port on 127.0.0.1 that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    delivery = notifier(None, port=port).send(notification())
    assert (delivery.ok, delivery.permanent) == (False, False)
    assert delivery.error == f"email: 127.0.0.1:{port}: [Errno 111] Connection refused"


def test_an_untrusted_certificate_is_refused_and_retried(smtp_server: StartServer) -> None:
    server = smtp_server(security="starttls")
    delivery = notifier(server).send(notification())  # no ca_certs: the self-signed cert is not trusted
    assert (delivery.ok, delivery.permanent) == (False, False)
    assert "CERTIFICATE_VERIFY_FAILED" in delivery.error
    assert server.messages == []


def test_starttls_required_but_not_offered_is_permanent(smtp_server: StartServer) -> None:
    server = smtp_server(security="none")
    delivery = notifier(server, security="starttls").send(notification())
    assert delivery == Delivery(
        ok=False, error="email: not supported by the server: STARTTLS extension not supported by server.",
        permanent=True,
    )  # fmt: skip


# --------------------------------------------------------------------------- settings


def test_password_needs_tls() -> None:
    with pytest.raises(ValueError, match=r"email 'password' needs security 'starttls' or 'tls'"):
        EmailReceiver.model_validate(
            {"to": ["a@example.com"], "from": "w@example.com", "host": "h", "security": "none",
             "username": "u", "password": "p"}
        )  # fmt: skip


def test_the_password_is_a_secret() -> None:
    settings = EmailReceiver.model_validate(
        {"to": ["a@example.com"], "from": "w@example.com", "host": "h", "username": "u", "password": PASSWORD}
    )
    assert settings.password == SecretStr(PASSWORD)
    assert PASSWORD not in repr(settings)
