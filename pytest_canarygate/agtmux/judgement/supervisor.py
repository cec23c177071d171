"""The supervisor against the runbook's Supervisor Contract Reference: its restart policy and
jitter, the startup order Sources -> Gateway -> Daemon -> Ui, and whether it is Ready with every
stage's DependencyGate all ready; where its event history holds them, what it did (its stage
starts, restart delays and hold-downs) rather than what it declares.
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
from pytest_canarygate.agtmux.records import COMPONENT_STAGES
from pytest_canarygate.agtmux.records import STAGE_EVENT_KINDS
from pytest_canarygate.agtmux.records import RestartPolicy
from pytest_canarygate.agtmux.records import SupervisorEvent
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

RUNBOOK_STARTUP_ORDER = COMPONENT_STAGES
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
    startup: Judgement | None = None,
) -> Judgement:
    """Phase 1 step 3: the supervisor is Ready, starts the stages in the contract's order, and
    every stage's DependencyGate showed ``all_ready()`` (a stage without a gate is a problem).
    Given ``now``, a status older than ``max_lag`` shows no current state: INCONCLUSIVE.
    ``startup`` is what its stage events show (:func:`startup_sequence`): each stage started
    only once the previous was ready; a startup not shown caps the verdict there."""
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
    if startup is not None and startup.verdict is Verdict.FAIL:
        problems.append(startup.message)
    if problems:
        return _judgement(Verdict.FAIL, "; ".join(problems), **numbers)
    if startup is not None and not startup.passed:
        return _judgement(startup.verdict, startup.message, **numbers)
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
    if startup is not None:
        message += f"; {startup.message}"
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


# --- judged from the supervisor's events ----------------------------------------------------


def _at(ms: int) -> str:
    return format_time(ms_to_datetime(ms))


def _history_span(covers_from_ms: int | None) -> str:
    return f"since {_at(covers_from_ms)}" if covers_from_ms is not None else "retained"


def startup_sequence(
    events: Sequence[SupervisorEvent],
    expected: Sequence[str] = RUNBOOK_STARTUP_ORDER,
    *,
    covers_from_ms: int | None = None,
) -> Judgement:
    """The supervisor started its stages in ``expected`` order, each only after the previous
    one was ready, as its ``stage_started`` / ``stage_ready`` events show (not the order it
    declares). Every startup in the history (from a start of the first stage on) is judged:
    a stage started out of order, before the previous stage was ready, or ready before it
    started FAILs; no startup in the history, or a latest startup that has not finished
    (every stage ready), is INCONCLUSIVE."""
    want = " -> ".join(expected)
    stage_events = sorted((e for e in events if e.kind in STAGE_EVENT_KINDS), key=lambda e: e.at_ms)
    problems: list[str] = []
    startups: list[tuple[int, dict[str, int]]] = []  # (began at, stage -> ready at)
    started: dict[str, int] = {}
    ready: dict[str, int] = {}
    for event in stage_events:
        stage = event.stage or "?"
        if event.kind == "stage_started" and stage == expected[0]:
            started, ready = {stage: event.at_ms}, {}
            startups.append((event.at_ms, ready))
            continue
        if not startups:
            continue  # before the first startup the history holds: its beginning is not shown
        if event.kind == "stage_ready":
            if stage not in started:
                problems.append(f"{stage} ready at {_at(event.at_ms)} before it started")
            ready.setdefault(stage, event.at_ms)
            continue
        position = expected.index(stage) if stage in expected else -1
        if position != len(started) or stage in started:
            shown = " -> ".join([*started, stage])
            problems.append(f"{stage} started at {_at(event.at_ms)} out of order ({shown})")
            started[stage] = event.at_ms
            continue
        previous = expected[position - 1]
        if previous not in ready:
            problems.append(f"{stage} started at {_at(event.at_ms)} before {previous} was ready")
        started[stage] = event.at_ms
    numbers = {
        "stage_events": len(stage_events),
        "startups": len(startups),
        "covers_from_ms": covers_from_ms,
    }
    if problems:
        return _judgement(
            Verdict.FAIL,
            f"v5 supervisor startup events break the order {want}: " + "; ".join(problems),
            stage_events,
            **numbers,
        )
    if not startups:
        return _judgement(
            Verdict.INCONCLUSIVE,
            f"no startup ({expected[0]} stage_started) in the v5 supervisor events "
            f"{_history_span(covers_from_ms)}: the order {want} is not shown by what the "
            "supervisor did (the declared startup_order is not evidence)",
            **numbers,
        )
    began, latest = startups[-1]
    missing = [stage for stage in expected if stage not in latest]
    if missing:
        return _judgement(
            Verdict.INCONCLUSIVE,
            f"the latest v5 supervisor startup, begun {_at(began)}, has not finished: "
            f"{', '.join(missing)} not ready",
            stage_events,
            **numbers,
        )
    return _judgement(
        Verdict.PASS,
        f"v5 supervisor startup{'s' if len(startups) > 1 else ''} in order {want}, each stage "
        f"started after the previous was ready ({len(startups)} in the events "
        f"{_history_span(covers_from_ms)}, the latest begun {_at(began)})",
        **numbers,
    )


def scheduled_backoff_ms(attempt: int, contract: RestartPolicy = RUNBOOK_RESTART_POLICY) -> float:
    """The contract's restart delay before jitter: ``initial * multiplier^attempt`` capped at
    ``max_backoff_ms``."""
    delay = float(contract.initial_backoff_ms)
    for _ in range(attempt):
        if delay >= contract.max_backoff_ms:
            break
        delay *= contract.multiplier
    return min(delay, float(contract.max_backoff_ms))


def _policy_fallback(judged: Judgement, why: str) -> Judgement:
    return Judgement(
        verdict=judged.verdict,
        message=f"{why}: judged on the reported policy: {judged.message}",
        numbers=judged.numbers,
        findings=judged.findings,
    )


def jitter_from_events(
    status: SupervisorStatus,
    events: Sequence[SupervisorEvent] | None,
    contract: RestartPolicy = RUNBOOK_RESTART_POLICY,
    *,
    covers_from_ms: int | None = None,
) -> Judgement:
    """SC-5 "±20% applied by runtime" from the ``restart`` events' ``after_ms``: each within
    ``jitter_pct`` of the contract's schedule for its attempt, and not all exactly on it (at
    least two restarts exactly on schedule: no jitter applied; one: not shown). A wrong
    declared jitter or ``jitter_applied = false`` FAILs as well. Without restart events (or
    without an event history, ``events`` None) it rests on :func:`jitter_matches_contract`."""
    restarts = [e for e in events or () if e.kind == "restart" and e.after_ms is not None]
    if not restarts:
        why = (
            "no supervisor event history"
            if events is None
            else f"no restart event in the supervisor events {_history_span(covers_from_ms)}"
        )
        return _policy_fallback(jitter_matches_contract(status, contract), why)
    declared = restart_policy_matches_contract(status.policy, contract, only=("jitter_pct",))
    pct = contract.jitter_pct
    outside, deviations = [], []
    for event in restarts:
        nominal = scheduled_backoff_ms(event.attempt or 0, contract)
        deviation = (event.after_ms or 0) / nominal - 1 if nominal else math.inf
        deviations.append(deviation)
        if abs(deviation) > pct + 1e-9:
            outside.append(
                f"attempt {event.attempt} at {_at(event.at_ms)} after {event.after_ms} ms "
                f"(schedule {nominal:g} ms, allowed "
                f"{nominal * (1 - pct):g}..{nominal * (1 + pct):g})"
            )
    numbers = {
        "restarts": len(restarts),
        "outside": len(outside),
        "min_deviation": min(deviations),
        "max_deviation": max(deviations),
        "jitter_applied": status.jitter_applied,
    }
    problems = [] if declared.passed else [declared.message]
    if outside:
        problems.append(
            f"{len(outside)} of {len(restarts)} v5 supervisor restart delays "
            f"{_history_span(covers_from_ms)} outside ±{pct * 100:g}% of the backoff schedule: "
            + "; ".join(outside[:5])
        )
    elif len(restarts) > 1 and all(d == 0 for d in deviations):
        problems.append(
            f"all {len(restarts)} v5 supervisor restart delays {_history_span(covers_from_ms)} "
            "are exactly on the backoff schedule: the runtime applies no jitter"
        )
    if status.jitter_applied is False:
        problems.append("the supervisor reports jitter_applied = false")
    if problems:
        return _judgement(Verdict.FAIL, "; ".join(problems), restarts, **numbers)
    spread = f"{min(deviations) * 100:+.0f}%..{max(deviations) * 100:+.0f}%"
    if all(d == 0 for d in deviations):
        return _judgement(
            Verdict.INCONCLUSIVE,
            f"the one restart delay {_history_span(covers_from_ms)} is exactly on the backoff "
            "schedule: the jitter is not shown",
            **numbers,
        )
    return _judgement(
        Verdict.PASS,
        f"{len(restarts)} restart delays {_history_span(covers_from_ms)} within "
        f"±{pct * 100:g}% of the backoff schedule ({contract.initial_backoff_ms} ms x "
        f"{contract.multiplier:g}^attempt, max {contract.max_backoff_ms} ms), jittered {spread}",
        **numbers,
    )


def _of(event: SupervisorEvent) -> str:
    return f" of {event.process}" if event.process else ""


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def failure_budget_from_events(
    status: SupervisorStatus,
    events: Sequence[SupervisorEvent] | None,
    contract: RestartPolicy = RUNBOOK_RESTART_POLICY,
    *,
    covers_from_ms: int | None = None,
) -> Judgement:
    """SC-6 "5 failures / 10 min" from the events, replaying daemon facts 5.3: every
    ``hold_down`` comes at the ``failure_budget``-th failure within ``budget_window_ms`` (a
    success clears the count, a hold-down clears it once it ended), and no ``restart`` follows
    that many. A hold-down whose window reaches before the history's start with fewer failures
    is not judged. The declared policy must match too; without hold-downs in the events the
    verdict rests on the reported policy, plus any restart past the budget."""
    declared = restart_policy_matches_contract(
        status.policy, contract, only=("failure_budget", "budget_window_ms")
    )
    budget, window = contract.failure_budget, contract.budget_window_ms
    span = f"{format_duration(timedelta(milliseconds=window))}"
    problems: list[str] = []
    failures: list[int] = []
    held_until: int | None = None
    count = 0
    holds = judged_holds = 0
    most = 0
    for event in sorted(events or (), key=lambda e: e.at_ms):
        if event.kind == "success":
            failures, held_until, count = [], None, 0
        elif event.kind == "failure":
            if held_until is not None:
                if event.at_ms < held_until:
                    continue  # recorded nothing while held down
                failures, held_until = [], None
            failures = [t for t in failures if t >= event.at_ms - window] + [event.at_ms]
            count = len(failures)
            most = max(most, count)
        elif event.kind == "hold_down":
            holds += 1
            incomplete = covers_from_ms is None or event.at_ms - window < covers_from_ms
            if count != budget and not (incomplete and count < budget):
                problems.append(
                    f"v5 supervisor hold-down{_of(event)} at {_at(event.at_ms)} entered at the "
                    f"{_ordinal(count)} failure within {span} (contract: the {_ordinal(budget)})"
                )
            if count == budget or not incomplete:
                judged_holds += 1
            held_until = event.until_ms if event.until_ms is not None else event.at_ms
        elif event.kind == "restart" and held_until is None and count >= budget:
            problems.append(
                f"the {_ordinal(count)} failure{_of(event)} within {span} at "
                f"{_at(event.at_ms)} was followed by a restart, not a hold-down (contract: "
                f"hold-down at the {_ordinal(budget)})"
            )
    numbers = {
        **declared.numbers,
        "hold_downs": holds,
        "hold_downs_judged": judged_holds,
        "most_failures_in_window": most,
    }
    if not declared.passed:
        problems.insert(0, declared.message)
    if problems:
        return _judgement(Verdict.FAIL, "; ".join(problems), **numbers)
    if events is None or not judged_holds:
        why = (
            "no supervisor event history"
            if events is None
            else f"no hold-down with its failures in the supervisor events "
            f"{_history_span(covers_from_ms)} (at most {most} failure{'s' * (most != 1)} "
            f"within {span})"
        )
        return _policy_fallback(declared, why)
    return _judgement(
        Verdict.PASS,
        f"{judged_holds} hold-down{'s' if judged_holds > 1 else ''} in the supervisor events "
        f"{_history_span(covers_from_ms)}, each entered at the {_ordinal(budget)} failure within "
        f"{span}; no restart past the budget",
        **numbers,
    )


def hold_down_from_events(
    status: SupervisorStatus,
    events: Sequence[SupervisorEvent] | None,
    contract: RestartPolicy = RUNBOOK_RESTART_POLICY,
    *,
    covers_from_ms: int | None = None,
) -> Judgement:
    """SC-7 "Hold-down 300,000 ms" from the events: every ``hold_down`` lasts ``until_ms -
    at_ms`` = the contract's ``holddown_ms``, and the declared policy matches. Without
    hold-downs in the events it rests on the reported policy."""
    declared = restart_policy_matches_contract(status.policy, contract, only=("holddown_ms",))
    holds = [e for e in events or () if e.kind == "hold_down" and e.until_ms is not None]
    wrong = [
        f"v5 supervisor hold-down{_of(e)} at {_at(e.at_ms)} lasted {(e.until_ms or 0) - e.at_ms} "
        "ms (until_ms - at_ms)"
        for e in holds
        if (e.until_ms or 0) - e.at_ms != contract.holddown_ms
    ]
    numbers = {**declared.numbers, "hold_downs": len(holds), "wrong": len(wrong)}
    problems = [] if declared.passed else [declared.message]
    if wrong:
        problems.append(f"{'; '.join(wrong[:5])}, contract {contract.holddown_ms} ms")
    if problems:
        return _judgement(Verdict.FAIL, "; ".join(problems), holds, **numbers)
    if not holds:
        why = (
            "no supervisor event history"
            if events is None
            else f"no hold-down in the supervisor events {_history_span(covers_from_ms)}"
        )
        return _policy_fallback(declared, why)
    return _judgement(
        Verdict.PASS,
        f"{len(holds)} hold-down{'s' if len(holds) > 1 else ''} in the supervisor events "
        f"{_history_span(covers_from_ms)}, each lasting {contract.holddown_ms} ms",
        **numbers,
    )
