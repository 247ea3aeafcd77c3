"""Typed models of a rule file. Parsed once at load; the rest of watcher never sees raw dicts.

A rule names a source, a time window, an optional filter and grouping, a *signal* (the number
computed per group) and exactly one *detector* (``threshold``, ``flatline``, ...) that decides
from that number whether the group is alerting.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from watcher.duration import Duration, format_duration
from watcher.incidents.flapping import DEFAULT_FLAPPING, FlappingSpec
from watcher.query_filters import Filter, parse_filter
from watcher.rules.document_specs import DOCUMENT_KINDS, ChangeSpec, MatchSpec, NewValueSpec, ValuesSpec
from watcher.rules.evidence import DEFAULT_REDACT, EvidenceSpec
from watcher.rules.ml_specs import DriftSpec, SpikeSpec, ValiditySpec
from watcher.rules.overrides import (
    Override,
    OverrideIndex,
    OverridesFileRef,
    check_override,
    duplicate,
)
from watcher.rules.thresholds import FlatlineSpec, Severity, ThresholdSpec
from watcher.rules.trend_specs import CanarySpec, ForecastSpec, fits_window

__all__ = ["FlatlineSpec", "Rule", "Severity", "Signal", "ThresholdSpec"]


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


DetectorKind = Literal[
    "threshold", "flatline", "spike", "drift", "validity", "forecast", "canary",
    "match", "values", "new_value", "change",
]  # fmt: skip
DETECTOR_KINDS: tuple[DetectorKind, ...] = (
    "threshold",
    "flatline",
    "spike",
    "drift",
    "validity",
    "forecast",
    "canary",
    *DOCUMENT_KINDS,
)


# --------------------------------------------------------------------------- the rule

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
_LABEL = r"^[A-Za-z_][A-Za-z0-9_]*$"
GROUPED_ONLY = ("groups_from", "forget_after", "overrides", "overrides_file")
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
    forecast: ForecastSpec | None = None
    canary: CanarySpec | None = None
    match: MatchSpec | None = None
    values: ValuesSpec | None = None
    new_value: NewValueSpec | None = None
    change: ChangeSpec | None = None
    overrides: tuple[Override, ...] = Field(
        default=(),
        description="other bounds for some groups: [{group: {tenant: a}, threshold: {above: 500}}]; "
        "the first entry that matches a group wins",
    )
    overrides_file: OverridesFileRef | None = Field(
        default=None,
        description="overrides in a file next to the rules (CSV: group_by fields and settings as "
        "columns, e.g. tenant,above; or a YAML list like 'overrides'), read after the inline ones",
    )
    for_: Duration = Field(default=timedelta(0), alias="for", description="pending time before firing")
    keep_firing_for: Duration = Field(
        default=timedelta(0), description="stay firing this long after it clears"
    )
    repeat_interval: Duration | None = Field(
        default=None, description="re-notify a still-firing incident this often (default: the route's)"
    )
    severity: Severity = Field(
        default="warning",
        description="the incident's severity (threshold and forecast levels set it instead)",
    )
    on_nodata: Literal["keep", "ok", "alerting", "nodata"] = Field(
        default="keep",
        description="what too few documents (min_events) mean: keep the state, ok, alerting, or the "
        "visible state nodata (told like a firing)",
    )
    on_error: Literal["keep", "ok", "alerting", "error"] = Field(
        default="keep",
        description="what a store error means: keep the state, ok, alerting, or the visible state error",
    )
    flapping: FlappingSpec | None = Field(
        default=None,
        validate_default=True,
        description="{window: 20, changes: 4}: flapping after this many status changes in the last "
        "window evaluations (default: watcher.yaml's flapping); false turns it off",
    )
    evidence: EvidenceSpec = Field(
        default_factory=EvidenceSpec,
        validate_default=True,
        description="{size: 3, fields: [...], sort: {field: desc}}: the log documents an alert shows "
        "(the group's, matching the filter and a ratio's 'of', from the firing window); false: none",
    )
    labels: dict[Annotated[str, Field(pattern=_LABEL)], str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    templates: dict[str, str] = Field(
        default_factory=dict, description="per-channel template overrides, e.g. {slack: my-slack.j2}"
    )

    @field_validator("flapping")
    @classmethod
    def _flapping_default(cls, flapping: FlappingSpec | None, info: ValidationInfo) -> FlappingSpec:
        """Unset: watcher.yaml's ``flapping`` (the loader puts it in the context), else Kibana's."""
        if flapping is not None:
            return flapping
        default = (info.context or {}).get("flapping")
        return DEFAULT_FLAPPING if default is None else default

    @model_validator(mode="before")
    @classmethod
    def _change_key(cls, data: Any) -> Any:
        """``change.by`` is the key a value changes for: the rule's groups, unless written twice."""
        change = data.get("change") if isinstance(data, dict) else None
        if isinstance(change, dict) and isinstance(change.get("by"), list) and "group_by" not in data:
            return {**data, "group_by": change["by"]}
        return data

    @field_validator("evidence")
    @classmethod
    def _redact_default(cls, evidence: EvidenceSpec, info: ValidationInfo) -> EvidenceSpec:
        """Unset ``redact``: watcher.yaml's ``evidence.redact`` (the loader's context), else the default."""
        if evidence.redact is not None:
            return evidence
        default = (info.context or {}).get("redact")
        return evidence.model_copy(update={"redact": DEFAULT_REDACT if default is None else tuple(default)})

    @model_validator(mode="after")
    def _check(self) -> Rule:
        kinds = [name for name in DETECTOR_KINDS if getattr(self, name) is not None]
        if len(kinds) != 1:
            allowed, got = ", ".join(DETECTOR_KINDS), ", ".join(kinds) or "none"
            raise ValueError(f"a rule has exactly one detector of {allowed}; got {got}")
        if self.every <= timedelta(0) or self.window <= timedelta(0):
            raise ValueError("'every' and 'window' must be longer than 0s")
        self._check_known_groups()
        self._check_documents()
        if (
            problem := fits_window(self.forecast, self.canary, self.window, self.signal.kind, self.group_by)
        ) is not None:
            raise ValueError(problem)
        self._check_levels()
        self._check_overrides()
        return self

    _overrides: OverrideIndex = PrivateAttr(default_factory=OverrideIndex)

    def _check_documents(self) -> None:
        """A document-level detector counts documents: no other signal; ``change`` groups by its key."""
        if self.detector not in DOCUMENT_KINDS:
            return
        if self.signal.kind != "count":
            raise ValueError(f"'signal' does not apply to a '{self.detector}' rule: it counts documents")
        if self.change is not None and self.group_by != self.change.by:
            by, group_by = ", ".join(self.change.by), ", ".join(self.group_by)
            raise ValueError(f"'change.by' ({by}) is the rule's key: remove 'group_by' ({group_by})")

    def _check_levels(self) -> None:
        for kind, bounds in (("threshold", self.threshold), ("forecast", self.forecast)):
            if bounds is not None and bounds.leveled and "severity" in self.model_fields_set:
                raise ValueError(f"'severity' comes from the levels of '{kind}': remove 'severity'")

    def _check_overrides(self) -> None:
        """Inline overrides fit the rule (the file's were checked as it was read); no group twice."""
        for entry in self.overrides:
            if problem := check_override(entry, self.group_by, self.detector):
                raise ValueError(problem)
        entries = [*self.overrides, *(self.overrides_file.entries if self.overrides_file else ())]
        if (twice := duplicate(entries)) is not None:
            raise ValueError(f"'overrides' name the group {twice.named()} twice")
        self._overrides = OverrideIndex.of(entries)

    def override_for(self, group: Mapping[str, str]) -> Override | None:
        """The override whose group ``group`` includes (the first listed), or None."""
        if not self.overrides and self.overrides_file is None:
            return None  # most rules: asked per group per evaluation, a private attribute is slow
        return self._overrides.find(group) if self._overrides.entries else None

    def threshold_for(self, group: Mapping[str, str]) -> ThresholdSpec:
        """The threshold that judges ``group``: its override's, else the rule's."""
        override = self.override_for(group)
        spec = override.threshold if override is not None else self.threshold
        assert spec is not None, "threshold of a rule without 'threshold'"
        return spec

    def flatline_for(self, group: Mapping[str, str]) -> FlatlineSpec:
        """The flatline floor that judges ``group``: its override's, else the rule's."""
        override = self.override_for(group)
        spec = override.flatline if override is not None else self.flatline
        assert spec is not None, "flatline of a rule without 'flatline'"
        return spec

    def _check_known_groups(self) -> None:
        """``groups_from`` and ``forget_after``: only with groups, and long enough to mean something."""
        for name in GROUPED_ONLY:
            if getattr(self, name) not in (None, ()) and not self.group_by:
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

    def read_files(self) -> list[Path]:
        """The files the rule read when it was loaded, besides its own: a baseline profile, an
        overrides file. An edit of one is a reload (``watcher.process.reload``)."""
        spec = self.drift or self.validity
        refs = [getattr(spec, "baseline", None), self.overrides_file]
        files = [ref.file for ref in refs if ref is not None and ref.file is not None]
        listed = self.values.listed.path if self.values is not None else None
        return files if listed is None else [*files, listed]

    def all_labels(self) -> dict[str, str]:
        """The labels routing sees for this rule's incidents (group labels are added per incident)."""
        return {"rule": self.name, "severity": self.severity, "source": self.source, **self.labels}
