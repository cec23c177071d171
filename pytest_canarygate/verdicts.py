"""Gate verdicts and the exceptions gates raise to reach them.

A gate is an ordinary pytest test. It passes only by returning normally after asserting on
positive evidence. Anything else maps to exactly one verdict:

- ``AssertionError`` or :class:`GateFailed` -> FAIL (the criterion is violated);
- :class:`Unobservable` (or any :class:`~pytest_canarygate.errors.EndpointError`) -> UNOBSERVABLE;
- :class:`Inconclusive` -> INCONCLUSIVE (too little data, window not covered);
- a skip or xfail -> FAIL: gates never skip;
- any other exception -> FAIL, reported as a gate error.
"""

from __future__ import annotations

from enum import Enum

import pytest

from pytest_canarygate.errors import EndpointError


class Verdict(str, Enum):
    """The one outcome every gate ends in."""

    PASS = "PASS"
    FAIL = "FAIL"
    UNOBSERVABLE = "UNOBSERVABLE"
    INCONCLUSIVE = "INCONCLUSIVE"
    WAIVED = "WAIVED"

    @property
    def allows_promotion(self) -> bool:
        """True for the verdicts a promotion may go ahead on."""
        return self in (Verdict.PASS, Verdict.WAIVED)

    def __str__(self) -> str:
        return self.value


class GateOutcome(Exception):
    """Base of the exceptions a gate raises to end with a verdict other than PASS."""

    verdict: Verdict = Verdict.FAIL


class GateFailed(GateOutcome, AssertionError):
    """The criterion is violated (same as a failed ``assert``)."""

    verdict = Verdict.FAIL


class Unobservable(GateOutcome):
    """The evidence needed could not be read: missing endpoint or method, refused, timeout,
    malformed answer. The message says which endpoint and method."""

    verdict = Verdict.UNOBSERVABLE


class Inconclusive(GateOutcome):
    """The evidence was read but proves nothing yet: too little data or a window not covered."""

    verdict = Verdict.INCONCLUSIVE


#: What a gate raises to end in a verdict on purpose (anything else :func:`verdict_of` calls
#: a gate error): its message says the verdict, and where it was raised adds nothing.
DELIBERATE = (GateOutcome, EndpointError, AssertionError)


def verdict_of(exc: BaseException) -> tuple[Verdict, str]:
    """The verdict (and its message) a gate ends in when it raised ``exc``."""
    if isinstance(exc, GateOutcome):
        return exc.verdict, str(exc)
    if isinstance(exc, EndpointError):
        return Verdict.UNOBSERVABLE, str(exc)
    if isinstance(exc, AssertionError):
        return Verdict.FAIL, str(exc) or "assertion failed"
    return Verdict.FAIL, f"gate error: {type(exc).__name__}: {exc}"


def skip_reason(report: pytest.TestReport) -> str:
    """The reason pytest recorded for a skipped report."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)
