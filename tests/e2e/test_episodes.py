"""Every episode is its own incident: three bursts of one group while the daemon is stopped, or
while its store is unreachable, are three episodes after it catches up, each told FIRING then
RESOLVED or once as found after the fact, in order (real `watcher run`, real webhook receiver).

The rule evaluates 2s windows every second, so a stop (or an outage) of ~32 s with bursts of 4 s
separated by 6 s of health holds three distinct episodes, as a 60 s stop does for minute rules.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.daemon import WatcherProcess, write_config
from tests.e2e.outage import SearchServer, TcpProxy
from tests.e2e.storm import (
    ROUTE,
    RULE,
    BadStretch,
    SearchStorm,
    Storm,
    storm_env,
    wait_for_checkpoint,
    wait_until_settled,
)
from tests.e2e.test_store_outage import server as server  # the fixture: osmem-server with the app-logs index
from tests.e2e.webhook_server import Delivery, RecordingProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GAP = 32.0  # seconds the daemon is stopped or the store unreachable
BURSTS = ((3.0, 7.0), (13.0, 17.0), (23.0, 27.0))  # bad stretches, seconds into the gap


def told_episodes(deliveries: list[Delivery], service: str) -> list[tuple[float, str, bool]]:
    """(episode start, event, found late) for every notification about ``service``, in the order
    received; a re-sent notification id counts once."""
    seen: set[str] = set()
    told = []
    for delivery in deliveries:
        if delivery.id in seen:
            continue
        seen.add(delivery.id)
        for incident in delivery.incidents:
            if incident["rule"] == RULE["name"] and incident["group"] == {"svc": service}:
                started = datetime.fromisoformat(incident["started_at"]).timestamp()
                told.append((started, delivery.event, bool(incident.get("found_late"))))
    return told


def assert_each_burst_told_in_order(told: list[tuple[float, str, bool]], gap_start: float) -> None:
    starts = list(dict.fromkeys(started for started, _, _ in told))
    assert len(starts) == 3, f"expected three episodes, told: {told}"
    assert [started for started, _, _ in told] == sorted(started for started, _, _ in told), told
    for started, (first, last) in zip(starts, BURSTS, strict=True):
        assert gap_start + first - 1 <= started <= gap_start + last, (started - gap_start, told)
        story = [(event, late) for at, event, late in told if at == started]
        firing_then_resolved = [(event, late) for event, late in story if event != "update"] == [
            ("firing", False),
            ("resolved", False),
        ]
        assert firing_then_resolved or story == [("resolved", True)], story


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[RecordingProcess]:
    with RecordingProcess(tmp_path / "deliveries.jsonl") as recording:
        yield recording


def started(config: Path, cache: Path) -> WatcherProcess:
    """A daemon that has committed a tick: from then on, catch-up covers every window."""
    process = WatcherProcess(config, storm_env(cache))
    try:
        process.wait_started(60)
        wait_for_checkpoint(config.parent)
    except BaseException:
        process.kill()
        raise
    return process


def hook_config(workdir: Path, webhook: RecordingProcess, rule: dict[str, Any], **extra: Any) -> Path:
    receivers = {"hook": {"webhook": {"url": webhook.url}}}
    return write_config(workdir, [rule], receivers=receivers, route=ROUTE, **extra)


@pytest.mark.timeout(240)
def test_three_bursts_while_the_daemon_is_stopped_are_three_episodes(
    tmp_path: Path, webhook: RecordingProcess
) -> None:
    workdir = tmp_path / "run"
    config = hook_config(workdir, webhook, RULE)
    storm = Storm(workdir / "logs" / "app.jsonl", 1, [])
    storm.start()
    try:
        first = started(config, tmp_path / "pycache")
        time.sleep(2)
        assert first.terminate() == 0, first.stderr()
        stopped = time.time()
        storm.stretches = [BadStretch("svc00", stopped + a, stopped + b) for a, b in BURSTS]
        time.sleep(max(0.0, stopped + GAP - time.time()))
        second = started(config, tmp_path / "pycache")
        wait_until_settled(workdir, stopped + GAP, timeout=90)
        assert second.terminate() == 0, second.stderr()
    finally:
        storm.stop()
    assert_each_burst_told_in_order(told_episodes(webhook.snapshot(), "svc00"), stopped)


@pytest.fixture
def proxy(server: SearchServer) -> Iterator[TcpProxy]:
    """The store as watcher reaches it: through a proxy that can go down while indexing goes on."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    in_front = TcpProxy((host, int(port)))
    yield in_front
    in_front.close()


@pytest.mark.search
@pytest.mark.timeout(240)
def test_three_bursts_while_the_store_is_unreachable_are_three_episodes(
    tmp_path: Path, webhook: RecordingProcess, server: SearchServer, proxy: TcpProxy
) -> None:
    source = {"store": "opensearch", "hosts": [proxy.url], "index": "app-logs", "time_field": "ts"}
    sources = {"es": {**source, "timeout": "2s", "max_retries": 0}}
    config = hook_config(tmp_path, webhook, {**RULE, "source": "es"}, sources=sources)
    with SearchStorm(server, ("a", "b"), rate=5) as traffic:
        time.sleep(3)  # traffic in every window the daemon's first evaluation looks at
        process = started(config, tmp_path / "pycache")
        try:
            proxy.outage()
            down = time.time()
            for first, last in BURSTS:  # service a fails three times while watcher cannot see it
                time.sleep(max(0.0, down + first - time.time()))
                traffic.bad = {"a": (down + first, down + last)}
            time.sleep(max(0.0, down + GAP - time.time()))
            proxy.restore()
            wait_until_settled(tmp_path, down + GAP, timeout=90)
        finally:
            assert process.terminate() == 0, process.stderr()
    assert_each_burst_told_in_order(told_episodes(webhook.snapshot(), "a"), down)
