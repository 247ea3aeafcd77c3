"""An incident's JSON as the state stores it: ``Incident.encoded`` is ``to_json``'s text, made once
per snapshot, and a snapshot the state store wrote is read back as its JSON gives it, whichever
Python types the detector put in its details."""

import json
import math
from dataclasses import FrozenInstanceError, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.incidents import model
from watcher.incidents.encoding import dumps, notification_from_json, notification_text, notification_to_json
from watcher.incidents.model import OPEN, Event, Incident, State, fingerprint
from watcher.incidents.series import MAX_SAMPLES, recorded
from watcher.incidents.state import StateStore
from watcher.notify.base import Notification

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

_json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
_json_scalars |= st.floats(allow_nan=False, allow_infinity=False)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)
_odd = st.sampled_from(
    [
        (1, 2),
        {"b", "a"},
        T0,
        Path("/x"),
        MappingProxyType({"k": 1}),
        np.float64(0.25),
        np.int64(3),
        {1: "int key"},
        [("t", 1.0)],
    ]
)


def incident(**fields: Any) -> Incident:
    group = {"model_version": "v3"}
    values: dict[str, Any] = {
        "fingerprint": fingerprint("api-5xx", group),
        "rule": "api-5xx",
        "group": group,
        "labels": {"rule": "api-5xx", "model_version": "v3"},
        "annotations": {"summary": "5xx {{ value }}"},
        "severity": "critical",
        "state": State.FIRING,
        "value": 0.2,
        "threshold": 0.05,
        "started_at": T0,
        "fired_at": T0,
        "last_evaluated_at": T0 + timedelta(minutes=3),
        "flips": (T0, T0 + timedelta(minutes=1)),
        "details": {"count": 1000, "series": [[T0.isoformat(), 0.2]]},
        "evidence": ({"status": 503, "path": "/v1/predict"},),
    }
    return Incident(**(values | fields))


def decoded(snapshot: Incident) -> Incident:
    return Incident.from_json(json.loads(snapshot.encoded()))


@settings(max_examples=200, deadline=None)
@given(plain=st.dictionaries(st.text(max_size=6), _json, max_size=5), odd=st.lists(_odd, max_size=2))
def test_the_text_is_to_json_as_json_and_a_plain_snapshot_reads_back_equal(
    plain: dict[str, Any], odd: list[Any]
) -> None:
    details = plain | {f"odd{i}": value for i, value in enumerate(odd)}
    snapshot = incident(details=details, evidence=({"seen": details},))
    assert snapshot.encoded() == dumps(snapshot.to_json())
    assert snapshot.reads_back() == (not odd)  # an odd value anywhere: the reader decodes the text
    if not odd:
        assert decoded(snapshot) == snapshot


def test_odd_values_in_labels_numbers_or_acks_are_decoded_not_taken_as_written() -> None:
    for odd in (
        incident(value=np.float64(0.2)),
        incident(group=MappingProxyType({"model_version": "v3"})),
        incident(labels={"rule": "api-5xx", "attempt": 3}),  # type: ignore[dict-item]
        incident(ack={"by": "ana", "at": T0}),
        incident(evidence=({"at": T0},)),
    ):
        assert not odd.reads_back()
        assert odd.encoded() == dumps(odd.to_json())


def test_a_changed_snapshot_is_encoded_afresh() -> None:
    first = incident()
    later = first.evolve(value=0.5)
    assert json.loads(first.encoded())["value"] == 0.2
    assert json.loads(later.encoded())["value"] == 0.5
    assert first.encoded() is first.encoded()  # once per snapshot


def test_the_store_reads_back_what_json_keeps_of_a_written_snapshot(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite")
    odd = incident(details={"bins": (1, 2), "at": T0})
    plain = incident(
        group={"model_version": "v4"}, fingerprint=fingerprint("api-5xx", {"model_version": "v4"})
    )
    store.incidents(states=OPEN)
    store.commit([odd, plain])
    read = {i.fingerprint: i for i in store.incidents(states=OPEN)}
    assert read[odd.fingerprint].details == {"bins": [1, 2], "at": T0.isoformat()}
    assert read[plain.fingerprint] == plain  # taken as written, not decoded again
    assert read[plain.fingerprint] is plain
    assert store.incidents(states=OPEN) == list(read.values())
    store.close()


def test_a_nan_value_reads_back_as_nan(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite")
    store.commit([incident(value=math.nan, details={"score": math.nan})])
    (read,) = store.incidents(states=OPEN)
    assert math.isnan(read.value or 0.0)
    assert math.isnan(read.details["score"])
    store.close()


def test_an_evolved_snapshot_is_the_one_replace_makes_and_stays_frozen() -> None:
    first = incident()
    first.encoded()
    changes: dict[str, Any] = {
        "value": 0.5,
        "state": State.RESOLVED,
        "resolved_at": T0 + timedelta(minutes=5),
        "details": {"count": 3},
        "flips": (T0,),
        "note": "cleared",
    }
    for name, value in changes.items():
        evolved = first.evolve(**{name: value})
        assert evolved == replace(first, **{name: value})
        assert json.loads(evolved.encoded()) == json.loads(dumps(replace(first, **{name: value}).to_json()))
    assert first.evolve(**changes) == replace(first, **changes)
    assert first.value == 0.2  # the snapshot evolved from is as it was
    with pytest.raises(TypeError, match="nope"):
        first.evolve(nope=1)
    with pytest.raises(FrozenInstanceError):
        first.evolve(value=1.0).value = 2.0  # type: ignore[misc]


def test_a_notifications_stored_text_is_its_json_with_each_incident_encoded_once() -> None:
    one, other = incident(), incident(details={"bins": (1, 2), "at": T0}, note='say "hi"')
    for thread_ref, labels in ((None, {}), ({"ts": "1.2", "channel": "C1"}, {"rule": "api-5xx"})):
        sent = Notification(
            id="n1",
            receiver="slack",
            event=Event.FIRING,
            incidents=(one, other),
            created_at=T0,
            thread_key="g|t",
            thread_ref=thread_ref,
            group_labels=labels,
        )
        assert notification_text(sent) == dumps(notification_to_json(sent))
        assert notification_from_json(json.loads(notification_text(sent))).incidents[0] == one


def _stepped(snapshot: Incident, values: list[float], start: datetime) -> list[Incident]:
    """``snapshot`` evaluated once a minute from ``start``, each step's snapshot as the state
    machine makes it (the detector's fresh details, the series carried on by ``recorded``)."""
    snapshots = []
    for minute, value in enumerate(values):
        at = start + timedelta(minutes=minute)
        details = recorded({"count": minute, "bins": [1, 2]}, snapshot.details, value, at)
        snapshot = snapshot.evolve(details=details, value=value, last_evaluated_at=at)
        snapshots.append(snapshot)
    return snapshots


def test_an_open_incidents_text_stays_to_json_as_its_series_grows_slides_and_is_replaced() -> None:
    odd_numbers = [0.1, -0.0, 1e300, 5e-324, 3.0, 2.5e-7, 0.30000000000000004]
    values = [odd_numbers[minute % len(odd_numbers)] for minute in range(MAX_SAMPLES + 20)]
    snapshots = _stepped(incident(), values, T0)
    # the same evaluation times again (a replayed tick): the later samples are replaced
    snapshots += _stepped(snapshots[-1], [7.0, 8.0], T0 + timedelta(minutes=MAX_SAMPLES))
    for snapshot in snapshots:
        assert snapshot.encoded() == dumps(snapshot.to_json())
    assert len(json.loads(snapshots[-1].encoded())["details"]["series"]) == MAX_SAMPLES - 18


def test_each_evaluation_encodes_only_its_new_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """As a tick does: each snapshot written (encoded) before the next evaluation steps it."""
    encoded: list[Any] = []
    original = model._sample_text
    monkeypatch.setattr(model, "_sample_text", lambda entry: encoded.append(entry) or original(entry))
    snapshot = incident()
    for minute in range(MAX_SAMPLES + 5):
        (snapshot,) = _stepped(snapshot, [0.1 * minute], T0 + timedelta(minutes=minute))
        assert snapshot.encoded() == dumps(snapshot.to_json())
    assert len(encoded) == MAX_SAMPLES + 5  # one new sample each, not the whole series again
    decoded(snapshot).encoded()  # read from its text: no earlier texts to reuse
    assert len(encoded) == MAX_SAMPLES + 5 + MAX_SAMPLES


def test_a_detail_that_reads_like_the_series_placeholder_changes_nothing() -> None:
    series = [[T0.isoformat(), 0.5]]
    for details in (
        {"series": series, "said": model._SERIES_MARK},
        {model._SERIES_MARK: 1, "series": series},
        {"series": (("a", 1),)},  # not a list: encoded as it is
        {"series": [["not a time", "x"], {"odd": T0}, T0]},
        {"series": series, "after": [1]},  # not last: written where it is
    ):
        snapshot = incident(details=details)
        assert snapshot.encoded() == dumps(snapshot.to_json())


def test_a_step_encodes_only_the_fields_it_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    """An open incident's write at every evaluation: its times, labels and the rest are the
    snapshot's before, their text reused; the text is still ``to_json``'s."""
    defaulted: list[Any] = []
    original = model.json_default
    monkeypatch.setattr(model, "json_default", lambda value: defaulted.append(value) or original(value))
    first = incident(ack={"by": "ana"})
    assert first.encoded() == dumps(first.to_json())
    assert len(defaulted) == 5  # started_at, fired_at, last_evaluated_at and the two flips
    later = T0 + timedelta(minutes=4)
    stepped = first.evolve(value=0.5, last_evaluated_at=later, details={"count": 2})
    assert stepped.encoded() == dumps(stepped.to_json())
    assert defaulted[5:] == [later]  # the one time that changed
    assert json.loads(stepped.encoded())["last_evaluated_at"] == later.isoformat()
    resolved = stepped.evolve(state=State.RESOLVED, resolved_at=later)
    assert resolved.encoded() == dumps(resolved.to_json())
    assert json.loads(resolved.encoded())["state"] == "resolved"


def test_a_step_judges_again_only_the_fields_it_changed() -> None:
    odd = incident(details={"bins": (1, 2)})
    assert not odd.reads_back()
    assert not odd.evolve(value=0.5).reads_back()  # the odd details are still there
    fixed = odd.evolve(details={"bins": [1, 2]})
    assert fixed.reads_back()
    assert decoded(fixed) == fixed
    assert not fixed.evolve(evidence=({"at": T0},)).reads_back()
    assert not incident(details={"series": [(T0.isoformat(), 0.5)]}).reads_back()  # not as recorded writes it
    (stepped,) = _stepped(fixed, [0.5], T0 + timedelta(minutes=5))
    assert stepped.reads_back()
    assert decoded(stepped) == stepped
