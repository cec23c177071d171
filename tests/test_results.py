"""What a run's verdicts add up to: the run verdict, why it is not promotable, its exit code."""

from __future__ import annotations

import json

import pytest

from pytest_canarygate.results import GateResult
from pytest_canarygate.results import PendingItem
from pytest_canarygate.results import RunOutcome
from pytest_canarygate.results import RunVerdict
from pytest_canarygate.session import exit_status
from pytest_canarygate.verdicts import Verdict


def outcome(*verdicts: Verdict, **fields: object) -> RunOutcome:
    results = [GateResult(f"g{i}", f"gate{i}", "I-1", v) for i, v in enumerate(verdicts)]
    run = RunOutcome("alpha", results, signed=True)
    for name, value in fields.items():
        setattr(run, name, value)
    return run


@pytest.mark.parametrize(
    ("run", "verdict", "code"),
    [
        (outcome(), RunVerdict.EMPTY, pytest.ExitCode.NO_TESTS_COLLECTED),
        (outcome(Verdict.PASS), RunVerdict.PASS, pytest.ExitCode.OK),
        (
            outcome(Verdict.PASS, Verdict.INCONCLUSIVE),
            RunVerdict.FAIL,
            pytest.ExitCode.TESTS_FAILED,
        ),
        (
            outcome(Verdict.PASS, incomplete=["a worker died"]),
            RunVerdict.INCOMPLETE,
            pytest.ExitCode.TESTS_FAILED,
        ),
        (outcome(Verdict.PASS, partial_reasons=["-k x"]), RunVerdict.PARTIAL, pytest.ExitCode.OK),
        (
            outcome(Verdict.PASS, seal_error="OSError: disk full"),
            RunVerdict.PASS,
            pytest.ExitCode.TESTS_FAILED,
        ),
    ],
)
def test_run_verdict_and_exit_code(
    run: RunOutcome, verdict: RunVerdict, code: pytest.ExitCode
) -> None:
    assert run.verdict is verdict
    assert exit_status(run, must_be_promotable=False) == code


def test_require_promotable_fails_a_green_run_that_is_no_sign_off() -> None:
    run = outcome(Verdict.PASS, pending_items=[PendingItem("P2-C3", "chain of custody")])
    assert exit_status(run, must_be_promotable=False) == pytest.ExitCode.OK
    assert exit_status(run, must_be_promotable=True) == pytest.ExitCode.TESTS_FAILED
    assert run.not_promotable_because == ["1 runbook item(s) have no gate yet (P2-C3)"]
    signed_pass = outcome(Verdict.PASS)
    assert signed_pass.promotable
    assert exit_status(signed_pass, must_be_promotable=True) == pytest.ExitCode.OK


def test_the_run_verdict_reads_as_its_word_everywhere() -> None:
    assert f"{RunVerdict.INCOMPLETE}" == "incomplete"
    assert json.dumps({"verdict": RunVerdict.FAIL}) == '{"verdict": "fail"}'
    assert PendingItem("SIG-5", "human sign-off").as_json() == {
        "id": "SIG-5",
        "reason": "human sign-off",
    }


@pytest.mark.parametrize(
    ("run", "reason"),
    [
        (outcome(), "no gate ran"),
        (outcome(Verdict.PASS, Verdict.FAIL, Verdict.UNOBSERVABLE), "2 gate(s) did not pass"),
        (
            outcome(Verdict.PASS, incomplete=["a worker died"]),
            "the bundle is incomplete (a worker died)",
        ),
        (
            outcome(Verdict.PASS, partial_reasons=["-k parity"]),
            "only part of the phase was judged (-k parity)",
        ),
    ],
)
def test_a_run_that_did_not_pass_says_why_it_is_no_sign_off(run: RunOutcome, reason: str) -> None:
    assert not run.promotable
    assert run.not_promotable_because[0] == reason
