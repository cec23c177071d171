"""The pure judgements: every boundary the runbook and daemon facts define."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from types import MappingProxyType

import pytest

from pytest_canarygate.agtmux import judgement as j
from pytest_canarygate.agtmux.protocol import Change
from pytest_canarygate.agtmux.protocol import agent_session_keys
from pytest_canarygate.agtmux.providers import AlertEntry
from pytest_canarygate.agtmux.providers import ArchiveManifest
from pytest_canarygate.agtmux.providers import BindingStats
from pytest_canarygate.agtmux.providers import BuildResult
from pytest_canarygate.agtmux.providers import CursorStats
from pytest_canarygate.agtmux.providers import DependencyGate
from pytest_canarygate.agtmux.providers import Evidence
from pytest_canarygate.agtmux.providers import LogEvent
from pytest_canarygate.agtmux.providers import RestartPolicy
from pytest_canarygate.agtmux.providers import RuntimeSelector
from pytest_canarygate.agtmux.providers import Severity
from pytest_canarygate.agtmux.providers import SnapshotMetadata
from pytest_canarygate.agtmux.providers import Source
from pytest_canarygate.agtmux.providers import SupervisorEvent
from pytest_canarygate.agtmux.providers import SupervisorState
from pytest_canarygate.agtmux.providers import SupervisorStatus
from pytest_canarygate.agtmux.records import datetime_to_ms
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.verdicts import GateFailed
from pytest_canarygate.verdicts import Inconclusive
from pytest_canarygate.verdicts import Unobservable
from pytest_canarygate.verdicts import Verdict

NOW = datetime(2026, 11, 26, 0, 0, tzinfo=timezone.utc)
NOW_MS = datetime_to_ms(NOW)
DAY = timedelta(hours=24)
MIN = 60_000


def covered(start: datetime, end: datetime = NOW) -> Evidence[object]:
    return Evidence((), Source("file:///x", "/x"), None, start, end)


def snapshot(version: int, created_at_ms: int) -> SnapshotMetadata:
    return SnapshotMetadata("snap-7", created_at_ms, version, 2, 5, "Periodic", 4096)


def alert(
    severity: Severity,
    created: datetime,
    resolved: datetime | None = None,
    alert_id: str = "alert-1",
) -> AlertEntry:
    return AlertEntry(
        alert_id,
        severity,
        "supervisor",
        "hold-down",
        datetime_to_ms(created),
        None if resolved is None else datetime_to_ms(resolved),
        "AutoResolve",
    )


def sup_event(kind: str, at: datetime, **extra: int) -> SupervisorEvent:
    return SupervisorEvent(datetime_to_ms(at), kind, "codex_app_server", **extra)


def log_event(kind: str, at: datetime, **values: int | str) -> LogEvent:
    return LogEvent(at, "WARN", "agtmux::poll_loop", "...", kind, 1, MappingProxyType(values))


# --- restore dry-run (daemon facts 4.5) ----------------------------------------------------


@pytest.mark.parametrize(
    ("snap_version", "current", "age_ms", "max_age_ms", "outcome", "reported_age"),
    [
        (10, 10, 0, 600_000, "Ok", 0),  # equal versions pass
        (9, 10, 300_000, 600_000, "Ok", 300_000),
        (10, 10, 600_000, 600_000, "Ok", 600_000),  # age == max is still Ok
        (10, 10, 600_001, 600_000, "TooOld", 600_001),  # strictly greater
        (11, 10, 0, 600_000, "VersionAhead", 0),
        (11, 10, 900_000, 600_000, "VersionAhead", 900_000),  # VersionAhead before TooOld
        (1, 0, 10, 600_000, "VersionAhead", 10),  # a fresh daemon restarted at version 0
        (0, 0, 0, 0, "Ok", 0),  # max age 0: only a snapshot from this very ms
        (0, 0, 1, 0, "TooOld", 1),
        (5, 10, -5_000, 600_000, "Ok", 0),  # created in the future: age floored at 0
    ],
)
def test_restore_dry_run_boundaries(
    snap_version: int,
    current: int,
    age_ms: int,
    max_age_ms: int,
    outcome: str,
    reported_age: int,
) -> None:
    result = j.restore_dry_run(snapshot(snap_version, NOW_MS - age_ms), current, NOW_MS, max_age_ms)
    assert result.outcome == outcome
    assert result.age_ms == reported_age
    assert result.verdict is (Verdict.PASS if outcome == "Ok" else Verdict.FAIL)
    assert outcome in result.message
    assert result.numbers["max_age_ms"] == max_age_ms


def test_restore_dry_run_default_max_age_is_ten_minutes() -> None:
    assert j.restore_dry_run(snapshot(1, NOW_MS - 600_000), 1, NOW_MS).outcome == "Ok"
    assert j.restore_dry_run(snapshot(1, NOW_MS - 600_001), 1, NOW_MS).outcome == "TooOld"


def test_restore_dry_run_messages_carry_the_numbers() -> None:
    ahead = j.restore_dry_run(snapshot(12, NOW_MS), 10, NOW_MS)
    assert "snapshot_version: 12, current_version: 10" in ahead.message
    old = j.restore_dry_run(snapshot(1, NOW_MS - 3_600_000), 1, NOW_MS)
    assert "age_ms: 3600000, max_age_ms: 600000" in old.message
    assert "1h ago" in old.message


# --- window coverage ---------------------------------------------------------------------


def test_window_partially_covered_is_inconclusive_with_the_span() -> None:
    result = j.window_coverage(DAY, NOW, NOW - timedelta(hours=14), NOW)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert not result.covered
    assert result.message.startswith(
        "history covers 2026-11-25T10:00Z..2026-11-26T00:00Z (14h) of the required 24h window"
    )
    assert result.numbers["covered_s"] == 14 * 3600


def test_window_fully_covered_passes() -> None:
    result = j.window_coverage(DAY, NOW, NOW - DAY, NOW)
    assert result.verdict is Verdict.PASS
    assert result.covered
    assert result.span == "2026-11-25T00:00Z..2026-11-26T00:00Z"


def test_window_start_one_second_late_is_not_covered() -> None:
    result = j.window_coverage(DAY, NOW, NOW - DAY + timedelta(seconds=1), NOW)
    assert not result.covered
    assert "starts after the window start 2026-11-25T00:00Z" in result.message


def test_window_history_ending_too_early_is_not_covered() -> None:
    ends = NOW - timedelta(hours=2)
    result = j.window_coverage(DAY, NOW, NOW - 2 * DAY, ends)
    assert not result.covered
    assert "ends 2h before now" in result.message
    lag_ok = j.window_coverage(DAY, NOW, NOW - DAY, NOW - timedelta(minutes=5))
    assert lag_ok.covered  # within the default max lag
    assert not j.window_coverage(DAY, NOW, NOW - DAY, ends, max_lag=timedelta(hours=1)).covered


def test_window_without_a_span_is_inconclusive() -> None:
    result = j.window_coverage(timedelta(days=7), NOW, None, None)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "does not say from when its history is complete" in result.message
    assert "7d window" in result.message


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        j.window_coverage(DAY, NOW.replace(tzinfo=None), NOW - DAY, NOW)


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(seconds=45), "45s"),
        (timedelta(minutes=5), "5m"),
        (timedelta(minutes=5, seconds=3), "5m3s"),
        (timedelta(hours=14), "14h"),
        (timedelta(hours=14, minutes=30), "14h30m"),
        (timedelta(hours=48), "48h"),
        (timedelta(days=7), "7d"),
    ],
)
def test_format_duration(span: timedelta, text: str) -> None:
    assert j.format_duration(span) == text


# --- hold-downs and generic event windows ------------------------------------------------


@pytest.mark.parametrize("make", [sup_event, log_event], ids=["supervisor", "daemon_log"])
def test_hold_down_inside_window_fails_even_when_not_covered(
    make: Callable[[str, datetime], j.TimedEvent],
) -> None:
    events = [make("hold_down", NOW - timedelta(hours=3))]
    result = j.hold_downs_in_window(events, DAY, NOW, covered(NOW - timedelta(hours=5)))
    assert result.verdict is Verdict.FAIL
    assert "1 supervisor HoldDown events in the last 24h" in result.message
    assert result.findings == tuple(events)


def test_hold_down_at_the_window_start_counts_and_just_before_does_not() -> None:
    at_start = [sup_event("hold_down", NOW - DAY, until_ms=0)]
    before = [sup_event("hold_down", NOW - DAY - timedelta(milliseconds=1), until_ms=0)]
    assert j.hold_downs_in_window(at_start, DAY, NOW, covered(NOW - 2 * DAY)).verdict is (
        Verdict.FAIL
    )
    assert j.hold_downs_in_window(before, DAY, NOW, covered(NOW - 2 * DAY)).verdict is (
        Verdict.PASS
    )


def test_no_hold_down_on_partial_history_is_inconclusive() -> None:
    events = [sup_event("success", NOW - timedelta(hours=1))]
    result = j.hold_downs_in_window(events, DAY, NOW, covered(NOW - timedelta(hours=14)))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "(14h) of the required 24h window" in result.message


def test_no_hold_down_on_full_history_passes() -> None:
    result = j.hold_downs_in_window([], DAY, NOW, covered(NOW - DAY))
    assert result.verdict is Verdict.PASS


def test_no_events_in_window_for_log_kinds_and_count_events() -> None:
    events = [
        log_event("full_resync", NOW - timedelta(hours=1)),
        log_event("cursor_retry", NOW - timedelta(hours=2)),
        log_event("process_exited", NOW - timedelta(hours=30)),
    ]
    result = j.no_events_in_window(
        events, {"full_resync"}, DAY, NOW, covered(NOW - DAY), what="cursor full resyncs"
    )
    assert result.verdict is Verdict.FAIL
    assert "full_resync at 2026-11-25T23:00Z" in result.message
    assert j.count_events(events, j.RESTART_KINDS, NOW - 2 * DAY, NOW) == 1


def test_hold_down_recovery_on_a_stale_history_is_inconclusive() -> None:
    """A recovery 20 h ago on a history that stopped 19 h ago: a later hold-down would not show."""
    held = sup_event(
        "hold_down", NOW - timedelta(hours=20), until_ms=NOW_MS - 20 * 3_600_000 + 5 * MIN
    )
    back = sup_event("success", NOW - timedelta(hours=19, minutes=54))
    stale = covered(NOW - 30 * DAY, NOW - timedelta(hours=19))
    judged = j.hold_down_not_recovered([held, back], DAY, NOW, stale)
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert "recovered at 2026-11-25T04:06Z, but the history ends 2026-11-25T05:00Z" in (
        judged.message
    )
    assert j.hold_down_not_recovered([held, back], DAY, NOW, covered(NOW - 30 * DAY)).passed
    # no recovery seen, but the history ends before one was due: not a finding either
    early = covered(NOW - 30 * DAY, NOW - timedelta(hours=19, minutes=58))
    assert j.hold_down_not_recovered([held], DAY, NOW, early).verdict is Verdict.INCONCLUSIVE


def test_violations_stamped_after_now_inside_the_history_count() -> None:
    """The observation starts at ``now``; records written while it ran are still findings."""
    later = NOW + timedelta(seconds=20)
    ledger = covered(NOW - 30 * DAY, NOW + timedelta(seconds=30))
    escalate = alert(Severity.ESCALATE, later)
    assert j.alerts_at_or_above([escalate], "Degraded", 2 * DAY, NOW, ledger).verdict is (
        Verdict.FAIL
    )
    assert j.unresolved_escalates_in_window([escalate], 7 * DAY, NOW, ledger).verdict is (
        Verdict.FAIL
    )
    held = [log_event("hold_down", later, seconds=300)]
    assert j.hold_downs_in_window(held, DAY, NOW, ledger).verdict is Verdict.FAIL
    assert j.window_end(NOW, ledger) == NOW + timedelta(seconds=30)
    assert j.window_end(NOW, covered(NOW - DAY, NOW - DAY)) == NOW
    old_escalate = alert(Severity.ESCALATE, NOW - timedelta(minutes=3))
    persisted = j.escalate_persisting([old_escalate], now=NOW, until=NOW + timedelta(minutes=3))
    assert persisted.verdict is Verdict.FAIL


def test_hold_down_not_recovered() -> None:
    held = log_event("hold_down", NOW - timedelta(minutes=20), seconds=300)
    back = log_event("reconnected", NOW - timedelta(minutes=14))
    cov = covered(NOW - DAY)
    assert j.hold_down_not_recovered([held, back], DAY, NOW, cov).verdict is Verdict.PASS
    stuck = j.hold_down_not_recovered([held], DAY, NOW, cov)
    assert stuck.verdict is Verdict.FAIL
    assert "rollback immediately" in stuck.message
    fresh = sup_event("hold_down", NOW - timedelta(minutes=2), until_ms=NOW_MS + 3 * MIN)
    assert j.hold_down_not_recovered([fresh], DAY, NOW, cov).verdict is Verdict.INCONCLUSIVE
    assert j.hold_down_not_recovered([], DAY, NOW, cov).verdict is Verdict.PASS
    assert j.hold_down_not_recovered([], DAY, NOW, None).verdict is Verdict.INCONCLUSIVE


# --- alerts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "found"),
    [
        (alert(Severity.DEGRADED, NOW - timedelta(hours=1)), True),
        (alert(Severity.ESCALATE, NOW - timedelta(hours=1), NOW - timedelta(minutes=50)), True),
        (alert(Severity.WARN, NOW - timedelta(hours=1)), False),
        # opened before the window, still open inside it
        (alert(Severity.DEGRADED, NOW - 3 * DAY), True),
        # opened before the window, resolved inside it
        (alert(Severity.DEGRADED, NOW - 3 * DAY, NOW - timedelta(hours=23)), True),
        # resolved before the window
        (alert(Severity.DEGRADED, NOW - 3 * DAY, NOW - DAY - timedelta(seconds=1)), False),
    ],
)
def test_alerts_at_or_above(entry: AlertEntry, found: bool) -> None:
    result = j.alerts_at_or_above([entry], "Degraded", DAY, NOW, covered(NOW - DAY))
    assert result.verdict is (Verdict.FAIL if found else Verdict.PASS)
    if found:
        assert "alerts at or above Degraded" in result.message
        assert entry.alert_id in result.message


def test_alerts_none_found_on_partial_ledger_is_inconclusive() -> None:
    result = j.alerts_at_or_above([], Severity.DEGRADED, 2 * DAY, NOW, covered(NOW - DAY))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "of the required 48h window" in result.message


@pytest.mark.parametrize(
    ("open_for", "resolved", "verdict"),
    [
        (timedelta(minutes=5), True, Verdict.PASS),  # exactly 5 min: not longer
        (timedelta(minutes=5, milliseconds=1), True, Verdict.FAIL),
        (timedelta(minutes=5), False, Verdict.PASS),  # open, exactly 5 min old
        (timedelta(minutes=6), False, Verdict.FAIL),
        (timedelta(minutes=2), False, Verdict.PASS),
    ],
)
def test_escalate_persisting(open_for: timedelta, resolved: bool, verdict: Verdict) -> None:
    start = NOW - timedelta(hours=1) if resolved else NOW - open_for
    entry = alert(Severity.ESCALATE, start, start + open_for if resolved else None)
    result = j.escalate_persisting([entry], now=NOW)
    assert result.verdict is verdict


def test_escalate_persisting_ignores_other_severities_and_entries_outside_window() -> None:
    degraded = alert(Severity.DEGRADED, NOW - timedelta(hours=1))
    old = alert(Severity.ESCALATE, NOW - 3 * DAY, NOW - 3 * DAY + timedelta(hours=1))
    assert j.escalate_persisting([degraded], now=NOW).verdict is Verdict.PASS
    assert j.escalate_persisting([old], now=NOW).verdict is Verdict.FAIL
    assert j.escalate_persisting([old], now=NOW, window=DAY).verdict is Verdict.PASS


def test_unresolved_escalates_in_window() -> None:
    week = timedelta(days=7)
    open_escalate = alert(Severity.ESCALATE, NOW - timedelta(days=3))
    resolved = alert(Severity.ESCALATE, NOW - timedelta(days=3), NOW - timedelta(days=2))
    full = covered(NOW - week)
    assert j.unresolved_escalates_in_window([open_escalate], week, NOW, full).verdict is (
        Verdict.FAIL
    )
    # left unresolved for a day inside the window: it counts, though resolved since
    assert j.unresolved_escalates_in_window([resolved], week, NOW, full).verdict is Verdict.FAIL
    before = alert(Severity.ESCALATE, NOW - timedelta(days=9), NOW - timedelta(days=8))
    assert j.unresolved_escalates_in_window([before], week, NOW, full).verdict is Verdict.PASS
    partial = j.unresolved_escalates_in_window([before], week, NOW, covered(NOW - DAY))
    assert partial.verdict is Verdict.INCONCLUSIVE


# --- latency (daemon facts 2.6, 7) -------------------------------------------------------


def lat(status: str, p95: object = None, streak: int = 0, **extra: int) -> dict[str, object]:
    return {"status": status, "p95_ms": p95, "consecutive_breaches": streak, **extra}


@pytest.mark.parametrize(
    ("result", "verdict"),
    [
        (lat("healthy", 36, sample_count=205), "PASS"),  # observed
        (lat("healthy", 3000, sample_count=205), "PASS"),  # p95 == threshold is healthy
        (lat("healthy", 3001, sample_count=205), "FAIL"),
        (lat("not_started", sample_count=0), "INCONCLUSIVE"),
        (lat("insufficient_data", sample_count=192, min_required=200), "INCONCLUSIVE"),
        (lat("breached", 3224, 2, breach_threshold=3, sample_count=210), "FAIL"),
        (lat("degraded", 3224, 10, sample_count=213), "FAIL"),  # observed
        (lat("healthy"), "UNOBSERVABLE"),
        (lat("healthy", True), "UNOBSERVABLE"),
        (lat("warming_up", 10), "UNOBSERVABLE"),
        ({"p95_ms": 10}, "UNOBSERVABLE"),
        ([], "UNOBSERVABLE"),
        (None, "UNOBSERVABLE"),
    ],
)
def test_latency_slo(result: object, verdict: str) -> None:
    assert j.latency_slo(result).verdict == verdict


def test_latency_slo_threshold_is_a_parameter() -> None:
    healthy = {"status": "healthy", "p95_ms": 2500, "consecutive_breaches": 0, "sample_count": 300}
    assert j.latency_slo(healthy, threshold_ms=2000).verdict is Verdict.FAIL
    degraded = j.latency_slo(lat("degraded", 3224, 10, sample_count=213))
    assert "10 consecutive" in degraded.message
    assert degraded.numbers["consecutive_breaches"] == 10


# --- supervisor contract -----------------------------------------------------------------


def test_restart_policy_matches_the_runbook_table() -> None:
    policy = RestartPolicy(1000, 2.0, 30000, 0.2, 5, 600000, 300000)
    assert j.restart_policy_matches_contract(policy).verdict is Verdict.PASS


def test_restart_policy_mismatch_names_each_field() -> None:
    policy = RestartPolicy(500, 2.0, 30000, 0.0, 5, 600000, 60000)
    result = j.restart_policy_matches_contract(policy)
    assert result.verdict is Verdict.FAIL
    assert "initial_backoff_ms 500 (contract 1000)" in result.message
    assert "jitter_pct 0.0 (contract 0.2)" in result.message
    assert "holddown_ms 60000 (contract 300000)" in result.message
    assert "multiplier" not in result.message


@pytest.mark.parametrize(
    ("order", "verdict"),
    [
        (("Sources", "Gateway", "Daemon", "Ui"), Verdict.PASS),
        (("Sources", "Daemon", "Gateway", "Ui"), Verdict.FAIL),
        (("Sources", "Gateway", "Daemon"), Verdict.FAIL),
        ((), Verdict.FAIL),
    ],
)
def test_startup_order(order: tuple[str, ...], verdict: Verdict) -> None:
    assert j.startup_order_matches(order).verdict is verdict


# --- runtime selector --------------------------------------------------------------------

ALPHA = RuntimeSelector("v4", False, ())
CANARY = RuntimeSelector("v4", True, ("session-alpha", "session-beta"))
GRADUAL = RuntimeSelector("v5", True, ())
BOTH = {"session-alpha", "session-beta", "other"}


@pytest.mark.parametrize(
    ("selector", "phase", "v4", "v5", "verdict", "reason"),
    [
        (ALPHA, "alpha", (), (), Verdict.PASS, ""),
        (CANARY, "alpha", (), (), Verdict.FAIL, "v5_enabled must be false"),
        (GRADUAL, "alpha", (), (), Verdict.FAIL, "default_daemon must be 'v4'"),
        (CANARY, "canary", BOTH, BOTH, Verdict.PASS, ""),
        (CANARY, "canary", BOTH, {"session-alpha"}, Verdict.FAIL, "missing on v5: session-beta"),
        (CANARY, "canary", set(), BOTH, Verdict.FAIL, "missing on v4: session-alpha, session-beta"),
        (RuntimeSelector("v4", True, ()), "canary", BOTH, BOTH, Verdict.FAIL, "names no session"),
        (ALPHA, "canary", BOTH, BOTH, Verdict.FAIL, "v5_enabled must be true"),
        (GRADUAL, "gradual", (), (), Verdict.PASS, ""),
        (CANARY, "gradual", (), (), Verdict.FAIL, "default_daemon must be 'v5'"),
        (RuntimeSelector("v5", False, ()), "gradual", (), (), Verdict.FAIL, "v5_enabled"),
        (GRADUAL, "cutover", (), (), Verdict.PASS, ""),
        (ALPHA, "rollback", (), (), Verdict.PASS, ""),
        (GRADUAL, "rollback", (), (), Verdict.FAIL, "default_daemon must be 'v4'"),
    ],
)
def test_selector_matches_phase(
    selector: RuntimeSelector,
    phase: str,
    v4: set[str],
    v5: set[str],
    verdict: Verdict,
    reason: str,
) -> None:
    result = j.selector_matches_phase(selector, phase, v4, v5)
    assert result.verdict is verdict
    assert reason in result.message


def test_selector_unknown_phase_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown phase 'beta'"):
        j.selector_matches_phase(ALPHA, "beta")


# --- cursor and CAS counters -------------------------------------------------------------


def cursor(**changes: int | None) -> CursorStats:
    base: dict[str, int | None] = {
        "fetched": 100,
        "committed": 100,
        "invalid_streak": 0,
        "max_invalid_streak": 0,
        "retry_count": 0,
        "full_resync_count": 0,
        "last_advanced_at_ms": NOW_MS - 1000,
        "covers_from_ms": NOW_MS - 3 * 86_400_000,
        "as_of_ms": NOW_MS,
    }
    base.update(changes)
    return CursorStats(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stats", "verdict", "reason"),
    [
        (cursor(), Verdict.PASS, "watermarks advanced"),
        (cursor(full_resync_count=1), Verdict.FAIL, "1 full resyncs"),
        (cursor(max_invalid_streak=2), Verdict.FAIL, "streak reached 2"),
        (cursor(invalid_streak=1, max_invalid_streak=1), Verdict.FAIL, "(now 1; allowed 0)"),
        (cursor(committed=101), Verdict.FAIL, "ahead of fetched"),
        (cursor(last_advanced_at_ms=None), Verdict.INCONCLUSIVE, "advanced never"),
        (cursor(last_advanced_at_ms=NOW_MS - 6 * MIN), Verdict.INCONCLUSIVE, "last at"),
    ],
)
def test_cursor_streaks(stats: CursorStats, verdict: Verdict, reason: str) -> None:
    result = j.cursor_streaks(stats, now=NOW)
    assert result.verdict is verdict
    assert reason in result.message


def test_cursor_streaks_window_must_be_covered_by_the_counters() -> None:
    young = cursor(covers_from_ms=NOW_MS - 3_600_000)
    assert j.cursor_streaks(young, now=NOW, window=2 * DAY).verdict is Verdict.INCONCLUSIVE
    assert j.cursor_streaks(cursor(), now=NOW, window=2 * DAY).verdict is Verdict.PASS
    assert j.cursor_streaks(cursor(max_invalid_streak=1), now=NOW, max_streak=1).passed


def test_cas_conflicts() -> None:
    since = NOW_MS - 3 * 86_400_000
    clean = BindingStats(0, None, since, NOW_MS)
    inside = BindingStats(2, NOW_MS - 3_600_000, since, NOW_MS)
    before = BindingStats(2, since + 1000, since, NOW_MS)
    young = BindingStats(0, None, NOW_MS - 3_600_000, NOW_MS)
    assert j.cas_conflicts(clean, 2 * DAY, NOW).verdict is Verdict.PASS
    failed = j.cas_conflicts(inside, 2 * DAY, NOW)
    assert failed.verdict is Verdict.FAIL
    assert "2 CAS conflicts" in failed.message
    assert j.cas_conflicts(before, 2 * DAY, NOW).verdict is Verdict.PASS
    assert j.cas_conflicts(young, 2 * DAY, NOW).verdict is Verdict.INCONCLUSIVE


# --- build -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "verdict", "reason"),
    [
        (BuildResult(700, 0, 0, 3, ()), Verdict.PASS, "697 passed"),
        (BuildResult(456, 0, 0, 0, ()), Verdict.PASS, "456 passed"),
        (BuildResult(456, 0, 0, 1, ()), Verdict.FAIL, "too few"),
        (BuildResult(0, 0, 0, 0, ()), Verdict.FAIL, "too few"),
        (BuildResult(700, 1, 0, 0, ("a::b",)), Verdict.FAIL, "a::b"),
        (BuildResult(700, 0, 1, 0, ("c::d",)), Verdict.FAIL, "c::d"),
    ],
)
def test_build_passes(result: BuildResult, verdict: Verdict, reason: str) -> None:
    judged = j.build_passes(result)
    assert judged.verdict is verdict
    assert reason in judged.message


# --- turning a judgement into the gate's end ------------------------------------------------


@pytest.mark.parametrize(
    ("verdict", "raised"),
    [
        (Verdict.FAIL, GateFailed),
        (Verdict.INCONCLUSIVE, Inconclusive),
        (Verdict.UNOBSERVABLE, Unobservable),
    ],
)
def test_enforce_raises_the_verdicts_exception(verdict: Verdict, raised: type[Exception]) -> None:
    with pytest.raises(raised, match="the reason"):
        j.enforce(j.Judgement(verdict=verdict, message="the reason"))


def test_enforce_returns_a_pass_and_refuses_waived() -> None:
    passed = j.Judgement(verdict=Verdict.PASS, message="fine")
    assert j.enforce(passed) is passed
    with pytest.raises(ValueError, match="cannot end in WAIVED"):
        j.enforce(j.Judgement(verdict=Verdict.WAIVED, message="x"))


# --- snapshots: periodic timer, backup, newest recorded -------------------------------------


def snap(trigger: str, age_ms: int, snapshot_id: str = "snap-4") -> SnapshotMetadata:
    return SnapshotMetadata(snapshot_id, NOW_MS - age_ms, 10, 2, 5, trigger, 4096)


@pytest.mark.parametrize(
    ("age_ms", "verdict"),
    [(0, Verdict.PASS), (599_999, Verdict.PASS), (600_000, Verdict.FAIL)],
)
def test_periodic_snapshot_younger_than_two_intervals(age_ms: int, verdict: Verdict) -> None:
    judged = j.periodic_snapshot_fresh([snap("Periodic", age_ms), snap("Shutdown", 0)], NOW_MS)
    assert judged.verdict is verdict
    assert judged.numbers["shutdown"] == 1


def test_shutdown_snapshots_enabled_needs_a_retained_shutdown_snapshot() -> None:
    judged = j.periodic_snapshot_fresh([snap("Periodic", 60_000)], NOW_MS)
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert "no Shutdown snapshot among 1 retained" in judged.message


def test_manual_or_shutdown_snapshots_do_not_show_the_periodic_timer() -> None:
    judged = j.periodic_snapshot_fresh([snap("Manual", 0), snap("Shutdown", 0)], NOW_MS)
    assert judged.verdict is Verdict.FAIL
    assert "no Periodic snapshot among 2 retained" in judged.message


def test_backup_is_a_manual_snapshot() -> None:
    assert j.backup_snapshot([snap("Periodic", 0)], NOW_MS).verdict is Verdict.FAIL
    judged = j.backup_snapshot([snap("Manual", 9 * 86_400_000, "snap-1")], NOW_MS)
    assert judged.verdict is Verdict.PASS
    assert "snap-1 (Manual, version 10, taken 9d ago)" in judged.message
    year_old = j.backup_snapshot([snap("Manual", 365 * 86_400_000, "snap-1")], NOW_MS, 500)
    assert year_old.passed  # with no age limit given, any backup before the start counts


def test_a_backup_counts_only_before_the_migration_start_and_not_too_long_before() -> None:
    day = 86_400_000
    backup = [snap("Manual", 3 * day, "snap-1")]  # taken 3 days ago
    week = 7 * day
    before = j.backup_snapshot(backup, NOW_MS, start_ms=NOW_MS - 2 * day, max_age_ms=week)
    assert before.passed, before.message
    after = j.backup_snapshot(backup, NOW_MS, start_ms=NOW_MS - 4 * day, max_age_ms=week)
    assert after.verdict is Verdict.FAIL
    assert "no Manual snapshot taken before the migration started at" in after.message
    stale = j.backup_snapshot(backup, NOW_MS, start_ms=NOW_MS + 0, max_age_ms=2 * day)
    assert stale.verdict is Verdict.FAIL
    assert "at most 48h before it" in stale.message


def test_a_future_or_empty_manual_snapshot_is_no_backup() -> None:
    future = snap("Manual", -3_600_000, "snap-5")
    judged = j.backup_snapshot([future], NOW_MS, 120)
    assert judged.verdict is Verdict.FAIL
    assert "snap-5 is stamped 1h in the future" in judged.message
    assert j.backup_snapshot([snap("Manual", -30_000)], NOW_MS).passed  # clock skew
    empty = replace(snap("Manual", 86_400_000, "snap-2"), projection_version=0)
    on_live = j.backup_snapshot([empty], NOW_MS, 120)
    assert on_live.verdict is Verdict.FAIL
    assert "snap-2 holds projection version 0 (empty) while the live projection is at version" in (
        on_live.message
    )
    assert j.backup_snapshot([empty], NOW_MS, 0).passed  # an empty fleet's backup is empty
    assert j.backup_snapshot([empty, snap("Manual", 1000, "snap-3")], NOW_MS, 120).passed


@pytest.mark.parametrize(
    ("snapshots", "verdict", "reason"),
    [
        ([], Verdict.FAIL, "no snapshot is retained"),
        ([snap("Periodic", 600_000)], Verdict.PASS, "snap-4 (Periodic"),  # age == max age
        ([snap("Periodic", 600_001)], Verdict.FAIL, "age_ms 600001 > max_age_ms 600000"),
        ([snap("Periodic", 0, "snap-0")], Verdict.FAIL, "not snap-<n>"),
        ([snap("Periodic", 0, "snapshot-4")], Verdict.FAIL, "not snap-<n>"),
        ([snap("Manual", 0, "snap-12"), snap("Periodic", 900_000)], Verdict.PASS, "snap-12"),
    ],
)
def test_newest_snapshot_recorded(
    snapshots: list[SnapshotMetadata], verdict: Verdict, reason: str
) -> None:
    judged = j.newest_snapshot_recorded(snapshots, NOW_MS)
    assert judged.verdict is verdict
    assert reason in judged.message


def test_restore_dry_run_latest_judges_the_newest_snapshot() -> None:
    older_ok = SnapshotMetadata("snap-1", NOW_MS - 60_000, 5, 1, 1, "Periodic", 1)
    newest_ahead = SnapshotMetadata("snap-2", NOW_MS - 1000, 50, 1, 1, "Manual", 1)
    judged = j.restore_dry_run_latest([newest_ahead, older_ok], 10, NOW_MS)
    assert judged.verdict is Verdict.FAIL
    assert "snapshot snap-2: VersionAhead" in judged.message


# --- uptime, sources, sessions --------------------------------------------------------------


def test_uptime_below_the_window_is_inconclusive_with_the_uptime() -> None:
    short = j.uptime_at_least(timedelta(hours=47, minutes=59), 2 * DAY, now=NOW)
    assert short.verdict is Verdict.INCONCLUSIVE
    assert "v5 up 47h59m (started 2026-11-24T00:01Z), less than the required 48h" in short.message
    assert j.uptime_at_least(2 * DAY, 2 * DAY, now=NOW).verdict is Verdict.PASS


HEALTH = [["claude_hooks", {"status": "healthy"}], ["poller", {"status": "healthy"}],
          ["claude_jsonl", {"status": "down"}]]  # fmt: skip


@pytest.mark.parametrize(
    ("health", "registry", "verdict", "reason"),
    [
        (HEALTH, [], Verdict.INCONCLUSIVE, "only always-healthy sources are expected"),
        (HEALTH, [{"source_id": "x", "lifecycle": "active"}], Verdict.PASS, "1 registered"),
        (HEALTH, [{"source_id": "x", "lifecycle": "revoked"}], Verdict.FAIL, "x is revoked"),
        (HEALTH, [{"source_id": "x", "lifecycle": "pending"}], Verdict.FAIL, "x is pending"),
        (HEALTH[:1], [], Verdict.FAIL, "source poller is not reported"),
        ([["poller", {"status": "sick"}]], [], Verdict.UNOBSERVABLE, "element 0"),
        ([["poller"]], [], Verdict.UNOBSERVABLE, "element 0"),
        (["poller"], [], Verdict.UNOBSERVABLE, "element 0"),
        (HEALTH, [{"lifecycle": "active"}], Verdict.UNOBSERVABLE, "no source_id"),
        (HEALTH, None, Verdict.UNOBSERVABLE, "list_source_registry: expected a list"),
        (
            [*HEALTH, ["poller", {"status": "down"}]],
            [],
            Verdict.UNOBSERVABLE,
            "source poller is listed twice (healthy, then down)",
        ),
        (
            HEALTH,
            [{"source_id": "x", "lifecycle": "active"}] * 2,
            Verdict.UNOBSERVABLE,
            "source x is listed twice",
        ),
    ],
)
def test_sources_healthy(health: object, registry: object, verdict: Verdict, reason: str) -> None:
    judged = j.sources_healthy(health, registry, ("poller", "claude_hooks"))
    assert judged.verdict is verdict
    assert reason in judged.message


def test_sources_with_nothing_expected_prove_nothing() -> None:
    assert j.sources_healthy([], [], ()).verdict is Verdict.INCONCLUSIVE


def test_sources_expecting_only_always_healthy_kinds_need_a_registry() -> None:
    """poller and claude_hooks report healthy whatever happens (daemon facts 9.1)."""
    vacuous = j.sources_healthy(HEALTH, [], ("poller", "claude_hooks"))
    assert vacuous.verdict is Verdict.INCONCLUSIVE
    assert "configure [sources] expected_healthy" in vacuous.message.splitlines()[0]
    jsonl_down = j.sources_healthy(HEALTH, [], ("poller", "claude_jsonl"))
    assert jsonl_down.verdict is Verdict.FAIL
    healthy = [*HEALTH[:2], ["claude_jsonl", {"status": "healthy"}]]
    assert j.sources_healthy(healthy, [], ("poller", "claude_jsonl")).passed


def tmux_pane(pane_id: str, session: str | None, managed: bool = True) -> dict[str, object]:
    presence = "managed" if managed else "unmanaged"
    return {"pane_id": pane_id, "session_name": session, "presence": presence}


def test_zero_sessions() -> None:
    assert j.zero_sessions([], [tmux_pane("%1", "a", managed=False)]).passed
    ghost = j.zero_sessions([], [tmux_pane("%1", None)])
    assert ghost.verdict is Verdict.FAIL
    assert "manages 1 panes in tmux sessions (none named)" in ghost.message
    keys = [{"session_key": f"k{n}"} for n in range(7)]
    many = j.zero_sessions(keys, [])
    assert "7 agent sessions (k0, k1, k2, k3, k4, ...)" in many.message


def test_sessions_served_by() -> None:
    v5 = [tmux_pane("%1", "a"), tmux_pane("%2", "b", managed=False)]
    assert j.sessions_served_by(v5, v5).passed
    assert j.sessions_served_by([], v5).verdict is Verdict.INCONCLUSIVE
    missing = j.sessions_served_by(v5, [tmux_pane("%1", "a")])
    assert "1 of 2 sessions seen on v5 not served by v4: session b is not on v4" in missing.message


def test_canary_sessions_on_and_usage() -> None:
    selector = RuntimeSelector("v4", True, ("a", "b"))
    fleet = [tmux_pane("%1", "a"), tmux_pane("%2", "b", managed=False)]
    on = j.canary_sessions_on(selector, fleet)
    assert on.verdict is Verdict.FAIL
    assert on.message == "canary session b has no managed pane on v5"
    assert j.canary_usage(selector, fleet).passed
    idle = j.canary_usage(selector, fleet[1:])
    assert idle.verdict is Verdict.INCONCLUSIVE
    assert "(a 0, b 0): no active usage" in idle.message
    nothing = j.canary_sessions_on(RuntimeSelector("v4", True, ()), fleet)
    assert nothing.verdict is Verdict.FAIL


# --- rollback signals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "verdict"),
    [
        (lat("healthy", 36, sample_count=205), Verdict.PASS),
        (lat("breached", 3224, 2, breach_threshold=3, sample_count=210), Verdict.PASS),
        (lat("breached", 3224, 3, breach_threshold=3, sample_count=210), Verdict.FAIL),
        (lat("degraded", 3224, 3, sample_count=213), Verdict.FAIL),
        (lat("healthy", 3500, sample_count=213), Verdict.PASS),  # the SLO gate judges p95
        (lat("insufficient_data", sample_count=10, min_required=200), Verdict.INCONCLUSIVE),
        (lat("not_started", sample_count=0), Verdict.INCONCLUSIVE),
        ({"status": 3}, Verdict.UNOBSERVABLE),
    ],
)
def test_latency_breach_signal(result: object, verdict: Verdict) -> None:
    assert j.latency_breach_signal(result).verdict is verdict


def test_latency_breach_signal_threshold_is_a_parameter() -> None:
    two = lat("breached", 3224, 2, breach_threshold=3, sample_count=210)
    assert j.latency_breach_signal(two, breach_windows=2).verdict is Verdict.FAIL


def test_cursor_full_resyncs() -> None:
    assert j.cursor_full_resyncs(cursor(), window=DAY, now=NOW).passed
    fired = j.cursor_full_resyncs(cursor(full_resync_count=2, max_invalid_streak=4))
    assert fired.verdict is Verdict.FAIL
    assert "triggered 2 times since" in fired.message
    assert "streak reached 4" in fired.message


@pytest.mark.parametrize(
    ("stats", "reason"),
    [
        # a restart two minutes ago reset the counters: a resync before it is lost
        (cursor(covers_from_ms=NOW_MS - 2 * MIN), "starts after the window start"),
        # counters nobody rewrote for three days
        (cursor(covers_from_ms=NOW_MS - 30 * 86_400_000, as_of_ms=NOW_MS - 3 * 86_400_000),
         "before now"),
    ],
)  # fmt: skip
def test_cursor_full_resyncs_zero_needs_counters_covering_the_window(
    stats: CursorStats, reason: str
) -> None:
    judged = j.cursor_full_resyncs(stats, window=DAY, now=NOW)
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert reason in judged.message
    assert j.cursor_full_resyncs(stats).verdict is Verdict.INCONCLUSIVE  # no window: no proof
    fired = replace(stats, full_resync_count=1, max_invalid_streak=3)
    assert j.cursor_full_resyncs(fired, window=DAY, now=NOW).verdict is Verdict.FAIL


def supervisor_status(state: SupervisorState, **changes: object) -> SupervisorStatus:
    status = SupervisorStatus(
        state,
        j.RUNBOOK_RESTART_POLICY,
        j.RUNBOOK_STARTUP_ORDER,
        tuple(DependencyGate(s, True, ()) for s in j.RUNBOOK_STARTUP_ORDER),
        0,
        NOW_MS - 86_400_000,
        NOW_MS,
    )
    return replace(status, **changes)


@pytest.mark.parametrize(
    ("state", "verdict"),
    [
        (SupervisorState("Ready"), Verdict.PASS),
        (SupervisorState("Restarting", attempt=1, next_restart_ms=NOW_MS), Verdict.PASS),
        (SupervisorState("HoldDown", until_ms=NOW_MS + 1000), Verdict.INCONCLUSIVE),
        (SupervisorState("HoldDown", until_ms=NOW_MS - 59_000), Verdict.INCONCLUSIVE),
        (SupervisorState("HoldDown", until_ms=NOW_MS - 60_000), Verdict.FAIL),
    ],
)
def test_hold_down_state(state: SupervisorState, verdict: Verdict) -> None:
    assert j.hold_down_state(supervisor_status(state), NOW).verdict is verdict


def test_hold_down_state_on_a_stale_status_shows_nothing_current() -> None:
    stale = supervisor_status(SupervisorState("Ready"), as_of_ms=NOW_MS - 3 * 86_400_000)
    judged = j.hold_down_state(stale, NOW)
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert "Ready as of 2026-11-23T00:00Z, 3d before now" in judged.message
    lagging = supervisor_status(SupervisorState("Ready"), as_of_ms=NOW_MS - 4 * MIN)
    assert j.hold_down_state(lagging, NOW).passed
    # still in HoldDown long after it ended, as of the stale status: it did not recover
    stuck = supervisor_status(
        SupervisorState("HoldDown", until_ms=NOW_MS - 5 * 86_400_000),
        as_of_ms=NOW_MS - 3 * 86_400_000,
    )
    assert j.hold_down_state(stuck, NOW).verdict is Verdict.FAIL
    ready_stale = j.supervisor_ready(stale, now=NOW)
    assert ready_stale.verdict is Verdict.INCONCLUSIVE
    assert j.supervisor_ready(stale).passed  # without now, only the contents are judged


def test_supervisor_ready_lists_every_problem() -> None:
    status = supervisor_status(
        SupervisorState("Restarting", attempt=2, next_restart_ms=NOW_MS + 4000),
        startup_order=("Gateway", "Sources", "Daemon", "Ui"),
        dependency_gates=(DependencyGate("Sources", False, ("poller",)),),
    )
    judged = j.supervisor_ready(status)
    assert judged.verdict is Verdict.FAIL
    assert "supervisor state Restarting (attempt 2, next restart at 2026-11-26T00:00:04Z)" in (
        judged.message
    )
    assert "startup order is Gateway -> Sources -> Daemon -> Ui" in judged.message
    assert "Sources DependencyGate not all_ready: unready poller" in judged.message
    assert "no DependencyGate reported for stage Ui" in judged.message
    assert j.supervisor_ready(supervisor_status(SupervisorState("Ready"))).passed


def test_jitter_row() -> None:
    ready = SupervisorState("Ready")
    declared = j.jitter_matches_contract(supervisor_status(ready))
    assert declared.verdict is Verdict.INCONCLUSIVE
    assert (
        "jitter declared ±20% (jitter_pct 0.2); application by the runtime is not observable"
        in declared.message
    )
    applied = j.jitter_matches_contract(supervisor_status(ready, jitter_applied=True))
    assert "applied by the runtime" in applied.message
    off = supervisor_status(ready, jitter_applied=False)
    assert j.jitter_matches_contract(off).verdict is Verdict.FAIL


def test_restart_policy_rows_judge_only_their_fields() -> None:
    policy = RestartPolicy(500, 2.0, 30000, 0.2, 5, 600000, 60000)
    row = j.restart_policy_matches_contract(policy, only=("multiplier",))
    assert row.passed
    assert row.message == "restart policy multiplier 2.0 matches the contract"
    with pytest.raises(ValueError, match="not RestartPolicy fields: nope"):
        j.restart_policy_matches_contract(policy, only=("nope",))


# --- v4 binary archive ----------------------------------------------------------------------

DIGEST = "ab" * 32


def manifest(**changes: object) -> ArchiveManifest:
    base = ArchiveManifest(
        "agtmux-v4", DIGEST, NOW_MS - 86_400_000, NOW_MS + 29 * 86_400_000, True, DIGEST, 10
    )
    return replace(base, **changes)


@pytest.mark.parametrize(
    ("changes", "verdict", "reason"),
    [
        ({}, Verdict.PASS, "sha256 matches, retained until 2026-12-25T00:00Z (>= 30d)"),
        ({"retain_until_ms": NOW_MS + 29 * 86_400_000 - 1}, Verdict.FAIL, "less than 30d"),
        ({"present": False, "actual_sha256": None}, Verdict.FAIL, "not beside its manifest"),
        ({"actual_sha256": "cd" * 32}, Verdict.FAIL, "differs from the manifest's"),
        (
            {"archived_at_ms": NOW_MS - 31 * 86_400_000, "retain_until_ms": NOW_MS - 1000},
            Verdict.FAIL,
            "retention ended 2026-11-25T23:59:59Z, before now",
        ),
    ],
)
def test_archive_retained(changes: dict[str, object], verdict: Verdict, reason: str) -> None:
    judged = j.archive_retained(manifest(**changes), NOW)
    assert judged.verdict is verdict
    assert reason in judged.message


# --- fail-closed evidence: histories behind current readings, phase windows, activity -------


def change(version: int, key: str, at: datetime, pane_id: str | None = None) -> Change:
    return Change(version, key, at, pane_id)


def slo(kind: str, at: datetime, consecutive: int) -> LogEvent:
    return log_event(kind, at, p95_ms=3224, consecutive=consecutive)


def test_latency_log_events_fire_on_a_breach_the_current_sample_missed() -> None:
    """A degraded episode an hour ago, healthy now: only the log still shows it."""
    episode = [slo("slo_breach", NOW - timedelta(hours=1), n) for n in (1, 2)]
    episode += [slo("slo_degraded", NOW - timedelta(hours=1), n) for n in (3, 4)]
    log = covered(NOW - 2 * DAY)
    fired = j.latency_log_events(episode, DAY, NOW, log, min_consecutive=3)
    assert fired.verdict is Verdict.FAIL
    assert fired.message.startswith("2 SLO log lines (slo_breach, slo_degraded) with consecutive")
    short = j.latency_log_events(episode[:2], DAY, NOW, log, min_consecutive=3)
    assert short.passed  # two breaching ticks: below the breach windows
    assert j.latency_log_events(episode[:2], DAY, NOW, log, min_consecutive=2).verdict is (
        Verdict.FAIL
    )
    degraded = j.latency_log_events(episode, 2 * DAY, NOW, log, kinds={"slo_degraded"})
    assert degraded.verdict is Verdict.FAIL
    quiet = j.latency_log_events([], DAY, NOW, covered(NOW - timedelta(hours=3)))
    assert quiet.verdict is Verdict.INCONCLUSIVE
    assert "(3h) of the required 24h window" in quiet.message
    assert j.latency_log_events([], DAY, NOW, None).verdict is Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        ("not_started", Verdict.INCONCLUSIVE),
        ("insufficient_data", Verdict.PASS),
        ("healthy", Verdict.PASS),
        ("degraded", Verdict.PASS),  # slow, but ticking: its answers mean something
        (None, Verdict.UNOBSERVABLE),
    ],
)
def test_daemon_ready(status: str | None, verdict: Verdict) -> None:
    p95 = None if status in ("not_started", "insufficient_data") else 36
    streak = 3 if status == "degraded" else 0
    answer = {"status": status, "p95_ms": p95, "consecutive_breaches": streak, "sample_count": 205}
    assert j.daemon_ready(answer, who="v4").verdict is verdict


SELECTOR_CHANGED = RuntimeSelector("v4", True, ("a",), datetime_to_ms(NOW - 3 * DAY))


def test_phase_runs_from_the_later_of_v5_start_and_selector_change() -> None:
    v5_up_10d = NOW - 10 * DAY
    assert j.phase_running_for(SELECTOR_CHANGED, v5_up_10d, 2 * DAY, now=NOW, phase="canary").passed
    just = replace(SELECTOR_CHANGED, changed_at_ms=NOW_MS - 3_600_000)
    judged = j.phase_running_for(just, v5_up_10d, 2 * DAY, now=NOW, phase="canary")
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert judged.message.startswith(
        "canary running 1h since 2026-11-25T23:00Z (v5 started 2026-11-16T00:00Z, selector last "
        "changed 2026-11-25T23:00Z), less than the required 48h"
    )
    restarted = j.phase_running_for(SELECTOR_CHANGED, NOW - DAY, 2 * DAY, now=NOW, phase="canary")
    assert restarted.verdict is Verdict.INCONCLUSIVE
    assert "canary running 24h since 2026-11-25T00:00Z" in restarted.message
    unknown = replace(SELECTOR_CHANGED, changed_at_ms=None)
    missing = j.phase_running_for(unknown, v5_up_10d, 2 * DAY, now=NOW, phase="gradual")
    assert missing.verdict is Verdict.INCONCLUSIVE
    assert "gradual start unknown: the runtime selector does not say when it last changed" in (
        missing.message
    )


def test_drained_for_needs_the_daemon_up_for_the_window() -> None:
    unmanaged = [tmux_pane("%1", "a", managed=False)]
    assert j.drained_for([], unmanaged, 8 * DAY, 7 * DAY, now=NOW).passed
    young = j.drained_for([], unmanaged, timedelta(hours=2), 7 * DAY, now=NOW)
    assert young.verdict is Verdict.INCONCLUSIVE
    assert "v4 holds no session, but it has been up only 2h" in young.message
    left = j.drained_for([], [tmux_pane("%1", "a")], 8 * DAY, 7 * DAY, now=NOW)
    assert left.verdict is Verdict.FAIL


def test_canary_activity_needs_a_change_of_a_canary_pane_in_the_window() -> None:
    selector = RuntimeSelector("v4", True, ("a", "b"))
    fleet = [tmux_pane("%1", "a"), tmux_pane("%2", "b"), tmux_pane("%3", "c")]
    old = [change(1, "poller-%1", NOW - 5 * DAY, "%1"), change(2, "k", NOW - 5 * DAY, "%2")]
    other = [change(3, "poller-%3", NOW - timedelta(minutes=1), "%3")]
    idle = j.canary_activity(selector, fleet, [*old, *other], 2 * DAY, now=NOW)
    assert idle.verdict is Verdict.INCONCLUSIVE
    assert idle.message.startswith(
        "no activity in canary sessions since 2026-11-24T00:00Z: no state_changed entry for "
        "their 2 managed panes in the last 48h (last at 2026-11-21T00:00Z)"
    )
    recent = [change(4, "poller-%1", NOW - timedelta(minutes=3), "%1")]
    active = j.canary_activity(selector, fleet, [*old, *recent], 2 * DAY, now=NOW)
    assert active.passed
    assert "1 state changes in canary sessions in the last 48h" in active.message
    # a session-level entry of the agent session bound to a canary pane counts too
    session_level = [change(5, "k", NOW - timedelta(minutes=3))]
    assert j.canary_activity(selector, fleet, [*old, *session_level], 2 * DAY, now=NOW).passed


def test_projection_advancing() -> None:
    nonces = ("7-1", "7-1")
    up = {"now": NOW, "history_from": NOW - 3 * DAY}  # a daemon up longer than the window
    flat_old = [change(1, "k", NOW - 2 * DAY, "%1")]
    assert j.projection_advancing((5, 6), nonces, [], DAY, **up).passed
    flat = j.projection_advancing((5, 5), nonces, flat_old, DAY, **up)
    assert flat.verdict is Verdict.INCONCLUSIVE
    assert flat.message == (
        "v5 projection version flat at 5 and no change in the last 24h: not shown advancing"
    )
    recent = [*flat_old, change(5, "k", NOW - timedelta(hours=2), "%1")]
    assert j.projection_advancing((5, 5), nonces, recent, DAY, **up).passed
    assert j.projection_advancing((6, 5), nonces, recent, DAY, **up).verdict is Verdict.FAIL
    restarted = j.projection_advancing((5, 6), ("7-1", "8-2"), recent, DAY, **up)
    assert restarted.verdict is Verdict.FAIL
    no_nonce = j.projection_advancing((5, 6), (None, None), recent, DAY, **up)
    assert no_nonce.verdict is Verdict.UNOBSERVABLE
    assert "reading 1 and 2 has no nonce" in no_nonce.message


def test_projection_advancing_needs_a_history_as_long_as_the_window() -> None:
    """The change log begins with the process: a daemon up a minute shows a minute, however
    fast its version moves (issue: P1-S5c passed 41 s after the real daemon started)."""
    nonces = ("7-1", "7-1")
    young = NOW - timedelta(minutes=1)
    recent = [change(5, "k", NOW - timedelta(seconds=20), "%1")]
    for versions in ((5, 6), (5, 5)):
        judged = j.projection_advancing(versions, nonces, recent, DAY, now=NOW, history_from=young)
        assert judged.verdict is Verdict.INCONCLUSIVE, versions
        assert "covers 1m of the 24h window" in judged.message
    # exactly the window: covered
    full = j.projection_advancing((5, 6), nonces, [], DAY, now=NOW, history_from=NOW - DAY)
    assert full.passed
    # a restart or a version going backwards still FAILs, whatever the history
    assert (
        j.projection_advancing((6, 5), nonces, [], DAY, now=NOW, history_from=young).verdict
        is Verdict.FAIL
    )


def test_agent_session_keys_follow_the_change_log_when_a_title_decays() -> None:
    decayed = {"pane_id": "%1", "presence": "managed", "title_quality": "HeuristicTitle"}
    assert agent_session_keys([decayed]) == {"poller-%1"}
    log = [
        change(1, "7f3c-claude", NOW - DAY, "%1"),
        change(2, "", NOW - DAY, "%1"),  # the freshness sweep's entry carries no key
        change(3, "other", NOW - DAY, "%9"),
    ]
    assert agent_session_keys([decayed], log) == {"poller-%1", "7f3c-claude"}
