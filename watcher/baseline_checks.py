"""What ``watcher baseline build`` refuses to write: a profile of no rows, one with a feature
that has no value in any row, or a seasonal profile with a slot of too few rows. Each would be
committed next to the rules and make every drift or validity check against it fire (or never
fire) for a reason nobody sees: a thin slot's shares are noise, and a window in it drifts.
"""

from __future__ import annotations

from datetime import datetime

from watcher.baseline import Profile
from watcher.query import Count, Query, Window
from watcher.store.base import LogStore

NO_DATA = 2
"""Exit code when the source holds nothing at all (an environment problem: nothing ingested)."""
INCOMPLETE = 1
"""Exit code when the range, filter or feature names select nothing (the command's input)."""
SLOTS_NAMED = 5

_ALL_TIME = Window(
    datetime.fromisoformat("1970-01-01T00:00:00+00:00"), datetime.fromisoformat("2200-01-01T00:00:00+00:00")
)


class ProfileRefusedError(ValueError):
    """The profile would be empty or partial; ``code`` is the command's exit code."""

    def __init__(self, message: str, code: int = INCOMPLETE) -> None:
        super().__init__(message)
        self.code = code


def check_profile(profile: Profile, origin: str) -> None:
    """Refuse a profile of no rows or with features never present; ``origin`` names where the
    rows came from (a file, or a source with its range and filter)."""
    if not profile.rows:
        raise ProfileRefusedError(f"no rows in {origin}: nothing to profile")
    absent = [name for name, feature in profile.features.items() if not feature.count]
    if absent:
        names = ", ".join(repr(name) for name in absent)
        raise ProfileRefusedError(
            f"no value of {names} in any of the {profile.rows:,} rows of {origin}: check the names "
            "(nested fields use dots, e.g. features.age)"
        )


def check_slots(profile: Profile, origin: str, min_rows: int) -> None:
    """Refuse a seasonal profile with a slot of fewer than ``min_rows`` rows, naming the thinnest."""
    if profile.slots is None:
        return
    thin = sorted((slot.rows, name) for name, slot in profile.slots.items() if slot.rows < min_rows)
    if not thin:
        return
    named = ", ".join(f"{name!r} ({rows:,})" for rows, name in thin[:SLOTS_NAMED])
    more = f" and {len(thin) - SLOTS_NAMED} more" if len(thin) > SLOTS_NAMED else ""
    wider = "a longer range (several weeks)" if profile.by == "weekday_hour" else "a longer range"
    raise ProfileRefusedError(
        f"{len(thin)} of the {len(profile.slots)} slots of --by {profile.by} have fewer than "
        f"{min_rows:,} rows in {origin}: {named}{more}; use {wider}, "
        + ("--by hour, " if profile.by == "weekday_hour" else "")
        + "or a lower --min-slot-rows"
    )


def check_source_has_data(store: LogStore, source: str, time_field: str) -> None:
    """Refuse with ``NO_DATA`` when ``source`` holds no document at any time."""
    (result,) = store.evaluate([Query("baseline-any", _ALL_TIME, {"n": Count()})])
    count = result.groups[0].values.get("n") if result.error is None and result.groups else None
    if count == 0:
        raise ProfileRefusedError(
            f"source {source!r} holds no documents at all (time field {time_field!r}): nothing to profile",
            NO_DATA,
        )
