"""The engine's own Allure result writer: statuses folded like allure-pytest, one result file per
gate instance, labels, parameters, history ids Allure can trend on, and the evidence attachment."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from allure_commons.model2 import Parameter
from allure_commons.utils import md5

try:
    from allure_pytest.utils import get_history_id
except ImportError:  # allure-pytest before 2.14
    get_history_id = None

from pytest_canarygate.allure_results import AllureResults
from pytest_canarygate.allure_results import ItemResult
from pytest_canarygate.bundle import NODEID_LABEL
from pytest_canarygate.catalog import load_catalogs
from pytest_canarygate.observation import GateEvidence
from pytest_canarygate.verdicts import GateFailed
from pytest_canarygate.verdicts import Unobservable

ROOT = Path(__file__).resolve().parents[1]
CATALOG = load_catalogs([ROOT / "gates" / "catalog.toml"])
PANES_GATE = CATALOG.gates["alpha.parity.panes"]
NODEID = "gates/test_phase1_alpha.py::test_list_panes_parity[session-0013]"


def phase(when: str, error: BaseException | None = None) -> tuple[pytest.TestReport, Any]:
    """A real CallInfo of one phase and the report pytest would make of it."""

    def run() -> None:
        if error is not None:
            raise error

    call = pytest.CallInfo.from_call(run, when=when)  # type: ignore[arg-type]
    outcome = "passed" if error is None else "failed"
    longrepr = None if error is None else f"Traceback: {type(error).__name__}"
    report = pytest.TestReport(NODEID, ("x", 1, "y"), {}, outcome, longrepr, when)
    return report, call


def folded(*phases: tuple[str, BaseException | None]) -> ItemResult:
    result = ItemResult()
    for when, error in phases:
        result.update(*phase(when, error))
    return result


def test_a_pass_in_every_phase_is_passed() -> None:
    result = folded(("setup", None), ("call", None), ("teardown", None))
    assert (result.status, result.details) == ("passed", None)
    assert 0 < result.start_ms <= result.stop_ms


def test_a_failed_criterion_is_failed_with_its_message() -> None:
    result = folded(("setup", None), ("call", GateFailed("panes differ")), ("teardown", None))
    assert result.status == "failed"
    assert result.details is not None
    assert result.details["message"] == "pytest_canarygate.verdicts.GateFailed: panes differ"
    assert result.details["trace"] == "Traceback: GateFailed"


def test_an_unobservable_gate_is_broken_and_a_later_pass_does_not_hide_it() -> None:
    result = folded(("setup", Unobservable("refused")), ("teardown", None))
    assert result.status == "broken"
    assert result.details is not None
    assert "Unobservable: refused" in result.details["message"]


def test_a_failing_teardown_spoils_a_pass_but_not_an_earlier_failure() -> None:
    spoiled = folded(("setup", None), ("call", None), ("teardown", RuntimeError("leak")))
    assert spoiled.status == "broken"
    first = folded(("setup", None), ("call", GateFailed("a")), ("teardown", RuntimeError("b")))
    assert first.status == "failed"
    assert first.details is not None
    assert "GateFailed: a" in first.details["message"]


class FlushedResults(AllureResults):
    """Each result waited for: its files are there when ``write`` returns."""

    def write(self, *args: Any, **kwargs: Any) -> Path:
        path = super().write(*args, **kwargs)
        assert self.flush() == []
        return path


def writer(tmp_path: Path, runbook_url: str | None = None) -> AllureResults:
    return FlushedResults(
        tmp_path / "allure-results",
        migration_id="m-1",
        phase="alpha",
        catalog=CATALOG,
        runbook_url=runbook_url,
    )


def item(nodeid: str = NODEID, **params: object) -> Any:
    base, bracket, params_id = nodeid.partition("[")
    function = base.split("::")[-1]
    return SimpleNamespace(
        nodeid=nodeid,
        name=function + bracket + params_id,
        originalname=function,
        callspec=SimpleNamespace(params=params) if params else None,
    )


def written(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def test_a_gate_result_carries_its_labels_link_parameters_and_evidence(tmp_path: Path) -> None:
    evidence = GateEvidence()
    evidence.notes.append(("panes judged", {"%1": {"title": "x"}}))
    results = writer(tmp_path, runbook_url="https://runbook.example/doc")
    path = results.write(
        item(agtmux_tmux_session="session-0013"),
        folded(("setup", None), ("call", None), ("teardown", None)),
        gate=PANES_GATE,
        title="list_panes parity",
        evidence=evidence,
    )
    result = written(path)
    assert path.name == f"{result['uuid']}-result.json"
    assert result["name"] == "alpha.parity.panes: list_panes parity"
    assert result["status"] == "passed"
    assert result["description"].startswith(f"{PANES_GATE.item.id} (")
    labels = {(label["name"], label["value"]) for label in result["labels"]}
    assert {
        ("epic", "m-1"),
        ("feature", "alpha"),
        ("tag", "alpha.parity.panes"),
        ("tag", f"item:{PANES_GATE.item.id}"),
        ("parentSuite", "alpha"),
        (NODEID_LABEL, NODEID),
        ("package", "gates.test_phase1_alpha"),
    } <= labels
    [link] = result["links"]
    assert link["url"] == f"https://runbook.example/doc#{PANES_GATE.item.anchor}"
    parameters = {p["name"]: p["value"] for p in result["parameters"]}
    assert parameters == {"agtmux_tmux_session": "'session-0013'", "daemon": "'v4, v5'"}
    assert result["fullName"] == "gates.test_phase1_alpha#test_list_panes_parity"
    assert result["titlePath"] == ["gates", "test_phase1_alpha.py"]
    [attachment] = result["attachments"]
    assert (attachment["name"], attachment["type"]) == ("evidence", "application/json")
    body = json.loads((tmp_path / "allure-results" / attachment["source"]).read_text())
    assert body["notes"] == [{"name": "panes judged", "value": {"%1": {"title": "x"}}}]
    assert not list((tmp_path / "allure-results").glob("*-container.json"))


def test_history_ids_are_allure_pytests_so_trends_carry_over(tmp_path: Path) -> None:
    results = writer(tmp_path)
    ids = []
    for session in ("session-0001", "session-0002"):
        result = written(
            results.write(
                item(NODEID.replace("session-0013", session), agtmux_tmux_session=session),
                folded(("setup", None), ("call", None), ("teardown", None)),
                gate=PANES_GATE,
                title="t",
                evidence=None,
            )
        )
        # allure-pytest's rule (since 2.14): the full name, then each parameter's value in name
        # order, as parametrized where it was (allure-pytest 2.13 hashed the nodeid)
        assert result["historyId"] == md5(result["fullName"], session, "'v4, v5'")
        if get_history_id is not None:  # and the installed allure-pytest agrees
            parameters = [Parameter(name=p["name"], value=p["value"]) for p in result["parameters"]]
            assert result["historyId"] == get_history_id(
                result["fullName"], parameters, original_values={"agtmux_tmux_session": session}
            )
        assert "attachments" in result
        assert not result["attachments"]
        ids.append(result["historyId"])
    assert ids[0] != ids[1]


def test_a_waived_gate_says_so_and_keeps_its_own_verdict(tmp_path: Path) -> None:
    waiver = {"by": "ops", "until": "2026-12-31T00:00:00Z", "text": "known drift"}
    result = written(
        writer(tmp_path).write(
            item(),
            folded(("setup", None), ("call", None), ("teardown", None)),
            gate=PANES_GATE,
            title="t",
            evidence=None,
            waiver=waiver,
            own_verdict="FAIL",
        )
    )
    assert {"name": "tag", "value": "WAIVED"} in result["labels"]
    parameters = {p["name"]: p["value"] for p in result["parameters"]}
    assert parameters["own verdict"] == "'FAIL'"
    assert parameters["waived by"] == "'ops until 2026-12-31T00:00:00Z'"


def test_hostile_names_and_output_stay_inside_their_json_strings(tmp_path: Path) -> None:
    nodeid = 'gates/test_x.py::test_y[a"b\\c\n</script>\u2028]'
    result = written(
        writer(tmp_path).write(
            item(nodeid),
            folded(("setup", RuntimeError('bad "quote"\n')), ("teardown", None)),
            gate=None,
            title=None,
            evidence=None,
            captured={"stdout": 'printed "text"\x00\n', "stderr": ""},
        )
    )
    assert {"name": NODEID_LABEL, "value": nodeid} in result["labels"]
    assert result["status"] == "broken"
    assert 'bad "quote"' in result["statusDetails"]["message"]
    [attachment] = result["attachments"]  # empty stderr: no attachment
    assert attachment["name"] == "stdout"
    stdout = (tmp_path / "allure-results" / attachment["source"]).read_text(encoding="utf-8")
    assert stdout == 'printed "text"\x00\n'


def test_a_lone_surrogate_from_a_daemon_is_written_escaped_not_a_crash(tmp_path: Path) -> None:
    # strict JSON lets "\ud800" through; it has no UTF-8 form
    hostile = "daemon said \ud800 and left"
    results = tmp_path / "allure-results"
    path = writer(tmp_path).write(
        item(),
        folded(("setup", Unobservable(hostile)), ("teardown", None)),
        gate=PANES_GATE,
        title="t",
        evidence=None,
        captured={"log": f"log: {hostile}"},
    )
    raw = path.read_bytes()
    assert raw.isascii()
    result = json.loads(raw)
    assert hostile in result["statusDetails"]["message"]
    [attachment] = result["attachments"]
    assert (results / attachment["source"]).read_bytes() == b"log: daemon said \\ud800 and left"
    assert sorted(p.name for p in results.iterdir() if p.name.startswith(".")) == []


def test_classes_of_a_test_are_in_its_names_as_allure_pytest_puts_them(tmp_path: Path) -> None:
    nodeid = "packs/test_more.py::TestGroup::test_one[a::b]"
    result = written(
        writer(tmp_path).write(
            item(nodeid),
            folded(("setup", None), ("call", None), ("teardown", None)),
            gate=None,
            title=None,
            evidence=None,
        )
    )
    assert result["fullName"] == "packs.test_more.TestGroup#test_one"
    assert result["titlePath"] == ["packs", "test_more.py", "TestGroup"]
