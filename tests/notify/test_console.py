"""ConsoleNotifier: readable lines or JSON lines, on a real stream."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from watcher.config import ConsoleReceiver, Receiver
from watcher.incidents.model import Event, Incident, State
from watcher.notify.base import Delivery, Notification
from watcher.notify.console import ConsoleNotifier
from watcher.notify.registry import build_notifier
from watcher.templates import Templates

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def notification(event: Event = Event.FIRING, **changes: Any) -> Notification:
    incident = Incident(
        fingerprint="f1",
        rule="prediction-latency-p99",
        group={"model_version": "v2"},
        labels={},
        annotations={"summary": "p99 latency {{ value | number }} ms"},
        severity="warning",
        state=State.FIRING,
        value=1234.5678,
        threshold=800,
        started_at=NOW - timedelta(minutes=5),
        fired_at=NOW - timedelta(minutes=3),
    ).evolve(**changes)
    return Notification("n1", "console", event, (incident,), NOW, "f1|start")


def test_text_format_prints_one_readable_line() -> None:
    out = io.StringIO()
    delivery = ConsoleNotifier(ConsoleReceiver(), Templates(), out).send(notification())
    assert delivery == Delivery(ok=True)
    assert out.getvalue() == (
        "FIRING warning prediction-latency-p99 (model_version=v2): value=1,235 threshold=800"
        " - p99 latency 1,235 ms\n"
    )


def test_resolved_says_how_long_it_fired() -> None:
    out = io.StringIO()
    done = notification(Event.RESOLVED, state=State.RESOLVED, resolved_at=NOW)
    ConsoleNotifier(ConsoleReceiver(), Templates(), out).send(done)
    assert out.getvalue().startswith("RESOLVED warning prediction-latency-p99 (model_version=v2) after 3m:")


def test_json_format_prints_one_object_per_line_with_rendered_annotations() -> None:
    out = io.StringIO()
    ConsoleNotifier(ConsoleReceiver(format="json"), Templates(), out).send(notification())
    [line] = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["id"] == "n1"
    assert record["event"] == "firing"
    assert record["at"] == "2024-05-01T12:00:00+00:00"
    assert record["text"].startswith("FIRING warning prediction-latency-p99")
    assert record["incidents"][0]["annotations"] == {"summary": "p99 latency 1,235 ms"}
    assert record["incidents"][0]["group"] == {"model_version": "v2"}


def test_terminal_escapes_from_logs_are_not_obeyed() -> None:
    out = io.StringIO()
    ConsoleNotifier(ConsoleReceiver(), Templates(), out).send(
        notification(group={"model_version": "\x1b[31mred"})
    )
    assert "\x1b" not in out.getvalue()
    assert "model_version=\\x1b[31mred" in out.getvalue()


def test_a_closed_stream_is_a_failed_delivery() -> None:
    out = io.StringIO()
    out.close()
    delivery = ConsoleNotifier(ConsoleReceiver(), Templates(), out).send(notification())
    assert delivery == Delivery(ok=False, error="console: cannot write: I/O operation on closed file")


def test_the_registry_builds_a_console_notifier_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    notifier = build_notifier("console", Receiver(console=ConsoleReceiver()), Templates())
    assert isinstance(notifier, ConsoleNotifier)
    assert notifier.send(notification()).ok
    assert capsys.readouterr().out.startswith("FIRING warning prediction-latency-p99")
