"""Phase 3, gradual default: new sessions go to v5 while v4 keeps serving and stays the
rollback target.

Runbook: "Phase 3: Gradual Default (new sessions on v5)". agtmux has no notion of which daemon
"owns" a session (daemon facts 12), so v4 and v5 session counts are what each daemon itself
serves: tmux sessions with managed panes, and agent sessions. The phase counts from the later of
v5's start and the runtime selector's last change; v4 holding nothing is evidence only once it
has ticked and only if it has run since before the phase began (a restart clears its sessions).
"""

from __future__ import annotations

from datetime import timedelta

from pytest_canarygate.agtmux.gate_api import AgtmuxSettings
from pytest_canarygate.agtmux.gate_api import DaemonView
from pytest_canarygate.agtmux.gate_api import Judgement
from pytest_canarygate.agtmux.gate_api import ObservedView
from pytest_canarygate.agtmux.gate_api import RuntimeSelector
from pytest_canarygate.agtmux.gate_api import agent_sessions
from pytest_canarygate.agtmux.gate_api import attempt
from pytest_canarygate.agtmux.gate_api import combine
from pytest_canarygate.agtmux.gate_api import conclude
from pytest_canarygate.agtmux.gate_api import daemon_info
from pytest_canarygate.agtmux.gate_api import daemon_uptime
from pytest_canarygate.agtmux.gate_api import from_history
from pytest_canarygate.agtmux.gate_api import gate
from pytest_canarygate.agtmux.gate_api import keeps_its_sessions
from pytest_canarygate.agtmux.gate_api import max_lag
from pytest_canarygate.agtmux.gate_api import migration_counts
from pytest_canarygate.agtmux.gate_api import one_of
from pytest_canarygate.agtmux.gate_api import panes
from pytest_canarygate.agtmux.gate_api import phase_for
from pytest_canarygate.agtmux.gate_api import ready
from pytest_canarygate.agtmux.gate_api import restart_rate_regression
from pytest_canarygate.agtmux.gate_api import selector_matches_phase
from pytest_canarygate.agtmux.gate_api import served_counts


def _served(view: DaemonView) -> dict[str, int]:
    """What one daemon serves: tmux sessions with managed panes, managed panes, agent sessions."""
    return served_counts(panes(view), agent_sessions(view))


@gate("gradual.selector.default-v5")
def test_default_switched_to_v5(canarygate_observed: ObservedView) -> None:
    selector = one_of(canarygate_observed, "runtime_selector", RuntimeSelector)
    conclude(canarygate_observed, "selector", selector_matches_phase(selector, "gradual"))


@gate("gradual.v4.serves-its-sessions")
def test_existing_v4_sessions_continue_on_v4(canarygate_observed: ObservedView) -> None:
    v4 = canarygate_observed.daemon("v4")

    def sessions() -> Judgement:
        phase_start = one_of(canarygate_observed, "runtime_selector", RuntimeSelector).changed_at
        started = canarygate_observed.now - daemon_uptime(v4, canarygate_observed.now)
        return keeps_its_sessions(agent_sessions(v4), panes(v4), started, phase_start)

    judged = combine(
        "existing v4 sessions not shown continuing on v4",
        {
            "sessions": attempt(sessions),
            "readiness": attempt(lambda: ready(canarygate_observed, "v4")),
        },
    )
    conclude(canarygate_observed, "v4 sessions", judged)


@gate("gradual.migration-rate")
def test_migration_rate_counts_observable(canarygate_observed: ObservedView) -> None:
    counts = {name: _served(canarygate_observed.daemon(name)) for name in ("v4", "v5")}
    conclude(canarygate_observed, "migration rate", migration_counts(counts["v4"], counts["v5"]))


@gate("gradual.v4.rollback-target")
def test_v4_daemon_kept_running_as_rollback_target(canarygate_observed: ObservedView) -> None:
    v4 = canarygate_observed.daemon("v4")
    info = daemon_info(v4)
    canarygate_observed.note("v4 rollback target", {"daemon.info": info, "panes": len(panes(v4))})
    # Answering is not serving: a v4 whose pipeline never ticked serves nothing to roll back to.
    conclude(canarygate_observed, "v4 readiness", ready(canarygate_observed, "v4"))


@gate("gradual.exit.v5-default-7d")
def test_new_sessions_on_v5_for_7_days(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    window = timedelta(days=agtmux_settings.windows.gradual_days)
    judged = combine(
        "new sessions not shown on v5 for the whole window",
        {
            "selector": attempt(
                lambda: selector_matches_phase(
                    one_of(canarygate_observed, "runtime_selector", RuntimeSelector), "gradual"
                )
            ),
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
        switched = one_of(canarygate_observed, "runtime_selector", RuntimeSelector).changed_at
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
