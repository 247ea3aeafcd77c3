"""``watcher routes test|show`` against a real watcher.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.cli import main

CONFIG = """\
sources:
  local: {store: embedded}
receivers:
  default: {console: {}}
  pager: {console: {}}
  ml-slack: {console: {}}
route:
  receiver: default
  group_by: [rule]
  routes:
    - {matchers: ["severity=~critical|error"], receiver: pager, continue: true, repeat_interval: 1h}
    - {match: {team: ml}, matchers: ["env!=dev"], receiver: ml-slack}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "watcher.yaml"
    path.write_text(CONFIG)
    return path


def test_prints_the_receivers_labels_reach(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["routes", "test", "-c", str(config), "severity=critical", "team=ml"]) == 0
    assert main(["routes", "test", "-c", str(config), "team=ml", "env=dev"]) == 0
    assert capsys.readouterr().out.splitlines() == ["pager,ml-slack", "default"]


def test_verbose_shows_grouping_and_timings(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["routes", "test", "-c", str(config), "-v", "severity=error", "rule=api"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "pager",
        "  pager: route 0, group_by [rule] as {'rule': 'api'}, group_wait 30s, group_interval 5m, "
        "repeat_interval 1h",
    ]


def test_verify_receivers_fails_on_a_mismatch(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["routes", "test", "-c", str(config), "--verify-receivers", "pager", "team=ml"]) == 1
    assert capsys.readouterr().err == "expected pager, got ml-slack\n"
    assert main(["routes", "test", "-c", str(config), "--verify-receivers", "ml-slack", "team=ml"]) == 0


def test_a_bad_label_is_refused(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["routes", "test", "-c", str(config), "severity"]) == 2
    assert capsys.readouterr().err == (
        "watcher routes test: invalid label 'severity': expected name=value, e.g. severity=critical\n"
    )


def test_show_prints_the_tree(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["routes", "show", "-c", str(config)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "(root) -> default group_by [rule]",
        "  {severity=~critical|error} -> pager repeat_interval 1h continue",
        "  {team=ml, env!=dev} -> ml-slack",
    ]


def test_a_missing_config_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["routes", "test", "-c", str(missing), "a=b"]) == 2  # the environment, not the input
    assert capsys.readouterr().err == f"watcher: config file {missing} not found (use --config FILE)\n"
