"""Two real `watcher run` replicas on one PostgreSQL state while the database is stopped.

An osmem-server source keeps receiving requests for three services throughout: ``beta`` fails
from before the outage until after it, ``alpha`` fails only while the database is down, ``gamma``
never. Then the server is stopped (a fast shutdown: every session cut) for ``OUTAGE`` seconds and
started again on the same data. What the webhook receiver sees:

- no false fire or resolve while the database is down: beta's incident is not resolved (nor
  fired again), gamma is never told, nothing of the rule is sent during the outage;
- ``watcher:state-unwritable`` is sent while the database is down (``DirectAlert`` needs no
  state) and resolved once it is back;
- nothing lost: alpha's incident, which happened during the outage, is fired and resolved after
  it (catch-up evaluates the windows the failed ticks did not commit); beta resolves once.

The issue asks for 60 s. CI stops the server for 20 s (enough for every lease, 2 s, and every
tick, 1 s, to fail many times over: the behaviour does not change with the length, the run time
does); ``WATCHER_PG_OUTAGE=60 pytest tests/e2e/test_replicas_outage.py`` runs the full minute.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e.daemon import WatcherProcess, wait_until, write_config
from tests.e2e.outage import SearchServer
from tests.e2e.storm import ROUTE, RULE, SearchStorm, storm_env
from tests.e2e.test_replicas_delivery import settled
from tests.e2e.webhook_server import Delivery, WebhookServer
from tests.pg_server import PostgresServer

pytestmark = [pytest.mark.e2e, pytest.mark.search, pytest.mark.slow]

OUTAGE = float(os.environ.get("WATCHER_PG_OUTAGE", "20"))
HA = {"replicas": 2, "partitions": 4, "heartbeat": "1s", "lease": "2s"}
META = "watcher:state-unwritable"


def told(deliveries: list[Delivery], rule: str, service: str | None = None) -> list[Delivery]:
    return [
        d
        for d in deliveries
        if any(
            i["rule"] == rule and (service is None or i["group"].get("svc") == service) for i in d.incidents
        )
    ]


def resolved(deliveries: list[Delivery], rule: str, service: str | None) -> bool:
    return any(d.event == "resolved" for d in told(deliveries, rule, service))


def test_replicas_with_their_database_stopped_fire_nothing_false_and_lose_nothing(
    tmp_path: Path, server: SearchServer, private_postgres: PostgresServer
) -> None:
    url = private_postgres.create_database()
    source = {"store": "opensearch", "hosts": [server.url], "index": "app-logs", "time_field": "ts"}
    with WebhookServer() as hook:
        config = write_config(
            tmp_path,
            [{**RULE, "source": "es"}],
            sources={"es": source},
            state={"url": url},
            ha=HA,
            receivers={"hook": {"webhook": {"url": hook.url, "timeout": "3s"}}},
            route=ROUTE,
        )
        env = storm_env(tmp_path / "pycache")
        replicas = [WatcherProcess(config, env) for _ in range(2)]
        try:
            with SearchStorm(server, ("alpha", "beta", "gamma"), rate=8) as requests:
                for replica in replicas:
                    replica.wait_started(60)
                now = time.time()
                requests.bad["beta"] = (now, now + 1e9)  # fails until told otherwise
                wait_until(lambda: len(told(hook.snapshot(), RULE["name"], "beta")) >= 1, timeout=60)
                time.sleep(2)
                halted = time.time()  # the receiver's clock (Delivery.received)
                private_postgres.halt()
                requests.bad["alpha"] = (halted + 3, halted + OUTAGE - 5)
                time.sleep(OUTAGE)
                resumed = time.time()
                private_postgres.resume()
                time.sleep(8)
                requests.bad["beta"] = (requests.bad["beta"][0], time.time())  # beta recovers after it
                wait_until(lambda: settled(url), timeout=120)
                # The last notifications may wait in their group (group_wait) after the outbox emptied.
                wait_until(
                    lambda: all(
                        resolved(hook.snapshot(), rule, service)
                        for rule, service in ((RULE["name"], "beta"), (RULE["name"], "alpha"), (META, None))
                    ),
                    timeout=60,
                )
        finally:
            for replica in replicas:
                replica.proc.send_signal(signal.SIGTERM)
            codes = [replica.proc.wait(30) for replica in replicas]
        deliveries = hook.snapshot()
    assert codes == [0, 0], [replica.stderr()[-3000:] for replica in replicas]

    rule_sent = told(deliveries, RULE["name"])
    # No false fire or resolve while the database was down: nothing of the rule was sent then
    # (the alerts are written to the outbox in the tick's transaction, which could not commit).
    during = [d for d in rule_sent if halted < d.received < resumed]
    assert during == [], [(d.event, [i["group"] for i in d.incidents]) for d in during]
    assert told(deliveries, RULE["name"], "gamma") == []
    # beta: fired once before the outage, resolved once after it -- not resolved by the outage.
    beta = Counter(d.event for d in {d.id: d for d in told(deliveries, RULE["name"], "beta")}.values())
    assert beta == Counter({"firing": 1, "resolved": 1}), [
        (d.id, d.event, d.received - halted, [(i["group"], i["state"]) for i in d.incidents])
        for d in deliveries
    ]
    [beta_resolved] = [d for d in told(deliveries, RULE["name"], "beta") if d.event == "resolved"]
    assert beta_resolved.received > resumed
    # alpha failed only during the outage: found afterwards by catch-up and told once. Catch-up
    # may evaluate its whole episode in one tick, before group_wait: then the group's one
    # notification already says resolved (with the incident's start and end).
    alpha = list({d.id: d for d in told(deliveries, RULE["name"], "alpha")}.values())
    assert alpha, "the incident of the outage was lost"
    assert Counter(d.event for d in alpha) - Counter({"firing": 1, "resolved": 1}) == Counter()
    assert alpha[-1].event == "resolved"
    assert all(d.received > resumed for d in alpha)
    [started] = {i["started_at"] for d in alpha for i in d.incidents if i["group"].get("svc") == "alpha"}
    assert halted < datetime.fromisoformat(started).timestamp() < halted + OUTAGE
    # The meta-alert: sent while the database was down, resolved once it is back.
    meta = told(deliveries, META)
    [first] = [d for d in meta if d.event == "firing"][:1]
    assert halted < first.received < resumed
    assert [d for d in meta if d.event == "resolved"][-1].received > resumed
