"""A real `watcher run` process as operators see it: sd_notify, /metrics, /healthz, /readyz."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.daemon import WatcherProcess, write_config
from tests.e2e.test_daemon import ERRORS, append_requests

pytestmark = pytest.mark.e2e


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def receive_until(
    notify: socket.socket, wanted: set[str], process: WatcherProcess, timeout: float = 30
) -> list[str]:
    """The datagrams received until each of ``wanted`` (``KEY=value`` lines) arrived; the
    watchdog's WATCHDOG=1 pings interleave with the other notifications."""
    received: list[str] = []
    missing = set(wanted)
    deadline = time.monotonic() + timeout
    while missing:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {sorted(missing)} within {timeout}s; received {received}")
        notify.settimeout(min(left, 0.5))
        try:
            datagram = notify.recv(4096).decode()
        except TimeoutError:
            if process.proc.poll() is not None:  # nothing queued and nobody left to send it
                raise AssertionError(
                    f"watcher exited without {sorted(missing)}:\n{process.stderr()}"
                ) from None
            continue
        received.append(datagram)
        missing -= set(datagram.splitlines())
    return received


def test_ready_and_watchdog_on_the_notify_socket_and_metrics_health_served(tmp_path: Path) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    config = write_config(tmp_path, [ERRORS], http={"listen": "127.0.0.1:0"})
    append_requests(tmp_path / "logs" / "app.jsonl", 20, 200)
    # WatchdogSec=2s: watcher pings every second. WATCHDOG_PID is left unset (systemd sets it
    # to the service's pid; a wrong one would make watcher ignore the watchdog).
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "2000000"}
    process = WatcherProcess(config, env=env)
    try:
        receive_until(notify, {"READY=1", "WATCHDOG=1"}, process)
        found = re.search(
            r"serving /metrics, /healthz and /readyz on (http://127\.0\.0\.1:\d+)", process.stderr()
        )
        assert found, process.stderr()
        base = found.group(1)
        deadline = time.monotonic() + 20
        while get(base + "/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        status, body = get(base + "/readyz")
        assert status == 200, body
        assert get(base + "/healthz")[0] == 200
        status, metrics = get(base + "/metrics")
        assert status == 200
        assert 'watcher_store_round_trips_total{source="app"}' in metrics
        assert "watcher_outbox_depth" in metrics
        # /readyz turned 200 after the first tick, which timed and counted the rule's evaluation.
        assert re.search(
            r'^watcher_rule_evaluation_seconds_bucket\{le="[^"]+",rule="app-errors"\} [1-9]', metrics, re.M
        )
        assert re.search(r'^watcher_rule_evaluations_total\{rule="app-errors"\} [1-9]', metrics, re.M)
        assert 'watcher_rule_errors_total{rule="app-errors"} 0.0' in metrics
        assert process.terminate() == 0
        receive_until(notify, {"STOPPING=1"}, process)
    finally:
        if process.proc.poll() is None:
            process.kill()
        notify.close()


def test_logs_are_json_lines_when_not_on_a_terminal(tmp_path: Path) -> None:
    config = write_config(tmp_path, [ERRORS])
    process = WatcherProcess(config)
    try:
        process.wait_started()
        assert process.terminate() == 0
    finally:
        if process.proc.poll() is None:
            process.kill()
    records = [json.loads(line) for line in process.stderr().splitlines() if line.startswith("{")]
    assert any(record.get("message", "").startswith("watcher started") for record in records), records[:3]
