"""``watcher baseline build`` writes no empty or partial profile: no rows in the range, a source
without any document, a feature never present. Each is refused with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watcher.cli import main


def _config(folder: Path, lines: list[str]) -> Path:
    (folder / "logs").mkdir()
    (folder / "logs" / "a.jsonl").write_text("".join(line + "\n" for line in lines))
    config = folder / "watcher.yaml"
    config.write_text("sources:\n  demo: {store: embedded, path: logs.duckdb, ingest: ['logs/*.jsonl']}\n")
    return config


LINES = [
    json.dumps({"@timestamp": f"2026-01-04T0{i}:00:00Z", "service": "api", "features": {"age": 30 + i}})
    for i in range(5)
]
DAY = ["--start", "2026-01-04T00:00Z", "--end", "2026-01-05T00:00Z"]


def build(config: Path, out: Path, *args: str) -> int:
    return main(["baseline", "build", "-c", str(config), "--source", "demo", *args, "-o", str(out)])


@pytest.mark.parametrize(
    ("lines", "args", "code", "message"),
    [
        (
            LINES,
            ["--start", "2026-02-01T00:00Z", "--end", "2026-02-02T00:00Z", "--features", "features.age"],
            1,
            "no rows in source 'demo' from 2026-02-01T00:00:00Z to 2026-02-02T00:00:00Z: nothing to profile",
        ),
        (
            LINES,
            [*DAY, "--where", "{service: web}", "--features", "features.age"],
            1,
            "no rows in source 'demo' from 2026-01-04T00:00:00Z to 2026-01-05T00:00:00Z matching "
            "{service: web}: nothing to profile",
        ),
        (
            [],
            [*DAY, "--features", "features.age"],
            2,
            "source 'demo' holds no documents at all (time field '@timestamp'): nothing to profile",
        ),
        (
            LINES,
            [*DAY, "--features", "features.age,features.agee,age"],
            1,
            "no value of 'features.agee', 'age' in any of the 5 rows of source 'demo' from "
            "2026-01-04T00:00:00Z to 2026-01-05T00:00:00Z: check the names (nested fields use dots, "
            "e.g. features.age)",
        ),
    ],
    ids=["empty range", "filter selects nothing", "no data at all", "feature never present"],
)
def test_an_empty_or_partial_profile_from_a_source_is_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    lines: list[str],
    args: list[str],
    code: int,
    message: str,
) -> None:
    out = tmp_path / "b.json"
    assert build(_config(tmp_path, lines), out, *args) == code
    assert capsys.readouterr().err == f"watcher baseline: {message}; no profile written\n"
    assert not out.exists()


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("age,country\n", "no rows in {file}: nothing to profile"),
        ("age,country\n,DE\n,FR\n", "no value of 'age' in any of the 2 rows of {file}: check the names"),
    ],
    ids=["no rows", "a column without values"],
)
def test_an_empty_or_partial_profile_from_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], csv: str, message: str
) -> None:
    train, out = tmp_path / "train.csv", tmp_path / "b.json"
    train.write_text(csv)
    assert main(["baseline", "build", "--from-file", str(train), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("watcher baseline: " + message.format(file=train))
    assert err.endswith("; no profile written\n")
    assert not out.exists()


def test_a_complete_profile_is_still_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b.json"
    assert build(_config(tmp_path, LINES), out, *DAY, "--features", "features.age") == 0
    assert capsys.readouterr().out == f"wrote {out}: 5 rows, 1 features: features.age (numeric)\n"
