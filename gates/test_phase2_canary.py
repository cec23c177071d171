"""Phase 2, canary: v5 serves the canary sessions the runtime selector names.

Runbook: "Phase 2: Canary (limited users on v5)". Source health, latency, CAS conflicts and the
cursor are daemon-wide evidence (agtmux keeps none of them per tmux session), so each is judged
once for the v5 daemon that serves every canary session; the gates about the canary sessions
themselves (selector, presence, usage) name each session. The canary's duration counts from the
later of v5's start and the runtime selector's last change, and its usage from the change log of
each canary session's panes (managed panes are never removed, so their presence proves no use).
Source health and latency are judged now AND over the window from the daemon log (source
transitions, p95 breach lines); source health again in the gradual and cutover phases over their
windows. Checklist items 3 and
4 and the users' confirmation are chain-of-custody and sign-off items (pending in the catalog).
"""

from __future__ import annotations

from datetime import timedelta

from pytest_canarygate.agtmux.gate_api import LATENCY_ALERT_SOURCES
from pytest_canarygate.agtmux.gate_api import SLO_LOG_KINDS
from pytest_canarygate.agtmux.gate_api import AgtmuxSettings
from pytest_canarygate.agtmux.gate_api import AlertEntry
from pytest_canarygate.agtmux.gate_api import BindingStats
from pytest_canarygate.agtmux.gate_api import CursorStats
from pytest_canarygate.agtmux.gate_api import CustodyView
from pytest_canarygate.agtmux.gate_api import Judgement
from pytest_canarygate.agtmux.gate_api import LogEvent
from pytest_canarygate.agtmux.gate_api import ObservedView
from pytest_canarygate.agtmux.gate_api import RuntimeSelector
from pytest_canarygate.agtmux.gate_api import Severity
from pytest_canarygate.agtmux.gate_api import alerts_from
from pytest_canarygate.agtmux.gate_api import alerts_from_sources
from pytest_canarygate.agtmux.gate_api import attempt
from pytest_canarygate.agtmux.gate_api import canary_sessions_in_use
from pytest_canarygate.agtmux.gate_api import canary_sessions_on
from pytest_canarygate.agtmux.gate_api import cas_conflicts
from pytest_canarygate.agtmux.gate_api import combine
from pytest_canarygate.agtmux.gate_api import conclude
from pytest_canarygate.agtmux.gate_api import cursor_streaks
from pytest_canarygate.agtmux.gate_api import daemon_sources
from pytest_canarygate.agtmux.gate_api import evidence_of
from pytest_canarygate.agtmux.gate_api import format_duration
from pytest_canarygate.agtmux.gate_api import gate
from pytest_canarygate.agtmux.gate_api import history_part
from pytest_canarygate.agtmux.gate_api import latency_log_events
from pytest_canarygate.agtmux.gate_api import latency_slo
from pytest_canarygate.agtmux.gate_api import max_lag
from pytest_canarygate.agtmux.gate_api import one_of
from pytest_canarygate.agtmux.gate_api import panes
from pytest_canarygate.agtmux.gate_api import phase_for
from pytest_canarygate.agtmux.gate_api import selector_matches_phase
from pytest_canarygate.agtmux.gate_api import sessions_of
from pytest_canarygate.agtmux.gate_api import snapshot_recorded
from pytest_canarygate.agtmux.gate_api import sources_stayed_active
from pytest_canarygate.agtmux.gate_api import stable_for
from pytest_canarygate.agtmux.gate_api import state_changes
from pytest_canarygate.agtmux.gate_api import time_in_phase


def _canary_window(settings: AgtmuxSettings) -> timedelta:
    return timedelta(hours=settings.windows.canary_duration_h)


def _v5_monitor_window(observed: ObservedView, settings: AgtmuxSettings) -> timedelta:
    """What a v5 monitoring gate that also runs in later phases looks back over: the canary
    window, the gradual window in gradual, the v5-only stable window in cutover."""
    windows = settings.windows
    return {
        "gradual": timedelta(days=windows.gradual_days),
        "cutover": timedelta(days=windows.cutover_stable_days),
    }.get(observed.observation.phase, _canary_window(settings))


@gate("canary.pre.snapshot-recorded")
def test_snapshot_taken_at_current_state(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    conclude(
        canarygate_observed, "snapshot", snapshot_recorded(canarygate_observed, agtmux_settings)
    )


@gate("canary.selector.canary-sessions")
def test_v5_enabled_for_canary_sessions(canarygate_observed: ObservedView) -> None:
    selector = one_of(canarygate_observed, "runtime_selector", RuntimeSelector)
    judged = selector_matches_phase(
        selector,
        "canary",
        sessions_of(canarygate_observed.daemon("v4")),
        sessions_of(canarygate_observed.daemon("v5")),
    )
    conclude(canarygate_observed, "selector", judged)


@gate("canary.monitor.source-health")
def test_v5_sources_stay_active(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    """Now (registry and source health) AND over the window (the daemon log's source
    transitions): a source that went stale and came back is no source that stayed active."""
    window = _v5_monitor_window(canarygate_observed, agtmux_settings)
    span = format_duration(window)

    def transitions() -> Judgement:
        log = evidence_of(canarygate_observed, "log_events", LogEvent)
        return sources_stayed_active(
            log.records, window, canarygate_observed.now, log, max_lag=max_lag(agtmux_settings)
        )

    judged = combine(
        f"v5 sources not shown active over the last {span}",
        {
            "now": attempt(lambda: daemon_sources(canarygate_observed, agtmux_settings, "v5")),
            "daemon log": history_part(
                canarygate_observed,
                "log_events",
                transitions,
                what=f"source transitions over the last {span}",
            ),
        },
    )
    conclude(canarygate_observed, "sources", judged)


@gate("canary.monitor.latency")
def test_canary_latency_within_slo(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    """The current evaluation AND every p95 breach the daemon logged in the window (WARN "SLO
    breach" as well as ERROR "SLO DEGRADED") AND the latency alerts: an alert from another
    source (the supervisor's Escalate) is judged by the gate of its own item."""
    threshold = agtmux_settings.thresholds.latency_p95_ms
    window = _canary_window(agtmux_settings)
    span = format_duration(window)
    lag = max_lag(agtmux_settings)

    def breaches_in_log() -> Judgement:
        log = evidence_of(canarygate_observed, "log_events", LogEvent)
        return latency_log_events(
            log.records,
            window,
            canarygate_observed.now,
            log,
            kinds=SLO_LOG_KINDS,
            above_ms=threshold,
            max_lag=lag,
        )

    def latency_alerts() -> Judgement:
        entries = evidence_of(canarygate_observed, "alert_entries", AlertEntry)
        return alerts_from_sources(
            entries.records,
            Severity.DEGRADED,
            LATENCY_ALERT_SOURCES,
            window,
            canarygate_observed.now,
            entries,
            max_lag=lag,
        )

    judged = combine(
        f"v5 latency SLO not shown met over the last {span}",
        {
            "latency_status now": attempt(
                lambda: latency_slo(
                    canarygate_observed.daemon("v5").result("latency_status"), threshold
                )
            ),
            "daemon log p95 breaches": history_part(
                canarygate_observed,
                "log_events",
                breaches_in_log,
                what=f"latency over the last {span}",
            ),
            "latency alerts": attempt(latency_alerts),
        },
    )
    conclude(canarygate_observed, "latency", judged)


@gate("canary.monitor.cas-conflicts")
def test_canary_binding_cas_conflicts_zero(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    stats = one_of(canarygate_observed, "binding_stats", BindingStats)
    judged = cas_conflicts(
        stats,
        _canary_window(agtmux_settings),
        canarygate_observed.now,
        max_lag=max_lag(agtmux_settings),
    )
    conclude(canarygate_observed, "CAS conflicts", judged)


@gate("canary.monitor.cursor")
def test_canary_cursor_no_invalid_streak_and_advancing(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    stats = one_of(canarygate_observed, "cursor_stats", CursorStats)
    judged = cursor_streaks(
        stats,
        now=canarygate_observed.now,
        window=_canary_window(agtmux_settings),
        max_lag=max_lag(agtmux_settings),
    )
    conclude(canarygate_observed, "cursor", judged)


@gate("canary.duration.active-48h")
def test_canary_ran_its_window_with_active_usage(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    window = _canary_window(agtmux_settings)
    v5 = canarygate_observed.daemon("v5")
    judged = combine(
        f"canary not shown running {format_duration(window)} with every canary session in use",
        {
            "phase": attempt(lambda: phase_for(canarygate_observed, window, "canary")),
            "every canary session in use": attempt(
                lambda: canary_sessions_in_use(
                    one_of(canarygate_observed, "runtime_selector", RuntimeSelector),
                    panes(v5),
                    state_changes(v5),
                    window,
                    now=canarygate_observed.now,
                )
            ),
        },
    )
    conclude(canarygate_observed, "canary duration", judged)


@gate("canary.expand.sessions-managed")
def test_every_canary_session_managed_on_v5(canarygate_observed: ObservedView) -> None:
    selector = one_of(canarygate_observed, "runtime_selector", RuntimeSelector)
    judged = canary_sessions_on(selector, panes(canarygate_observed.daemon("v5")))
    conclude(canarygate_observed, "canary sessions", judged)


@gate("canary.exit.stable-48h")
def test_canary_stable_for_its_window(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    window = _canary_window(agtmux_settings)
    judged = stable_for(canarygate_observed, agtmux_settings, window, phase="canary")
    conclude(canarygate_observed, "stability", judged)


@gate("canary.exit.no-degraded-alerts")
def test_no_alert_at_or_above_degraded(
    canarygate_observed: ObservedView,
    agtmux_settings: AgtmuxSettings,
    canarygate_custody: CustodyView,
) -> None:
    # The whole canary, not a fixed 48h: from the phase start the archive shows, when longer.
    window = max(
        _canary_window(agtmux_settings),
        time_in_phase(canarygate_custody, canarygate_observed.now),
    )
    judged = alerts_from(canarygate_observed, agtmux_settings, Severity.DEGRADED, window)
    conclude(canarygate_observed, "alerts", judged)
