"""/metrics, /healthz and /readyz served by a real server on 127.0.0.1, scraped with urllib."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from watcher.process.health import Health
from watcher.process.http import HttpError, HttpServer, parse_listen, start_http_server
from watcher.process.metrics import Metrics

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Running:
    server: HttpServer
    metrics: Metrics
    health: Health
    clock: Clock


@pytest.fixture
def running() -> Iterator[Running]:
    clock = Clock()
    metrics = Metrics(process=False)
    health = Health(clock=clock, heartbeat_max_age=timedelta(seconds=60), store_max_age=timedelta(minutes=5))
    server = start_http_server("127.0.0.1:0", metrics, health)
    yield Running(server, metrics, health, clock)
    server.close()


def get(server: HttpServer, path: str, method: str = "GET") -> tuple[int, str, dict[str, Any]]:
    request = urllib.request.Request(server.url + path, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def test_binds_loopback_and_reports_the_real_port(running: Running) -> None:
    host, port = running.server.address
    assert host == "127.0.0.1"
    assert port > 0
    assert running.server.url == f"http://127.0.0.1:{port}"


def test_metrics_show_the_recorded_series(running: Running) -> None:
    running.metrics.observe_evaluation("prediction-5xx-rate", 0.05, error=True)
    running.metrics.notification_sent("ml-slack")
    running.metrics.outbox_depth.set(2)
    running.metrics.store_called("ml-api", ok=True)
    status, body, headers = get(running.server, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'watcher_rule_evaluations_total{rule="prediction-5xx-rate"} 1.0' in body
    assert 'watcher_rule_errors_total{rule="prediction-5xx-rate"} 1.0' in body
    assert 'watcher_rule_evaluation_seconds_bucket{le="0.05",rule="prediction-5xx-rate"} 1.0' in body
    assert 'watcher_notifications_sent_total{receiver="ml-slack"} 1.0' in body
    assert "watcher_outbox_depth 2.0" in body
    assert 'watcher_store_round_trips_total{source="ml-api"} 1.0' in body


def test_readyz_waits_for_rules_and_the_store(running: Running) -> None:
    running.health.expect_sources(["ml-api"])
    status, body, _ = get(running.server, "/readyz")
    assert status == 503
    assert json.loads(body)["reasons"] == ["no rules loaded", "source ml-api not reached yet"]

    running.health.rules_loaded(4)
    status, body, _ = get(running.server, "/readyz")
    assert status == 503
    assert json.loads(body)["reasons"] == ["source ml-api not reached yet"]

    running.health.store_reached("ml-api")
    status, body, _ = get(running.server, "/readyz")
    assert status == 200
    assert json.loads(body)["status"] == "ok"
    assert json.loads(body)["rules"] == 4


def test_readyz_fails_when_the_store_was_not_reached_recently(running: Running) -> None:
    running.health.rules_loaded(1)
    running.health.expect_sources(["ml-api"])
    running.health.store_reached("ml-api")
    running.clock.advance(minutes=4)
    running.health.store_failed("ml-api", "connection refused")
    assert get(running.server, "/readyz")[0] == 200
    running.clock.advance(minutes=2)
    status, body, _ = get(running.server, "/readyz")
    assert status == 503
    assert json.loads(body)["reasons"] == ["source ml-api last reached 6m ago (limit 5m): connection refused"]
    assert json.loads(body)["sources"]["ml-api"]["error"] == "connection refused"


def test_readyz_with_an_empty_rule_set(running: Running) -> None:
    running.health.rules_loaded(0)
    status, body, _ = get(running.server, "/readyz")
    assert status == 503
    assert json.loads(body)["reasons"] == ["the rule set is empty"]


def test_healthz_fails_when_the_scheduler_heartbeat_is_stale(running: Running) -> None:
    assert get(running.server, "/healthz")[0] == 200  # starting up counts as alive
    running.clock.advance(seconds=50)
    running.health.heartbeat()
    running.clock.advance(seconds=59)
    assert get(running.server, "/healthz")[0] == 200
    running.clock.advance(seconds=2)
    status, body, _ = get(running.server, "/healthz")
    assert status == 503
    assert json.loads(body) == {
        "status": "fail",
        "reasons": ["scheduler heartbeat is 1m1s old (limit 1m)"],
        "heartbeat_age_seconds": 61.0,
    }


def test_head_for_probes_and_unknown_paths(running: Running) -> None:
    status, body, headers = get(running.server, "/healthz", method="HEAD")
    assert (status, body) == (200, "")
    assert int(headers["Content-Length"]) > 0
    assert get(running.server, "/nope")[0] == 404
    assert "/metrics" in get(running.server, "/")[1]


def test_keep_alive_connection_serves_head_then_get(running: Running) -> None:
    import http.client

    host, port = running.server.address
    connection = http.client.HTTPConnection(host, port, timeout=5)
    connection.request("HEAD", "/healthz")
    assert connection.getresponse().read() == b""
    connection.request("GET", "/healthz")
    assert json.loads(connection.getresponse().read())["status"] == "ok"
    connection.close()


def test_close_frees_the_port() -> None:
    server = start_http_server("127.0.0.1:0", Metrics(process=False), Health())
    port = server.address[1]
    server.close()
    again = start_http_server(f"127.0.0.1:{port}", Metrics(process=False), Health())
    again.close()


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(HttpError) as error:
            start_http_server(f"127.0.0.1:{port}", Metrics(process=False), Health())
    assert str(error.value) == f"cannot listen on 127.0.0.1:{port}: Address already in use"


@pytest.mark.parametrize(
    ("listen", "expected"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:0", ("::1", 0)), ("0.0.0.0:80", ("0.0.0.0", 80))],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["9464", "localhost", "127.0.0.1:99999", "::1:9464", "127.0.0.1:"])
def test_bad_listen_address(listen: str) -> None:
    with pytest.raises(HttpError) as error:
        parse_listen(listen)
    assert str(error.value) == f"invalid http listen address {listen!r}: use host:port, e.g. 127.0.0.1:9464"
