"""Running a real ``watcher run`` process in tests: config in a temp dir, stdout captured."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import yaml


def write_config(workdir: Path, rules: list[dict[str, Any]], **extra: Any) -> Path:
    """A config with one embedded source `app` fed from `workdir/logs/*.jsonl` and a JSON console."""
    (workdir / "rules").mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    for rule in rules:
        (workdir / "rules" / f"{rule['name']}.yaml").write_text(yaml.safe_dump(rule))
    config = {
        "sources": {
            "app": {
                "store": "embedded",
                "path": "data/logs.duckdb",
                "ingest": ["logs/*.jsonl"],
                "time_field": "ts",
                "time_format": "epoch_s",  # the tests write time.time()
            }
        },
        "state": {"path": "data/state.sqlite"},
        "receivers": {"console": {"console": {"format": "json"}}},
        # Short group timers: the first notification of a group waits group_wait (30s by default).
        "route": {"receiver": "console", "group_wait": "1s", "group_interval": "1s"},
        "rules": ["rules"],
        "templates": str(Path(__file__).parents[2] / "templates"),
        "http": {"enabled": False},
        **extra,
    }
    path = workdir / "watcher.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class WatcherProcess:
    """A `watcher run` child process whose stdout JSON lines are collected on a thread."""

    def __init__(self, config: Path, env: dict[str, str] | None = None, args: Sequence[str] = ()) -> None:
        self.lines: list[dict[str, Any]] = []
        self.stderr_path = config.parent / f"stderr-{time.monotonic_ns()}.log"
        self._stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run", "--config", str(config), *args],
            cwd=config.parent,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            if line.strip().startswith("{"):
                self.lines.append(json.loads(line))

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.lines):
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"watcher exited with {self.proc.returncode}:\n{self.stderr()}")
            time.sleep(0.05)
        raise AssertionError(f"timed out; notifications so far: {self.lines}\n{self.stderr()}")

    def wait_started(self, timeout: float = 30) -> None:
        """Until the daemon has installed its signal handlers and scheduled its jobs."""
        deadline = time.monotonic() + timeout
        while "watcher started" not in self.stderr():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"watcher did not start:\n{self.stderr()}")
            time.sleep(0.05)

    def terminate(self, timeout: float = 20) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.exited(timeout)

    def exited(self, timeout: float = 20) -> int:
        """The exit code, once it exits (signalled by the caller: a second SIGTERM that lands while
        the stopped daemon's interpreter finalizes, which restores the default handler, kills it)."""
        code = self.proc.wait(timeout)
        self._reader.join(5)
        self._stderr.close()
        return code

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._stderr.close()

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text()


def wait_until(done: Callable[[], bool], timeout: float) -> None:
    """Poll ``done`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
