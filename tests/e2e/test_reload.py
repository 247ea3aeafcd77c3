"""Editing rule files under a running `watcher run`: valid edits, invalid edits, deletion, SIGHUP."""

from __future__ import annotations

import re
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.daemon import WatcherProcess, write_config
from tests.e2e.test_daemon import ERRORS, append_requests, firing
from watcher.incidents.model import State
from watcher.incidents.state import StateStore

pytestmark = pytest.mark.e2e

Lines = list[dict[str, Any]]


def of_rule(lines: Lines, rule: str, event: str) -> Lines:
    return [line for line in lines if line["event"] == event and line["incidents"][0]["rule"] == rule]


def wait_stderr(process: WatcherProcess, pattern: str, count: int = 1, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while len(re.findall(pattern, process.stderr())) < count:
        if process.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no {pattern!r} ({count}x) in:\n{process.stderr()}")
        time.sleep(0.05)


def open_incidents(workdir: Path, rule: str) -> list[Any]:
    with StateStore(workdir / "data" / "state.sqlite") as state:
        return state.incidents(rule=rule, states=(State.PENDING, State.FIRING))


def test_edits_while_running_keep_incidents_survive_typos_and_deletion_resolves(tmp_path: Path) -> None:
    config = write_config(tmp_path, [ERRORS], reload={"interval": "200ms"})
    rule_file = tmp_path / "rules" / "app-errors.yaml"
    append_requests(tmp_path / "logs" / "app.jsonl", 20, 503)
    process = WatcherProcess(config)
    try:
        process.wait_for(lambda lines: len(firing(lines)) == 1)
        (incident,) = open_incidents(tmp_path, "app-errors")
        assert incident.threshold == 0.5

        # A valid edit of the threshold: the same incident goes on, with the new threshold.
        rule_file.write_text(yaml.safe_dump({**ERRORS, "threshold": {"above": 0.4}}))
        wait_stderr(process, r"reloaded: 1 rules: 0 added, 1 changed, 0 removed")
        deadline = time.monotonic() + 10
        while open_incidents(tmp_path, "app-errors")[0].threshold != 0.4 and time.monotonic() < deadline:
            time.sleep(0.1)
        (kept,) = open_incidents(tmp_path, "app-errors")
        assert (kept.fingerprint, kept.state, kept.threshold) == (incident.fingerprint, State.FIRING, 0.4)
        assert of_rule(process.lines, "app-errors", "resolved") == []

        # A typo: the error is logged with file:line:col, the last good version keeps running
        # and watcher's own alert fires; fixing the file resolves that alert.
        rule_file.write_text(yaml.safe_dump({**ERRORS, "threshold": {"above": 0.4}, "every": "1sec"}))
        wait_stderr(process, re.escape(f"{rule_file}:") + r"\d+:\d+: invalid duration '1sec'")
        process.wait_for(lambda lines: len(of_rule(lines, "watcher:rules-invalid", "firing")) == 1)
        assert "kept at their last good version (app-errors)" in process.stderr()
        assert open_incidents(tmp_path, "app-errors")[0].state is State.FIRING
        rule_file.write_text(yaml.safe_dump({**ERRORS, "threshold": {"above": 0.4}}))
        process.wait_for(lambda lines: len(of_rule(lines, "watcher:rules-invalid", "resolved")) == 1)

        # Deleting the file resolves the rule's firing incident, saying why.
        rule_file.unlink()
        process.wait_for(lambda lines: len(of_rule(lines, "app-errors", "resolved")) == 1)
        (resolved,) = of_rule(process.lines, "app-errors", "resolved")
        note = resolved["incidents"][0]["note"]
        assert note == f"rule app-errors was removed from {rule_file}"
        assert note in resolved["text"]
        assert open_incidents(tmp_path, "app-errors") == []
        assert process.terminate() == 0
    finally:
        if process.proc.poll() is None:
            process.kill()


def datagrams(notify: socket.socket, until: str) -> list[str]:
    """sd_notify messages received up to and including one that contains ``until``."""
    received: list[str] = []
    while not received or until not in received[-1]:
        received.append(notify.recv(4096).decode())
    return received


def test_sighup_reloads_when_watching_is_off_and_tells_systemd(tmp_path: Path) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(30)
    config = write_config(tmp_path, [ERRORS], reload={"watch": False, "interval": "200ms"})
    process = WatcherProcess(config, env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    try:
        datagrams(notify, "READY=1")
        other = {**ERRORS, "name": "app-errors-strict", "threshold": {"above": 0.1}}
        (tmp_path / "rules" / "strict.yaml").write_text(yaml.safe_dump(other))
        time.sleep(1)
        assert "reloaded" not in process.stderr()  # not watched: the edit waits for SIGHUP
        process.proc.send_signal(signal.SIGHUP)
        wait_stderr(process, r"reloaded: 2 rules: 1 added, 0 changed, 0 removed")
        reload = datagrams(notify, "READY=1")
        assert reload[0].startswith("RELOADING=1\nMONOTONIC_USEC=")
        assert "STATUS=2 rules loaded" in reload[-1]
        append_requests(tmp_path / "logs" / "app.jsonl", 20, 503)
        process.wait_for(lambda lines: len(of_rule(lines, "app-errors-strict", "firing")) == 1)
        assert process.terminate() == 0
    finally:
        if process.proc.poll() is None:
            process.kill()
        notify.close()


def test_a_broken_watcher_yaml_keeps_the_running_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, [ERRORS], reload={"interval": "200ms"})
    append_requests(tmp_path / "logs" / "app.jsonl", 20, 503)
    process = WatcherProcess(config)
    try:
        process.wait_for(lambda lines: len(firing(lines)) == 1)
        good = config.read_text()
        config.write_text(good.replace("receiver: console", "receiver: nowhere", 1))
        wait_stderr(process, r"reload failed, keeping the running config: .*watcher\.yaml:\d+:\d+: .*nowhere")
        process.wait_for(lambda lines: len(of_rule(lines, "watcher:rules-invalid", "firing")) == 1)
        config.write_text(good)
        process.wait_for(lambda lines: len(of_rule(lines, "watcher:rules-invalid", "resolved")) == 1)
        assert open_incidents(tmp_path, "app-errors")[0].state is State.FIRING
        assert process.terminate() == 0
    finally:
        if process.proc.poll() is None:
            process.kill()


def test_files_fixed_while_stopped_resolve_the_invalid_rules_alert_at_start(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{**ERRORS, "every": "1sec"}])
    first = WatcherProcess(config)
    try:
        first.wait_for(lambda lines: len(of_rule(lines, "watcher:rules-invalid", "firing")) == 1)
        assert first.terminate() == 0
    finally:
        if first.proc.poll() is None:
            first.kill()
    (tmp_path / "rules" / "app-errors.yaml").write_text(yaml.safe_dump(ERRORS))
    second = WatcherProcess(config)
    try:
        second.wait_for(lambda lines: len(of_rule(lines, "watcher:rules-invalid", "resolved")) == 1)
        assert second.terminate() == 0
    finally:
        if second.proc.poll() is None:
            second.kill()
