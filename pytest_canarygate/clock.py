"""The run's one clock: nothing dated after it (plus a small skew) counts as evidence."""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import fields
from dataclasses import is_dataclass
from datetime import datetime
from datetime import timezone
from typing import Any

from pytest_canarygate.verdicts import Unobservable


def wall_now() -> datetime:
    """The wall clock, aware UTC. The engine reads the time of day only here (call it as
    ``clock.wall_now()``), so that a test can stand in for it."""
    return datetime.now(timezone.utc)


def refuse_future(when: datetime, latest: datetime | None, what: str) -> None:
    """Raise :class:`Unobservable` if ``when`` lies past ``latest`` (the run's clock plus the
    allowed skew)."""
    if latest is None or when.tzinfo is None or when <= latest:
        return
    raise Unobservable(
        f"{what} is dated {when.isoformat()}, after the observation's clock plus the allowed "
        f"skew ({latest.isoformat()}): evidence from the future proves nothing "
        "(check the clocks, or [observation] clock_skew_s)"
    )


def timestamps_in(value: Any, path: str = "") -> Iterator[tuple[str, datetime]]:
    """Every aware datetime inside ``value`` (dataclass records, mappings, sequences), with
    where it sits, e.g. ``records[3].created_at``."""
    if isinstance(value, datetime):
        yield path or "timestamp", value
    elif is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            if f.name != "raw":  # the raw payload is kept for display, not judged
                yield from timestamps_in(getattr(value, f.name), _dot(path, f.name))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from timestamps_in(item, _dot(path, str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from timestamps_in(item, f"{path}[{index}]")


def _dot(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
