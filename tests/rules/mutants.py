"""Mutated rule files and watcher.yaml: the fuzz test's inputs (``test_fuzz_files.py``) and the
longer run's (``bench/bench_fuzz_rules.py``).

A mutant is a shipped file with a few edits, each an ``Edit``: replace, insert, delete or repeat
a slice, or nest the text after a point in ``{not: …}``. Inserted text comes from ``TOKENS``:
the YAML and number forms that once crashed the loader or exhausted memory, and YAML's special
characters. Edits are plain tuples, so hypothesis can draw (and shrink) them and a seeded
``random.Random`` can too.
"""

from __future__ import annotations

import random
import shutil
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULE_SEEDS = sorted((ROOT / "rules").glob("*.yaml"))
CONFIG_SEEDS = [ROOT / "tests" / "rules" / "testdata" / "watcher.yaml", ROOT / "deploy" / "watcher.yaml"]

BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
)
TOKENS = (
    ":", " ", "\n", "\t", "-", "[", "]", "{", "}", ",", "#", "&", "*", "!", "|", ">", "'", '"', "?", "%",
    "@", "`", "\\", "\x00", "\x1e", "\x7f", "\ufeff", "é", "\U0001f525", "~", "null", "true", "yes",
    "&a ", "*a", "<<: *a\n", "<<: ", "&b [", "*b", "!!float ", "!!int ", "!!bool ", "!!binary ",
    "!!timestamp ", "!!set ", "!!map ", "!!seq ", "!!str ", "!!omap ", "!!python/object:os.system ",
    "!custom ", "99999999999999w", "1" + "0" * 5000, "0x", "0o17", "0b101", "1_000", "1:30:00", ".nan",
    ".inf", "-.inf", "1e999", "-0", "''", "\"\\x00\"", "---\n", "...\n", "%YAML 1.1\n", "{not: ",
    "[[[[[[[[", "]]]]]]]]", "baseline: ''", "baseline: .", "baseline: /dev/null", "${HOME}", "${X:-}",
    "5mins", "0s", "-1", "1.5", "500ms", "3650d", "3651d", "*", "rules:\n  - ", BOMB + "\n",
)  # fmt: skip

Edit = tuple[int, float, int, int]
"""(kind, where as a share of the text, a token index, a length)"""
KINDS = 5


def mutate(text: str, edits: Sequence[Edit]) -> str:
    """``text`` with each edit applied in turn."""
    for kind, where, token, length in edits:
        at = int(where * len(text))
        insert = TOKENS[token % len(TOKENS)]
        if kind == 0:  # replace
            text = text[:at] + insert + text[at + len(insert) :]
        elif kind == 1:  # insert
            text = text[:at] + insert + text[at:]
        elif kind == 2:  # delete
            text = text[:at] + text[at + length :]
        elif kind == 3:  # repeat a slice (a line twice: duplicate keys, longer lists)
            text = text[:at] + text[at : at + length] * 2 + text[at + length :]
        else:  # nest what follows, in flow style
            depth = 1 + length % 80
            text = text[:at] + "{not: " * depth + text[at:].replace("\n", " ") + "}" * depth + "\n"
    return text


def random_edits(rng: random.Random, count: int) -> list[Edit]:
    return [
        (rng.randrange(KINDS), rng.random(), rng.randrange(len(TOKENS)), rng.randrange(1, 120))
        for _ in range(count)
    ]


def workdir(folder: Path) -> Path:
    """A folder for mutants, with the baselines the shipped drift and validity rules read."""
    shutil.copytree(ROOT / "rules" / "baselines", folder / "baselines", dirs_exist_ok=True)
    return folder


@dataclass(frozen=True)
class Cost:
    seconds: float
    peak_bytes: int


def measured(run: Callable[[], object]) -> Cost:
    """The wall time and the peak of Python allocations (tracemalloc) of one call."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        run()
    finally:
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return Cost(seconds, peak)
