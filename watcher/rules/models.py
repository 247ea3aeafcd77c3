"""Typed models of a rule file. Parsed once at load; the rest of watcher never sees raw dicts.

A rule names a source, a time window, an optional filter and grouping, a *signal* (the number
computed per group) and exactly one *detector* (``threshold``, ``flatline``, ...) that decides
from that number whether the group is alerting.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

from watcher.duration import Duration, format_duration
from watcher.query import Filter, parse_filter
from watcher.rules.ml_specs import DriftSpec, SpikeSpec, ValiditySpec


def _filter_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "field: value (equals), field: [values] (in), field: {gte, gt, lte, lt, eq, ne, in, "
        "not_in, exists}, or the combinators and: [...], or: [...], not: {...}",
    }


FilterSpec = Annotated[
    Filter,
    BeforeValidator(parse_filter),
    PlainSerializer(lambda f: repr(f), return_type=str),
    Field(json_schema_extra=_filter_schema()),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --------------------------------------------------------------------------- signals


class RatioSpec(_Model):
    """Share of the documents matched by ``where`` that also match ``of`` (0..1)."""

    of: FilterSpec


class PercentileSpec(_Model):
    field: str
    q: float = Field(ge=0, le=100, description="percentile, 0..100 (99 for p99)")


class StatSpec(_Model):
    field: str
    fn: Literal["avg", "min", "max", "sum"]


class CardinalitySpec(_Model):
    field: str


class CountSpec(_Model):
    """Number of documents matched by ``where`` in the window."""


SignalKind = Literal["count", "ratio", "percentile", "stat", "cardinality"]


class Signal(_Model):
    """The number a rule watches, per group. Exactly one kind is set; ``signal: count`` is short for
    ``signal: {count: {}}``."""

    count: CountSpec | None = None
    ratio: RatioSpec | None = None
    percentile: PercentileSpec | None = None
    stat: StatSpec | None = None
    cardinality: CardinalitySpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {data: {}}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Signal:
        kinds = [name for name in SIGNAL_KINDS if getattr(self, name) is not None]
        if len(kinds) != 1:
            raise ValueError(
                f"a signal has exactly one of {', '.join(SIGNAL_KINDS)}; got {', '.join(kinds) or 'none'}"
            )
        return self

    @property
    def kind(self) -> SignalKind:
        for name in SIGNAL_KINDS:
            if getattr(self, name) is not None:
                return name
        raise AssertionError("validated signal has a kind")


SIGNAL_KINDS: tuple[SignalKind, ...] = ("count", "ratio", "percentile", "stat", "cardinality")


# --------------------------------------------------------------------------- detectors


class ThresholdSpec(_Model):
    """Alert when the signal is above and/or below a fixed value."""

    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> ThresholdSpec:
        if self.above is None and self.below is None:
            raise ValueError("threshold needs 'above' or 'below'")
        return self


class FlatlineSpec(_Model):
    """Alert when traffic (the document count) falls below a floor. A store error is never a flatline."""

    below: float = Field(ge=0, description="minimum number of documents expected in the window")


DetectorKind = Literal["threshold", "flatline", "spike", "drift", "validity"]
DETECTOR_KINDS: tuple[DetectorKind, ...] = ("threshold", "flatline", "spike", "drift", "validity")


# --------------------------------------------------------------------------- the rule

Severity = Literal["critical", "error", "warning", "info"]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
_LABEL = r"^[A-Za-z_][A-Za-z0-9_]*$"
GROUPED_ONLY = ("groups_from", "forget_after")
"""Rule options that only mean something with ``group_by``."""
DEFAULT_GROUPS_FROM = timedelta(hours=1)
"""A grouped flatline's ``groups_from`` when the rule sets none (at least twice its window)."""


class Rule(_Model):
    """One rule file (or one entry of a ``rules:`` list in a file)."""

    name: str = Field(pattern=_NAME, description="unique across all rule files")
    description: str = ""
    source: str = Field(description="a source defined in watcher.yaml")
    enabled: bool = True
    every: Duration = Field(default=timedelta(minutes=1), description="evaluation interval")
    window: Duration = Field(default=timedelta(minutes=5), description="data evaluated at each run")
    delay: Duration = Field(
        default=timedelta(seconds=30),
        description="tolerated ingest lag: each run evaluates [now - delay - window, now - delay)",
    )
    where: FilterSpec = Field(default_factory=lambda: parse_filter(None))
    group_by: tuple[str, ...] = ()
    groups_from: Duration | None = Field(
        default=None,
        description="evaluate groups that had data this long before the window's end, even when they "
        "are missing from it (an empty group, count 0); default for a grouped flatline: 1h (or twice "
        "the window), none for other detectors; 0s turns it off",
    )
    forget_after: Duration | None = Field(
        default=None,
        description="forget a group with no data for this long: no longer evaluated, its open incident "
        "resolved with a note (default: never)",
    )
    signal: Signal = Field(default_factory=lambda: Signal(count=CountSpec()))
    min_events: int = Field(
        default=0,
        ge=0,
        description="below this many documents a group is 'not enough data': no fire, no resolve",
    )
    threshold: ThresholdSpec | None = None
    flatline: FlatlineSpec | None = None
    spike: SpikeSpec | None = None
    drift: DriftSpec | None = None
    validity: ValiditySpec | None = None
    for_: Duration = Field(default=timedelta(0), alias="for", description="pending time before firing")
    keep_firing_for: Duration = Field(
        default=timedelta(0), description="stay firing this long after it clears"
    )
    repeat_interval: Duration | None = Field(
        default=None, description="re-notify a still-firing incident this often (default: the route's)"
    )
    severity: Severity = "warning"
    labels: dict[Annotated[str, Field(pattern=_LABEL)], str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    templates: dict[str, str] = Field(
        default_factory=dict, description="per-channel template overrides, e.g. {slack: my-slack.j2}"
    )

    @model_validator(mode="after")
    def _check(self) -> Rule:
        kinds = [name for name in DETECTOR_KINDS if getattr(self, name) is not None]
        if len(kinds) != 1:
            allowed, got = ", ".join(DETECTOR_KINDS), ", ".join(kinds) or "none"
            raise ValueError(f"a rule has exactly one detector of {allowed}; got {got}")
        if self.every <= timedelta(0) or self.window <= timedelta(0):
            raise ValueError("'every' and 'window' must be longer than 0s")
        self._check_known_groups()
        return self

    def _check_known_groups(self) -> None:
        """``groups_from`` and ``forget_after``: only with groups, and long enough to mean something."""
        for name in GROUPED_ONLY:
            if getattr(self, name) is not None and not self.group_by:
                raise ValueError(
                    f"'{name}' needs 'group_by': without it the rule has one group, always evaluated"
                )
        window, lookback = format_duration(self.window), self.known_groups_lookback
        if self.groups_from and self.groups_from <= self.window:
            wrote = format_duration(self.groups_from)
            raise ValueError(
                f"'groups_from' ({wrote}) must be longer than 'window' ({window}), or 0s for none"
            )
        if self.forget_after is None:
            return
        forget = format_duration(self.forget_after)
        if self.forget_after <= self.window:
            raise ValueError(f"'forget_after' ({forget}) must be longer than 'window' ({window})")
        if lookback is not None and self.forget_after < lookback:
            default = "" if self.groups_from else ", the default for a grouped flatline"
            known = f"{format_duration(lookback)}{default}"
            raise ValueError(f"'forget_after' ({forget}) must be at least 'groups_from' ({known})")

    @property
    def known_groups_lookback(self) -> timedelta | None:
        """How far before its window's end the rule looks for groups to evaluate (``groups_from``,
        defaulted for a grouped flatline), or None: only groups with an open incident."""
        if self.groups_from is not None:
            return self.groups_from or None
        if self.flatline is not None and self.group_by:
            return max(DEFAULT_GROUPS_FROM, 2 * self.window)
        return None

    @property
    def detector(self) -> DetectorKind:
        for name in DETECTOR_KINDS:
            if getattr(self, name) is not None:
                return name
        raise AssertionError("validated rule has a detector")

    def all_labels(self) -> dict[str, str]:
        """The labels routing sees for this rule's incidents (group labels are added per incident)."""
        return {"rule": self.name, "severity": self.severity, "source": self.source, **self.labels}
