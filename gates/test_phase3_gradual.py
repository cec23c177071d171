"""Phase 3, gradual default: new sessions go to v5 while v4 keeps serving and stays the
rollback target.

Runbook: "Phase 3: Gradual Default (new sessions on v5)". Both daemons watch the same tmux server
and show every session (daemon facts 11), so which daemon serves a session is what the runtime
selector routes: its session routes, each with the session's start, judged against the switch
to v5 (the selector's ``changed_at_ms``). The phase counts from the later of v5's start and that
switch.
"""

from __future__ import annotations

from datetime import timedelta

from pytest_canarygate.agtmux.gate_api import AgtmuxSettings
from pytest_canarygate.agtmux.gate_api import Judgement
from pytest_canarygate.agtmux.gate_api import ObservedView
from pytest_canarygate.agtmux.gate_api import RuntimeSelector
from pytest_canarygate.agtmux.gate_api import attempt
from pytest_canarygate.agtmux.gate_api import combine
from pytest_canarygate.agtmux.gate_api import conclude
from pytest_canarygate.agtmux.gate_api import daemon_info
from pytest_canarygate.agtmux.gate_api import from_history
from pytest_canarygate.agtmux.gate_api import gate
from pytest_canarygate.agtmux.gate_api import max_lag
from pytest_canarygate.agtmux.gate_api import new_sessions_on_v5
from pytest_canarygate.agtmux.gate_api import one_of
from pytest_canarygate.agtmux.gate_api import panes
from pytest_canarygate.agtmux.gate_api import phase_for
from pytest_canarygate.agtmux.gate_api import ready
from pytest_canarygate.agtmux.gate_api import restart_rate_regression
from pytest_canarygate.agtmux.gate_api import routed_counts
from pytest_canarygate.agtmux.gate_api import selector_matches_phase
from pytest_canarygate.agtmux.gate_api import sessions_of
from pytest_canarygate.agtmux.gate_api import v4_sessions_continue


def _selector(observed: ObservedView) -> RuntimeSelector:
    return one_of(observed, "runtime_selector", RuntimeSelector)


@gate("gradual.selector.default-v5")
def test_default_switched_to_v5(canarygate_observed: ObservedView) -> None:
    selector = _selector(canarygate_observed)
    conclude(canarygate_observed, "selector", selector_matches_phase(selector, "gradual"))


@gate("gradual.v4.serves-its-sessions")
def test_existing_v4_sessions_continue_on_v4(canarygate_observed: ObservedView) -> None:
    """No session started before the switch moved off v4 without a restart, and v4 (ready)
    shows every session routed to it."""
    readiness = attempt(lambda: ready(canarygate_observed, "v4"))

    def sessions() -> Judgement:
        # an unready v4 shows nothing yet, which proves nothing about what it serves
        shown = set(sessions_of(canarygate_observed.daemon("v4"))) if readiness.passed else None
        return v4_sessions_continue(_selector(canarygate_observed), shown)

    judged = combine(
        "existing v4 sessions not shown continuing on v4",
        {"sessions": attempt(sessions), "readiness": readiness},
    )
    conclude(canarygate_observed, "v4 sessions", judged)


@gate("gradual.migration-rate")
def test_migration_rate_counts_observable(canarygate_observed: ObservedView) -> None:
    """v4 and v5 session counts as the selector routes them (kept in the evidence each run)."""
    judged = attempt(lambda: routed_counts(_selector(canarygate_observed)))
    conclude(canarygate_observed, "migration rate", judged)


@gate("gradual.v4.rollback-target")
def test_v4_daemon_kept_running_as_rollback_target(canarygate_observed: ObservedView) -> None:
    v4 = canarygate_observed.daemon("v4")
    info = daemon_info(v4)
    canarygate_observed.note("v4 rollback target", {"daemon.info": info, "panes": len(panes(v4))})
    # Answering is not serving: a v4 whose pipeline never ticked serves nothing to roll back to.
    conclude(canarygate_observed, "v4 readiness", ready(canarygate_observed, "v4"))


@gate("gradual.exit.v5-default-7d")
def test_new_sessions_on_v5_for_the_gradual_window(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    window = timedelta(days=agtmux_settings.windows.gradual_days)
    judged = combine(
        "new sessions not shown on v5 for the whole window",
        {
            "selector": attempt(
                lambda: selector_matches_phase(_selector(canarygate_observed), "gradual")
            ),
            "routes": attempt(lambda: new_sessions_on_v5(_selector(canarygate_observed))),
            "phase": attempt(lambda: phase_for(canarygate_observed, window, "gradual")),
        },
    )
    conclude(canarygate_observed, "v5 default", judged)


@gate("gradual.exit.no-restart-regression")
def test_no_regression_in_supervisor_restarts(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    """The restart rate since the selector switched the default to v5 against the same span
    before the switch, from the supervisor events or the daemon log."""
    now = canarygate_observed.now
    lag = max_lag(agtmux_settings)
    tolerance = agtmux_settings.thresholds.restart_rate_tolerance_pct
    # Histories are read back only as far as the longest window (plus a margin).
    read_from = now - agtmux_settings.windows.longest()

    def regression() -> Judgement:
        switched = _selector(canarygate_observed).changed_at
        return from_history(
            canarygate_observed,
            "supervisor restart rate",
            lambda events, coverage: restart_rate_regression(
                events,
                now,
                coverage,
                phase_start=switched,
                tolerance_pct=tolerance,
                max_lag=lag,
                read_from=read_from,
            ),
        )

    conclude(canarygate_observed, "restarts", attempt(regression))
