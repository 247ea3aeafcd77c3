"""A one-line progress bar for long commands (``backtest``): ticks done, the simulated time, ETA."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TextIO

WIDTH = 30


class Progress:
    """Draws on ``stream`` only when it is a terminal and ``enabled``; at most ``per_second``
    redraws a second, and always the last one."""

    def __init__(
        self,
        total: int,
        stream: TextIO,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
        per_second: float = 10.0,
    ) -> None:
        self.total, self.stream, self.done_count = max(total, 1), stream, 0
        self.enabled = enabled and stream.isatty()
        self._clock, self._gap = clock, 1 / per_second
        self._started = self._drawn = clock()
        self._shown = False

    def advance(self, at: datetime) -> None:
        """One tick done; ``at`` is its simulated time."""
        self.done_count += 1
        now = self._clock()
        last = self.done_count >= self.total
        if self.enabled and (last or now - self._drawn >= self._gap):
            self._drawn, self._shown = now, True
            self.stream.write("\r" + self.line(at, now - self._started))
            self.stream.flush()

    def line(self, at: datetime, elapsed: float) -> str:
        share = min(self.done_count / self.total, 1.0)
        bar = "#" * int(share * WIDTH)
        left = elapsed / self.done_count * (self.total - self.done_count)
        eta = str(timedelta(seconds=round(left)))
        return (
            f"[{bar:<{WIDTH}}] {share:4.0%} {self.done_count:,}/{self.total:,} ticks "
            f"{at:%Y-%m-%d %H:%M} ETA {eta}"
        )

    def done(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
