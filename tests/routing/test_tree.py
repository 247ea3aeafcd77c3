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
