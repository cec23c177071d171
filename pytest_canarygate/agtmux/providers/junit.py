"""Read a JUnit XML report (the v5 build's tests) into a :class:`BuildResult`.

The report is parsed as a stream with defusedxml, which refuses a DOCTYPE and any entity
declaration (no expansion, nothing fetched), and every element is dropped once it has been
counted, so a report of any size costs the memory of its deepest path. A test is one
``(classname, name)`` pair: a case repeated any number of times counts once, and fails if any of
its repetitions failed. ``failure``, ``error`` and ``skipped`` are found in any XML namespace
and at any depth below their ``testcase``; one outside every testcase fails the build too.

What the report is for (docs/operations-contract.md): the root element's ``<properties>``
``agtmux.version`` and ``agtmux.commit``, its ``timestamp`` (when the run started, with a UTC
offset), the ``fmt`` and ``clippy`` steps as testcases of a testsuite named ``just-verify`` (not
counted as tests), and the crate of every other test: its testsuite's name up to ``::``.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import defusedxml
import defusedxml.ElementTree as SafeET

from pytest_canarygate.agtmux.records import BuildCheck
from pytest_canarygate.agtmux.records import BuildResult
from pytest_canarygate.agtmux.records import RecordError
from pytest_canarygate.agtmux.records import datetime_to_ms

__all__ = [
    "COMMIT_PROPERTY",
    "VERIFY_SUITE",
    "VERSION_PROPERTY",
    "JUnitReport",
    "parse_junit",
    "read_junit",
]

VERIFY_SUITE = "just-verify"
"""The testsuite whose testcases are ``just verify``'s other steps (``fmt``, ``clippy``)."""
VERSION_PROPERTY = "agtmux.version"
COMMIT_PROPERTY = "agtmux.commit"
_COMMIT = re.compile(r"[0-9a-fA-F]{7,64}")
_CHECK_OUTCOMES = ("passed", "skipped", "failed", "failed")  # by outcome, an error is a failure

_ROOTS = ("testsuites", "testsuite")
# A test's outcome; the worst of its repetitions counts.
_PASSED, _SKIPPED, _ERROR, _FAILURE = range(4)
_OUTCOMES = {"skipped": _SKIPPED, "error": _ERROR, "failure": _FAILURE}
_CHUNK = 1 << 16


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True)
class JUnitReport:
    """What :func:`read_junit` read: the totals, the report's size and sha256, and its text
    when it is at most ``keep_bytes`` long (None otherwise)."""

    result: BuildResult
    size: int
    sha256: str
    text: str | None


class _Source:
    """The report as iterparse reads it: checked to be UTF-8 as it goes, hashed, counted, and
    its first ``keep_bytes`` kept."""

    def __init__(self, stream: _Readable, keep_bytes: int) -> None:
        self.stream = stream
        self.keep_bytes = keep_bytes
        self.head = bytearray()
        self.size = 0
        self.digest = hashlib.sha256()
        self.decoder = codecs.getincrementaldecoder("utf-8")()

    def read(self, size: int = _CHUNK) -> bytes:
        data = self.stream.read(size if size and size > 0 else _CHUNK)
        try:
            self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            at = self.size + exc.start
            raise RecordError("", f"not UTF-8 ({exc.reason} at byte {at})") from None
        self.digest.update(data)
        if len(self.head) <= self.keep_bytes:
            self.head += data[: self.keep_bytes + 1 - len(self.head)]
        self.size += len(data)
        return data


def _key(text: str) -> bytes:
    """A test's identity in 16 bytes: a million tests cost tens of MB, not their names."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _local(tag: object) -> str:
    """``testcase`` for ``testcase`` and ``{any namespace}testcase``."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def read_junit(stream: _Readable, *, keep_bytes: int = 0) -> JUnitReport:
    """Count the unique tests of the report read from ``stream`` and their outcomes.

    The totals are counted, not read from attributes, so a report whose header disagrees with
    its cases cannot claim more than it holds. Raises :class:`RecordError` on anything else
    (not UTF-8, not well-formed, a DOCTYPE or entity declaration, another root element).
    """
    source = _Source(stream, keep_bytes)
    outcomes: dict[bytes, int] = {}
    failing: dict[bytes, str] = {}
    crate_of: dict[bytes, str] = {}
    checks: dict[str, int] = {}
    check_of: dict[bytes, str] = {}
    properties: dict[str, str] = {}
    started_at_ms: int | None = None
    cases: list[tuple[bytes, str, list[int]]] = []  # open testcases, innermost last
    suites: list[str] = []  # names of the open testsuites
    path: list[ET.Element] = []  # open elements, the root first

    def record(key: bytes, name: str, outcome: int) -> None:
        worst = max(outcome, outcomes.get(key, _PASSED))
        outcomes[key] = worst
        if worst >= _ERROR:
            failing.setdefault(key, name)

    try:
        for event, element in SafeET.iterparse(
            source, events=("start", "end"), forbid_dtd=True, forbid_entities=True
        ):
            local = _local(element.tag)
            if event == "start":
                if not path and local not in _ROOTS:
                    raise RecordError(
                        f"<{element.tag}>", "root element is neither <testsuites> nor <testsuite>"
                    )
                path.append(element)
                if len(path) == 1:
                    started_at_ms = _timestamp(element.get("timestamp"))
                if local == "testsuite":
                    suites.append(element.get("name") or "?")
                elif local == "testcase":
                    name = element.get("name") or "?"
                    classname = element.get("classname") or ""
                    full_name = f"{classname}::{name}" if classname else name
                    key = _key(f"{classname}\0{name}")
                    if suites and suites[-1] == VERIFY_SUITE:
                        key = _key(f"\0{VERIFY_SUITE}\0{name}")
                        checks.setdefault(name, _PASSED)
                        check_of[key] = name
                    else:
                        crate_of[key] = (suites[-1] if suites else classname).split("::")[0]
                    cases.append((key, full_name, [_PASSED]))
                elif local == "property" and len(path) == 3 and _local(path[1].tag) == "properties":
                    _property(properties, element.get("name"), element.get("value"))
                elif local in _OUTCOMES:
                    outcome = _OUTCOMES[local]
                    for case in cases:
                        case[2][0] = max(case[2][0], outcome)
                    if not cases and outcome >= _ERROR:
                        where = suites[-1] if suites else "the report"
                        name = f"{where} ({local} outside any testcase)"
                        record(_key(f"\0\0{name}"), name, outcome)
                continue
            # "end": count it, then drop it from its parent so nothing accumulates.
            if local == "testcase" and cases:
                key, full_name, (outcome,) = cases.pop()
                if key in check_of:
                    check = check_of[key]
                    checks[check] = max(checks[check], outcome)
                    if outcome >= _ERROR:
                        failing.setdefault(key, f"{VERIFY_SUITE}::{check}")
                else:
                    record(key, full_name, outcome)
            elif local == "testsuite" and suites:
                suites.pop()
            path.pop()
            element.clear()
            if path:
                # The parser runs ahead of the events, so later siblings may be there already.
                path[-1].remove(element)
    except defusedxml.DefusedXmlException as exc:
        raise RecordError(
            "", f"DOCTYPE/ENTITY declarations are refused (entity expansion): {exc}"
        ) from None
    except ET.ParseError as exc:
        line, column = exc.position
        raise RecordError(f"line {line}", f"not well-formed XML (column {column}): {exc}") from None
    values = list(outcomes.values())
    passing_crates = {crate_of.get(k, "") for k, outcome in outcomes.items() if outcome == _PASSED}
    result = BuildResult(
        tests=len(values),
        failures=values.count(_FAILURE),
        errors=values.count(_ERROR),
        skipped=values.count(_SKIPPED),
        failing=tuple(failing.values()),
        version=properties.get(VERSION_PROPERTY),
        commit=properties.get(COMMIT_PROPERTY),
        started_at_ms=started_at_ms,
        checks=tuple(BuildCheck(n, _CHECK_OUTCOMES[o]) for n, o in sorted(checks.items())),
        crates=tuple(sorted(passing_crates - {""})),
    )
    text = bytes(source.head).decode("utf-8") if source.size <= keep_bytes else None
    return JUnitReport(result, source.size, source.digest.hexdigest(), text)


def _timestamp(value: str | None) -> int | None:
    """The root's ``timestamp``: an ISO 8601 time with a UTC offset, or absent."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError("@timestamp", f"not an ISO 8601 time: {value!r}") from None
    if when.utcoffset() is None:
        raise RecordError("@timestamp", f"{value!r} has no UTC offset")
    return datetime_to_ms(when)


def _property(properties: dict[str, str], name: str | None, value: str | None) -> None:
    """One of the root's properties; the two this reader knows are checked."""
    if name not in (VERSION_PROPERTY, COMMIT_PROPERTY):
        return
    where = f"properties[{name}]"
    if not value or value != value.strip():
        raise RecordError(where, f"expected a non-empty value without spaces, got {value!r}")
    if name == COMMIT_PROPERTY and not _COMMIT.fullmatch(value):
        raise RecordError(where, f"expected 7 to 64 hex digits, got {value!r}")
    if properties.setdefault(name, value) != value:
        raise RecordError(where, f"given twice: {properties[name]!r} and {value!r}")


def parse_junit(data: bytes) -> BuildResult:
    """:func:`read_junit` of a report held in memory."""
    return read_junit(io.BytesIO(data)).result
