"""Charts: a PNG of the incident's series with the threshold, or None without a series."""

from __future__ import annotations

import io
import struct
from datetime import datetime, timedelta

from samples import incident, resolved, series

from watcher.notify.chart import render_chart


def size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_a_chart_is_a_deterministic_png() -> None:
    png = render_chart(incident(), "ratio")
    assert png is not None
    assert size(png) == (800, 320)
    assert render_chart(incident(), "ratio") == png
    assert b"tEXtSoftware" not in png  # no matplotlib version or timestamp in the bytes


def test_no_chart_without_at_least_two_samples() -> None:
    assert render_chart(incident(details={})) is None
    assert render_chart(incident(details={"series": [["2024-05-01T12:00:00+00:00", 1.0]]})) is None
    assert render_chart(incident(details={"series": "garbage"})) is None


def test_resolved_incidents_and_hostile_labels_render() -> None:
    hostile = resolved(group={"model_version": "$\\frac{1}{0}$\r\n\x1b[31m"})
    png = render_chart(hostile, "count")
    assert png is not None
    assert render_chart(incident(threshold=None)) is not None


def _has_colour(png: bytes, rgb: tuple[int, int, int]) -> bool:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
        return any(colour == rgb for _, colour in colours)


def test_a_forecast_is_drawn_ahead_of_the_series() -> None:
    last = datetime.fromisoformat(series()[-1][0])
    ahead = [[(last + timedelta(minutes=5 * k)).isoformat(), 0.0712 + 0.002 * k] for k in range(13)]
    plain = render_chart(incident(), "ratio")
    drawn = render_chart(incident(details={"series": series(), "forecast": ahead}), "ratio")
    assert plain is not None
    assert drawn is not None
    purple = (0x6F, 0x42, 0xC1)  # the forecast's colour
    assert _has_colour(drawn, purple)
    assert not _has_colour(plain, purple)
