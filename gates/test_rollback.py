"""Rollback: the procedure's checks, the "When to Rollback" signals and the post-rollback snapshot.

Runbook: "Rollback Procedure", "When to Rollback", "Post-Rollback". A signal gate PASSES when
the signal was checked and is absent; a fired signal FAILs it. The signal gates also run in the
canary, gradual and cutover phases, so a fired signal blocks promotion. Signals look back over
the runbook's monitoring window (``windows.alpha_monitor_h``, 24h), on histories and counters
that cover it and reach now; the supervisor's current state must be no older than the coverage
lag. The latency signal is the current evaluation AND the daemon log's SLO lines over the window
(a breach can last milliseconds, daemon facts 7.4). Stopping v5 (step 4) is optional and has no
gate; user reports and the incident report are human attestations (pending).
"""

from __future__ import annotations

from datetime import timedelta

from pytest_canarygate import GateFailed
from pytest_canarygate import ObservedView
from pytest_canarygate import gate
from pytest_canarygate.agtmux.gate_support import attempt
from pytest_canarygate.agtmux.gate_support import combine
from pytest_canarygate.agtmux.gate_support import conclude
from pytest_canarygate.agtmux.gate_support import daemon_sources
from pytest_canarygate.agtmux.gate_support import either
from pytest_canarygate.agtmux.gate_support import evidence_of
from pytest_canarygate.agtmux.gate_support import evidence_part
from pytest_canarygate.agtmux.gate_support import from_history
from pytest_canarygate.agtmux.gate_support import history_part
from pytest_canarygate.agtmux.gate_support import max_lag
from pytest_canarygate.agtmux.gate_support import monitoring_window
from pytest_canarygate.agtmux.gate_support import one_of
from pytest_canarygate.agtmux.gate_support import snapshot_recorded
from pytest_canarygate.agtmux.judgement import SLO_LOG_KINDS
from pytest_canarygate.agtmux.judgement import Judgement
from pytest_canarygate.agtmux.judgement import cursor_full_resyncs
from pytest_canarygate.agtmux.judgement import escalate_persisting
from pytest_canarygate.agtmux.judgement import format_duration
from pytest_canarygate.agtmux.judgement import hold_down_not_recovered
from pytest_canarygate.agtmux.judgement import hold_down_state
from pytest_canarygate.agtmux.judgement import latency_breach_signal
from pytest_canarygate.agtmux.judgement import latency_log_events
from pytest_canarygate.agtmux.judgement import no_events_in_window
from pytest_canarygate.agtmux.judgement import selector_matches_phase
from pytest_canarygate.agtmux.judgement import sessions_served_by
from pytest_canarygate.agtmux.judgement import window_coverage
from pytest_canarygate.agtmux.judgement import window_end
from pytest_canarygate.agtmux.protocol import failure_message
from pytest_canarygate.agtmux.protocol import panes
from pytest_canarygate.agtmux.protocol import signature_problems
from pytest_canarygate.agtmux.providers import AlertEntry
from pytest_canarygate.agtmux.providers import CursorStats
from pytest_canarygate.agtmux.providers import LogEvent
from pytest_canarygate.agtmux.providers import RuntimeSelector
from pytest_canarygate.agtmux.providers import SupervisorStatus
from pytest_canarygate.config import CanarygateConfig


@gate("rollback.selector.back-to-v4")
def test_runtime_selector_switched_back_to_v4(observed: ObservedView) -> None:
    selector = one_of(observed, "runtime_selector", RuntimeSelector)
    conclude(observed, "selector", selector_matches_phase(selector, "rollback"))


@gate("rollback.sessions.served-by-v4")
def test_affected_sessions_reconnected_to_v4(observed: ObservedView) -> None:
    judged = sessions_served_by(panes(observed.daemon("v5")), panes(observed.daemon("v4")))
    conclude(observed, "sessions", judged)


@gate("rollback.v4.list-panes")
def test_v4_list_panes_returns_expected_data(observed: ObservedView) -> None:
    v4_panes = panes(observed.daemon("v4"))
    problems = [f"v4 pane {p['pane_id']}: {x}" for p in v4_panes for x in signature_problems(p)]
    observed.note("v4 list_panes problems", problems)
    if not v4_panes:
        raise GateFailed("v4 list_panes returned no pane: it is not serving the fleet")
    if problems:
        raise GateFailed(failure_message("v4 list_panes returned malformed panes", problems))


@gate("rollback.v4.sources-active")
def test_v4_source_health_active(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    conclude(observed, "sources", daemon_sources(observed, canarygate_settings, "v4"))


@gate("signal.hold-down-not-recovered")
def test_signal_supervisor_hold_down_recovers(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    window, lag = monitoring_window(canarygate_settings), max_lag(canarygate_settings)
    judged = combine(
        "rollback signal: supervisor HoldDown without recovery",
        {
            "history": from_history(
                observed,
                "HoldDown recovery not shown",
                lambda events, coverage: hold_down_not_recovered(
                    events, window, observed.now, coverage, max_lag=lag
                ),
            ),
            "state": attempt(
                lambda: hold_down_state(
                    one_of(observed, "supervisor_status", SupervisorStatus),
                    observed.now,
                    max_lag=lag,
                )
            ),
        },
    )
    conclude(observed, "hold-down signal", judged)


@gate("signal.escalate-persisting")
def test_signal_escalate_does_not_persist(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    entries = evidence_of(observed, "alert_entries", AlertEntry)
    window = monitoring_window(canarygate_settings)
    longer_than = timedelta(minutes=canarygate_settings.thresholds.escalate_persist_min)
    judged = combine(
        "rollback signal: Escalate persisting",
        {
            "ledger": escalate_persisting(
                entries.records,
                longer_than,
                now=observed.now,
                window=window,
                until=window_end(observed.now, entries),
            ),
            "coverage": window_coverage(
                window,
                observed.now,
                entries.covers_from,
                entries.covers_to,
                max_lag=max_lag(canarygate_settings),
            ),
        },
    )
    conclude(observed, "escalate signal", judged)


@gate("signal.latency-breaches")
def test_signal_latency_breach_streak(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    window, lag = monitoring_window(canarygate_settings), max_lag(canarygate_settings)
    breach_windows = canarygate_settings.thresholds.breach_windows

    def from_log() -> Judgement:
        log = evidence_of(observed, "log_events", LogEvent)
        return latency_log_events(
            log.records,
            window,
            observed.now,
            log,
            kinds=SLO_LOG_KINDS,
            min_consecutive=breach_windows,
            max_lag=lag,
        )

    judged = combine(
        "rollback signal: latency p95 breach",
        {
            "latency_status": attempt(
                lambda: latency_breach_signal(
                    observed.daemon("v5").result("latency_status"), breach_windows
                )
            ),
            "daemon log": history_part(
                observed,
                "log_events",
                from_log,
                what=f"latency breaches over the last {format_duration(window)}",
            ),
        },
    )
    conclude(observed, "latency signal", judged)


@gate("signal.cursor-full-resync")
def test_signal_cursor_full_resync(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    window, lag = monitoring_window(canarygate_settings), max_lag(canarygate_settings)

    def from_log() -> Judgement:
        log = evidence_of(observed, "log_events", LogEvent)
        return no_events_in_window(
            log.records,
            {"full_resync"},
            window,
            observed.now,
            log,
            what="cursor full resyncs",
            max_lag=lag,
        )

    judged = either(
        "rollback signal: cursor FullResync",
        {
            "cursor stats": evidence_part(
                observed,
                "cursor_stats",
                lambda: cursor_full_resyncs(
                    one_of(observed, "cursor_stats", CursorStats),
                    window=window,
                    now=observed.now,
                    max_lag=lag,
                ),
            ),
            "daemon log": evidence_part(observed, "log_events", from_log),
        },
    )
    conclude(observed, "full resync signal", judged)


@gate("rollback.post.v5-snapshot")
def test_v5_snapshot_taken_before_stopping(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    conclude(observed, "snapshot", snapshot_recorded(observed, canarygate_settings))
