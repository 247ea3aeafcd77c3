"""Templates: filters, per-channel escaping, sandbox, strictness, override resolution, check."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from jinja2 import TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError

from tests.notify import samples
from tests.notify.samples import NOW, SUMMARY
from watcher.filters import duration, number, percent
from watcher.incidents.model import Event, Incident, State
from watcher.notify.base import Notification
from watcher.rules.models import Rule
from watcher.templates import (
    NOTIFICATION_KEYS,
    RenderError,
    TemplateProblem,
    Templates,
)


def incident(**changes: object) -> Incident:
    """The notifier tests' sample incident, without its recorded series."""
    return samples.incident(**{"details": {}, **changes})


def notification(event: Event = Event.FIRING, *incidents: Incident) -> Notification:
    return Notification(
        id="n1",
        receiver="ml-slack",
        event=event,
        incidents=incidents or (incident(),),
        created_at=NOW,
        thread_key="f1|start",
    )


def rule(**fields: object) -> Rule:
    spec = {
        "name": "prediction-5xx",
        "source": "ml-api",
        "signal": {"ratio": {"of": {"status": {"gte": 500}}}},
    }
    return Rule.model_validate({**spec, "threshold": {"above": 0.05}, **fields})


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


# --------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("value", "text"), [(0.0712, "7.12%"), (0.05, "5%"), (0.123456, "12.35%"), (1.0, "100%"), (None, "n/a")]
)
def test_percent(value: float | None, text: str) -> None:
    assert percent(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1234567, "1,234,567"),
        (1234.56, "1,235"),
        (812.0, "812"),
        (12.345, "12.3"),
        (1.5, "1.5"),
        (0.01234, "0.0123"),
        (None, "n/a"),
        (float("nan"), "n/a"),
        (float("inf"), "∞"),
    ],
)
def test_number(value: float | None, text: str) -> None:
    assert number(value) == text


def test_number_with_explicit_digits() -> None:
    assert number(1234.5678, 2) == "1,234.57"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3905, "1h 5m"),
        (3601, "1h"),
        (timedelta(days=1, hours=2, minutes=3), "1d 2h"),
        (90, "1m 30s"),
        (45, "45s"),
        (0.25, "250ms"),
        (0, "0s"),
        (-120, "-2m"),
        (None, "n/a"),
    ],
)
def test_duration(value: float | timedelta | None, text: str) -> None:
    assert duration(value) == text


def test_since_is_relative_to_the_notification_time(tmp_path: Path) -> None:
    write(tmp_path, "since.j2", "{{ incident.fired_at | since }} / {{ now | since }} / {{ later | since }}")
    templates = Templates(tmp_path)
    context = {**templates.context(notification(), "console"), "later": NOW + timedelta(minutes=5)}
    assert templates.render_template("since.j2", "console", context) == "12m ago / just now / in 5m"


def test_measure_formats_ratio_rules_as_percent_and_others_as_numbers(tmp_path: Path) -> None:
    write(tmp_path, "m.j2", "{{ value | measure }} {{ threshold | measure }}")
    ratio = Templates(tmp_path, [rule()])
    count = Templates(tmp_path, [rule(signal="count")])
    context = ratio.context(notification(), "console")
    assert ratio.render_template("m.j2", "console", context) == "7.12% 5%"
    assert count.render_template("m.j2", "console", count.context(notification(), "console")) == "0.0712 0.05"


# --------------------------------------------------------------------------- context and annotations


def test_context_holds_the_documented_keys_and_rendered_annotations() -> None:
    context = Templates(rules=[rule()]).context(notification(), "slack")
    assert set(context) == NOTIFICATION_KEYS
    assert context["annotations"]["summary"] == "5xx rate 7.12% for model v2"
    assert context["incident"]["annotations"] == context["annotations"]
    assert context["counts"] == {"firing": 1, "resolved": 0, "total": 1}
    assert context["rule"] == "prediction-5xx"
    assert context["now"] == NOW


def test_a_broken_annotation_shows_its_source_instead_of_blocking_the_message() -> None:
    broken = incident(annotations={"summary": "rate {{ valu }}"})
    context = Templates().context(notification(Event.FIRING, broken), "console")
    assert context["annotations"]["summary"] == "rate {{ valu }} (template error: 'valu' is undefined)"


# --------------------------------------------------------------------------- escaping


def test_slack_escapes_log_data_in_labels_and_annotations_but_keeps_template_markup() -> None:
    hostile = incident(group={"model_version": "<!channel> & <@U123>"})
    text = Templates().render(notification(Event.FIRING, hostile), "slack")
    assert "<!channel>" not in text
    assert "`model_version=&lt;!channel&gt; &amp; &lt;@U123&gt;`" in text
    assert "for model &lt;!channel&gt; &amp; &lt;@U123&gt;*" in text  # the rendered summary
    assert "<https://runbooks.example.com/5xx|Runbook>" in text  # the template's own link markup


def test_slack_escaping_cannot_be_bypassed_by_concatenation(tmp_path: Path) -> None:
    write(tmp_path, "x.j2", "{{ '<' ~ group.model_version ~ '>' }} {{ group.model_version | upper }}")
    templates = Templates(tmp_path)
    context = templates.context(
        notification(Event.FIRING, incident(group={"model_version": "<!here>"})), "slack"
    )
    assert templates.render_template("x.j2", "slack", context) == "&lt;&lt;!here&gt;&gt; &lt;!HERE&gt;"


def test_console_shows_terminal_control_characters_instead_of_obeying_them() -> None:
    hostile = incident(group={"model_version": "v2\x1b[2J\rok"})
    text = Templates().render(notification(Event.FIRING, hostile), "console")
    assert "\x1b" not in text
    assert "model_version=v2\\x1b[2J\\x0dok" in text


# --------------------------------------------------------------------------- default templates


def test_default_console_templates_are_one_readable_line_per_incident() -> None:
    templates = Templates(rules=[rule()])
    firing = templates.render(notification(), "console")
    assert firing.splitlines() == [
        "FIRING critical prediction-5xx (model_version=v2): value=7.12% threshold=5%"
        " - 5xx rate 7.12% for model v2",
        "  runbook: https://runbooks.example.com/5xx",
    ]
    resolved = incident(state=State.RESOLVED, resolved_at=NOW - timedelta(minutes=2))
    assert templates.render(notification(Event.RESOLVED, resolved), "console") == (
        "RESOLVED critical prediction-5xx (model_version=v2) after 10m: last value=7.12%"
        " - 5xx rate 7.12% for model v2\n"
    )


def test_default_slack_resolved_template_says_how_long_it_fired() -> None:
    resolved = incident(state=State.RESOLVED, resolved_at=NOW - timedelta(minutes=2))
    text = Templates(rules=[rule()]).render(notification(Event.RESOLVED, resolved), "slack")
    assert text.startswith(":white_check_mark: *RESOLVED: 5xx rate 7.12% for model v2*")
    assert "Resolved after firing for *10m*" in text


@pytest.mark.parametrize(
    ("channel", "says"),
    [
        ("slack", "De-escalated to warning, still open"),
        ("console", "de-escalated to warning, still open"),
        ("sms", "DE-ESCALATED TO WARNING, STILL OPEN"),
        ("email", "De-escalated to warning, still open"),
        ("email_subject", "[DE-ESCALATED TO WARNING, STILL OPEN]"),
        ("email_html", "De-escalated to warning, still open"),
    ],
)
def test_an_incident_that_left_the_route_is_not_told_resolved(channel: str, says: str) -> None:
    # A severity change took it off this receiver's route (watcher.routing.leaving): it goes on.
    left = incident(severity="warning", severity_from="critical", left_route=True)
    text = Templates(rules=[rule()]).render(notification(Event.RESOLVED, left), channel)
    assert says in text
    assert "resolved" not in text.lower()


def test_default_templates_pass_check() -> None:
    assert Templates().check() == []


# --------------------------------------------------------------------------- strictness and sandbox


def test_undefined_variables_raise(tmp_path: Path) -> None:
    write(tmp_path, "t.j2", "{{ incident.nope }}")
    templates = Templates(tmp_path)
    with pytest.raises(UndefinedError, match="has no attribute 'nope'"):
        templates.render_template("t.j2", "console", templates.context(notification(), "console"))


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ incident.__class__.__init__.__globals__ }}",
        "{{ incidents.append(1) }}",
        "{{ group.update({'a': 1}) }}",
    ],
)
def test_sandbox_blocks_unsafe_access(tmp_path: Path, source: str) -> None:
    write(tmp_path, "t.j2", source)
    templates = Templates(tmp_path)
    with pytest.raises(SecurityError):
        templates.render_template("t.j2", "console", templates.context(notification(), "console"))


def test_unknown_channel_is_refused() -> None:
    with pytest.raises(
        ValueError,
        match=r"^unknown template channel 'pager' \(known: console, slack, email, email_subject, "
        r"email_html, sms, webhook\)$",
    ):
        Templates().template_names("pager", Event.FIRING)


# --------------------------------------------------------------------------- overrides


def test_override_order_is_rule_then_receiver_then_default(tmp_path: Path) -> None:
    write(tmp_path, "rule-firing.j2", "rule firing")
    write(tmp_path, "rule-slack.j2", "rule any")
    write(tmp_path, "receiver.j2", "receiver")
    overrides = {"slack.firing": "rule-firing.j2", "slack": "rule-slack.j2"}
    templates = Templates(tmp_path, [rule(templates=overrides)]).for_receiver({"firing": "receiver.j2"})
    assert templates.template_names("slack", Event.FIRING, "prediction-5xx") == [
        "rule-firing.j2",
        "rule-slack.j2",
        "receiver.j2",
        "slack/firing.md.j2",
    ]
    assert templates.render(notification(), "slack") == "rule firing"
    assert templates.render(notification(Event.UPDATE), "slack") == "rule any"
    receiver_only = Templates(tmp_path).for_receiver({"firing": "receiver.j2"})
    assert receiver_only.render(notification(), "slack") == "receiver"
    assert receiver_only.render(notification(Event.RESOLVED), "slack").startswith(":white_check_mark:")


def test_a_file_in_the_folder_replaces_the_default_of_the_same_name(tmp_path: Path) -> None:
    write(tmp_path, "console/firing.txt.j2", "custom {{ rule }}")
    assert Templates(tmp_path).render(notification(), "console") == "custom prediction-5xx"


def test_a_broken_or_missing_override_falls_back_to_the_default(tmp_path: Path) -> None:
    write(tmp_path, "broken.j2", "{{ nope }}")
    broken = Templates(tmp_path).for_receiver({"firing": "broken.j2"})
    assert broken.render(notification(), "console").startswith("FIRING critical")
    missing = Templates(tmp_path).for_receiver({"firing": "missing.j2"})
    assert missing.render(notification(), "console").startswith("FIRING critical")


def test_a_broken_default_is_a_render_error(tmp_path: Path) -> None:
    write(tmp_path, "console/firing.txt.j2", "{{ nope }}")
    with pytest.raises(RenderError, match=r"^template console/firing.txt.j2: 'nope' is undefined$"):
        Templates(tmp_path).render(notification(), "console")


# --------------------------------------------------------------------------- check


def test_check_reports_syntax_errors_with_their_line(tmp_path: Path) -> None:
    write(tmp_path, "bad.j2", "line one\n{% if value %}\nno end")
    assert [str(p) for p in Templates(tmp_path).check(["bad.j2"])] == [
        "bad.j2:3: Unexpected end of template. Jinja was looking for the following tags: "
        "'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'."
    ]


def test_check_reports_unknown_variables_with_a_suggestion(tmp_path: Path) -> None:
    write(tmp_path, "typo.j2", "{% for i in incidents %}{{ i.rule }}{% endfor %}\n{{ valeu }} {{ zzz }}")
    assert Templates(tmp_path).check(["typo.j2"]) == [
        TemplateProblem("typo.j2", 2, "unknown variable 'valeu' (did you mean 'value'?)"),
        TemplateProblem(
            "typo.j2", 2, "unknown variable 'zzz' (known: " + ", ".join(sorted(NOTIFICATION_KEYS)) + ")"
        ),
    ]


def test_check_reports_unknown_filters_and_missing_files(tmp_path: Path) -> None:
    write(tmp_path, "filter.j2", "{{ value | percnt }}")
    assert [str(p) for p in Templates(tmp_path).check(["filter.j2", "gone.j2"])] == [
        "filter.j2:1: No filter named 'percnt'.",
        "gone.j2: template file not found",
    ]


def test_check_rule_checks_annotations_against_the_annotation_context(tmp_path: Path) -> None:
    bad = rule(
        annotations={"summary": "{{ annotations.summary }}", "ok": SUMMARY}, templates={"slack": "x.j2"}
    )
    assert [str(p) for p in Templates(tmp_path).check_rule(bad)] == [
        "rule prediction-5xx annotation summary:1: unknown variable 'annotations' (known: ack, details, "
        "evidence, group, incident, labels, links, now, rule, rule_description, severity, signal, state, "
        "threshold, value)",
        "x.j2: template file not found",
    ]


def test_syntax_error_type_is_jinjas(tmp_path: Path) -> None:
    write(tmp_path, "bad.j2", "{{ ")
    with pytest.raises(TemplateSyntaxError):
        Templates(tmp_path).render_template("bad.j2", "console", {})
