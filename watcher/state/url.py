"""State URLs and their secrets: a password in ``state.url`` never reaches a log line or a message.

``redact`` gives the URL to show (``postgresql://watcher:***@db:5432/watcher``); ``scrub`` takes
the password out of any text (a driver's error may quote the connection string it was given).
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")
HIDDEN = "***"


def is_postgres(url: str) -> bool:
    return urlsplit(url).scheme in POSTGRES_SCHEMES


def redact(url: str) -> str:
    """The URL with its password replaced by ``***`` (query parameters named password too)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return HIDDEN
    user, at, host = netloc.rpartition("@")
    if at and ":" in user:
        netloc = f"{user.split(':', 1)[0]}:{HIDDEN}@{host}"
    query = "&".join(
        f"{key}={HIDDEN}" if key.lower() == "password" else f"{key}{sep}{value}"
        for key, sep, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def secrets_of(url: str) -> list[str]:
    """The password as written in the URL and decoded (both could appear in a message)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [parts.password or ""]
    found += [value for key, _, value in (item.partition("=") for item in parts.query.split("&"))
              if key.lower() == "password"]  # fmt: skip
    return sorted({form for secret in found if secret for form in (secret, unquote(secret), quote(secret))})


def scrub(text: str, url: str) -> str:
    """``text`` with every form of the URL's password replaced by ``***``."""
    for secret in secrets_of(url):
        text = text.replace(secret, HIDDEN)
    return text
