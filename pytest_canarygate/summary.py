"""The end-of-run summary: one screen a tired operator can act on."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from pytest_canarygate.decision import Decision
from pytest_canarygate.decision import RollbackDecision
from pytest_canarygate.results import GateResult
from pytest_canarygate.results import RunOutcome
from pytest_canarygate.verdicts import Verdict

MAX_BLOCKING_LINES = 15
MAX_CAUSE_LINES = 5
_RED = {"red": True, "bold": True}
VERDICT_ORDER = [v.value for v in Verdict]

Line = tuple[str, dict[str, bool]]


def _first_line(text: str, width: int) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def summary_lines(
    outcome: RunOutcome,
    *,
    migration_id: str,
    target: dict[str, Any],
    observed_at: str | None,
    bundle: str | None,
    signer_keyid: str | None = None,
    observation_problems: Sequence[str] = (),
    peers: Sequence[Mapping[str, Any]] = (),
    decision: RollbackDecision | None = None,
    width: int = 100,
) -> list[Line]:
    """The summary as (text, markup) lines; markup is terminal colour flags."""
    simulated = target.get("kind") == "simulated"
    where = f"SIMULATED (scenario {target.get('scenario')})" if simulated else "LIVE"
    lines: list[Line] = [
        (f"phase {outcome.phase} | migration {migration_id} | target {where}", {"bold": True}),
    ]
    if observed_at:
        lines.append((f"observed at {observed_at}", {}))
    for peer in peers:
        if peer.get("relayed"):
            served = ", ".join(str(pid) for pid in peer["peer_pids"])
            lines.append(
                (
                    f"  RELAYED  {peer['daemon']}: pid {served} serves {peer['endpoint']}, but "
                    f"the daemon reports pid {peer['reported_pid']}: a relay or proxy answered",
                    {"red": True},
                )
            )
    counts = outcome.counts
    tally = "  ".join(f"{v} {counts[v]}" for v in VERDICT_ORDER if counts[v])
    scope = outcome.scope
    lines.append((f"gates: {len(outcome.results)} run ({scope} phase)  {tally}", {}))
    lines += _target_lines(outcome)
    for reason in outcome.partial_reasons:
        lines.append((f"  partial selection: {reason}", {"yellow": True}))
    if outcome.missing_gates:
        missing = ", ".join(outcome.missing_gates)
        lines.append((f"  gates of the phase that did not run: {missing}", {"yellow": True}))

    if outcome.pending_items:
        ids = ", ".join(p.id for p in outcome.pending_items)
        lines.append((f"  not gated yet (block promotion): {ids}", {"yellow": True}))
    for problem in outcome.incomplete[:MAX_BLOCKING_LINES]:
        lines.append((f"  INCOMPLETE   {problem}", {"red": True}))
    if len(outcome.incomplete) > MAX_BLOCKING_LINES:
        more = len(outcome.incomplete) - MAX_BLOCKING_LINES
        lines.append((f"  ... and {more} more incomplete (run.json lists them all)", {"red": True}))

    blocking = outcome.blocking
    if blocking and observation_problems:
        lines.append(
            (
                "could not observe (the cause of the UNOBSERVABLE gates below):",
                {"red": True, "bold": True},
            )
        )
        for problem in observation_problems[:MAX_CAUSE_LINES]:
            lines.append(("  " + _first_line(problem, width - 2), {"red": True}))
        if len(observation_problems) > MAX_CAUSE_LINES:
            more = len(observation_problems) - MAX_CAUSE_LINES
            lines.append(
                (f"  ... and {more} more (see observation/observation.json)", {"red": True})
            )
    if blocking:
        heading = "not passing:" if decision is not None else "blocking promotion:"
        lines.append((heading, {"red": True, "bold": True}))
        for result in sorted(blocking, key=_catalog_order(outcome))[:MAX_BLOCKING_LINES]:
            params = "/".join(p for p in (result.target, result.param) if p)
            label = f"{result.gate}[{params}]" if params else result.gate
            head = f"  {result.verdict.value:<12} {result.item:<7} {label}  "
            lines.append(
                (head + _first_line(result.message, max(20, width - len(head))), {"red": True})
            )
        if len(blocking) > MAX_BLOCKING_LINES:
            lines.append((f"  ... and {len(blocking) - MAX_BLOCKING_LINES} more", {"red": True}))

    if decision is not None:
        lines += _decision_lines(decision)
    else:
        lines.append(_verdict_line(outcome))
    if bundle:
        lines.append((f"evidence: {bundle}", {}))
    if outcome.seal_error:
        lines.append((f"BUNDLE NOT SEALED: {outcome.seal_error}", _RED))
    elif not outcome.signed:
        lines.append(
            (
                "NOT SIGNED - NOT PROMOTABLE: pass --canarygate-key=PATH or set "
                "CANARYGATE_SIGNING_KEY=PATH (create one with: canarygate keygen PATH)",
                {"red": True, "bold": True},
            )
        )
    elif outcome.ephemeral_key:
        lines.append(
            (
                f"signed with an ephemeral key {(signer_keyid or '')[:16]}: "
                "demo only, never sign-off",
                {"yellow": True},
            )
        )
    else:
        lines.append((f"signed by key {signer_keyid}", {}))
    if simulated:
        lines.append(
            ("simulated run: never sign-off for a real migration", {"yellow": True, "bold": True})
        )
    return lines


#: Targets listed one per line, at most (the rest are counted: the summary fits one screen).
MAX_TARGET_LINES = 8


def _target_lines(outcome: RunOutcome) -> list[Line]:
    """Per target of a ``[[targets]]`` run: its verdict and counts, failing targets first."""
    if not outcome.targets:
        return []
    verdicts = outcome.target_verdicts()
    ranked = sorted(verdicts.items(), key=lambda kv: (kv[1]["verdict"] == "pass", kv[0]))
    passing = sum(1 for v in verdicts.values() if v["verdict"] == "pass")
    lines: list[Line] = [
        (f"targets: {len(verdicts)}  ({passing} pass, {len(verdicts) - passing} not)", {})
    ]
    for name, found in ranked[:MAX_TARGET_LINES]:
        counts = found["counts"]
        tally = "  ".join(f"{v} {counts[v]}" for v in VERDICT_ORDER if counts.get(v))
        good = found["verdict"] == "pass"
        lines.append(
            (
                f"  target {name:<20} {found['verdict'].upper():<10} {tally}",
                {"green": True} if good else {"red": True},
            )
        )
    if len(ranked) > MAX_TARGET_LINES:
        rest = ranked[MAX_TARGET_LINES:]
        failing = sum(1 for _, v in rest if v["verdict"] != "pass")
        lines.append((f"  ... and {len(rest)} more targets ({failing} not passing)", {}))
    return lines


def _catalog_order(outcome: RunOutcome) -> Callable[[GateResult], tuple[int, str, str]]:
    """Sort key: the order gates first appear in the run's results sorted by nodeid, which
    follows the gate modules; stable whatever order xdist workers reported in."""
    first_seen: dict[str, int] = {}
    for result in sorted(outcome.results, key=lambda r: r.nodeid):
        first_seen.setdefault(result.gate, len(first_seen))
    return lambda r: (first_seen.get(r.gate, 0), r.target or "", r.param or "")


def _verdict_line(outcome: RunOutcome) -> Line:
    if not outcome.results:
        return (
            f"ERROR: zero gates selected for phase {outcome.phase}; this is not a green run",
            {"red": True, "bold": True},
        )
    if outcome.incomplete:
        return (
            "NOT PROMOTABLE: the bundle is incomplete (a gate has no result)",
            {"red": True, "bold": True},
        )
    if outcome.blocking:
        return (
            f"NOT PROMOTABLE: {len(outcome.blocking)} gate(s) block promotion",
            {"red": True, "bold": True},
        )
    if outcome.scope == "partial":
        return (
            "NOT PROMOTABLE: partial selection (every selected gate passed)",
            {"yellow": True, "bold": True},
        )
    if outcome.promotable:
        return (
            f"PROMOTION MAY GO AHEAD: every gate of phase {outcome.phase} passed",
            {"green": True, "bold": True},
        )
    return (
        f"EVERY GATE OF PHASE {outcome.phase.upper()} PASSED, but not promotable: "
        + "; ".join(outcome.not_promotable_because),
        {"yellow": True, "bold": True},
    )


def _decision_lines(decision: RollbackDecision) -> list[Line]:
    """For the decision phase: the rollback decision, what the runbook says to do about the
    signals that fired, and the exit code a pipeline acts on."""
    colour = (
        {"green": True, "bold": True} if decision.decision is Decision.NO_ROLLBACK_SIGNAL else _RED
    )
    lines: list[Line] = [(decision.headline(), colour)]
    if decision.actions:
        lines.append((f"runbook action: {'; '.join(decision.actions)}", _RED))
    lines.append((f"exit code {decision.exit_code} ({decision.decision.value})", {}))
    return lines


def write_summary(
    write_line: Callable[..., None], write_sep: Callable[..., None], lines: list[Line]
) -> None:
    """Print ``lines`` through a terminal reporter's writers."""
    write_sep("=", "canarygate", bold=True)
    for text, markup in lines:
        write_line(text, **markup)
