"""The vocabulary every judgement shares: :class:`Judgement` and the judgements that carry more (a
restore dry-run's outcome, a window's coverage), the protocols of the events and histories they
read, the formats of times and durations in their messages, and :func:`enforce`, which ends a gate
as a judgement says.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Protocol

from pytest_canarygate.verdicts import GateFailed
from pytest_canarygate.verdicts import Inconclusive
from pytest_canarygate.verdicts import Unobservable
from pytest_canarygate.verdicts import Verdict


@dataclass(frozen=True, kw_only=True)
class Judgement:
    """A verdict, a message an operator can act on, and the numbers it was decided on.

    ``findings`` holds the offending records (or the ones that proved the pass), for evidence.
    """

    verdict: Verdict
    message: str
    numbers: Mapping[str, object] = field(default_factory=dict, hash=False)
    findings: tuple[object, ...] = ()

    @property
    def passed(self) -> bool:
        """True for PASS."""
        return self.verdict is Verdict.PASS


@dataclass(frozen=True, kw_only=True)
class RestoreDryRun(Judgement):
    """The recomputed ``RestoreVerdict``: ``outcome`` is "Ok", "TooOld" or "VersionAhead"."""

    outcome: str
    age_ms: int


@dataclass(frozen=True, kw_only=True)
class Coverage(Judgement):
    """Whether a history covers a window (PASS) or not (INCONCLUSIVE); ``span`` describes it."""

    covered: bool
    span: str


class TimedEvent(Protocol):
    """A supervisor event or a daemon log event."""

    @property
    def at(self) -> datetime: ...

    @property
    def kind(self) -> str: ...


class Covered(Protocol):
    """Anything carrying a history span, e.g. provider :class:`Evidence`."""

    @property
    def covers_from(self) -> datetime | None: ...

    @property
    def covers_to(self) -> datetime | None: ...


# --- formatting --------------------------------------------------------------------------


def format_time(when: datetime) -> str:
    """UTC, to the minute unless seconds matter: ``2026-11-25T10:00Z``."""
    when = _aware(when, "time").astimezone(timezone.utc)
    pattern = (
        "%Y-%m-%dT%H:%MZ" if when.second == 0 and when.microsecond == 0 else "%Y-%m-%dT%H:%M:%SZ"
    )
    return when.strftime(pattern)


def format_duration(span: timedelta) -> str:
    """``45s``, ``5m``, ``14h``, ``14h30m``, ``7d`` (whole days from 72h on)."""
    seconds = max(0, math.floor(span.total_seconds()))
    if seconds >= 72 * 3600 and seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


# --- helpers the judgement modules share -------------------------------------------------


def _aware(when: datetime, name: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name} {when!r} is naive; pass an aware (UTC) datetime")
    return when


def _judgement(
    verdict: Verdict, message: str, findings: Iterable[object] = (), /, **numbers: object
) -> Judgement:
    return Judgement(verdict=verdict, message=message, numbers=numbers, findings=tuple(findings))


# --- verdict -> exception ----------------------------------------------------------------


def enforce(judgement: Judgement) -> Judgement:
    """End the gate as the judgement says: PASS returns it; FAIL raises GateFailed,
    INCONCLUSIVE Inconclusive, UNOBSERVABLE Unobservable (with the judgement's message)."""
    __tracebackhide__ = True
    verdict = judgement.verdict
    if verdict is Verdict.PASS:
        return judgement
    if verdict is Verdict.FAIL:
        raise GateFailed(judgement.message)
    if verdict is Verdict.INCONCLUSIVE:
        raise Inconclusive(judgement.message)
    if verdict is Verdict.UNOBSERVABLE:
        raise Unobservable(judgement.message)
    raise ValueError(f"a judgement cannot end in {verdict}: {judgement.message}")
