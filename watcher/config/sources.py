"""The ``sources:`` of ``watcher.yaml``: where logs are queried, tagged by ``store:``.

Kept apart from the rest of the config because the stores (``watcher.store``), Discover links
and ``watcher ingest`` need only these models; a new backend is one more class in ``Source``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from watcher.config.base import ConfigModel
from watcher.duration import Duration

TimeFormat = Literal["iso8601", "epoch_s", "epoch_ms"]
TIME_FORMAT_HELP = (
    "how numbers in the time field are read: epoch_s or epoch_ms; iso8601 (the default) reads "
    "ISO 8601 strings only and refuses numbers, whose unit would be a guess. ISO 8601 strings are "
    "read with every setting"
)


class Gap(ConfigModel):
    """A time range the source is known to lack data for (an outage of the log shipper, a lost
    index): reference windows that overlap it are left out, and so is any window of a rule that
    reads absence (a flatline, a ``below`` bound) -- "not enough data", with ``reason`` shown."""

    start: datetime = Field(alias="from", description="ISO 8601 time with its offset, e.g. 2026-12-05T10:00Z")
    end: datetime = Field(alias="to", description="end of the gap (excluded)")
    reason: str = Field(min_length=1, description="why the data is missing, shown where a window is left out")

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError(f"{value.isoformat()} has no offset: write it as {value.isoformat()}Z for UTC")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _ordered(self) -> Gap:
        if self.end <= self.start:
            raise ValueError(
                f"gap 'to' ({self.end.isoformat()}) must be after 'from' ({self.start.isoformat()})"
            )
        return self


GAPS_HELP = "time ranges the source lacks data for: [{from, to, reason}]"


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
    gaps: tuple[Gap, ...] = Field(default=(), description=GAPS_HELP)


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
    since: datetime | None = Field(
        default=None,
        description="when the index's data starts (ISO 8601 with a time zone): windows reaching before it "
        "are 'not enough data'. Default: the first document's time, asked once an hour",
    )
    dashboards_url: str | None = Field(default=None, description="Kibana / OpenSearch Dashboards base URL")
    dashboards_data_view: str | None = Field(
        default=None,
        description="id of the data view (index pattern) Discover links open (default: Discover's)",
    )
    gaps: tuple[Gap, ...] = Field(default=(), description=GAPS_HELP)

    @field_validator("since", mode="before")
    @classmethod
    def _since(cls, value: object) -> datetime | None:
        """An instant, never a guess: a time without a zone could be any of 24 hours."""
        moment = value
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                moment = None
        if value is not None and (not isinstance(moment, datetime) or moment.tzinfo is None):
            shown = value.isoformat() if isinstance(value, date) else value
            raise ValueError(
                f"since {shown!r} must be an ISO 8601 time with a time zone, e.g. 2026-01-05T08:00:00Z"
            )
        return moment.astimezone(UTC) if isinstance(moment, datetime) else None


Source = Annotated[EmbeddedSource | SearchSource, Field(discriminator="store")]
