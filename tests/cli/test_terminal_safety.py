"""Control characters from log data are shown escaped in every text output, and Slack markup in
data formats nothing: the console receiver, ``watcher incidents``, ``watcher render``, Slack."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.channels import escape_slack
from watcher.cli import main
from watcher.config import ConsoleReceiver
from watcher.incidents.model import Event, Incident, State, fingerprint
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification
from watcher.notify.console import ConsoleNotifier
from watcher.templates import Templates

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HOSTILE = "v3\x1b[2J\r\nFIRING fake\x07\x9b"


def hostile_incident(**fields: object) -> Incident:
    group = {"model_version": HOSTILE}
    values: dict[str, object] = {
        "fingerprint": fingerprint("api-5xx", group),
        "rule": "api-5xx",
        "group": group,
        "labels": {"rule": "api-5xx", **group},
        "annotations": {"summary": "5xx for {{ group.model_version }}"},
        "severity": "critical",
        "state": State.FIRING,
        "value": 0.25,
        "threshold": 0.05,
        "started_at": NOW - timedelta(minutes=5),
        "fired_at": NOW - timedelta(minutes=3),
    }
    return Incident(**(values | fields))  # type: ignore[arg-type]


ESCAPED = "v3\\x1b[2J\\x0d\\x0aFIRING fake\\x07\\x9b"


def test_the_console_receiver_keeps_log_data_on_its_line() -> None:
    out = io.StringIO()
    notification = Notification("n1", "console", Event.FIRING, (hostile_incident(),), NOW, "t")
    ConsoleNotifier(ConsoleReceiver(), Templates(), out).send(notification)
    assert out.getvalue() == (
        f"FIRING critical api-5xx (model_version={ESCAPED}): value=0.25 threshold=0.05 - 5xx for {ESCAPED}\n"
    )


def test_incidents_shows_log_data_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "watcher.yaml").write_text("sources:\n  local: {store: embedded}\nstate: {path: s.sqlite}\n")
    with StateStore(tmp_path / "s.sqlite") as state:
        state.commit([hostile_incident(note="note\x1b]0;title\x07")])
    assert main(["incidents", "-c", str(tmp_path / "watcher.yaml")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 2
    assert f"model_version={ESCAPED}" in lines[1]
    assert lines[1].endswith("[note\\x1b]0;title\\x07]")


def test_render_shows_control_characters_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "watcher.yaml").write_text("sources:\n  local: {store: embedded}\n")
    (tmp_path / "rules" / "r.yaml").write_text(
        "name: r\nsource: local\nevery: 1m\nwindow: 5m\nsignal: {count: {}}\nthreshold: {above: 1}\n"
        "group_by: [model]\nannotations: {summary: 'model {{ group.model }}'}\n"
    )
    for channel in ("slack", "email", "console", "sms", "webhook"):
        args = ["render", "r", "-c", str(tmp_path / "watcher.yaml"), "--channel", channel]
        assert main([*args, "--group", "model=\x1b[31mred\x9b"]) == 0
        out = capsys.readouterr().out
        assert not {"\x1b", "\x9b"} & set(out), channel


@pytest.mark.parametrize(
    ("data", "escaped"),
    [
        ("*bold*", "\u200b*\u200bbold\u200b*\u200b"),
        ("_it_ ~gone~", "\u200b_\u200bit\u200b_\u200b \u200b~\u200bgone\u200b~\u200b"),
        ("model_version a*b", "model_version a*b"),  # inside a word a mark never formats
        ("x` <!channel>", "x\u02cb &lt;!channel&gt;"),
        # A link keeps its underscores (a zero-width space would break it); only & < > are escaped.
        (
            "https://d.io/app/discover#/?_g=(x)&_a=1 _it_",
            "https://d.io/app/discover#/?_g=(x)&amp;_a=1 \u200b_\u200bit\u200b_\u200b",
        ),
    ],
)
def test_slack_markup_in_data_is_inert(data: str, escaped: str) -> None:
    assert escape_slack(data) == escaped


def test_a_backtick_cannot_break_out_of_the_slack_code_span() -> None:
    incident = hostile_incident(group={"model_version": "v3` *@here*"}, labels={"rule": "api-5xx"})
    notification = Notification("n1", "slack", Event.FIRING, (incident,), NOW, "t")
    text = Templates().render(notification, "slack")
    (span,) = [line for line in text.splitlines() if line.startswith("*api-5xx*")]
    assert span == "*api-5xx* · `model_version=v3\u02cb \u200b*\u200b@here\u200b*\u200b`"
