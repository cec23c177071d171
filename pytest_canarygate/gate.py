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
#: The fixture a test judging several gates is parametrized over, one instance per gate.
GATE_ID_FIXTURE = "canarygate_gate_id"


def gate(*gate_ids: str) -> Callable[[F], F]:
    """Mark a test as the gate ``gate_ids[0]`` of the pack's catalog, or as each of several.

    One check can be what several runbook items ask (the restore dry-run is asked for before
    alpha, at its exit and before canary): ``@gate("a", "b")`` runs the test once per gate of
    the phase, each instance judged and reported as its own gate under its own item. A test
    may take ``canarygate_gate_id`` to learn which one it is judging.
    """
    if not gate_ids or not all(isinstance(g, str) and g for g in gate_ids):
        raise TypeError("@gate needs one or more gate ids (non-empty strings)")
    if len(set(gate_ids)) != len(gate_ids):
        raise TypeError(f"@gate{gate_ids!r} names a gate twice")
    mark = getattr(pytest.mark, GATE_MARK)(*gate_ids)

    def decorate(function: F) -> F:
        marked: F = mark(function)
        if len(gate_ids) > 1:
            marked = pytest.mark.usefixtures(GATE_ID_FIXTURE)(marked)
        return marked

    return decorate


def gate_ids(mark: pytest.Mark) -> tuple[str, ...]:
    """The gate ids a ``@gate`` mark names (as given to it)."""
    return tuple(mark.args)


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
