"""Phase 2, canary: v5 serves the canary sessions the runtime selector names.

Runbook: "Phase 2: Canary (limited users on v5)". Source health, latency, CAS conflicts and the
cursor are daemon-wide evidence (agtmux keeps none of them per tmux session), so each is judged
once for the v5 daemon that serves every canary session; the gates about the canary sessions
themselves (selector, presence, usage) name each session. The canary's duration counts from the
later of v5's start and the runtime selector's last change, and its usage from the change log of
the canary panes (managed panes are never removed, so their presence proves no use). The latency
is the current evaluation AND the daemon log's SLO lines over the window. Checklist items 3 and
4 and the users' confirmation are chain-of-custody and sign-off items (pending in the catalog).
"""

from __future__ import annotations

from datetime import timedelta

from pytest_canarygate import ObservedView
from pytest_canarygate import gate
from pytest_canarygate.agtmux.gate_support import alerts_from
from pytest_canarygate.agtmux.gate_support import attempt
from pytest_canarygate.agtmux.gate_support import combine
from pytest_canarygate.agtmux.gate_support import conclude
from pytest_canarygate.agtmux.gate_support import daemon_sources
from pytest_canarygate.agtmux.gate_support import evidence_of
from pytest_canarygate.agtmux.gate_support import history_part
from pytest_canarygate.agtmux.gate_support import max_lag
from pytest_canarygate.agtmux.gate_support import one_of
from pytest_canarygate.agtmux.gate_support import phase_for
from pytest_canarygate.agtmux.gate_support import restore_dry_run_now
from pytest_canarygate.agtmux.gate_support import sessions_of
from pytest_canarygate.agtmux.gate_support import snapshot_recorded
from pytest_canarygate.agtmux.gate_support import stable_for
from pytest_canarygate.agtmux.judgement import Judgement
from pytest_canarygate.agtmux.judgement import canary_activity
from pytest_canarygate.agtmux.judgement import canary_sessions_on
from pytest_canarygate.agtmux.judgement import canary_usage
from pytest_canarygate.agtmux.judgement import cas_conflicts
from pytest_canarygate.agtmux.judgement import cursor_streaks
from pytest_canarygate.agtmux.judgement import format_duration
from pytest_canarygate.agtmux.judgement import latency_log_events
from pytest_canarygate.agtmux.judgement import latency_slo
from pytest_canarygate.agtmux.judgement import selector_matches_phase
from pytest_canarygate.agtmux.protocol import panes
from pytest_canarygate.agtmux.protocol import state_changes
from pytest_canarygate.agtmux.providers import BindingStats
from pytest_canarygate.agtmux.providers import CursorStats
from pytest_canarygate.agtmux.providers import LogEvent
from pytest_canarygate.agtmux.providers import RuntimeSelector
from pytest_canarygate.agtmux.providers import Severity
from pytest_canarygate.config import CanarygateConfig


def _canary_window(settings: CanarygateConfig) -> timedelta:
    return timedelta(hours=settings.windows.canary_duration_h)


@gate("canary.pre.snapshot-recorded")
def test_snapshot_taken_at_current_state(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    conclude(observed, "snapshot", snapshot_recorded(observed, canarygate_settings))


@gate("canary.pre.restore-dry-run")
def test_restore_dry_run_passes(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    conclude(observed, "restore dry-run", restore_dry_run_now(observed, canarygate_settings))


@gate("canary.selector.canary-sessions")
def test_v5_enabled_for_canary_sessions(observed: ObservedView) -> None:
    selector = one_of(observed, "runtime_selector", RuntimeSelector)
    judged = selector_matches_phase(
        selector,
        "canary",
        sessions_of(observed.daemon("v4")),
        sessions_of(observed.daemon("v5")),
    )
    conclude(observed, "selector", judged)


@gate("canary.monitor.source-health")
def test_canary_sources_all_active(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    conclude(observed, "sources", daemon_sources(observed, canarygate_settings, "v5"))


@gate("canary.monitor.latency")
def test_canary_latency_within_slo(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    threshold = canarygate_settings.thresholds.latency_p95_ms
    window = _canary_window(canarygate_settings)

    def degraded_in_log() -> Judgement:
        log = evidence_of(observed, "log_events", LogEvent)
        return latency_log_events(
            log.records,
            window,
            observed.now,
            log,
            kinds={"slo_degraded"},
            max_lag=max_lag(canarygate_settings),
        )

    judged = combine(
        "v5 latency SLO not shown met",
        {
            "latency_status": attempt(
                lambda: latency_slo(observed.daemon("v5").result("latency_status"), threshold)
            ),
            "daemon log": history_part(
                observed,
                "log_events",
                degraded_in_log,
                what=f"latency over the last {format_duration(window)}",
            ),
            "alerts >= Degraded": attempt(
                lambda: alerts_from(observed, canarygate_settings, Severity.DEGRADED, window)
            ),
        },
    )
    conclude(observed, "latency", judged)


@gate("canary.monitor.cas-conflicts")
def test_canary_binding_cas_conflicts_zero(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    stats = one_of(observed, "binding_stats", BindingStats)
    judged = cas_conflicts(
        stats,
        _canary_window(canarygate_settings),
        observed.now,
        max_lag=max_lag(canarygate_settings),
    )
    conclude(observed, "CAS conflicts", judged)


@gate("canary.monitor.cursor")
def test_canary_cursor_no_invalid_streak_and_advancing(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    stats = one_of(observed, "cursor_stats", CursorStats)
    judged = cursor_streaks(
        stats,
        now=observed.now,
        window=_canary_window(canarygate_settings),
        max_lag=max_lag(canarygate_settings),
    )
    conclude(observed, "cursor", judged)


@gate("canary.duration.active-48h")
def test_canary_ran_48h_with_active_usage(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    window = _canary_window(canarygate_settings)
    v5 = observed.daemon("v5")
    judged = combine(
        "canary duration with active usage not shown",
        {
            "phase": attempt(lambda: phase_for(observed, window, "canary")),
            "usage": attempt(
                lambda: canary_usage(
                    one_of(observed, "runtime_selector", RuntimeSelector), panes(v5)
                )
            ),
            "activity": attempt(
                lambda: canary_activity(
                    one_of(observed, "runtime_selector", RuntimeSelector),
                    panes(v5),
                    state_changes(v5),
                    window,
                    now=observed.now,
                )
            ),
        },
    )
    conclude(observed, "canary duration", judged)


@gate("canary.expand.sessions-managed")
def test_every_canary_session_managed_on_v5(observed: ObservedView) -> None:
    selector = one_of(observed, "runtime_selector", RuntimeSelector)
    judged = canary_sessions_on(selector, panes(observed.daemon("v5")))
    conclude(observed, "canary sessions", judged)


@gate("canary.exit.stable-48h")
def test_canary_stable_48h(observed: ObservedView, canarygate_settings: CanarygateConfig) -> None:
    window = _canary_window(canarygate_settings)
    judged = stable_for(observed, canarygate_settings, window, phase="canary")
    conclude(observed, "stability", judged)


@gate("canary.exit.no-degraded-alerts")
def test_no_alert_at_or_above_degraded(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    window = _canary_window(canarygate_settings)
    judged = alerts_from(observed, canarygate_settings, Severity.DEGRADED, window)
    conclude(observed, "alerts", judged)
