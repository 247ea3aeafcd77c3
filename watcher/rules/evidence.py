"""Evidence: the few log documents an alert shows (``evidence: {size, fields, sort}`` in a rule,
``evidence: false`` to go without), and what is taken out of them before they are kept.

An incident keeps the documents of its latest alerting window (``watcher.detect.evidence``). They
are redacted and cut here, before the state store or any channel sees them: a field whose name
looks secret (``authorization``, ``cookie``, ``password``, ``token``, ``api_key``, ``secret``;
watcher.yaml's ``evidence.redact``) becomes ``[redacted]``, a ``Bearer``/``Basic`` credential in
any text too, a long value is cut to ``MAX_VALUE`` characters with an ellipsis, and a document
keeps its first ``MAX_FIELDS`` fields.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from watcher.query import Sample

DEFAULT_REDACT = ("authorization", "cookie", "password", "token", "api_key", "secret")
REDACTED = "[redacted]"
MAX_VALUE = 500
"""Characters of a value kept on the incident; channels cut shorter (``watcher.filters.cut``)."""
MAX_FIELDS = 40
"""Fields of a document kept on the incident (the first, in the document's order): a wide log line
must not make every notification of the incident heavy."""
ELLIPSIS = "…"
_CREDENTIAL = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


class EvidenceSpec(BaseModel):
    """A rule's ``evidence``: up to ``size`` documents of the group from the firing window that
    match the rule's filter (and, for a ratio, its ``of``), with only ``fields`` (all when empty),
    sorted by ``sort`` (``{latency_ms: desc}``; newest first by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(default=3, ge=1, le=20, description="documents shown per alert")
    fields: tuple[str, ...] = Field(default=(), description="the fields shown (default: all)")
    sort: dict[str, str] | None = Field(
        default=None,
        description="{field: desc} or {field: asc}: a numeric field to pick the documents by "
        "(default: the newest)",
    )
    redact: tuple[str, ...] | None = Field(
        default=None,
        description="field names to redact (default: watcher.yaml's evidence.redact)",
    )
    enabled: bool = Field(default=True, description="'evidence: false' turns it off")

    @model_validator(mode="before")
    @classmethod
    def _off(cls, data: Any) -> Any:
        if data is False:
            return {"enabled": False}
        return {} if data is True else data

    @field_validator("sort")
    @classmethod
    def _one_order(cls, sort: dict[str, str] | None) -> dict[str, str] | None:
        if sort is None:
            return None
        if len(sort) != 1 or next(iter(sort.values())) not in ("asc", "desc"):
            raise ValueError("'evidence.sort' is one field and its order, e.g. {latency_ms: desc}")
        return sort

    @property
    def sort_field(self) -> str:
        """The field the documents are picked by; "" for the time field."""
        return next(iter(self.sort), "") if self.sort else ""

    @property
    def ascending(self) -> bool:
        return bool(self.sort) and next(iter((self.sort or {}).values())) == "asc"


class EvidenceDefaults(BaseModel):
    """watcher.yaml's ``evidence``: what every rule's evidence redacts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    redact: tuple[str, ...] = Field(
        default=DEFAULT_REDACT,
        description="a field whose name contains one of these (any case, '-' and '_' ignored) is "
        "shown as [redacted]",
    )


def cleaned(samples: Sequence[Sample], redact: Sequence[str]) -> tuple[Sample, ...]:
    """``samples`` as an incident keeps them: secret-looking fields redacted, long values cut, at
    most ``MAX_FIELDS`` fields each."""
    secret = _redacts(tuple(redact))
    return tuple(
        {name: _value(value, secret(name)) for name, value in itertools.islice(sample.items(), MAX_FIELDS)}
        for sample in samples
    )


@functools.lru_cache(maxsize=64)
def _redacts(redact: tuple[str, ...]) -> Callable[[str], bool]:
    """Whether a field of a name is redacted under ``redact``: decided once per name, as the same
    fields come back in every document of every tick."""
    secrets = tuple(_plain(name) for name in redact if name)

    @functools.lru_cache(maxsize=4096)
    def secret(name: str) -> bool:
        plain = _plain(name)
        return any(part in plain for part in secrets)

    return secret


def _value(value: Any, secret: bool) -> Any:
    if secret:
        return REDACTED
    kind = type(value)
    if kind in _KEPT:  # exact types first: the Mapping ABC check was most of a document's cleaning
        return value
    if kind is not str and not isinstance(value, str):
        if not isinstance(value, Mapping | list):
            return value
        value = str(value)
    return cut(_CREDENTIAL.sub(_credential_redacted, value), MAX_VALUE)


_KEPT = frozenset({int, float, bool, type(None)})


def _credential_redacted(found: re.Match[str]) -> str:
    return f"{found.group(1)} {REDACTED}"


def cut(text: str, width: int) -> str:
    """``text`` of at most ``width`` characters: a longer one ends with an ellipsis."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + ELLIPSIS


def _plain(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")
