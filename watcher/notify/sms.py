"""SMS through Twilio's REST API (``POST /2010-04-01/Accounts/{sid}/Messages.json``) with requests.

The text comes from ``sms/<event>.txt.j2`` (log data is put on one line there), has typographic
look-alikes replaced by GSM-7 characters and is cut to ``max_segments`` parts
(``watcher.notify.segments``), so an alert never turns into a ten-part SMS, and never fails for
being long.

One message per number in ``to``. Numbers that Twilio accepted are remembered per notification id,
so when a later number fails and the outbox retries the notification, the retry only sends to the
numbers still missing (within this process: a restart between the two can repeat an SMS, which the
outbox's at-least-once contract allows). Retries themselves, and waiting out a 429's Retry-After,
belong to the outbox. The auth token and account SID never appear in errors or logs.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests

from watcher.config import SmsReceiver
from watcher.notify.answers import http_failure, scrub
from watcher.notify.base import Delivery, Notification
from watcher.notify.segments import fit, smart
from watcher.templates import RenderError, Templates

log = logging.getLogger("watcher.notify.sms")

TWILIO_API = "https://api.twilio.com/2010-04-01"
_REMEMBERED = 10_000  # (notification id, number) pairs kept to skip numbers already sent on a retry


class SmsNotifier:
    """Sends each notification as one SMS to every number of one receiver."""

    def __init__(
        self,
        settings: SmsReceiver,
        templates: Templates,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._settings = settings
        self._templates = templates
        self._session = session or requests.Session()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._secrets = (settings.auth_token.get_secret_value(), settings.account_sid)
        self._sent: OrderedDict[tuple[str, str], None] = OrderedDict()

    def compose(self, notification: Notification) -> str:
        """The SMS text, exactly as sent. Raises ``RenderError``."""
        text = smart(self._templates.render(notification, "sms").strip())
        return fit(text, self._settings.max_segments)

    def send(self, notification: Notification) -> Delivery:
        try:
            body = self.compose(notification)
        except RenderError as err:
            return Delivery(ok=False, error=scrub(str(err), self._secrets), permanent=True)
        for number in self._settings.to:
            if (notification.id, number) in self._sent:
                continue
            failure = self._send_one(number, body)
            if failure is not None:
                return failure
            self._remember(notification.id, number)
        return Delivery(ok=True)

    def _send_one(self, number: str, body: str) -> Delivery | None:
        settings = self._settings
        url = f"{TWILIO_API}/Accounts/{settings.account_sid}/Messages.json"
        form = {"To": number, "Body": body}
        if settings.from_ is not None:
            form["From"] = settings.from_
        else:
            form["MessagingServiceSid"] = settings.messaging_service_sid or ""
        try:
            answer = self._session.post(
                url,
                data=form,
                auth=(settings.account_sid, settings.auth_token.get_secret_value()),
                timeout=settings.timeout.total_seconds(),
                allow_redirects=False,
            )
        except requests.RequestException as err:
            error = f"sms to {number}: network error: {type(err).__name__}: {err}"
            return Delivery(ok=False, error=scrub(error, self._secrets))
        if 200 <= answer.status_code < 300:
            return None
        detail = scrub(_twilio_error(answer), self._secrets)
        return http_failure(f"sms to {number}", answer.status_code, detail, answer.headers, self._clock())

    def _remember(self, notification_id: str, number: str) -> None:
        self._sent[(notification_id, number)] = None
        while len(self._sent) > _REMEMBERED:
            self._sent.popitem(last=False)


def _twilio_error(answer: requests.Response) -> str:
    """Twilio's error as ``code message`` (``21211 The 'To' number is not a valid phone number.``)."""
    try:
        data: Any = answer.json()
    except ValueError:
        return answer.text
    if not isinstance(data, dict):
        return answer.text
    code, message = data.get("code"), data.get("message")
    return " ".join(str(part) for part in (code, message) if part) or answer.text
