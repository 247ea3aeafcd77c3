"""Structured logs: one JSON object per line (or readable text on a terminal), secrets masked.

Stages log with the standard ``logging`` module and pass what a reader filters on as
``extra=`` fields (``rule``, ``fingerprint``, ``receiver``, ``source``); every extra field
becomes a JSON key (or a ``key=value`` suffix in text).

Nothing that reaches a handler installed by ``setup_logging`` can print a secret: the
``RedactingFilter`` masks every value registered with ``register_secret`` (config loading
registers the ``SecretStr`` fields of ``watcher.yaml``) and common token shapes (Slack
``xoxb-…`` tokens and webhook URLs, ``Bearer``/``ApiKey`` headers, passwords in URLs,
``password=…`` pairs, JWTs, private keys), in the message, the traceback and the extra fields.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal, TextIO
from urllib.parse import quote

from pydantic import BaseModel, SecretBytes, SecretStr

LogFormat = Literal["json", "text", "auto"]
LEVELS = ("debug", "info", "warning", "error")
MASK = "***"
# Shorter values are not masked: hiding every "ab" in the logs would garble them, and a secret
# that short protects nothing anyway.
MIN_SECRET_LENGTH = 4

_TOKEN_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S), MASK),
    (re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{6,}"), MASK),
    (re.compile(r"\bxapp-\d-[A-Za-z0-9-]{6,}"), MASK),
    (re.compile(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]+"), rf"\1{MASK}"),
    (re.compile(r"\b(gh[pousr]_|github_pat_)[A-Za-z0-9_]{20,}"), rf"\1{MASK}"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"), MASK),
    (re.compile(r"(?i)\b(bearer|basic|apikey)(\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\1\2{MASK}"),
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+(@)"), rf"\1{MASK}\2"),
    (
        re.compile(
            r"(?i)\b((?:api[_-]?key|auth[_-]?token|access[_-]?token|token|secret|client[_-]?secret|"
            r"password|passwd)[\"']?\s*[=:]\s*[\"']?)(?!\*\*\*)[^\s\"'&,;)}\]]+"
        ),
        rf"\1{MASK}",
    ),
)


class Redactor:
    """Masks registered secret values and well-known token shapes in text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def register(self, value: str | SecretStr | SecretBytes | None) -> None:
        """Never print ``value`` (nor its URL-encoded form). ``None`` and short values are ignored."""
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, SecretBytes):
            value = value.get_secret_value().decode(errors="replace")
        if not value or len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            self._secrets.update({value, quote(value, safe=""), json.dumps(value)[1:-1]})
            # Longest first, so a secret that contains another one is masked whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(secret) for secret in ordered))

    def redact(self, text: str) -> str:
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        for shape, replacement in _TOKEN_SHAPES:
            text = shape.sub(replacement, text)
        return text


REDACTOR = Redactor()


def register_secret(value: str | SecretStr | SecretBytes | None) -> None:
    """Register a secret with the process-wide redactor used by ``setup_logging``."""
    REDACTOR.register(value)


def register_config_secrets(config: BaseModel) -> int:
    """Register every ``SecretStr`` in a loaded config (walking nested models, lists and dicts).

    Returns how many secret values were found. Call it after each (re)load of ``watcher.yaml``.
    """
    found = list(_secrets_in(config))
    for secret in found:
        REDACTOR.register(secret)
    return len(found)


def _secrets_in(value: Any) -> Iterable[SecretStr | SecretBytes]:
    if isinstance(value, SecretStr | SecretBytes):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secrets_in(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _secrets_in(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _secrets_in(item)


def redact(text: str) -> str:
    return REDACTOR.redact(text)


# --------------------------------------------------------------------------- records

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of a record, in the order they were given."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message, traceback, stack and extra fields (in place, so
    every handler after this one sees the masked record)."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = self.redactor.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        for key, value in extra_fields(record).items():
            setattr(record, key, self._scrub(value))
        return True

    def _scrub(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, dict):
            return {str(k): self._scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub(item) for item in value]
        return self.redactor.redact(value if isinstance(value, str) else str(value))


# --------------------------------------------------------------------------- formats


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _exception_text(record: logging.LogRecord) -> str | None:
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    return record.exc_text or None


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", <extra fields>, "exception"?}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            entry.setdefault(key, value)
        exception = _exception_text(record)
        if exception:
            entry["exception"] = exception
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: <message> key=value ...`` and the traceback below it."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = " ".join(f"{key}={value}" for key, value in extra_fields(record).items())
        parts = [f"{line}  {extras}" if extras else line]
        exception = _exception_text(record)
        if exception:
            parts.append(exception)
        if record.stack_info:
            parts.append(record.stack_info)
        return "\n".join(parts)


# --------------------------------------------------------------------------- setup

# Libraries that log one line per request or job at INFO; only their warnings are worth a line
# unless debugging.
CHATTY_LOGGERS = ("apscheduler", "elastic_transport", "opensearch", "urllib3", "slack_sdk")


def parse_level(level: str) -> int:
    name = level.strip().lower()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning or error")
    return int(getattr(logging, name.upper()))


def setup_logging(
    level: str = "info", fmt: LogFormat | str = "auto", stream: TextIO | None = None
) -> logging.Handler:
    """Send all logging to ``stream`` (stderr by default) through the redactor.

    ``auto`` writes JSON lines unless ``stream`` is a terminal. Calling it again replaces the
    handler it installed before (reload, tests). Returns the installed handler.
    """
    numeric = parse_level(level)
    if fmt not in ("json", "text", "auto"):
        raise ValueError(f"unknown log format {fmt!r}: use json, text or auto")
    out = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "text" if out.isatty() else "json"
    handler = logging.StreamHandler(out)
    handler.set_name("watcher")
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "watcher"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    logging.captureWarnings(True)
    return handler


def add_log_arguments(parser: argparse.ArgumentParser) -> None:
    """``--log-format json|text|auto`` and ``--log-level debug|info|warning|error``."""
    parser.add_argument(
        "--log-format",
        choices=("json", "text", "auto"),
        default="auto",
        help="log line format (default: auto = text on a terminal, JSON lines otherwise)",
    )
    parser.add_argument(
        "--log-level", choices=LEVELS, default="info", type=str.lower, help="minimum level (default: info)"
    )
