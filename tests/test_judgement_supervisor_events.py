"""The supervisor contract judged from what the supervisor did: its stage events (startup
order), restart delays (jitter), and hold-downs (failure budget, duration)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pytest_canarygate.agtmux.judgement import RUNBOOK_RESTART_POLICY
from pytest_canarygate.agtmux.judgement import failure_budget_from_events
from pytest_canarygate.agtmux.judgement import hold_down_from_events
from pytest_canarygate.agtmux.judgement import jitter_from_events
from pytest_canarygate.agtmux.judgement import scheduled_backoff_ms
from pytest_canarygate.agtmux.judgement import startup_sequence
from pytest_canarygate.agtmux.judgement import supervisor_ready
from pytest_canarygate.agtmux.records import DependencyGate
from pytest_canarygate.agtmux.records import RecordError
from pytest_canarygate.agtmux.records import SupervisorEvent
from pytest_canarygate.agtmux.records import SupervisorState
from pytest_canarygate.agtmux.records import SupervisorStatus
from pytest_canarygate.agtmux.records import kept_since
from pytest_canarygate.agtmux.records import parse_supervisor_event
from pytest_canarygate.verdicts import Verdict

T0 = 1_795_564_800_000  # 2026-11-25T00:00Z
MIN = 60_000
ORDER = ("Sources", "Gateway", "Daemon", "Ui")


def stage(at_ms: int, kind: str, name: str) -> SupervisorEvent:
    return SupervisorEvent(at_ms, kind, stage=name)


def startup(at_ms: int, order: tuple[str, ...] = ORDER) -> list[SupervisorEvent]:
    """Each stage started 10 ms after the previous was ready."""
    events = []
    for i, name in enumerate(order):
        events += [stage(at_ms + 50 * i, "stage_started", name)]
        events += [stage(at_ms + 50 * i + 40, "stage_ready", name)]
    return events


def event(at_ms: int, kind: str, **extra: Any) -> SupervisorEvent:
    return SupervisorEvent(at_ms, kind, "codex_app_server", **extra)


def restart(at_ms: int, attempt: int, after_ms: int) -> SupervisorEvent:
    return event(at_ms, "restart", attempt=attempt, after_ms=after_ms)


def burst(at_ms: int, failures: int, lasts_ms: int = 300_000) -> list[SupervisorEvent]:
    """``failures`` back-to-back failures (restarts between), the last one held down."""
    events = []
    for i in range(failures - 1):
        events += [event(at_ms + i * 1000, "failure"), restart(at_ms + i * 1000, i, 1000 * 2**i)]
    last = at_ms + (failures - 1) * 1000
    return [*events, event(last, "failure"), event(last, "hold_down", until_ms=last + lasts_ms)]


def status(**changes: Any) -> SupervisorStatus:
    healthy = SupervisorStatus(
        SupervisorState("Ready"),
        RUNBOOK_RESTART_POLICY,
        ORDER,
        tuple(DependencyGate(s, True, ()) for s in ORDER),
        0,
        T0 - 30 * 1440 * MIN,
        T0,
        jitter_applied=True,
    )
    return replace(healthy, **changes)


# --- startup order ---------------------------------------------------------------------------


def test_startup_in_order_each_after_the_previous_was_ready_passes() -> None:
    judged = startup_sequence(startup(T0), covers_from_ms=T0 - MIN)
    assert judged.verdict is Verdict.PASS, judged.message
    assert "in order Sources -> Gateway -> Daemon -> Ui" in judged.message
    assert "since 2026-11-24T23:59Z" in judged.message


@pytest.mark.parametrize(
    ("events", "fragment"),
    [
        (startup(T0, ("Sources", "Daemon", "Gateway", "Ui")), "Daemon started at"),
        (startup(T0, ("Sources", "Gateway", "Ui", "Daemon")), "out of order (Sources -> Gateway"),
        # Gateway started 10 ms after Sources started, 30 ms before it was ready
        (
            [*startup(T0)[:2], stage(T0 + 10, "stage_started", "Gateway"), *startup(T0)[3:]],
            "Gateway started at 2026-11-25T00:00:00Z before Sources was ready",
        ),
        (
            [
                stage(T0, "stage_started", "Sources"),
                stage(T0 + 5, "stage_ready", "Gateway"),
                *startup(T0)[1:],
            ],
            "Gateway ready at 2026-11-25T00:00:00Z before it started",
        ),
        # a stage started twice in one startup
        ([*startup(T0), stage(T0 + 500, "stage_started", "Gateway")], "out of order"),
        # an earlier startup that broke the order is not hidden by a later good one
        (
            [*startup(T0, ("Sources", "Daemon", "Gateway", "Ui")), *startup(T0 + MIN)],
            "out of order (Sources -> Daemon)",
        ),
    ],
)
def test_startup_out_of_order_or_before_ready_fails(
    events: list[SupervisorEvent], fragment: str
) -> None:
    judged = startup_sequence(sorted(events, key=lambda e: e.at_ms))
    assert judged.verdict is Verdict.FAIL, judged.message
    assert fragment in judged.message
    assert judged.message.startswith("v5 supervisor startup events break the order")


def test_no_startup_in_the_events_is_inconclusive_not_a_pass() -> None:
    restarts_only = [event(T0, "failure"), restart(T0, 0, 1100), event(T0 + 2000, "success")]
    for events in ([], restarts_only):
        judged = startup_sequence(events, covers_from_ms=T0 - MIN)
        assert judged.verdict is Verdict.INCONCLUSIVE
        assert "no startup (Sources stage_started) in the v5 supervisor events since" in (
            judged.message
        )


def test_stage_events_before_the_first_sources_start_are_not_judged() -> None:
    # the history begins mid-startup: only the next full startup counts
    head = [stage(T0 - 100, "stage_started", "Daemon"), stage(T0 - 60, "stage_ready", "Daemon")]
    assert startup_sequence([*head, *startup(T0)]).passed
    assert startup_sequence(head).verdict is Verdict.INCONCLUSIVE


def test_an_unfinished_latest_startup_is_inconclusive() -> None:
    judged = startup_sequence([*startup(T0), *startup(T0 + MIN)[:5]])
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert "has not finished: Daemon, Ui not ready" in judged.message


def test_supervisor_ready_takes_the_startup_events_into_account() -> None:
    bad = startup_sequence(startup(T0, ("Sources", "Daemon", "Gateway", "Ui")))
    judged = supervisor_ready(status(), startup=bad)
    assert judged.verdict is Verdict.FAIL
    assert "out of order" in judged.message
    unshown = supervisor_ready(status(), startup=startup_sequence([]))
    assert unshown.verdict is Verdict.INCONCLUSIVE
    good = supervisor_ready(status(), startup=startup_sequence(startup(T0)))
    assert good.passed
    assert "each stage started after the previous was ready" in good.message
    # a status problem still shows first
    held = status(state=SupervisorState("HoldDown", until_ms=T0 + MIN))
    assert supervisor_ready(held, startup=bad).message.startswith("supervisor state HoldDown")


# --- jitter ----------------------------------------------------------------------------------


def test_backoff_schedule_doubles_to_the_cap() -> None:
    assert [scheduled_backoff_ms(a) for a in range(7)] == [
        1000,
        2000,
        4000,
        8000,
        16000,
        30000,
        30000,
    ]
    assert scheduled_backoff_ms(10_000) == 30_000  # no overflow for a hostile attempt


def test_jittered_delays_within_20_percent_pass() -> None:
    events = [restart(T0, 0, 1180), restart(T0 + MIN, 1, 1650), restart(T0 + 2 * MIN, 6, 30000)]
    judged = jitter_from_events(status(), events, covers_from_ms=T0 - MIN)
    assert judged.verdict is Verdict.PASS, judged.message
    assert "3 restart delays since 2026-11-24T23:59Z within ±20%" in judged.message
    assert "jittered -18%..+18%" in judged.message


@pytest.mark.parametrize(
    ("events", "fragment"),
    [
        (
            [restart(T0, 0, 1201), restart(T0 + MIN, 0, 900)],
            "1 of 2 v5 supervisor restart delays retained outside ±20%",
        ),
        ([restart(T0, 3, 4000)], "after 4000 ms (schedule 8000 ms, allowed 6400..9600)"),
        ([restart(T0, 0, 0), restart(T0 + MIN, 0, 1000)], "after 0 ms"),
        (
            [restart(T0, 0, 1000), restart(T0 + MIN, 1, 2000)],
            "all 2 v5 supervisor restart delays retained are exactly on the backoff schedule",
        ),
    ],
)
def test_delays_outside_the_band_or_without_jitter_fail(
    events: list[SupervisorEvent], fragment: str
) -> None:
    judged = jitter_from_events(status(), events)
    assert judged.verdict is Verdict.FAIL
    assert fragment in judged.message


def test_one_delay_exactly_on_schedule_does_not_show_jitter() -> None:
    judged = jitter_from_events(status(), [restart(T0, 0, 1000)])
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert "the jitter is not shown" in judged.message


def test_events_do_not_override_a_wrong_declaration() -> None:
    good = [restart(T0, 0, 1100), restart(T0 + MIN, 0, 950)]
    wrong = status(policy=replace(RUNBOOK_RESTART_POLICY, jitter_pct=0.5))
    assert "jitter_pct 0.5 (contract 0.2)" in jitter_from_events(wrong, good).message
    refused = jitter_from_events(status(jitter_applied=False), good)
    assert refused.verdict is Verdict.FAIL
    assert "jitter_applied = false" in refused.message


def test_without_restart_events_the_policy_decides_and_the_message_says_so() -> None:
    judged = jitter_from_events(status(), [*startup(T0)], covers_from_ms=T0 - MIN)
    assert judged.verdict is Verdict.PASS
    assert judged.message.startswith(
        "no restart event in the supervisor events since 2026-11-24T23:59Z: judged on the "
        "reported policy: jitter ±20% declared and applied"
    )
    unexposed = jitter_from_events(status(jitter_applied=None), None)
    assert unexposed.verdict is Verdict.INCONCLUSIVE
    assert unexposed.message.startswith("no supervisor event history: judged on the reported")


# --- failure budget --------------------------------------------------------------------------


def test_hold_down_at_the_fifth_failure_passes() -> None:
    events = [*burst(T0, 5), event(T0 + 400_000, "failure"), restart(T0 + 400_000, 0, 1100)]
    judged = failure_budget_from_events(status(), events, covers_from_ms=T0 - 20 * MIN)
    assert judged.verdict is Verdict.PASS, judged.message
    assert "1 hold-down in the supervisor events since" in judged.message
    assert "each entered at the 5th failure within 10m" in judged.message


@pytest.mark.parametrize(("failures", "ordinal"), [(3, "3rd"), (1, "1st"), (6, "6th")])
def test_hold_down_at_another_failure_fails(failures: int, ordinal: str) -> None:
    judged = failure_budget_from_events(status(), burst(T0, failures), covers_from_ms=T0 - 20 * MIN)
    assert judged.verdict is Verdict.FAIL
    assert f"entered at the {ordinal} failure within 10m (contract: the 5th)" in judged.message


def test_a_restart_after_the_fifth_failure_fails() -> None:
    events = [e for e in burst(T0, 6) if e.kind != "hold_down"]
    judged = failure_budget_from_events(status(), events, covers_from_ms=T0 - 20 * MIN)
    assert judged.verdict is Verdict.FAIL
    assert "the 5th failure of codex_app_server within 10m" in judged.message
    assert "was followed by a restart, not a hold-down" in judged.message


def test_failures_reset_by_success_or_aged_out_are_not_counted() -> None:
    # two failures, a success, then five: held down at the 5th since the success
    reset = [event(T0, "failure"), event(T0 + 1, "failure"), event(T0 + 2, "success")]
    assert failure_budget_from_events(
        status(), [*reset, *burst(T0 + 10, 5)], covers_from_ms=0
    ).passed
    # two failures 11 minutes earlier have dropped out of the 10-minute window
    old = [event(T0 - 11 * MIN, "failure"), event(T0 - 11 * MIN + 1, "failure")]
    assert failure_budget_from_events(status(), [*old, *burst(T0, 5)], covers_from_ms=0).passed
    # ... but within the window they count: the hold-down came at the 7th
    near = [event(T0 - 5 * MIN, "failure"), event(T0 - 5 * MIN + 1, "failure")]
    judged = failure_budget_from_events(status(), [*near, *burst(T0, 5)], covers_from_ms=0)
    assert "7th" in judged.message


def test_failures_while_held_down_and_the_next_burst_after_it() -> None:
    during = [event(T0 + 10_000, "failure")]  # recorded nothing while held down
    after = burst(T0 + 10 * MIN, 5)  # history cleared once the hold-down ended
    events = [*burst(T0, 5), *during, *after]
    judged = failure_budget_from_events(status(), events, covers_from_ms=0)
    assert judged.passed, judged.message
    assert judged.message.startswith("2 hold-downs")


def test_a_hold_down_whose_failures_precede_the_history_is_not_judged() -> None:
    # the history starts 2 s before the hold-down: its earlier failures may be missing
    events = burst(T0, 5)[-3:]
    judged = failure_budget_from_events(status(), events, covers_from_ms=T0 + 3000)
    assert judged.passed
    assert "judged on the reported policy" in judged.message


def test_failure_budget_without_hold_downs_rests_on_the_policy() -> None:
    judged = failure_budget_from_events(status(), [event(T0, "failure")], covers_from_ms=T0)
    assert judged.passed
    assert "(at most 1 failure within 10m): judged on the reported policy" in judged.message
    wrong = status(policy=replace(RUNBOOK_RESTART_POLICY, failure_budget=3))
    assert failure_budget_from_events(wrong, burst(T0, 5), covers_from_ms=0).verdict is (
        Verdict.FAIL
    )


# --- hold-down duration ----------------------------------------------------------------------


def test_hold_down_duration_from_events() -> None:
    assert hold_down_from_events(status(), burst(T0, 5), covers_from_ms=0).passed
    short = hold_down_from_events(status(), burst(T0, 5, lasts_ms=60_000), covers_from_ms=0)
    assert short.verdict is Verdict.FAIL
    assert "lasted 60000 ms (until_ms - at_ms), contract 300000 ms" in short.message
    longer = hold_down_from_events(status(), burst(T0, 5, lasts_ms=300_001))
    assert longer.verdict is Verdict.FAIL
    none = hold_down_from_events(status(), [], covers_from_ms=T0)
    assert none.passed
    assert "no hold-down in the supervisor events since" in none.message
    wrong = status(policy=replace(RUNBOOK_RESTART_POLICY, holddown_ms=60_000))
    assert hold_down_from_events(wrong, burst(T0, 5)).verdict is Verdict.FAIL


# --- the contract's records ------------------------------------------------------------------


def test_stage_events_parse_strictly() -> None:
    parsed = parse_supervisor_event({"at_ms": T0, "kind": "stage_ready", "stage": "Gateway"})
    assert (parsed.kind, parsed.stage, parsed.process) == ("stage_ready", "Gateway", None)
    with pytest.raises(RecordError, match="stage: missing"):
        parse_supervisor_event({"at_ms": T0, "kind": "stage_started"})
    with pytest.raises(RecordError, match="stage: expected one of Sources, Gateway"):
        parse_supervisor_event({"at_ms": T0, "kind": "stage_started", "stage": "sources"})
    with pytest.raises(RecordError, match="stage: expected a string"):
        parse_supervisor_event({"at_ms": T0, "kind": "stage_started", "stage": 1})
    # old shapes stay well-formed; a stage on another kind is ignored
    old = parse_supervisor_event({"at_ms": T0, "kind": "success", "stage": "bogus"})
    assert old.stage is None


def test_the_latest_startup_is_kept_whatever_since_says() -> None:
    events = (*startup(T0 - 2 * MIN), *startup(T0), event(T0 + MIN, "failure"))
    kept = kept_since(events, T0 + MIN)
    assert kept == (*startup(T0), event(T0 + MIN, "failure"))
    assert kept_since(events[-1:], T0 + 2 * MIN) == ()
