"""A guard for tests of reads that must not block: fail instead of hanging the suite."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

#: How long a guarded call may take before the test fails (a guard, never an assertion).
GUARD_S = 30.0


def promptly(call: Callable[[], Any]) -> Any:
    """``call()`` in a thread; fail instead of hanging if it has not returned within
    :data:`GUARD_S` (a guard only: elapsed time is never asserted)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(GUARD_S)
    if thread.is_alive():
        pytest.fail(f"{call} did not return within {GUARD_S} s: a read blocked")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
