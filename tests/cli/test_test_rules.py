"""`watcher test rules`: rule unit tests pass, fail with a diff (exit 1), or are refused (exit 2)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from watcher.cli import main

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "tests" / "rules-examples"

# An inline rule: more than 2 errors in a 1-minute window, per service, fires at once.
HEADER = """\
rules:
  - name: errors
    source: app
    every: 1m
    window: 1m
    delay: 0s
    group_by: [svc]
    signal: {count: {}}
    where: {level: error}
    threshold: {above: 2}
date: 2026-01-05
"""

BURST = """\
tests:
  - name: a burst of errors on svc a
    evaluate: {from: "08:00", to: "08:10"}
    series:
      - fields: {svc: a, level: error}
        values: "0x3 5x2"
        from: "08:00"
    expect:
"""


def write(tmp_path: Path, text: str, name: str = "errors.test.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["test", "rules", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_shipped_rule_has_an_example_test_and_they_all_pass(capsys: pytest.CaptureFixture[str]) -> None:
    rules = {path.stem for path in (ROOT / "rules").glob("*.yaml")}
    assert {path.stem for path in EXAMPLES.glob("*.yaml")} == rules
    code, out, err = run(capsys, str(EXAMPLES))
    assert (code, err) == (0, "")
    assert out.endswith(" passed, 0 failed (10 files)\n")


def test_expected_incidents_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expect = (
        '      - {at: "08:04", rule: errors, group: {svc: a}, event: firing}\n'
        '      - {at: "08:06", rule: errors, group: {svc: a}, event: resolved}\n'
        "    notifications:\n"
        '      - {at: "08:05", receiver: default,\n'
        "          event: firing, incidents: [{rule: errors, group: {svc: a}}]}\n"
        # the RESOLVED waits for the group's next flush: group_interval (5m) after its firing
        '      - {at: "08:10", receiver: default,\n'
        "          event: resolved, incidents: [{rule: errors, group: {svc: a}}]}\n"
    )
    path = write(tmp_path, HEADER + BURST + expect)
    assert run(capsys, str(path)) == (0, "1 passed, 0 failed (1 file)\n", "")


def test_a_wrong_expectation_prints_the_diff_per_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path, HEADER + BURST + '      - {at: "08:05", rule: errors, group: {svc: a}, event: firing}\n'
    )
    code, out, _ = run(capsys, str(path))
    assert code == 1
    assert out.splitlines() == [
        f"FAIL {path}:13: a burst of errors on svc a",
        "  incidents (-: expected, did not happen; +: happened, not expected):",
        "    + 08:04  firing    errors {svc=a}  value=5",
        "    - 08:05  firing    errors {svc=a}",
        "    + 08:06  resolved  errors {svc=a}  value=0",
        "0 passed, 1 failed (1 file)",
    ]


def test_nothing_else_may_fire(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, HEADER + BURST.replace("    expect:\n", ""))
    code, out, _ = run(capsys, str(path))
    assert code == 1
    assert "    + 08:04  firing    errors {svc=a}  value=5" in out.splitlines()


def test_inline_lines_and_log_files_are_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = '{"@timestamp": "2026-01-05T08:02:%02dZ", "svc": "b", "level": "error"}'
    (tmp_path / "app.jsonl").write_text("\n".join(line % s for s in (1, 2)) + "\n")
    test = f"""\
    tests:
      - name: two lines in a file and one inline
        evaluate: {{from: "08:00", to: "08:05"}}
        log_files: [app.jsonl]
        logs: [{line % 3}]
        expect:
          - {{at: "08:03", rule: errors, group: {{svc: b}}, event: firing}}
          - {{at: "08:04", rule: errors, group: {{svc: b}}, event: resolved}}
    """
    path = write(tmp_path, HEADER + textwrap.dedent(test))
    assert run(capsys, str(path))[0] == 0


def test_run_selects_tests_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, HEADER + BURST)
    assert run(capsys, str(path), "--run", "nothing like it") == (
        1,
        "0 passed, 0 failed (no tests ran) (1 file)\n",
        "",
    )


BAD_FILES = [
    (
        'tests:\n  - name: t\n    evaluate: {from: 8:30, to: "08:40"}\n',
        '14:22: write times in quotes, e.g. "10:30": unquoted, YAML reads 10:30 as a number',
    ),
    (
        'tests:\n  - name: t\n    evaluate: {from: "08:00", to: "8h"}\n',
        "14:35: invalid time '8h': use \"HH:MM\" or ISO 8601, e.g. 2026-01-05T08:35:00Z",
    ),
    (
        'tests:\n  - name: t\n    evaluate: {from: "08:00", to: "08:10"}\n    expct: []\n',
        "15:5: unknown key 'expct' (did you mean 'expect'?)",
    ),
    (
        'tests:\n  - name: t\n    evaluate: {from: "08:10", to: "08:00"}\n',
        "14:35: 'to' is before 'from'",
    ),
    (
        BURST + '      - {at: "08:04", rule: eror, event: firing}\n',
        "20:29: unknown rule 'eror' (rules under test: errors)",
    ),
    (
        BURST.replace('"0x3 5x2"', '"0x3 5y2"'),
        "17:17: bad run '5y2': write COUNT or COUNTxMINUTES, e.g. 300x30",
    ),
    (
        BURST.replace('values: "0x3 5x2"', "per_minute: 5"),
        "17:9: 'per_minute' needs 'to' (the first minute without events)",
    ),
    (
        BURST.replace("    expect:\n", "    log_files: [nope.jsonl]\n"),
        "19:17: log file 'nope.jsonl' not found (paths are relative to the test file)",
    ),
    (
        BURST
        + '    notifications:\n      - {at: "08:05", receiver: slack, event: firing,\n'
        + "         incidents: [{rule: errors}]}\n",
        "21:33: unknown receiver 'slack' (receivers: default)",
    ),
    (
        "tests: [\n",
        "13:1: invalid YAML: expected the node content, but found '<stream end>'"
        " (while parsing a flow node at line 13)",
    ),
]


@pytest.mark.parametrize(("tests", "message"), BAD_FILES)
def test_a_bad_test_file_is_refused_at_its_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tests: str, message: str
) -> None:
    path = write(tmp_path, HEADER + tests)
    code, out, err = run(capsys, str(path))
    assert code == 2
    assert err == f"{path}:{message}\n"
    assert out == "0 passed, 0 failed, 1 invalid test file (1 file)\n"


def test_a_mistake_in_an_inline_rule_points_into_the_test_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, HEADER.replace("window: 1m", "window: 1 minute") + BURST)
    _, _, err = run(capsys, str(path))
    assert err.startswith(f"{path}:5:13: invalid duration '1 minute'")


def test_a_missing_rule_file_or_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "config: none.yaml\nrules: [none/]\n" + BURST)
    code, _, err = run(capsys, str(path))
    assert code == 2
    assert err.splitlines() == [
        f"{path}:1:9: config file 'none.yaml' not found (paths are relative to the test file)",
        f"{path}:2:9: no such rule file or folder 'none/' (paths are relative to the test file)",
    ]


def test_a_rule_file_mistake_keeps_its_own_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rule.yaml").write_text("name: r\nsource: app\nwindw: 5m\nthreshold: {above: 1}\n")
    path = write(tmp_path, "rules: [rule.yaml]\n" + BURST)
    code, _, err = run(capsys, str(path))
    assert (code, err) == (2, f"{tmp_path / 'rule.yaml'}:3:1: unknown key 'windw' (did you mean 'window'?)\n")


def test_shipped_watcher_yaml_does_not_load_the_examples_as_rules() -> None:
    from watcher.rules.loader import load_config, load_rules

    config = load_config(ROOT / "watcher.yaml")
    scanned = load_rules(config.rules, config).scanned
    assert scanned
    assert not [path for path in scanned if "rules-examples" in str(path)]
