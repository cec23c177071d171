"""The decorator that turns a test into a gate of the catalog."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., object])


def gate(gate_id: str) -> Callable[[F], F]:
    """Mark a test as the gate ``gate_id`` of the catalog (``gates/catalog.toml``)."""
    mark = pytest.mark.canarygate_gate(gate_id)

    def decorate(function: F) -> F:
        return mark(function)  # type: ignore[no-any-return]

    return decorate
