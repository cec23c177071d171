"""The bundle's machine outputs for CI: a JUnit XML of the gates and a signed in-toto statement
with the standard test-result predicate, both listed in the bundle's own statement."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from bundle_helpers import KeyPair
from gate_repo import make_gate_repo
from gate_repo import only_run
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

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


# ---------------------------------------------------------------- junit.xml, hostile values

# The writer junit.xml had before it was written as text: ElementTree, with its own copy of the
# control-character rule, so the two can be compared on any input.
_REFERENCE_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_REFERENCE_CANNOT_JUDGE = (Verdict.UNOBSERVABLE, Verdict.INCONCLUSIVE)


def _reference_text(text: str) -> str:
    return _REFERENCE_NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _reference_junit(outcome: RunOutcome, migration_id: str) -> bytes:
    results = outcome.results
    suites = ET.Element("testsuites")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=_reference_text(f"{migration_id} {outcome.phase}"),
        tests=str(len(results)),
        failures=str(sum(1 for r in results if r.verdict is Verdict.FAIL)),
        errors=str(sum(1 for r in results if r.verdict in _REFERENCE_CANNOT_JUDGE)),
        skipped="0",
    )
    for result in results:
        instance = f"{result.gate}[{result.param}]" if result.param else result.gate
        case = ET.SubElement(
            suite,
            "testcase",
            classname=_reference_text(result.item),
            name=_reference_text(instance),
        )
        properties = ET.SubElement(case, "properties")
        for name, value in (
            ("gate", result.gate),
            ("item", result.item),
            ("phase", outcome.phase),
            ("verdict", result.verdict.value),
            ("param", result.param or ""),
            ("nodeid", result.nodeid),
        ):
            ET.SubElement(properties, "property", name=name, value=_reference_text(value))
        message = _reference_text(result.message)
        first_line = message.strip().splitlines()[0] if message.strip() else result.verdict.value
        if result.verdict is Verdict.FAIL:
            ET.SubElement(case, "failure", message=first_line, type="FAIL").text = message
        elif result.verdict in _REFERENCE_CANNOT_JUDGE:
            kind = result.verdict.value
            ET.SubElement(case, "error", message=first_line, type=kind).text = message
        elif message:
            ET.SubElement(case, "system-out").text = message
    suite.text = "\n"
    for case in suite:
        case.tail = "\n"
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"


Tree = tuple[str, list[tuple[str, str]], "str | None", list[Any], "str | None"]


def _tree(element: ET.Element) -> Tree:
    """Everything a reader of the XML gets: tags, attributes in order, text, tails."""
    return (
        element.tag,
        list(element.attrib.items()),
        element.text,
        [_tree(child) for child in element],
        element.tail,
    )


def _written(tmp_path: Path, outcome: RunOutcome, migration_id: str) -> bytes:
    path = tmp_path / JUNIT_FILE
    write_junit(path, outcome, migration_id=migration_id)
    return path.read_bytes()


HOSTILE = "q\"uo'te & <lt> ]]> gt> \t tab \r cr \r\n crlf \n lf \x00\x01\x0b\x0c\x1b\x1f\x7f"
HOSTILE += " \ud800 \udfff \ud83d\ude00 \ufffe\uffff \x85 \u2028 é € 😀 "
#: what a reader gets back for HOSTILE in an attribute: all of it, what XML 1.0 forbids as \\xNN
HOSTILE_READ = (
    "q\"uo'te & <lt> ]]> gt> \t tab \r cr \r\n crlf \n lf \\x00\\x01\\x0b\\x0c\\x1b\\x1f\x7f"
)
HOSTILE_READ += " \\xd800 \\xdfff \\xd83d\\xde00 \\xfffe\\xffff \x85 \u2028 é € 😀 "


def test_junit_reads_back_hostile_values_as_the_elementtree_writer_gave_them(
    tmp_path: Path,
) -> None:
    results = [
        GateResult(
            nodeid=f"gates/t.py::g{HOSTILE}[{verdict.value}]",
            gate=f"g{HOSTILE}",
            item=f"I{HOSTILE}",
            verdict=verdict,
            message=f" {HOSTILE}\nsecond {HOSTILE}" if verdict is not Verdict.WAIVED else "",
            param=HOSTILE if verdict is not Verdict.PASS else None,
        )
        for verdict in Verdict
    ] + [GateResult("gates/t.py::blank", "blank", "I-2", Verdict.FAIL, message=" \t\r\n ")]
    outcome = RunOutcome(phase=f"alpha{HOSTILE}", results=results)
    written = _written(tmp_path, outcome, f"m{HOSTILE}")
    reference = _reference_junit(outcome, f"m{HOSTILE}")
    root = ET.fromstring(written)  # well-formed, or this raises
    assert _tree(root) == _tree(ET.fromstring(reference))
    assert written.startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<testsuites>")
    assert written.endswith(b"</testsuite></testsuites>\n")

    # What the old writer gave, spelt out: every attribute as _xml_text leaves it.
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("name") == f"m{HOSTILE_READ} alpha{HOSTILE_READ}"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == (
        str(len(results)),
        "2",
        "2",
    )
    cases = suite.findall("testcase")
    assert len(cases) == len(results)
    # one test case per line: each starts a line, and no markup hides inside a value
    assert written.count(b"\n<testcase ") == len(results)
    for case, result in zip(cases, results, strict=True):
        assert case.get("classname") == _reference_text(result.item)
        props = [(p.get("name"), p.get("value")) for p in case.iter("property")]
        assert props == [
            ("gate", _reference_text(result.gate)),
            ("item", _reference_text(result.item)),
            ("phase", f"alpha{HOSTILE_READ}"),
            ("verdict", result.verdict.value),
            ("param", _reference_text(result.param or "")),
            ("nodeid", _reference_text(result.nodeid)),
        ]
    failure = cases[[r.verdict for r in results].index(Verdict.FAIL)].find("failure")
    assert failure is not None
    assert failure.get("type") == "FAIL"
    assert failure.get("message") == "q\"uo'te & <lt> ]]> gt> \t tab "  # up to the first CR
    # CR in text reads back as LF (XML end-of-line handling), as it did from ElementTree
    text = f" {HOSTILE_READ}\nsecond {HOSTILE_READ}".replace("\r\n", "\n").replace("\r", "\n")
    assert failure.text == text
    blank = cases[-1].find("failure")
    assert blank is not None
    assert (blank.get("message"), blank.text) == ("FAIL", " \t\n ")
    waived = cases[[r.verdict for r in results].index(Verdict.WAIVED)]
    assert [child.tag for child in waived] == ["properties"]  # no message: no system-out
    assert "\x1b" not in written.decode("utf-8")


def test_junit_of_a_run_without_results_is_well_formed(tmp_path: Path) -> None:
    outcome = RunOutcome(phase="alpha", results=[])
    written = _written(tmp_path, outcome, "m")
    assert written == _reference_junit(outcome, "m")
    suite = ET.fromstring(written).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), len(suite)) == ("0", 0)


_HOSTILE_CHARS = st.sampled_from(list("&<>\"'\t\r\n ]\x00\x0b\x1b\x1f\x85\u2028\ud800\udfff\ufffe"))
_TEXTS = st.text(alphabet=st.one_of(_HOSTILE_CHARS, st.characters()), max_size=30)
_RESULTS = st.builds(
    GateResult,
    nodeid=_TEXTS,
    gate=_TEXTS,
    item=_TEXTS,
    verdict=st.sampled_from(Verdict),
    message=_TEXTS,
    param=st.none() | _TEXTS,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(phase=_TEXTS, migration_id=_TEXTS, results=st.lists(_RESULTS, max_size=4))
def test_junit_means_what_the_elementtree_writer_meant(
    tmp_path_factory: pytest.TempPathFactory,
    phase: str,
    migration_id: str,
    results: list[GateResult],
) -> None:
    outcome = RunOutcome(phase=phase, results=results)
    written = _written(tmp_path_factory.mktemp("junit"), outcome, migration_id)
    reference = _reference_junit(outcome, migration_id)
    assert _tree(ET.fromstring(written)) == _tree(ET.fromstring(reference))
