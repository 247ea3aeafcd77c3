"""The per-rule series of ``/metrics``, kept as one compact row of numbers per rule.

prometheus-client keeps a labelled child object per series, and a histogram child holds a lock
and a value object per bucket: with 1,000 rules the evaluation histogram and the evaluation and
error counters took 4.6 MB of the daemon's heap. ``RuleMetrics`` keeps each rule's numbers in one
``array`` of floats (about 0.3 MB for 1,000 rules) and builds the same families when scraped:
the same names, labels, buckets and ``_created`` samples as ``Histogram`` and ``Counter``.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

SECONDS = "watcher_rule_evaluation_seconds"
EVALUATIONS = "watcher_rule_evaluations"
ERRORS = "watcher_rule_errors"
_HELP = {
    SECONDS: "Time to evaluate one rule (its share of the store round trip plus detection).",
    EVALUATIONS: "Rule evaluations, successful or not.",
    ERRORS: "Rule evaluations that ended in an error.",
}
_LABELS = ["rule"]
_go_float: Callable[[float], str] = floatToGoString  # how prometheus-client writes ``le`` (untyped there)
_COUNT, _ERRORS, _SUM, _CREATED, _FIRST_BUCKET = range(5)
"""A row: evaluations, errors, seconds in total, the row's creation time, then one count per bucket."""


class RuleMetrics(Collector):
    """Evaluations, errors and the evaluation-time histogram of each rule. Thread-safe: the
    worker thread observes while the HTTP thread scrapes."""

    def __init__(self, buckets: Sequence[float]) -> None:
        bounds = sorted(float(bound) for bound in buckets)
        self.bounds = (*bounds, math.inf) if not bounds or bounds[-1] != math.inf else tuple(bounds)
        self._rows: dict[str, array[float]] = {}
        self._lock = threading.Lock()

    def observe(self, rule: str, seconds: float, *, error: bool = False) -> None:
        """Record one evaluation of ``rule`` that took ``seconds``."""
        with self._lock:
            row = self._rows.get(rule)
            if row is None:
                row = self._rows[rule] = array("d", bytes(8 * (_FIRST_BUCKET + len(self.bounds))))
                row[_CREATED] = time.time()
            row[_COUNT] += 1
            row[_ERRORS] += error
            row[_SUM] += seconds
            row[_FIRST_BUCKET + bisect.bisect_left(self.bounds, seconds)] += 1  # the first bound >= seconds

    def forget(self, rule: str) -> None:
        """Stop exporting ``rule`` (deleted by a reload); unknown rules are ignored."""
        with self._lock:
            self._rows.pop(rule, None)

    def describe(self) -> Iterator[Metric]:
        """The families without samples, so a registry knows the names without a scrape."""
        yield from _families()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            rows = [(rule, row.tolist()) for rule, row in self._rows.items()]
        seconds, evaluations, errors = _families()
        les = [_go_float(bound) for bound in self.bounds]
        for rule, row in rows:
            cumulative = itertools.accumulate(row[_FIRST_BUCKET:])
            seconds.add_metric([rule], list(zip(les, cumulative, strict=True)), row[_SUM])
            seconds.samples.append(Sample(f"{SECONDS}_created", {"rule": rule}, row[_CREATED]))
            evaluations.add_metric([rule], row[_COUNT], created=row[_CREATED])
            errors.add_metric([rule], row[_ERRORS], created=row[_CREATED])
        yield from (seconds, evaluations, errors)


def _families() -> tuple[HistogramMetricFamily, CounterMetricFamily, CounterMetricFamily]:
    return (
        HistogramMetricFamily(SECONDS, _HELP[SECONDS], labels=_LABELS),
        CounterMetricFamily(EVALUATIONS, _HELP[EVALUATIONS], labels=_LABELS),
        CounterMetricFamily(ERRORS, _HELP[ERRORS], labels=_LABELS),
    )
