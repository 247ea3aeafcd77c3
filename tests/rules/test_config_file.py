"""watcher.yaml: one mistake per file in testdata/, ${ENV} interpolation, relative paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.config import EmbeddedSource, SearchSource
from watcher.rules.loader import ConfigError, LoadError, load_config

TESTDATA = Path(__file__).parent / "testdata"

MISTAKES = {
    "config.missing-env.yaml": "6:14: environment variable WATCHER_TEST_ES_API_KEY is not set",
    "config.unknown-key.yaml": "2:28: unknown key 'pth' (did you mean 'path'?)",
    "config.unknown-store.yaml": "2:18: unknown store 'duckdb' (expected one of: embedded, elasticsearch, "
    "opensearch)",
    "config.missing-store.yaml": "2:3: missing required key 'store'",
    "config.missing-index.yaml": "2:3: missing required key 'index'",
    "config.no-hosts.yaml": "2:38: 'sources.ml-api.hosts' needs at least 1 item",
    "config.wrong-type.yaml": "2:101: 'sources.ml-api.max_retries' must be an integer, got 'many'",
    "config.bad-retention.yaml": "2:39: invalid duration '7days': use a number and a unit "
    "(ms, s, m, h, d, w), e.g. 30s, 5m, 1h30m",
    "config.unknown-receiver.yaml": "6:13: route names unknown receiver 'ml-slak' (defined: ml-slack)",
    "config.receiver-without-channel.yaml": "4:3: a receiver has exactly one of console, slack, email, sms, "
    "webhook; got none",
    "config.sms-bad-number.yaml": "6:25: '0170 1234567' is not an E.164 phone number: write + and the "
    "country code, then the number, digits only (at most 15), e.g. +14155550100",
    "config.email-bad-address.yaml": "5:18: 'oncall.example.com' is not an email address (expected "
    "name@example.com)",
    "config.webhook-bad-url.yaml": "5:15: webhook 'url' must start with https:// or http://",
    "config.slack-without-token.yaml": "5:13: slack needs 'token' and 'channel', or 'webhook_url'",
    "config.slack-app-token-is-a-bot-token.yaml": "5:53: slack 'app_token' must be an app-level token "
    "(xapp-…), not a bot token",
    "config.slack-app-token-with-webhook.yaml": "5:68: slack 'app_token' needs 'token' and 'channel' (a "
    "webhook has no buttons)",
    "config.missing-sources.yaml": "1:1: missing required key 'sources'",
    "config.invalid-yaml.yaml": "2:1: invalid YAML: found character '\\t' that cannot start any token "
    "(while scanning for the next token)",
    "config.empty.yaml": "1:1: empty file: expected settings such as 'sources'",
    "config.not-a-mapping.yaml": "1:1: expected a mapping of settings such as 'sources', got a list",
    "config.reload-interval-overflow.yaml": "3:20: invalid duration '99999999999999w': "
    "at most 3650d (10 years)",
    "config.gap-to-before-from.yaml": "6:9: gap 'to' (2026-12-05T10:00:00+00:00) must be after 'from' "
    "(2026-12-05T12:00:00+00:00)",
    "config.gap-without-offset.yaml": "5:16: 2026-12-05T10:00:00 has no offset: write it as "
    "2026-12-05T10:00:00Z for UTC",
    "config.gap-without-reason.yaml": "5:9: missing required key 'reason'",
}


@pytest.mark.parametrize(("name", "expected"), MISTAKES.items(), ids=list(MISTAKES))
def test_each_mistake_is_reported_at_its_position(
    monkeypatch: pytest.MonkeyPatch, name: str, expected: str
) -> None:
    monkeypatch.chdir(TESTDATA)

    with pytest.raises(ConfigError) as caught:
        load_config(Path(name), environ={})

    assert [str(error) for error in caught.value.errors] == [f"{name}:{expected}"]
    assert str(caught.value) == f"{name}:{expected}"


def test_every_mistake_fixture_is_asserted() -> None:
    assert {path.name for path in TESTDATA.glob("config.*.yaml")} == set(MISTAKES)


def test_load_error_formats_as_path_line_col() -> None:
    assert str(LoadError(Path("a/b.yaml"), 3, 7, "oops")) == "a/b.yaml:3:7: oops"


def test_all_errors_are_reported_one_per_line(tmp_path: Path) -> None:
    path = tmp_path / "watcher.yaml"
    path.write_text(
        "sources:\n"
        "  a: {store: embedded, retention: soon}\n"
        "  b: {store: opensearch, hosts: [https://b:9200], index: b, api_key: '${B_KEY}'}\n"
        "http: {listen: 127.0.0.1:9464, enabld: true}\n"
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert str(caught.value).splitlines() == [
        f"{path}:2:35: invalid duration 'soon': use a number and a unit (ms, s, m, h, d, w), "
        "e.g. 30s, 5m, 1h30m",
        f"{path}:3:70: environment variable B_KEY is not set",
        f"{path}:4:32: unknown key 'enabld' (did you mean 'enabled'?)",
    ]


# --------------------------------------------------------------------------- interpolation

SEARCH = "sources:\n  es: {{store: elasticsearch, hosts: ['{hosts}'], index: logs, api_key: '{key}'}}\n"


def _search_source(tmp_path: Path, environ: dict[str, str], hosts: str, key: str) -> SearchSource:
    path = tmp_path / "watcher.yaml"
    path.write_text(SEARCH.format(hosts=hosts, key=key))
    source = load_config(path, environ).sources["es"]
    assert isinstance(source, SearchSource)
    return source


def test_env_variable_set_is_interpolated(tmp_path: Path) -> None:
    source = _search_source(
        tmp_path, {"ES_KEY": "s3cret", "ES": "es.internal"}, "https://${ES}:9200", "${ES_KEY}"
    )

    assert source.hosts == ["https://es.internal:9200"]
    assert source.api_key is not None
    assert source.api_key.get_secret_value() == "s3cret"


def test_env_variable_default_is_used_when_unset(tmp_path: Path) -> None:
    source = _search_source(tmp_path, {"ES_KEY": "k"}, "https://${ES:-localhost}:9200", "${ES_KEY:-}")

    assert source.hosts == ["https://localhost:9200"]


def test_missing_env_variables_are_each_reported_at_their_string(tmp_path: Path) -> None:
    path = tmp_path / "watcher.yaml"
    path.write_text(SEARCH.format(hosts="https://${ES_HOST}:9200", key="${ES_KEY}"))

    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert [str(error) for error in caught.value.errors] == [
        f"{path}:2:38: environment variable ES_HOST is not set",
        f"{path}:2:88: environment variable ES_KEY is not set",
    ]


def test_process_environment_is_used_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHER_TEST_KEY", "from-env")
    path = tmp_path / "watcher.yaml"
    path.write_text(SEARCH.format(hosts="https://es:9200", key="${WATCHER_TEST_KEY}"))

    source = load_config(path).sources["es"]

    assert isinstance(source, SearchSource)
    assert source.api_key is not None
    assert source.api_key.get_secret_value() == "from-env"


def test_an_interpolated_value_is_not_echoed_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "watcher.yaml"
    path.write_text(
        "sources:\n  es: {store: opensearch, hosts: [https://es], index: logs, max_retries: '${RETRIES}'}\n"
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"RETRIES": "hunter2"})

    assert "hunter2" not in str(caught.value)
    assert (
        str(caught.value) == f"{path}:2:74: 'sources.es.max_retries' must be an integer, got '${{RETRIES}}'"
    )


# --------------------------------------------------------------------------- relative paths


def test_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc" / "watcher"
    folder.mkdir(parents=True)
    (folder / "watcher.yaml").write_text(
        "sources:\n"
        "  local: {store: embedded, path: data/logs.duckdb, ingest: [logs/*.jsonl, /var/log/api/*.jsonl]}\n"
        "  es: {store: opensearch, hosts: [https://es:9200], index: logs, ca_certs: certs/ca.pem}\n"
        "state: {path: /var/lib/watcher/state.sqlite}\n"
        "rules: [rules, /srv/shared-rules]\n"
        "templates: my-templates\n"
    )
    monkeypatch.chdir(tmp_path)  # resolution must not depend on the working directory

    config = load_config(Path("etc/watcher/watcher.yaml"), environ={})

    local, search = config.sources["local"], config.sources["es"]
    assert isinstance(local, EmbeddedSource)
    assert isinstance(search, SearchSource)
    assert local.path == Path("etc/watcher/data/logs.duckdb")
    assert local.ingest == ["etc/watcher/logs/*.jsonl", "/var/log/api/*.jsonl"]
    assert search.ca_certs == Path("etc/watcher/certs/ca.pem")
    assert config.state.path == Path("/var/lib/watcher/state.sqlite")
    assert config.rules == [Path("etc/watcher/rules"), Path("/srv/shared-rules")]
    assert config.templates == Path("etc/watcher/my-templates")


def test_defaults_resolve_against_the_config_folder_too(tmp_path: Path) -> None:
    (tmp_path / "watcher.yaml").write_text("sources:\n  local: {store: embedded}\n")

    config = load_config(tmp_path / "watcher.yaml", environ={})

    assert config.rules == [tmp_path / "rules"]
    assert config.state.path == tmp_path / "data/state.sqlite"
    assert config.templates == tmp_path / "templates"


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")

    assert str(caught.value) == f"{tmp_path / 'nope.yaml'}:1:1: cannot read file: No such file or directory"
