"""The gradual-phase judgements and the final checklist's Escalate window: restart counts
against a baseline before the phase, and Escalates left unresolved at any time in the window."""

from __future__ import annotations

from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest

from pytest_canarygate.agtmux import judgement as j
from pytest_canarygate.agtmux.providers import AlertEntry
from pytest_canarygate.agtmux.providers import Evidence
from pytest_canarygate.agtmux.providers import Severity
from pytest_canarygate.agtmux.providers import Source
from pytest_canarygate.agtmux.records import datetime_to_ms
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
