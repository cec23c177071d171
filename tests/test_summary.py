"""The end-of-run summary: what an operator reads to decide."""

from __future__ import annotations

import pytest

from pytest_canarygate.results import GateResult
from pytest_canarygate.results import PendingItem
from pytest_canarygate.results import RunOutcome
from pytest_canarygate.summary import MAX_BLOCKING_LINES
from pytest_canarygate.summary import summary_lines
from pytest_canarygate.verdicts import Verdict

SIGNALS = {"SIG-1", "SIG-2"}


def result(item: str, verdict: Verdict, gate: str = "g", message: str = "m") -> GateResult:
    return GateResult(f"gates/t.py::{gate}-{item}", gate, item, verdict, message)


def texts(outcome: RunOutcome, **kwargs: object) -> list[str]:
    lines = summary_lines(
        outcome,
        migration_id="m",
        target={"kind": "live"},
        observed_at=None,
        bundle="reports/m/x",
        signer_keyid="k" * 64,
        signal_items=SIGNALS,
        **kwargs,  # type: ignore[arg-type]
    )
    return [text for text, _ in lines]


def live_pass(phase: str, results: list[GateResult]) -> RunOutcome:
    return RunOutcome(phase, results, signed=True)


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        (
            [result("SIG-1", Verdict.FAIL), result("RB-1", Verdict.PASS)],
            ["ROLLBACK ADVISED: signal(s) SIG-1 fired", "rollback procedure checks passed"],
        ),
        (
            [result("SIG-1", Verdict.UNOBSERVABLE), result("SIG-2", Verdict.PASS)],
            ["ROLLBACK CANNOT BE RULED OUT: signal(s) SIG-1 not judged"],
        ),
        (
            [result("SIG-1", Verdict.PASS), result("SIG-2", Verdict.PASS)],
            ["no rollback advised: every rollback signal was checked and is absent"],
        ),
        (
            [
                result("SIG-1", Verdict.PASS),
                result("SIG-2", Verdict.PASS),
                result("RB-1", Verdict.FAIL),
            ],
            [
                "no rollback advised: every rollback signal was checked and is absent",
                "rollback procedure not complete: RB-1",
            ],
        ),
        (
            [result("SIG-1", Verdict.PASS), result("RB-1", Verdict.PASS)],
            ["ROLLBACK CANNOT BE RULED OUT: signal(s) SIG-2 not judged"],
        ),
    ],
)
def test_rollback_phase_says_whether_to_roll_back(
    results: list[GateResult], expected: list[str]
) -> None:
    lines = texts(live_pass("rollback", results))
    for line in expected:
        assert line in lines
    assert not any(line.startswith("PROMOTION") for line in lines)


def test_a_failed_procedure_step_is_not_a_fired_signal() -> None:
    lines = texts(
        live_pass("rollback", [result("SIG-1", Verdict.PASS), result("RB-3a", Verdict.FAIL)])
    )
    assert not any("ROLLBACK ADVISED" in line for line in lines)


def test_promotable_only_when_complete_live_signed_and_passing() -> None:
    assert "PROMOTION MAY GO AHEAD: every gate of phase canary passed" in texts(
        live_pass("canary", [result("P2-X1", Verdict.PASS)])
    )
    unsigned = RunOutcome("canary", [result("P2-X1", Verdict.PASS)])
    assert any("not promotable: the bundle is not signed" in t for t in texts(unsigned))
    assert (
        "NOT SIGNED - NOT PROMOTABLE: pass --canarygate-key=PATH or set "
        "CANARYGATE_SIGNING_KEY=PATH (create one with: canarygate keygen PATH)"
    ) in texts(unsigned)
    partial = live_pass("canary", [result("P2-X1", Verdict.PASS)])
    partial.partial_reasons = ["-k 'beta'"]
    assert "NOT PROMOTABLE: partial selection (every selected gate passed)" in texts(partial)
    assert "  partial selection: -k 'beta'" in texts(partial)


def test_blocking_list_fits_one_screen_and_names_the_first_difference() -> None:
    many = [
        result(f"P1-S{i}", Verdict.FAIL, gate=f"gate{i:02d}", message=f"headline {i}\ndetail")
        for i in range(40)
    ]
    lines = texts(live_pass("alpha", many))
    assert len(lines) < 30
    assert "NOT PROMOTABLE: 40 gate(s) block promotion" in lines
    assert f"  ... and {40 - MAX_BLOCKING_LINES} more" in lines
    shown = [line for line in lines if line.startswith("  FAIL")]
    assert len(shown) == MAX_BLOCKING_LINES
    assert all("detail" not in line for line in shown)  # only each message's first line
    assert shown[0].endswith("headline 0")


def test_causes_come_before_the_blocked_gates() -> None:
    lines = texts(
        live_pass("alpha", [result("P1-S1", Verdict.UNOBSERVABLE)]),
        observation_problems=["v5: unix:///x daemon.info: no socket at /x"],
    )
    cause = lines.index("  v5: unix:///x daemon.info: no socket at /x")
    assert lines[cause - 1].startswith("could not observe")
    assert cause < lines.index("blocking promotion:")


def test_zero_gates_is_an_error_line() -> None:
    lines = texts(RunOutcome("alpha", []))
    assert "ERROR: zero gates selected for phase alpha; this is not a green run" in lines


def test_partial_rollback_run_never_says_no_rollback_advised() -> None:
    outcome = live_pass("rollback", [result("SIG-1", Verdict.PASS), result("SIG-2", Verdict.PASS)])
    outcome.partial_reasons = ["-k 'latency'"]
    lines = texts(outcome)
    assert "ROLLBACK CANNOT BE RULED OUT: partial run" in lines
    assert not any(line.startswith("no rollback advised") for line in lines)


def test_rollback_selection_without_signals_cannot_rule_out() -> None:
    lines = summary_lines(
        live_pass("rollback", [result("RB-1", Verdict.PASS)]),
        migration_id="m",
        target={"kind": "live"},
        observed_at=None,
        bundle=None,
        signal_items=set(),
    )
    assert "ROLLBACK CANNOT BE RULED OUT: no rollback signal was due in this selection" in [
        text for text, _ in lines
    ]


def test_items_without_a_gate_block_promotion() -> None:
    outcome = live_pass("canary", [result("P2-X1", Verdict.PASS)])
    outcome.pending_items = [
        PendingItem("P2-C3", "chain of custody"),
        PendingItem("P2-X3", "human sign-off"),
    ]
    assert not outcome.promotable
    lines = texts(outcome)
    assert "  not gated yet (block promotion): P2-C3, P2-X3" in lines
    assert any("2 runbook item(s) have no gate yet (P2-C3, P2-X3)" in line for line in lines)
    assert not any(line.startswith("PROMOTION MAY GO AHEAD") for line in lines)
