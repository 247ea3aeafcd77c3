"""Detectors: pure functions from aggregated data to findings. One module per detector.

``DETECTORS`` is the one registry: a new detector is a module exposing ``queries`` and
``evaluate`` (see ``watcher.detect.base.Detector``) and one line here. Modules are imported on
first use, so a daemon without drift rules never loads NumPy (RSS is a budget).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import cast

from watcher.detect.base import Detector

_MODULES = {
    "threshold": "watcher.detect.threshold",
    "flatline": "watcher.detect.flatline",
    "spike": "watcher.detect.spike",
    "drift": "watcher.detect.drift",
    "validity": "watcher.detect.validity",
    "forecast": "watcher.detect.forecast",
    "canary": "watcher.detect.canary",
    "match": "watcher.detect.match",
    "values": "watcher.detect.values",
    "new_value": "watcher.detect.new_value",
    "change": "watcher.detect.change",
}


class _Registry(Mapping[str, Detector]):
    """Detector kind -> module, imported when first asked for."""

    def __init__(self) -> None:
        self._loaded: dict[str, Detector] = {}  # asked twice per evaluation: import_module is not free

    def __getitem__(self, kind: str) -> Detector:
        detector = self._loaded.get(kind)
        if detector is None:
            detector = self._loaded[kind] = cast(Detector, importlib.import_module(_MODULES[kind]))
        return detector

    def __iter__(self) -> Iterator[str]:
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)


DETECTORS: Mapping[str, Detector] = _Registry()
