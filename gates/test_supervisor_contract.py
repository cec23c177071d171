"""Supervisor Contract Reference: the running v5 supervisor against the runbook's table.

Runbook: "Supervisor Contract Reference". Each row is one gate on ``ops.supervisor_status``,
judged at the entry of every phase that runs v5 (alpha, canary, gradual, cutover). The startup
order is judged from the supervisor's stage events; jitter, failure budget and hold-down from
its restart and hold-down events where the history holds some (what it did, not only what it
declares), else from the reported policy, and the message says which. Without restart events
the jitter row passes only when the declared ``RestartPolicy.jitter_pct`` matches and the status
says ``jitter_applied = true``; ``false`` fails it, and a status that does not expose
``jitter_applied`` leaves it INCONCLUSIVE (today's runtime declares the jitter and never applies
it, daemon facts 5.1).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence

from pytest_canarygate.agtmux.gate_api import Judgement
from pytest_canarygate.agtmux.gate_api import ObservedView
from pytest_canarygate.agtmux.gate_api import SupervisorEvent
from pytest_canarygate.agtmux.gate_api import SupervisorStatus
from pytest_canarygate.agtmux.gate_api import conclude
from pytest_canarygate.agtmux.gate_api import failure_budget_from_events
from pytest_canarygate.agtmux.gate_api import gate
from pytest_canarygate.agtmux.gate_api import hold_down_from_events
from pytest_canarygate.agtmux.gate_api import jitter_from_events
from pytest_canarygate.agtmux.gate_api import one_of
from pytest_canarygate.agtmux.gate_api import restart_policy_matches_contract
from pytest_canarygate.agtmux.gate_api import supervisor_history

FromEvents = Callable[..., Judgement]


def _status(canarygate_observed: ObservedView) -> SupervisorStatus:
    return one_of(canarygate_observed, "supervisor_status", SupervisorStatus)


def _policy_row(canarygate_observed: ObservedView, *names: str) -> None:
    __tracebackhide__ = True
    judged = restart_policy_matches_contract(_status(canarygate_observed).policy, only=names)
    conclude(canarygate_observed, "restart policy", judged)


def _from_events(canarygate_observed: ObservedView, name: str, judge: FromEvents) -> None:
    """``judge(status, events, covers_from_ms=...)`` on the status and the event history."""
    __tracebackhide__ = True
    events: Sequence[SupervisorEvent] | None
    events, covers_from_ms = supervisor_history(canarygate_observed)
    judged = judge(_status(canarygate_observed), events, covers_from_ms=covers_from_ms)
    conclude(canarygate_observed, name, judged)


@gate("contract.backoff-initial")
def test_backoff_initial_1000_ms(canarygate_observed: ObservedView) -> None:
    _policy_row(canarygate_observed, "initial_backoff_ms")


@gate("contract.backoff-multiplier")
def test_backoff_multiplier_2x(canarygate_observed: ObservedView) -> None:
    _policy_row(canarygate_observed, "multiplier")


@gate("contract.backoff-max")
def test_backoff_max_30000_ms(canarygate_observed: ObservedView) -> None:
    _policy_row(canarygate_observed, "max_backoff_ms")


@gate("contract.jitter")
def test_jitter_20_percent(canarygate_observed: ObservedView) -> None:
    _from_events(canarygate_observed, "jitter", jitter_from_events)


@gate("contract.failure-budget")
def test_failure_budget_5_in_10_min(canarygate_observed: ObservedView) -> None:
    _from_events(canarygate_observed, "failure budget", failure_budget_from_events)


@gate("contract.hold-down")
def test_hold_down_300000_ms(canarygate_observed: ObservedView) -> None:
    _from_events(canarygate_observed, "hold-down", hold_down_from_events)
