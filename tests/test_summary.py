"""The end-of-run summary: what an operator reads to decide."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_canarygate.catalog import OPT_IN_STAGES
from pytest_canarygate.catalog import load_catalog
from pytest_canarygate.decision import RollbackDecision
from pytest_canarygate.decision import decide
from pytest_canarygate.results import GateResult
from pytest_canarygate.results import PendingItem
from pytest_canarygate.results import RunOutcome
from pytest_canarygate.summary import MAX_BLOCKING_LINES
from pytest_canarygate.summary import summary_lines
from pytest_canarygate.verdicts import Verdict

ROOT = Path(__file__).resolve().parents[1]
CATALOG = load_catalog(ROOT / "gates" / "catalog.toml")


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
        **kwargs,  # type: ignore[arg-type]
    )
    return [text for text, _ in lines]


def live_pass(phase: str, results: list[GateResult]) -> RunOutcome:
    return RunOutcome(phase, results, signed=True)


def rollback_run(**verdicts: Verdict) -> tuple[RunOutcome, RollbackDecision]:
    """Every gate of the rollback phase (a plain run: not the rehearsal), PASS unless its item
    is given a verdict; with the decision the run would take."""
    results = [
        result(g.item.id, verdicts.get(g.item.id.replace("-", "_"), Verdict.PASS), gate=g.id)
        for g in CATALOG.gates_for("rollback")
        if g.stage not in OPT_IN_STAGES
    ]
    decision = decide(CATALOG, "rollback", results)
    assert decision is not None
    return live_pass("rollback", results), decision


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        (
            {"SIG_1": Verdict.FAIL},
            [
                "ROLLBACK ADVISED: SIG-1 signal.hold-down-not-recovered (rollback immediately); "
                "procedure complete",
                "runbook action: rollback immediately",
                "exit code 20 (ROLLBACK ADVISED)",
            ],
        ),
        (
            {"SIG_3": Verdict.UNOBSERVABLE},
            ["exit code 21 (CANNOT BE RULED OUT)"],
        ),
        (
            {},
            [
                "NO ROLLBACK SIGNAL among 5 of 5 signals checked; procedure complete",
                "exit code 0 (NO ROLLBACK SIGNAL)",
            ],
        ),
        (
            {"RB_1": Verdict.FAIL},
            ["exit code 1 (NO ROLLBACK SIGNAL)"],
        ),
    ],
)
def test_rollback_phase_says_whether_to_roll_back(
    verdicts: dict[str, Verdict], expected: list[str]
) -> None:
    outcome, decision = rollback_run(**verdicts)
    lines = texts(outcome, decision=decision)
    for line in expected:
        assert line in lines, lines
    assert not any(line.startswith("PROMOTION") for line in lines)


def test_a_failed_procedure_step_is_not_a_fired_signal() -> None:
    outcome, decision = rollback_run(RB_1=Verdict.FAIL)
    lines = texts(outcome, decision=decision)
    assert not any("ROLLBACK ADVISED" in line for line in lines)
    assert "procedure incomplete" in decision.headline()


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


def test_a_rollback_run_missing_a_signal_never_says_no_rollback_signal() -> None:
    """A signal deselected (-k, a stage) is not checked: the decision cannot rule it out."""
    outcome, _ = rollback_run()
    outcome.results = [r for r in outcome.results if r.item != "SIG-2"]
    outcome.partial_reasons = ["-k 'not escalate'"]
    decision = decide(CATALOG, "rollback", outcome.results)
    assert decision is not None
    lines = texts(outcome, decision=decision)
    assert any(line.startswith("CANNOT BE RULED OUT") and "SIG-2" in line for line in lines)
    assert "exit code 21 (CANNOT BE RULED OUT)" in lines
    assert not any(line.startswith("NO ROLLBACK SIGNAL") for line in lines)


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


def test_an_incomplete_bundle_lists_a_screenful_and_counts_the_rest() -> None:
    outcome = live_pass("alpha", [result("P1-S1", Verdict.PASS)])
    outcome.incomplete = [
        f"gates/t.py::test_g[s-{i:04d}]: collected but never reported" for i in range(3000)
    ]
    lines = texts(outcome)
    listed = [line for line in lines if line.startswith("  INCOMPLETE   ")]
    assert len(listed) == MAX_BLOCKING_LINES
    assert listed[0].endswith("test_g[s-0000]: collected but never reported")
    assert (
        f"  ... and {3000 - MAX_BLOCKING_LINES} more incomplete (run.json lists them all)" in lines
    )
