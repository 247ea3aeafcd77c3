"""``watcher render``: what each channel would send for a shipped rule, from a sample incident."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email import message_from_string, policy
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.cli.render import sample_incident
from watcher.incidents.model import Event, State
from watcher.incidents.series import samples
from watcher.notify.segments import segments
from watcher.rules.loader import load_config, load_rules

ROOT = Path(__file__).parents[2]
CONFIG = str(ROOT / "watcher.yaml")
RULE = "prediction-5xx-rate"


def render(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["render", "--config", CONFIG, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_slack_is_the_block_kit_message(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = render(capsys, RULE, "--group", "model_version=v3")
    assert code == 0
    message = json.loads(out)
    assert message["channel"] == "#alerts"
    assert message["text"] == ":red_circle: *CRITICAL: 5xx rate 7.1% for model v3*"
    assert message["attachments"][0]["color"] == "#d72b3f"
    [section] = message["attachments"][0]["blocks"]
    assert section["text"]["text"].startswith("*prediction-5xx-rate* · `model_version=v3`\nValue *7.1%* vs")


def test_the_chart_is_written_with_o(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    chart = tmp_path / "chart.png"
    code, _, err = render(capsys, RULE, "-o", str(chart))
    assert code == 0
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert err.strip() == f"chart written to {chart}"


def test_email_is_the_mime_message(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = render(capsys, RULE, "--channel", "email", "--event", "resolved")
    assert code == 0
    message = message_from_string(out, policy=policy.default)
    assert message["Subject"] == "[RESOLVED] prediction-5xx-rate (model_version=example) after 12m"
    assert message["To"] == "oncall@example.com"
    assert [part.get_content_type() for part in message.walk()] == [
        "multipart/alternative",
        "text/plain",
        "multipart/related",
        "text/html",
        "image/png",
    ]


def test_sms_is_the_text_and_its_segments(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = render(capsys, RULE, "--channel", "sms")
    assert code == 0
    assert out.strip() == (
        "CRITICAL prediction-5xx-rate: 5xx rate 7.1% for model example (threshold 5%) "
        "https://runbooks.example.com/prediction-5xx"
    )
    assert segments(out.strip()) == 1
    assert err.strip() == "(1 SMS segment(s), GSM-7)"


def test_acked_shows_the_ack_as_later_notifications_do(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = render(capsys, RULE, "--event", "update", "--acked")
    assert code == 0
    assert json.loads(out)["text"].startswith(":eyes: *Acknowledged by ")
    code, out, _ = render(capsys, RULE, "--channel", "webhook", "--acked")
    assert json.loads(out)["incidents"][0]["ack"]["message"] == "looking into it"
    code, out, _ = render(capsys, RULE, "--channel", "email", "--acked")
    assert "Acknowledged by " in out
    assert ": looking into it" in out


def test_webhook_is_the_json_body(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = render(capsys, RULE, "--channel", "webhook", "--event", "update")
    assert code == 0
    body = json.loads(out)
    assert (body["version"], body["event"]) == (1, "update")
    assert body["incidents"][0]["threshold"] == 0.05


def test_a_configured_receiver_is_used(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = render(capsys, RULE, "--receiver", "console", "--channel", "slack")
    assert code == 0
    assert out.startswith(
        "FIRING critical prediction-5xx-rate (model_version=example): value=7.1% threshold=5%"
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["nope"], 1, "watcher render: no rule named 'nope' (rules: "),
        (
            [RULE, "--group", "model_version"],
            2,
            "watcher render: --group takes LABEL=VALUE, got 'model_version'",
        ),
        ([RULE, "--receiver", "pager"], 2, "watcher render: no receiver named 'pager' (receivers: console)"),
    ],
)
def test_mistakes(capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str) -> None:
    got, _, err = render(capsys, *args)
    assert got == code
    assert err.startswith(message)


def test_every_shipped_rule_has_a_plausible_sample() -> None:
    config = load_config(ROOT / "watcher.yaml")
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    for rule in load_rules(list(config.rules), config).rules:
        firing = sample_incident(rule, Event.FIRING, now, dict.fromkeys(rule.group_by, "x"))
        resolved = sample_incident(rule, Event.RESOLVED, now, {})
        assert firing.state is State.FIRING
        assert resolved.state is State.RESOLVED
        assert firing.value != resolved.value
        points = samples(firing.details)
        assert len(points) == 120
        assert points[-1][0] == now


def test_the_sample_shows_evidence_as_the_rule_would(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    shipped = (ROOT / "rules" / f"{RULE}.yaml").read_text()
    (rules / "shown.yaml").write_text(shipped + "evidence: {size: 2, fields: [status, trace_id, session]}\n")
    (rules / "bare.yaml").write_text(shipped.replace(RULE, "bare") + "evidence: false\n")
    config = tmp_path / "watcher.yaml"
    config.write_text(
        (ROOT / "watcher.yaml")
        .read_text()
        .replace("rules: [rules]", "rules: [rules]\nevidence: {redact: [session]}")
    )

    code = main(["render", "--config", str(config), RULE, "--channel", "console"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert out.splitlines()[-2:] == [  # the of filter's status, watcher.yaml's redaction
        "  log: status=500 trace_id=<trace_id> session=[redacted]",
        "  log: status=500 trace_id=<trace_id> session=[redacted]",
    ]
    assert main(["render", "--config", str(config), "bare", "--channel", "console"]) == 0
    assert "log:" not in capsys.readouterr().out


TREND_RULES = {
    "quota-forecast": "signal: {ratio: {of: {status: 429}}}\nwindow: 10m\n"
    "forecast: {above: 0.8, history: 6h, horizon: 1h}\n"
    "annotations: {summary: 'throttled {{ threshold | percent }} by {{ details.crossing_at | utc }}'}\n",
    "v4-canary": "signal: {ratio: {of: {status: {gte: 500}}}}\n"
    "canary: {field: model_version, baseline: v3, candidate: v4, margin: 0.01}\n",
}


@pytest.mark.parametrize(
    ("rule", "channel", "expected"),
    [
        ("quota-forecast", "console", "  Forecast (linear) crosses 80% at 2026-"),
        ("quota-forecast", "sms", " by "),
        ("quota-forecast", "console", " - throttled 80% by 2026-"),  # an annotation reads the crossing
        ("quota-forecast", "email", "Forecast (linear) crosses 80% at 2026-"),
        ("quota-forecast", "slack", ":crystal_ball: Forecast (linear) crosses 80% at 2026-"),
        (
            "v4-canary",
            "console",
            "  Canary model_version: v4 1.6% vs v3 0.6% (two-proportion z-test, p=0.0004)",
        ),
        ("v4-canary", "slack", "Canary model_version: v4 1.6% vs v3 0.6% (two-proportion z-test, p=0.0004)"),
        ("v4-canary", "email", "Canary model_version: v4 1.6% vs v3 0.6% (two-proportion z-test, p=0.0004)"),
        ("v4-canary", "webhook", '"baseline":"v3","candidate":"v4","p_value":0.0004'),
        ("quota-forecast", "webhook", '"crossing_at":"2026-'),
    ],
)
def test_forecast_and_canary_tell_what_they_found(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, rule: str, channel: str, expected: str
) -> None:
    """The predicted crossing time; baseline against candidate with the test's p-value."""
    rules = tmp_path / "rules"
    rules.mkdir()
    for name, spec in TREND_RULES.items():
        (rules / f"{name}.yaml").write_text(f"name: {name}\nsource: demo\n{spec}")
    config = tmp_path / "watcher.yaml"
    config.write_text(
        (ROOT / "watcher.yaml")
        .read_text()
        .replace("templates: templates", f"templates: {ROOT / 'templates'}")
    )
    assert main(["render", "--config", str(config), rule, "--channel", channel]) == 0
    assert expected in capsys.readouterr().out
