"""A store outage in the middle of a run (a real `watcher run` against osmem-server behind a proxy
that goes down): no false flatline, no false resolve, one meta-alert, and the incident that
happened during the outage is found after it (the failed windows are evaluated again)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e.daemon import WatcherProcess, write_config
from tests.e2e.outage import SearchServer, TcpProxy
from tests.e2e.storm import RULE, SearchStorm, storm_env, wait_for_checkpoint, wait_until_settled

pytestmark = [pytest.mark.e2e, pytest.mark.search]

ERRORS = {**RULE, "source": "es"}
TRAFFIC = {
    "name": "traffic",
    "source": "es",
    "every": "1s",
    "window": "2s",
    "delay": "1s",
    "signal": {"count": {}},
    "flatline": {"below": 5},
    "severity": "critical",
}
MAPPING = {"properties": {"ts": {"type": "date"}, "svc": {"type": "keyword"}, "status": {"type": "integer"}}}


@pytest.fixture
def server() -> Iterator[SearchServer]:
    started = SearchServer()
    started.request("PUT", "/app-logs", {"mappings": MAPPING})
    yield started
    started.close()


def test_an_outage_is_one_meta_alert_and_the_incident_during_it_is_found_after(
    tmp_path: Path, server: SearchServer
) -> None:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    proxy = TcpProxy((host, int(port)))
    source = {"store": "opensearch", "hosts": [proxy.url], "index": "app-logs", "time_field": "ts",
              "timeout": "2s", "max_retries": 0}  # fmt: skip
    config = write_config(tmp_path, [ERRORS, TRAFFIC], sources={"es": source}, meta={"store_failures": 3})
    with SearchStorm(server, ("a", "b"), rate=5) as traffic:
        time.sleep(3)  # traffic in every window the daemon's first evaluation looks at
        process = WatcherProcess(config, storm_env(tmp_path / "pycache"))
        try:
            process.wait_started(60)
            wait_for_checkpoint(tmp_path)
            t0 = time.time()
            traffic.bad = {"a": (t0 + 1, t0 + 11), "b": (t0 + 10, t0 + 14)}
            time.sleep(6)
            proxy.outage()  # a fires before; a recovers and b fails and recovers during the outage
            time.sleep(12)
            proxy.restore()
            wait_until_settled(tmp_path, t0 + 22, timeout=90)
        finally:
            assert process.terminate() == 0, process.stderr()
            proxy.close()
    told = [(line["event"], incident) for line in process.lines for incident in line["incidents"]]
    meta = [event for event, i in told if i["rule"] == "watcher:store-unreachable"]
    assert meta == ["firing", "resolved"]
    assert [i for _, i in told if i["rule"] == "traffic"] == []  # no false flatline
    a = [(event, i) for event, i in told if i["rule"] == "svc-errors" and i["group"] == {"svc": "a"}]
    assert [event for event, _ in a] == ["firing", "resolved"]
    resolved_at = datetime.fromisoformat(a[1][1]["resolved_at"]).timestamp()
    assert t0 + 11 <= resolved_at <= t0 + 15  # resolved when its data recovered, not when the store failed
    b = [(event, i) for event, i in told if i["rule"] == "svc-errors" and i["group"] == {"svc": "b"}]
    assert b, "the incident during the outage was never notified"
    started = datetime.fromisoformat(b[-1][1]["started_at"]).timestamp()
    assert t0 + 10 <= started <= t0 + 14
    assert b[-1][0] == "resolved"
