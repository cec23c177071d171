"""Gate results as the controller collects them, and what they add up to for the run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from enum import Enum
from typing import Any

from pytest_canarygate.verdicts import Verdict

#: The key of the ``user_properties`` entry a gate report carries across xdist.
REPORT_PROPERTY = "canarygate"


class RunVerdict(str, Enum):
    """What a whole run adds up to; its value ends the bundle's folder name."""

    PASS = "pass"
    FAIL = "fail"
    PARTIAL = "partial"
    INCOMPLETE = "incomplete"
    EMPTY = "empty"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class PendingItem:
    """A runbook item of the phase that no gate judges yet, and why."""

    id: str
    reason: str

    def as_json(self) -> dict[str, str]:
        """JSON-ready form, for run.json and the signed statement."""
        return {"id": self.id, "reason": self.reason}


@dataclass
class GateResult:
    """The verdict of one gate instance (one test node)."""

    nodeid: str
    gate: str
    item: str
    verdict: Verdict
    message: str = ""
    param: str | None = None
    #: the ``[[targets]]`` entry this instance judged (None: a run without targets)
    target: str | None = None

    def as_json(self) -> dict[str, Any]:
        """JSON-ready form, for run.json and the signed statement."""
        found = {
            "nodeid": self.nodeid,
            "gate": self.gate,
            "item": self.item,
            "verdict": self.verdict.value,
            "message": self.message,
            "param": self.param,
        }
        if self.target is not None:
            found["target"] = self.target
        return found


@dataclass
class RunOutcome:
    """What the verdicts of a run add up to."""

    phase: str
    results: list[GateResult]
    partial_reasons: list[str] = field(default_factory=list)
    missing_gates: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    signed: bool = False
    ephemeral_key: bool = False
    simulated: bool = False
    seal_error: str | None = None
    #: runbook items of the phase that no gate judges yet
    pending_items: list[PendingItem] = field(default_factory=list)
    #: daemons whose socket was served by another process than the one they report
    relayed: list[str] = field(default_factory=list)
    #: runbook numbers the config sets looser than the runbook (``config.loosened``)
    loosened: list[str] = field(default_factory=list)
    #: the earlier bundles this run relies on (phase, bundle, digest), per the catalog's
    #: ``[runbook] requires``
    relies_on: list[dict[str, Any]] = field(default_factory=list)
    #: why the bundle the phase requires was not found (empty when found or not required)
    chain_problems: list[str] = field(default_factory=list)
    #: the rollback decision of a run of the catalog's decision phase
    #: (``decision.RollbackDecision``), else None
    decision: Any = None
    #: the ``[[targets]]`` judged, in config order (empty: one implicit target)
    targets: list[str] = field(default_factory=list)

    def for_target(self, target: str) -> RunOutcome:
        """The run as target ``target`` alone adds up: its gate instances, the run-wide
        conditions (signed, live, complete, ...) and the relays among its own daemons."""
        return replace(
            self,
            results=[r for r in self.results if r.target == target],
            relayed=[d for d in self.relayed if d.startswith(f"{target}/")],
            targets=[],
        )

    def target_verdicts(self) -> dict[str, dict[str, Any]]:
        """Per target: its verdict, whether it alone would be promotable, why not, counts."""
        verdicts = {}
        for target in self.targets:
            alone = self.for_target(target)
            verdicts[target] = {
                "verdict": alone.verdict.value,
                "promotable": alone.promotable,
                "not_promotable_because": alone.not_promotable_because,
                "counts": dict(alone.counts),
            }
        return verdicts

    def fleet_json(self) -> dict[str, Any] | None:
        """The fleet's verdict (the worst of its targets', as the run's own) and every
        target's, for run.json and the statement; None for a run without targets."""
        if not self.targets:
            return None
        return {
            "verdict": self.verdict.value,
            "promotable": self.promotable,
            "targets": self.target_verdicts(),
        }

    @property
    def counts(self) -> Counter[str]:
        """Number of gate instances per verdict."""
        return Counter(r.verdict.value for r in self.results)

    @property
    def blocking(self) -> list[GateResult]:
        """Gate instances whose verdict does not allow promotion."""
        return [r for r in self.results if not r.verdict.allows_promotion]

    @property
    def unjudged_targets(self) -> list[str]:
        """Targets not one gate instance judged (a fleet is judged whole or not at all)."""
        judged = {r.target for r in self.results}
        return [t for t in self.targets if t not in judged]

    @property
    def scope(self) -> str:
        """``complete`` when every gate of the phase ran unfiltered, else ``partial``."""
        return "partial" if self.partial_reasons or self.missing_gates else "complete"

    @property
    def verdict(self) -> RunVerdict:
        """The run's one-word verdict; it also ends the bundle's folder name."""
        if not self.results:
            return RunVerdict.EMPTY
        if self.incomplete or self.unjudged_targets:
            return RunVerdict.INCOMPLETE
        if self.blocking:
            return RunVerdict.FAIL
        if self.scope == "partial":
            return RunVerdict.PARTIAL
        return RunVerdict.PASS

    @property
    def not_promotable_because(self) -> list[str]:
        """Every reason the run is no sign-off (empty: it is one): its verdict first, each gate
        instance that did not pass, then what keeps even a run whose gates all passed from
        being one."""
        reasons = []
        verdict = self.verdict
        if verdict is RunVerdict.EMPTY:
            reasons.append("no gate ran")
        reasons += [f"no gate of target {t} ran" for t in self.unjudged_targets]
        for problem in self.incomplete:
            reasons.append(f"the bundle is incomplete ({problem})")
        if self.blocking:
            reasons.append(f"{len(self.blocking)} gate(s) did not pass")
            reasons += [
                f"gate {_instance(r)} {r.verdict.value}: {_first_line(r)}" for r in self.blocking
            ]
        if self.scope == "partial":
            why = ", ".join([*self.partial_reasons, *self.missing_gates])
            reasons.append(f"only part of the phase was judged ({why})")
        if self.pending_items:
            ids = ", ".join(p.id for p in self.pending_items)
            reasons.append(f"{len(self.pending_items)} runbook item(s) have no gate yet ({ids})")
        reasons += self.chain_problems
        if self.loosened:
            reasons.append(f"the config loosens the runbook: {'; '.join(self.loosened)}")
        if self.relayed:
            reasons.append(
                f"a relay answered for {', '.join(self.relayed)} (the socket's process is not "
                "the daemon)"
            )
        if self.seal_error:
            reasons.append(f"the bundle could not be sealed ({self.seal_error})")
        if self.simulated:
            reasons.append("it judged the simulator")
        if not self.signed:
            reasons.append("the bundle is not signed")
        elif self.ephemeral_key:
            reasons.append("the bundle is signed with an ephemeral key")
        return reasons

    @property
    def promotable(self) -> bool:
        """True only for a complete live phase, every gate PASS or WAIVED, signed by a real key."""
        return not self.not_promotable_because


#: How much of a blocking gate's message the reasons quote (the whole is in its result).
_REASON_MESSAGE_CHARS = 200


def _instance(result: GateResult) -> str:
    params = "/".join(p for p in (result.target, result.param) if p)
    return f"{result.gate}[{params}]" if params else result.gate


def _first_line(result: GateResult) -> str:
    line = result.message.strip().splitlines()[0] if result.message.strip() else "no message"
    if len(line) > _REASON_MESSAGE_CHARS:
        return line[: _REASON_MESSAGE_CHARS - 1] + "…"
    return line
