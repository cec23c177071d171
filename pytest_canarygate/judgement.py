"""Pure judgements the gates call: evidence in, a :class:`Judgement` out, never an exception.

Fail closed: PASS only on positive evidence. A violation found is FAIL even when the history is
incomplete; no violation in a history that does not cover the whole window is INCONCLUSIVE and
the message gives the span covered; an answer of unknown shape is UNOBSERVABLE. Windows and
thresholds are parameters whose defaults are the runbook's numbers. Every ``now`` and history
bound is an aware datetime (naive ones raise ValueError: that is a programming error).
"""

from __future__ import annotations

import math
import re
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
from pytest_canarygate.providers.records import ArchiveManifest
from pytest_canarygate.providers.records import BindingStats
from pytest_canarygate.providers.records import BuildResult
from pytest_canarygate.providers.records import CursorStats
from pytest_canarygate.providers.records import LogEvent
from pytest_canarygate.providers.records import RestartPolicy
from pytest_canarygate.providers.records import RuntimeSelector
from pytest_canarygate.providers.records import Severity
from pytest_canarygate.providers.records import SnapshotMetadata
from pytest_canarygate.providers.records import SupervisorEvent
from pytest_canarygate.providers.records import SupervisorStatus
from pytest_canarygate.providers.records import ms_to_datetime
from pytest_canarygate.verdicts import GateFailed
from pytest_canarygate.verdicts import Inconclusive
from pytest_canarygate.verdicts import Unobservable
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
    "archive_retained",
    "backup_snapshot",
    "build_passes",
    "canary_sessions_on",
    "canary_usage",
    "cas_conflicts",
    "count_events",
    "cursor_full_resyncs",
    "cursor_streaks",
    "enforce",
    "escalate_persisting",
    "format_duration",
    "format_time",
    "hold_down_not_recovered",
    "hold_down_state",
    "hold_downs_in_window",
    "jitter_matches_contract",
    "latency_breach_signal",
    "latency_slo",
    "newest_snapshot_recorded",
    "no_events_in_window",
    "periodic_snapshot_fresh",
    "restart_policy_matches_contract",
    "restart_regression",
    "restore_dry_run",
    "restore_dry_run_latest",
    "selector_matches_phase",
    "sessions_served_by",
    "sources_healthy",
    "startup_order_matches",
    "supervisor_ready",
    "supervisor_restart_regression",
    "unresolved_escalates_in_window",
    "uptime_at_least",
    "window_coverage",
    "zero_sessions",
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


def hold_down_state(
    status: SupervisorStatus, now: datetime, *, grace: timedelta = timedelta(minutes=1)
) -> Judgement:
    """The supervisor's current state against the same signal: still HoldDown more than
    ``grace`` after ``until_ms`` means it did not recover (HoldDown is sticky until the next
    outcome is recorded, DAEMON-FACTS 5.3); HoldDown not yet over is INCONCLUSIVE."""
    now = _aware(now, "now")
    state = status.state
    numbers = {"state": state.name, "until_ms": state.until_ms}
    if state.name != "HoldDown":
        return _judgement(Verdict.PASS, f"supervisor state {state.name}, not HoldDown", **numbers)
    until = ms_to_datetime(state.until_ms or 0)
    if now < until + grace:
        message = f"supervisor in HoldDown until {format_time(until)}; recovery not due yet"
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    message = (
        f"supervisor still in HoldDown {format_duration(now - until)} after it ended at "
        f"{format_time(until)}: it did not recover, rollback immediately"
    )
    return _judgement(Verdict.FAIL, message, **numbers)


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
    policy: RestartPolicy,
    contract: RestartPolicy = RUNBOOK_RESTART_POLICY,
    *,
    only: Collection[str] | None = None,
) -> Judgement:
    """Every ``RestartPolicy`` field (or the fields named in ``only``) equals the runbook's
    Supervisor Contract Reference."""
    names = [f.name for f in fields(RestartPolicy)]
    if only is not None:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ValueError(f"not RestartPolicy fields: {', '.join(unknown)}")
        names = [n for n in names if n in only]
    mismatches = []
    numbers: dict[str, object] = {}
    for name in names:
        got, want = getattr(policy, name), getattr(contract, name)
        numbers[name] = got
        if not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12):
            mismatches.append(f"{name} {got} (contract {want})")
    if mismatches:
        return _judgement(
            Verdict.FAIL,
            "restart policy differs from the contract: " + ", ".join(mismatches),
            **numbers,
        )
    if only is None:
        return _judgement(Verdict.PASS, "restart policy matches the contract", **numbers)
    shown = ", ".join(f"{name} {numbers[name]}" for name in names)
    return _judgement(Verdict.PASS, f"restart policy {shown} matches the contract", **numbers)


def jitter_matches_contract(
    status: SupervisorStatus, contract: RestartPolicy = RUNBOOK_RESTART_POLICY
) -> Judgement:
    """The declared jitter equals the contract's (±20%). Whether the runtime applies it is only
    judged when the status exposes ``jitter_applied``: false FAILs; absent is said in the
    message (RPC cannot show it) and the declared value decides."""
    declared = restart_policy_matches_contract(status.policy, contract, only=("jitter_pct",))
    numbers = {**declared.numbers, "jitter_applied": status.jitter_applied}
    if not declared.passed:
        return _judgement(Verdict.FAIL, declared.message, **numbers)
    pct = f"±{status.policy.jitter_pct * 100:g}%"
    if status.jitter_applied is False:
        message = (
            f"declared jitter {pct} matches the contract, but the supervisor reports "
            "jitter_applied = false: the runtime does not apply it"
        )
        return _judgement(Verdict.FAIL, message, **numbers)
    if status.jitter_applied:
        message = f"jitter {pct} declared and applied by the runtime (jitter_applied = true)"
        return _judgement(Verdict.PASS, message, **numbers)
    message = (
        f"declared jitter {pct} (jitter_pct {status.policy.jitter_pct}) matches the contract; "
        "that the runtime applies it is not observable over RPC (ops.supervisor_status does "
        "not expose jitter_applied)"
    )
    return _judgement(Verdict.PASS, message, **numbers)


def supervisor_ready(
    status: SupervisorStatus, expected_order: Sequence[str] = RUNBOOK_STARTUP_ORDER
) -> Judgement:
    """Phase 1 step 3: the supervisor is Ready, starts the stages in the contract's order, and
    every stage's DependencyGate showed ``all_ready()`` (a stage without a gate is a problem)."""
    problems = []
    state = status.state
    if state.name != "Ready":
        detail = {
            "Restarting": f" (attempt {state.attempt}, next restart at "
            f"{format_time(ms_to_datetime(state.next_restart_ms or 0))})",
            "HoldDown": f" until {format_time(ms_to_datetime(state.until_ms or 0))}",
        }.get(state.name, "")
        problems.append(f"supervisor state {state.name}{detail}, not Ready")
    order = startup_order_matches(status.startup_order, expected_order)
    if not order.passed:
        problems.append(order.message)
    gates = {g.stage: g for g in status.dependency_gates}
    for stage in expected_order:
        gate = gates.get(stage)
        if gate is None:
            problems.append(f"no DependencyGate reported for stage {stage}")
        elif not gate.all_ready:
            problems.append(
                f"{stage} DependencyGate not all_ready: unready {', '.join(gate.unready)}"
            )
    numbers = {
        "state": state.name,
        "startup_order": list(status.startup_order),
        "all_ready": {g.stage: g.all_ready for g in status.dependency_gates},
    }
    if problems:
        return _judgement(Verdict.FAIL, "; ".join(problems), **numbers)
    message = (
        f"supervisor Ready, startup order {' -> '.join(status.startup_order)}, every stage's "
        "DependencyGate all_ready"
    )
    return _judgement(Verdict.PASS, message, **numbers)


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


# --- snapshots (more) --------------------------------------------------------------------

SNAPSHOT_ID = re.compile(r"snap-[1-9][0-9]*")
"""``snap-{id}`` (DAEMON-FACTS 4.2)."""


def _age(snapshot: SnapshotMetadata, now_ms: int) -> timedelta:
    return timedelta(milliseconds=max(0, now_ms - snapshot.created_at_ms))


def _describe_snapshot(snapshot: SnapshotMetadata, now_ms: int) -> str:
    return (
        f"{snapshot.snapshot_id} ({snapshot.trigger}, version {snapshot.projection_version}, "
        f"taken {format_duration(_age(snapshot, now_ms))} ago)"
    )


def restore_dry_run_latest(
    snapshots: Sequence[SnapshotMetadata],
    current_version: int,
    now_ms: int,
    max_age_ms: int = 600_000,
) -> Judgement:
    """The restore dry-run recomputed on the newest snapshot; no snapshot at all FAILs."""
    if not snapshots:
        return _judgement(
            Verdict.FAIL,
            "no snapshot is retained: there is nothing a restore could start from",
            snapshots=0,
            current_version=current_version,
        )
    newest = max(snapshots, key=lambda s: (s.created_at_ms, s.snapshot_id))
    return restore_dry_run(newest, current_version, now_ms, max_age_ms)


def newest_snapshot_recorded(
    snapshots: Sequence[SnapshotMetadata], now_ms: int, max_age_ms: int = 600_000
) -> Judgement:
    """A snapshot was taken at the current state: the newest one has ``snap-<n>`` metadata and
    is no older than ``max_age_ms`` (DAEMON-FACTS 4.2, 4.3)."""
    if not snapshots:
        return _judgement(Verdict.FAIL, "no snapshot is retained", snapshots=0)
    newest = max(snapshots, key=lambda s: (s.created_at_ms, s.snapshot_id))
    age_ms = max(0, now_ms - newest.created_at_ms)
    numbers = {
        "snapshot_id": newest.snapshot_id,
        "trigger": newest.trigger,
        "age_ms": age_ms,
        "max_age_ms": max_age_ms,
        "snapshots": len(snapshots),
    }
    shown = _describe_snapshot(newest, now_ms)
    if not SNAPSHOT_ID.fullmatch(newest.snapshot_id):
        return _judgement(
            Verdict.FAIL,
            f"newest snapshot id {newest.snapshot_id!r} is not snap-<n> metadata",
            (newest,),
            **numbers,
        )
    if age_ms > max_age_ms:
        return _judgement(
            Verdict.FAIL,
            f"newest snapshot {shown} is too old: age_ms {age_ms} > max_age_ms {max_age_ms}",
            (newest,),
            **numbers,
        )
    return _judgement(Verdict.PASS, f"snapshot {shown} recorded", (newest,), **numbers)


def periodic_snapshot_fresh(
    snapshots: Sequence[SnapshotMetadata], now_ms: int, interval_ms: int = 300_000
) -> Judgement:
    """The SnapshotManager is running: a Periodic snapshot younger than two intervals. (That
    shutdown snapshots are enabled shows only at a shutdown; retained ones are counted.)"""
    periodic = [s for s in snapshots if s.trigger == "Periodic"]
    shutdown = sum(1 for s in snapshots if s.trigger == "Shutdown")
    limit_ms = 2 * interval_ms
    numbers: dict[str, object] = {
        "snapshots": len(snapshots),
        "periodic": len(periodic),
        "shutdown": shutdown,
        "interval_ms": interval_ms,
    }
    if not periodic:
        message = (
            f"no Periodic snapshot among {len(snapshots)} retained: the periodic timer is "
            "not running"
        )
        return _judgement(Verdict.FAIL, message, **numbers)
    newest = max(periodic, key=lambda s: (s.created_at_ms, s.snapshot_id))
    age_ms = max(0, now_ms - newest.created_at_ms)
    numbers["periodic_age_ms"] = age_ms
    shown = _describe_snapshot(newest, now_ms)
    limit = format_duration(timedelta(milliseconds=limit_ms))
    if age_ms >= limit_ms:
        message = (
            f"newest Periodic snapshot {shown} is older than two intervals ({limit}): "
            "the periodic timer has stopped"
        )
        return _judgement(Verdict.FAIL, message, (newest,), **numbers)
    message = (
        f"newest Periodic snapshot {shown} is within two intervals ({limit}); "
        f"{shutdown} Shutdown snapshots retained"
    )
    return _judgement(Verdict.PASS, message, (newest,), **numbers)


def backup_snapshot(snapshots: Sequence[SnapshotMetadata], now_ms: int) -> Judgement:
    """A backup was taken: at least one Manual snapshot is retained."""
    manual = sorted((s for s in snapshots if s.trigger == "Manual"), key=lambda s: s.created_at_ms)
    numbers = {"snapshots": len(snapshots), "manual": len(manual)}
    if not manual:
        triggers = ", ".join(sorted({s.trigger for s in snapshots})) or "none"
        message = (
            f"no Manual snapshot (backup) among {len(snapshots)} retained (triggers: {triggers})"
        )
        return _judgement(Verdict.FAIL, message, **numbers)
    return _judgement(
        Verdict.PASS,
        f"backup taken: Manual snapshot {_describe_snapshot(manual[-1], now_ms)}",
        (manual[-1],),
        **numbers,
    )


# --- uptime ------------------------------------------------------------------------------


def uptime_at_least(
    uptime: timedelta, required: timedelta, *, now: datetime, who: str = "v5"
) -> Judgement:
    """The daemon has run without a restart for at least ``required`` (INCONCLUSIVE before)."""
    now = _aware(now, "now")
    started = now - uptime
    numbers = {
        "uptime_s": uptime.total_seconds(),
        "required_s": required.total_seconds(),
        "started_at": started.isoformat(),
    }
    shown = f"{who} up {format_duration(uptime)} (started {format_time(started)})"
    if uptime < required:
        message = f"{shown}, less than the required {format_duration(required)}"
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    return _judgement(Verdict.PASS, f"{shown} >= {format_duration(required)}", **numbers)


# --- source health (DAEMON-FACTS 2.3, 2.9, 9) ---------------------------------------------

SOURCE_STATUSES = ("healthy", "degraded", "down")
LIFECYCLES = ("pending", "active", "stale", "revoked")


def sources_healthy(
    health_result: object,
    registry_result: object,
    expected_healthy: Collection[str],
    *,
    who: str = "v5",
) -> Judgement:
    """All registered sources ``active`` (no stale, pending or revoked) and every expected
    source reporting "healthy" in ``list_source_health``. Answers of unknown shape are
    UNOBSERVABLE."""
    statuses: dict[str, str] = {}
    if not isinstance(health_result, list):
        return _judgement(
            Verdict.UNOBSERVABLE,
            f"{who} list_source_health: expected a list, got {health_result!r:.100}",
        )
    for index, entry in enumerate(health_result):
        pair = entry if isinstance(entry, list | tuple) and len(entry) == 2 else (None, None)
        kind, report = pair
        status = report.get("status") if isinstance(report, Mapping) else None
        if not isinstance(kind, str) or status not in SOURCE_STATUSES:
            return _judgement(
                Verdict.UNOBSERVABLE,
                f"{who} list_source_health: element {index} is not [kind, {{status}}]: "
                f"{entry!r:.100}",
            )
        statuses[kind] = status
    lifecycles: dict[str, str] = {}
    if not isinstance(registry_result, list):
        return _judgement(
            Verdict.UNOBSERVABLE,
            f"{who} list_source_registry: expected a list, got {registry_result!r:.100}",
        )
    for index, entry in enumerate(registry_result):
        source_id = entry.get("source_id") if isinstance(entry, Mapping) else None
        lifecycle = entry.get("lifecycle") if isinstance(entry, Mapping) else None
        if not isinstance(source_id, str) or lifecycle not in LIFECYCLES:
            return _judgement(
                Verdict.UNOBSERVABLE,
                f"{who} list_source_registry: element {index} has no source_id and lifecycle: "
                f"{entry!r:.100}",
            )
        lifecycles[source_id] = lifecycle
    problems = [
        f"registered source {sid} is {state}, not active"
        for sid, state in sorted(lifecycles.items())
        if state != "active"
    ]
    for kind in expected_healthy:
        status = statuses.get(kind)
        if status is None:
            problems.append(f"source {kind} is not reported by list_source_health")
        elif status != "healthy":
            problems.append(f"source {kind} is {status}, not healthy")
    numbers = {"health": statuses, "registry": lifecycles, "expected": list(expected_healthy)}
    if problems:
        return _judgement(Verdict.FAIL, f"{who} sources: " + "; ".join(problems), **numbers)
    if not expected_healthy and not lifecycles:
        message = (
            f"{who}: no source is expected healthy and none is registered; nothing proves health"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    registry = f"{len(lifecycles)} registered, all active" if lifecycles else "registry empty"
    healthy = ", ".join(f"{k} healthy" for k in expected_healthy) or "none expected"
    return _judgement(Verdict.PASS, f"{who} sources: {healthy}; {registry}", **numbers)


# --- rollback signals --------------------------------------------------------------------


def latency_breach_signal(latency_status_result: object, breach_windows: int = 3) -> Judgement:
    """Rollback signal "latency p95 breach > 3 consecutive windows": FAIL (the signal fired)
    when ``consecutive_breaches`` reached ``breach_windows`` or the status is "degraded"; PASS
    on "healthy" or a shorter "breached" streak; INCONCLUSIVE when the daemon reports no
    evaluation (DAEMON-FACTS 2.6: "insufficient_data" always reports 0 breaches)."""
    base = latency_slo(latency_status_result)
    if base.verdict is Verdict.UNOBSERVABLE:
        return base
    numbers = {**base.numbers, "breach_windows": breach_windows}
    status = numbers["status"]
    streak = numbers.get("consecutive_breaches")
    count = streak if isinstance(streak, int) and not isinstance(streak, bool) else 0
    if status == "degraded" or count >= breach_windows:
        message = (
            f"latency signal fired: status {status}, {count} consecutive breaching "
            f"evaluations (>= {breach_windows}), p95 {numbers['p95_ms']} ms: rollback, investigate"
        )
        return _judgement(Verdict.FAIL, message, **numbers)
    if status in ("not_started", "insufficient_data"):
        return _judgement(
            Verdict.INCONCLUSIVE, f"latency signal not checkable: {base.message}", **numbers
        )
    message = (
        f"latency signal absent: status {status}, {count} consecutive breaching evaluations "
        f"(< {breach_windows}), p95 {numbers['p95_ms']} ms"
    )
    return _judgement(Verdict.PASS, message, **numbers)


def cursor_full_resyncs(stats: CursorStats) -> Judgement:
    """Rollback signal "cursor FullResync triggered": FAIL for any full resync counted since
    ``covers_from_ms`` (the counters cannot say when inside that span)."""
    since = format_time(ms_to_datetime(stats.covers_from_ms))
    numbers = {
        "full_resync_count": stats.full_resync_count,
        "covers_from_ms": stats.covers_from_ms,
        "as_of_ms": stats.as_of_ms,
    }
    if stats.full_resync_count:
        message = (
            f"cursor FullResync triggered {stats.full_resync_count} times since {since} "
            f"(invalid_cursor streak reached {stats.max_invalid_streak}): investigate, "
            "consider rollback"
        )
        return _judgement(Verdict.FAIL, message, (stats,), **numbers)
    return _judgement(
        Verdict.PASS, f"no cursor FullResync since {since} (cursor stats)", (stats,), **numbers
    )


# --- supervisor restarts -----------------------------------------------------------------


def restart_regression(
    events: Iterable[TimedEvent],
    now: datetime,
    coverage: Covered | None,
    *,
    period: timedelta = timedelta(days=7),
    tolerance: int = 0,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """No regression in supervisor restart counts: restarts in the last ``period`` against the
    ``period`` before it, on a history that covers both (else INCONCLUSIVE with the span)."""
    now = _aware(now, "now")
    events = list(events)
    middle = now - period
    tick = timedelta(microseconds=1)
    before = count_events(events, RESTART_KINDS, middle - period, middle - tick)
    after = count_events(events, RESTART_KINDS, middle, now)
    span = format_duration(period)
    judged = supervisor_restart_regression(
        before,
        after,
        tolerance=tolerance,
        before=f"in the {span} before ({format_time(middle - period)}..{format_time(middle)})",
        after=f"in the last {span}",
    )
    cov = _coverage_of(coverage, 2 * period, now, max_lag)
    numbers = {**judged.numbers, **cov.numbers}
    if not cov.covered:
        message = (
            f"restart counts not comparable ({after} in the last {span}, {before} in the "
            f"{span} before): {cov.message}"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    return _judgement(judged.verdict, judged.message, **numbers)


# --- the v4 binary archive ---------------------------------------------------------------


def archive_retained(
    manifest: ArchiveManifest, now: datetime, retention: timedelta = timedelta(days=30)
) -> Judgement:
    """The v4 binary is archived, not deleted: present beside its manifest with the manifest's
    sha256, retained for at least ``retention`` after archiving, and still retained now."""
    now = _aware(now, "now")
    m = manifest
    numbers = {
        "binary": m.binary,
        "present": m.present,
        "sha256": m.sha256,
        "actual_sha256": m.actual_sha256,
        "archived_at_ms": m.archived_at_ms,
        "retain_until_ms": m.retain_until_ms,
        "retention_s": retention.total_seconds(),
    }
    problems = []
    if not m.present:
        problems.append(f"binary {m.binary} is not beside its manifest (deleted?)")
    elif m.actual_sha256 != m.sha256:
        problems.append(
            f"binary {m.binary} sha256 {m.actual_sha256} differs from the manifest's {m.sha256}"
        )
    declared = m.retain_until - m.archived_at
    if declared < retention:
        problems.append(
            f"retained {format_duration(declared)} ({format_time(m.archived_at)}.."
            f"{format_time(m.retain_until)}), less than {format_duration(retention)}"
        )
    if m.retain_until < now:
        problems.append(f"retention ended {format_time(m.retain_until)}, before now")
    if problems:
        return _judgement(
            Verdict.FAIL, "v4 binary archive: " + "; ".join(problems), (m,), **numbers
        )
    message = (
        f"v4 binary {m.binary} archived {format_time(m.archived_at)}, sha256 matches, retained "
        f"until {format_time(m.retain_until)} (>= {format_duration(retention)})"
    )
    return _judgement(Verdict.PASS, message, (m,), **numbers)


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


# --- sessions across daemons (list_panes / list_sessions records) -------------------------

Pane = Mapping[str, object]


def _by_session(panes: Iterable[Pane]) -> dict[str, list[Pane]]:
    sessions: dict[str, list[Pane]] = {}
    for pane in panes:
        name = pane.get("session_name")
        if isinstance(name, str):
            sessions.setdefault(name, []).append(pane)
    return sessions


def _managed_count(panes: Iterable[Pane]) -> int:
    return sum(1 for p in panes if p.get("presence") == "managed")


def zero_sessions(
    agent_sessions: Sequence[Mapping[str, object]], panes: Sequence[Pane], *, who: str = "v4"
) -> Judgement:
    """No session left on ``who``: its ``list_sessions`` is empty and it manages no pane."""
    managed = [p for p in panes if p.get("presence") == "managed"]
    numbers = {"agent_sessions": len(agent_sessions), "managed_panes": len(managed)}
    if agent_sessions or managed:
        tmux = sorted(_by_session(managed))
        keys = [str(s.get("session_key")) for s in agent_sessions[:5]]
        message = (
            f"{who} still serves {len(agent_sessions)} agent sessions "
            f"({', '.join(keys)}{', ...' if len(agent_sessions) > 5 else ''}) and manages "
            f"{len(managed)} panes in tmux sessions {', '.join(tmux) or '(none named)'}"
        )
        return _judgement(Verdict.FAIL, message, **numbers)
    return _judgement(
        Verdict.PASS, f"zero {who} sessions: no agent session, no managed pane", **numbers
    )


def sessions_served_by(
    source: Sequence[Pane], target: Sequence[Pane], *, src: str = "v5", dst: str = "v4"
) -> Judgement:
    """Every tmux session ``src`` shows is present on ``dst``, and where ``src`` manages panes
    in it, ``dst`` manages at least one there too."""
    seen, served = _by_session(source), _by_session(target)
    problems = []
    for name, session_panes in sorted(seen.items()):
        if name not in served:
            problems.append(f"session {name} is not on {dst}")
        elif _managed_count(session_panes) and not _managed_count(served[name]):
            problems.append(
                f"session {name}: {src} manages {_managed_count(session_panes)} panes, {dst} none"
            )
    numbers = {
        f"{src}_sessions": sorted(seen),
        f"{dst}_sessions": sorted(served),
        "problems": len(problems),
    }
    if problems:
        return _judgement(
            Verdict.FAIL,
            f"{len(problems)} of {len(seen)} sessions seen on {src} not served by {dst}: "
            + "; ".join(problems),
            **numbers,
        )
    if not seen:
        return _judgement(
            Verdict.INCONCLUSIVE, f"no tmux session seen on {src}: nothing to check", **numbers
        )
    return _judgement(
        Verdict.PASS,
        f"all {len(seen)} sessions seen on {src} are served by {dst}: {', '.join(sorted(seen))}",
        **numbers,
    )


def canary_sessions_on(
    selector: RuntimeSelector, panes: Sequence[Pane], *, who: str = "v5"
) -> Judgement:
    """Every canary session the selector names is present on ``who`` with a managed pane."""
    sessions = _by_session(panes)
    counts = {name: _managed_count(sessions.get(name, ())) for name in selector.v5_canary_sessions}
    problems = []
    for name, count in counts.items():
        if name not in sessions:
            problems.append(f"canary session {name} is not on {who}")
        elif not count:
            problems.append(f"canary session {name} has no managed pane on {who}")
    numbers = {"canary_sessions": list(selector.v5_canary_sessions), "managed_panes": counts}
    if not selector.v5_canary_sessions:
        return _judgement(Verdict.FAIL, "the selector names no canary session", **numbers)
    if problems:
        return _judgement(Verdict.FAIL, "; ".join(problems), **numbers)
    shown = ", ".join(f"{name} ({count} managed panes)" for name, count in counts.items())
    return _judgement(Verdict.PASS, f"canary sessions managed on {who}: {shown}", **numbers)


def canary_usage(selector: RuntimeSelector, panes: Sequence[Pane], *, who: str = "v5") -> Judgement:
    """The canary has active usage: at least one managed pane in the canary sessions on
    ``who`` (INCONCLUSIVE otherwise: an idle canary proves nothing)."""
    sessions = _by_session(panes)
    counts = {name: _managed_count(sessions.get(name, ())) for name in selector.v5_canary_sessions}
    shown = ", ".join(f"{name} {count}" for name, count in counts.items()) or "none named"
    numbers = {"managed_panes": counts}
    if sum(counts.values()):
        return _judgement(
            Verdict.PASS, f"managed panes in canary sessions on {who}: {shown}", **numbers
        )
    message = f"no managed pane in any canary session on {who} ({shown}): no active usage"
    return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
