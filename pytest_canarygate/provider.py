"""What the engine asks of an evidence provider: a context manager built from a URI that
returns :class:`Evidence`, with :class:`Timeouts` for every read.

A pack defines the interfaces of its kinds of evidence on top of :class:`Provider`; the engine
only builds providers through the ``pytest_canarygate_make_provider`` hook and calls the pack's
accessors on them. Failures raise :class:`~pytest_canarygate.errors.EndpointError` subclasses.
"""

from __future__ import annotations

import json
import math
from abc import ABC
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Generic
from typing import TypeVar

from pytest_canarygate.errors import ConfigError

__all__ = ["Evidence", "Provider", "Source", "Timeouts"]

R = TypeVar("R")
_P = TypeVar("_P", bound="Provider")


@dataclass(frozen=True)
class Timeouts:
    """Connect and read deadlines in seconds; both finite and positive."""

    connect: float = 2.0
    read: float = 5.0

    def __post_init__(self) -> None:
        for name in ("connect", "read"):
            value = getattr(self, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not (ok and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} timeout must be a positive number of seconds: {value!r}")


@dataclass(frozen=True)
class Source:
    """Where evidence came from: the endpoint URI and what was read there (the RPC method, the
    HTTP URL or the file path)."""

    uri: str
    detail: str

    def __str__(self) -> str:
        return f"{self.uri} ({self.detail})" if self.detail != self.uri else self.uri


@dataclass(frozen=True)
class Evidence(Generic[R]):
    """Validated records plus where they came from and the raw payload they were read from.

    ``covers_from``/``covers_to`` (aware UTC) bound the span over which the history is complete;
    both are None for evidence that is not history (a snapshot list, a selector, a build).
    ``raw`` is the decoded JSON value or the text of the file, kept to attach as evidence.
    """

    records: tuple[R, ...]
    source: Source
    raw: object
    covers_from: datetime | None = None
    covers_to: datetime | None = None

    def one(self) -> R:
        """The single record of a one-record answer (a status, a stats object, a selector)."""
        if len(self.records) != 1:
            raise ValueError(f"{self.source}: expected one record, got {len(self.records)}")
        return self.records[0]

    def raw_text(self) -> str:
        """The raw payload as text, for an evidence attachment."""
        if isinstance(self.raw, str):
            return self.raw
        return json.dumps(self.raw, indent=2, sort_keys=True, default=str)


class Provider(ABC):  # noqa: B024 - a marker base: the kind interfaces below are abstract
    """Base of every provider: built from a URI, usable as a context manager."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    def close(self) -> None:  # noqa: B027 - most providers hold nothing open
        """Release whatever the provider holds (an HTTP session); idempotent."""

    def __enter__(self: _P) -> _P:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
