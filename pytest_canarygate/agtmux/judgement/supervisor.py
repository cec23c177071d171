"""The supervisor against the runbook's Supervisor Contract Reference: its restart policy and
jitter, the startup order Sources -> Gateway -> Daemon -> Ui, and whether it is Ready with every
stage's DependencyGate all ready.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from datetime import timedelta

from pytest_canarygate.agtmux.judgement.core import Judgement
from pytest_canarygate.agtmux.judgement.core import _aware
from pytest_canarygate.agtmux.judgement.core import _judgement
from pytest_canarygate.agtmux.judgement.core import format_duration
from pytest_canarygate.agtmux.judgement.core import format_time
from pytest_canarygate.agtmux.records import RestartPolicy
from pytest_canarygate.agtmux.records import SupervisorStatus
from pytest_canarygate.agtmux.records import ms_to_datetime
from pytest_canarygate.verdicts import Verdict

RUNBOOK_RESTART_POLICY = RestartPolicy(
    initial_backoff_ms=1_000,
    multiplier=2.0,
    max_backoff_ms=30_000,
    jitter_pct=0.2,
    failure_budget=5,
    budget_window_ms=600_000,
    holddown_ms=300_000,
)
"""The runbook's Supervisor Contract Reference table (= ``RestartPolicy::default()``)."""

RUNBOOK_STARTUP_ORDER = ("Sources", "Gateway", "Daemon", "Ui")
"""``startup_order()``: Sources -> Gateway -> Daemon -> Ui (serde names)."""


def restart_policy_matches_contract(
    policy: RestartPolicy,
    contract: RestartPolicy = RUNBOOK_RESTART_POLICY,
    *,
    only: Collection[str] | None = None,
) -> Judgement:
    """Every ``RestartPolicy`` field (or the fields named in ``only``) equals the runbook's
    Supervisor Contract Reference."""
    names = [f.name for f in fields(RestartPolicy)]
    if only is not None:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ValueError(f"not RestartPolicy fields: {', '.join(unknown)}")
        names = [n for n in names if n in only]
    mismatches = []
    numbers: dict[str, object] = {}
    for name in names:
        got, want = getattr(policy, name), getattr(contract, name)
        numbers[name] = got
        if not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12):
            mismatches.append(f"{name} {got} (contract {want})")
    if mismatches:
        return _judgement(
            Verdict.FAIL,
            "restart policy differs from the contract: " + ", ".join(mismatches),
            **numbers,
        )
    if only is None:
        return _judgement(Verdict.PASS, "restart policy matches the contract", **numbers)
    shown = ", ".join(f"{name} {numbers[name]}" for name in names)
    return _judgement(Verdict.PASS, f"restart policy {shown} matches the contract", **numbers)


def jitter_matches_contract(
    status: SupervisorStatus, contract: RestartPolicy = RUNBOOK_RESTART_POLICY
) -> Judgement:
    """The contract row "Jitter: ±20% applied by runtime": the declared jitter equals the
    contract's AND the status says the runtime applies it (``jitter_applied = true``). A wrong
    declared value or ``jitter_applied = false`` FAILs; ``jitter_applied`` absent is
    INCONCLUSIVE: the declared value alone does not show it is applied (today's runtime never
    applies it, daemon facts 5.1)."""
    declared = restart_policy_matches_contract(status.policy, contract, only=("jitter_pct",))
    numbers = {**declared.numbers, "jitter_applied": status.jitter_applied}
    if not declared.passed:
        return _judgement(Verdict.FAIL, declared.message, **numbers)
    pct = f"±{status.policy.jitter_pct * 100:g}%"
    if status.jitter_applied is False:
        message = (
            f"declared jitter {pct} matches the contract, but the supervisor reports "
            "jitter_applied = false: the runtime does not apply it"
        )
        return _judgement(Verdict.FAIL, message, **numbers)
    if status.jitter_applied:
        message = f"jitter {pct} declared and applied by the runtime (jitter_applied = true)"
        return _judgement(Verdict.PASS, message, **numbers)
    message = (
        f"jitter declared {pct} (jitter_pct {status.policy.jitter_pct}); application by the "
        "runtime is not observable: ops.supervisor_status does not expose jitter_applied"
    )
    return _judgement(Verdict.INCONCLUSIVE, message, **numbers)


def supervisor_ready(
    status: SupervisorStatus,
    expected_order: Sequence[str] = RUNBOOK_STARTUP_ORDER,
    *,
    now: datetime | None = None,
    max_lag: timedelta = timedelta(minutes=5),
) -> Judgement:
    """Phase 1 step 3: the supervisor is Ready, starts the stages in the contract's order, and
    every stage's DependencyGate showed ``all_ready()`` (a stage without a gate is a problem).
    Given ``now``, a status older than ``max_lag`` shows no current state: INCONCLUSIVE."""
    problems = []
    state = status.state
    if state.name != "Ready":
        detail = {
            "Restarting": f" (attempt {state.attempt}, next restart at "
            f"{format_time(ms_to_datetime(state.next_restart_ms or 0))})",
            "HoldDown": f" until {format_time(ms_to_datetime(state.until_ms or 0))}",
        }.get(state.name, "")
        problems.append(f"supervisor state {state.name}{detail}, not Ready")
    order = startup_order_matches(status.startup_order, expected_order)
    if not order.passed:
        problems.append(order.message)
    gates = {g.stage: g for g in status.dependency_gates}
    for stage in expected_order:
        gate = gates.get(stage)
        if gate is None:
            problems.append(f"no DependencyGate reported for stage {stage}")
        elif not gate.all_ready:
            problems.append(
                f"{stage} DependencyGate not all_ready: unready {', '.join(gate.unready)}"
            )
    numbers = {
        "state": state.name,
        "startup_order": list(status.startup_order),
        "all_ready": {g.stage: g.all_ready for g in status.dependency_gates},
    }
    if problems:
        return _judgement(Verdict.FAIL, "; ".join(problems), **numbers)
    as_of = ms_to_datetime(status.as_of_ms)
    if now is not None and as_of < _aware(now, "now") - max_lag:
        message = (
            f"supervisor Ready as of {format_time(as_of)}, {format_duration(now - as_of)} before "
            f"now (allowed {format_duration(max_lag)}): its current state is not shown"
        )
        return _judgement(Verdict.INCONCLUSIVE, message, **numbers)
    message = (
        f"supervisor Ready, startup order {' -> '.join(status.startup_order)}, every stage's "
        "DependencyGate all_ready"
    )
    return _judgement(Verdict.PASS, message, **numbers)


def startup_order_matches(
    order: Sequence[str], expected: Sequence[str] = RUNBOOK_STARTUP_ORDER
) -> Judgement:
    """The startup order is exactly Sources -> Gateway -> Daemon -> Ui."""
    got, want = " -> ".join(order), " -> ".join(expected)
    if tuple(order) != tuple(expected):
        return _judgement(
            Verdict.FAIL, f"startup order is {got or '(empty)'}, contract is {want}", order=got
        )
    return _judgement(Verdict.PASS, f"startup order {got} matches the contract", order=got)
