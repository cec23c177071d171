"""What gate authors use from the engine: the ``@gate`` marker and pack parameter values."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

from pytest_canarygate.verdicts import Inconclusive
from pytest_canarygate.verdicts import Unobservable
from pytest_canarygate.verdicts import Verdict

F = TypeVar("F", bound=Callable[..., object])

#: The marker ``@gate`` sets; the engine reads it to match a test to its catalog entry.
GATE_MARK = "canarygate_gate"


def gate(gate_id: str) -> Callable[[F], F]:
    """Mark a test as the gate ``gate_id`` of the pack's catalog."""
    mark = getattr(pytest.mark, GATE_MARK)(gate_id)

    def decorate(function: F) -> F:
        return mark(function)  # type: ignore[no-any-return]

    return decorate


def parameter_value(request: pytest.FixtureRequest) -> str:
    """The value the engine parametrized a pack fixture with (a tmux session, a host).

    A pack's parameter fixture returns this. When the observation had nothing to judge, the
    gate instance ends UNOBSERVABLE or INCONCLUSIVE with the engine's reason.
    """
    value = getattr(request, "param", None)
    verdict = getattr(value, "verdict", None)
    if verdict is Verdict.INCONCLUSIVE:
        raise Inconclusive(value.reason)  # type: ignore[union-attr]
    if verdict is Verdict.UNOBSERVABLE:
        raise Unobservable(value.reason)  # type: ignore[union-attr]
    if not isinstance(value, str):
        raise Unobservable(
            f"{request.fixturename} was not parametrized: gates run only with --phase"
        )
    return value
