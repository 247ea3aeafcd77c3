"""The one label matcher: syntax, semantics (missing label = ""), errors, and its use in watcher.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.routing.matchers import Matcher, Op, matches_all, parse_matchers
from watcher.rules.loader import ConfigError, load_config

TESTDATA = Path(__file__).parent / "testdata"


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ("severity=critical", "severity", Op.EQUAL, "critical"),
        ("team!=web", "team", Op.NOT_EQUAL, "web"),
        ("model=~v[23]", "model", Op.REGEX, "v[23]"),
        ("env!~dev|test", "env", Op.NOT_REGEX, "dev|test"),
        ('summary="a b=c"', "summary", Op.EQUAL, "a b=c"),
        (" team = ml ", "team", Op.EQUAL, "ml"),
        ("team=", "team", Op.EQUAL, ""),
    ],
)
def test_parse(text: str, name: str, op: Op, value: str) -> None:
    assert Matcher.parse(text) == Matcher(name, op, value)


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        ("severity=critical", {"severity": "critical"}, True),
        ("severity=critical", {"severity": "warning"}, False),
        ("team!=web", {}, True),  # a missing label is "", so != matches it
        ('team=""', {}, True),
        ("model=~v[23]", {"model": "v3"}, True),
        ("model=~v[23]", {"model": "v33"}, False),  # anchored: the whole value must match
        ("env!~dev|test", {"env": "prod"}, True),
        ("env!~dev|test", {"env": "test"}, False),
    ],
)
def test_matches(matcher: str, labels: dict[str, str], expected: bool) -> None:
    assert Matcher.parse(matcher).matches(labels) is expected


def test_str_round_trips_and_quotes_what_needs_it() -> None:
    for text in ("severity=critical", "team!=web", "model=~v[23]", 'summary="a b"', 'team=""'):
        assert str(Matcher.parse(text)) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "severity",
            "invalid matcher 'severity': expected name=value, name!=value, name=~regex or name!~regex",
        ),
        (
            "team~ml",
            "invalid matcher 'team~ml': expected name=value, name!=value, name=~regex or name!~regex",
        ),
        ("1team=ml", "invalid label name '1team' in matcher '1team=ml'"),
        ("m=~(", "invalid regex in matcher 'm=~(': missing ), unterminated subpattern at position 0"),
    ],
)
def test_bad_matchers_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r".*") as caught:
        Matcher.parse(text)
    assert str(caught.value) == message


def test_a_mapping_is_equality_matchers() -> None:
    matchers = parse_matchers({"severity": "critical", "team": "ml"})
    assert matches_all(matchers, {"severity": "critical", "team": "ml", "x": "y"})
    assert not matches_all(matchers, {"severity": "critical"})


MISTAKES = {
    "config.bad-matcher.yaml": "6:40: invalid matcher 'team~ml': expected name=value, name!=value, "
    "name=~regex or name!~regex",
    "config.bad-regex.yaml": "6:19: invalid regex in matcher 'model=~v(2|3': missing ), unterminated "
    "subpattern at position 1",
    "config.inhibit-without-target.yaml": "4:6: an inhibit rule needs at least one 'source' and one "
    "'target' matcher",
    "config.inhibit-number-value.yaml": "4:45: label 'code' must be matched against a string, got 500 "
    "(put it in quotes)",
    "config.unknown-meta-receiver.yaml": "6:13: meta names unknown receiver 'pager' (defined: console)",
    "config.zero-group-interval.yaml": "6:3: 'group_interval' must be longer than 0s",
    "config.interval-bad-time.yaml": "6:30: '9:00' is not a time of day: use HH:MM, e.g. 09:00",
    "config.interval-time-past-midnight.yaml": "6:49: '24:01' is not a time of day: "
    "use HH:MM between 00:00 and 24:00",
    "config.interval-end-before-start.yaml": "7:35: 'end_time' must be after 'start_time' "
    "(a range over midnight is two ranges, one ending at 24:00 and one starting at 00:00)",
    "config.interval-bad-weekday.yaml": "6:20: unknown weekday 'sundy' (expected one of: monday, "
    "tuesday, wednesday, thursday, friday, saturday, sunday)",
    "config.interval-weekdays-backwards.yaml": "6:20: weekday range 'sunday:saturday' ends before it starts",
    "config.interval-bad-day.yaml": "6:32: '0' is not a day of the month: use 1 to 31, or -1 to -31 "
    "from the end",
    "config.interval-days-backwards.yaml": "6:25: days_of_month range '-1:-3' ends before it starts",
    "config.interval-bad-month.yaml": "6:30: unknown month 'janury' (expected one of: january, "
    "february, march, april, may, june, july, august, september, october, november, december)",
    "config.interval-bad-year.yaml": "6:17: year range '2027:2026' ends before it starts",
    "config.interval-bad-location.yaml": "7:19: unknown location 'Europe/Berln': use an IANA time zone "
    "such as Europe/Berlin",
    "config.interval-unknown-key.yaml": "6:9: unknown key 'weekday' (did you mean 'weekdays'?)",
    "config.interval-unknown-name.yaml": "12:29: route names unknown time interval 'bussiness-hours' "
    "(defined: business-hours)",
    "config.interval-defined-twice.yaml": "4:11: time interval 'office' is defined twice",
    "config.interval-on-root.yaml": "10:3: the root route cannot have 'mute_time_intervals' or "
    "'active_time_intervals'",
}


@pytest.mark.parametrize(("name", "expected"), MISTAKES.items(), ids=list(MISTAKES))
def test_each_routing_mistake_is_reported_at_its_position(
    monkeypatch: pytest.MonkeyPatch, name: str, expected: str
) -> None:
    monkeypatch.chdir(TESTDATA)
    with pytest.raises(ConfigError) as caught:
        load_config(Path(name), environ={})
    assert str(caught.value) == f"{name}:{expected}"


def test_every_mistake_fixture_is_asserted() -> None:
    assert {p.name for p in TESTDATA.glob("config.*.yaml")} - {"config.good.yaml"} == set(MISTAKES)


def test_a_config_with_matchers_inhibition_and_meta_loads() -> None:
    config = load_config(TESTDATA / "config.good.yaml", environ={})
    (child,) = config.route.routes
    assert [str(m) for m in child.matchers] == ["severity=~critical|error", "team!=web"]
    (rule,) = config.inhibit
    assert ([str(m) for m in rule.target], rule.equal) == (["severity=~warning|info"], ["model_version"])
    assert (config.meta.receiver, config.meta.store_failures) == ("pager", 5)
