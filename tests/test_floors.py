"""The runbook's numbers are floors: a config may tighten a window or threshold, never loosen
it for a run that is to be a sign-off."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace

import pytest

from pytest_canarygate.agtmux.settings import AgtmuxSettings
from pytest_canarygate.agtmux.settings import Thresholds
from pytest_canarygate.agtmux.settings import Windows
from pytest_canarygate.config import AT_LEAST
from pytest_canarygate.config import AT_MOST
from pytest_canarygate.config import bounded
from pytest_canarygate.config import loosened
from pytest_canarygate.results import GateResult
from pytest_canarygate.results import RunOutcome
from pytest_canarygate.verdicts import Verdict


def test_the_runbooks_own_numbers_loosen_nothing() -> None:
    assert loosened(AgtmuxSettings()) == []


def test_stricter_values_loosen_nothing() -> None:
    settings = AgtmuxSettings(
        windows=Windows(alpha_monitor_h=48, gradual_days=14, archive_retention_days=60),
        thresholds=Thresholds(latency_p95_ms=1000, breach_windows=2, min_build_tests=900),
    )
    assert loosened(settings) == []


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            AgtmuxSettings(windows=Windows(gradual_days=0.0001)),
            "[windows] gradual_days = 0.0001 (runbook: at least 7 days)",
        ),
        (
            AgtmuxSettings(windows=Windows(alpha_monitor_h=23.5)),
            "[windows] alpha_monitor_h = 23.5 (runbook: at least 24 hours)",
        ),
        (
            AgtmuxSettings(thresholds=Thresholds(min_build_tests=455)),
            "[thresholds] min_build_tests = 455 (runbook: at least 456 tests)",
        ),
        (
            AgtmuxSettings(thresholds=Thresholds(escalate_persist_min=6)),
            "[thresholds] escalate_persist_min = 6 (runbook: at most 5 minutes)",
        ),
        (
            AgtmuxSettings(thresholds=Thresholds(breach_windows=4)),
            "[thresholds] breach_windows = 4 (runbook: at most 3 evaluations)",
        ),
    ],
)
def test_a_looser_value_is_named_with_both_numbers(settings: AgtmuxSettings, expected: str) -> None:
    assert loosened(settings) == [expected]


#: Settings that are no runbook number (the runbook names no value for them).
NOT_RUNBOOK_NUMBERS = {"backup_max_age_days", "restart_rate_tolerance_pct"}


def test_every_runbook_number_of_the_pack_is_a_floor() -> None:
    """Each window and threshold field declares which way is stricter."""
    for settings in (Windows(), Thresholds()):
        for name in type(settings).__dataclass_fields__:
            field = type(settings).__dataclass_fields__[name]
            floor = field.metadata.get("canarygate_floor")
            expected = (None,) if name in NOT_RUNBOOK_NUMBERS else (AT_LEAST, AT_MOST)
            assert floor in expected, name


def test_a_field_without_a_floor_is_not_judged() -> None:
    @dataclass(frozen=True)
    class Free:
        interval_s: float = bounded(1.0, maximum=60)

    assert loosened(Free(interval_s=50.0)) == []


def test_bounded_refuses_an_unknown_direction() -> None:
    with pytest.raises(ValueError, match="runbook must be"):
        bounded(1.0, maximum=2.0, runbook="about")


def _passing_outcome() -> RunOutcome:
    result = GateResult(
        gate="g", item="I-1", nodeid="gates/test_x.py::test_g", verdict=Verdict.PASS, message=""
    )
    return RunOutcome("alpha", [result], signed=True)


def test_a_loosened_config_makes_the_run_no_sign_off() -> None:
    outcome = _passing_outcome()
    assert outcome.promotable
    outcome = replace(
        outcome, loosened=["[windows] gradual_days = 0.0001 (runbook: at least 7 days)"]
    )
    assert not outcome.promotable
    assert outcome.not_promotable_because == [
        "the config loosens the runbook: [windows] gradual_days = 0.0001 (runbook: at least 7 days)"
    ]


def test_a_missing_required_bundle_makes_the_run_no_sign_off() -> None:
    outcome = replace(
        _passing_outcome(), chain_problems=["no signed alpha bundle to rely on: none found"]
    )
    assert outcome.not_promotable_because == ["no signed alpha bundle to rely on: none found"]
