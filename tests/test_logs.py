"""Log lines as an operator reads them: JSON with rule/fingerprint fields, text on a tty, no secrets."""

from __future__ import annotations

import argparse
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from watcher.config import Config
from watcher.process.logs import (
    CHATTY_LOGGERS,
    Redactor,
    add_log_arguments,
    redact,
    register_config_secrets,
    register_secret,
    setup_logging,
)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    chatty = {name: logging.getLogger(name).level for name in CHATTY_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in chatty.items():
        logging.getLogger(name).setLevel(saved)
    logging.captureWarnings(False)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_rule_and_fingerprint() -> None:
    out = io.StringIO()
    setup_logging("info", "auto", out)  # not a tty -> JSON
    log = logging.getLogger("watcher.engine")
    log.error(
        "rule %s: evaluation failed: %s",
        "p99",
        "timeout",
        extra={"rule": "p99", "fingerprint": "ab12cd34ef56ab78"},
    )
    log.warning("delivery failed", extra={"receiver": "ml-slack", "fingerprint": "ab12", "attempt": 3})
    log.debug("not shown at info")
    first, second = json_lines(out)
    assert first["level"] == "error"
    assert first["logger"] == "watcher.engine"
    assert first["message"] == "rule p99: evaluation failed: timeout"
    assert (first["rule"], first["fingerprint"]) == ("p99", "ab12cd34ef56ab78")
    assert first["time"].endswith("Z")
    assert (second["receiver"], second["attempt"]) == ("ml-slack", 3)


@pytest.mark.usefixtures("restore_logging")
def test_text_on_a_terminal() -> None:
    out = Tty()
    setup_logging("debug", "auto", out)
    logging.getLogger("watcher.outbox").info("sent", extra={"receiver": "ml-slack"})
    line = out.getvalue().strip()
    assert " INFO    watcher.outbox: sent  receiver=ml-slack" in line
    assert not line.startswith("{")


@pytest.mark.usefixtures("restore_logging")
def test_exceptions_are_one_json_line_with_the_traceback() -> None:
    out = io.StringIO()
    setup_logging("info", "json", out)
    try:
        raise RuntimeError("store unreachable")
    except RuntimeError:
        logging.getLogger("watcher").exception("tick failed", extra={"rule": "r"})
    (entry,) = json_lines(out)
    assert "RuntimeError: store unreachable" in entry["exception"]
    assert entry["rule"] == "r"


@pytest.mark.usefixtures("restore_logging")
def test_registered_secrets_are_masked_everywhere() -> None:
    out = io.StringIO()
    setup_logging("info", "json", out)
    register_secret("s3cr3t-es-key-value")
    register_secret(SecretStr("pa$$w0rd/with&chars"))
    log = logging.getLogger("watcher.store")
    log.error("auth failed with s3cr3t-es-key-value", extra={"source": "ml-api s3cr3t-es-key-value"})
    log.error("url https://es/?p=%s", "pa%24%24w0rd%2Fwith%26chars")
    try:
        raise ValueError("bad key s3cr3t-es-key-value")
    except ValueError:
        log.exception("boom")
    text = out.getvalue()
    assert "s3cr3t" not in text
    assert "w0rd" not in text
    first, second, third = json_lines(out)
    assert first["message"] == "auth failed with ***"
    assert first["source"] == "ml-api ***"
    assert second["message"] == "url https://es/?p=***"
    assert "ValueError: bad key ***" in third["exception"]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("token xoxb-1234567890-abcdefghij rejected", "token *** rejected"),
        ("app xapp-1-A0123-4567-abcdef", "app ***"),
        (
            "POST https://hooks.slack.com/services/T000/B000/XXXXXXXX",
            "POST https://hooks.slack.com/services/***",
        ),
        ("Authorization: Bearer abcdef123456789", "Authorization: Bearer ***"),
        (
            "Authorization: ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==",
            "Authorization: ApiKey ***",
        ),
        ("GET https://elastic:changeme@es:9200/_msearch", "GET https://elastic:***@es:9200/_msearch"),
        ("password=hunter22 user=bob", "password=*** user=bob"),
        ('{"api_key": "abc123def456"}', '{"api_key": "***"}'),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THs",
            "jwt ***",
        ),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "***"),
        ("key ghp_abcdefghijklmnopqrstuvwxyz0123456789", "key ghp_***"),
    ],
)
def test_token_shapes_are_masked(text: str, masked: str) -> None:
    assert redact(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "rule prediction-5xx-rate: 5xx rate 7.5% for model v3",
        "http listening on http://127.0.0.1:9464",
        "store ml-api answered 12 queries in 0.03s",
        "tokens: 42",
    ],
)
def test_ordinary_lines_are_untouched(text: str) -> None:
    assert redact(text) == text


def test_short_values_are_not_registered() -> None:
    redactor = Redactor()
    redactor.register("ab")
    redactor.register(None)
    redactor.register("")
    assert redactor.redact("ab abc") == "ab abc"


def test_longest_secret_wins() -> None:
    redactor = Redactor()
    redactor.register("abcd")
    redactor.register("abcdefgh")
    assert redactor.redact("x abcdefgh y") == "x *** y"


def test_config_secrets_are_registered() -> None:
    config = Config.model_validate(
        {
            "sources": {
                "ml-api": {
                    "store": "elasticsearch",
                    "hosts": ["https://es:9200"],
                    "index": "a",
                    "api_key": "k3y-0f-es",
                }
            },
            "receivers": {"s": {"slack": {"token": "tok-slack-123", "channel": "#c"}}},
            "route": {"receiver": "s"},
        }
    )
    assert register_config_secrets(config) == 2
    assert redact("k3y-0f-es and tok-slack-123") == "*** and ***"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: setup_logging("loud"), "unknown log level 'loud': use debug, info, warning or error"),
        (lambda: setup_logging("info", "xml"), "unknown log format 'xml': use json, text or auto"),
    ],
)
@pytest.mark.usefixtures("restore_logging")
def test_bad_settings(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(") + "$"):
        call()


@pytest.mark.usefixtures("restore_logging")
def test_setup_twice_keeps_one_handler_and_quiets_chatty_libraries() -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging("info", "json", first)
    setup_logging("info", "json", second)
    logging.getLogger("watcher").info("once")
    logging.getLogger("apscheduler.executors.default").info("Running job")
    assert first.getvalue() == ""
    assert [entry["message"] for entry in json_lines(second)] == ["once"]


def test_command_line_options() -> None:
    parser = argparse.ArgumentParser()
    add_log_arguments(parser)
    args = parser.parse_args(["--log-format", "json", "--log-level", "DEBUG"])
    assert (args.log_format, args.log_level) == ("json", "debug")
    defaults = parser.parse_args([])
    assert (defaults.log_format, defaults.log_level) == ("auto", "info")
