"""The bundle's machine outputs for CI: a JUnit XML of the gates and a signed in-toto statement
with the standard test-result predicate, both listed in the bundle's own statement."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from bundle_helpers import KeyPair
from gate_repo import make_gate_repo
from gate_repo import only_run

from pytest_canarygate.ci_outputs import JUNIT_FILE
from pytest_canarygate.ci_outputs import TEST_RESULT_FILE
from pytest_canarygate.ci_outputs import TEST_RESULT_PREDICATE
from pytest_canarygate.ci_outputs import outcome_as_test_result
from pytest_canarygate.ci_outputs import write_junit
from pytest_canarygate.results import GateResult
from pytest_canarygate.results import RunOutcome
from pytest_canarygate.verdicts import Verdict
from pytest_canarygate.verify import verify_bundle


def _results(*verdicts: Verdict) -> list[GateResult]:
    return [
        GateResult(
            nodeid=f"gates/t.py::g{i}",
            gate=f"g{i}",
            item=f"I-{i}",
            verdict=v,
            message=f"{v.value} because\nsecond line \x1b[31m",
            param="s1" if i == 0 else None,
        )
        for i, v in enumerate(verdicts)
    ]


def test_junit_counts_unjudgeable_gates_as_errors_not_failures(tmp_path: Path) -> None:
    outcome = RunOutcome(
        phase="canary",
        results=_results(
            Verdict.PASS, Verdict.FAIL, Verdict.UNOBSERVABLE, Verdict.INCONCLUSIVE, Verdict.WAIVED
        ),
    )
    path = tmp_path / JUNIT_FILE
    write_junit(path, outcome, migration_id="m")
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("5", "1", "2")
    assert suite.get("name") == "m canary"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"g0[s1]", "g1", "g2", "g3", "g4"}
    props = {p.get("name"): p.get("value") for p in cases["g2"].iter("property")}
    assert props == {
        "gate": "g2",
        "item": "I-2",
        "phase": "canary",
        "verdict": "UNOBSERVABLE",
        "param": "",
        "nodeid": "gates/t.py::g2",
    }
    failure = cases["g1"].find("failure")
    assert failure is not None
    assert failure.get("message") == "FAIL because"
    error = cases["g3"].find("error")
    assert error is not None
    assert error.get("type") == "INCONCLUSIVE"
    assert cases["g0[s1]"].find("failure") is None
    assert cases["g4"].find("failure") is None
    assert "\x1b" not in path.read_text()  # not even escaped: XML 1.0 forbids it


@pytest.mark.parametrize(
    ("verdicts", "signed", "expected"),
    [
        ((Verdict.PASS, Verdict.PASS), True, "PASSED"),
        ((Verdict.PASS, Verdict.WAIVED), True, "PASSED"),
        ((Verdict.PASS, Verdict.PASS), False, "WARNED"),  # all passed, but no sign-off
        ((Verdict.PASS, Verdict.INCONCLUSIVE), True, "FAILED"),
        ((), True, "FAILED"),
    ],
)
def test_the_test_result_follows_promotion(
    tmp_path: Path, verdicts: tuple[Verdict, ...], signed: bool, expected: str
) -> None:
    outcome = RunOutcome(phase="alpha", results=_results(*verdicts), signed=signed)
    predicate = outcome_as_test_result(outcome, tmp_path, {"catalog_digest": "ab" * 32})
    assert predicate["result"] == expected
    assert len(predicate["passedTests"]) + len(predicate["warnedTests"]) + len(
        predicate["failedTests"]
    ) == len(verdicts)
    assert predicate["configuration"] == [{"name": "catalog", "digest": {"sha256": "ab" * 32}}]


def _decode(envelope_path: Path) -> dict[str, Any]:
    envelope = json.loads(envelope_path.read_text())
    return json.loads(base64.b64decode(envelope["payload"]))  # type: ignore[no-any-return]


@pytest.mark.parametrize("dist", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])
def test_a_run_leaves_junit_and_a_signed_test_result_inside_its_bundle(
    pytester: pytest.Pytester, tmp_path: Path, dist: list[str]
) -> None:
    keys = KeyPair(tmp_path / "keys")
    make_gate_repo(pytester)
    pytester.runpytest_subprocess(
        "--phase=alpha",
        "--canarygate-sim=parity-drift",
        f"--canarygate-key={keys.private_path}",
        *dist,
    )
    bundle, run = only_run(pytester.path)
    assert verify_bundle(bundle, keys.trusted).ok
    statement = _decode(bundle / "statement.dsse.json")
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    assert {JUNIT_FILE, TEST_RESULT_FILE} <= set(subjects)

    suite = ET.parse(bundle / JUNIT_FILE).getroot().find("testsuite")
    assert suite is not None
    assert int(suite.get("tests", "0")) == len(run["gates"])
    failed_gates = sum(1 for g in run["gates"] if g["verdict"] == "FAIL")
    assert int(suite.get("failures", "-1")) == failed_gates > 0

    envelope = json.loads((bundle / TEST_RESULT_FILE).read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert [s["keyid"] for s in envelope["signatures"]] == [keys.keyid]
    result_statement = _decode(bundle / TEST_RESULT_FILE)
    assert result_statement["_type"] == "https://in-toto.io/Statement/v1"
    assert result_statement["predicateType"] == TEST_RESULT_PREDICATE
    predicate = result_statement["predicate"]
    assert predicate["result"] == "FAILED"
    assert len(predicate["failedTests"]) == sum(
        1 for g in run["gates"] if g["verdict"] not in ("PASS", "WAIVED")
    )
    named = {s["name"]: s["digest"]["sha256"] for s in result_statement["subject"]}
    junit_digest = hashlib.sha256((bundle / JUNIT_FILE).read_bytes()).hexdigest()
    assert named[JUNIT_FILE] == junit_digest == subjects[JUNIT_FILE]
    assert "observation/observation.json.gz" in named
