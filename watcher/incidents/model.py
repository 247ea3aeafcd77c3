"""The incident: one rule + one group, and the events that notify people about it."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import json.encoder
import math
import operator
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from json.encoder import encode_basestring_ascii
from typing import Any

from watcher.incidents.series import SERIES_KEY, written


class State(StrEnum):
    PENDING = "pending"  # alerting, but not yet for the rule's `for`
    FIRING = "firing"
    RESOLVED = "resolved"
    NODATA = "nodata"  # no data for `for`, with the rule's `on_nodata: nodata`: told like a firing
    ERROR = "error"  # the store failed for `for`, with the rule's `on_error: error`: told like a firing


RAISED = (State.FIRING, State.NODATA, State.ERROR)
"""States told as firing: the dispatcher groups and notifies them alike; templates tell them apart."""
OPEN = (State.PENDING, *RAISED)
"""States of an incident that is not over."""


class Event(StrEnum):
    """What a notification says about an incident."""

    FIRING = "firing"  # it started firing
    UPDATE = "update"  # still firing: repeat interval elapsed, its severity changed (or its group changed)
    RESOLVED = "resolved"


def fingerprint(rule: str, group: Mapping[str, str]) -> str:
    """Stable identity of an incident: the rule name and its group labels, order-independent."""
    return _fingerprint(rule, tuple(sorted(group.items())))


@functools.lru_cache(maxsize=8192)
def _fingerprint(rule: str, labels: tuple[tuple[str, str], ...]) -> str:
    """Kept for the groups seen lately: the engine asks for every finding of every evaluation,
    and the JSON and hash were most of stepping an incident that stays inactive."""
    payload = json.dumps([rule, labels], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Incident:
    """A snapshot of an incident. Immutable: the state machine returns new snapshots."""

    fingerprint: str
    rule: str
    group: Mapping[str, str]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    severity: str
    state: State
    value: float | None
    threshold: float | None
    started_at: datetime  # when it became pending
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    last_alerting_at: datetime | None = None
    last_notified_at: datetime | None = None
    last_evaluated_at: datetime | None = None
    note: str = ""  # why the state was kept (not enough data, store error), shown in `watcher incidents`
    details: Mapping[str, Any] = field(default_factory=dict)
    # Set on the snapshot a RESOLVED notification carries when the episode fired and resolved
    # before its firing could be told (catch-up after a stop, a store outage): that message is
    # the first and only one about it. Defaults to False, so older state files load.
    found_late: bool = False
    # Set on the snapshot a RESOLVED notification carries when a severity change took the still
    # open incident off that notification's route (``watcher.routing.leaving``): that receiver's
    # last message about it, told like an end (Alertmanager: a label change ends the alert on the
    # routes it no longer matches) while the incident goes on elsewhere. Defaults to False.
    left_route: bool = False
    # Set with ``left_route`` when the routes themselves changed (a reload: ``Dispatcher.reroute``),
    # not the incident's severity. Defaults to False.
    rerouted: bool = False
    # Severity levels (see ``watcher.incidents.machine``): the level the latest evidence asks for
    # while it has not held long enough to become ``severity``, and since when it has; and, on the
    # snapshot of the UPDATE that tells a change, the severity told before.
    next_severity: str = ""
    next_severity_since: datetime | None = None
    severity_from: str = ""
    # Flapping (``watcher.incidents.flapping``): whether it is flapping now, when its evaluations
    # changed status within the rule's flapping window, the status of the last one that counted
    # (alerting or ok), and, on the snapshot of the notification that tells flapping ended, True.
    flapping: bool = False
    flips: tuple[datetime, ...] = ()
    last_status: str = ""
    flap_ended: bool = False
    # Evidence (``watcher.detect.evidence``): sample log documents of the latest alerting window
    # of this episode, redacted and cut before they were kept.
    evidence: tuple[Mapping[str, Any], ...] = ()
    # Acknowledgement (``watcher.incidents.acks``): on a notification's snapshot, the ack that holds
    # (by, at, message, until as ISO times), and True on the UPDATE that tells the ack itself. The
    # ack lives in the ``acks`` table; the incidents table never needs it. On the UPDATE that tells
    # an ack was taken back (``watcher ack --undo``), ``ack_undone``: that ack and ``undone_by``.
    ack: Mapping[str, Any] | None = None
    acknowledged_now: bool = False
    ack_undone: Mapping[str, Any] | None = None

    def evolve(self, **changes: Any) -> Incident:
        """This snapshot with ``changes``. Its fields copied at once, not through ``replace``,
        which checks every field and sets each of the ~30 through a frozen ``__init__``: a step
        evolves an incident two to four times, and that was a fifth of it."""
        if not changes.keys() <= _FIELD_NAMES:
            return replace(self, **changes)  # its TypeError names the unknown field
        evolved = object.__new__(Incident)
        evolved.__dict__.update(self.__dict__)
        evolved.__dict__.pop("_text", None)  # the text of this snapshot, not of the evolved one
        evolved.__dict__.pop("_native", None)  # and whether it reads back
        # (the texts and verdicts of its fields and series' samples stay: ``_encode`` and
        # ``reads_back`` check which values they are of)
        evolved.__dict__.update(changes)
        return evolved

    def encoded(self) -> str:
        """The snapshot as the state stores it: ``to_json`` as compact JSON (``json_default`` for
        what JSON lacks), the same text. Encoded once per snapshot: a tick writes one snapshot as
        its incident row, as a member of its routing groups and in its notifications."""
        text: str | None = self.__dict__.get("_text")
        if text is None:
            text = _encode(self)
            object.__setattr__(self, "_text", text)  # frozen, and immutable: the text stays true
        return text

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the texts cached on it (a backtest's worker sends its snapshots)."""
        return {name: value for name, value in self.__dict__.items() if name not in _CACHED}

    def reads_back(self) -> bool:
        """Whether the snapshot decoded from ``encoded`` equals this one: its values are JSON's own
        types (a tuple in its details would come back a list, a time a string). Then a reader may
        take this snapshot for its text instead of decoding it (``StateStore.decoded``). Judged
        once per snapshot, like its text."""
        native: bool | None = self.__dict__.get("_native")
        if native is None:
            native = _reads_back(self)
            object.__setattr__(self, "_native", native)
        return native

    def to_json(self) -> dict[str, Any]:
        # Field by field, not ``asdict``: its deep copy of ``details`` was a third of a tick's CPU.
        data = {name: getattr(self, name) for name in _FIELDS}
        data["details"] = _plain(self.details)
        data["state"] = self.state.value
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        data["flips"] = [flip.isoformat() for flip in self.flips]
        data["group"] = dict(self.group)
        data["labels"] = dict(self.labels)
        data["annotations"] = dict(self.annotations)
        data["evidence"] = [dict(sample) for sample in self.evidence]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Incident:
        values = dict(data)
        values["state"] = State(values["state"])
        for key in (
            "started_at",
            "fired_at",
            "resolved_at",
            "last_alerting_at",
            "last_notified_at",
            "last_evaluated_at",
            "next_severity_since",
        ):
            if values.get(key):
                values[key] = datetime.fromisoformat(values[key])
        values["flips"] = tuple(datetime.fromisoformat(flip) for flip in values.get("flips", ()))
        values["evidence"] = tuple(dict(sample) for sample in values.get("evidence", ()))
        return cls(**values)


_FIELDS = tuple(f.name for f in fields(Incident))
_FIELD_NAMES = frozenset(_FIELDS)
_CACHED = frozenset({"_text", "_series", "_native", "_pieces", "_natives"})
_KEYS = tuple(f"{encode_basestring_ascii(name)}:" for name in _FIELDS)
_DETAILS, _STATE = _FIELDS.index("details"), _FIELDS.index("state")
_SERIES_MARK = f"series {secrets.token_hex(16)}"
"""Stands for the series while the rest of a snapshot is encoded: a text no one can guess, so its
one JSON occurrence is where the series goes (a second one, from some detail, is refused)."""
_MARK_TEXT = json.dumps(_SERIES_MARK)


def _encode(incident: Incident) -> str:
    """``Incident.encoded``'s text: ``to_json``'s object, field by field. A field whose value is the
    very object it was in the snapshot this one evolved from keeps that snapshot's text (kept on it
    with the values, carried by ``evolve``): a step of an open incident changes its value, times
    and details, and its labels, start and the other times, encoded again at every write, were
    about a third of the text's cost. Immutable snapshots keep the texts true. The encoder reads
    tuples as lists and ``json_default`` turns the rest (times, other mappings) into what
    ``to_json`` makes of them."""
    values = tuple(map(incident.__dict__.__getitem__, _FIELDS))
    memo: tuple[tuple[Any, ...], list[str]] | None = incident.__dict__.get("_pieces")
    encode = _one_shot()
    pieces: list[str] = []
    for at, value in enumerate(values):
        if memo is not None and memo[0][at] is value:
            pieces.append(memo[1][at])
        elif at == _DETAILS:
            pieces.append(_KEYS[at] + _details_text(incident, value, encode))
        else:
            pieces.append(_KEYS[at] + encode(value.value if at == _STATE else value))
    object.__setattr__(incident, "_pieces", (values, pieces))
    return "{" + ",".join(pieces) + "}"


def _details_text(incident: Incident, details: Any, encode: Callable[[Any], str]) -> str:
    """The details' text. A series in them is written from its samples' texts, reused from the
    snapshot this one evolved from: an open incident gets a sample at every evaluation, and
    encoding its whole series again (up to 120 ``[time, value]`` pairs) was most of a tick's
    commit."""
    series = details.get(SERIES_KEY) if type(details) is dict else None
    if type(series) is list:
        before, mark, after = encode({**details, SERIES_KEY: _SERIES_MARK}).partition(_MARK_TEXT)
        if mark and _MARK_TEXT not in after:
            return f"{before}[{','.join(_sample_texts(incident, series))}]{after}"
    return encode(details)


def _one_shot() -> Callable[[Any], str]:
    """``_ENCODER.encode`` for the fields of one snapshot: its C encoder made once for them all
    (``encode`` makes one per call), with the same settings, so the same text."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _ENCODER.encode
    chunks = make({}, json_default, encode_basestring_ascii, None, ":", ",", False, False, True)
    return lambda value: "".join(chunks(value, 0))


def _sample_texts(incident: Incident, series: list[Any]) -> list[str]:
    """Each sample of ``series`` as JSON. The texts of an earlier snapshot's series (kept on the
    snapshot and carried by ``evolve``) serve for the samples this one shares with it, the very
    same ``[time, value]`` lists in the same order (``recorded`` keeps them, dropping the oldest
    and appending one); the rest are encoded. Immutable snapshots keep the texts true."""
    texts: list[str] = []
    memo: tuple[list[Any], list[str]] | None = incident.__dict__.get("_series")
    if memo is not None and series:
        before, known = memo
        start = next((at for at, entry in enumerate(before) if entry is series[0]), len(before))
        shared = min(len(before) - start, len(series))
        if all(map(operator.is_, before[start : start + shared], series[:shared])):
            texts = known[start : start + shared]
    texts += map(_sample_text, series[len(texts) :])
    object.__setattr__(incident, "_series", (series, texts))
    return texts


def _sample_text(entry: Any) -> str:
    """One sample as the encoder writes it; a ``[str, finite float]`` one without a call of the
    encoder, which costs more than the few characters (the same text: quoted ASCII, ``repr``)."""
    if type(entry) is list and len(entry) == 2:
        at, value = entry
        if type(at) is str and type(value) is float and math.isfinite(value):
            return f"[{encode_basestring_ascii(at)},{value!r}]"
    return _ENCODER.encode(entry)


def json_default(value: Any) -> Any:
    """What JSON lacks, as the state writes it: times as ISO 8601, other mappings as objects, sets
    sorted, NumPy scalars as numbers (detector details may hold them); anything else as text
    rather than failing the tick's transaction."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


_NUMBERS = frozenset({int, float, type(None)})
_NATIVE = frozenset({str, int, float, bool, type(None)})


def _strings(labels: Mapping[str, str]) -> bool:
    return type(labels) is dict and all(type(k) is str and type(v) is str for k, v in labels.items())


def _json_native(value: Any) -> bool:
    """Whether ``value`` is made of JSON's own types only (dicts keyed by strings, lists, strings,
    numbers, booleans, None), so it decodes to an equal value. Exact types: a subclass may not."""
    kind = type(value)
    if kind in _NATIVE:
        return True
    if kind is dict:
        return all(type(key) is str and _json_native(item) for key, item in value.items())
    if kind is list:
        kinds = set(map(type, value))
        if kinds <= _NATIVE:
            return True
        if kinds == {list}:  # a series' [time, value] samples, in C until one is not plain
            return set(map(type, itertools.chain.from_iterable(value))) <= _NATIVE or all(
                _json_native(item) for item in value
            )
        return all(_json_native(item) for item in value)
    return False


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=json_default)


def _number(value: Any) -> bool:
    return type(value) in _NUMBERS


def _ack_native(ack: Any) -> bool:
    return ack is None or _json_native(ack)


def _evidence_native(evidence: Any) -> bool:
    return all(_json_native(sample) for sample in evidence)


def _details_native(details: Any) -> bool:
    """``_json_native`` of the details; a series ``recorded`` wrote (``[ISO time, float]`` pairs
    alone) without walking its samples again."""
    series = details.get(SERIES_KEY) if type(details) is dict else None
    if type(series) is list and written(series):
        return all(
            type(key) is str and (key == SERIES_KEY or _json_native(item)) for key, item in details.items()
        )
    return _json_native(details)


_CHECKS: tuple[tuple[str, Callable[[Any], bool]], ...] = (
    ("value", _number),
    ("threshold", _number),
    ("group", _strings),
    ("labels", _strings),
    ("annotations", _strings),
    ("details", _details_native),
    ("evidence", _evidence_native),
    ("ack", _ack_native),
)


def _reads_back(incident: Incident) -> bool:
    """``Incident.reads_back``'s verdict, field by field: a field whose value is the very object it
    was in the snapshot this one evolved from keeps that snapshot's verdict (kept on it like the
    texts of ``_encode``), so a step that changed the value and details checks only those."""
    values = tuple(incident.__dict__[name] for name, _ in _CHECKS)
    memo: tuple[tuple[Any, ...], list[bool]] | None = incident.__dict__.get("_natives")
    verdicts = [
        memo[1][at] if memo is not None and memo[0][at] is value else check(value)
        for at, ((_, check), value) in enumerate(zip(_CHECKS, values, strict=True))
    ]
    object.__setattr__(incident, "_natives", (values, verdicts))
    return all(verdicts)


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> Any:
    """``value`` as fresh JSON-shaped containers (a detail is never shared with the snapshot).
    Exact types first: the ``Mapping`` check is an ABC's, slow on the many numbers and strings
    of the details written for every changed incident of every tick."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        return {key: _plain(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        if all(type(item) in _SCALARS for item in value):  # a series' [time, value] samples
            return list(value)
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
