"""What the pack derives from one observed record, computed once per process for every gate.

A run's records (``CallRecord``, ``EvidenceReading``) and their answers live for the whole run
in one process, so a value derived from one of them (the answer decoded, shape- and
time-checked, indexed) is the same for every gate that reads it. A value that depends only on
an answer is kept with the answer (two readings may share one: ``derived(..., answer=...)``),
for as long as every record holding it lives.
Computing it once keeps a gate's cost independent of the fleet. A failure
(:class:`~pytest_canarygate.verdicts.GateOutcome`) is kept too and raised afresh to every gate
that asks, so a malformed answer fails each of them exactly as before.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Callable
from collections.abc import Hashable
from typing import Any
from typing import TypeVar
from typing import cast

from pytest_canarygate.verdicts import GateOutcome

T = TypeVar("T")

#: (the other records the value was derived from, the value, the failure)
_Entry = tuple[tuple[object, ...], Any, GateOutcome | None]
_BY_RECORD: dict[int, dict[Hashable, _Entry]] = {}
#: Values derived from an answer alone, by the answer's id: (the values, the ids of the
#: records holding the answer that will drop them when they die). A record holds its answer,
#: so the answer, and its id, outlive the values.
_BY_ANSWER: dict[int, tuple[dict[Hashable, _Entry], set[int]]] = {}
#: Records that take no weak reference: kept alive so that their id is never reused.
_HELD: dict[int, object] = {}
_NO_ANSWER = object()


def derived(
    record: object,
    key: Hashable,
    compute: Callable[[], T],
    *,
    also: tuple[object, ...] = (),
    answer: object = _NO_ANSWER,
) -> T:
    """``compute()``, computed once per ``record`` and ``key`` (and the records ``also`` it
    depends on) while the record lives; a gate outcome it raised is raised again, as a fresh
    exception, on every later call. ``key`` must name everything else ``compute`` depends on.

    With ``answer`` (an object ``record`` holds), the value is kept with the answer: every
    record holding that same answer gets it, until one of them dies."""
    if answer is not _NO_ANSWER:
        slot = _answer_slot(record, answer)
    else:
        found = _BY_RECORD.get(id(record))
        slot = found if found is not None else _slot_for(record)
    full_key = (key, *(id(other) for other in also))
    entry = slot.get(full_key)
    if entry is None:
        try:
            entry = (also, compute(), None)
        except GateOutcome as exc:
            # Kept without its traceback, whose frames would hold the record alive.
            entry = (also, None, copy.copy(exc))
        slot[full_key] = entry
    _, value, failure = entry
    if failure is not None:
        raise copy.copy(failure)  # a fresh exception: no traceback of an earlier gate
    return cast(T, value)


def _slot_for(record: object) -> dict[Hashable, _Entry]:
    ident = id(record)
    slot: dict[Hashable, _Entry] = {}
    _BY_RECORD[ident] = slot
    try:
        weakref.finalize(record, _BY_RECORD.pop, ident, None)
    except TypeError:
        _HELD[ident] = record
    return slot


def _answer_slot(record: object, answer: object) -> dict[Hashable, _Entry]:
    ident = id(answer)
    found = _BY_ANSWER.get(ident)
    if found is None:
        found = _BY_ANSWER[ident] = ({}, set())
    slot, holders = found
    if id(record) not in holders:
        holders.add(id(record))
        try:
            weakref.finalize(record, _BY_ANSWER.pop, ident, None)
        except TypeError:
            _HELD[id(record)] = record
    return slot


def cached_records() -> int:
    """How many records and answers have derived values kept (for tests and benchmarks)."""
    return len(_BY_RECORD) + len(_BY_ANSWER)
