"""The gradual-phase judgements and the final checklist's Escalate window: sessions as the
selector routes them, restart counts against a baseline before the phase, and Escalates left
unresolved at any time in the window."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from types import MappingProxyType
from typing import Any

import pytest

from pytest_canarygate.agtmux import judgement as j
from pytest_canarygate.agtmux.judgement import Judgement
from pytest_canarygate.agtmux.providers import AlertEntry
from pytest_canarygate.agtmux.providers import Evidence
from pytest_canarygate.agtmux.providers import LogEvent
from pytest_canarygate.agtmux.providers import RuntimeSelector
from pytest_canarygate.agtmux.providers import Severity
from pytest_canarygate.agtmux.providers import Source
from pytest_canarygate.agtmux.providers import SupervisorEvent
from pytest_canarygate.agtmux.records import RecordError
from pytest_canarygate.agtmux.records import SessionRoute
from pytest_canarygate.agtmux.records import datetime_to_ms
from pytest_canarygate.agtmux.records import parse_runtime_selector
from pytest_canarygate.verdicts import Verdict

NOW = datetime(2026, 11, 26, 0, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)
WEEK = 7 * DAY


def covered(start: datetime, end: datetime = NOW) -> Evidence[object]:
    return Evidence((), Source("file:///x", "/x"), None, start, end)


def escalate(
    created: datetime, resolved: datetime | None = None, severity: Severity = Severity.ESCALATE
) -> AlertEntry:
    return AlertEntry(
        "alert-4",
        severity,
        "supervisor",
        "codex app-server restart failures persist",
        datetime_to_ms(created),
        None if resolved is None else datetime_to_ms(resolved),
        "ManualAck",
    )


# --- CG-6: an Escalate left unresolved at any time within the window ------------------------


@pytest.mark.parametrize(
    ("created", "resolved", "verdict"),
    [
        (5 * DAY, 2 * DAY, Verdict.FAIL),  # resolved since, but open inside the window
        (9 * DAY, 6 * DAY, Verdict.FAIL),  # raised before the window, still open inside it
        (9 * DAY, 7 * DAY, Verdict.FAIL),  # resolved exactly at the window start: open then
        (9 * DAY, 8 * DAY, Verdict.PASS),  # resolved before the window began
        (30 * DAY, None, Verdict.FAIL),  # never resolved
        (timedelta(minutes=3), timedelta(minutes=1), Verdict.FAIL),  # a short one counts too
    ],
)
def test_escalate_left_unresolved_in_window(
    created: timedelta, resolved: timedelta | None, verdict: Verdict
) -> None:
    entry = escalate(NOW - created, None if resolved is None else NOW - resolved)
    judged = j.unresolved_escalates_in_window([entry], WEEK, NOW, covered(NOW - 30 * DAY))
    assert judged.verdict is verdict
    if verdict is Verdict.FAIL:
        assert "1 Escalate alerts left unresolved in the last 7d: alert-4 Escalate" in (
            judged.message
        )


def test_escalate_window_is_the_configured_one() -> None:
    entry = escalate(NOW - 5 * DAY, NOW - 2 * DAY)
    full = covered(NOW - 30 * DAY)
    assert j.unresolved_escalates_in_window([entry], DAY, NOW, full).verdict is Verdict.PASS
    judged = j.unresolved_escalates_in_window([entry], 3 * DAY, NOW, full)
    assert judged.verdict is Verdict.FAIL
    assert "in the last 3d" in judged.message


def test_escalate_window_other_severities_do_not_count() -> None:
    degraded = escalate(NOW - DAY, severity=Severity.DEGRADED)
    judged = j.unresolved_escalates_in_window([degraded], WEEK, NOW, covered(NOW - 30 * DAY))
    assert judged.verdict is Verdict.PASS


def test_escalate_window_needs_a_ledger_covering_it() -> None:
    quiet = j.unresolved_escalates_in_window([], WEEK, NOW, covered(NOW - 6 * DAY))
    assert quiet.verdict is Verdict.INCONCLUSIVE
    assert "of the required 7d window" in quiet.message
    stale = j.unresolved_escalates_in_window([], WEEK, NOW, covered(NOW - 30 * DAY, NOW - DAY))
    assert stale.verdict is Verdict.INCONCLUSIVE
    assert j.unresolved_escalates_in_window([], WEEK, NOW, None).verdict is Verdict.INCONCLUSIVE
    # a violation found is a FAIL whatever the coverage
    found = j.unresolved_escalates_in_window(
        [escalate(NOW - DAY, NOW - DAY / 2)], WEEK, NOW, covered(NOW - 2 * DAY)
    )
    assert found.verdict is Verdict.FAIL


def test_escalate_recorded_after_now_inside_the_ledger_counts() -> None:
    later = escalate(NOW + timedelta(seconds=20))
    ledger = covered(NOW - 30 * DAY, NOW + timedelta(seconds=30))
    assert j.unresolved_escalates_in_window([later], WEEK, NOW, ledger).verdict is Verdict.FAIL
    beyond = escalate(NOW + timedelta(minutes=5))
    assert j.unresolved_escalates_in_window([beyond], WEEK, NOW, ledger).verdict is Verdict.PASS


# --- P3-X2: restart rate in the phase against a baseline of equal length before it ----------

SWITCH = NOW - 10 * DAY


def restarts(*days_ago: float, kind: str = "restart") -> list[SupervisorEvent]:
    return [
        SupervisorEvent(datetime_to_ms(NOW - d * DAY), kind, "codex_app_server", 0, 1000)
        if kind == "restart"
        else SupervisorEvent(datetime_to_ms(NOW - d * DAY), kind, "codex_app_server")
        for d in days_ago
    ]


def cadence(every_days: float, *, latest: float = 0.001, over: float = 30) -> list[float]:
    found, at = [], latest
    while at <= over:
        found.append(at)
        at += every_days
    return found


def rate(
    events: Sequence[Any], coverage: Evidence[object] | None = None, **kwargs: Any
) -> Judgement:
    full = covered(NOW - 30 * DAY) if coverage is None else coverage
    return j.restart_rate_regression(events, NOW, full, **{"phase_start": SWITCH, **kwargs})


@pytest.mark.parametrize("every", [6, 56 / 24, 1, 3.3, 7, 9.5, 0.25])
def test_a_steady_cadence_is_no_regression(every: float) -> None:
    judged = rate(restarts(*cadence(every)))
    assert judged.verdict is Verdict.PASS, judged.message
    assert judged.message.startswith("supervisor restarts not regressed: ")


def test_steady_cadence_the_old_weekly_split_failed() -> None:
    """Every 6 days: 2 in the last 7d vs 1 in the 7d before; the phase and its baseline hold 2."""
    judged = rate(restarts(*cadence(6)))
    assert judged.verdict is Verdict.PASS
    assert "2 in the gradual phase (10d since 2026-11-16T00:00Z, 0.20/day)" in judged.message
    assert "vs 2 in the 10d before it (2026-11-06T00:00Z..2026-11-16T00:00Z, 0.20/day)" in (
        judged.message
    )
    assert "at most 3.5 allowed: the baseline +25% +1" in judged.message


def test_a_doubled_rate_is_a_regression() -> None:
    doubled = [*cadence(56 / 24), *cadence(56 / 24, latest=28 / 24, over=10)]
    judged = rate(restarts(*doubled))
    assert judged.verdict is Verdict.FAIL
    assert judged.message.startswith("supervisor restarts regressed: 9 in the gradual phase")
    assert judged.numbers["baseline_restarts"] == 4
    assert judged.numbers["allowed"] == 6


@pytest.mark.parametrize(
    ("phase", "baseline", "tolerance", "verdict"),
    [
        (6, 4, 25.0, Verdict.PASS),  # 4 * 1.25 + 1 = 6
        (7, 4, 25.0, Verdict.FAIL),
        (7, 4, 50.0, Verdict.PASS),
        (1, 0, 25.0, Verdict.PASS),  # one restart where none was: the cadence's cut
        (2, 0, 25.0, Verdict.FAIL),
        (0, 5, 25.0, Verdict.PASS),
        (2, 1, 0.001, Verdict.PASS),
        (3, 1, 0.001, Verdict.FAIL),
    ],
)
def test_tolerance_boundaries(
    phase: int, baseline: int, tolerance: float, verdict: Verdict
) -> None:
    in_phase = [1 + i * 8 / max(phase, 1) for i in range(phase)]
    before = [11 + i * 8 / max(baseline, 1) for i in range(baseline)]
    judged = rate(restarts(*in_phase, *before), tolerance_pct=tolerance)
    assert judged.verdict is verdict, judged.message
    assert (judged.numbers["phase_restarts"], judged.numbers["baseline_restarts"]) == (
        phase,
        baseline,
    )


def test_the_phase_start_belongs_to_the_phase_and_the_baseline_starts_inclusive() -> None:
    judged = rate(restarts(10, 20, 20.5))
    assert (judged.numbers["phase_restarts"], judged.numbers["baseline_restarts"]) == (1, 1)


def test_restarts_after_now_inside_the_history_count() -> None:
    history = covered(NOW - 30 * DAY, NOW + timedelta(seconds=30))
    later = NOW + timedelta(seconds=20)
    events = [SupervisorEvent(datetime_to_ms(later), "restart", None, 0, 1000)] * 3
    judged = j.restart_rate_regression(events, NOW, history, phase_start=SWITCH)
    assert judged.verdict is Verdict.FAIL


def test_daemon_log_reconnect_attempts_count_as_restarts() -> None:
    log = [
        LogEvent(
            NOW - d * DAY,
            "INFO",
            "agtmux::poll_loop",
            "...",
            "process_exited",
            1,
            MappingProxyType({}),
        )
        for d in (1, 2, 3)
    ]
    assert rate(log).verdict is Verdict.FAIL


def test_history_too_short_for_the_baseline_is_inconclusive() -> None:
    judged = rate(restarts(*cadence(56 / 24, over=15)), covered(NOW - 15 * DAY))
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert judged.message.startswith("restart rate not comparable (5 in the gradual phase")
    assert "(15d) of the required 20d window; it starts after the window start" in judged.message


def test_history_read_only_from_where_the_reading_began() -> None:
    """A source covering 30 days read back only 14 days cannot show a 10-day baseline."""
    judged = rate(restarts(*cadence(56 / 24)), read_from=NOW - 14 * DAY)
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert rate(restarts(*cadence(56 / 24)), read_from=NOW - 21 * DAY).passed


def test_a_history_that_stops_short_of_now() -> None:
    stale = covered(NOW - 30 * DAY, NOW - DAY)
    steady = rate(restarts(*cadence(56 / 24)), stale)
    assert steady.verdict is Verdict.INCONCLUSIVE
    assert "it ends 24h before now" in steady.message
    # an increase already shown over a covered baseline only grows with what is missing
    assert rate(restarts(*cadence(0.5, latest=1.5, over=10)), stale).verdict is Verdict.FAIL
    # an increase over a baseline the history does not cover proves nothing
    short = covered(NOW - 12 * DAY)
    assert rate(restarts(*cadence(0.5, over=10)), short).verdict is Verdict.INCONCLUSIVE
    unsaid = j.restart_rate_regression(restarts(1), NOW, None, phase_start=SWITCH)
    assert unsaid.verdict is Verdict.INCONCLUSIVE
    assert "does not say from when its history is complete" in unsaid.message


def test_phase_start_unknown_or_not_yet() -> None:
    unknown = rate(restarts(1), phase_start=None)
    assert unknown.verdict is Verdict.INCONCLUSIVE
    assert "no changed_at_ms" in unknown.message
    future = rate(restarts(1), phase_start=NOW + DAY)
    assert future.verdict is Verdict.INCONCLUSIVE
    assert "is not before now" in future.message


def test_hold_down_and_success_events_are_not_restarts() -> None:
    events = [*restarts(1, 2, 3, kind="success"), *restarts(1, 2, 3, kind="failure")]
    judged = rate(events)
    assert judged.passed
    assert judged.numbers["phase_restarts"] == 0


# --- P3-S2 / P3-S3 / P3-X1: sessions as the selector routes them ----------------------------

SWITCH_MS = datetime_to_ms(SWITCH)


def route(
    name: str, daemon: str, started: timedelta, routed: timedelta | None = None
) -> SessionRoute:
    started_ms = datetime_to_ms(NOW - started)
    return SessionRoute(
        name, daemon, started_ms, started_ms if routed is None else datetime_to_ms(NOW - routed)
    )


def gradual(*routes: SessionRoute, changed_ms: int | None = SWITCH_MS) -> RuntimeSelector:
    return RuntimeSelector("v5", True, (), changed_ms, routes)


HEALTHY_ROUTES = (
    route("session-alpha", "v5", 30 * DAY, 12 * DAY),  # a canary session
    route("session-beta", "v5", 2 * DAY),  # new since the switch
    route("session-gamma", "v4", 30 * DAY),  # held by v4 at the switch
)


def test_routes_of_a_healthy_gradual_phase_pass() -> None:
    selector = gradual(*HEALTHY_ROUTES)
    counts = j.routed_counts(selector)
    assert counts.passed
    assert counts.message == (
        "sessions routed: v4 1 (session-gamma), v5 2 (session-alpha, session-beta); 1 started "
        "since the switch to v5 at 2026-11-16T00:00Z"
    )
    assert (counts.numbers["v4"], counts.numbers["v5"], counts.numbers["v5_share"]) == (
        1,
        2,
        0.667,
    )
    assert j.new_sessions_on_v5(selector).message == (
        "all 1 sessions started since the switch to v5 at 2026-11-16T00:00Z are routed to v5"
    )
    kept = j.v4_sessions_continue(selector, {"session-alpha", "session-beta", "session-gamma"})
    assert kept.passed
    assert "v4 keeps 1 sessions (session-gamma (started 2026-10-27T00:00Z)) routed to it" in (
        kept.message
    )


@pytest.mark.parametrize("started", [10 * DAY, 2 * DAY, timedelta(0)])  # at the switch counts
def test_a_session_started_since_the_switch_routed_to_v4_fails(started: timedelta) -> None:
    selector = gradual(*HEALTHY_ROUTES, route("session-delta", "v4", started))
    counts = j.routed_counts(selector)
    assert counts.verdict is Verdict.FAIL
    assert counts.message.startswith(
        "1 sessions started after the switch to v5 at 2026-11-16T00:00Z are routed to v4: "
        "session-delta (started "
    )
    exit_ = j.new_sessions_on_v5(selector)
    assert exit_.verdict is Verdict.FAIL
    assert exit_.message.startswith("1 of the 2 sessions started since the switch to v5")
    # v4 keeping its sessions is another matter
    shown = {"session-alpha", "session-beta", "session-gamma", "session-delta"}
    assert j.v4_sessions_continue(selector, shown).passed


def test_a_session_started_just_before_the_switch_may_stay_on_v4() -> None:
    selector = gradual(route("session-delta", "v4", 10 * DAY + timedelta(seconds=1)))
    assert j.routed_counts(selector).passed
    assert j.new_sessions_on_v5(selector).passed


def test_a_pre_switch_session_moved_to_v5_without_a_restart_fails() -> None:
    moved = route("session-gamma", "v5", 30 * DAY, 3 * DAY)
    selector = gradual(HEALTHY_ROUTES[0], HEALTHY_ROUTES[1], moved)
    judged = j.v4_sessions_continue(selector, {"session-gamma"})
    assert judged.verdict is Verdict.FAIL
    assert judged.message.startswith(
        "1 sessions started before the switch to v5 at 2026-11-16T00:00Z were moved to v5 "
        "without a restart: session-gamma (started 2026-10-27T00:00Z, routed 2026-11-23T00:00Z)"
    )
    assert judged.numbers["moved_without_restart"] == ["session-gamma"]
    # the counts only report it; new sessions are still all on v5
    assert j.routed_counts(selector).passed
    assert j.new_sessions_on_v5(selector).passed


def test_a_restarted_session_may_move_to_v5() -> None:
    restarted = route("session-gamma", "v5", 3 * DAY)  # its start is the restart
    assert j.v4_sessions_continue(gradual(restarted), set()).passed


def test_a_canary_session_moved_before_the_switch_is_no_violation() -> None:
    canary = route("session-alpha", "v5", 30 * DAY, 12 * DAY)
    assert j.v4_sessions_continue(gradual(canary), set()).passed


def test_a_session_routed_to_v4_that_v4_does_not_show_fails() -> None:
    selector = gradual(*HEALTHY_ROUTES)
    judged = j.v4_sessions_continue(selector, {"session-alpha", "session-beta"})
    assert judged.verdict is Verdict.FAIL
    assert "1 sessions routed to v4 are not among the tmux sessions v4 shows: session-gamma" in (
        judged.message
    )
    # an unready v4's answer proves nothing: not judged
    assert j.v4_sessions_continue(selector, None).passed


def test_routes_or_switch_unknown_are_inconclusive() -> None:
    no_routes = RuntimeSelector("v5", True, (), SWITCH_MS)
    for judge in (
        j.routed_counts,
        j.new_sessions_on_v5,
        lambda s: j.v4_sessions_continue(s, set()),
    ):
        unknown = judge(no_routes)
        assert unknown.verdict is Verdict.INCONCLUSIVE
        assert "does not say how it routes each session" in unknown.message
        no_switch = judge(gradual(*HEALTHY_ROUTES, changed_ms=None))
        assert no_switch.verdict is Verdict.INCONCLUSIVE
        assert "gradual start unknown" in no_switch.message


def test_no_session_routed_at_all_is_reported_not_failed() -> None:
    selector = gradual()
    counts = j.routed_counts(selector)
    assert counts.passed
    assert counts.numbers["v5_share"] is None
    assert j.v4_sessions_continue(selector, set()).message.startswith("v4 keeps no session")


# --- the selector's session routes as evidence (operations contract) -----------------------


def test_session_routes_parse_strictly() -> None:
    base = {"default_daemon": "v5", "v5_enabled": True}
    entry = {"session_name": "s", "daemon": "v4", "started_at_ms": 5}
    parsed = parse_runtime_selector({**base, "sessions": [entry]})
    assert parsed.sessions == (SessionRoute("s", "v4", 5, 5),)
    assert parse_runtime_selector(base).sessions is None  # the old shape: not said
    assert parse_runtime_selector({**base, "sessions": None}).sessions is None
    assert parse_runtime_selector({**base, "sessions": []}).sessions == ()
    for bad, where in [
        ({**entry, "daemon": "v6"}, "runtime.sessions[0].daemon: expected one of v4, v5"),
        ({**entry, "routed_at_ms": 4}, "runtime.sessions[0].routed_at_ms: expected an integer >="),
        ({**entry, "started_at_ms": "5"}, "runtime.sessions[0].started_at_ms"),
        ({k: v for k, v in entry.items() if k != "session_name"}, "session_name: missing"),
    ]:
        with pytest.raises(RecordError, match=re.escape(where)):
            parse_runtime_selector({**base, "sessions": [bad]}, "runtime")
    with pytest.raises(RecordError, match="session s is listed twice"):
        parse_runtime_selector({**base, "sessions": [entry, entry]}, "runtime")
    with pytest.raises(RecordError, match=re.escape("runtime.sessions: expected an array")):
        parse_runtime_selector({**base, "sessions": "s"}, "runtime")
