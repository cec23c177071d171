"""v4 / v5 parity over two readings (P1-S4a..c, P1-X1): the judging functions on hostile and
edge inputs, then the gates on hand-built observations (panes of no tmux session, flapping,
history-only sessions, a daemon not ready)."""

from __future__ import annotations

from typing import Any

import pytest
from test_gates_units import FLEET_PANES
from test_gates_units import NOT_STARTED
from test_gates_units import NOW
from test_gates_units import Fleet
from test_gates_units import judge
from test_gates_units import pane
from test_gates_units import sessions_for

from pytest_canarygate.agtmux.judgement import active_session_keys
from pytest_canarygate.agtmux.judgement import parity_in_readings
from pytest_canarygate.agtmux.judgement import split_history
from pytest_canarygate.agtmux.pack import NO_TMUX_SESSION
from pytest_canarygate.agtmux.protocol import Change
from pytest_canarygate.agtmux.protocol import Difference
from pytest_canarygate.verdicts import Verdict

DRIFT = Difference("session s pane %5", "activity_state", "Running", "Idle")
OTHER = Difference("session s pane %6", "provider", "claude", "codex")


# --- parity_in_readings ------------------------------------------------------------------


def test_no_difference_in_either_reading_passes_and_counts_history() -> None:
    judged = parity_in_readings(
        [[], []], what="list_sessions", compared="3 active agent sessions",
        history={"v4": ["old-1", "old-2"], "v5": []},
    )  # fmt: skip
    assert judged.verdict is Verdict.PASS
    assert judged.message == (
        "list_sessions: v4 and v5 agree in all 2 readings (3 active agent sessions; 2 sessions "
        "kept only as history not compared (2 on v4, 0 on v5))"
    )
    assert judged.numbers["history_only_sessions"] == {"v4": ["old-1", "old-2"], "v5": []}


def test_a_difference_in_both_readings_fails() -> None:
    judged = parity_in_readings([[DRIFT], [DRIFT]], what="list_panes in s", compared="2 panes")
    assert judged.verdict is Verdict.FAIL
    first = judged.message.splitlines()[0]
    assert first == (
        "list_panes in s differs in all 2 readings: session s pane %5: activity_state "
        "v4='Running' v5='Idle'"
    )
    assert judged.numbers["differences_in_every_reading"] == 1


def test_the_same_field_differing_with_other_values_still_persists() -> None:
    later = Difference(DRIFT.where, DRIFT.field, "Running", "Error")
    judged = parity_in_readings([[DRIFT], [later]], what="w", compared="c")
    assert judged.verdict is Verdict.FAIL
    assert "v5='Error'" in judged.message.splitlines()[0]  # the latest reading is shown


@pytest.mark.parametrize("readings", [[[DRIFT], []], [[], [DRIFT]]])
def test_a_difference_in_one_reading_only_is_flapping(readings: list[list[Difference]]) -> None:
    judged = parity_in_readings(readings, what="list_panes in s", compared="2 panes")
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert "differs in only some of 2 readings (flapping)" in judged.message
    reading = 1 if readings[0] else 2
    assert f"reading {reading}: session s pane %5: activity_state" in judged.message


def test_a_persistent_difference_fails_and_names_the_flapping_ones_too() -> None:
    judged = parity_in_readings([[DRIFT, OTHER], [DRIFT]], what="w", compared="c")
    assert judged.verdict is Verdict.FAIL
    assert "also 1 differences in only some readings (flapping)" in judged.message
    assert "reading 1: session s pane %6: provider" in judged.message


def test_one_reading_is_refused() -> None:
    with pytest.raises(ValueError, match="at least two readings"):
        parity_in_readings([[]], what="w", compared="c")


# --- active and history-only sessions ----------------------------------------------------


def test_sessions_bound_to_panes_tmux_lists_are_active() -> None:
    live = pane("%1", "session-alpha")
    ghost = pane("%9", None)  # type: ignore[arg-type]
    unmanaged = pane("%2", "session-alpha", managed=False)
    bound_by_log = Change(7, "claude-abc", NOW, "%1")
    ghost_log = Change(8, "codex-gone", NOW, "%9")
    keys = active_session_keys([live, ghost, unmanaged], [bound_by_log, ghost_log])
    assert keys == {"poller-%1", "claude-abc"}


def test_split_history_keeps_active_and_lists_the_rest_sorted() -> None:
    sessions = {k: {"session_key": k} for k in ("z-old", "poller-%1", "a-old")}
    kept, history = split_history(sessions, {"poller-%1", "not-listed"})
    assert list(kept) == ["poller-%1"]
    assert history == ["a-old", "z-old"]


# --- the gates ---------------------------------------------------------------------------

GHOST = pane("%9", None, activity_state="Idle")  # type: ignore[arg-type]


def with_panes(daemon: str, panes: list[dict[str, Any]], reading: int = 0) -> Any:
    """Serve ``panes`` as ``daemon``'s list_panes (in reading 2 only, with ``reading=2``)."""

    def change(f: Fleet) -> None:
        if reading == 2:
            f.second[(daemon, "list_panes")] = panes
        else:
            f.calls[daemon]["list_panes"] = panes

    return change


def run(gate_id: str, *changes: Any, session: str = "") -> tuple[Verdict, str]:
    fleet = Fleet.healthy("alpha")
    for change in changes:
        change(fleet)
    verdict, message, _ = judge(gate_id, fleet, session=session)
    return verdict, message


def test_a_drift_on_a_pane_of_no_tmux_session_fails() -> None:
    v5_ghost = {**GHOST, "activity_state": "Running"}
    verdict, message = run(
        "alpha.parity.panes",
        with_panes("v4", [*FLEET_PANES, GHOST]),
        with_panes("v5", [*FLEET_PANES, v5_ghost]),
        session=NO_TMUX_SESSION,
    )
    assert verdict is Verdict.FAIL
    assert message.splitlines()[0] == (
        "list_panes outside any tmux session differs in all 2 readings: pane outside any tmux "
        "session %9: activity_state v4='Idle' v5='Running'"
    )


def test_a_pane_of_no_tmux_session_missing_on_v5_fails_the_projection() -> None:
    verdict, message = run(
        "alpha.exit.projection-matches",
        with_panes("v4", [*FLEET_PANES, GHOST]),
        session=NO_TMUX_SESSION,
    )
    assert verdict is Verdict.FAIL
    assert "pane outside any tmux session %9: (record) v4='present' v5='<missing>'" in message


def test_the_no_session_instance_does_not_judge_named_sessions() -> None:
    drifted = [p if p["pane_id"] != "%1" else {**p, "provider": "codex"} for p in FLEET_PANES]
    verdict, _ = run("alpha.parity.panes", with_panes("v5", drifted), session=NO_TMUX_SESSION)
    assert verdict is Verdict.PASS
    verdict, _ = run("alpha.parity.panes", with_panes("v5", drifted), session="session-alpha")
    assert verdict is Verdict.FAIL


def test_a_difference_in_the_second_reading_only_is_inconclusive() -> None:
    drifted = [p if p["pane_id"] != "%1" else {**p, "activity_state": "Idle"} for p in FLEET_PANES]
    for gate_id in ("alpha.parity.panes", "alpha.exit.projection-matches"):
        verdict, message = run(gate_id, with_panes("v5", drifted, reading=2))
        assert verdict is Verdict.INCONCLUSIVE, message
        assert "differs in only some of 2 readings (flapping)" in message
        assert "reading 2: session session-alpha pane %1: activity_state" in message


def test_a_signature_difference_in_both_readings_fails() -> None:
    drifted = [
        p if p["pane_id"] != "%1" else {**p, "evidence_mode": "deterministic"} for p in FLEET_PANES
    ]
    verdict, message = run("alpha.parity.signature", with_panes("v5", drifted))
    assert verdict is Verdict.FAIL
    assert "signature fields in session-alpha differs in all 2 readings" in message


def test_a_malformed_signature_in_one_reading_fails() -> None:
    bad = [p if p["pane_id"] != "%1" else {**p, "signature_confidence": 7} for p in FLEET_PANES]
    both_bad = [with_panes("v4", bad, reading=2), with_panes("v5", bad, reading=2)]
    verdict, message = run("alpha.parity.signature", *both_bad)
    assert verdict is Verdict.FAIL
    assert "v5 pane %1 (reading 2): signature_confidence 7 outside 0.0-1.0" in message


def history_session(key: str, activity: str) -> dict[str, Any]:
    return {"session_key": key, "presence": "managed", "evidence_mode": "heuristic",
            "winner_tier": "deterministic", "activity_state": activity}  # fmt: skip


def test_history_only_sessions_that_differ_are_counted_not_compared() -> None:
    def old_sessions(f: Fleet) -> None:
        for name, activity in (("v4", "Idle"), ("v5", "Error")):
            f.calls[name]["list_sessions"] = [
                *sessions_for(FLEET_PANES),
                history_session("claude-finished", activity),
            ]
        f.calls["v4"]["list_sessions"].append(history_session("claude-v4-only", "Idle"))

    verdict, message = run("alpha.parity.sessions", old_sessions)
    assert verdict is Verdict.PASS, message
    _, _, evidence = judge("alpha.parity.sessions", _fleet(old_sessions))
    noted = dict(evidence.notes)["session parity"]
    assert noted["numbers"]["history_only_sessions"] == {
        "v4": ["claude-finished", "claude-v4-only"],
        "v5": ["claude-finished"],
    }
    assert "3 sessions kept only as history not compared (2 on v4, 1 on v5)" in noted["message"]


def test_an_active_session_that_differs_still_fails() -> None:
    def drift(f: Fleet) -> None:
        sessions = sessions_for(FLEET_PANES)
        f.calls["v5"]["list_sessions"] = [
            s if s["session_key"] != "poller-%3" else {**s, "activity_state": "Error"}
            for s in sessions
        ]

    verdict, message = run("alpha.parity.sessions", drift)
    assert verdict is Verdict.FAIL
    assert "agent session poller-%3: activity_state v4='Running' v5='Error'" in message


def test_a_session_whose_pane_left_tmux_is_history() -> None:
    ghosted = [p if p["pane_id"] != "%3" else {**p, "session_name": None} for p in FLEET_PANES]

    def drift(f: Fleet) -> None:
        with_panes("v4", ghosted)(f)
        with_panes("v5", ghosted)(f)
        f.calls["v5"]["list_sessions"] = [
            s if s["session_key"] != "poller-%3" else {**s, "activity_state": "Error"}
            for s in sessions_for(FLEET_PANES)
        ]

    verdict, message = run("alpha.parity.sessions", drift)
    assert verdict is Verdict.PASS, message


@pytest.mark.parametrize(
    "gate_id",
    ["alpha.parity.panes", "alpha.parity.sessions", "alpha.parity.signature",
     "alpha.exit.projection-matches"],
)  # fmt: skip
@pytest.mark.parametrize("daemon", ["v4", "v5"])
def test_parity_waits_for_both_daemons_to_be_ready(gate_id: str, daemon: str) -> None:
    def not_started(f: Fleet) -> None:
        f.calls[daemon]["latency_status"] = NOT_STARTED

    verdict, message = run(gate_id, not_started)
    assert verdict is Verdict.INCONCLUSIVE
    assert f"{daemon} not ready: latency_status not_started" in message


def test_a_second_reading_not_taken_is_unobservable() -> None:
    def failed(f: Fleet) -> None:
        f.failed_second[("v5", "list_panes")] = "connection refused"

    verdict, message = run("alpha.parity.panes", failed)
    assert verdict is Verdict.UNOBSERVABLE
    assert "connection refused" in message


def _fleet(*changes: Any) -> Fleet:
    fleet = Fleet.healthy("alpha")
    for change in changes:
        change(fleet)
    return fleet
