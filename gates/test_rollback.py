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

from collections.abc import Callable
from datetime import timedelta

from pytest_canarygate.agtmux.gate_api import AgtmuxSettings
from pytest_canarygate.agtmux.gate_api import AlertEntry
from pytest_canarygate.agtmux.gate_api import CursorStats
from pytest_canarygate.agtmux.gate_api import CustodyView
from pytest_canarygate.agtmux.gate_api import Inconclusive
from pytest_canarygate.agtmux.gate_api import Judgement
from pytest_canarygate.agtmux.gate_api import LogEvent
from pytest_canarygate.agtmux.gate_api import ObservedView
from pytest_canarygate.agtmux.gate_api import Record
from pytest_canarygate.agtmux.gate_api import RuntimeSelector
from pytest_canarygate.agtmux.gate_api import SupervisorStatus
from pytest_canarygate.agtmux.gate_api import Unobservable
from pytest_canarygate.agtmux.gate_api import Verdict
from pytest_canarygate.agtmux.gate_api import attempt
from pytest_canarygate.agtmux.gate_api import breach_in_progress
from pytest_canarygate.agtmux.gate_api import combine
from pytest_canarygate.agtmux.gate_api import conclude
from pytest_canarygate.agtmux.gate_api import daemon_info
from pytest_canarygate.agtmux.gate_api import daemon_sources
from pytest_canarygate.agtmux.gate_api import either
from pytest_canarygate.agtmux.gate_api import escalate_persisting
from pytest_canarygate.agtmux.gate_api import evidence_absent
from pytest_canarygate.agtmux.gate_api import evidence_of
from pytest_canarygate.agtmux.gate_api import evidence_part
from pytest_canarygate.agtmux.gate_api import failure_message
from pytest_canarygate.agtmux.gate_api import format_duration
from pytest_canarygate.agtmux.gate_api import from_history
from pytest_canarygate.agtmux.gate_api import full_resync_counters_on_canary
from pytest_canarygate.agtmux.gate_api import full_resyncs_on_canary
from pytest_canarygate.agtmux.gate_api import gate
from pytest_canarygate.agtmux.gate_api import history_part
from pytest_canarygate.agtmux.gate_api import hold_down_not_recovered
from pytest_canarygate.agtmux.gate_api import hold_down_proxy
from pytest_canarygate.agtmux.gate_api import hold_down_state
from pytest_canarygate.agtmux.gate_api import max_lag
from pytest_canarygate.agtmux.gate_api import monitoring_window
from pytest_canarygate.agtmux.gate_api import one_of
from pytest_canarygate.agtmux.gate_api import panes
from pytest_canarygate.agtmux.gate_api import panes_as_served
from pytest_canarygate.agtmux.gate_api import ready
from pytest_canarygate.agtmux.gate_api import selector_matches_phase
from pytest_canarygate.agtmux.gate_api import sessions_back_on
from pytest_canarygate.agtmux.gate_api import signature_problems
from pytest_canarygate.agtmux.gate_api import snapshot_recorded
from pytest_canarygate.agtmux.gate_api import sustained_breaches
from pytest_canarygate.agtmux.gate_api import window_coverage
from pytest_canarygate.agtmux.gate_api import window_end


@gate("rollback.selector.back-to-v4")
def test_runtime_selector_switched_back_to_v4(canarygate_observed: ObservedView) -> None:
    selector = one_of(canarygate_observed, "runtime_selector", RuntimeSelector)
    conclude(canarygate_observed, "selector", selector_matches_phase(selector, "rollback"))


def _v4_serving_what_v5_served(
    observed: ObservedView, what: str, judge: Callable[[list[Record], list[Record]], Judgement]
) -> Judgement:
    """``judge(v5 panes, v4 panes)`` once v4 is ready: before its first tick its answers are
    empty whatever it serves (daemon facts 13), so comparing them would prove nothing."""
    readiness = attempt(lambda: ready(observed, "v4"))
    if not readiness.passed:
        return Judgement(
            verdict=readiness.verdict,
            message=f"{what} not judged: {readiness.message} (its answers before its first tick "
            "are empty whatever it serves)",
        )
    return judge(panes(observed.daemon("v5")), panes(observed.daemon("v4")))


@gate("rollback.sessions.served-by-v4")
def test_affected_sessions_reconnected_to_v4(canarygate_observed: ObservedView) -> None:
    judged = _v4_serving_what_v5_served(
        canarygate_observed, "the sessions on v4", lambda v5, v4: sessions_back_on(v5, v4)
    )
    conclude(canarygate_observed, "sessions", judged)


@gate("rollback.v4.list-panes")
def test_v4_list_panes_returns_expected_data(canarygate_observed: ObservedView) -> None:
    def judge(v5: list[Record], v4: list[Record]) -> Judgement:
        problems = [f"v4 pane {p['pane_id']}: {x}" for p in v4 for x in signature_problems(p)]
        canarygate_observed.note("v4 list_panes problems", problems)
        well_formed = Judgement(
            verdict=Verdict.FAIL if problems else Verdict.PASS,
            message=failure_message("v4 list_panes returned malformed panes", problems)
            if problems
            else f"all {len(v4)} v4 panes well-formed",
        )
        return combine(
            "v4 list_panes does not return the expected data",
            {"as v5 served": panes_as_served(v5, v4), "well-formed": well_formed},
        )

    judged = _v4_serving_what_v5_served(canarygate_observed, "v4 list_panes", judge)
    conclude(canarygate_observed, "list_panes", judged)


@gate("rollback.v4.sources-active")
def test_v4_source_health_active(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    conclude(
        canarygate_observed, "sources", daemon_sources(canarygate_observed, agtmux_settings, "v4")
    )


@gate("signal.hold-down-not-recovered")
def test_signal_supervisor_hold_down_recovers(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    """The history (supervisor events, or the daemon log's supervisor lines: the real daemon's
    only record of its supervisor) AND the state now, from the most direct source served: the
    supervisor status, else the same log lines reaching now, else the proxy the daemon facts
    name (codex_appserver healthy: the supervised client is alive)."""
    window, lag = monitoring_window(agtmux_settings), max_lag(agtmux_settings)

    def from_status() -> Judgement:
        status = one_of(canarygate_observed, "supervisor_status", SupervisorStatus)
        return hold_down_state(status, canarygate_observed.now, max_lag=lag)

    def from_log() -> Judgement:
        log = evidence_of(canarygate_observed, "log_events", LogEvent)
        return hold_down_not_recovered(
            log.records, window, canarygate_observed.now, log, max_lag=lag
        )

    try:
        proxy = hold_down_proxy(canarygate_observed.daemon("v5").result("list_source_health"))
        answered = True
    except Unobservable as exc:  # v5 not answering (stopped after a rollback): no proxy
        proxy, answered = Judgement(verdict=Verdict.UNOBSERVABLE, message=str(exc)), False
    if not evidence_absent(canarygate_observed, "supervisor_status"):
        state = evidence_part(canarygate_observed, "supervisor_status", from_status)
    elif not evidence_absent(canarygate_observed, "log_events"):
        state = evidence_part(canarygate_observed, "log_events", from_log)
    else:
        state = proxy
    parts = {
        "history": from_history(
            canarygate_observed,
            "HoldDown recovery not shown",
            lambda events, coverage: hold_down_not_recovered(
                events, window, canarygate_observed.now, coverage, max_lag=lag
            ),
        ),
        "state now": state,
    }
    if answered and proxy.verdict is Verdict.UNOBSERVABLE:  # an answer that contradicts itself
        parts["codex_appserver health"] = proxy
    judged = combine("rollback signal: supervisor HoldDown without recovery", parts)
    conclude(canarygate_observed, "hold-down signal", judged)


@gate("signal.escalate-persisting")
def test_signal_escalate_does_not_persist(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    entries = evidence_of(canarygate_observed, "alert_entries", AlertEntry)
    window = monitoring_window(agtmux_settings)
    longer_than = timedelta(minutes=agtmux_settings.thresholds.escalate_persist_min)
    judged = combine(
        "rollback signal: Escalate persisting",
        {
            "ledger": escalate_persisting(
                entries.records,
                longer_than,
                now=canarygate_observed.now,
                window=window,
                until=window_end(canarygate_observed.now, entries),
            ),
            "coverage": window_coverage(
                window,
                canarygate_observed.now,
                entries.covers_from,
                entries.covers_to,
                max_lag=max_lag(agtmux_settings),
            ),
        },
    )
    conclude(canarygate_observed, "escalate signal", judged)


@gate("signal.latency-breaches")
def test_signal_latency_breach_streak(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    """Windows are the SLO's 10-minute evaluation windows, not poll ticks: the daemon log shows
    how long each unbroken breach lasted; the current evaluation only whether one is under
    way."""
    window, lag = monitoring_window(agtmux_settings), max_lag(agtmux_settings)
    more_than = agtmux_settings.thresholds.breach_windows

    def from_log() -> Judgement:
        log = evidence_of(canarygate_observed, "log_events", LogEvent)
        return sustained_breaches(
            log.records, window, canarygate_observed.now, log, more_than=more_than, max_lag=lag
        )

    judged = combine(
        "rollback signal: latency p95 breach",
        {
            "latency_status now": attempt(
                lambda: breach_in_progress(
                    canarygate_observed.daemon("v5").result("latency_status"), more_than
                )
            ),
            "daemon log": history_part(
                canarygate_observed,
                "log_events",
                from_log,
                what=f"latency breaches over the last {format_duration(window)}",
            ),
        },
    )
    conclude(canarygate_observed, "latency signal", judged)


@gate("signal.cursor-full-resync")
def test_signal_cursor_full_resync(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    """A FullResync counts inside the look-back and while v5 served canary sessions (the
    runtime selector's routing since its last change); the counters cannot say when theirs
    happened, the daemon log can. Without the routing nothing is placed on or off the canary."""
    window, lag = monitoring_window(agtmux_settings), max_lag(agtmux_settings)

    def routing() -> RuntimeSelector:
        return one_of(canarygate_observed, "runtime_selector", RuntimeSelector)

    def from_log() -> Judgement:
        log = evidence_of(canarygate_observed, "log_events", LogEvent)
        return full_resyncs_on_canary(
            log.records, routing(), window, canarygate_observed.now, log, max_lag=lag
        )

    def routing_read() -> Judgement:
        routing()  # raises if it cannot be read, naming the selector's endpoint
        return Judgement(verdict=Verdict.PASS, message="runtime selector read")

    parts = {
        "cursor stats": evidence_part(
            canarygate_observed,
            "cursor_stats",
            lambda: full_resync_counters_on_canary(
                one_of(canarygate_observed, "cursor_stats", CursorStats),
                routing(),
                window=window,
                now=canarygate_observed.now,
                max_lag=lag,
            ),
        ),
        "daemon log": evidence_part(canarygate_observed, "log_events", from_log),
    }
    selector_read = evidence_part(canarygate_observed, "runtime_selector", routing_read)
    if selector_read.verdict is Verdict.UNOBSERVABLE:
        parts["runtime selector"] = selector_read
    judged = either("rollback signal: cursor FullResync on the canary", parts)
    conclude(canarygate_observed, "full resync signal", judged)


@gate("rollback.post.v5-snapshot")
def test_v5_snapshot_taken_before_stopping(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    judged = snapshot_recorded(canarygate_observed, agtmux_settings, since_selector_change=True)
    conclude(canarygate_observed, "snapshot", judged)


@gate("rollback.procedure.v5-stop-reported")
def test_v5_stop_is_reported(canarygate_observed: ObservedView) -> None:
    """RB-4 is optional ("can leave running in shadow for debugging"): either state is in
    line with the runbook, so this gate reports which one it saw and never blocks."""
    try:
        info = daemon_info(canarygate_observed.daemon("v5"))
    except Unobservable as exc:
        canarygate_observed.note("v5", f"not answering (stopped, or unreachable): {exc}")
        return
    canarygate_observed.note("v5", f"still running in shadow (pid {info['pid']})")


@gate("rollback.post.incident-evidence")
def test_incident_evidence_in_the_rollback_bundle(
    canarygate_observed: ObservedView, canarygate_custody: CustodyView
) -> None:
    """PR-2: the rollback run's bundle is the incident evidence: the timeline of the
    migration's signed runs from the archive, the alert ledger dump and the supervisor state
    at this moment, all sealed with it."""
    ledger = evidence_of(canarygate_observed, "alert_entries", AlertEntry)
    status = one_of(canarygate_observed, "supervisor_status", SupervisorStatus)
    timeline = canarygate_custody.custody.timeline
    canarygate_observed.note("timeline", timeline)
    canarygate_observed.note("alert ledger", [str(entry) for entry in ledger.records])
    canarygate_observed.note("supervisor state", str(status))
    if not timeline:
        raise Inconclusive(
            "no signed, live run of this migration in the archive: the incident timeline is "
            "empty (are [chain] trusted_keys set and the bundles kept under reports/?)"
        )
