"""A crash storm aimed at every step of a send: a real ``watcher run`` posts to Slack (charts on) and
to a webhook, and is SIGKILLed exactly at the step of a Slack send chosen for each kill.

Used by ``tests/e2e/test_crash.py`` and ``bench/bench_crash.py``. The fake Slack runs in this
process and kills the daemon from inside its request handler (``SlackServer.on_call``), so a kill
lands at a known point: before the post reaches Slack, after Slack posted it but before the answer
left, right after the answer, in the middle of a chart upload, after the chart was shared, and
between a RESOLVED's rewrite of the original and its thread reply. Kills take turns over those
steps; one in four lands at a random moment instead. Ground truth is the storm's own schedule of
bad stretches (``tests.e2e.storm``).
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.e2e.daemon import WatcherProcess, write_config
from tests.e2e.storm import (
    ROUTE,
    RULE,
    BadStretch,
    CrashResult,
    kill_loop,
)
from tests.e2e.webhook_server import RecordingProcess
from tests.notify.slack_server import SlackServer

Step = tuple[str, str]  # (Slack method, phase of the request)
STEPS: tuple[Step, ...] = (
    ("chat.postMessage", "received"),  # before the post: Slack never got it
    ("chat.postMessage", "handled"),  # Slack posted it, the answer never left: in doubt
    ("chat.postMessage", "answered"),  # right after Slack answered, before the daemon recorded it
    ("upload", "handled"),  # in the middle of a chart upload
    ("files.completeUploadExternal", "handled"),  # the chart is shared, not recorded
    ("chat.update", "answered"),  # a RESOLVED: original rewritten, thread reply not yet posted
)
ROUTE_SLACK_AND_HOOK = {**ROUTE, "routes": [{"receiver": "slack", "continue": True}, {"receiver": "hook"}]}
"""Every notification to Slack and to the webhook, in the storm's groups."""
TEMPLATE = (
    "{{ event }} {% for i in incidents %}{{ i.group.svc }}@{{ i.started_at.isoformat() }} {% endfor %}\n"
)


class Aim:
    """Kills the armed daemon at the first request that matches its target step."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: WatcherProcess | None = None
        self._target: Step | None = None
        self.killed = threading.Event()
        self.sending = threading.Event()  # the armed daemon has made a request to Slack
        self.hits: Counter[Step] = Counter()
        self.missed: Counter[Step] = Counter()  # armed at it, the daemon sent on without reaching it
        self.quiet = 0  # aimed lives in which the daemon never got to Slack

    def arm(self, process: WatcherProcess, target: Step) -> None:
        with self._lock:
            self._process, self._target = process, target
            self.killed.clear()
            self.sending.clear()

    def disarm(self) -> None:
        with self._lock:
            if self._process is not None and self._target is not None:  # armed, never fired
                if self.sending.is_set():
                    self.missed[self._target] += 1
                else:
                    self.quiet += 1
            self._process = self._target = None

    def next_target(self, kills: int) -> Step:
        """The step hit least so far (in turn among equals), so that no step waits on luck."""
        turn = STEPS[kills % len(STEPS) :] + STEPS[: kills % len(STEPS)]
        return min(turn, key=lambda step: self.hits[step])

    def __call__(self, method: str, phase: str) -> bool:
        with self._lock:
            if self._process is None:
                return False
            self.sending.set()
            if self._target != (method, phase):
                return False
            process, self._process = self._process, None
            self.hits[(method, phase)] += 1
        process.proc.kill()  # SIGKILL, from inside Slack's handling of the request
        self.killed.set()
        return phase == "received"  # killed before the request got through: drop it


@dataclass
class SlackStormResult:
    crash: CrashResult  # the webhook's view, and the kills
    aimed: Counter[Step] = field(default_factory=Counter)  # kills that landed on each step
    missed: Counter[Step] = field(default_factory=Counter)  # aimed lives that sent on past no such step
    quiet: int = 0  # aimed lives that ended before the daemon made any request to Slack
    posts: int = 0  # Slack messages posted (top-level and replies)
    duplicate_posts: int = 0  # posts of a notification id already posted
    charts: int = 0
    duplicate_charts: int = 0  # chart files shared twice
    dead: int = 0  # dead letters in the outbox (every channel)
    chart_steps: dict[str, int] = field(default_factory=dict)  # chart outbox steps by status
    lost: list[BadStretch] = field(default_factory=list)  # stretches Slack never heard of
    unresolved: list[tuple[str, str]] = field(default_factory=list)
    out_of_order: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        steps = ", ".join(f"{method}/{phase} {n}" for (method, phase), n in sorted(self.aimed.items()))
        never = ", ".join(
            f"{method}/{phase} (aimed {self.missed[(method, phase)]} times while the daemon sent)"
            for method, phase in STEPS
            if not self.aimed[(method, phase)]
        )
        return (
            f"{self.crash.summary()}\n"
            f"slack: {self.posts} posts, {self.duplicate_posts} duplicates; {self.charts} charts, "
            f"{self.duplicate_charts} duplicates (chart steps {self.chart_steps}); {self.dead} dead letters; "
            f"{len(self.lost)} lost, {len(self.unresolved)} unresolved, "
            f"{len(self.out_of_order)} out of order\naimed kills: {steps}; never reached: {never or 'none'}; "
            f"{self.quiet} aimed lives ended before the daemon reached Slack"
        )


def slack_storm(
    workdir: Path,
    slack: SlackServer,
    webhook: RecordingProcess,
    *,
    services: int = 12,
    length: float = 60.0,
    min_kills: int = 36,
    max_life: float = 2.0,
    aim_wait: float = 8.0,
    reach_wait: float = 20.0,
    seed: int = 7,
) -> SlackStormResult:
    """Run the storm for ``length`` seconds, killing the daemon at least ``min_kills`` times (and
    on, for up to two more rounds of the steps, while one has not been hit), then let a last
    daemon deliver everything and compare what Slack and the webhook received.

    An aimed kill waits ``aim_wait`` seconds for its step from the daemon's first request to
    Slack, which may take up to ``reach_wait`` seconds to come: before it, a restart ingests,
    catches up, or draws a chart (importing matplotlib), which on a host at load ~20 took longer
    than the whole ``aim_wait``."""
    config = _config(workdir, slack, webhook)
    rng = random.Random(seed)
    aim = Aim()
    slack.on_call = aim

    def life(process: WatcherProcess, kills: int) -> None:
        if kills % 4:  # aimed at a step, the least hit first
            aim.arm(process, aim.next_target(kills))
            if aim.sending.wait(reach_wait):
                aim.killed.wait(aim_wait)
            aim.disarm()
        else:
            time.sleep(rng.uniform(0, max_life))

    def unhit() -> bool:
        return any(not aim.hits[step] for step in STEPS)

    crash, stretches = kill_loop(
        workdir, config, webhook, life, services=services, length=length, min_kills=min_kills, seed=seed,
        settle=180, more=unhit, max_kills=min_kills + 2 * len(STEPS),
    )  # fmt: skip
    with sqlite3.connect(workdir / "data" / "state.sqlite") as db:
        (dead,) = db.execute("SELECT count(*) FROM outbox WHERE status = 'dead'").fetchone()
        steps = dict(
            db.execute("SELECT status, count(*) FROM outbox WHERE id LIKE '%.charts' GROUP BY status")
        )
    result = SlackStormResult(
        crash, aimed=aim.hits, missed=aim.missed, quiet=aim.quiet, dead=dead, chart_steps=steps
    )
    _score_slack(result, stretches, slack)
    return result


def _config(workdir: Path, slack: SlackServer, webhook: RecordingProcess) -> Path:
    for event in ("firing", "update", "resolved"):
        (workdir / "templates" / "slack").mkdir(parents=True, exist_ok=True)
        (workdir / "templates" / "slack" / f"{event}.md.j2").write_text(TEMPLATE)
    # The fake Slack has no channel limit: pace well above Slack's 1/s so the storm drains quickly.
    pace = {"per_second": 20, "burst": 5}
    bot = {
        "token": slack.token,
        "channel": "#alerts",
        "base_url": slack.base_url,
        "charts": True,
        "pace": pace,
    }
    return write_config(
        workdir,
        [RULE],
        receivers={"slack": {"slack": bot}, "hook": {"webhook": {"url": webhook.url}}},
        route=ROUTE_SLACK_AND_HOOK,
        templates=str(workdir / "templates"),
    )


def _score_slack(result: SlackStormResult, stretches: list[BadStretch], slack: SlackServer) -> None:
    posts = [post for post in slack.posts if not post.get("files")]
    ids = Counter(_notification_id(post) for post in posts)
    result.posts, result.duplicate_posts = len(posts), sum(n - 1 for n in ids.values())
    names = Counter(file.filename for file in slack.files.values() if file.channel is not None)
    result.charts, result.duplicate_charts = sum(names.values()), sum(n - 1 for n in names.values())
    told: dict[tuple[str, str], dict[str, float]] = {}
    for post in posts:
        event, *episodes = str(post.get("text", "")).split()
        for episode in episodes:
            service, _, started = episode.partition("@")
            if not started:
                raise AssertionError(f"unexpected Slack text {post.get('text')!r}")
            told.setdefault((service, started), {}).setdefault(event, float(post["ts"]))
    matched: set[BadStretch] = set()
    for (service, started), events in told.items():
        at = datetime.fromisoformat(started).timestamp()
        stretch = next((s for s in stretches if s.service == service and s.start <= at <= s.end + 4), None)
        if stretch is not None:
            matched.add(stretch)
        firing = min((events[e] for e in ("firing", "update") if e in events), default=None)
        if "resolved" not in events:
            result.unresolved.append((service, started))
        elif firing is not None and firing > events["resolved"]:
            result.out_of_order.append((service, started))
    result.lost = [s for s in stretches if s not in matched]


def _notification_id(post: dict[str, Any]) -> str:
    return str(((post.get("metadata") or {}).get("event_payload") or {}).get("notification_id"))
