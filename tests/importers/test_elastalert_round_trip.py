"""Round trip: ElastAlert 2 frequency, flatline and percentage_match rules, converted and backtested on
a log written here, fire on the minutes ElastAlert 2's semantics (elastalert/ruletypes.py) give.

The rules (tests/importers/elastalert/rules) run every minute (config.yaml's run_every) with
query_delay 1m, so the evaluation at T reads [T - 6m, T - 1m); the expected times are worked out by
hand below.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from watcher.cli import main

DATA = Path(__file__).parent / "elastalert"
DAY = datetime(2026, 1, 5)


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute, second=second)


def every(start: datetime, end: datetime, step: int) -> list[datetime]:
    times, now = [], start
    while now < end:
        times.append(now)
        now += timedelta(seconds=step)
    return times


def incident_events(out: str) -> list[dict[str, object]]:
    """The backtest's incident events (its JSON lines also tell when a rule lacks data: ``nodata``)."""
    events = [json.loads(line) for line in out.splitlines()]
    return [event for event in events if event["event"] in ("firing", "resolved")]


def the_log() -> list[dict[str, object]]:
    lines: list[tuple[datetime, dict[str, object]]] = []
    # checkout sends every 30 s until 10:09:30, then stops (flatline: threshold 3 in 5 minutes).
    lines += [
        (t, {"service": "checkout", "level": "info", "status": 200}) for t in every(at(9, 0), at(10, 10), 30)
    ]
    # frequency (5 errors in 5 minutes): five errors 3 minutes apart never make 5 within 5 minutes;
    # five errors a minute apart, 10:02:10 to 10:06:10, do at 10:06:10.
    errors = [at(9, m, 10) for m in (30, 33, 36, 39, 42)] + [at(10, m, 10) for m in range(2, 7)]
    lines += [(t, {"service": "search", "level": "error", "status": 200}) for t in errors]
    # percentage_match (over 20 % of documents with status >= 500 in buffer_time, 5 minutes): 4 requests
    # a minute from 10:30 to 10:40, those of 10:34 and 10:35 answered 503.
    lines += [
        (t, {"service": "search", "level": "info", "status": 503 if t.minute in (34, 35) else 200})
        for t in every(at(10, 30), at(10, 40), 15)
    ]
    return [
        {"@timestamp": t.strftime("%Y-%m-%dT%H:%M:%SZ"), **fields}
        for t, fields in sorted(lines, key=lambda x: x[0])
    ]


def backtest(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    log: list[dict[str, object]],
    names: list[str],
    end: str,
) -> list[dict[str, object]]:
    """Import every fixture rule, backtest the ``names`` ones on ``log`` from 09:10 to ``end``; the
    incident events."""
    rules = tmp_path / "rules"
    main(["import", "elastalert", str(DATA / "rules"), "--config", str(DATA / "config.yaml"),
          "-o", str(rules), "--receivers", str(tmp_path / "fragment.yaml")])  # fmt: skip
    config = tmp_path / "watcher.yaml"
    config.write_text(
        (tmp_path / "fragment.yaml").read_text() + f"state: {{path: {tmp_path / 'state.db'}}}\n"
    )
    path = tmp_path / "app.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in log))
    capsys.readouterr()
    chosen = [arg for name in names for arg in ("--rules", str(rules / f"{name}.yaml"))]
    code = main(["backtest", "-c", str(config), "--logs", str(path), *chosen,
                 "--start", "2026-01-05T09:10:00Z", "--end", f"2026-01-05T{end}:00Z"])  # fmt: skip
    assert code == 0
    return incident_events(capsys.readouterr().out)


def test_converted_rules_fire_where_elastalert_2_matches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = backtest(tmp_path, capsys, the_log(), ["frequency", "flatline", "percentage_match"], "10:45")
    assert [(e["rule"], e["event"], e["at"][11:16]) for e in events] == [
        # 5th error at 10:06:10; the first window [T-6m, T-1m) holding 10:02:10..10:06:10 is T = 10:08.
        # ElastAlert 2 sees it at its first run after 10:07:10 (query_delay 1m).
        ("too-many-errors", "firing", "10:08"),
        ("too-many-errors", "resolved", "10:09"),  # [10:03, 10:08) holds 4
        # Fewer than 3 checkout events once only 10:09:00 and 10:09:30 are left: [10:09, 10:14) at T = 10:15
        # (ElastAlert 2: after 10:13:30, seen from 10:14:30).
        ("heartbeat-lost", "firing", "10:15"),
        # 8 of 20 (40 %) while the window holds 10:34 and 10:35: T = 10:37 to 10:40; one of those minutes
        # alone is 4 of 20, exactly 20 %, not above max_percentage.
        ("error-share", "firing", "10:37"),
        ("error-share", "resolved", "10:41"),
    ]


def the_document_log() -> list[dict[str, object]]:
    """User agents and clients on an edge service: curl is known from 09:05, before the backtest's
    start; python-requests first appears at 09:22:30 and zgrab at 09:26:10; the denied client
    evil-bot calls at 09:40:05 and 09:40:40, scraper at 09:44:20."""
    agents = [(at(9, 5), "curl"), (at(9, 21), "curl"), (at(9, 22, 30), "python-requests"),
              (at(9, 24), "python-requests"), (at(9, 26, 10), "zgrab")]  # fmt: skip
    clients = [(at(9, 40, 5), "evil-bot"), (at(9, 40, 40), "evil-bot"), (at(9, 42, 30), "web"),
               (at(9, 44, 20), "scraper")]  # fmt: skip
    lines = [(t, {"user_agent": agent, "client": "web"}) for t, agent in agents]
    lines += [(t, {"user_agent": "curl", "client": client}) for t, client in clients]
    return [
        {
            "@timestamp": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "service": "edge",
            "level": "info",
            "status": 200,
            **f,
        }
        for t, f in sorted(lines, key=lambda x: x[0])
    ]


def test_converted_new_term_and_blacklist_rules_fire_where_elastalert_2_matches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = backtest(tmp_path, capsys, the_document_log(), ["new_term", "blacklist"], "09:50")
    assert [(e["rule"], e["event"], e["at"][11:16]) for e in events] == [
        # new_term: a term unseen in terms_window_size (7d) matches in the run that first reads it;
        # with run_every 1m and query_delay 1m the window at T is [T - 2m, T - 1m). python-requests
        # (09:22:30) is read at T = 09:24 (ElastAlert 2: its first run after 09:23:30); at 09:24:00
        # it is known, so the next window has nothing new and the incident resolves.
        ("new-user-agent", "firing", "09:24"),
        ("new-user-agent", "resolved", "09:25"),
        ("new-user-agent", "firing", "09:28"),  # zgrab, 09:26:10
        ("new-user-agent", "resolved", "09:29"),
        # blacklist: each document whose client is listed matches; ElastAlert 2's realert (1 minute by
        # default) makes the two evil-bot calls 35 s apart one alert, as watcher's one incident
        # counting both (read at T = 09:42); scraper at 09:44:20 is read at 09:46.
        ("denied-client", "firing", "09:42"),
        ("denied-client", "resolved", "09:43"),
        ("denied-client", "firing", "09:46"),
        ("denied-client", "resolved", "09:47"),
    ]
    assert [e["value"] for e in events if e["event"] == "firing"] == [
        1,
        1,
        2,
        1,
    ]  # evil-bot twice: one incident
