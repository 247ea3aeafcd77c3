"""``watcher silence add|ls|expire`` on a real state file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watcher.cli import main


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "watcher.yaml"
    path.write_text("sources:\n  local: {store: embedded}\nstate: {path: data/state.sqlite}\n")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_add_list_and_expire(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "silence", "add", "-c", str(config), "team=ml", "severity=~warning|info",
                       "-m", "deploying v4", "--author", "ann", "--duration", "2h")  # fmt: skip
    assert code == 0
    silence_id = out.strip()
    code, out, _ = run(capsys, "silence", "ls", "-c", str(config), "--format", "json")
    (listed,) = [json.loads(line) for line in out.splitlines()]
    assert (listed["id"], listed["state"], listed["matchers"]) == (
        silence_id,
        "active",
        ["team=ml", "severity=~warning|info"],
    )
    assert (listed["created_by"], listed["comment"]) == ("ann", "deploying v4")
    code, out, _ = run(capsys, "silence", "ls", "-c", str(config))
    assert out.splitlines()[0].split() == ["ID", "STATE", "MATCHERS", "STARTS", "ENDS", "AUTHOR", "COMMENT"]
    assert silence_id in out
    assert "1h59m" in out
    assert run(capsys, "silence", "expire", "-c", str(config), silence_id) == (
        0,
        f"expired {silence_id}\n",
        "",
    )
    assert run(capsys, "silence", "ls", "-c", str(config))[1] == "no silences\n"
    assert "expired" in run(capsys, "silence", "ls", "-c", str(config), "--expired")[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["team~ml", "-m", "x"], "watcher silence add: invalid matcher 'team~ml': expected name=value, "
         "name!=value, name=~regex or name!~regex"),
        (["team=ml", "-m", "x", "-d", "5mins"], "watcher silence add: invalid duration '5mins': use a number "
         "and a unit (ms, s, m, h, d, w), e.g. 30s, 5m, 1h30m"),
        (["team=ml", "-m", "x", "-d", "0s"],
         "watcher silence add: --duration must be longer than 0s, got '0s'"),
        (["team=ml", "-m", " "], "watcher silence add: a silence needs a comment saying why"),
        (["team=ml", "-m", "x", "--start", "2019-12-31T00:00Z", "--end", "2020-01-01T00:00Z"],
         "watcher silence add: the silence ends in the past (2020-01-01T00:00:00+00:00)"),
    ],
)  # fmt: skip
def test_bad_silences_are_refused_with_a_reason(
    config: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert run(capsys, "silence", "add", "-c", str(config), *args) == (2, "", message + "\n")


def test_expiring_an_unknown_silence_fails(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "silence", "expire", "-c", str(config), "abc")
    assert (code, err) == (1, "watcher silence expire: no silence 'abc' (see `watcher silence ls`)\n")
