"""RSS of a real `watcher run` process with many rules, sampled over time.

Target: under 150 MB with 1,000 rules, and no growth from tick to tick.

    .venv/bin/python bench/bench_daemon_memory.py [--rules 1000] [--seconds 120] [--every 5s]
        [--hours 1]

The log is the demo's synthetic traffic, shifted to end now, so every rule has data in its window.
Prints RSS samples, the peak, and the growth between the first and the last third of the run,
and the kernel's high-water mark (VmHWM), which also catches peaks shorter than the 1s sampling;
then the high-water mark while the daemon stops (SIGTERM: the store's file closed, checkpointed).
``--hours 10`` writes 10 hours of log (182k lines, 49 MB) that the daemon finds unread at start,
as after a restart: its ingest is then the high-water mark. The catch-up is the first tick (that
ingest and the first evaluation of every rule): its wall time and CPU are printed from the
daemon's log (started, first tick done).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from watcher.demo import write_log  # noqa: E402


def rule(index: int, every: str) -> dict[str, object]:
    """A mix of realistic rules: ratios, percentiles, stats, counts, flatlines, with and without groups."""
    kind = index % 6
    base: dict[str, object] = {
        "name": f"rule-{index:04d}",
        "source": "app",
        "every": every,
        "window": ["5m", "10m", "15m", "30m"][index % 4],
        "delay": "0s",
        "where": {"service": "prediction-api"},
        "severity": "warning",
        "annotations": {"summary": "value {{ value }}"},
    }
    if kind == 0:
        return base | {
            "signal": {"ratio": {"of": {"status": {"gte": 500}}}},
            "group_by": ["model_version"],
            "threshold": {"above": 0.5 + index / 10000},
        }
    if kind == 1:
        return base | {
            "signal": {"percentile": {"field": "latency_ms", "q": 99}},
            "threshold": {"above": 5000},
        }
    if kind == 2:
        return base | {
            "signal": {"ratio": {"of": {"status": 429}}},
            "group_by": ["endpoint"],
            "threshold": {"above": 0.9},
        }
    if kind == 3:
        return base | {"signal": {"stat": {"field": "latency_ms", "fn": "avg"}}, "threshold": {"above": 5000}}
    if kind == 4:
        return base | {"flatline": {"below": 1}}
    return base | {"signal": "count", "where": {"client_id": f"c-{index % 40}"}, "threshold": {"above": 1e9}}


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used (``/proc/PID/stat``, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def scrape(port: int) -> int:
    """Bytes of one /metrics answer (0 when the daemon is not serving yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            return len(answer.read())
    except OSError:
        return 0


def watch_log(
    proc: subprocess.Popen[bytes], marks: dict[str, tuple[float, float]], tail: list[bytes]
) -> None:
    """Read the daemon's log as it comes: when it started and when its first tick was done
    (monotonic time, CPU seconds), keeping the last lines for an error report."""
    assert proc.stderr is not None
    for line in proc.stderr:
        tail[:] = [*tail[-40:], line]
        for mark, text in (("started", b"watcher started"), ("first tick", b"tick evaluated")):
            if mark not in marks and text in line:
                marks[mark] = (time.monotonic(), cpu_seconds(proc.pid))


def stop(proc: subprocess.Popen[bytes]) -> float:
    """Stop the daemon (SIGTERM) and return its high-water mark while it stopped (MB): its VmHWM is
    reset first (``clear_refs``), then read every few milliseconds until it exits, the last read
    just before its memory goes (closing the store's DuckDB file checkpoints it)."""
    with contextlib.suppress(OSError):  # not allowed: the whole run's mark, still an upper bound
        Path(f"/proc/{proc.pid}/clear_refs").write_text("5")
    proc.send_signal(signal.SIGTERM)
    peak = 0.0
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            peak = max(peak, rss_mb(proc.pid, "VmHWM"))
        except OSError:
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=120, help="how long to sample the daemon")
    parser.add_argument("--every", default="5s", help="every rule's interval")
    parser.add_argument(
        "--scrape", type=float, default=0, metavar="SECONDS", help="serve /metrics and scrape it this often"
    )
    parser.add_argument("--hours", type=float, default=1, help="hours of log unread at start")
    args = parser.parse_args()
    port = free_port() if args.scrape else 0

    with tempfile.TemporaryDirectory(prefix="watcher-bench-") as tmp:
        work = Path(tmp)
        (work / "rules").mkdir()
        (work / "logs").mkdir()
        now = datetime.now(UTC)
        documents = write_log(
            work / "logs" / "app.jsonl",
            start=now - timedelta(hours=args.hours),
            length=timedelta(hours=args.hours),
        )
        with (work / "rules" / "bench.yaml").open("w") as out:
            yaml.safe_dump({"rules": [rule(i, args.every) for i in range(args.rules)]}, out)
        config = {
            "sources": {"app": {"store": "embedded", "path": "data/logs.duckdb", "ingest": ["logs/*.jsonl"]}},
            "state": {"path": "data/state.sqlite"},
            "receivers": {"null": {"console": {"format": "json"}}},
            "route": {"receiver": "null"},
            "rules": ["rules"],
            "templates": str(ROOT / "templates"),
            "http": {"enabled": bool(args.scrape), "listen": f"127.0.0.1:{port}"},
        }
        (work / "watcher.yaml").write_text(yaml.safe_dump(config))
        print(f"{args.rules} rules every {args.every}, {documents:,} log documents; sampling {args.seconds}s")
        proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run", "--config", "watcher.yaml", "--log-level", "INFO"],
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ},
        )
        marks: dict[str, tuple[float, float]] = {}
        tail: list[bytes] = []
        threading.Thread(target=watch_log, args=(proc, marks, tail), daemon=True).start()
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        high_water = 0.0
        scraped: list[int] = []
        last_scrape = 0.0
        cpu: list[tuple[float, float]] = []  # (time, CPU seconds)
        try:
            while time.monotonic() - started < args.seconds and proc.poll() is None:
                samples.append((time.monotonic() - started, rss_mb(proc.pid)))
                cpu.append((time.monotonic() - started, cpu_seconds(proc.pid)))
                high_water = rss_mb(proc.pid, "VmHWM")
                if args.scrape and time.monotonic() - last_scrape >= args.scrape:
                    last_scrape = time.monotonic()
                    scraped.append(scrape(port))
                time.sleep(1)
        finally:
            stopping = stop(proc)
        if not samples or proc.returncode not in (0, -signal.SIGTERM):
            print(b"".join(tail).decode()[-3000:])
        for at, rss in samples[:: max(1, len(samples) // 12)]:
            print(f"  t={at:5.0f}s  RSS {rss:6.1f} MB")
        third = max(1, len(samples) // 3)
        early = max(r for _, r in samples[third : 2 * third] or samples)
        late = max(r for _, r in samples[2 * third :] or samples)
        print(
            f"peak RSS {max(r for _, r in samples):.1f} MB; middle third peak {early:.1f} MB, "
            f"last third peak {late:.1f} MB (growth {late - early:+.1f} MB)"
        )
        print(f"high-water mark (VmHWM, also between samples) {high_water:.1f} MB")
        print(f"shutdown high-water mark (VmHWM from SIGTERM to exit) {stopping:.1f} MB")
        if "started" in marks and "first tick" in marks:
            (w0, c0), (w1, c1) = marks["started"], marks["first tick"]
            print(f"catch-up (first tick after start) {w1 - w0:.2f} s wall, {c1 - c0:.2f} s CPU")
        # CPU after start-up (the first third: loading, the first ingest) per second of running.
        (t0, c0), (t1, c1) = cpu[len(cpu) // 3], cpu[-1]
        share = 100 * (c1 - c0) / (t1 - t0)
        print(f"CPU after start-up {c1 - c0:.2f} s over {t1 - t0:.0f} s ({share:.1f} % of a core)")
        if args.scrape:
            answered = [size for size in scraped if size]
            largest = max(answered, default=0)
            print(f"/metrics scraped {len(answered)}/{len(scraped)} times, {largest:,} bytes")


if __name__ == "__main__":
    main()
