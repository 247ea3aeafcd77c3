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


def test_converted_rules_fire_where_elastalert_2_matches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules"
    main(["import", "elastalert", str(DATA / "rules"), "--config", str(DATA / "config.yaml"),
          "-o", str(rules), "--receivers", str(tmp_path / "fragment.yaml")])  # fmt: skip
    config = tmp_path / "watcher.yaml"
    config.write_text(
        (tmp_path / "fragment.yaml").read_text() + f"state: {{path: {tmp_path / 'state.db'}}}\n"
    )
    log = tmp_path / "app.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in the_log()))
    capsys.readouterr()
    chosen = [
        arg
        for name in ("frequency", "flatline", "percentage_match")
        for arg in ("--rules", str(rules / f"{name}.yaml"))
    ]
    code = main(["backtest", "-c", str(config), "--logs", str(log), *chosen,
                 "--start", "2026-01-05T09:10:00Z", "--end", "2026-01-05T10:45:00Z"])  # fmt: skip
    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
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
