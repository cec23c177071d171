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
# A value neither _xml_text nor _escape_attribute changes: no control character, noncharacter
# or surrogate, no markup character.
_PLAIN_ATTRIBUTE = re.compile('[^\x00-\x1f\ufffe\uffff\ud800-\udfff&<>"]*')


def _xml_text(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _instance(result: GateResult) -> str:
    return f"{result.gate}[{result.param}]" if result.param else result.gate


def _escape_text(text: str) -> str:
    """``text`` (through ``_xml_text`` already) as XML character data: ``&``, ``<`` and ``>``
    as entities. A CR stays, and reads back as LF, as ElementTree wrote it."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _escape_attribute(text: str) -> str:
    """``text`` as a double-quoted XML attribute value: as character data, and the quote, CR,
    LF and tab as character references, which a parser does not normalize to spaces."""
    text = _escape_text(text)
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    if "\t" in text:
        text = text.replace("\t", "&#09;")
    return text


def _attribute(value: str) -> str:
    """``value`` through ``_xml_text``, escaped as an attribute value."""
    if _PLAIN_ATTRIBUTE.fullmatch(value):
        return value  # most are: one scan instead of eight
    return _escape_attribute(_xml_text(value))


def _element(tag: str, message: str, kind: str, text: str) -> str:
    """A ``failure`` or ``error`` element; ``message`` and ``text`` have passed ``_xml_text``."""
    start = f'<{tag} message="{_escape_attribute(message)}" type="{_escape_attribute(kind)}"'
    return f"{start}>{_escape_text(text)}</{tag}>" if text else f"{start} />"


def write_junit(path: Path, outcome: RunOutcome, *, migration_id: str) -> None:
    """Write the JUnit XML of the run's gate instances to ``path``.

    The text is built directly (at thousands of gate instances ElementTree's serializer is most
    of the time to write it), with what ElementTree would write for the same tree: the same
    elements, attributes in the same order, the same escapes. One line per test case, not
    indented: the indent would be a sizeable share of the file.
    """
    failures = sum(1 for r in outcome.results if r.verdict is Verdict.FAIL)
    errors = sum(1 for r in outcome.results if r.verdict in _CANNOT_JUDGE)
    suite_name = _attribute(f"{migration_id} {outcome.phase}")
    phase = _attribute(outcome.phase)
    lines = [
        "<?xml version='1.0' encoding='utf-8'?>",
        f'<testsuites><testsuite name="{suite_name}" tests="{len(outcome.results)}" '
        f'failures="{failures}" errors="{errors}" skipped="0">',
    ]
    for result in outcome.results:
        item = _attribute(result.item)
        verdict = _attribute(result.verdict.value)
        message = _xml_text(result.message)
        first_line = message.strip().splitlines()[0] if message.strip() else result.verdict.value
        if result.verdict is Verdict.FAIL:
            body = _element("failure", first_line, "FAIL", message)
        elif result.verdict in _CANNOT_JUDGE:
            body = _element("error", first_line, result.verdict.value, message)
        elif message:
            body = f"<system-out>{_escape_text(message)}</system-out>"
        else:
            body = ""
        lines.append(
            f'<testcase classname="{item}" name="{_attribute(_instance(result))}"><properties>'
            f'<property name="gate" value="{_attribute(result.gate)}" />'
            f'<property name="item" value="{item}" />'
            f'<property name="phase" value="{phase}" />'
            f'<property name="verdict" value="{verdict}" />'
            f'<property name="param" value="{_attribute(result.param or "")}" />'
            f'<property name="nodeid" value="{_attribute(result.nodeid)}" />'
            f"</properties>{body}</testcase>"
        )
    lines.append("</testsuite></testsuites>\n")
    path.write_bytes("\n".join(lines).encode("utf-8"))


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
