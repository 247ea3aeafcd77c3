from datetime import timedelta

import pytest

from watcher.duration import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("250ms", timedelta(milliseconds=250)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_parses_the_units_users_write(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["5mins", "5", "m5", "", "1h 30m", "-5m"])
def test_rejects_bad_durations_with_a_hint(text: str) -> None:
    with pytest.raises(ValueError, match="use a number and a unit") as info:
        parse_duration(text)
    assert repr(text) in str(info.value)


def test_formats_back_to_the_short_form() -> None:
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m"
    assert format_duration(timedelta(seconds=45)) == "45s"
    assert format_duration(timedelta(milliseconds=250)) == "250ms"
