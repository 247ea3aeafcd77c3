"""Exit codes of the real ``watcher`` command: 0 ok, 1 invalid input, 2 usage or environment,
70 internal error (one line, ``--debug`` for the traceback), 141 when stdout closes early."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from watcher.incidents.state import StateStore

ROOT = Path(__file__).resolve().parents[2]
WATCHER = [sys.executable, "-m", "watcher"]


def watcher(*args: str, cwd: Path = ROOT, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WATCHER, *args], cwd=cwd, capture_output=True, text=True, timeout=120, **kwargs)  # type: ignore[call-overload,no-any-return]


def into_closed_pipe(*args: str, cwd: Path = ROOT) -> tuple[int, str]:
    """Run watcher with its stdout a pipe nobody reads any more (``| head -0``): code, stderr."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [*WATCHER, *args], cwd=cwd, stdout=write, stderr=subprocess.PIPE, text=True, timeout=120
        )
    finally:
        os.close(write)
    return done.returncode, done.stderr


def test_render_into_a_closed_pipe_exits_141_quietly() -> None:
    assert into_closed_pipe("render", "prediction-5xx-rate") == (141, "")


def test_silence_ls_into_a_closed_pipe_exits_141_quietly(tmp_path: Path) -> None:
    (tmp_path / "watcher.yaml").write_text("sources:\n  local: {store: embedded}\nstate: {path: s.sqlite}\n")
    StateStore(tmp_path / "s.sqlite").close()
    assert into_closed_pipe("silence", "ls", cwd=tmp_path) == (141, "")


def test_render_into_head_1_is_quiet() -> None:
    # Whether watcher still writes when head exits is a race: either way, no traceback.
    script = f"{' '.join(WATCHER)} render prediction-5xx-rate | head -1; exit ${{PIPESTATUS[0]}}"
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (done.returncode in (0, 141), done.stdout, done.stderr) == (True, "{\n", "")


def test_a_chart_into_a_missing_folder_is_an_environment_error() -> None:
    done = watcher("render", "prediction-5xx-rate", "-o", "/missing/dir/x.png")
    assert done.returncode == 2
    assert done.stderr == (
        "watcher render: cannot write the chart to /missing/dir/x.png: No such file or directory\n"
    )


def test_a_missing_config_is_an_environment_error(tmp_path: Path) -> None:
    for args in (["check"], ["incidents"], ["render", "x"], ["silence", "ls"]):
        done = watcher(*args, "-c", str(tmp_path / "nope.yaml"))
        assert done.returncode == 2, args
        assert "not found (use --config FILE)" in done.stderr


def test_usage_errors_exit_2() -> None:
    assert watcher("render").returncode == 2
    assert watcher("silence", "ls", "--format", "xml").returncode == 2


CRASH = (
    "import sys, watcher.cli.schema as command\n"
    "def crash(args): raise KeyError('boom')\n"
    "command.run = crash\n"
    "from watcher.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_an_internal_error_is_one_line_and_exit_70() -> None:
    done = subprocess.run([sys.executable, "-c", CRASH, "schema"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 70
    assert done.stderr == (
        "watcher schema: internal error: KeyError: 'boom'\nrun with --debug for the traceback\n"
    )


@pytest.mark.parametrize("args", [["--debug", "schema"], ["schema", "--debug"]])
def test_debug_prints_the_traceback(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", CRASH, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 70
    assert done.stderr.startswith("Traceback (most recent call last):")
    assert "KeyError: 'boom'" in done.stderr


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "watcher.yaml").write_text(
            "sources:\n  local: {store: embedded}\nrules: []\nstate: {path: s.sqlite}\n"
            f"http: {{listen: '127.0.0.1:{port}'}}\n"
        )
        done = watcher("run", "-c", "watcher.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert (
        done.stderr.splitlines()[-1]
        == f"watcher run: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
