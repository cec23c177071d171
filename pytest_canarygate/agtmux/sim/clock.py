"""The simulator's clock: the fleet's "now" that all scenario history ends at (the anchor), and
how the simulated daemons write times: tick and event times (RFC 3339) and log timestamps.

The anchor is the moment a fleet starts unless it is pinned, by ``start_fleet(anchor_ms=...)``
or the environment variable :data:`ANCHOR_ENV` (epoch milliseconds): every time a scenario
places in the past ("a snapshot 20m ago", "v4 up 2m") is then exactly that far before the pinned
value, whenever the fleet starts, so a test can compute what a run must show.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Final

from pytest_canarygate.errors import ConfigError

__all__ = [
    "ANCHOR_ENV",
    "CLOCK_ENV",
    "NS_PER_MS",
    "anchor_ms_now",
    "format_event_time",
    "format_log_time",
    "format_tick",
    "wall_ns",
]

_NS: Final = 1_000_000_000
NS_PER_MS: Final = 1_000_000
ANCHOR_ENV: Final = "CANARYGATE_SIM_ANCHOR_MS"
"""Pins the anchor of every fleet started while it is set (epoch ms, a non-negative integer)."""


CLOCK_ENV: Final = "CANARYGATE_SIM_CLOCK_MS"
"""Sets the simulated daemons' wall clock (epoch ms): it reads that value when a daemon starts
and runs on from there. For tests that also stand in for the engine's clock (a walk through
days of a migration in seconds); unset, the daemons keep real time."""

_clock_offset_ns: int | None = None


def wall_ns() -> int:
    """The simulated daemons' wall clock (epoch ns): real time, or :data:`CLOCK_ENV`'s moment
    running on from when this process first asked."""
    global _clock_offset_ns
    if _clock_offset_ns is None:
        pinned = os.environ.get(CLOCK_ENV, "").strip()
        if pinned and not (pinned.isascii() and pinned.isdigit()):
            raise ConfigError(f"{CLOCK_ENV}={pinned!r}: expected epoch milliseconds")
        _clock_offset_ns = int(pinned) * NS_PER_MS - time.time_ns() if pinned else 0
    return time.time_ns() + _clock_offset_ns


def anchor_ms_now(environ: Mapping[str, str] | None = None) -> int:
    """The anchor of a fleet starting now (epoch ms): :data:`ANCHOR_ENV` when set, else the
    current time. ConfigError if the variable is set but not a non-negative integer."""
    env = os.environ if environ is None else environ
    pinned = env.get(ANCHOR_ENV, "").strip()
    if not pinned:
        return wall_ns() // NS_PER_MS
    if not (pinned.isascii() and pinned.isdigit()):
        raise ConfigError(
            f"{ANCHOR_ENV}={pinned!r}: expected the fleet's anchor in epoch milliseconds "
            "(a non-negative integer), or unset for the current time"
        )
    return int(pinned)


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
