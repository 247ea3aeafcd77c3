"""What a command line loads: the daemon must not carry what other commands need."""

from __future__ import annotations

import subprocess
import sys

import pytest

from watcher.cli import main

HEAVY = ("numpy", "pandas", "scipy", "matplotlib", "slack_sdk", "requests")


def _loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return [name for name in out.strip().split(",") if name]


def test_the_daemon_imports_no_other_command_nor_their_libraries() -> None:
    started = "from watcher.cli import build_parser\nbuild_parser('run')\nimport watcher.process.daemon"
    assert _loaded_after(started) == []


def test_help_still_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    assert all(command in listed for command in ("run", "check", "backtest", "demo", "render", "silence"))


def test_an_unknown_command_is_refused_with_the_full_list(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["nosuch"])
    assert "invalid choice: 'nosuch' (choose from" in capsys.readouterr().err


def test_a_daemon_without_search_sources_loads_no_search_store() -> None:
    probe = (
        "import sys\nimport watcher.process.daemon, watcher.store.embedded\n"
        "print(sorted(m for m in sys.modules if m.startswith(('watcher.store.search', 'watcher.store.dsl'))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
