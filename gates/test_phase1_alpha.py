"""Phase 1, internal alpha: v5 runs beside v4 in shadow and must project the same fleet.

Runbook: "Phase 1: Internal Alpha (v4 + v5 parallel)".
The 24h monitoring gates judge timestamped history (windows.alpha_monitor_h): a history that does
not reach back over the whole window is INCONCLUSIVE and says which span it covered.
"""

from __future__ import annotations

from pathlib import Path

from pytest_canarygate.agtmux.gate_api import SIGNATURE_FIELDS
from pytest_canarygate.agtmux.gate_api import AgtmuxSettings
from pytest_canarygate.agtmux.gate_api import GateFailed
from pytest_canarygate.agtmux.gate_api import Inconclusive
from pytest_canarygate.agtmux.gate_api import ObservedView
from pytest_canarygate.agtmux.gate_api import ParityConfig
from pytest_canarygate.agtmux.gate_api import RuntimeSelector
from pytest_canarygate.agtmux.gate_api import Severity
from pytest_canarygate.agtmux.gate_api import SupervisorStatus
from pytest_canarygate.agtmux.gate_api import Unobservable
from pytest_canarygate.agtmux.gate_api import agent_session_keys
from pytest_canarygate.agtmux.gate_api import agent_sessions
from pytest_canarygate.agtmux.gate_api import alerts_from
from pytest_canarygate.agtmux.gate_api import by_key
from pytest_canarygate.agtmux.gate_api import conclude
from pytest_canarygate.agtmux.gate_api import daemon_info
from pytest_canarygate.agtmux.gate_api import daemon_uptime
from pytest_canarygate.agtmux.gate_api import diff_projections
from pytest_canarygate.agtmux.gate_api import failure_message
from pytest_canarygate.agtmux.gate_api import gate
from pytest_canarygate.agtmux.gate_api import hold_downs
from pytest_canarygate.agtmux.gate_api import max_lag
from pytest_canarygate.agtmux.gate_api import monitoring_window
from pytest_canarygate.agtmux.gate_api import one_of
from pytest_canarygate.agtmux.gate_api import panes
from pytest_canarygate.agtmux.gate_api import panes_of_session
from pytest_canarygate.agtmux.gate_api import parse_endpoint
from pytest_canarygate.agtmux.gate_api import projection_advancing
from pytest_canarygate.agtmux.gate_api import restore_dry_run_now
from pytest_canarygate.agtmux.gate_api import selector_matches_phase
from pytest_canarygate.agtmux.gate_api import signature_problems
from pytest_canarygate.agtmux.gate_api import startup_order_shown
from pytest_canarygate.agtmux.gate_api import state_changes
from pytest_canarygate.agtmux.gate_api import supervisor_ready


def _daemon_info(canarygate_observed: ObservedView, name: str) -> dict[str, object]:
    return daemon_info(canarygate_observed.daemon(name))


@gate("alpha.deploy.distinct-sockets")
def test_v4_and_v5_serve_on_distinct_sockets(canarygate_observed: ObservedView) -> None:
    v4, v5 = canarygate_observed.daemon("v4"), canarygate_observed.daemon("v5")
    info4, info5 = _daemon_info(canarygate_observed, "v4"), _daemon_info(canarygate_observed, "v5")
    path4, path5 = parse_endpoint(v4.endpoint).path, parse_endpoint(v5.endpoint).path
    if Path(path4).resolve() == Path(path5).resolve():
        raise GateFailed(f"v4 and v5 are configured on the same socket {path4}")
    if Path(path4).parent.resolve() == Path(path5).parent.resolve():
        raise GateFailed(
            f"v4 and v5 sockets share the directory {Path(path4).parent}; each daemon chmods its "
            "socket directory, so each needs its own"
        )
    if info4["nonce"] == info5["nonce"]:
        raise GateFailed(
            f"v4 and v5 answer as the same process (nonce {info4['nonce']}): one daemon is "
            "serving both sockets"
        )


@gate("alpha.parity.panes")
def test_list_panes_parity(
    canarygate_observed: ObservedView, agtmux_tmux_session: str, agtmux_pane_parity: ParityConfig
) -> None:
    v4 = panes_of_session(panes(canarygate_observed.daemon("v4")), agtmux_tmux_session)
    v5 = panes_of_session(panes(canarygate_observed.daemon("v5")), agtmux_tmux_session)
    differences = diff_projections(
        v4, v5, agtmux_pane_parity, label=f"session {agtmux_tmux_session} pane"
    )
    canarygate_observed.note("pane parity differences", [str(d) for d in differences])
    if differences:
        raise GateFailed(
            failure_message(f"list_panes differs in {agtmux_tmux_session}", differences)
        )


@gate("alpha.parity.sessions")
def test_list_sessions_parity(
    canarygate_observed: ObservedView, agtmux_session_parity: ParityConfig
) -> None:
    v4 = by_key(agent_sessions(canarygate_observed.daemon("v4")), "session_key")
    v5 = by_key(agent_sessions(canarygate_observed.daemon("v5")), "session_key")
    differences = diff_projections(v4, v5, agtmux_session_parity, label="agent session")
    canarygate_observed.note("session parity differences", [str(d) for d in differences])
    if differences:
        raise GateFailed(failure_message("list_sessions differs", differences))
    if not v4 and not v5:
        raise Inconclusive(
            "list_sessions parity not shown: 0 agent sessions on v4 and 0 on v5, nothing to "
            "compare (the list is empty until the first event is projected)"
        )


@gate("alpha.parity.signature")
def test_signature_fields_consistent(
    canarygate_observed: ObservedView, agtmux_tmux_session: str
) -> None:
    v4 = panes_of_session(panes(canarygate_observed.daemon("v4")), agtmux_tmux_session)
    v5 = panes_of_session(panes(canarygate_observed.daemon("v5")), agtmux_tmux_session)
    signature = ParityConfig(SIGNATURE_FIELDS, ())
    differences = diff_projections(v4, v5, signature, label=f"session {agtmux_tmux_session} pane")
    problems = [
        f"v5 pane {pid}: {p}" for pid, pane in sorted(v5.items()) for p in signature_problems(pane)
    ]
    canarygate_observed.note("signature differences", [str(d) for d in differences] + problems)
    if differences or problems:
        headline = f"signature fields disagree in {agtmux_tmux_session}"
        raise GateFailed(failure_message(headline, [*differences, *problems]))


@gate("alpha.projection.version-advancing")
def test_projection_version_advancing(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    v5 = canarygate_observed.daemon("v5")
    versions = []
    for reading in (1, 2):
        answer = v5.result("summary_changed", reading)
        version = answer.get("version") if isinstance(answer, dict) else None
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise Unobservable(f"v5 summary_changed: no projection version in {answer!r:.120}")
        versions.append(version)
    nonces = [
        (info.get("nonce") if isinstance(info, dict) else None)
        for info in (v5.result("daemon.info", 1), v5.result("daemon.info", 2))
    ]
    window = monitoring_window(agtmux_settings)
    now = canarygate_observed.now
    judged = projection_advancing(
        (versions[0], versions[1]),
        (nonces[0], nonces[1]),
        state_changes(v5),
        window,
        now=now,
        history_from=now - daemon_uptime(v5, now),
        who=f"v5 ({v5.endpoint})",
    )
    conclude(canarygate_observed, "projection version", judged)


@gate("alpha.exit.projection-matches")
def test_v5_projection_matches_v4(
    canarygate_observed: ObservedView,
    agtmux_tmux_session: str,
    agtmux_pane_parity: ParityConfig,
    agtmux_session_parity: ParityConfig,
) -> None:
    v4_panes = panes_of_session(panes(canarygate_observed.daemon("v4")), agtmux_tmux_session)
    v5_panes = panes_of_session(panes(canarygate_observed.daemon("v5")), agtmux_tmux_session)
    differences = diff_projections(
        v4_panes, v5_panes, agtmux_pane_parity, label=f"session {agtmux_tmux_session} pane"
    )
    # Agent sessions are not tmux sessions; judge the ones bound to this session's panes, also
    # through the change log: a deterministic pane's title decays to the tmux title.
    changes = [
        *state_changes(canarygate_observed.daemon("v4")),
        *state_changes(canarygate_observed.daemon("v5")),
    ]
    keys = agent_session_keys([*v4_panes.values(), *v5_panes.values()], changes)
    v4_all = by_key(agent_sessions(canarygate_observed.daemon("v4")), "session_key")
    v5_all = by_key(agent_sessions(canarygate_observed.daemon("v5")), "session_key")
    v4_sessions = {k: s for k, s in v4_all.items() if k in keys}
    v5_sessions = {k: s for k, s in v5_all.items() if k in keys}
    differences += diff_projections(
        v4_sessions, v5_sessions, agtmux_session_parity, label="agent session"
    )
    canarygate_observed.note("projection differences", [str(d) for d in differences])
    if differences:
        raise GateFailed(
            failure_message(
                f"v5 projection does not match v4 in {agtmux_tmux_session}", differences
            )
        )


@gate("alpha.selector.routes-to-v4")
def test_runtime_selector_routes_everything_to_v4(canarygate_observed: ObservedView) -> None:
    selector = one_of(canarygate_observed, "runtime_selector", RuntimeSelector)
    conclude(canarygate_observed, "selector", selector_matches_phase(selector, "alpha"))


@gate("alpha.supervisor.ready")
def test_supervisor_ready_in_startup_order(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    status = one_of(canarygate_observed, "supervisor_status", SupervisorStatus)
    judged = supervisor_ready(
        status,
        now=canarygate_observed.now,
        max_lag=max_lag(agtmux_settings),
        startup=startup_order_shown(canarygate_observed),
    )
    conclude(canarygate_observed, "supervisor", judged)


@gate("alpha.monitor.no-hold-down")
def test_no_supervisor_hold_down_while_monitoring(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    window = monitoring_window(agtmux_settings)
    conclude(
        canarygate_observed, "hold-downs", hold_downs(canarygate_observed, agtmux_settings, window)
    )


@gate("alpha.monitor.no-escalations")
def test_no_alert_escalations_while_monitoring(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    window = monitoring_window(agtmux_settings)
    judged = alerts_from(canarygate_observed, agtmux_settings, Severity.ESCALATE, window)
    conclude(canarygate_observed, "escalations", judged)


@gate("alpha.exit.zero-hold-downs")
def test_zero_hold_down_events_in_the_window(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    window = monitoring_window(agtmux_settings)
    conclude(
        canarygate_observed, "hold-downs", hold_downs(canarygate_observed, agtmux_settings, window)
    )


@gate("alpha.exit.restore-dry-run")
def test_snapshot_dry_run_passes_at_current_version(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    conclude(
        canarygate_observed,
        "restore dry-run",
        restore_dry_run_now(canarygate_observed, agtmux_settings),
    )
