from datetime import timedelta

from watcher.config import Route
from watcher.routing.tree import resolve

TREE = Route.model_validate(
    {
        "receiver": "default",
        "group_by": ["rule"],
        "routes": [
            {
                "match": {"severity": "critical"},
                "receiver": "pager",
                "continue": True,
                "repeat_interval": "1h",
            },
            {
                "match": {"team": "ml"},
                "receiver": "ml-slack",
                "routes": [{"match": {"env": "dev"}, "receiver": "dev"}],
            },
        ],
    }
)


def receivers(labels: dict[str, str]) -> list[str]:
    return [m.receiver for m in resolve(TREE, labels)]


def test_unmatched_labels_fall_back_to_the_root_receiver() -> None:
    assert receivers({"team": "web"}) == ["default"]


def test_continue_lets_later_siblings_match_too() -> None:
    assert receivers({"severity": "critical", "team": "ml"}) == ["pager", "ml-slack"]


def test_first_matching_child_wins_without_continue_and_nesting_refines() -> None:
    assert receivers({"team": "ml", "env": "dev"}) == ["dev"]
    assert receivers({"team": "ml", "env": "prod"}) == ["ml-slack"]


def test_settings_are_inherited_and_overridden() -> None:
    pager, ml = resolve(TREE, {"severity": "critical", "team": "ml"})
    assert pager.repeat_interval == timedelta(hours=1)
    assert ml.repeat_interval == timedelta(hours=4)
    assert ml.group_by == ("rule",)


MATCHERS = Route.model_validate(
    {
        "receiver": "default",
        "routes": [
            {"matchers": ["severity=~critical|error", "team!=web"], "receiver": "pager"},
            {"match": {"team": "ml"}, "matchers": ["env!~dev|test"], "receiver": "ml"},
        ],
    }
)


def test_matchers_equal_not_equal_and_regex() -> None:
    def reached(labels: dict[str, str]) -> list[str]:
        return [m.receiver for m in resolve(MATCHERS, labels)]

    assert reached({"severity": "error"}) == ["pager"]
    assert reached({"severity": "critical", "team": "web"}) == ["default"]
    assert reached({"team": "ml", "env": "prod"}) == ["ml"]
    assert reached({"team": "ml", "env": "test"}) == ["default"]


def test_group_labels_follow_group_by_and_dots_mean_every_label() -> None:
    labels = {"rule": "r", "model_version": "v3", "severity": "critical"}
    (by_rule,) = resolve(TREE, {"team": "web", **labels})
    assert by_rule.group_labels(labels) == {"rule": "r"}
    (each,) = resolve(Route(receiver="x", group_by=["..."]), labels)
    assert each.group_labels(labels) == labels
    (missing,) = resolve(Route(receiver="x", group_by=["rule", "team"]), labels)
    assert missing.group_labels(labels) == {"rule": "r"}


def test_a_zero_group_wait_is_a_setting_not_unset() -> None:
    (match,) = resolve(Route(receiver="x", group_wait=timedelta(0)), {})
    assert match.group_wait == timedelta(0)
