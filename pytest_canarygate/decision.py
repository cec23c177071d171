"""The rollback decision: what a run of the catalog's decision phase says about rolling back,
as data a pipeline can act on (run.json, the signed statement, the summary, the exit code).

The catalog names the deciding phase (``[runbook] decision_phase``) and its signal items
(``kind = "signal"``, each with the runbook's ``action``). Of one run of that phase:

- ROLLBACK ADVISED: a gate of a signal item FAILed (the signal fired). WAIVED never fires.
- CANNOT BE RULED OUT: nothing fired, but a signal gate is UNOBSERVABLE or INCONCLUSIVE, or a
  signal item was not checked (a gate of it has no result: deselected, never ran, pending), or
  the catalog has no signal item for the phase at all.
- NO ROLLBACK SIGNAL: every signal item checked, none fired, none unclear.

Beside it, the procedure: the phase's other gates (the rollback steps). "complete" when every
one of them ran and is PASS or WAIVED, "incomplete" when one did not pass or did not run,
"not judged" when none ran (a run of the signals only). A run narrowed to an opt-in stage (the
rollback rehearsal) decides nothing, and its gates are never due in a plain run.

Exit codes of a run of the decision phase: :data:`EXIT_NO_ROLLBACK_SIGNAL` (0) only when the
procedure is complete or not judged, else :data:`EXIT_PROCEDURE_INCOMPLETE` (1);
:data:`EXIT_ROLLBACK_ADVISED` (20); :data:`EXIT_CANNOT_BE_RULED_OUT` (21). 20 and 21 lie
outside pytest's own codes (0-5) and outside the shell's (126 and up: not executable, not
found, killed by a signal), so a pipeline can tell "roll back" and "cannot tell" from a failed
or broken run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pytest_canarygate.catalog import OPT_IN_STAGES
from pytest_canarygate.catalog import Catalog
from pytest_canarygate.results import GateResult
from pytest_canarygate.verdicts import Verdict

__all__ = [
    "EXIT_CANNOT_BE_RULED_OUT",
    "EXIT_NO_ROLLBACK_SIGNAL",
    "EXIT_PROCEDURE_INCOMPLETE",
    "EXIT_ROLLBACK_ADVISED",
    "PROCEDURE_COMPLETE",
    "PROCEDURE_INCOMPLETE",
    "PROCEDURE_NOT_JUDGED",
    "Decision",
    "RollbackDecision",
    "SignalState",
    "decide",
    "signal_items",
]

#: No signal fired, every signal item was checked, and the procedure is complete or not judged.
EXIT_NO_ROLLBACK_SIGNAL = 0
#: No signal fired, every signal item was checked, but a procedure gate did not pass or run.
EXIT_PROCEDURE_INCOMPLETE = 1
#: A signal fired: roll back (the signals' actions say how urgently).
EXIT_ROLLBACK_ADVISED = 20
#: No signal fired, but one could not be observed, was inconclusive or was not checked.
EXIT_CANNOT_BE_RULED_OUT = 21

PROCEDURE_COMPLETE = "complete"
PROCEDURE_INCOMPLETE = "incomplete"
PROCEDURE_NOT_JUDGED = "not judged"

_UNCLEAR = (Verdict.UNOBSERVABLE, Verdict.INCONCLUSIVE)


class Decision(str, Enum):
    """What a run of the decision phase says about rolling back."""

    ROLLBACK_ADVISED = "ROLLBACK ADVISED"
    CANNOT_BE_RULED_OUT = "CANNOT BE RULED OUT"
    NO_ROLLBACK_SIGNAL = "NO ROLLBACK SIGNAL"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class SignalState:
    """The verdict of one gate instance of a signal item."""

    item: str
    #: the gate id, with ``[param]`` for a gate run once per parameter (e.g. per session)
    gate: str
    verdict: str
    #: the item's action in the catalog (what to do when it fires)
    action: str
    message: str

    def as_json(self) -> dict[str, str]:
        """JSON-ready form."""
        return {
            "item": self.item,
            "gate": self.gate,
            "verdict": self.verdict,
            "action": self.action,
            "message": self.message,
        }


@dataclass(frozen=True)
class RollbackDecision:
    """The decision of one run of the decision phase, and what it rests on."""

    decision: Decision
    #: every signal gate instance that ran, in catalog order
    signals: tuple[SignalState, ...]
    #: signal items of the catalog (for the phase) a gate of which has no result in this run
    unchecked: tuple[str, ...]
    #: "complete" | "incomplete" | "not judged"
    procedure: str
    #: procedure gates not PASS or WAIVED, as "ITEM gate VERDICT" ("NOT RUN" when no result)
    procedure_blocking: tuple[str, ...]
    #: the distinct actions of the signals that fired, in catalog order
    actions: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        """The exit code of the run: 20, 21, or 0/1 by the procedure (module docstring)."""
        if self.decision is Decision.ROLLBACK_ADVISED:
            return EXIT_ROLLBACK_ADVISED
        if self.decision is Decision.CANNOT_BE_RULED_OUT:
            return EXIT_CANNOT_BE_RULED_OUT
        if self.procedure == PROCEDURE_INCOMPLETE:
            return EXIT_PROCEDURE_INCOMPLETE
        return EXIT_NO_ROLLBACK_SIGNAL

    def _items(self) -> list[str]:
        """Every signal item of the decision, in catalog order."""
        seen = dict.fromkeys(s.item for s in self.signals)
        order = list(seen)
        for item in self.unchecked:
            if item not in seen:
                order.append(item)
        return order

    def _fired(self) -> list[str]:
        return list(dict.fromkeys(s.item for s in self.signals if s.verdict == Verdict.FAIL.value))

    def _checked(self) -> list[str]:
        """Items checked for real: every gate ran, every instance PASS or FAIL."""
        return [
            item
            for item in self._items()
            if item not in self.unchecked
            and all(
                s.verdict in (Verdict.PASS.value, Verdict.FAIL.value)
                for s in self.signals
                if s.item == item
            )
        ]

    def headline(self) -> str:
        """One line for the summary. It counts a signal as checked only when every gate of it
        ran and was PASS or FAIL, and names the others."""
        total = len(self._items())
        checked = len(self._checked())
        unclear = list(
            dict.fromkeys(
                f"{s.item} {s.verdict}"
                for s in self.signals
                if s.verdict in (Verdict.UNOBSERVABLE.value, Verdict.INCONCLUSIVE.value)
            )
        )
        waived = list(
            dict.fromkeys(s.item for s in self.signals if s.verdict == Verdict.WAIVED.value)
        )
        if self.decision is Decision.ROLLBACK_ADVISED:
            fired = []
            for item in self._fired():
                first = next(
                    s for s in self.signals if s.item == item and s.verdict == Verdict.FAIL.value
                )
                fired.append(f"{item} {first.gate} ({first.action})")
            parts = [f"{self.decision}: {'; '.join(fired)}"]
        elif total == 0:
            parts = [f"{self.decision}: the catalog declares no signal for this phase"]
        else:
            parts = [f"{self.decision}: {checked} of {total} signals checked"]
            if self.decision is Decision.NO_ROLLBACK_SIGNAL:
                parts = [f"{self.decision} among {checked} of {total} signals checked"]
            if unclear:
                parts.append(", ".join(unclear))
        if self.unchecked:
            parts.append(f"not checked: {', '.join(self.unchecked)}")
        if waived:
            parts.append(f"waived: {', '.join(waived)}")
        if self.procedure == PROCEDURE_COMPLETE:
            parts.append("procedure complete")
        elif self.procedure == PROCEDURE_INCOMPLETE:
            items = dict.fromkeys(b.split(" ", 1)[0] for b in self.procedure_blocking)
            parts.append(f"procedure incomplete: {', '.join(items)}")
        return "; ".join(parts)

    def as_json(self) -> dict[str, Any]:
        """JSON-ready form, for run.json and the signed statement."""
        return {
            "decision": self.decision.value,
            "exit_code": self.exit_code,
            "headline": self.headline(),
            "actions": list(self.actions),
            "signals": [s.as_json() for s in self.signals],
            "unchecked": list(self.unchecked),
            "procedure": self.procedure,
            "procedure_blocking": list(self.procedure_blocking),
        }


def signal_items(catalog: Catalog, phase: str) -> list[str]:
    """The signal items judged in ``phase``: of kind "signal", and of that phase or with a gate
    that runs in it (a whole-phase run, :meth:`Catalog.gates_for`); in catalog order."""
    judged = {g.item.id for g in catalog.gates_for(phase)}
    return [
        item.id
        for item in catalog.items.values()
        if item.kind == "signal" and (item.phase == phase or item.id in judged)
    ]


def _label(result: GateResult) -> str:
    return f"{result.gate}[{result.param}]" if result.param else result.gate


def decide(
    catalog: Catalog, phase: str, results: Sequence[GateResult], *, stage: str | None = None
) -> RollbackDecision | None:
    """The rollback decision of a run of ``phase`` with these ``results``; None when ``phase``
    is not the catalog's decision phase, or the run was narrowed to an opt-in stage (the
    rollback rehearsal: it judges the rollback's preconditions, never whether to roll back).
    Any other narrowing (a stage, -k, a deselected gate) leaves signals unchecked, and
    procedure gates NOT RUN, as they are."""
    if catalog.decision_phase is None or phase != catalog.decision_phase:
        return None
    if stage is not None and stage in OPT_IN_STAGES:
        return None
    due = catalog.gates_for(phase)
    signal_ids = signal_items(catalog, phase)
    gate_order = {gate_id: index for index, gate_id in enumerate(catalog.gates)}
    item_order = {item_id: index for index, item_id in enumerate(catalog.items)}

    def order(result: GateResult) -> tuple[int, int, str, str]:
        return (
            item_order.get(result.item, len(item_order)),
            gate_order.get(result.gate, len(gate_order)),
            result.gate,
            result.param or "",
        )

    ran = {r.gate for r in results}
    signal_results = sorted((r for r in results if r.item in signal_ids), key=order)
    signals = tuple(
        SignalState(
            item=r.item,
            gate=_label(r),
            verdict=r.verdict.value,
            action=catalog.items[r.item].action or "",
            message=r.message,
        )
        for r in signal_results
    )
    unchecked = tuple(
        item_id
        for item_id in signal_ids
        if not any(r.item == item_id for r in signal_results)
        or any(g.id not in ran for g in due if g.item.id == item_id)
    )
    fired = [r for r in signal_results if r.verdict is Verdict.FAIL]
    if fired:
        decision = Decision.ROLLBACK_ADVISED
    elif not signal_ids or unchecked or any(r.verdict in _UNCLEAR for r in signal_results):
        decision = Decision.CANNOT_BE_RULED_OUT
    else:
        decision = Decision.NO_ROLLBACK_SIGNAL
    actions = tuple(dict.fromkeys(catalog.items[r.item].action or "" for r in fired))

    procedure_results = sorted((r for r in results if r.item not in signal_ids), key=order)
    blocking = [
        f"{r.item} {_label(r)} {r.verdict.value}"
        for r in procedure_results
        if not r.verdict.allows_promotion
    ]
    blocking += [
        f"{g.item.id} {g.id} NOT RUN"
        for g in due
        if g.item.id not in signal_ids and g.id not in ran
    ]
    if not procedure_results:
        procedure = PROCEDURE_NOT_JUDGED
        blocking = []
    elif blocking:
        procedure = PROCEDURE_INCOMPLETE
    else:
        procedure = PROCEDURE_COMPLETE
    return RollbackDecision(
        decision=decision,
        signals=signals,
        unchecked=unchecked,
        procedure=procedure,
        procedure_blocking=tuple(blocking),
        actions=actions,
    )
