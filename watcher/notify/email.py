"""Email through SMTP (smtplib): STARTTLS, implicit TLS or plain, with optional authentication.

A notification is one multipart message: ``text/plain`` and ``text/html`` alternatives from the
``email/<event>.txt.j2`` and ``email/<event>.html.j2`` templates, the subject from
``email/<event>.subject.txt.j2``, and, in the HTML part, a PNG chart of each incident's signal
(the first ``MAX_CHARTS``) inline by ``cid:``. The charts go where the HTML template writes
``<!-- charts -->`` (before ``</body>`` if it does not).

Headers are safe from injection twice over: data from logs is put on one line by the subject's
escaper, and the whole subject is flattened again here, so no CR/LF can start a header. Updates
and the resolved message reply to the firing message (``In-Reply-To``/``References``), so mail
clients thread an incident.

Answers: 5xx SMTP replies and failed authentication are permanent; 4xx replies, refused
connections, timeouts and TLS failures are retried by the outbox. When some recipients are
accepted and others refused, the message counts as delivered (a retry would send it twice to
the accepted ones) and the refusals are logged. The password never appears in errors or logs.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr

from watcher.channels import one_line
from watcher.config import EmailReceiver
from watcher.incidents.model import Event
from watcher.notify.answers import scrub
from watcher.notify.base import Delivery, Notification
from watcher.notify.chart import render_chart
from watcher.templates import RenderError, Templates

log = logging.getLogger("watcher.notify.email")

MAX_CHARTS = 3
MAX_SUBJECT = 200  # characters; longer subjects are cut with "…"
CHARTS_MARKER = "<!-- charts -->"
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
# CRLF line ends; headers are kept on one line up to RFC 5322's hard limit (subjects are short anyway):
# Python's folding at 78 can put a whole subject on a continuation line, which some parsers misread.
POLICY = SMTP.clone(max_line_length=998)


class EmailNotifier:
    """Sends notifications to the addresses of one receiver through one SMTP server."""

    def __init__(self, settings: EmailReceiver, templates: Templates) -> None:
        self._settings = settings
        self._templates = templates
        self._secrets: list[str] = []
        if settings.password is not None:
            password = settings.password.get_secret_value()
            plain = f"\0{settings.username}\0{password}".encode()
            self._secrets = [password, base64.b64encode(plain).decode()]

    # ------------------------------------------------------------------ the message

    def compose(self, notification: Notification) -> EmailMessage:
        """The message exactly as sent. Raises ``RenderError``."""
        settings, templates = self._settings, self._templates
        text = templates.render(notification, "email")
        html = templates.render(notification, "email_html")
        message = EmailMessage(policy=POLICY)
        message["Subject"] = subject(templates.render(notification, "email_subject"))
        message["From"] = settings.from_
        message["To"] = ", ".join(settings.to)
        message["Date"] = format_datetime(notification.created_at)
        domain = _domain(settings.from_)
        thread = f"<{hashlib.sha256(notification.thread_key.encode()).hexdigest()[:32]}@{domain}>"
        if notification.event is Event.FIRING:
            message["Message-ID"] = thread
        else:
            message["Message-ID"] = f"<{notification.id}@{domain}>"
            message["In-Reply-To"] = thread
            message["References"] = thread
        message["X-Watcher-Event"] = notification.event.value
        message["X-Watcher-Notification"] = notification.id
        charts = self._charts(notification) if settings.charts else []
        message.set_content(text)
        message.add_alternative(_with_charts(html, [cid for cid, _ in charts]), subtype="html")
        html_part = message.get_body(preferencelist=("html",))
        for cid, png in charts:
            assert html_part is not None  # added just above
            html_part.add_related(png, "image", "png", cid=f"<{cid}>", filename=f"{cid.split('@')[0]}.png")
        return message

    def _charts(self, notification: Notification) -> list[tuple[str, bytes]]:
        charts = []
        for index, incident in enumerate(notification.incidents[:MAX_CHARTS]):
            try:
                png = render_chart(incident, self._templates.signal(incident.rule))
            except Exception as err:  # a chart is an extra: the alert goes out without it
                log.warning("chart of %s not drawn: %s: %s", incident.fingerprint, type(err).__name__, err)
                continue
            if png is not None:
                charts.append((f"chart-{index + 1}-{incident.fingerprint}@watcher", png))
        return charts

    # ------------------------------------------------------------------ sending

    def send(self, notification: Notification) -> Delivery:
        try:
            message = self.compose(notification)
        except RenderError as err:
            return Delivery(ok=False, error=self._scrub(str(err)), permanent=True)
        settings = self._settings
        sender = parseaddr(settings.from_)[1]
        recipients = [parseaddr(address)[1] for address in settings.to]
        try:
            with self._connect() as smtp:
                if settings.username is not None and settings.password is not None:
                    smtp.login(settings.username, settings.password.get_secret_value())
                refused = smtp.send_message(message, from_addr=sender, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as err:
            return self._refused(err.recipients)
        except smtplib.SMTPAuthenticationError as err:
            return self._failure("authentication failed", err.smtp_code, err.smtp_error, permanent=True)
        except smtplib.SMTPNotSupportedError as err:
            return Delivery(
                ok=False, error=self._scrub(f"email: not supported by the server: {err}"), permanent=True
            )
        except smtplib.SMTPResponseException as err:
            return self._failure("refused", err.smtp_code, err.smtp_error)
        except (smtplib.SMTPException, OSError) as err:  # refused, reset, timed out, TLS failed
            return Delivery(ok=False, error=self._scrub(f"email: {_server(settings)}: {err}"))
        if refused:
            log.warning("email: some recipients refused: %s", _replies(refused))
        return Delivery(ok=True)

    def _connect(self) -> smtplib.SMTP:
        settings = self._settings
        port = settings.port or DEFAULT_PORTS[settings.security]
        timeout = settings.timeout.total_seconds()
        if settings.security == "tls":
            return smtplib.SMTP_SSL(settings.host, port, timeout=timeout, context=self._tls())
        smtp = smtplib.SMTP(settings.host, port, timeout=timeout)
        try:
            if settings.security == "starttls":
                smtp.starttls(context=self._tls())
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _tls(self) -> ssl.SSLContext:
        cafile = str(self._settings.ca_certs) if self._settings.ca_certs else None
        return ssl.create_default_context(cafile=cafile)

    # ------------------------------------------------------------------ outcomes

    def _refused(self, recipients: dict[str, tuple[int, bytes]]) -> Delivery:
        codes = [code for code, _ in recipients.values()]
        permanent = all(code >= 500 for code in codes)
        return Delivery(
            ok=False,
            error=self._scrub(f"email: recipients refused: {_replies(recipients)}"),
            permanent=permanent,
        )

    def _failure(self, what: str, code: int, reply: bytes | str, permanent: bool | None = None) -> Delivery:
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        error = self._scrub(f"email: {what}: {code} {' '.join(text.split())}")
        return Delivery(ok=False, error=error, permanent=code >= 500 if permanent is None else permanent)

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)


def subject(rendered: str) -> str:
    """A rendered subject made safe for a header: one line, single spaces, at most ``MAX_SUBJECT``."""
    text = " ".join(one_line(rendered).split())
    return text if len(text) <= MAX_SUBJECT else text[: MAX_SUBJECT - 1].rstrip() + "…"


def _with_charts(html: str, cids: list[str]) -> str:
    images = "".join(
        f'<p><img src="cid:{cid}" alt="chart of the signal" width="800" style="max-width:100%"></p>'
        for cid in cids
    )
    if CHARTS_MARKER in html:
        return html.replace(CHARTS_MARKER, images, 1)
    match = re.search(r"</body\s*>", html, re.IGNORECASE)
    return html[: match.start()] + images + html[match.start() :] if match else html + images


def _replies(recipients: dict[str, tuple[int, bytes]]) -> str:
    return ", ".join(
        f"{address} ({code} {' '.join(reply.decode('utf-8', 'replace').split())})"
        for address, (code, reply) in recipients.items()
    )


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "watcher"


def _server(settings: EmailReceiver) -> str:
    return f"{settings.host}:{settings.port or DEFAULT_PORTS[settings.security]}"
