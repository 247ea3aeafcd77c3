"""The CLI an SRE reaches for: ``silence list``, ``silence extend``, filters on ``silence ls`` and
``incidents``, help text on every option, and no secrets asked by commands that send nothing."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.cli import COMMANDS, build_parser, main
from watcher.incidents.model import Incident, State, fingerprint
from watcher.incidents.state import StateStore

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)
SECRET_CONFIG = """\
sources:
  es: {store: elasticsearch, hosts: ["${ES_URL}"], index: logs, api_key: "${ES_API_KEY}"}
state: {path: s.sqlite}
receivers:
  slack: {slack: {webhook_url: "${SLACK_WEBHOOK_URL}"}}
  sms: {sms: {to: ["${ONCALL_PHONE}"], from: "+15550199", account_sid: AC1, auth_token: "${TWILIO}"}}
route: {receiver: slack, routes: [{match: {severity: critical}, receiver: sms, continue: true}]}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "watcher.yaml"
    path.write_text(SECRET_CONFIG)
    with StateStore(tmp_path / "s.sqlite") as state:
        state.commit([incident("api-5xx", "v3"), incident("api-5xx", "v4"), incident("latency", "v3")])
    return path


def incident(rule: str, model: str) -> Incident:
    group = {"model": model}
    return Incident(
        fingerprint=fingerprint(rule, group),
        rule=rule,
        group=group,
        labels={"rule": rule, "model": model, "severity": "critical"},
        annotations={},
        severity="critical",
        state=State.FIRING,
        value=1.0,
        threshold=0.5,
        started_at=NOW - timedelta(hours=1),
        fired_at=NOW - timedelta(hours=1),
    )


def watcher(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ES_URL", "ES_API_KEY", "SLACK_WEBHOOK_URL")}
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_commands_that_send_nothing_need_no_secret(config: Path) -> None:
    folder = config.parent
    for args in (
        ["incidents"],
        ["silence", "ls"],
        ["routes", "test", "severity=critical"],
        ["routes", "show"],
    ):
        done = watcher(*args, cwd=folder)
        assert (done.returncode, done.stderr) == (0, ""), args
    assert watcher("routes", "test", "severity=critical", cwd=folder).stdout == "sms\n"
    assert "environment variable ES_URL is not set" in watcher("check", cwd=folder).stdout


def rows(capsys: pytest.CaptureFixture[str], *args: str) -> list[tuple[str, str]]:
    assert main(["incidents", *args, "--format", "json"]) == 0
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return sorted((row["rule"], row["group"]["model"]) for row in found)


def test_incidents_filters(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = ["-c", str(config)]
    assert rows(capsys, *c, "--rule", "api-5xx") == [("api-5xx", "v3"), ("api-5xx", "v4")]
    assert rows(capsys, *c, "model=v3") == [("api-5xx", "v3"), ("latency", "v3")]
    assert rows(capsys, *c, "--rule", "api-5xx", "model!~v3|v5") == [("api-5xx", "v4")]
    assert main(["incidents", *c, "model~v3"]) == 2
    assert capsys.readouterr().err == (
        "watcher incidents: invalid matcher 'model~v3': expected name=value, name!=value, name=~regex "
        "or name!~regex\n"
    )


def silences(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> list[dict[str, object]]:
    assert main(["silence", "list", "-c", str(config), "--format", "json", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def add(capsys: pytest.CaptureFixture[str], config: Path, *matchers: str) -> str:
    assert main(["silence", "add", "-c", str(config), *matchers, "-m", "why", "-d", "1h"]) == 0
    return capsys.readouterr().out.strip()


def test_silence_list_filters_and_extend(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    on_rule = add(capsys, config, "rule=api-5xx", "team=ml")
    everywhere = add(capsys, config, "team=ml")
    other = add(capsys, config, "rule=~lat.*")
    assert [s["id"] for s in silences(capsys, config)] == [on_rule, everywhere, other]
    assert [s["id"] for s in silences(capsys, config, "--rule", "api-5xx")] == [on_rule, everywhere]
    assert [s["id"] for s in silences(capsys, config, "rule=api-5xx")] == [on_rule]
    ends = datetime.fromisoformat(str(silences(capsys, config, "rule=api-5xx")[0]["ends_at"]))
    assert main(["silence", "extend", "-c", str(config), on_rule, "--duration", "2h"]) == 0
    captured = capsys.readouterr()
    longer = captured.out.strip()
    (listed,) = silences(capsys, config, "rule=api-5xx")
    assert (listed["id"], listed["matchers"], listed["comment"]) == (
        longer,
        ["rule=api-5xx", "team=ml"],
        "why",
    )
    assert datetime.fromisoformat(str(listed["ends_at"])) == ends + timedelta(hours=2)
    assert captured.err == f"silence {on_rule} extended until {listed['ends_at']} as {longer}\n"
    assert main(["silence", "extend", "-c", str(config), on_rule, "--duration", "2h"]) == 1
    assert capsys.readouterr().err == (
        f"watcher silence extend: no pending or active silence {on_rule!r} (see `watcher silence ls`)\n"
    )


def _options(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _options(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            found.append((path, action))
    return found


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_text(command: str) -> None:
    missing = [
        f"{path} {action.dest}"
        for path, action in _options(build_parser(command), "watcher")
        if not action.help
    ]
    assert missing == []
