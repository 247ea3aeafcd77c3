"""SMS segments: how many parts a text costs, and cutting a text to a number of parts.

An SMS is sent in GSM-7 when every character is in the GSM 03.38 alphabet (160 septets in one
part; 153 per part once the text is split, the rest carries the reassembly header), and in UCS-2
otherwise (70 UTF-16 units in one part, 67 per part). One character outside GSM-7 (a curly quote
from a log line) switches the whole text to UCS-2 and so more than halves what a part holds; so
``smart`` first replaces common look-alikes with their GSM-7 twins, as Twilio's Smart Encoding does.

Characters of the GSM-7 extension table (``{ } [ ] ~ ^ | \\ €``, form feed) take two septets, and
an astral character (an emoji) two UTF-16 units; neither is split across parts, as phones and
carriers do not split them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")
SINGLE = {"GSM-7": 160, "UCS-2": 70}  # units in a text sent as one part
MULTI = {"GSM-7": 153, "UCS-2": 67}  # units per part of a split text
MARKER = {"GSM-7": "...", "UCS-2": "…"}  # shows that a text was cut, in its own encoding
WORD_SLACK = 20  # characters given up at most to cut at a space rather than inside a word

# Look-alikes that would force UCS-2, and their GSM-7 twins.
_SMART = str.maketrans(
    {
        "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "`": "'",
        "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"', "«": '"', "»": '"',
        "–": "-", "—": "-", "―": "-", "−": "-", "‐": "-", "‑": "-",
        "…": "...", "•": "-", "·": "-", "×": "x",
        "\u00a0": " ", "\u2002": " ", "\u2003": " ", "\u2009": " ", "\u202f": " ", "\t": " ",
        "\u200b": "", "\ufeff": "",
    }
)  # fmt: skip


def smart(text: str) -> str:
    """``text`` with typographic look-alikes (curly quotes, dashes, ellipsis, odd spaces) replaced
    by GSM-7 characters. Other characters are kept; if any is outside GSM-7 the text is UCS-2."""
    return text.translate(_SMART)


def encoding(text: str) -> Encoding:
    """GSM-7 when every character is in the GSM 03.38 alphabet or its extension table."""
    return "GSM-7" if all(c in GSM_BASIC or c in GSM_EXTENSION for c in text) else "UCS-2"


def segments(text: str) -> int:
    """How many SMS parts ``text`` is sent as (1 for an empty text)."""
    kind = encoding(text)
    return _parts(_costs(text, kind), kind)


def fit(text: str, max_segments: int) -> str:
    """``text`` if it fits in ``max_segments`` parts, else its longest prefix that fits with the
    marker (``...`` or ``…``) appended, cut at a space when one is near. Trailing spaces before
    the marker are dropped."""
    if max_segments < 1:
        raise ValueError(f"max_segments must be at least 1, got {max_segments}")
    if segments(text) <= max_segments:
        return text
    low, high = 0, len(text)  # invariant: the prefix of length low fits, high does not
    while high - low > 1:
        middle = (low + high) // 2
        if segments(_cut(text, middle)) <= max_segments:
            low = middle
        else:
            high = middle
    # Rather end on a whole word when one ends near the cut.
    space = text.rfind(" ", max(0, low - WORD_SLACK), low + 1)
    return _cut(text, space if space > 0 else low)


def _cut(text: str, length: int) -> str:
    prefix = text[:length].rstrip()
    return prefix + MARKER[encoding(prefix)]


def _costs(text: str, kind: Encoding) -> list[int]:
    if kind == "GSM-7":
        return [2 if c in GSM_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def _parts(costs: Iterable[int], kind: Encoding) -> int:
    costs = list(costs)
    if sum(costs) <= SINGLE[kind]:
        return 1
    parts, room = 1, MULTI[kind]
    for cost in costs:
        if cost > room:  # an escape pair or a surrogate pair is never split across parts
            parts, room = parts + 1, MULTI[kind]
        room -= cost
    return parts
