"""``watcher check``: every error on stdout, config errors first, a summary line, exit 0 or 1."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from watcher.cli import check

CONFIG = (
    "sources:\n"
    "  local: {store: embedded}\n"
    "  ml-api: {store: opensearch, hosts: [https://es:9200], index: x}\n"
)
GOOD = "name: {name}\nsource: local\nthreshold: {{above: 1}}\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with watcher.yaml and three valid rule files, as the working directory."""
    (tmp_path / "watcher.yaml").write_text(CONFIG)
    (tmp_path / "rules").mkdir()
    for name in ("a", "b"):
        (tmp_path / "rules" / f"{name}.yaml").write_text(GOOD.format(name=name))
    (tmp_path / "rules" / "more.yaml").write_text(
        "rules:\n  - {name: c, source: ml-api, flatline: {below: 1}}\n"
        "  - {name: d, source: ml-api, threshold: {below: 1}}\n"
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _check(*paths: str, config: str = "watcher.yaml") -> int:
    return check.run(argparse.Namespace(config=Path(config), paths=[Path(p) for p in paths]))


def test_all_valid_exits_0_with_a_summary(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _check() == 0
    assert capsys.readouterr().out == "OK: 4 rules in 3 files\n"


def test_rule_errors_are_listed_then_summarised(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "rules" / "b.yaml").write_text(
        "name: b\nsource: elsewhere\nthreshold: {above: 1}\nwindw: 5m\n"
    )

    assert _check() == 1
    assert capsys.readouterr().out.splitlines() == [
        "rules/b.yaml:2:9: unknown source 'elsewhere' (defined: local, ml-api)",
        "rules/b.yaml:4:1: unknown key 'windw' (did you mean 'window'?)",
        "2 errors in 1 of 4 files; 3 rules valid",
    ]


def test_named_paths_replace_the_configured_rules(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "new.yaml").write_text(GOOD.format(name="new"))

    assert _check("new.yaml") == 0
    assert capsys.readouterr().out == "OK: 1 rule in 1 file\n"


def test_config_errors_come_first_and_fail_the_check(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "watcher.yaml").write_text(CONFIG + "state: {pth: x}\n")
    (project / "bad.yaml").write_text("name: bad\nsource: local\n")

    assert _check("bad.yaml", "rules/a.yaml") == 1
    assert capsys.readouterr().out.splitlines() == [
        "watcher.yaml:4:9: unknown key 'pth' (did you mean 'path'?)",
        "bad.yaml:1:1: a rule has exactly one detector of threshold, flatline, spike, drift, validity, "
        "forecast, canary, match, values, new_value, change; got none",
        "2 errors in 2 of 3 files; 1 rule valid",
    ]


def test_without_a_valid_config_the_configured_rules_are_unknown(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _check(config="missing.yaml") == 2  # an environment error (exit codes: README)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "watcher check: config file missing.yaml not found (use --config FILE)\n"


def test_the_parser_defaults_to_watcher_yaml_and_the_configured_rules(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="watcher")
    check.add_parser(parser.add_subparsers())
    args = parser.parse_args(["check"])

    assert args.config == Path("watcher.yaml")
    assert args.paths == []
    assert args.func(args) == 0
    assert capsys.readouterr().out == "OK: 4 rules in 3 files\n"
