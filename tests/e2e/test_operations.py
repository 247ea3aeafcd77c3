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


def test_ready_on_the_notify_socket_and_metrics_health_served(tmp_path: Path) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(30)
    config = write_config(tmp_path, [ERRORS], http={"listen": "127.0.0.1:0"})
    append_requests(tmp_path / "logs" / "app.jsonl", 20, 200)
    process = WatcherProcess(config, env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    try:
        assert "READY=1" in notify.recv(4096).decode()
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
        assert process.terminate() == 0
        assert "STOPPING=1" in notify.recv(4096).decode()
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
