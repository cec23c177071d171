"""Phase 1, internal alpha: v5 runs beside v4 in shadow and must project the same fleet.

Runbook: "Phase 1: Internal Alpha (v4 + v5 parallel)".
The 24h monitoring gates judge timestamped history (windows.alpha_monitor_h): a history that does
not reach back over the whole window is INCONCLUSIVE and says which span it covered.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

from pytest_canarygate.agtmux.gate_api import NO_TMUX_SESSION
from pytest_canarygate.agtmux.gate_api import SIGNATURE_FIELDS
from pytest_canarygate.agtmux.gate_api import AgtmuxSettings
from pytest_canarygate.agtmux.gate_api import Change
from pytest_canarygate.agtmux.gate_api import DaemonView
from pytest_canarygate.agtmux.gate_api import Difference
from pytest_canarygate.agtmux.gate_api import GateFailed
from pytest_canarygate.agtmux.gate_api import Inconclusive
from pytest_canarygate.agtmux.gate_api import Judgement
from pytest_canarygate.agtmux.gate_api import ObservedView
from pytest_canarygate.agtmux.gate_api import ParityConfig
from pytest_canarygate.agtmux.gate_api import Record
from pytest_canarygate.agtmux.gate_api import RuntimeSelector
from pytest_canarygate.agtmux.gate_api import Severity
from pytest_canarygate.agtmux.gate_api import SupervisorStatus
from pytest_canarygate.agtmux.gate_api import Unobservable
from pytest_canarygate.agtmux.gate_api import agent_session_keys_indexed
from pytest_canarygate.agtmux.gate_api import alerts_from
from pytest_canarygate.agtmux.gate_api import attempt
from pytest_canarygate.agtmux.gate_api import combine
from pytest_canarygate.agtmux.gate_api import compare_projections
from pytest_canarygate.agtmux.gate_api import conclude
from pytest_canarygate.agtmux.gate_api import daemon_info
from pytest_canarygate.agtmux.gate_api import daemon_uptime
from pytest_canarygate.agtmux.gate_api import diff_projections
from pytest_canarygate.agtmux.gate_api import failure_message
from pytest_canarygate.agtmux.gate_api import gate
from pytest_canarygate.agtmux.gate_api import hold_downs
from pytest_canarygate.agtmux.gate_api import live_panes
from pytest_canarygate.agtmux.gate_api import max_lag
from pytest_canarygate.agtmux.gate_api import monitoring_window
from pytest_canarygate.agtmux.gate_api import one_of
from pytest_canarygate.agtmux.gate_api import pane_index
from pytest_canarygate.agtmux.gate_api import parity_in_readings
from pytest_canarygate.agtmux.gate_api import parse_endpoint
from pytest_canarygate.agtmux.gate_api import projection_advancing
from pytest_canarygate.agtmux.gate_api import selector_matches_phase
from pytest_canarygate.agtmux.gate_api import session_index
from pytest_canarygate.agtmux.gate_api import signature_problems
from pytest_canarygate.agtmux.gate_api import startup_order_shown
from pytest_canarygate.agtmux.gate_api import state_changes
from pytest_canarygate.agtmux.gate_api import supervisor_ready
from pytest_canarygate.agtmux.gate_api import view_ready


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


# Parity (P1-S4a..c, P1-X1) is judged on two readings of each daemon taken apart over the run,
# once both have completed a pipeline tick: a difference in both FAILs, one in a single reading
# is flapping (INCONCLUSIVE). Panes are compared by pane id, one instance per tmux session and
# one for the panes no tmux session lists (NO_TMUX_SESSION). Agent sessions kept only as history
# (bound to no pane tmux lists) are counted, not compared.
#
# Each gate notes what it judged (compare_projections): the fields compared of every record,
# grouped where v4 and v5 agree on them (one entry for the records with the same values), each
# daemon's fields where they do not, per reading ("as in reading 1" where a later reading judged
# the same). The bundle's observation holds the full answers.
READINGS = (1, 2)
SIGNATURE_PARITY = ParityConfig(SIGNATURE_FIELDS, ())
Panes = dict[str, Record]
Views = dict[str, DaemonView]


def _both_ready(observed: ObservedView) -> Views:
    """End the gate unless v4 and v5 have both completed a pipeline tick: before that a
    daemon's panes and sessions are empty whatever it serves (daemon facts 13). Both daemons,
    by name."""
    views: Views = {}

    def judge(name: str) -> Judgement:
        views[name] = observed.daemon(name)
        return view_ready(views[name], who=name)

    parts = {"v4": attempt(lambda: judge("v4")), "v5": attempt(lambda: judge("v5"))}
    if not all(judged.passed for judged in parts.values()):
        conclude(observed, "readiness", combine("parity not judged", parts))
    return views


def _scope(session: str) -> str:
    return "outside any tmux session" if session == NO_TMUX_SESSION else f"in {session}"


def _panes_in(view: DaemonView, session: str, reading: int) -> Panes:
    """The panes the daemon lists in tmux ``session`` (or in none), by pane id."""
    found = pane_index(view, reading)
    return found.of_session(None if session == NO_TMUX_SESSION else session)


def _pane_parity(
    views: Views, session: str, parity: ParityConfig, reading: int
) -> tuple[Panes, Panes, list[Difference], dict[str, object]]:
    """v4's and v5's panes in ``session`` in one reading, how v5's differ, and what was
    judged (the fields compared of each pane)."""
    v4, v5 = (_panes_in(views[name], session, reading) for name in ("v4", "v5"))
    label = (
        "pane outside any tmux session" if session == NO_TMUX_SESSION else f"session {session} pane"
    )
    differences, judged = compare_projections(v4, v5, parity, label=label, key_field="pane_id")
    return v4, v5, differences, judged


def _by_reading(found: Sequence[object]) -> dict[str, object]:
    """What was judged in each reading; a later one equal to the first is not repeated."""
    return {
        f"reading {reading}": judged if reading == 1 or judged != found[0] else "as in reading 1"
        for reading, judged in zip(READINGS, found, strict=True)
    }


def _session_parity(
    views: Views, parity: ParityConfig, reading: int, here: Sequence[Record] | None
) -> tuple[int, list[Difference], dict[str, list[str]], dict[str, object] | None]:
    """Agent-session parity in one reading: how many sessions were compared, how v5's differ
    from v4's, per daemon the sessions kept only as history, and what was judged (the
    sessions compared, the change log of ``here``; None for the whole fleet). ``here``: only
    the sessions bound to these panes (None: the whole fleet)."""
    index = session_index(views, reading)
    if here is None:
        compared: set[str] | frozenset[str] = index.active
        bound = None
    else:
        compared = agent_session_keys_indexed(live_panes(here), index.changes)
        bound = agent_session_keys_indexed(here, index.changes)
    kept = {
        name: {key: sessions[key] for key in sorted(compared) if key in sessions}
        for name, sessions in index.sessions.items()
    }
    history = {
        name: list(keys) if bound is None else index.history_of(name, bound)
        for name, keys in index.history.items()
    }
    label = "agent session"
    if here is None:
        differences = diff_projections(kept["v4"], kept["v5"], parity, label=label)
        return len(set(kept["v4"]) | set(kept["v5"])), differences, history, None
    differences, sessions = compare_projections(
        kept["v4"], kept["v5"], parity, label=label, key_field="session_key"
    )
    judged: dict[str, object] = {
        "agent sessions": sessions,
        "change log": _log_of_panes(index.changes, {str(p["pane_id"]) for p in here}),
    }
    return len(set(kept["v4"]) | set(kept["v5"])), differences, history, judged


def _log_of_panes(changes: Mapping[str, Sequence[Change]], pane_ids: set[str]) -> dict[str, object]:
    """What v4's and v5's change logs hold of these panes: per pane its entries counted and
    the session keys they bind (a pane whose entries bind none is not listed there)."""
    entries: dict[str, int] = {}
    keys: dict[str, list[str]] = {}
    for pane_id in sorted(pane_ids):
        found = changes.get(pane_id, ())
        entries[pane_id] = len(found)
        bound = sorted({c.session_key for c in found if c.session_key})
        if bound:
            keys[pane_id] = bound
    return {"entries": entries, "session_keys": keys}


@gate("alpha.parity.panes")
def test_list_panes_parity(
    canarygate_observed: ObservedView, agtmux_tmux_session: str, agtmux_pane_parity: ParityConfig
) -> None:
    views = _both_ready(canarygate_observed)
    found = [
        _pane_parity(views, agtmux_tmux_session, agtmux_pane_parity, reading)
        for reading in READINGS
    ]
    canarygate_observed.note("panes judged", _by_reading([judged for *_, judged in found]))
    compared = len(set(found[-1][0]) | set(found[-1][1]))
    judged = parity_in_readings(
        [differences for _, _, differences, _ in found],
        what=f"list_panes {_scope(agtmux_tmux_session)}",
        compared=f"{compared} panes by pane id",
    )
    conclude(canarygate_observed, "pane parity", judged)


@gate("alpha.parity.sessions")
def test_list_sessions_parity(
    canarygate_observed: ObservedView, agtmux_session_parity: ParityConfig
) -> None:
    views = _both_ready(canarygate_observed)
    found = [_session_parity(views, agtmux_session_parity, reading, None) for reading in READINGS]
    compared, _, history, _ = found[-1]
    judged = parity_in_readings(
        [differences for _, differences, _, _ in found],
        what="list_sessions",
        compared=f"{compared} active agent sessions by session key",
        history=history,
    )
    if judged.passed and not any(count for count, _, _, _ in found):
        kept = sum(len(keys) for keys in history.values())
        raise Inconclusive(
            "list_sessions parity not shown: 0 active agent sessions on v4 and 0 on v5, nothing "
            f"to compare ({kept} kept only as history; the list is empty until the first event "
            "is projected)"
        )
    conclude(canarygate_observed, "session parity", judged)


@gate("alpha.parity.signature")
def test_signature_fields_consistent(
    canarygate_observed: ObservedView, agtmux_tmux_session: str
) -> None:
    views = _both_ready(canarygate_observed)
    found = [
        _pane_parity(views, agtmux_tmux_session, SIGNATURE_PARITY, reading) for reading in READINGS
    ]
    canarygate_observed.note("panes judged", _by_reading([judged for *_, judged in found]))
    scope = _scope(agtmux_tmux_session)
    problems = sorted(
        {
            f"v5 pane {pid} (reading {reading}): {problem}"
            for reading, (_, v5, _, _) in zip(READINGS, found, strict=True)
            for pid, pane in v5.items()
            for problem in signature_problems(pane)
        }
    )
    if problems:
        canarygate_observed.note("signature problems", problems)
        raise GateFailed(failure_message(f"signature fields malformed on v5 {scope}", problems))
    compared = len(set(found[-1][0]) | set(found[-1][1]))
    judged = parity_in_readings(
        [differences for _, _, differences, _ in found],
        what=f"signature fields {scope}",
        compared=f"{compared} panes by pane id",
    )
    conclude(canarygate_observed, "signature parity", judged)


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
    views = _both_ready(canarygate_observed)
    readings = []
    noted: list[object] = []
    for reading in READINGS:
        v4, v5, differences, judged_panes = _pane_parity(
            views, agtmux_tmux_session, agtmux_pane_parity, reading
        )
        # Agent sessions are not tmux sessions; judge the ones bound to these panes, also
        # through the change log: a deterministic pane's title decays to the tmux title.
        here = [*v4.values(), *v5.values()]
        sessions, session_differences, history, judged_sessions = _session_parity(
            views, agtmux_session_parity, reading, here
        )
        noted.append({"panes": judged_panes, **(judged_sessions or {})})
        readings.append((len(set(v4) | set(v5)), sessions, differences + session_differences))
    canarygate_observed.note("projection judged", _by_reading(noted))
    panes_compared, sessions_compared, _ = readings[-1]
    judged = parity_in_readings(
        [differences for _, _, differences in readings],
        what=f"v5 projection {_scope(agtmux_tmux_session)}",
        compared=f"{panes_compared} panes and {sessions_compared} active agent sessions",
        history=history,
    )
    conclude(canarygate_observed, "projection parity", judged)


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
