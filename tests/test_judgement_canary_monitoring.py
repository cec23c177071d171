"""The canary's monitoring judgements over a window, and the rollback signals, on real daemon log
lines: sources that went stale and came back, p95 breach lines, latency alerts only, breach runs
measured in SLO evaluation windows, FullResyncs inside the look-back on a canary, hold-downs
shown by the log alone, and every canary session in use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest

from pytest_canarygate.agtmux.judgement import LATENCY_ALERT_SOURCES
from pytest_canarygate.agtmux.judgement import SLO_EVALUATION_WINDOW
from pytest_canarygate.agtmux.judgement import SLO_LOG_KINDS
from pytest_canarygate.agtmux.judgement import alerts_from_sources
from pytest_canarygate.agtmux.judgement import breach_in_progress
from pytest_canarygate.agtmux.judgement import breach_runs
from pytest_canarygate.agtmux.judgement import canary_sessions_in_use
from pytest_canarygate.agtmux.judgement import full_resync_counters_on_canary
from pytest_canarygate.agtmux.judgement import full_resyncs_on_canary
from pytest_canarygate.agtmux.judgement import hold_down_not_recovered
from pytest_canarygate.agtmux.judgement import hold_down_proxy
from pytest_canarygate.agtmux.judgement import latency_log_events
from pytest_canarygate.agtmux.judgement import on_canary
from pytest_canarygate.agtmux.judgement import sources_stayed_active
from pytest_canarygate.agtmux.judgement import sustained_breaches
from pytest_canarygate.agtmux.protocol import Change
from pytest_canarygate.agtmux.providers.daemon_log import parse_log
from pytest_canarygate.agtmux.records import AlertEntry
from pytest_canarygate.agtmux.records import CursorStats
from pytest_canarygate.agtmux.records import LogEvent
from pytest_canarygate.agtmux.records import RuntimeSelector
from pytest_canarygate.agtmux.records import Severity
from pytest_canarygate.agtmux.records import datetime_to_ms
from pytest_canarygate.verdicts import Verdict

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
CANARY = timedelta(hours=48)


@dataclass(frozen=True)
class Span:
    covers_from: datetime | None
    covers_to: datetime | None


WHOLE = Span(NOW - 30 * 24 * HOUR, NOW - timedelta(minutes=1))


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def log(*lines: tuple[datetime, str, str]) -> list[LogEvent]:
    """Events parsed from real daemon log lines (level, message) at the given times."""
    text = [
        f"{stamp(at)} {level:>5} agtmux::poll_loop: {message}\n" for at, level, message in lines
    ]
    events, _, _ = parse_log(text)
    return events


# --- P2-S2a: sources stayed active over the window ---------------------------------------


def test_a_source_stale_hours_ago_and_active_now_fails() -> None:
    events = log(
        (NOW - 5 * HOUR, "WARN", "source stale: ext-claude-hooks"),
        (NOW - 2 * HOUR, "INFO", "codex app-server reconnected"),
    )
    judged = sources_stayed_active(events, CANARY, NOW, WHOLE)
    assert judged.verdict is Verdict.FAIL
    assert "ext-claude-hooks at 2026-11-25T07:00Z" in judged.message
    assert "last 48h" in judged.message


def test_repeated_stale_lines_are_counted_per_source() -> None:
    events = log(
        (NOW - 30 * HOUR, "WARN", "source stale: relay-a"),
        (NOW - 20 * HOUR, "WARN", "source stale: relay-b"),
        (NOW - 3 * HOUR, "WARN", "source stale: relay-a"),
    )
    judged = sources_stayed_active(events, CANARY, NOW, WHOLE)
    assert judged.verdict is Verdict.FAIL
    assert "relay-a at 2026-11-24T06:00Z and 1 more times, the last at 2026-11-25T09:00Z" in (
        judged.message
    )
    assert "relay-b at 2026-11-24T16:00Z" in judged.message
    assert judged.numbers["found"] == 3


def test_a_stale_line_before_the_window_does_not_count() -> None:
    events = log((NOW - 49 * HOUR, "WARN", "source stale: ext-claude-hooks"))
    judged = sources_stayed_active(events, CANARY, NOW, WHOLE)
    assert judged.verdict is Verdict.PASS
    assert "no v5 source went stale in the last 48h" in judged.message


def test_a_stale_line_after_now_inside_the_log_still_counts() -> None:
    later = NOW + timedelta(seconds=5)
    events = log((later, "WARN", "source stale: ext-claude-hooks"))
    judged = sources_stayed_active(events, CANARY, NOW, Span(WHOLE.covers_from, later))
    assert judged.verdict is Verdict.FAIL


@pytest.mark.parametrize(
    ("span", "fragment"),
    [
        (Span(NOW - 10 * HOUR, NOW), "it starts after the window start"),
        (Span(NOW - 30 * 24 * HOUR, NOW - 2 * HOUR), "it ends 2h before now"),
        (Span(None, None), "does not say from when"),
    ],
)
def test_no_stale_line_on_a_log_not_covering_the_window_is_inconclusive(
    span: Span, fragment: str
) -> None:
    judged = sources_stayed_active([], CANARY, NOW, span)
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert fragment in judged.message


def test_lines_that_only_look_like_a_stale_source_do_not_count() -> None:
    events = log(
        (NOW - HOUR, "INFO", "source.hello: ext-claude-hooks active"),
        (NOW - HOUR, "WARN", "poll tick failed: source stale: maybe"),
    )
    assert sources_stayed_active(events, CANARY, NOW, WHOLE).verdict is Verdict.PASS


# --- P2-S2b: p95 breach lines and latency alerts only ------------------------------------


def breach(at: datetime, consecutive: int, p95: int = 3224) -> tuple[datetime, str, str]:
    level, what = ("WARN", "SLO breach") if consecutive < 3 else ("ERROR", "SLO DEGRADED")
    return at, level, f"{what}: p95={p95}ms, consecutive={consecutive}"


def test_breach_lines_without_degraded_fail_the_latency_monitor() -> None:
    events = log(breach(NOW - HOUR, 1), breach(NOW - HOUR + timedelta(milliseconds=20), 2))
    judged = latency_log_events(events, CANARY, NOW, WHOLE, kinds=SLO_LOG_KINDS, above_ms=3000)
    assert judged.verdict is Verdict.FAIL
    assert judged.message.startswith("2 SLO log lines (slo_breach, slo_degraded) with p95 > 3000")
    assert "worst p95 3224 ms" in judged.message


def test_breach_lines_under_a_looser_configured_threshold_do_not_count() -> None:
    events = log(breach(NOW - HOUR, 1, p95=3224), breach(NOW - HOUR, 2, p95=3500))
    judged = latency_log_events(events, CANARY, NOW, WHOLE, kinds=SLO_LOG_KINDS, above_ms=3400)
    assert judged.verdict is Verdict.FAIL
    assert judged.numbers["found"] == 1
    calm = latency_log_events(events, CANARY, NOW, WHOLE, kinds=SLO_LOG_KINDS, above_ms=4000)
    assert calm.verdict is Verdict.PASS


def test_no_breach_line_on_a_log_ending_hours_ago_is_inconclusive() -> None:
    judged = latency_log_events(
        [], CANARY, NOW, Span(WHOLE.covers_from, NOW - 2 * HOUR), kinds=SLO_LOG_KINDS
    )
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert "it ends 2h before now" in judged.message


def alert(
    severity: Severity, source: str, created: timedelta, resolved: timedelta | None = None
) -> AlertEntry:
    return AlertEntry(
        alert_id="alert-7",
        severity=severity,
        source=source,
        message="...",
        created_at_ms=datetime_to_ms(NOW - created),
        resolved_at_ms=None if resolved is None else datetime_to_ms(NOW - resolved),
        resolve_policy="AutoResolve",
    )


def test_a_supervisor_escalate_is_no_latency_alert() -> None:
    entries = [alert(Severity.ESCALATE, "supervisor", 20 * timedelta(minutes=1))]
    judged = alerts_from_sources(
        entries, Severity.DEGRADED, LATENCY_ALERT_SOURCES, CANARY, NOW, WHOLE
    )
    assert judged.verdict is Verdict.PASS
    assert "no latency_window alerts at or above Degraded in the last 48h" in judged.message
    assert judged.numbers["other_sources"] == 1


def test_a_resolved_degraded_latency_alert_in_the_window_fails() -> None:
    entries = [
        alert(Severity.DEGRADED, "latency_window", 3 * HOUR, 2 * HOUR),
        alert(Severity.WARN, "latency_window", HOUR),
    ]
    judged = alerts_from_sources(
        entries, Severity.DEGRADED, LATENCY_ALERT_SOURCES, CANARY, NOW, WHOLE
    )
    assert judged.verdict is Verdict.FAIL
    assert judged.message.startswith("1 latency_window alerts at or above Degraded")
    assert "alert-7 Degraded from latency_window" in judged.message


def test_a_latency_alert_resolved_before_the_window_does_not_count() -> None:
    entries = [alert(Severity.ESCALATE, "latency_window", 60 * HOUR, 50 * HOUR)]
    judged = alerts_from_sources(
        entries, Severity.DEGRADED, LATENCY_ALERT_SOURCES, CANARY, NOW, WHOLE
    )
    assert judged.verdict is Verdict.PASS
    short = alerts_from_sources(
        entries, Severity.DEGRADED, LATENCY_ALERT_SOURCES, CANARY, NOW, Span(NOW - HOUR, NOW)
    )
    assert short.verdict is Verdict.INCONCLUSIVE


# --- P2-S3: every canary session in use ---------------------------------------------------

SELECTOR = RuntimeSelector("v4", True, ("session-alpha", "session-beta"), None)


def pane(pane_id: str, session: str, presence: str = "managed", **extra: object) -> dict:
    return {"pane_id": pane_id, "presence": presence, "session_name": session, **extra}


PANES = [
    pane("%1", "session-alpha"),
    pane("%4", "session-beta"),
    pane("%5", "session-beta"),
    pane("%6", "session-beta", presence="unmanaged"),
    pane("%9", "session-gamma"),
]


def change(version: int, ago: timedelta, pane_id: str | None, key: str = "k") -> Change:
    return Change(version=version, session_key=key, at=NOW - ago, pane_id=pane_id)


def test_every_canary_session_changed_in_the_window_passes() -> None:
    changes = [change(1, 3 * HOUR, "%1"), change(2, HOUR, "%5")]
    judged = canary_sessions_in_use(SELECTOR, PANES, changes, CANARY, now=NOW)
    assert judged.verdict is Verdict.PASS
    assert "session-alpha 1 (latest 2026-11-25T09:00Z), session-beta 1" in judged.message


def test_one_idle_canary_session_is_named_even_when_another_is_busy() -> None:
    changes = [change(1, 72 * HOUR, "%5"), *(change(v, HOUR, "%1") for v in range(2, 9))]
    judged = canary_sessions_in_use(SELECTOR, PANES, changes, CANARY, now=NOW)
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert "1 of 2 canary sessions idle on v5" in judged.message
    assert "session-beta (2 managed panes, last at 2026-11-22T12:00Z)" in judged.message
    assert "session-alpha" not in judged.message.split("idle on v5")[1]


def test_a_change_of_a_non_canary_or_unmanaged_pane_shows_no_canary_use() -> None:
    changes = [change(1, HOUR, "%1"), change(2, HOUR, "%9"), change(3, HOUR, "%6")]
    judged = canary_sessions_in_use(SELECTOR, PANES, changes, CANARY, now=NOW)
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert "session-beta (2 managed panes, never)" in judged.message


def test_a_session_level_change_of_a_bound_agent_session_counts() -> None:
    changes = [
        change(1, 80 * HOUR, "%4", key="claude-beta"),
        change(2, HOUR, None, key="claude-beta"),
        change(3, HOUR, "%1"),
    ]
    judged = canary_sessions_in_use(SELECTOR, PANES, changes, CANARY, now=NOW)
    assert judged.verdict is Verdict.PASS


def test_a_canary_session_missing_from_v5_is_idle() -> None:
    selector = RuntimeSelector("v4", True, ("session-alpha", "session-delta"), None)
    judged = canary_sessions_in_use(selector, PANES, [change(1, HOUR, "%1")], CANARY, now=NOW)
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert "session-delta (no managed pane on v5)" in judged.message


def test_no_canary_session_named_shows_no_usage() -> None:
    selector = RuntimeSelector("v5", True, (), None)
    judged = canary_sessions_in_use(selector, PANES, [change(1, HOUR, "%1")], CANARY, now=NOW)
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert "no active usage" in judged.message


# --- SIG-3: breaches measured in 10-minute SLO windows -----------------------------------

DAY = timedelta(hours=24)
SECOND = timedelta(seconds=1)


def sustained(end: datetime, lasting: timedelta, step: timedelta = SECOND) -> list:
    """One SLO line per tick from ``end - lasting`` to ``end``, the counter never reset."""
    ticks = lasting // step + 1
    return [breach(end - (ticks - n) * step, n) for n in range(1, ticks + 1)]


def test_a_sub_second_flap_an_hour_ago_does_not_fire() -> None:
    events = log(*sustained(NOW - HOUR, timedelta(milliseconds=220), timedelta(milliseconds=20)))
    judged = sustained_breaches(events, DAY, NOW, WHOLE)
    assert judged.verdict is Verdict.PASS
    assert "1 shorter breaches in the look-back" in judged.message
    assert "1 windows, 12 breaching evaluations logged" in judged.message


@pytest.mark.parametrize(
    ("lasting", "verdict", "windows"),
    [
        (timedelta(minutes=29, seconds=59), Verdict.PASS, 3),
        (timedelta(minutes=30), Verdict.FAIL, 4),
        (timedelta(minutes=35), Verdict.FAIL, 4),
    ],
)
def test_more_than_3_windows_means_at_least_4(
    lasting: timedelta, verdict: Verdict, windows: int
) -> None:
    events = log(*sustained(NOW - HOUR, lasting, timedelta(seconds=20)))
    (run,) = breach_runs(events)
    assert run.windows(SLO_EVALUATION_WINDOW) == windows
    judged = sustained_breaches(events, DAY, NOW, WHOLE)
    assert judged.verdict is verdict
    if verdict is Verdict.FAIL:
        assert f"sustained over {windows} consecutive 10m SLO windows (more than 3)" in (
            judged.message
        )


def test_many_short_breaches_are_no_sustained_one() -> None:
    lines = []
    for start in range(0, 60, 5):  # a 2-tick breach every 5 minutes for an hour
        at = NOW - 2 * HOUR + timedelta(minutes=start)
        lines += [breach(at, 1), breach(at + SECOND, 2)]
    events = log(*lines)
    assert len(breach_runs(events)) == 12
    assert sustained_breaches(events, DAY, NOW, WHOLE).verdict is Verdict.PASS


def test_a_restart_resets_the_run() -> None:
    before = sustained(NOW - 2 * HOUR - timedelta(minutes=20), timedelta(minutes=20), 10 * SECOND)
    after = sustained(NOW - 2 * HOUR + timedelta(minutes=20), timedelta(minutes=20), 10 * SECOND)
    events = log(*before, *after)  # the counter starts again at 1: two runs of 20 minutes
    assert [r.windows() for r in breach_runs(events)] == [3, 3]
    assert sustained_breaches(events, DAY, NOW, WHOLE).verdict is Verdict.PASS


def test_a_run_that_started_before_the_look_back_counts_whole() -> None:
    events = log(*sustained(NOW - DAY + timedelta(minutes=5), timedelta(minutes=40), 30 * SECOND))
    assert sustained_breaches(events, DAY, NOW, WHOLE).verdict is Verdict.FAIL


def test_a_run_that_ended_before_the_look_back_does_not_count() -> None:
    events = log(*sustained(NOW - DAY - HOUR, timedelta(minutes=40), 30 * SECOND))
    assert sustained_breaches(events, DAY, NOW, WHOLE).verdict is Verdict.PASS


def test_the_configured_number_of_windows_is_used() -> None:
    events = log(*sustained(NOW - HOUR, timedelta(minutes=20), 30 * SECOND))
    assert sustained_breaches(events, DAY, NOW, WHOLE, more_than=2).verdict is Verdict.FAIL
    assert sustained_breaches(events, DAY, NOW, WHOLE, more_than=3).verdict is Verdict.PASS


def test_no_sustained_breach_on_a_short_log_is_inconclusive() -> None:
    judged = sustained_breaches([], DAY, NOW, Span(NOW - HOUR, NOW))
    assert judged.verdict is Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        (
            {"status": "healthy", "p95_ms": 36, "consecutive_breaches": 0, "sample_count": 205},
            "PASS",
        ),
        (
            {"status": "degraded", "p95_ms": 3224, "consecutive_breaches": 90, "sample_count": 213},
            "INCONCLUSIVE",
        ),
        (
            {"status": "breached", "p95_ms": 3224, "consecutive_breaches": 2, "sample_count": 213},
            "INCONCLUSIVE",
        ),
        (
            {
                "status": "insufficient_data",
                "p95_ms": None,
                "consecutive_breaches": 0,
                "sample_count": 9,
            },
            "INCONCLUSIVE",
        ),
        (
            {"status": "degraded", "p95_ms": 3224, "consecutive_breaches": "90", "sample_count": 1},
            "UNOBSERVABLE",
        ),
    ],
)
def test_a_breach_under_way_now_is_not_yet_the_signal(answer: dict, verdict: str) -> None:
    assert breach_in_progress(answer).verdict.value == verdict


# --- SIG-4: a FullResync inside the look-back, on the canary -----------------------------


def selector(
    default: str, enabled: bool, canary: tuple[str, ...], changed: timedelta | None
) -> RuntimeSelector:
    changed_ms = None if changed is None else datetime_to_ms(NOW - changed)
    return RuntimeSelector(default, enabled, canary, changed_ms)


CANARY_ROUTING = selector("v4", True, ("session-alpha",), 10 * DAY)
RESYNC = "cursor recovery: full resync (streak exceeded)"


def test_a_full_resync_20_days_ago_advises_nothing() -> None:
    events = log((NOW - 20 * DAY, "ERROR", RESYNC))
    judged = full_resyncs_on_canary(events, CANARY_ROUTING, DAY, NOW, WHOLE)
    assert judged.verdict is Verdict.PASS


def test_a_full_resync_on_the_canary_in_the_look_back_fires() -> None:
    events = log((NOW - HOUR, "ERROR", RESYNC))
    judged = full_resyncs_on_canary(events, CANARY_ROUTING, DAY, NOW, WHOLE)
    assert judged.verdict is Verdict.FAIL
    assert judged.message.startswith("1 cursor FullResyncs on the canary in the last 24h, at")


def test_a_full_resync_after_the_switch_back_to_v4_is_on_no_canary() -> None:
    rolled_back = selector("v4", False, (), 3 * HOUR)
    events = log((NOW - HOUR, "ERROR", RESYNC))
    judged = full_resyncs_on_canary(events, rolled_back, DAY, NOW, WHOLE)
    assert judged.verdict is Verdict.PASS
    assert "1 while v5 served no session" in judged.message
    before = full_resyncs_on_canary(
        log((NOW - 5 * HOUR, "ERROR", RESYNC)), rolled_back, DAY, NOW, WHOLE
    )
    assert before.verdict is Verdict.FAIL  # v5 served the canary until the switch back


def test_a_full_resync_before_the_canary_routing_began_is_not_shown() -> None:
    young = selector("v4", True, ("session-alpha",), 2 * HOUR)
    judged = full_resyncs_on_canary(log((NOW - 5 * HOUR, "ERROR", RESYNC)), young, DAY, NOW, WHOLE)
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert "whether v5 served a canary session then is not shown" in judged.message
    assert on_canary(NOW - HOUR, young) is True
    assert on_canary(NOW - HOUR, selector("v5", True, (), None)) is None


def stats(count: int, counted_from: timedelta) -> CursorStats:
    return CursorStats(
        fetched=100,
        committed=100,
        invalid_streak=0,
        max_invalid_streak=3 if count else 0,
        retry_count=2 * count,
        full_resync_count=count,
        last_advanced_at_ms=datetime_to_ms(NOW - SECOND),
        covers_from_ms=datetime_to_ms(NOW - counted_from),
        as_of_ms=datetime_to_ms(NOW),
    )


def test_counters_that_cannot_place_a_resync_do_not_fire() -> None:
    judged = full_resync_counters_on_canary(stats(1, 30 * DAY), CANARY_ROUTING, window=DAY, now=NOW)
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert "the counters cannot say when" in judged.message


def test_counters_counted_inside_the_look_back_on_the_canary_fire() -> None:
    judged = full_resync_counters_on_canary(stats(2, 5 * HOUR), CANARY_ROUTING, window=DAY, now=NOW)
    assert judged.verdict is Verdict.FAIL
    rolled_back = selector("v4", False, (), 3 * HOUR)
    off = full_resync_counters_on_canary(stats(2, 5 * HOUR), rolled_back, window=DAY, now=NOW)
    assert off.verdict is Verdict.INCONCLUSIVE


def test_zero_counted_over_the_look_back_passes() -> None:
    judged = full_resync_counters_on_canary(stats(0, 30 * DAY), CANARY_ROUTING, window=DAY, now=NOW)
    assert judged.verdict is Verdict.PASS


# --- SIG-1: the log's supervisor lines and the codex_appserver proxy ---------------------

HOLD = "codex app-server: failure budget exhausted, hold-down 300s"


def test_the_log_alone_shows_a_hold_down_that_recovered() -> None:
    events = log(
        (NOW - 2 * HOUR, "WARN", HOLD),
        (NOW - 2 * HOUR + timedelta(minutes=5, seconds=1), "INFO", "codex app-server reconnected"),
    )
    judged = hold_down_not_recovered(events, DAY, NOW, WHOLE)
    assert judged.verdict is Verdict.PASS


def test_the_log_alone_shows_a_hold_down_that_never_recovered() -> None:
    events = log(
        (NOW - 2 * HOUR, "WARN", HOLD),
        (NOW - HOUR, "DEBUG", "codex app-server: hold-down active, 12s remaining"),
    )
    judged = hold_down_not_recovered(events, DAY, NOW, WHOLE)
    assert judged.verdict is Verdict.FAIL


@pytest.mark.parametrize(
    ("status", "verdict"),
    [("healthy", "PASS"), ("degraded", "INCONCLUSIVE"), ("down", "INCONCLUSIVE")],
)
def test_the_codex_appserver_proxy(status: str, verdict: str) -> None:
    health = [["claude_hooks", {"status": "healthy"}], ["codex_appserver", {"status": status}]]
    assert hold_down_proxy(health).verdict.value == verdict


@pytest.mark.parametrize(
    "health",
    [
        [],
        [["codex_appserver", {"status": "healthy"}], ["codex_appserver", {"status": "down"}]],
        [["codex_appserver", {"status": "Healthy"}]],
        [["codex_appserver", "healthy"]],
        {"codex_appserver": "healthy"},
    ],
)
def test_a_proxy_answer_that_does_not_show_codex_appserver_once_is_unobservable(
    health: object,
) -> None:
    assert hold_down_proxy(health).verdict is Verdict.UNOBSERVABLE
