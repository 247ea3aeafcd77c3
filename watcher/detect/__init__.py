"""Detectors: pure functions from aggregated data to findings. One module per detector.

``DETECTORS`` is the one registry: a new detector is a module exposing ``queries`` and
``evaluate`` (see ``watcher.detect.base.Detector``) and one line here.
"""

from __future__ import annotations

from watcher.detect import drift, flatline, spike, threshold, validity
from watcher.detect.base import Detector

DETECTORS: dict[str, Detector] = {
    "threshold": threshold,
    "flatline": flatline,
    "spike": spike,
    "drift": drift,
    "validity": validity,
}
