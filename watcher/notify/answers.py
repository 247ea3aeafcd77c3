"""What an HTTP service's answer means for delivery, and keeping secrets out of what is said about it.

The outbox retries, so a notifier only says whether a retry can help and how long the service
asked us to wait. Rate limits (429), timeouts (408), "too early" (425) and server errors (5xx)
are worth retrying; any other 4xx is a request the service will refuse again (bad credentials,
bad number, bad payload) and goes to the dead letters at once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from watcher.notify.base import Delivery

# urllib3 (under requests) logs every request line at DEBUG, and the path of a webhook URL is a
# secret (a token): its connection logs stay at INFO even when watcher logs at DEBUG.
logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)

RETRYABLE_CLIENT_ERRORS = frozenset({408, 425, 429})
MAX_DETAIL = 200  # characters of a service's error text kept in Delivery.error
MAX_RETRY_AFTER = 86400.0  # a day: longer asks are capped (the outbox gives up after max_age anyway)


def http_failure(
    channel: str, status: int, detail: str, headers: Mapping[str, Any], now: datetime | None = None
) -> Delivery:
    """A failed delivery for an HTTP answer with ``status`` (not 2xx). ``detail`` is the service's
    own error text (already free of secrets); ``now`` reads a ``Retry-After`` given as a date."""
    detail = " ".join(detail.split())[:MAX_DETAIL]
    error = f"{channel}: HTTP {status}" + (f": {detail}" if detail else "")
    retryable = status in RETRYABLE_CLIENT_ERRORS or status >= 500  # a redirect is a wrong URL
    return Delivery(ok=False, error=error, retry_after=retry_after(headers, now), permanent=not retryable)


def retry_after(headers: Mapping[str, Any], now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds, or an HTTP date when ``now`` is
    given), never negative; None when absent or unreadable (the outbox then uses its backoff)."""
    value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    text = str(value).strip()
    seconds: float | None
    try:
        seconds = float(text)
    except ValueError:
        seconds = _until(text, now)
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


def _until(date: str, now: datetime | None) -> float | None:
    if now is None:
        return None
    try:
        moment = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return None
    return None if moment.tzinfo is None else (moment - now).total_seconds()


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (token, password, secret URL) replaced by ``***``. Notifiers pass
    every text they put in ``Delivery.error`` or a log line through it: service error bodies and
    client exceptions may quote a URL or a header."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
