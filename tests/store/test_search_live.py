"""Live ticks on the search store (the daemon's ``live_partials``): logs arrive between ticks,
some up to the rules' ``delay`` late, and the engine reading only the newest minute of each rule
tells the same incidents, with the same values, as re-reading every window.

Percentiles differ by design (re-reading gets the server's t-digest estimate, partials the exact
value), so values are compared within the estimate's tolerance."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import pytest

from tests.store.partials_replay import Replayed, assert_same, demo_rules
from watcher.demo import DEMO_START, generate
from watcher.engine import Engine
from watcher.incidents.state import StateStore
from watcher.process.daemon import live_partials
from watcher.routing.dispatch import Dispatcher
from watcher.store.bulk import load_lines

RULES = (
    "prediction-5xx-rate",
    "prediction-5xx-spike",
    "prediction-latency-p99",
    "prediction-traffic-flatline",
)
FIRST, LAST = DEMO_START + timedelta(minutes=55), DEMO_START + timedelta(minutes=75)
DELAY = timedelta(seconds=30)  # the rules' delay


def _arrival(doc: dict[str, object], number: int) -> datetime:
    """When a line reaches the index: 0 to 29 seconds after its timestamp, within the delay."""
    stamp = datetime.fromisoformat(str(doc["@timestamp"]).replace("Z", "+00:00"))
    return stamp + timedelta(seconds=number * 7919 % 30)


@pytest.fixture
def arriving(search_server):
    """An empty index and the demo's lines, each with the time it arrives."""
    since = (FIRST - timedelta(minutes=20)).isoformat().replace("+00:00", "")
    docs = [doc for doc in generate(DEMO_START, LAST - DEMO_START, seed=5) if str(doc["@timestamp"]) >= since]
    late = dict(docs[-1], status=503, service="prediction-api", model_version="v3")
    late["@timestamp"] = (FIRST + timedelta(minutes=10, seconds=25)).isoformat().replace("+00:00", "Z")
    lines = [(_arrival(doc, i), json.dumps(doc)) for i, doc in enumerate(docs)]
    # one line as late as the delay allows: stamped 10:25 past, arriving 10:54 (read at 11:00)
    lines.append((FIRST + timedelta(minutes=10, seconds=54), json.dumps(late)))
    index = f"watcher-live-{uuid.uuid4().hex[:6]}"
    yield index, sorted(lines, key=lambda pair: pair[0])
    search_server.delete_index(index)


def test_live_ticks_tell_the_same_as_rereading_while_logs_arrive(arriving, make_store, tmp_path):
    index, lines = arriving
    loader = make_store("opensearch", index, timeout="2m")
    stores = {name: make_store("opensearch", index, timeout="2m") for name in ("partials", "reread")}
    config, rules = demo_rules()
    rules = [rule for rule in rules if rule.name in RULES]
    assert all(rule.delay == DELAY for rule in rules)
    engines = {}
    for name, store in stores.items():
        state = StateStore(tmp_path / f"{name}.sqlite")
        dispatcher = Dispatcher.from_config(config, state)  # type: ignore[arg-type]
        policy = live_partials if name == "partials" else False
        route = config.route  # type: ignore[attr-defined]
        engines[name] = Engine(rules, {"demo": store}, state, route, dispatcher=dispatcher, partials=policy)
    told: dict[str, list] = {name: [[], [], [], []] for name in engines}
    bodies: list[dict] = []
    spy_store = stores["partials"]
    send = spy_store._msearch

    def spy(batch):
        bodies.extend(json.loads(body) for body in batch)
        return send(batch)

    spy_store._msearch = spy  # type: ignore[method-assign]
    now, loaded = FIRST, 0
    while now <= LAST:
        arrived = [line for at, line in lines[loaded:] if at <= now]
        if arrived:
            load_lines(loader, arrived, index)
            loaded += len(arrived)
        bodies.clear()
        for name, engine in engines.items():
            _record(told[name], engine.tick(now))
        if now > FIRST:  # after the first tick each rule asks the server for its newest minute only,
            bucketed = [body for body in bodies if '"top_hits"' not in json.dumps(body)]
            assert {_span(body) for body in bucketed} == {60_000}
            # with no filter left for the server to evaluate over the whole index (an alert's
            # evidence reads its window, with the rule's where read as keys too)
            assert all(len(body["query"]["bool"]["filter"]) == 1 for body in bodies)
            assert all('"filter"' not in json.dumps(body["aggs"]) for body in bucketed)
        now += timedelta(minutes=1)
    partials, reread = (Replayed(*parts[:3], len(parts[3])) for parts in (told["partials"], told["reread"]))
    assert any(event[2] == "firing" for event in reread.events)  # the 5xx burst fired
    assert_same(partials, reread, rel=0.05)


def _span(body: dict) -> int:
    bounds = body["query"]["bool"]["filter"][0]["range"]["@timestamp"]
    return int(bounds["lt"]) - int(bounds["gte"])


def _record(told: list, report) -> None:
    """Append the tick's transitions, values, notification ids and errors to ``told``."""
    events, values, notifications, errors = told
    errors.extend(report.errors)
    for t in report.transitions:
        events.append((t.incident.rule, str(sorted(t.incident.group.items())), t.event.value, t.at))
        values.append(t.incident.value)
    notifications.extend(n.id for n in report.notifications)
