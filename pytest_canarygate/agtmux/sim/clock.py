"""How the simulated daemons write times: tick and event times (RFC 3339) and log timestamps."""

from __future__ import annotations

import time
from typing import Final

__all__ = ["NS_PER_MS", "format_event_time", "format_log_time", "format_tick"]

_NS: Final = 1_000_000_000
NS_PER_MS: Final = 1_000_000


def _seconds_text(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def format_tick(ns: int) -> str:
    """RFC 3339 UTC with nanoseconds and "Z", as the daemon prints tick times."""
    seconds, nanos = divmod(ns, _NS)
    return f"{_seconds_text(seconds)}.{nanos:09d}Z"


def format_event_time(ns: int) -> str:
    """RFC 3339 UTC with the shortest of 0/3/6/9 fraction digits (chrono's AutoSi)."""
    seconds, nanos = divmod(ns, _NS)
    text = _seconds_text(seconds)
    if nanos == 0:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1000 == 0:
        return f"{text}.{nanos // 1000:06d}Z"
    return f"{text}.{nanos:09d}Z"


def format_log_time(us: int) -> str:
    """RFC 3339 UTC with microseconds and "Z", as tracing-subscriber stamps log lines."""
    seconds, micros = divmod(us, 1_000_000)
    return f"{_seconds_text(seconds)}.{micros:06d}Z"
