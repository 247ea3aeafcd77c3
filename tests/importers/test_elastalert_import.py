"""``watcher import elastalert``: each ElastAlert 2 rule type and filter form (tests/importers/elastalert,
written from ElastAlert 2's schema.yaml and ruletypes.py) converted into a rule ``watcher check`` accepts,
with the report a user reads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from watcher.cli import main

DATA = Path(__file__).parent / "elastalert"
RULES, BROKEN, CONFIG = DATA / "rules", DATA / "broken", DATA / "config.yaml"
Run = Callable[..., tuple[int, list[str]]]


@pytest.fixture
def watcher(capsys: pytest.CaptureFixture[str]) -> Run:
    def run(*argv: object) -> tuple[int, list[str]]:
        code = main([str(arg) for arg in argv])
        return code, capsys.readouterr().out.splitlines()

    return run


@pytest.fixture
def imported(tmp_path: Path, watcher: Run) -> tuple[int, list[str], Path]:
    code, out = watcher(
        "import", "elastalert", RULES, "--config", CONFIG, "-o", tmp_path / "rules", "--receivers",
        tmp_path / "fragment.yaml",
    )  # fmt: skip
    return code, out, tmp_path


def rule(folder: Path, name: str) -> dict[str, Any]:
    data = yaml.safe_load((folder / "rules" / f"{name}.yaml").read_text())
    assert isinstance(data, dict)
    return data


CONVERTED = {
    "frequency": {"window": "5m", "delay": "1m", "where": {"level": "error"}, "signal": "count",
                  "threshold": {"above": 4}},
    "flatline": {"window": "5m", "where": {"service": ["checkout", "payments"]}, "flatline": {"below": 3}},
    "percentage_match": {"window": "5m", "signal": {"ratio": {"of": {"status": {"gte": 500}}}},
                         "threshold": {"above": 0.2},
                         "evidence": {"fields": ["@timestamp", "status", "url", "trace_id"]}},
    "spike": {"window": "10m", "group_by": ["service"], "signal": "count",
              "spike": {"offset": "10m", "factor": 3, "direction": "up", "min_volume": 10}},
    "spike_aggregation": {"window": "1h", "signal": {"percentile": {"field": "latency_ms", "q": 99}},
                          "spike": {"offset": "1h", "factor": 2, "direction": "both", "min_volume": 0}},
    "cardinality": {"window": "30m", "group_by": ["host"], "signal": {"cardinality": {"field": "user"}},
                    "threshold": {"above": 100}},
    "metric_aggregation": {"window": "15m", "group_by": ["service", "region"], "min_events": 20,
                           "signal": {"stat": {"field": "latency_ms", "fn": "avg"}},
                           "threshold": {"above": 750}, "labels": {"team": "payments"}},
    "query_string": {"where": {"and": [{"service": "checkout"}, {"not": {"status": 200}},
                                       {"region": "eu west"}]}},
    "wildcard": {"where": {"host": "web-1"}},
    "bool": {"where": {"and": [{"service": "payments"},
                               {"or": [{"level": "error"}, {"status": {"gte": 500, "lt": 600}}]},
                               {"not": {"env": "staging"}}]}},
    "legacy_query": {"where": {"level": "error"}},
    "realert": {"repeat_interval": "30m", "group_by": ["service"], "threshold": {"above": 19}},
    "any": {"window": "1m", "flapping": False, "where": {"tenant": "blocked"}, "group_by": ["service"],
            "match": {}},
    "blacklist": {"window": "1m", "flapping": False, "delay": "1m",
                  "values": {"field": "client", "deny": ["evil-bot", "scraper"]}},
    "whitelist": {"window": "1m", "flapping": False,
                  "values": {"field": "region", "allow": {"file": str(RULES / "regions.txt")},
                             "missing": "alert"}},
    "change": {"window": "1m", "flapping": False, "group_by": ["user"],
               "change": {"field": "route", "by": ["user"], "lookback": "6h"}},
    "new_term": {"window": "1m", "flapping": False, "group_by": None,
                 "new_value": {"fields": ["user_agent"], "lookback": "7d"}},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CONVERTED))
def test_each_rule_type_and_filter_form_becomes_the_watcher_rule(
    imported: tuple[int, list[str], Path], name: str
) -> None:
    _, _, folder = imported
    written = rule(folder, name)
    assert {key: written.get(key) for key in CONVERTED[name]} == CONVERTED[name]
    assert written["source"] == "app-logs"
    assert written["every"] == "1m"  # run_every of config.yaml


def test_the_converted_rules_pass_watcher_check_with_the_fragment_merged(
    imported: tuple[int, list[str], Path], watcher: Run
) -> None:
    code, _, folder = imported
    assert code == 1  # wildcard_pattern.yaml is not convertible
    config = folder / "watcher.yaml"
    fragment = (folder / "fragment.yaml").read_text()
    config.write_text(fragment + f"state: {{path: {folder / 'state.db'}}}\nrules: [{folder / 'rules'}]\n")
    assert watcher("check", "-c", config) == (0, [f"OK: {len(CONVERTED)} rules in {len(CONVERTED)} files"])


def test_the_alerters_become_receivers_and_one_route_per_rule(imported: tuple[int, list[str], Path]) -> None:
    fragment = yaml.safe_load((imported[2] / "fragment.yaml").read_text())
    assert fragment["sources"] == {
        "app-logs": {"store": "elasticsearch", "hosts": ["http://es.internal:9200"], "index": "app-logs-*",
                     "time_field": "@timestamp"},
    }  # fmt: skip
    receivers = fragment["receivers"]
    assert receivers["slack"] == {"slack": {"webhook_url": "https://hooks.slack.example/services/T0/B0/x"}}
    assert receivers["email"]["email"] == {
        "to": ["oncall@example.com"], "host": "smtp.example.com", "from": "elastalert@example.com",
        "port": 587, "security": "tls",
    }  # fmt: skip
    assert receivers["webhook"] == {"webhook": {"url": "https://hooks.example.com/elastalert"}}
    assert receivers["webhook-2"] == {"webhook": {"url": "https://hooks.example.com/post2"}}
    assert receivers["sms"]["sms"]["to"] == ["+14155550100"]
    assert {"match": {"rule": "too-many-errors"}, "receiver": "slack", "continue": True} in fragment["route"][
        "routes"
    ]


def test_document_level_rules_convert_with_a_report_line_each(imported: tuple[int, list[str], Path]) -> None:
    _, out, folder = imported
    for kind in ("any", "blacklist", "change", "new_term"):
        assert f"{RULES / kind}.yaml:2: converted -> {folder}/rules/{kind}.yaml" in out
    at = out.index(
        f"{RULES}/whitelist.yaml:2: converted with an approximation -> {folder}/rules/whitelist.yaml"
    )
    assert out[at + 1] == (
        f"  {RULES}/whitelist.yaml:6: approximated: !file regions.txt: ElastAlert 2 opens it from its "
        f"working folder; watcher reads {RULES}/regions.txt"
    )


def test_new_term_and_change_options_without_an_equal_are_reported(tmp_path: Path, watcher: Run) -> None:
    rules = tmp_path / "ea"
    rules.mkdir()
    (rules / "terms.yaml").write_text(
        "name: two fields\ntype: new_term\nindex: logs\nfields: [user, host]\nquery_key: user\n"
        "alert_on_missing_field: true\n"
    )
    (rules / "nested.yaml").write_text("name: nested\ntype: new_term\nindex: logs\nfields: [[a, b], c]\n")
    (rules / "keyless.yaml").write_text("name: keyless\ntype: change\nindex: logs\ncompare_key: route\n")
    code, out = watcher("import", "elastalert", rules, "-o", tmp_path / "out")
    assert code == 1
    assert out[:7] == [
        f"{rules}/keyless.yaml:2: not convertible: type 'change' needs 'query_key' (the key whose value "
        "changes)",
        f"{rules}/nested.yaml:4: not convertible: 'fields' lists several combinations; watcher's new_value "
        "watches one: import one rule per entry",
        f"{rules}/terms.yaml:2: converted with an approximation -> {tmp_path}/out/terms.yaml",
        f"  {rules}/terms.yaml:5: ignored: query_key: a new term is new across the index, as ElastAlert 2 "
        "finds it",
        f"  {rules}/terms.yaml:4: approximated: fields ['user', 'host']: ElastAlert 2 looks for new values "
        "of each field on its own; watcher looks for new combinations of them (a new value of any field is "
        "one, and so is a new pairing of known values)",
        f"  {rules}/terms.yaml:6: not converted: alert_on_missing_field: watcher's new_value ignores "
        "documents without the field",
        "3 files: 0 converted, 1 converted with an approximation, 2 not convertible, 0 not written",
    ]


def test_the_report_says_which_option_is_approximated_and_why(imported: tuple[int, list[str], Path]) -> None:
    _, out, folder = imported
    at = out.index(f"{RULES}/realert.yaml:2: converted with an approximation -> {folder}/rules/realert.yaml")
    assert out[at + 1 : at + 5] == [
        f"  {RULES}/realert.yaml:6: approximated: realert {{minutes: 30}} (30m) becomes repeat_interval 30m: "
        "ElastAlert 2 drops a key's matches for 30m after an alert; watcher keeps one incident open while "
        "the condition holds and re-notifies it every 30m",
        f"  {RULES}/realert.yaml:10: approximated: alert_text_args 'user' is a field of the matching "
        "document; watcher alerts on aggregates and has no document to read it from, so the text shows "
        "[user]",
        f"  {RULES}/realert.yaml:7: ignored: use_count_query: watcher always counts in the store",
        f"  {RULES}/realert.yaml:8: ignored: doc_type: mapping types are gone since Elasticsearch 7; "
        "watcher does not use one",
    ]
    assert rule(folder, "realert")["annotations"]["description"] == (
        "{{ value | number }} errors on {{ group['service'] }} (seen by [user])"
    )


def test_the_report_says_why_an_option_is_not_convertible(imported: tuple[int, list[str], Path]) -> None:
    _, out, folder = imported
    assert (
        f"{RULES}/wildcard_pattern.yaml:7: not convertible: wildcard 'web-*' on 'host': watcher filters "
        "match exact values, with no pattern or prefix (only a wildcard without * or ? converts, as an "
        "exact match)"
    ) in out
    assert not (folder / "rules" / "wildcard_pattern.yaml").exists()


def test_a_yaml_error_and_a_custom_rule_type_are_reported_and_the_rest_converted(
    tmp_path: Path, watcher: Run
) -> None:
    code, out = watcher("import", "elastalert", BROKEN, "-o", tmp_path)
    assert code == 1
    assert out[:4] == [
        f"{BROKEN}/bad.yaml:5: not convertible: invalid YAML: expected the node content, but found '-' "
        "(while parsing a flow node at line 5)",
        f"{BROKEN}/custom.yaml:2: not convertible: type 'my.module.Rule' is a custom rule type (Python code "
        "ElastAlert 2 imports); watcher cannot run it",
        f"{BROKEN}/good.yaml:2: converted -> {tmp_path}/good.yaml",
        "3 files: 1 converted, 0 converted with an approximation, 2 not convertible, 0 not written",
    ]
    assert out[4] == "# watcher.yaml fragment: merge it into watcher.yaml"  # printed without --receivers
    assert yaml.safe_load("\n".join(out[4:]))["sources"]["app-logs"]["hosts"] == [
        "${ES_URL:-http://localhost:9200}"
    ]


def test_an_existing_rule_file_is_overwritten_only_with_force(tmp_path: Path, watcher: Run) -> None:
    (tmp_path / "good.yaml").write_text("# mine\n")
    code, out = watcher("import", "elastalert", BROKEN, "-o", tmp_path)
    assert code == 2
    assert f"{BROKEN}/good.yaml:2: not written: {tmp_path}/good.yaml exists (use --force to overwrite)" in out
    assert (tmp_path / "good.yaml").read_text() == "# mine\n"
    code, out = watcher("import", "elastalert", BROKEN, "-o", tmp_path, "--force")
    assert code == 1  # the two broken files; good.yaml is written
    assert yaml.safe_load((tmp_path / "good.yaml").read_text())["name"] == "still-converted"


def test_all_converted_exits_0_and_a_missing_folder_exits_2(tmp_path: Path, watcher: Run) -> None:
    only_good = tmp_path / "ea"
    only_good.mkdir()
    (only_good / "good.yaml").write_text((BROKEN / "good.yaml").read_text())
    assert watcher("import", "elastalert", only_good, "-o", tmp_path / "out")[0] == 0
    assert watcher("import", "elastalert", tmp_path / "nosuch", "-o", tmp_path / "out")[0] == 2
