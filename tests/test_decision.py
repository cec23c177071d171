"""The rollback decision of a run of the catalog's decision phase, as data and exit code."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from pytest_canarygate.catalog import OPT_IN_STAGES
from pytest_canarygate.catalog import Catalog
from pytest_canarygate.catalog import load_catalog
from pytest_canarygate.decision import EXIT_CANNOT_BE_RULED_OUT
from pytest_canarygate.decision import EXIT_NO_ROLLBACK_SIGNAL
from pytest_canarygate.decision import EXIT_PROCEDURE_INCOMPLETE
from pytest_canarygate.decision import EXIT_ROLLBACK_ADVISED
from pytest_canarygate.decision import Decision
from pytest_canarygate.decision import RollbackDecision
from pytest_canarygate.decision import decide
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.results import GateResult
from pytest_canarygate.verdicts import Verdict

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "gates" / "catalog.toml"

SIGNAL_GATES = {
    "SIG-1": "signal.hold-down-not-recovered",
    "SIG-2": "signal.escalate-persisting",
    "SIG-3": "signal.latency-breaches",
    "SIG-4": "signal.cursor-full-resync",
    "SIG-5": "signal.user-reported-inconsistency",
}
ACTIONS = {
    "SIG-1": "rollback immediately",
    "SIG-2": "rollback immediately",
    "SIG-3": "rollback, investigate",
    "SIG-4": "investigate, consider rollback",
    "SIG-5": "rollback, investigate",
}
PROCEDURE_GATES = {
    "RB-1": "rollback.selector.back-to-v4",
    "RB-2": "rollback.sessions.served-by-v4",
    "RB-3a": "rollback.v4.list-panes",
    "RB-3b": "rollback.v4.sources-active",
    "PR-1": "rollback.post.v5-snapshot",
    "PR-2": "rollback.post.incident-evidence",
    "RB-4": "rollback.procedure.v5-stop-reported",
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(CATALOG)


def result(item: str, gate: str, verdict: Verdict, message: str = "") -> GateResult:
    return GateResult(
        nodeid=f"gates/test_x.py::{gate}",
        gate=gate,
        item=item,
        verdict=verdict,
        message=message or f"{gate} {verdict}",
    )


def run(
    signals: Mapping[str, Verdict | None] | None = None,
    procedure: Mapping[str, Verdict | None] | None = None,
    *,
    with_procedure: bool = True,
) -> list[GateResult]:
    """Results of a rollback run: every gate PASS unless overridden; None = did not run."""
    verdicts: dict[str, Verdict | None] = dict.fromkeys(SIGNAL_GATES, Verdict.PASS)
    verdicts.update(signals or {})
    results = [result(i, SIGNAL_GATES[i], v) for i, v in verdicts.items() if v is not None]
    if with_procedure:
        steps: dict[str, Verdict | None] = dict.fromkeys(PROCEDURE_GATES, Verdict.PASS)
        steps.update(procedure or {})
        results += [result(i, PROCEDURE_GATES[i], v) for i, v in steps.items() if v is not None]
    return results


def decided(catalog: Catalog, results: list[GateResult]) -> RollbackDecision:
    assert catalog.decision_phase is not None
    decision = decide(catalog, catalog.decision_phase, results)
    assert decision is not None
    return decision


def test_the_agtmux_catalog_decides_in_the_rollback_phase(catalog: Catalog) -> None:
    assert catalog.decision_phase == "rollback"
    assert {i: catalog.items[i].action for i in SIGNAL_GATES} == ACTIONS


@pytest.mark.parametrize("item", sorted(SIGNAL_GATES))
def test_each_signal_firing_advises_rollback_with_its_action(catalog: Catalog, item: str) -> None:
    decision = decided(catalog, run({item: Verdict.FAIL}))
    assert decision.decision is Decision.ROLLBACK_ADVISED
    assert decision.exit_code == EXIT_ROLLBACK_ADVISED == 20
    assert decision.actions == (ACTIONS[item],)
    assert decision.unchecked == ()
    fired = [s for s in decision.signals if s.verdict == "FAIL"]
    assert [(s.item, s.gate, s.action) for s in fired] == [
        (item, SIGNAL_GATES[item], ACTIONS[item])
    ]
    assert decision.headline().startswith(
        f"ROLLBACK ADVISED: {item} {SIGNAL_GATES[item]} ({ACTIONS[item]})"
    )


def test_fired_actions_are_distinct_and_in_catalog_order(catalog: Catalog) -> None:
    decision = decided(
        catalog,
        run({"SIG-5": Verdict.FAIL, "SIG-4": Verdict.FAIL, "SIG-3": Verdict.FAIL}),
    )
    assert decision.actions == ("rollback, investigate", "investigate, consider rollback")
    assert decision.exit_code == EXIT_ROLLBACK_ADVISED


def test_a_fired_signal_wins_over_an_unobservable_one(catalog: Catalog) -> None:
    decision = decided(catalog, run({"SIG-1": Verdict.UNOBSERVABLE, "SIG-2": Verdict.FAIL}))
    assert decision.decision is Decision.ROLLBACK_ADVISED
    assert decision.exit_code == 20


def test_no_signal_and_procedure_complete_exits_0(catalog: Catalog) -> None:
    decision = decided(catalog, run())
    assert decision.decision is Decision.NO_ROLLBACK_SIGNAL
    assert decision.procedure == "complete"
    assert decision.procedure_blocking == ()
    assert decision.exit_code == EXIT_NO_ROLLBACK_SIGNAL == 0
    assert decision.actions == ()
    assert decision.headline() == (
        "NO ROLLBACK SIGNAL among 5 of 5 signals checked; procedure complete"
    )


@pytest.mark.parametrize("verdict", [Verdict.UNOBSERVABLE, Verdict.INCONCLUSIVE])
def test_an_unclear_signal_cannot_rule_out_a_rollback(catalog: Catalog, verdict: Verdict) -> None:
    decision = decided(catalog, run({"SIG-3": verdict}))
    assert decision.decision is Decision.CANNOT_BE_RULED_OUT
    assert decision.exit_code == EXIT_CANNOT_BE_RULED_OUT == 21
    assert decision.unchecked == ()
    headline = decision.headline()
    assert headline.startswith("CANNOT BE RULED OUT: 4 of 5 signals checked")
    assert f"SIG-3 {verdict.value}" in headline


def test_a_deselected_signal_is_never_counted_as_checked(catalog: Catalog) -> None:
    decision = decided(catalog, run({"SIG-5": None}))
    assert decision.decision is Decision.CANNOT_BE_RULED_OUT
    assert decision.exit_code == 21
    assert decision.unchecked == ("SIG-5",)
    assert "SIG-5" not in {s.item for s in decision.signals}
    headline = decision.headline()
    assert "4 of 5 signals checked" in headline
    assert "not checked: SIG-5" in headline
    assert "5 of 5" not in headline


def test_a_fired_signal_still_names_the_unchecked_ones(catalog: Catalog) -> None:
    decision = decided(catalog, run({"SIG-1": Verdict.FAIL, "SIG-4": None}))
    assert decision.decision is Decision.ROLLBACK_ADVISED
    assert decision.unchecked == ("SIG-4",)
    assert "not checked: SIG-4" in decision.headline()


def test_no_result_at_all_cannot_rule_out(catalog: Catalog) -> None:
    decision = decided(catalog, [])
    assert decision.decision is Decision.CANNOT_BE_RULED_OUT
    assert decision.unchecked == tuple(SIGNAL_GATES)
    assert decision.procedure == "not judged"
    assert decision.headline().startswith("CANNOT BE RULED OUT: 0 of 5 signals checked")


def test_a_waived_signal_does_not_fire_and_is_not_counted_as_checked(catalog: Catalog) -> None:
    decision = decided(catalog, run({"SIG-4": Verdict.WAIVED}))
    assert decision.decision is Decision.NO_ROLLBACK_SIGNAL
    assert decision.exit_code == 0
    assert decision.actions == ()
    assert decision.headline() == (
        "NO ROLLBACK SIGNAL among 4 of 5 signals checked; waived: SIG-4; procedure complete"
    )


@pytest.mark.parametrize(
    ("procedure", "blocking"),
    [
        ({"RB-1": Verdict.FAIL}, ("RB-1 rollback.selector.back-to-v4 FAIL",)),
        ({"RB-3b": Verdict.UNOBSERVABLE}, ("RB-3b rollback.v4.sources-active UNOBSERVABLE",)),
        ({"PR-1": None}, ("PR-1 rollback.post.v5-snapshot NOT RUN",)),
    ],
)
def test_an_incomplete_procedure_exits_1_when_no_signal(
    catalog: Catalog, procedure: dict[str, Verdict | None], blocking: tuple[str, ...]
) -> None:
    decision = decided(catalog, run(procedure=procedure))
    assert decision.decision is Decision.NO_ROLLBACK_SIGNAL
    assert decision.procedure == "incomplete"
    assert decision.procedure_blocking == blocking
    assert decision.exit_code == EXIT_PROCEDURE_INCOMPLETE == 1
    assert decision.headline().endswith(f"procedure incomplete: {blocking[0].split()[0]}")


def test_a_waived_procedure_gate_completes_it(catalog: Catalog) -> None:
    decision = decided(catalog, run(procedure={"RB-2": Verdict.WAIVED}))
    assert decision.procedure == "complete"
    assert decision.exit_code == 0


def test_signals_only_leave_the_procedure_not_judged(catalog: Catalog) -> None:
    decision = decided(catalog, run(with_procedure=False))
    assert decision.decision is Decision.NO_ROLLBACK_SIGNAL
    assert decision.procedure == "not judged"
    assert decision.procedure_blocking == ()
    assert decision.exit_code == 0
    assert "procedure" not in decision.headline()


def test_the_signal_decides_the_exit_code_whatever_the_procedure(catalog: Catalog) -> None:
    failing = {"RB-1": Verdict.FAIL}
    assert decided(catalog, run({"SIG-2": Verdict.FAIL}, failing)).exit_code == 20
    assert decided(catalog, run({"SIG-2": Verdict.INCONCLUSIVE}, failing)).exit_code == 21


@pytest.mark.parametrize("phase", ["alpha", "canary", "gradual", "cutover"])
def test_other_phases_have_no_decision(catalog: Catalog, phase: str) -> None:
    assert decide(catalog, phase, run({"SIG-1": Verdict.FAIL})) is None


def test_a_rehearsal_run_decides_nothing_and_is_never_due(catalog: Catalog) -> None:
    for stage in OPT_IN_STAGES:
        assert decide(catalog, "rollback", run({"SIG-1": Verdict.FAIL}), stage=stage) is None
    decision = decided(catalog, run())
    assert not [b for b in decision.procedure_blocking if "rehearsal" in b]
    assert decision.exit_code == 0


def test_a_stage_narrowed_run_leaves_the_other_signals_unchecked(catalog: Catalog) -> None:
    decision = decide(catalog, "rollback", run(dict.fromkeys(SIGNAL_GATES)), stage="exit")
    assert decision is not None
    assert decision.unchecked == tuple(SIGNAL_GATES)
    assert decision.exit_code == EXIT_CANNOT_BE_RULED_OUT


def test_as_json_is_json_ready(catalog: Catalog) -> None:
    decision = decided(catalog, run({"SIG-2": Verdict.FAIL}, {"RB-1": Verdict.FAIL}))
    data = json.loads(json.dumps(decision.as_json()))
    assert data["decision"] == "ROLLBACK ADVISED"
    assert data["exit_code"] == 20
    assert data["actions"] == ["rollback immediately"]
    assert data["unchecked"] == []
    assert data["procedure"] == "incomplete"
    assert data["procedure_blocking"] == ["RB-1 rollback.selector.back-to-v4 FAIL"]
    assert data["headline"] == decision.headline()
    assert [s["item"] for s in data["signals"]] == list(SIGNAL_GATES)
    assert data["signals"][1] == {
        "item": "SIG-2",
        "gate": "signal.escalate-persisting",
        "verdict": "FAIL",
        "action": "rollback immediately",
        "message": "signal.escalate-persisting FAIL",
    }


# ---------------------------------------------------------------- small hand-made catalogs

HEAD = '[runbook]\ntitle = "t"\nphases = ["live", "back"]\n'


def item(item_id: str, kind: str, extra: str = "", phase: str = "back") -> str:
    return (
        f'[[item]]\nid = "{item_id}"\nsection = "S"\ntext = "t"\nkind = "{kind}"\n'
        f'phase = "{phase}"\nstage = "monitor"\n{extra}'
    )


def gate(gate_id: str, item_id: str, extra: str = "") -> str:
    return f'[[gate]]\nid = "{gate_id}"\nitem = "{item_id}"\ntitle = "t"\n{extra}'


def write(tmp_path: Path, text: str) -> Catalog:
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    return load_catalog(path)


def test_a_signal_gate_of_several_must_all_run(tmp_path: Path) -> None:
    catalog = write(
        tmp_path,
        HEAD
        + 'decision_phase = "back"\n'
        + item("S1", "signal", 'action = "roll back"\n')
        + gate("s1.a", "S1")
        + gate("s1.b", "S1"),
    )
    one = [result("S1", "s1.a", Verdict.PASS)]
    decision = decided(catalog, one)
    assert decision.unchecked == ("S1",)
    assert decision.decision is Decision.CANNOT_BE_RULED_OUT
    both = [*one, result("S1", "s1.b", Verdict.PASS)]
    assert decided(catalog, both).decision is Decision.NO_ROLLBACK_SIGNAL


def test_a_pending_signal_is_unchecked(tmp_path: Path) -> None:
    catalog = write(
        tmp_path,
        HEAD
        + 'decision_phase = "back"\n'
        + item("S1", "signal", 'action = "roll back"\n')
        + gate("s1", "S1")
        + item("S2", "signal", 'action = "look"\npending = "later"\n'),
    )
    decision = decided(catalog, [result("S1", "s1", Verdict.PASS)])
    assert decision.unchecked == ("S2",)
    assert decision.exit_code == EXIT_CANNOT_BE_RULED_OUT


def test_a_catalog_without_signals_cannot_rule_out(tmp_path: Path) -> None:
    catalog = write(
        tmp_path, HEAD + 'decision_phase = "back"\n' + item("B1", "step") + gate("b1", "B1")
    )
    decision = decided(catalog, [result("B1", "b1", Verdict.PASS)])
    assert decision.decision is Decision.CANNOT_BE_RULED_OUT
    assert "no signal" in decision.headline()


def test_per_parameter_instances_are_labelled(tmp_path: Path) -> None:
    catalog = write(
        tmp_path,
        HEAD
        + 'decision_phase = "back"\n'
        + item("S1", "signal", 'action = "go"\n')
        + gate("s", "S1"),
    )
    results = [
        GateResult("n[a]", "s", "S1", Verdict.PASS, param="a"),
        GateResult("n[b]", "s", "S1", Verdict.FAIL, "bad", param="b"),
    ]
    decision = decided(catalog, results)
    assert [s.gate for s in decision.signals] == ["s[a]", "s[b]"]
    assert decision.headline() == "ROLLBACK ADVISED: S1 s[b] (go)"


def test_without_decision_phase_nothing_is_decided(tmp_path: Path) -> None:
    catalog = write(tmp_path, HEAD + item("S1", "signal", 'action = "go"\n') + gate("s", "S1"))
    assert catalog.decision_phase is None
    assert decide(catalog, "back", [result("S1", "s", Verdict.FAIL)]) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (item("S1", "signal"), "item S1: a signal needs key 'action'"),
        (item("S1", "signal", 'action = ""\n'), "item S1: a signal needs key 'action'"),
        (item("S1", "signal", "action = 3\n"), "item S1: a signal needs key 'action'"),
        (
            item("B1", "step", 'action = "go"\n'),
            "item B1: key 'action' is only for items of kind \"signal\" (this one is 'step')",
        ),
        ('decision_phase = "nope"\n', "[runbook] decision_phase = 'nope': not one of the phases"),
        ("decision_phase = 1\n", "[runbook] decision_phase = 1: not one of the phases"),
    ],
)
def test_catalog_action_mistakes_are_named(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(HEAD + text)
    with pytest.raises(ConfigError) as info:
        load_catalog(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)
