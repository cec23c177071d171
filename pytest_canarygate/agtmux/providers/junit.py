"""Read a JUnit XML report (the v5 build's tests) into a :class:`BuildResult`.

defusedxml is not available, so documents carrying a DOCTYPE or ENTITY declaration are refused
before parsing: without a DTD there is nothing to expand, and expat fetches no external entity.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from pytest_canarygate.agtmux.records import BuildResult
from pytest_canarygate.agtmux.records import RecordError

__all__ = ["parse_junit"]

_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def parse_junit(data: bytes) -> BuildResult:
    """Count ``<testcase>`` elements and their failure/error/skipped children.

    The totals are counted, not read from attributes, so a report whose header disagrees with
    its cases cannot claim more than it holds. Raises :class:`RecordError` on anything else.
    """
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError("", f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if _DECLARATION.search(data):
        raise RecordError("", "DOCTYPE/ENTITY declarations are refused (entity expansion)")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        line, column = exc.position
        raise RecordError(f"line {line}", f"not well-formed XML (column {column}): {exc}") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise RecordError(f"<{root.tag}>", "root element is neither <testsuites> nor <testsuite>")
    tests = failures = errors = skipped = 0
    failing: list[str] = []
    for case in root.iter("testcase"):
        tests += 1
        name = case.get("name") or "?"
        classname = case.get("classname")
        full_name = f"{classname}::{name}" if classname else name
        if case.find("failure") is not None:
            failures += 1
            failing.append(full_name)
        elif case.find("error") is not None:
            errors += 1
            failing.append(full_name)
        elif case.find("skipped") is not None:
            skipped += 1
    return BuildResult(tests, failures, errors, skipped, tuple(failing))
