"""What a CI system reads without knowing canarygate: a JUnit XML of the gates and an in-toto
statement with the standard test-result predicate, both inside the bundle and signed with it.

- ``junit.xml``: one ``testcase`` per gate instance, with gate, item, phase and verdict as
  properties. FAIL is a ``failure``; UNOBSERVABLE and INCONCLUSIVE are ``error``s (the gate
  could not judge, which is not the same as judging against), so a dashboard does not count
  them as failed tests. WAIVED passes, with its verdict in the properties.
- ``test-result.dsse.json``: a DSSE envelope (signed by the run's key) over an in-toto
  Statement v1 whose predicate is ``https://in-toto.io/attestation/test-result/v0.1``
  (in-toto/attestation, spec/predicates/test-result.md): ``result`` PASSED only when the run is
  promotable, WARNED when every gate passed or was waived yet the run is no sign-off, else
  FAILED; the gate instances by outcome; the config and catalog the run judged with as its
  ``configuration``; the observation and the JUnit file as its subjects.

Both are written before the bundle is sealed, so the bundle's own statement lists them.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from securesystemslib.dsse import Envelope
from securesystemslib.signer import Signer

from pytest_canarygate.observation import LEGACY_OBSERVATION_FILE
from pytest_canarygate.observation import OBSERVATION_FILE
from pytest_canarygate.results import GateResult
from pytest_canarygate.results import RunOutcome
from pytest_canarygate.signing import PAYLOAD_TYPE
from pytest_canarygate.signing import STATEMENT_TYPE
from pytest_canarygate.signing import file_sha256
from pytest_canarygate.verdicts import Verdict

__all__ = [
    "JUNIT_FILE",
    "TEST_RESULT_FILE",
    "TEST_RESULT_PREDICATE",
    "outcome_as_test_result",
    "write_ci_outputs",
    "write_junit",
]

JUNIT_FILE = "junit.xml"
TEST_RESULT_FILE = "test-result.dsse.json"
TEST_RESULT_PREDICATE = "https://in-toto.io/attestation/test-result/v0.1"
#: Files of the bundle a test-result statement names: what was tested, and with what (the
#: observation under whichever name this version writes it).
_SUBJECT_FILES = (OBSERVATION_FILE.as_posix(), LEGACY_OBSERVATION_FILE.as_posix(), JUNIT_FILE)
_CONFIG_FILE = "canarygate.toml"
_CANNOT_JUDGE = (Verdict.UNOBSERVABLE, Verdict.INCONCLUSIVE)
# XML 1.0 allows no other control characters, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _instance(result: GateResult) -> str:
    return f"{result.gate}[{result.param}]" if result.param else result.gate


def write_junit(path: Path, outcome: RunOutcome, *, migration_id: str) -> None:
    """Write the JUnit XML of the run's gate instances to ``path``."""
    failures = sum(1 for r in outcome.results if r.verdict is Verdict.FAIL)
    errors = sum(1 for r in outcome.results if r.verdict in _CANNOT_JUDGE)
    suites = ET.Element("testsuites")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=_xml_text(f"{migration_id} {outcome.phase}"),
        tests=str(len(outcome.results)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
    )
    for result in outcome.results:
        case = ET.SubElement(
            suite, "testcase", classname=_xml_text(result.item), name=_xml_text(_instance(result))
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
            ET.SubElement(properties, "property", name=name, value=_xml_text(value))
        message = _xml_text(result.message)
        first_line = message.strip().splitlines()[0] if message.strip() else result.verdict.value
        if result.verdict is Verdict.FAIL:
            ET.SubElement(case, "failure", message=first_line, type="FAIL").text = message
        elif result.verdict in _CANNOT_JUDGE:
            kind = result.verdict.value
            ET.SubElement(case, "error", message=first_line, type=kind).text = message
        elif message:
            ET.SubElement(case, "system-out").text = message
    # One line per test case, not indented: at thousands of gate instances the indent is a
    # sizeable share of the file and of the time to write it.
    suite.text = "\n"
    for case in suite:
        case.tail = "\n"
    path.write_bytes(ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n")


def outcome_as_test_result(
    outcome: RunOutcome, bundle: Path, run: Mapping[str, Any]
) -> dict[str, Any]:
    """The test-result predicate of the run (see the module docstring)."""
    passed = [_instance(r) for r in outcome.results if r.verdict is Verdict.PASS]
    warned = [_instance(r) for r in outcome.results if r.verdict is Verdict.WAIVED]
    failed = [_instance(r) for r in outcome.results if not r.verdict.allows_promotion]
    if outcome.promotable:
        result = "PASSED"
    elif outcome.results and not failed and not outcome.incomplete:
        result = "WARNED"
    else:
        result = "FAILED"
    configuration: list[dict[str, Any]] = []
    if (bundle / _CONFIG_FILE).is_file():
        configuration.append(
            {"name": _CONFIG_FILE, "digest": {"sha256": file_sha256(bundle / _CONFIG_FILE)}}
        )
    catalog_digest = run.get("catalog_digest")
    if isinstance(catalog_digest, str) and catalog_digest:
        configuration.append({"name": "catalog", "digest": {"sha256": catalog_digest}})
    return {
        "result": result,
        "configuration": configuration,
        "passedTests": passed,
        "warnedTests": warned,
        "failedTests": failed,
    }


def write_ci_outputs(
    bundle: Path,
    outcome: RunOutcome,
    run: Mapping[str, Any],
    signer: Signer | None,
) -> None:
    """Write ``junit.xml`` and ``test-result.dsse.json`` into ``bundle`` (before sealing)."""
    write_junit(bundle / JUNIT_FILE, outcome, migration_id=str(run.get("migration_id")))
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": name, "digest": {"sha256": file_sha256(bundle / name)}}
            for name in _SUBJECT_FILES
            if (bundle / name).is_file()
        ],
        "predicateType": TEST_RESULT_PREDICATE,
        "predicate": outcome_as_test_result(outcome, bundle, run),
    }
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode("utf-8")
    envelope = Envelope(payload=payload, payload_type=PAYLOAD_TYPE, signatures={})
    if signer is not None:
        envelope.sign(signer)
    document = json.dumps(envelope.to_dict(), indent=2, sort_keys=True) + "\n"
    (bundle / TEST_RESULT_FILE).write_text(document)
