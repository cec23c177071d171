"""Pure judgements the gates call: evidence in, a :class:`Judgement` out, never an exception.

Fail closed: PASS only on positive evidence. A violation found is FAIL even when the history is
incomplete; no violation in a history that does not cover the whole window is INCONCLUSIVE and
the message gives the span covered; an answer of unknown shape is UNOBSERVABLE. Windows and
thresholds are parameters whose defaults are the runbook's numbers. Every ``now`` and history
bound is an aware datetime (naive ones raise ValueError: that is a programming error).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Protocol

from pytest_canarygate.errors import ConfigError
from pytest_canarygate.providers.records import AlertEntry
from pytest_canarygate.providers.records import BindingStats
from pytest_canarygate.providers.records import BuildResult
from pytest_canarygate.providers.records import CursorStats
from pytest_canarygate.providers.records import LogEvent
from pytest_canarygate.providers.records import RestartPolicy
from pytest_canarygate.providers.records import RuntimeSelector
from pytest_canarygate.providers.records import Severity
from pytest_canarygate.providers.records import SnapshotMetadata
from pytest_canarygate.providers.records import SupervisorEvent
from pytest_canarygate.providers.records import ms_to_datetime
from pytest_canarygate.verdicts import Verdict

__all__ = [
    "DEFAULT_MAX_LAG",
    "HOLD_DOWN_KINDS",
    "PHASES",
    "RECOVERY_KINDS",
    "RESTART_KINDS",
    "RUNBOOK_RESTART_POLICY",
    "RUNBOOK_STARTUP_ORDER",
    "Coverage",
    "Covered",
    "Judgement",
    "RestoreDryRun",
    "TimedEvent",
    "alerts_at_or_above",
    "build_passes",
    "cas_conflicts",
    "count_events",
    "cursor_streaks",
    "escalate_persisting",
    "format_duration",
    "format_time",
    "hold_down_not_recovered",
    "hold_downs_in_window",
    "latency_slo",
    "no_events_in_window",
    "restart_policy_matches_contract",
    "restore_dry_run",
    "selector_matches_phase",
    "startup_order_matches",
    "supervisor_restart_regression",
    "unresolved_escalates_in_window",
    "window_coverage",
]

RUNBOOK_RESTART_POLICY = RestartPolicy(
    initial_backoff_ms=1_000,
    multiplier=2.0,
    max_backoff_ms=30_000,
    jitter_pct=0.2,
    failure_budget=5,
    budget_window_ms=600_000,
    holddown_ms=300_000,
)
"""The runbook's Supervisor Contract Reference table (= ``RestartPolicy::default()``)."""

RUNBOOK_STARTUP_ORDER = ("Sources", "Gateway", "Daemon", "Ui")
"""``startup_order()``: Sources -> Gateway -> Daemon -> Ui (serde names)."""

PHASES = ("alpha", "canary", "gradual", "cutover", "rollback")

DEFAULT_MAX_LAG = timedelta(minutes=5)
"""How far before ``now`` a history may end and still count as reaching ``now``."""

HOLD_DOWN_KINDS = frozenset({"hold_down"})
"""Supervisor event and daemon log kinds that mean "entered HoldDown"."""
RECOVERY_KINDS = frozenset({"success", "reconnected"})
"""Kinds that mean the supervised process came back."""
RESTART_KINDS = frozenset({"restart", "process_exited"})
"""Kinds counted as one restart (a scheduled restart; a reconnect attempt in the log)."""


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
    """Anything carrying a history span, e.g. :class:`~pytest_canarygate.providers.Evidence`."""

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


def _aware(when: datetime, name: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{name} {when!r} is naive; pass an aware (UTC) datetime")
    return when


def _judgement(
    verdict: Verdict, message: str, findings: Iterable[object] = (), /, **numbers: object
) -> Judgement:
    return Judgement(verdict=verdict, message=message, numbers=numbers, findings=tuple(findings))


# --- snapshots ---------------------------------------------------------------------------


def restore_dry_run(
    snapshot: SnapshotMetadata,
    current_version: int,
    now_ms: int,
    max_age_ms: int = 600_000,
) -> RestoreDryRun:
    """Recompute ``RestoreDryRun::check`` (DAEMON-FACTS 4.5): VersionAhead (snapshot version >
    current) before TooOld (age strictly > max age; age floored at 0) before Ok."""
    age_ms = max(0, now_ms - snapshot.created_at_ms)
    numbers = {
        "snapshot_id": snapshot.snapshot_id,
        "snapshot_version": snapshot.projection_version,
        "current_version": current_version,
        "created_at_ms": snapshot.created_at_ms,
        "now_ms": now_ms,
        "age_ms": age_ms,
        "max_age_ms": max_age_ms,
    }
    name = f"snapshot {snapshot.snapshot_id}"
    if snapshot.projection_version > current_version:
        outcome, verdict = "VersionAhead", Verdict.FAIL
        message = (
            f"{name}: VersionAhead {{ snapshot_version: {snapshot.projection_version}, "
            f"current_version: {current_version} }} (restoring it would go back in time; did the "
            "daemon restart since it was taken?)"
        )
    elif age_ms > max_age_ms:
        outcome, verdict = "TooOld", Verdict.FAIL
        message = (
            f"{name}: TooOld {{ age_ms: {age_ms}, max_age_ms: {max_age_ms} }} "
            f"(taken {format_duration(timedelta(milliseconds=age_ms))} ago)"
        )
    else:
        outcome, verdict = "Ok", Verdict.PASS
        message = (
            f"{name}: Ok {{ age_ms: {age_ms} }} at projection version "
            f"{snapshot.projection_version} (current {current_version})"
        )
    return RestoreDryRun(
        verdict=verdict,
        message=message,
        numbers=numbers,
        findings=(snapshot,),
        outcome=outcome,
        age_ms=age_ms,
    )


# --- windows -----------------------------------------------------------------------------


def window_coverage(
    window: timedelta,
    now: datetime,
    covers_from: datetime | None,
    covers_to: datetime | None,
    *,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Coverage:
    """Does the history ``covers_from..covers_to`` cover the window ``now - window..now``?

    It must start at or before the window start and end no more than ``max_lag`` before now.
    """
    now = _aware(now, "now")
    start = now - window
    required = format_duration(window)
    numbers: dict[str, object] = {
        "window_s": window.total_seconds(),
        "window_start": start.isoformat(),
        "now": now.isoformat(),
        "covers_from": covers_from.isoformat() if covers_from else None,
        "covers_to": covers_to.isoformat() if covers_to else None,
    }
    if covers_from is None or covers_to is None:
        message = (
            f"the source does not say from when its history is complete; the required "
            f"{required} window is {format_time(start)}..{format_time(now)}"
        )
        return Coverage(
            verdict=Verdict.INCONCLUSIVE, message=message, numbers=numbers, covered=False, span=""
        )
    covers_from = _aware(covers_from, "covers_from")
    covers_to = _aware(covers_to, "covers_to")
    overlap = max(timedelta(0), min(covers_to, now) - max(covers_from, start))
    numbers["covered_s"] = overlap.total_seconds()
    span = f"{format_time(covers_from)}..{format_time(covers_to)}"
    covered = covers_from <= start and covers_to >= now - max_lag
    if covered:
        message = f"history covers {span}, the whole {required} window"
    else:
        message = (
            f"history covers {span} ({format_duration(overlap)}) of the required {required} window"
        )
        if covers_from > start:
            message += f"; it starts after the window start {format_time(start)}"
        if covers_to < now - max_lag:
            message += (
                f"; it ends {format_duration(now - covers_to)} before now ({format_time(now)})"
            )
    return Coverage(
        verdict=Verdict.PASS if covered else Verdict.INCONCLUSIVE,
        message=message,
        numbers=numbers,
        covered=covered,
        span=span,
    )


def _coverage_of(
    coverage: Covered | None, window: timedelta, now: datetime, max_lag: timedelta
) -> Coverage:
    if coverage is None:
        return window_coverage(window, now, None, None, max_lag=max_lag)
    return window_coverage(window, now, coverage.covers_from, coverage.covers_to, max_lag=max_lag)


def _in_window(
    found: Sequence[object],
    describe: str,
    what: str,
    window: timedelta,
    now: datetime,
    coverage: Covered | None,
    max_lag: timedelta,
) -> Judgement:
    cov = _coverage_of(coverage, window, now, max_lag)
    numbers = {**cov.numbers, "found": len(found)}
    required = format_duration(window)
    if found:
        return _judgement(
            Verdict.FAIL,
            f"{len(found)} {what} in the last {required}: {describe}",
            found,
            **numbers,
        )
    if not cov.covered:
        return _judgement(Verdict.INCONCLUSIVE, f"no {what} seen, but {cov.message}", **numbers)
    return _judgement(Verdict.PASS, f"no {what} in the last {required} ({cov.message})", **numbers)


def count_events(
    events: Iterable[TimedEvent], kinds: Collection[str], start: datetime, end: datetime
) -> int:
    """How many events of ``kinds`` fall in ``start..end`` (both inclusive)."""
    start, end = _aware(start, "start"), _aware(end, "end")
    return sum(1 for e in events if e.kind in kinds and start <= e.at <= end)


def no_events_in_window(
    events: Iterable[TimedEvent],
    kinds: Collection[str],
    window: timedelta,
    now: datetime,
    coverage: Covered | None,
    *,
    what: str,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """FAIL if an event of ``kinds`` happened in the window, INCONCLUSIVE if none did but the
    history does not cover the window, PASS otherwise. ``what`` names the events (plural)."""
    now = _aware(now, "now")
    start = now - window
    found = [e for e in events if e.kind in kinds and start <= e.at <= now]
    describe = ", ".join(f"{e.kind} at {format_time(e.at)}" for e in found[:5])
    if len(found) > 5:
        describe += f" and {len(found) - 5} more"
    return _in_window(found, describe, what, window, now, coverage, max_lag)


def hold_downs_in_window(
    events: Iterable[TimedEvent],
    window: timedelta,
    now: datetime,
    coverage: Covered | None,
    *,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """Zero supervisor HoldDown events in the window (supervisor events or daemon log)."""
    return no_events_in_window(
        events,
        HOLD_DOWN_KINDS,
        window,
        now,
        coverage,
        what="supervisor HoldDown events",
        max_lag=max_lag,
    )


def hold_down_not_recovered(
    events: Iterable[TimedEvent],
    window: timedelta,
    now: datetime,
    coverage: Covered | None,
    *,
    grace: timedelta = timedelta(minutes=1),
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """Rollback signal "supervisor enters HoldDown and doesn't recover": FAIL when the latest
    hold-down in the window ended more than ``grace`` ago with no recovery after it."""
    now = _aware(now, "now")
    ordered = sorted((e for e in events if e.at <= now), key=lambda e: e.at)
    holds = [e for e in ordered if e.kind in HOLD_DOWN_KINDS and e.at >= now - window]
    if not holds:
        cov = _coverage_of(coverage, window, now, max_lag)
        verdict = Verdict.PASS if cov.covered else Verdict.INCONCLUSIVE
        return _judgement(verdict, f"no HoldDown in the window ({cov.message})", **cov.numbers)
    last = holds[-1]
    until = _hold_down_until(last)
    numbers = {"hold_down_at": last.at.isoformat(), "until": until.isoformat()}
    recovered = [e for e in ordered if e.kind in RECOVERY_KINDS and e.at >= last.at]
    if recovered:
        message = f"HoldDown at {format_time(last.at)} recovered at {format_time(recovered[0].at)}"
        return _judgement(Verdict.PASS, message, (last, recovered[0]), **numbers)
    if now < until + grace:
        message = (
            f"in HoldDown since {format_time(last.at)} until {format_time(until)}; "
            "recovery not due yet"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, (last,), **numbers)
    message = (
        f"HoldDown at {format_time(last.at)} ended {format_time(until)} and no recovery "
        f"followed in {format_duration(now - until)}: rollback immediately"
    )
    return _judgement(Verdict.FAIL, message, (last,), **numbers)


def _hold_down_until(event: TimedEvent) -> datetime:
    if isinstance(event, SupervisorEvent) and event.until_ms is not None:
        return ms_to_datetime(event.until_ms)
    seconds = event.values.get("seconds") if isinstance(event, LogEvent) else None
    if isinstance(seconds, int):
        return event.at + timedelta(seconds=seconds)
    return event.at + timedelta(milliseconds=RUNBOOK_RESTART_POLICY.holddown_ms)


# --- alerts ------------------------------------------------------------------------------


def _open_during(entry: AlertEntry, start: datetime, end: datetime) -> bool:
    resolved = entry.resolved_at
    return entry.created_at <= end and (resolved is None or resolved >= start)


def _describe_alerts(entries: Sequence[AlertEntry]) -> str:
    parts = []
    for e in entries[:5]:
        state = "open" if e.resolved_at is None else f"resolved {format_time(e.resolved_at)}"
        parts.append(
            f"{e.alert_id} {e.severity.label} from {e.source} "
            f"at {format_time(e.created_at)} ({state}): {e.message}"
        )
    if len(entries) > 5:
        parts.append(f"and {len(entries) - 5} more")
    return "; ".join(parts)


def alerts_at_or_above(
    entries: Iterable[AlertEntry],
    min_severity: Severity | str,
    window: timedelta,
    now: datetime,
    coverage: Covered | None,
    *,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """No alert of ``min_severity`` or above created or still open inside the window."""
    floor = (
        min_severity if isinstance(min_severity, Severity) else Severity.from_label(min_severity)
    )
    now = _aware(now, "now")
    found = [e for e in entries if e.severity >= floor and _open_during(e, now - window, now)]
    what = f"alerts at or above {floor.label}"
    return _in_window(found, _describe_alerts(found), what, window, now, coverage, max_lag)


def escalate_persisting(
    entries: Iterable[AlertEntry],
    longer_than: timedelta = timedelta(minutes=5),
    *,
    now: datetime,
    window: timedelta | None = None,
) -> Judgement:
    """Rollback signal "Escalate persists > 5 min": an Escalate open (until resolved, or until
    now) strictly longer than ``longer_than``. ``window`` limits it to entries open inside it."""
    now = _aware(now, "now")
    escalates = [
        e
        for e in entries
        if e.severity is Severity.ESCALATE
        and (window is None or _open_during(e, now - window, now))
    ]
    persisting = [e for e in escalates if (e.resolved_at or now) - e.created_at > longer_than]
    limit = format_duration(longer_than)
    if persisting:
        message = (
            f"{len(persisting)} Escalate alerts persisted longer than {limit}: "
            f"{_describe_alerts(persisting)}"
        )
        return _judgement(Verdict.FAIL, message, persisting, found=len(persisting))
    still_open = [e for e in escalates if e.resolved_at is None]
    message = f"no Escalate alert persisted longer than {limit}"
    if still_open:
        message += f" ({len(still_open)} open, younger than that: {_describe_alerts(still_open)})"
    return _judgement(Verdict.PASS, message, still_open, found=0, open=len(still_open))


def unresolved_escalates_in_window(
    entries: Iterable[AlertEntry],
    window: timedelta,
    now: datetime,
    coverage: Covered | None,
    *,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """ "No unresolved Escalate alerts in 7 days": no Escalate still unresolved at ``now``, judged
    on a ledger that covers the window (a restart that lost the ledger is INCONCLUSIVE)."""
    now = _aware(now, "now")
    found = [
        e
        for e in entries
        if e.severity is Severity.ESCALATE and e.resolved_at is None and e.created_at <= now
    ]
    what = "unresolved Escalate alerts"
    return _in_window(found, _describe_alerts(found), what, window, now, coverage, max_lag)


# --- latency -----------------------------------------------------------------------------


def latency_slo(latency_status_result: object, threshold_ms: int = 3000) -> Judgement:
    """Judge a ``latency_status`` result (DAEMON-FACTS 2.6, 7): only "healthy" with p95 within
    ``threshold_ms`` passes; "insufficient_data"/"not_started" are INCONCLUSIVE; "breached" and
    "degraded" FAIL; any other shape is UNOBSERVABLE."""
    result = latency_status_result
    if not isinstance(result, Mapping) or not isinstance(result.get("status"), str):
        return _judgement(
            Verdict.UNOBSERVABLE, f"latency_status answer has no status: {result!r:.200}"
        )
    status: str = result["status"]
    p95 = result.get("p95_ms")
    p95_ms = p95 if isinstance(p95, int) and not isinstance(p95, bool) else None
    numbers = {
        "status": status,
        "p95_ms": p95_ms,
        "threshold_ms": threshold_ms,
        "consecutive_breaches": result.get("consecutive_breaches"),
        "sample_count": result.get("sample_count"),
    }
    if status in ("not_started", "insufficient_data"):
        needed = result.get("min_required", 200)
        count = result.get("sample_count")
        message = f"latency SLO {status}: {count} of {needed} samples; proves nothing yet"
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    if status in ("breached", "degraded"):
        message = (
            f"latency SLO {status}: rolling p95 {p95_ms} ms > {threshold_ms} ms, "
            f"{result.get('consecutive_breaches')} consecutive breaching evaluations"
        )
        return _judgement(Verdict.FAIL, message, **numbers)
    if status != "healthy" or p95_ms is None:
        return _judgement(
            Verdict.UNOBSERVABLE,
            f"latency_status answer of unknown shape: {dict(result)!r:.200}",
            **numbers,
        )
    if p95_ms > threshold_ms:
        return _judgement(
            Verdict.FAIL, f"latency SLO: rolling p95 {p95_ms} ms > {threshold_ms} ms", **numbers
        )
    return _judgement(
        Verdict.PASS,
        f"latency SLO healthy: rolling p95 {p95_ms} ms <= {threshold_ms} ms",
        **numbers,
    )


# --- supervisor contract -----------------------------------------------------------------


def restart_policy_matches_contract(
    policy: RestartPolicy, contract: RestartPolicy = RUNBOOK_RESTART_POLICY
) -> Judgement:
    """Every ``RestartPolicy`` field equals the runbook's Supervisor Contract Reference."""
    mismatches = []
    numbers: dict[str, object] = {}
    for f in fields(RestartPolicy):
        got, want = getattr(policy, f.name), getattr(contract, f.name)
        numbers[f.name] = got
        if not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12):
            mismatches.append(f"{f.name} {got} (contract {want})")
    if mismatches:
        return _judgement(
            Verdict.FAIL,
            "restart policy differs from the contract: " + ", ".join(mismatches),
            **numbers,
        )
    return _judgement(Verdict.PASS, "restart policy matches the contract", **numbers)


def startup_order_matches(
    order: Sequence[str], expected: Sequence[str] = RUNBOOK_STARTUP_ORDER
) -> Judgement:
    """The startup order is exactly Sources -> Gateway -> Daemon -> Ui."""
    got, want = " -> ".join(order), " -> ".join(expected)
    if tuple(order) != tuple(expected):
        return _judgement(
            Verdict.FAIL, f"startup order is {got or '(empty)'}, contract is {want}", order=got
        )
    return _judgement(Verdict.PASS, f"startup order {got} matches the contract", order=got)


def supervisor_restart_regression(
    before_count: int,
    after_count: int,
    *,
    tolerance: int = 0,
    before: str = "before",
    after: str = "after",
) -> Judgement:
    """No regression: restarts ``after`` are at most those ``before`` plus ``tolerance``. The
    two counts must come from windows of equal length and the same kind of source."""
    numbers = {"before_count": before_count, "after_count": after_count, "tolerance": tolerance}
    if after_count > before_count + tolerance:
        message = f"supervisor restarts regressed: {after_count} {after} vs {before_count} {before}"
        return _judgement(Verdict.FAIL, message, **numbers)
    return _judgement(
        Verdict.PASS,
        f"supervisor restarts {after_count} {after} vs {before_count} {before}",
        **numbers,
    )


# --- selector ----------------------------------------------------------------------------


def selector_matches_phase(
    selector: RuntimeSelector,
    phase: str,
    sessions_v4: Collection[str] = (),
    sessions_v5: Collection[str] = (),
) -> Judgement:
    """The runtime selector is right for ``phase``: alpha and rollback route everything to v4
    with v5 disabled; canary keeps default v4, enables v5 and names canary sessions that exist
    on both daemons; gradual and cutover default to v5 with v5 enabled. (That no v4 sessions
    remain at cutover is a separate gate.)"""
    if phase not in PHASES:
        raise ConfigError(f"unknown phase {phase!r}; known: {', '.join(PHASES)}")
    s = selector
    shown = (
        f"default_daemon={s.default_daemon!r}, v5_enabled={str(s.v5_enabled).lower()}, "
        f"v5_canary_sessions={list(s.v5_canary_sessions)}"
    )
    problems = []
    want_default = "v5" if phase in ("gradual", "cutover") else "v4"
    want_enabled = phase not in ("alpha", "rollback")
    if s.default_daemon != want_default:
        problems.append(f"default_daemon must be {want_default!r}")
    if s.v5_enabled != want_enabled:
        problems.append(f"v5_enabled must be {str(want_enabled).lower()}")
    if phase == "canary":
        if not s.v5_canary_sessions:
            problems.append("v5_canary_sessions names no session")
        for name, present in (("v4", sessions_v4), ("v5", sessions_v5)):
            missing = [x for x in s.v5_canary_sessions if x not in present]
            if missing:
                problems.append(f"canary sessions missing on {name}: {', '.join(missing)}")
    numbers = {
        "phase": phase,
        "default_daemon": s.default_daemon,
        "v5_enabled": s.v5_enabled,
        "v5_canary_sessions": list(s.v5_canary_sessions),
    }
    if problems:
        return _judgement(
            Verdict.FAIL, f"selector wrong for {phase} ({shown}): " + "; ".join(problems), **numbers
        )
    return _judgement(Verdict.PASS, f"selector right for {phase}: {shown}", **numbers)


# --- cursor and binding counters ---------------------------------------------------------


def _counter_coverage(
    stats: CursorStats | BindingStats, window: timedelta, now: datetime, max_lag: timedelta
) -> Coverage:
    covers_from = ms_to_datetime(stats.covers_from_ms)
    return window_coverage(
        window, now, covers_from, ms_to_datetime(stats.as_of_ms), max_lag=max_lag
    )


def cursor_streaks(
    stats: CursorStats,
    *,
    now: datetime,
    window: timedelta | None = None,
    max_streak: int = 0,
    max_stall: timedelta = timedelta(minutes=5),
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """No invalid_cursor streak longer than ``max_streak``, no full resync, committed never
    ahead of fetched, and watermarks that advanced within ``max_stall`` of now. With a
    ``window``, the counters must have been counted over all of it."""
    now = _aware(now, "now")
    since = format_time(ms_to_datetime(stats.covers_from_ms))
    numbers = {
        "fetched": stats.fetched,
        "committed": stats.committed,
        "invalid_streak": stats.invalid_streak,
        "max_invalid_streak": stats.max_invalid_streak,
        "full_resync_count": stats.full_resync_count,
        "retry_count": stats.retry_count,
        "last_advanced_at_ms": stats.last_advanced_at_ms,
        "covers_from_ms": stats.covers_from_ms,
    }
    problems = []
    if stats.full_resync_count:
        problems.append(f"{stats.full_resync_count} full resyncs since {since}")
    if stats.max_invalid_streak > max_streak:
        problems.append(
            f"invalid_cursor streak reached {stats.max_invalid_streak} since {since} "
            f"(now {stats.invalid_streak}; allowed {max_streak})"
        )
    if stats.committed > stats.fetched:
        problems.append(
            f"committed watermark {stats.committed} is ahead of fetched {stats.fetched}"
        )
    if problems:
        return _judgement(Verdict.FAIL, "cursor: " + "; ".join(problems), (stats,), **numbers)
    last = None if stats.last_advanced_at_ms is None else ms_to_datetime(stats.last_advanced_at_ms)
    if last is None or now - last > max_stall:
        when = "never" if last is None else f"last at {format_time(last)}"
        message = (
            f"cursor watermarks advanced {when} (allowed stall {format_duration(max_stall)}); "
            "no activity shows that they advance"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, (stats,), **numbers)
    if window is not None:
        cov = _counter_coverage(stats, window, now, max_lag)
        if not cov.covered:
            message = f"no cursor streak or full resync seen, but the counters' {cov.message}"
            return _judgement(Verdict.INCONCLUSIVE, message, (stats,), **numbers)
    message = (
        f"no invalid_cursor streak or full resync since {since}; watermarks advanced at "
        f"{format_time(last)} (fetched {stats.fetched}, committed {stats.committed})"
    )
    return _judgement(Verdict.PASS, message, (stats,), **numbers)


def cas_conflicts(
    stats: BindingStats,
    window: timedelta,
    now: datetime,
    *,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """Binding CAS conflicts = 0 inside the window, on a counter that covers the window."""
    now = _aware(now, "now")
    cov = _counter_coverage(stats, window, now, max_lag)
    numbers = {
        **cov.numbers,
        "cas_conflicts": stats.cas_conflicts,
        "last_conflict_at_ms": stats.last_conflict_at_ms,
    }
    last = None if stats.last_conflict_at_ms is None else ms_to_datetime(stats.last_conflict_at_ms)
    if stats.cas_conflicts and last is not None and last >= now - window:
        message = (
            f"{stats.cas_conflicts} CAS conflicts since "
            f"{format_time(ms_to_datetime(stats.covers_from_ms))}, the last at "
            f"{format_time(last)} inside the {format_duration(window)} window"
        )
        return _judgement(Verdict.FAIL, message, (stats,), **numbers)
    if not cov.covered:
        message = f"no CAS conflict seen in the window, but the counter's {cov.message}"
        return _judgement(Verdict.INCONCLUSIVE, message, (stats,), **numbers)
    message = f"0 CAS conflicts in the last {format_duration(window)}"
    return _judgement(Verdict.PASS, message, (stats,), **numbers)


# --- build -------------------------------------------------------------------------------


def build_passes(build_result: BuildResult, min_tests: int = 456) -> Judgement:
    """No failing or erroring test and at least ``min_tests`` tests that passed."""
    b = build_result
    numbers = {
        "tests": b.tests,
        "passed": b.passed,
        "failures": b.failures,
        "errors": b.errors,
        "skipped": b.skipped,
        "min_tests": min_tests,
    }
    totals = (
        f"{b.tests} tests: {b.passed} passed, {b.failures} failed, "
        f"{b.errors} errors, {b.skipped} skipped"
    )
    if b.failures or b.errors:
        failing = ", ".join(b.failing[:10]) + (
            f" and {len(b.failing) - 10} more" if len(b.failing) > 10 else ""
        )
        return _judgement(Verdict.FAIL, f"v5 build fails ({totals}): {failing}", **numbers)
    if b.passed < min_tests:
        return _judgement(
            Verdict.FAIL,
            f"v5 build ran too few tests ({totals}; need {min_tests}+ passing)",
            **numbers,
        )
    return _judgement(Verdict.PASS, f"v5 build passes ({totals})", **numbers)
