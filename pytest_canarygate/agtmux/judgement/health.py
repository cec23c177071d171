"""Judgements on how healthy a running daemon is: whether it is ready at all, the latency SLO and
its rollback signal (the current evaluation and the SLO lines of its log over a window), source
health and the source registry (daemon facts 2.3, 2.9, 9), the cursor and binding counters
(invalid_cursor streaks, full resyncs, CAS conflicts), and its uptime without a restart; and
whether the v5 build it runs passes its tests.
"""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from pytest_canarygate.agtmux.judgement.core import Coverage
from pytest_canarygate.agtmux.judgement.core import Covered
from pytest_canarygate.agtmux.judgement.core import Judgement
from pytest_canarygate.agtmux.judgement.core import _aware
from pytest_canarygate.agtmux.judgement.core import _judgement
from pytest_canarygate.agtmux.judgement.core import format_duration
from pytest_canarygate.agtmux.judgement.core import format_time
from pytest_canarygate.agtmux.judgement.history import DEFAULT_MAX_LAG
from pytest_canarygate.agtmux.judgement.history import coverage_of
from pytest_canarygate.agtmux.judgement.history import selector_serves_canary
from pytest_canarygate.agtmux.judgement.history import window_coverage
from pytest_canarygate.agtmux.judgement.history import window_end
from pytest_canarygate.agtmux.protocol import Change
from pytest_canarygate.agtmux.records import BindingStats
from pytest_canarygate.agtmux.records import BuildResult
from pytest_canarygate.agtmux.records import CursorStats
from pytest_canarygate.agtmux.records import LogEvent
from pytest_canarygate.agtmux.records import RuntimeSelector
from pytest_canarygate.agtmux.records import ms_to_datetime
from pytest_canarygate.verdicts import Verdict

# --- latency -----------------------------------------------------------------------------


LATENCY_STATUSES = ("not_started", "insufficient_data", "healthy", "breached", "degraded")
"""The statuses ``latency_status`` answers (daemon facts 2.6, 7.4)."""
_NO_P95 = ("not_started", "insufficient_data")


@dataclass(frozen=True)
class LatencyStatus:
    """A ``latency_status`` answer, checked (daemon facts 2.6): ``p95_ms`` is None only while
    no evaluation ran (not_started, insufficient_data)."""

    status: str
    p95_ms: int | None
    consecutive_breaches: int
    sample_count: int
    min_required: int | None = None


def _count(value: object) -> bool:
    return type(value) is int and value >= 0


def _shown(value: object) -> str:
    text = "missing" if value is _ABSENT else repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


_ABSENT = object()


def decode_latency_status(result: object) -> LatencyStatus | str:
    """The ``latency_status`` answer checked, or one line saying what is wrong with it: the
    status must be one of :data:`LATENCY_STATUSES`; ``consecutive_breaches`` and
    ``sample_count`` non-negative integers (never booleans, floats, strings or null);
    ``p95_ms`` a non-negative integer, or null while no evaluation ran; ``min_required``, when
    present, a non-negative integer."""
    if not isinstance(result, Mapping):
        return f"latency_status answer is not an object: {result!r:.120}"
    status = result.get("status", _ABSENT)
    if status not in LATENCY_STATUSES:
        return (
            f"latency_status answer has status {_shown(status)}, not one of "
            f"{', '.join(LATENCY_STATUSES)}"
        )
    problems = [
        f"{name} {_shown(result.get(name, _ABSENT))}"
        for name in ("consecutive_breaches", "sample_count")
        if not _count(result.get(name, _ABSENT))
    ]
    p95 = result.get("p95_ms", _ABSENT)
    if not (_count(p95) or (p95 is None and status in _NO_P95)):
        problems.append(f"p95_ms {_shown(p95)}")
    minimum = result.get("min_required")
    if minimum is not None and not _count(minimum):
        problems.append(f"min_required {_shown(minimum)}")
    if problems:
        return (
            f"latency_status answer ({status}) is malformed: {', '.join(problems)} "
            "(each must be an integer >= 0"
            + (", p95_ms null only before an evaluation)" if status in _NO_P95 else ")")
        )
    return LatencyStatus(
        status=str(status),
        p95_ms=p95 if isinstance(p95, int) else None,
        consecutive_breaches=int(result["consecutive_breaches"]),
        sample_count=int(result["sample_count"]),
        min_required=minimum if isinstance(minimum, int) else None,
    )


def latency_slo(latency_status_result: object, threshold_ms: int = 3000) -> Judgement:
    """Judge a ``latency_status`` result (daemon facts 2.6, 7): only "healthy" with p95 within
    ``threshold_ms`` passes; "insufficient_data"/"not_started" are INCONCLUSIVE; "breached" and
    "degraded" FAIL; an answer :func:`decode_latency_status` refuses is UNOBSERVABLE."""
    decoded = decode_latency_status(latency_status_result)
    if isinstance(decoded, str):
        return _judgement(Verdict.UNOBSERVABLE, decoded)
    status, p95_ms = decoded.status, decoded.p95_ms
    numbers = {
        "status": status,
        "p95_ms": p95_ms,
        "threshold_ms": threshold_ms,
        "consecutive_breaches": decoded.consecutive_breaches,
        "sample_count": decoded.sample_count,
    }
    if status in _NO_P95:
        needed = 200 if decoded.min_required is None else decoded.min_required
        count = decoded.sample_count
        message = f"latency SLO {status}: {count} of {needed} samples; proves nothing yet"
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    if status in ("breached", "degraded"):
        message = (
            f"latency SLO {status}: rolling p95 {p95_ms} ms > {threshold_ms} ms, "
            f"{decoded.consecutive_breaches} consecutive breaching evaluations"
        )
        return _judgement(Verdict.FAIL, message, **numbers)
    if p95_ms is None or p95_ms > threshold_ms:
        return _judgement(
            Verdict.FAIL, f"latency SLO: rolling p95 {p95_ms} ms > {threshold_ms} ms", **numbers
        )
    return _judgement(
        Verdict.PASS,
        f"latency SLO healthy: rolling p95 {p95_ms} ms <= {threshold_ms} ms",
        **numbers,
    )


def latency_breach_signal(latency_status_result: object, breach_windows: int = 3) -> Judgement:
    """Rollback signal "latency p95 breach > 3 consecutive windows": FAIL (the signal fired)
    when ``consecutive_breaches`` reached ``breach_windows`` or the status is "degraded"; PASS
    on "healthy" or a shorter "breached" streak; INCONCLUSIVE when the daemon reports no
    evaluation (daemon facts 2.6: "insufficient_data" always reports 0 breaches); UNOBSERVABLE
    on an answer :func:`decode_latency_status` refuses (a streak of "5", 5.0, null or -3 is no
    streak of 0)."""
    decoded = decode_latency_status(latency_status_result)
    if isinstance(decoded, str):
        return _judgement(Verdict.UNOBSERVABLE, decoded)
    base = latency_slo(latency_status_result)
    numbers = {**base.numbers, "breach_windows": breach_windows}
    status, count = decoded.status, decoded.consecutive_breaches
    if status == "degraded" or count >= breach_windows:
        message = (
            f"latency signal fired: status {status}, {count} consecutive breaching "
            f"evaluations (>= {breach_windows}), p95 {decoded.p95_ms} ms: rollback, investigate"
        )
        return _judgement(Verdict.FAIL, message, **numbers)
    if status in _NO_P95:
        return _judgement(
            Verdict.INCONCLUSIVE, f"latency signal not checkable: {base.message}", **numbers
        )
    message = (
        f"latency signal absent: status {status}, {count} consecutive breaching evaluations "
        f"(< {breach_windows}), p95 {decoded.p95_ms} ms"
    )
    return _judgement(Verdict.PASS, message, **numbers)


SLO_LOG_KINDS = frozenset({"slo_breach", "slo_degraded"})
"""Daemon log kinds of the latency SLO evaluation: WARN "SLO breach" (1 or 2 consecutive
breaching ticks) and ERROR "SLO DEGRADED" (3 or more), daemon facts 6.5, 7.5."""


def latency_log_events(
    events: Iterable[LogEvent],
    window: timedelta,
    now: datetime,
    coverage: Covered | None,
    *,
    kinds: Collection[str] = SLO_LOG_KINDS,
    min_consecutive: int = 0,
    above_ms: int | None = None,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """The latency SLO as the daemon's log tells it over ``window``: FAIL for a line of
    ``kinds`` in the window whose ``consecutive`` count is at least ``min_consecutive`` and,
    with ``above_ms``, whose p95 is above it (the daemon logs one per breaching tick, so a
    breach that lasted milliseconds still shows); INCONCLUSIVE for none on a log that does not
    cover the window; PASS otherwise."""
    now = _aware(now, "now")
    start, end = now - window, window_end(now, coverage)
    cov = coverage_of(coverage, window, now, max_lag)
    found = [
        e
        for e in events
        if e.kind in kinds
        and start <= e.at <= end
        and _consecutive(e) >= min_consecutive
        and (above_ms is None or _p95(e) > above_ms)
    ]
    shown = f"SLO log lines ({', '.join(sorted(kinds))})"
    if min_consecutive > 0:
        shown += f" with consecutive >= {min_consecutive}"
    if above_ms is not None:
        shown += f" with p95 > {above_ms} ms"
    numbers = {**cov.numbers, "found": len(found), "min_consecutive": min_consecutive}
    required = format_duration(window)
    if found:
        worst = max(found, key=_consecutive)
        message = (
            f"{len(found)} {shown} in the last {required}, from "
            f"{format_time(found[0].at)} to {format_time(found[-1].at)}; worst p95 "
            f"{worst.values.get('p95_ms')} ms, consecutive {_consecutive(worst)}"
        )
        return _judgement(Verdict.FAIL, message, found[:20], **numbers)
    if not cov.covered:
        message = f"no {shown} seen, but the daemon log {cov.message}"
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    message = f"no {shown} in the last {required} ({cov.message})"
    return _judgement(Verdict.PASS, message, **numbers)


def _p95(event: LogEvent) -> int:
    value = event.values.get("p95_ms")
    return value if isinstance(value, int) else 0


def _consecutive(event: LogEvent) -> int:
    value = event.values.get("consecutive")
    return value if isinstance(value, int) else 0


SLO_EVALUATION_WINDOW = timedelta(milliseconds=600_000)
"""The latency SLO's window: the p95 of the last 10 minutes of samples (daemon facts 7.2)."""


@dataclass(frozen=True)
class BreachRun:
    """One unbroken p95 breach as the daemon logged it: SLO lines whose ``consecutive`` count
    kept rising (the counter resets on a healthy evaluation and on a restart, daemon facts
    7.4), from the first breaching evaluation to the last."""

    first: LogEvent
    last: LogEvent
    lines: int
    worst_p95_ms: int

    @property
    def lasted(self) -> timedelta:
        """From the first breaching evaluation to the last."""
        return self.last.at - self.first.at

    def windows(self, evaluation_window: timedelta = SLO_EVALUATION_WINDOW) -> int:
        """How many consecutive, disjoint evaluation windows ended in a breaching evaluation:
        one at the first line, one more per whole window it lasted."""
        return 1 + self.lasted // evaluation_window


def breach_runs(events: Iterable[LogEvent]) -> list[BreachRun]:
    """The SLO log lines (:data:`SLO_LOG_KINDS`) grouped into unbroken breaches, oldest first:
    a line whose ``consecutive`` is not above the line before starts a new one."""
    runs: list[BreachRun] = []
    lines = sorted((e for e in events if e.kind in SLO_LOG_KINDS), key=lambda e: (e.at, e.line))
    for event in lines:
        last = runs[-1] if runs else None
        if last is not None and _consecutive(event) > _consecutive(last.last):
            runs[-1] = BreachRun(
                last.first, event, last.lines + 1, max(last.worst_p95_ms, _p95(event))
            )
        else:
            runs.append(BreachRun(event, event, 1, _p95(event)))
    return runs


def _describe_run(run: BreachRun, evaluation_window: timedelta) -> str:
    return (
        f"{format_time(run.first.at)} to {format_time(run.last.at)} "
        f"({format_duration(run.lasted)}, {run.windows(evaluation_window)} windows, "
        f"{run.lines} breaching evaluations logged, consecutive {_consecutive(run.first)}.."
        f"{_consecutive(run.last)}, worst p95 {run.worst_p95_ms} ms)"
    )


def sustained_breaches(
    events: Iterable[LogEvent],
    window: timedelta,
    now: datetime,
    coverage: Covered | None,
    *,
    more_than: int = 3,
    evaluation_window: timedelta = SLO_EVALUATION_WINDOW,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """Rollback signal "latency p95 breach > 3 consecutive windows" from the daemon log: the
    windows are the SLO's evaluation windows (10 minutes, daemon facts 7.2), not poll ticks, so
    the signal fires for an unbroken breach (:func:`breach_runs`) that ended in the look-back
    ``window`` and spanned more than ``more_than`` of them (at least ``more_than`` whole windows
    from its first breaching evaluation to its last: 30 minutes by default). A flap of a few
    ticks is no such breach. None on a log that does not cover the look-back is INCONCLUSIVE."""
    now = _aware(now, "now")
    start, end = now - window, window_end(now, coverage)
    cov = coverage_of(coverage, window, now, max_lag)
    runs = [r for r in breach_runs(events) if start <= r.last.at <= end]
    fired = [r for r in runs if r.windows(evaluation_window) > more_than]
    each = format_duration(evaluation_window)
    numbers = {
        **cov.numbers,
        "breaches": len(runs),
        "fired": len(fired),
        "more_than_windows": more_than,
        "evaluation_window_s": evaluation_window.total_seconds(),
    }
    if fired:
        longest = max(fired, key=lambda r: r.lasted)
        message = (
            f"p95 breach sustained over {longest.windows(evaluation_window)} consecutive {each} "
            f"SLO windows (more than {more_than}) in the last {format_duration(window)}: "
            f"{_describe_run(longest, evaluation_window)}"
            + (f", and {len(fired) - 1} more such breaches" if len(fired) > 1 else "")
            + ": rollback, investigate"
        )
        return _judgement(Verdict.FAIL, message, [r.last for r in fired][:20], **numbers)
    shown = f"no p95 breach over more than {more_than} consecutive {each} SLO windows"
    if runs:
        longest = max(runs, key=lambda r: r.lasted)
        shown += (
            f" ({len(runs)} shorter breaches in the look-back, the longest "
            f"{_describe_run(longest, evaluation_window)})"
        )
    if not cov.covered:
        return _judgement(
            Verdict.INCONCLUSIVE, f"{shown}, but the daemon log {cov.message}", **numbers
        )
    message = f"{shown} in the last {format_duration(window)} ({cov.message})"
    return _judgement(Verdict.PASS, message, **numbers)


def breach_in_progress(latency_status_result: object, more_than: int = 3) -> Judgement:
    """The current evaluation against the same signal: "breached" or "degraded" now is a
    breach in progress whose length the tick count cannot tell (missed ticks fire back to back,
    daemon facts 7.4), so INCONCLUSIVE until the log shows it end or last more than
    ``more_than`` windows; "healthy" PASSES; no evaluation yet is INCONCLUSIVE; an answer
    :func:`decode_latency_status` refuses is UNOBSERVABLE."""
    decoded = decode_latency_status(latency_status_result)
    if isinstance(decoded, str):
        return _judgement(Verdict.UNOBSERVABLE, decoded)
    base = latency_slo(latency_status_result)
    numbers = {**base.numbers, "more_than_windows": more_than}
    if decoded.status in ("breached", "degraded"):
        message = (
            f"p95 breach in progress: status {decoded.status}, p95 {decoded.p95_ms} ms, "
            f"{decoded.consecutive_breaches} consecutive breaching evaluations; it fires the "
            f"signal once it spans more than {more_than} SLO windows (the daemon log tells)"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    if decoded.status in _NO_P95:
        return _judgement(
            Verdict.INCONCLUSIVE, f"latency signal not checkable now: {base.message}", **numbers
        )
    return _judgement(
        Verdict.PASS,
        f"no p95 breach in progress: status healthy, p95 {decoded.p95_ms} ms",
        **numbers,
    )


def daemon_ready(latency_status_result: object, *, who: str = "v4") -> Judgement:
    """The daemon has completed at least one pipeline tick: ``latency_status`` is anything but
    "not_started" (daemon facts 13). Before that its ``list_panes`` and ``list_sessions`` are
    empty whatever it serves, so emptiness proves nothing (INCONCLUSIVE). An answer
    :func:`decode_latency_status` refuses is UNOBSERVABLE."""
    decoded = decode_latency_status(latency_status_result)
    if isinstance(decoded, str):
        return _judgement(Verdict.UNOBSERVABLE, f"{who} {decoded}")
    status = decoded.status
    if status == "not_started":
        message = (
            f"{who} not ready: latency_status not_started, no pipeline tick has completed; "
            "until then its panes and sessions are empty whatever it serves (daemon facts 13)"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, status=status)
    return _judgement(
        Verdict.PASS, f"{who} ready: latency_status {status} (a tick has completed)", status=status
    )


# --- source health (daemon facts 2.3, 2.9, 9) --------------------------------------------


SOURCE_STATUSES = ("healthy", "degraded", "down")
LIFECYCLES = ("pending", "active", "stale", "revoked")
ALWAYS_HEALTHY = frozenset({"poller", "claude_hooks"})
"""Source kinds the daemon reports "healthy" whatever happens (daemon facts 9.1)."""


def sources_healthy(
    health_result: object,
    registry_result: object,
    expected_healthy: Collection[str] | None,
    *,
    who: str = "v5",
    always_healthy: Collection[str] = ALWAYS_HEALTHY,
) -> Judgement:
    """All registered sources ``active`` (no stale, pending or revoked) and every expected
    source reporting "healthy" in ``list_source_health``; ``expected_healthy`` None (config
    ``"*"``) expects every source it lists, and a list naming none proves nothing
    (INCONCLUSIVE). Answers of unknown shape, or a kind or source id listed twice, are
    UNOBSERVABLE. Expecting only ``always_healthy`` kinds (or none) with an empty registry
    proves nothing: INCONCLUSIVE."""
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
        if kind in statuses:
            return _judgement(
                Verdict.UNOBSERVABLE,
                f"{who} list_source_health: source {kind} is listed twice ({statuses[kind]}, "
                f"then {status}): the answer contradicts itself",
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
        if source_id in lifecycles:
            return _judgement(
                Verdict.UNOBSERVABLE,
                f"{who} list_source_registry: source {source_id} is listed twice: the answer "
                "contradicts itself",
            )
        lifecycles[source_id] = lifecycle
    every_listed = expected_healthy is None
    expected_healthy = tuple(sorted(statuses)) if expected_healthy is None else expected_healthy
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
    numbers: dict[str, object] = {
        "health": statuses,
        "registry": lifecycles,
        "expected": list(expected_healthy),
    }
    if every_listed:
        numbers["expected_every_listed"] = True
    if problems:
        return _judgement(Verdict.FAIL, f"{who} sources: " + "; ".join(problems), **numbers)
    if every_listed and not statuses:
        message = (
            f'{who} sources: [sources] expected_healthy = "*" expects every source '
            "list_source_health lists, and it lists none: nothing proves health"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    if set(expected_healthy) <= set(always_healthy) and not lifecycles:
        expected = ", ".join(expected_healthy) or "none"
        message = (
            f"{who} sources: only always-healthy sources are expected ({expected}) and none is "
            "registered: nothing proves health; configure [sources] expected_healthy "
            "(poller and claude_hooks report healthy whatever happens, daemon facts 9.1)"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    registry = f"{len(lifecycles)} registered, all active" if lifecycles else "registry empty"
    healthy = ", ".join(f"{k} healthy" for k in expected_healthy) or "none expected"
    return _judgement(Verdict.PASS, f"{who} sources: {healthy}; {registry}", **numbers)


SOURCE_TRANSITION_KINDS = frozenset({"source_stale"})
"""Daemon log kinds of a registered source leaving "active": WARN "source stale: <id>", logged
at the tick its heartbeat passed 30 s (daemon facts 2.9). The way back (a hello) and "revoked"
(unreachable) log nothing (daemon facts 9.3)."""


def sources_stayed_active(
    events: Iterable[LogEvent],
    window: timedelta,
    now: datetime,
    coverage: Covered | None,
    *,
    who: str = "v5",
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """ "All sources Active (no Stale/Revoked)" over ``window``, not at one instant: FAIL for a
    source transition line (:data:`SOURCE_TRANSITION_KINDS`) in the window (up to
    :func:`window_end`), naming each source and when it went stale, whatever the registry says
    now (a hello makes a stale source active again); none on a log that does not cover the
    window is INCONCLUSIVE; PASS otherwise."""
    now = _aware(now, "now")
    start, end = now - window, window_end(now, coverage)
    found = [e for e in events if e.kind in SOURCE_TRANSITION_KINDS and start <= e.at <= end]
    cov = coverage_of(coverage, window, now, max_lag)
    span = format_duration(window)
    by_source: dict[str, list[datetime]] = {}
    for event in found:
        by_source.setdefault(str(event.values.get("source_id", "?")), []).append(event.at)
    numbers = {
        **cov.numbers,
        "found": len(found),
        "stale": {sid: [at.isoformat() for at in ats] for sid, ats in by_source.items()},
    }
    if found:
        shown = "; ".join(
            f"{sid} at {format_time(ats[0])}"
            + (
                f" and {len(ats) - 1} more times, the last at {format_time(ats[-1])}"
                if ats[1:]
                else ""
            )
            for sid, ats in sorted(by_source.items())
        )
        message = (
            f'{who} sources went stale in the last {span} (daemon log WARN "source stale"): '
            f"{shown}; a source must stay active for the whole window, whatever the registry "
            "says now"
        )
        return _judgement(Verdict.FAIL, message, found[:20], **numbers)
    if not cov.covered:
        message = f"no {who} source seen going stale, but the daemon log {cov.message}"
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    message = f"no {who} source went stale in the last {span} ({cov.message})"
    return _judgement(Verdict.PASS, message, **numbers)


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


def cursor_full_resyncs(
    stats: CursorStats,
    *,
    window: timedelta | None = None,
    now: datetime | None = None,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """Rollback signal "cursor FullResync triggered": FAIL for any full resync counted since
    ``covers_from_ms`` (the counters cannot say when inside that span). Zero passes only on
    counters that cover the ``window`` ending ``now`` (counted from before its start, as of no
    more than ``max_lag`` before now); without a window nothing shows that they do."""
    since = format_time(ms_to_datetime(stats.covers_from_ms))
    numbers: dict[str, object] = {
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
    if window is None or now is None:
        message = (
            f"no cursor FullResync counted since {since}, but no window was given to show the "
            "counters cover"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, (stats,), **numbers)
    cov = _counter_coverage(stats, window, _aware(now, "now"), max_lag)
    numbers.update(cov.numbers)
    if not cov.covered:
        message = f"no cursor FullResync counted, but the cursor counters' {cov.message}"
        return _judgement(Verdict.INCONCLUSIVE, message, (stats,), **numbers)
    message = (
        f"no cursor FullResync in the last {format_duration(window)}: 0 counted since {since} "
        "(cursor stats)"
    )
    return _judgement(Verdict.PASS, message, (stats,), **numbers)


def full_resync_counters_on_canary(
    stats: CursorStats,
    selector: RuntimeSelector,
    *,
    window: timedelta,
    now: datetime,
    max_lag: timedelta = DEFAULT_MAX_LAG,
) -> Judgement:
    """Rollback signal "cursor FullResync triggered on canary" from the cursor counters, which
    cannot say when a resync happened: a count FAILs only when everything they counted lies in
    the look-back ``window`` while v5 served the canary (counted since after the window start
    and the selector's change to the routing it has now, which serves the canary); any other
    count is INCONCLUSIVE (the daemon log can place it). Zero is judged as by
    :func:`cursor_full_resyncs`."""
    if not stats.full_resync_count:
        return cursor_full_resyncs(stats, window=window, now=now, max_lag=max_lag)
    now = _aware(now, "now")
    counted_from = ms_to_datetime(stats.covers_from_ms)
    numbers: dict[str, object] = {
        "full_resync_count": stats.full_resync_count,
        "covers_from_ms": stats.covers_from_ms,
        "as_of_ms": stats.as_of_ms,
    }
    changed = selector.changed_at
    inside = (
        counted_from >= now - window
        and selector_serves_canary(selector)
        and changed is not None
        and changed <= counted_from
    )
    if inside:
        message = (
            f"cursor FullResync triggered {stats.full_resync_count} times on the canary since "
            f"{format_time(counted_from)}, inside the last {format_duration(window)}: "
            "investigate, consider rollback"
        )
        return _judgement(Verdict.FAIL, message, (stats,), **numbers)
    message = (
        f"{stats.full_resync_count} cursor FullResyncs counted since "
        f"{format_time(counted_from)}: the counters cannot say when, so whether one fell in the "
        f"last {format_duration(window)} while v5 served the canary is not shown (the daemon "
        "log can place them)"
    )
    return _judgement(Verdict.INCONCLUSIVE, message, (stats,), **numbers)


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


# --- projection version ------------------------------------------------------------------


def projection_advancing(
    versions: tuple[int, int],
    nonces: tuple[object, object],
    changes: Sequence[Change],
    window: timedelta,
    *,
    now: datetime,
    history_from: datetime,
    who: str = "v5",
) -> Judgement:
    """ "Projection version advancing normally" over ``window`` from two readings of the
    version, the nonces read around them and the change log (daemon facts 2.4, 2.10): a reading
    without a nonce cannot rule out a restart (UNOBSERVABLE); a changed nonce (the version
    restarts at 0 with the process) or a version going down FAILs. The change log and the
    version begin with the process (``history_from``): a daemon younger than ``window`` cannot
    show the whole window, INCONCLUSIVE with the span it covers. Otherwise a version that went
    up PASSES, and so does a flat one when the change log has an entry inside ``window``; flat
    with no change in the window shows nothing advancing: INCONCLUSIVE."""
    now = _aware(now, "now")
    history_from = _aware(history_from, "history_from")
    first, second = versions
    numbers: dict[str, object] = {"readings": list(versions), "nonces": list(nonces)}
    missing = [n + 1 for n, nonce in enumerate(nonces) if not isinstance(nonce, str) or not nonce]
    if missing:
        message = (
            f"{who} daemon.info reading {' and '.join(map(str, missing))} has no nonce: a "
            "restart between the version readings cannot be ruled out"
        )
        return _judgement(Verdict.UNOBSERVABLE, message, **numbers)
    if nonces[0] != nonces[1]:
        message = (
            f"{who} restarted during the observation (nonce {nonces[0]} -> {nonces[1]}); the "
            "projection version restarts at 0 with it"
        )
        return _judgement(Verdict.FAIL, message, **numbers)
    if second < first:
        return _judgement(
            Verdict.FAIL, f"{who} projection version went backwards: {first} -> {second}", **numbers
        )
    numbers["history_from"] = history_from.isoformat()
    if history_from > now - window:
        covered = format_duration(max(timedelta(0), now - history_from))
        message = (
            f"{who}'s change log begins with its process at {format_time(history_from)}: it "
            f"covers {covered} of the {format_duration(window)} window"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    if second > first:
        return _judgement(
            Verdict.PASS,
            f"{who} projection version advanced {first} -> {second} during the observation",
            **numbers,
        )
    recent = [c for c in changes if c.at >= now - window]
    numbers["changes_in_window"] = len(recent)
    span = format_duration(window)
    if recent:
        latest = max(recent, key=lambda c: (c.at, c.version))
        message = (
            f"{who} projection version at {second}, advanced by {len(recent)} changes in the "
            f"last {span}, the latest (version {latest.version}) at {format_time(latest.at)}"
        )
        return _judgement(Verdict.PASS, message, **numbers)
    message = (
        f"{who} projection version flat at {second} and no change in the last {span}: not "
        "shown advancing"
    )
    return _judgement(Verdict.INCONCLUSIVE, message, **numbers)


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
