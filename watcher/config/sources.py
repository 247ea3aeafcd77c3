"""The ``sources:`` of ``watcher.yaml``: where logs are queried, tagged by ``store:``.

Kept apart from the rest of the config because the stores (``watcher.store``), Discover links
and ``watcher ingest`` need only these models; a new backend is one more class in ``Source``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr

from watcher.config.base import ConfigModel
from watcher.duration import Duration

TimeFormat = Literal["iso8601", "epoch_s", "epoch_ms"]
TIME_FORMAT_HELP = (
    "how numbers in the time field are read: epoch_s or epoch_ms; iso8601 (the default) reads "
    "ISO 8601 strings only and refuses numbers, whose unit would be a guess. ISO 8601 strings are "
    "read with every setting"
)


class EmbeddedSource(ConfigModel):
    """A DuckDB file fed from JSON-lines log files."""

    store: Literal["embedded"]
    path: Path = Field(default=Path("data/logs.duckdb"), description="the DuckDB file")
    ingest: list[str] = Field(default_factory=list, description="globs of JSON-lines files to ingest")
    time_field: str = "@timestamp"
    time_format: TimeFormat = Field(default="iso8601", description=TIME_FORMAT_HELP)
    retention: Duration = Field(default=timedelta(days=7), description="rows older than this are deleted")
    threads: int = Field(default=1, ge=1, le=64, description="DuckDB worker threads (more: faster, more RSS)")
    memory_limit: str = Field(default="512MB", pattern=r"^[0-9]+(\.[0-9]+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")


class SearchSource(ConfigModel):
    """An Elasticsearch (8/9) or OpenSearch cluster."""

    store: Literal["elasticsearch", "opensearch"]
    hosts: list[str] = Field(min_length=1)
    index: str = Field(description="index name or pattern, e.g. ml-api-*")
    time_field: str = "@timestamp"
    time_format: TimeFormat = Field(
        default="iso8601", description=TIME_FORMAT_HELP + " (used by `watcher ingest`)"
    )
    api_key: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    bearer_token: SecretStr | None = None
    ca_certs: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    verify_certs: bool = True
    timeout: Duration = timedelta(seconds=30)
    max_retries: int = Field(default=3, ge=0)
    msearch_max: int = Field(default=100, ge=1, description="queries per _msearch request")
    dashboards_url: str | None = Field(default=None, description="Kibana / OpenSearch Dashboards base URL")
    dashboards_data_view: str | None = Field(
        default=None,
        description="id of the data view (index pattern) Discover links open (default: Discover's)",
    )


Source = Annotated[EmbeddedSource | SearchSource, Field(discriminator="store")]
