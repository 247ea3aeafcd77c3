"""`watcher backtest` over the demo's log: its JSON lines are a contract other tools read."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.cli.progress import Progress
from watcher.demo import DEMO_LENGTH, DEMO_START, score, write_log
from watcher.rules.loader import load_config, load_rules

ROOT = Path(__file__).parents[2]
START = DEMO_START.isoformat().replace("+00:00", "Z")
END = (DEMO_START + DEMO_LENGTH).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "requests.jsonl"
    write_log(path)
    return path


def backtest(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["backtest", "--config", str(ROOT / "watcher.yaml"), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def whole_demo(demo_log: Path) -> tuple[int, str, str]:
    """The JSON backtest of the whole demo log (exit code, standard output and error), its rules
    shared among two processes, run once for the tests that read it: a backtest of seven hours is
    the slowest thing here."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["backtest", "--config", str(ROOT / "watcher.yaml"), "--logs", str(demo_log),
                     "--start", START, "--end", END, "--processes", "2"])  # fmt: skip
    return code, out.getvalue(), err.getvalue()


def test_reports_every_injected_incident_and_nothing_in_quiet_periods(
    whole_demo: tuple[int, str, str],
) -> None:
    code, out, _ = whole_demo
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    records = [line for line in lines if line["event"] != "nodata"]
    assert records, "no notifications"
    for record in records:
        assert set(record) == {"rule", "group", "event", "at", "value", "severity"}
        assert record["event"] in ("firing", "resolved", "update")  # update: a change of severity
        datetime.fromisoformat(record["at"])
    events = [
        (r["rule"], r["event"], datetime.fromisoformat(r["at"])) for r in records if r["event"] != "update"
    ]
    rules = {rule.name for rule in load_rules([ROOT / "rules"], load_config(ROOT / "watcher.yaml")).rules}
    outcomes, stray = score(events, rules)
    assert [o.injection.kind for o in outcomes if not o.caught] == []
    assert stray == []
    five_xx = [r for r in records if r["rule"] == "prediction-5xx-rate"]
    assert five_xx[0]["group"] == {"model_version": "v3"}
    assert five_xx[0]["severity"] == "critical"
    assert five_xx[0]["value"] > 0.05


def test_a_change_of_severity_is_a_line_of_its_own(whole_demo: tuple[int, str, str]) -> None:
    code, out, _ = whole_demo
    assert code == 0
    drift = [
        r
        for r in map(json.loads, out.splitlines())
        if r["rule"] == "feature-drift" and r["event"] != "nodata"
    ]
    # PSI 0.63 is past drift's critical level (0.25); it falls to 0.14 (warning) before it clears.
    assert [(r["event"], r["severity"]) for r in drift] == [
        ("firing", "critical"),
        ("update", "warning"),
        ("resolved", "warning"),
    ]


def test_text_format_prints_a_table(demo_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    end = (DEMO_START.replace(hour=10)).isoformat()
    code, out, _ = backtest(
        capsys, "--logs", str(demo_log), "--start", START, "--end", end, "--format", "text"
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["at", "event", "rule", "group", "value", "severity"]
    assert "prediction-5xx-rate" in out
    total = next(i for i, line in enumerate(lines) if line.endswith(" notifications"))
    rows = lines[1:total]
    assert rows, "the 5xx burst at 09:00 is inside the range"
    assert lines[total] == f"{len(rows)} notifications"
    assert lines[total + 1].split() == ["rule", "evaluations", "not", "enough", "data", "errors", "fires"]


def test_end_before_start_is_refused(demo_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = backtest(capsys, "--logs", str(demo_log), "--start", END, "--end", START)
    assert code == 2
    assert err.strip() == "watcher backtest: --end is before --start"


def test_missing_log_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.jsonl"
    code, _, err = backtest(capsys, "--logs", str(missing), "--start", START, "--end", END)
    assert code == 2
    assert err.strip() == f"watcher backtest: log file not found: {missing}"


def test_bad_time_is_refused_with_a_hint(demo_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        backtest(capsys, "--logs", str(demo_log), "--start", "yesterday", "--end", END)
    assert exit_info.value.code == 2
    assert "invalid time 'yesterday': use ISO 8601, e.g. 2026-01-05T08:00:00Z" in capsys.readouterr().err


def test_missing_config_is_refused(
    demo_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "backtest",
            "--config",
            str(tmp_path / "none.yaml"),
            "--logs",
            str(demo_log),
            "--start",
            START,
            "--end",
            END,
        ]
    )
    assert code == 2  # an environment error
    assert f"config file {tmp_path / 'none.yaml'} not found" in capsys.readouterr().err


FLATLINE_START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
FLATLINE_RANGE = ["--start", "2026-01-05T08:10:00Z", "--end", "2026-01-05T08:44:00Z"]
FLATLINE_RECORDS = [({"svc": "b"}, "firing", "2026-01-05T08:35:00Z")]  # b's first window without data


def flatline_lines() -> list[str]:
    """Services a, b, c every 2 s for 45 min; b stops at 08:30."""
    start, stop = FLATLINE_START, FLATLINE_START + timedelta(minutes=30)
    return [
        json.dumps({"ts": (start + timedelta(seconds=i)).isoformat(), "svc": svc, "status": 200})
        for i in range(0, 45 * 60, 2)
        for svc in ("a", "b", "c")
        if svc != "b" or start + timedelta(seconds=i) < stop
    ]


def flatline_setup(
    folder: Path, source: str = "{store: embedded, path: data/logs.duckdb, time_field: ts}"
) -> Path:
    """A per-service flatline rule on the source ``app``; the config's path."""
    (folder / "rules").mkdir()
    (folder / "rules" / "flat.yaml").write_text(
        "{name: per-svc-flatline, source: app, every: 1m, window: 5m, delay: 0s, group_by: [svc],"
        " signal: count, flatline: {below: 10}, severity: critical}\n"
    )
    config = folder / "watcher.yaml"
    config.write_text(
        f"sources: {{app: {source}}}\n"
        "state: {path: data/state.sqlite}\n"
        "receivers: {console: {console: {format: text}}}\n"
        "route: {receiver: console, group_by: [rule, svc], group_wait: 0s}\n"
        "rules: [rules]\n"
    )
    return config


def records(out: str) -> list[tuple[dict[str, str], str, str]]:
    """The notifications of a JSON backtest (not the ``nodata`` lines)."""
    return [
        (r["group"], r["event"], r["at"]) for r in map(json.loads, out.splitlines()) if r["event"] != "nodata"
    ]


def nodata_lines(out: str) -> list[dict[str, object]]:
    """The ``nodata`` lines of a JSON backtest: a rule's group entering or leaving not-enough-data."""
    return [r for r in map(json.loads, out.splitlines()) if r["event"] == "nodata"]


def flatline_argv(folder: Path, **rules: str) -> list[str]:
    """A backtest of the flatline log over ``FLATLINE_RANGE`` with ``rules`` (file stem -> YAML) added."""
    log = folder / "app.jsonl"
    log.write_text("\n".join(flatline_lines()) + "\n")
    config = flatline_setup(folder)
    for stem, text in rules.items():
        (folder / "rules" / f"{stem}.yaml").write_text(text)
    return ["backtest", "--config", str(config), "--logs", str(log), *FLATLINE_RANGE]


FLATLINE_SUMMARY = (
    "rule              evaluations  not enough data  errors  fires\n"
    "per-svc-flatline  35           0 (0%)           0       1\n"
)


def test_a_per_service_flatline_fires_for_the_service_that_goes_silent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "app.jsonl"
    log.write_text("\n".join(flatline_lines()) + "\n")
    config = flatline_setup(tmp_path)
    code = main(["backtest", "--config", str(config), "--logs", str(log), *FLATLINE_RANGE])
    out, err = capsys.readouterr()
    assert code == 0
    assert records(out) == FLATLINE_RECORDS
    assert err == FLATLINE_SUMMARY  # no line skipped, no progress bar for JSON: only the summary


def test_skipped_lines_are_summarised_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "app.jsonl"
    lines = flatline_lines()
    lines[16:16] = ["{oops", json.dumps({"time": "2026-01-05T08:00:00Z"}), json.dumps({"ts": 1767600000})]
    log.write_text("\n".join(lines) + "\n")
    code = main(["backtest", "--config", str(flatline_setup(tmp_path)), "--logs", str(log), *FLATLINE_RANGE])
    out, err = capsys.readouterr()
    assert code == 0
    assert records(out) == FLATLINE_RECORDS
    assert err == (
        "watcher backtest: skipped 3 lines: 1 not JSON, 1 missing timestamp (field 'ts'), "
        f"1 numeric timestamp without time_format; first at {log}:17\n" + FLATLINE_SUMMARY
    )


def test_logs_without_a_usable_line_are_an_error_naming_the_time_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "app.jsonl"
    log.write_text("\n".join(line.replace('"ts"', '"@timestamp"') for line in flatline_lines()[:2]) + "\n")
    code = main(["backtest", "--config", str(flatline_setup(tmp_path)), "--logs", str(log), *FLATLINE_RANGE])
    assert code == 2
    assert capsys.readouterr().err == (
        f"watcher backtest: no usable log lines in {log} (skipped 2 lines: 2 missing timestamp "
        f"(field 'ts'); first at {log}:1); looked for the time field 'ts', saw the fields: "
        "@timestamp, status, svc (set time_field)\n"
    )


def test_backtest_against_the_configured_embedded_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "app.jsonl"
    log.write_text("\n".join(flatline_lines()) + "\n")
    config = flatline_setup(tmp_path)
    assert main(["ingest", "--config", str(config), "--source", "app", str(log)]) == 0
    capsys.readouterr()
    code = main(["backtest", "--config", str(config), "--source", "app", *FLATLINE_RANGE])
    out, err = capsys.readouterr()
    assert (code, err) == (0, FLATLINE_SUMMARY)
    assert records(out) == FLATLINE_RECORDS


def test_backtest_against_a_source_without_data_in_the_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "app.jsonl"
    log.write_text("\n".join(flatline_lines()) + "\n")
    config = flatline_setup(tmp_path)
    main(["ingest", "--config", str(config), "--source", "app", str(log)])
    capsys.readouterr()
    code = main(
        [
            "backtest",
            "-c",
            str(config),
            "--source",
            "app",
            "--start",
            "2026-02-01T00:00Z",
            "--end",
            "2026-02-01T01:00Z",
        ]
    )
    assert code == 2
    assert capsys.readouterr().err == (
        "watcher backtest: source 'app' has no documents from 2026-01-31T23:55:00Z to 2026-02-01T01:00:00Z "
        "(time field 'ts')\n"
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("nope", "unknown source 'nope' (defined: app)"),
        ("app", "cannot open source 'app': no embedded store at {path} (nothing was ingested into it)"),
    ],
)
def test_backtest_against_a_source_that_cannot_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, message: str
) -> None:
    config = flatline_setup(tmp_path)
    code = main(["backtest", "-c", str(config), "--source", source, *FLATLINE_RANGE])
    assert code == 2
    path = tmp_path / "data" / "logs.duckdb"
    assert capsys.readouterr().err == f"watcher backtest: {message.format(path=path)}\n"
    assert not path.exists()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_progress_bar_on_a_terminal_for_the_text_format_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "app.jsonl"
    log.write_text("\n".join(flatline_lines()) + "\n")
    argv = ["backtest", "--config", str(flatline_setup(tmp_path)), "--logs", str(log), *FLATLINE_RANGE]
    for form, shown in (("text", True), ("json", False)):
        terminal = Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        assert main([*argv, "--format", form]) == 0
        last = terminal.getvalue().rsplit("\r", 1)[-1]
        assert (
            last.startswith("[" + "#" * 30 + "] 100% 35/35 ticks 2026-01-05 08:44 ETA 0:00:00\n")
        ) is shown
        assert ("\r" in terminal.getvalue()) is shown  # JSON: the summary only


def test_progress_shows_ticks_done_and_the_time_left() -> None:
    clock = [0.0]
    terminal = Terminal()
    progress = Progress(4, terminal, clock=lambda: clock[0])
    clock[0] = 10.0
    progress.advance(FLATLINE_START)
    assert (
        terminal.getvalue()
        == "\r[#######                       ]  25% 1/4 ticks 2026-01-05 08:00 ETA 0:00:30"
    )
    assert Progress(4, io.StringIO()).enabled is False  # not a terminal


def test_a_backtest_from_the_first_log_line_fires_no_flatline_before_the_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The first windows reach back before 08:00, the first line: not an empty service, no data.
    # (Evaluated as empty, they fired a total flatline at 08:00, the backtest's first minute.)
    log = tmp_path / "app.jsonl"
    log.write_text("\n".join(flatline_lines()) + "\n")
    config = flatline_setup(tmp_path)
    (tmp_path / "rules" / "total.yaml").write_text(
        "{name: total-flatline, source: app, every: 1m, window: 5m, delay: 0s, signal: count,"
        " flatline: {below: 10}, severity: critical}\n"
    )
    code = main(["backtest", "--config", str(config), "--logs", str(log), "--start", "2026-01-05T08:00:00Z",
                 "--end", "2026-01-05T08:44:00Z"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert records(out) == FLATLINE_RECORDS  # only b going silent at 08:30
    # ...and the backtest says the total flatline could not judge its first five minutes
    assert [(r["rule"], r["state"], r["at"]) for r in nodata_lines(out)] == [
        ("total-flatline", "entered", "2026-01-05T08:00:00Z"),
        ("total-flatline", "left", "2026-01-05T08:05:00Z"),
    ]


DRIFT_RULE = (
    "{name: status-drift, source: app, every: 1m, window: 5m, delay: 0s, severity: warning,"
    " drift: {reference: {offset: 10m}, features: [{name: status, edges: [300, 500]}], min_samples: 400}}\n"
)


def test_a_rule_blind_for_lack_of_data_says_so_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 3 services log 450 lines per 5 minutes, 300 once b stops at 08:30: under min_samples (400)
    # the drift rule cannot judge. Before, the backtest printed nothing about it: 0 notifications.
    argv = flatline_argv(tmp_path, drift=DRIFT_RULE)
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert nodata_lines(out) == [
        {
            "rule": "status-drift",
            "group": {},
            "event": "nodata",
            "at": "2026-01-05T08:10:00Z",
            "state": "entered",
            "reason": "not enough reference data: reference windows excluded: 1 before the first log line "
            "(2026-01-05 08:00 UTC)",
        },
        {
            "rule": "status-drift",
            "group": {},
            "event": "nodata",
            "at": "2026-01-05T08:15:00Z",
            "state": "left",
            "reason": "not enough reference data: reference windows excluded: 1 before the first log line "
            "(2026-01-05 08:00 UTC)",
        },
        {
            "rule": "status-drift",
            "group": {},
            "event": "nodata",
            "at": "2026-01-05T08:32:00Z",
            "state": "entered",
            "reason": "not enough data: status has 390 values (min_samples 400)",
        },
    ]
    assert records(out) == FLATLINE_RECORDS
    assert err == (
        "rule              evaluations  not enough data  errors  fires\n"
        "per-svc-flatline  35           0 (0%)           0       1\n"
        "status-drift      35           18 (51%)         0       0\n"
        "status-drift: not enough data: status has 300 values (min_samples 400)"
        " (last at 2026-01-05T08:44:00Z)\n"
    )
    assert main([*argv, "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert out.endswith(err)  # the same summary after the table


def test_the_rules_shared_among_processes_tell_the_same(
    demo_log: Path, whole_demo: tuple[int, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    one = backtest(capsys, "--logs", str(demo_log), "--start", START, "--end", END, "--processes", "1")
    assert one[0] == 0
    assert one[1].count('"event": "firing"') > 3
    assert whole_demo == one  # the events and nodata lines in the same order, the same summary


def test_a_number_of_processes_below_one_is_refused(
    demo_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        backtest(capsys, "--logs", str(demo_log), "--start", START, "--end", END, "--processes", "0")
    assert exited.value.code == 2
    assert "--processes: expected a whole number of processes, at least 1, got '0'" in capsys.readouterr().err
