"""A PNG chart of an incident's signal with its threshold, for Slack and email.

The data is the incident's own recent series (``watcher.incidents.series``): notifiers never query
a store. The chart is drawn with matplotlib's object API on the Agg canvas (no pyplot: no display, no
global backend switch) and saved without a timestamp, so one incident always gives the same bytes.
Text from log data (group labels) is drawn literally: mathtext is off, so a ``$`` stays a ``$``.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from watcher.channels import one_line
from watcher.filters import labels, number, percent
from watcher.incidents.model import Incident, State
from watcher.incidents.series import samples

if TYPE_CHECKING:
    from matplotlib.axes import Axes

WIDTH, HEIGHT, DPI = 8.0, 3.2, 100  # 800 x 320 pixels: readable in a Slack thread and on a phone
LINE = {"critical": "#d72b3f", "error": "#e8590c", "warning": "#d4a017", "info": "#439fe0"}
THRESHOLD = "#555555"
FORECAST = "#6f42c1"
FIRING_SPAN = "#d72b3f"
MIN_SAMPLES = 2  # a single point is not a line worth sending
MIN_SPAN = timedelta(minutes=15)  # a short series is drawn at the right of this much time, not stretched


def render_chart(incident: Incident, signal: str | None = None) -> bytes | None:
    """The chart of ``incident`` as PNG bytes, or None when it has fewer than two samples.
    ``signal`` is the rule's signal kind; ``ratio`` values read as percentages."""
    points = samples(incident.details)
    if len(points) < MIN_SAMPLES:
        return None
    # matplotlib is imported here, not at module level: it costs ~25 MB of RSS, and a daemon that
    # sends no chart (console, SMS, webhook receivers) should not pay for it.
    from matplotlib import dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fmt = percent if signal == "ratio" else number
    figure = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    times = mdates.date2num([moment for moment, _ in points])  # type: ignore[no-untyped-call]
    values = [value for _, value in points]
    colour = LINE.get(incident.severity, LINE["warning"])
    axes.plot(times, values, color=colour, linewidth=2, marker="o", markersize=2.5, label="value")
    ahead = samples(incident.details, "forecast")  # a forecast rule's fitted values ahead
    if len(ahead) >= MIN_SAMPLES:
        at = mdates.date2num([moment for moment, _ in ahead])  # type: ignore[no-untyped-call]
        axes.plot(
            at, [value for _, value in ahead], color=FORECAST, linestyle=":", linewidth=2, label="forecast"
        )
        values = [*values, *(value for _, value in ahead)]
    if incident.threshold is not None:
        text = f"threshold {fmt(incident.threshold)}"
        axes.axhline(incident.threshold, color=THRESHOLD, linestyle="--", linewidth=1.2, label=text)
    _firing_span(axes, incident, points[0][0], points[-1][0])
    first, last = points[0][0], points[-1][0]
    if last - first < MIN_SPAN:
        left, right = mdates.date2num([last - MIN_SPAN, last + MIN_SPAN / 30])  # type: ignore[no-untyped-call]
        axes.set_xlim(left, right)
        note = f"recorded since {first:%H:%M} UTC, when the incident opened"
        axes.text(0.01, 0.03, note, transform=axes.transAxes, fontsize=7, color="#888888", parse_math=False)
    if len(ahead) >= MIN_SAMPLES:  # the whole forecast is shown, up to its horizon
        axes.set_xlim(right=mdates.date2num(ahead[-1][0]))  # type: ignore[no-untyped-call]
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: fmt(value)))
    axes.xaxis.set_major_locator(mdates.AutoDateLocator(tz=UTC, maxticks=8))  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))  # type: ignore[no-untyped-call]
    axes.set_xlabel("UTC", fontsize=8, color="#666666")
    axes.set_ylim(bottom=min(0.0, *values))
    axes.grid(True, color="#e5e5e5", linewidth=0.8)
    axes.spines[["top", "right"]].set_visible(False)
    axes.tick_params(labelsize=8)
    axes.legend(loc="upper left", fontsize=8, frameon=False)
    axes.set_title(_title(incident), loc="left", fontsize=10, parse_math=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _firing_span(axes: Axes, incident: Incident, first: datetime, last: datetime) -> None:
    """Shade the time the incident fired (to its resolution, or to the last sample)."""
    from matplotlib import dates as mdates

    if incident.fired_at is None:
        return
    start = max(incident.fired_at, first)
    end = incident.resolved_at if incident.state is State.RESOLVED and incident.resolved_at else last
    if end > start:
        span = mdates.date2num([start, end])  # type: ignore[no-untyped-call]
        axes.axvspan(span[0], span[1], color=FIRING_SPAN, alpha=0.08, linewidth=0, label="firing")


def _title(incident: Incident) -> str:
    group = f"  ·  {labels(incident.group)}" if incident.group else ""
    return one_line(f"{incident.rule}{group}")  # a line break from log data would garble the title
