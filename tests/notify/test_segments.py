"""SMS segment counting (GSM-7 / UCS-2) and cutting a text to a number of segments."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.notify.segments import encoding, fit, segments, smart


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters take two septets
        ("€" * 81, 2),
        ("ж" * 70, 1),  # one Cyrillic letter makes the text UCS-2
        ("ж" * 71, 2),
        ("ж" * 134, 2),
        ("ж" * 135, 3),
        ("🔥" * 35, 1),  # an emoji is two UTF-16 units
        ("🔥" * 36, 2),
    ],
)
def test_segments(text: str, expected: int) -> None:
    assert segments(text) == expected


def test_an_escape_pair_is_never_split_across_segments() -> None:
    # 152 septets, then '€' (2 septets) does not fit in the first part's 153 and starts the second.
    assert segments("a" * 152 + "€" + "a" * 152) == 3
    assert segments("a" * 151 + "€" + "a" * 153) == 2


def test_encoding() -> None:
    assert encoding("Grüße from Zürich: 5% > 3% @ 12:00 {ok}") == "GSM-7"
    assert encoding("“quoted”") == "UCS-2"
    assert encoding(smart("“quoted” – it’s 5… ")) == "GSM-7"
    assert smart("“quoted” – it’s 5…") == '"quoted" - it\'s 5...'


def test_fit_keeps_a_text_that_fits() -> None:
    assert fit("a" * 306, 2) == "a" * 306


def test_fit_cuts_at_a_word_with_a_gsm_marker() -> None:
    text = "alert " * 100
    cut = fit(text, 2)
    assert cut.endswith("alert...")
    assert segments(cut) == 2
    assert len(cut) >= 306 - 20


def test_fit_uses_the_ucs2_marker_for_ucs2_text() -> None:
    cut = fit("ж" * 400, 1)
    assert cut == "ж" * 69 + "…"


def test_fit_can_fall_back_to_gsm7_when_the_ucs2_character_is_cut_away() -> None:
    cut = fit("a" * 300 + "ж", 1)
    assert cut == "a" * 157 + "..."


def test_fit_refuses_zero_segments() -> None:
    with pytest.raises(ValueError, match=r"^max_segments must be at least 1, got 0$"):
        fit("a", 0)


@given(st.text(max_size=600), st.integers(min_value=1, max_value=4))
def test_fit_always_fits(text: str, parts: int) -> None:
    cut = fit(text, parts)
    assert segments(cut) <= parts
    assert cut == text or cut.endswith(("...", "…"))
