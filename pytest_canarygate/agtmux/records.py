"""Typed evidence records and their validation from JSON-shaped data.

The shapes follow daemon facts sections 4-11 and ``docs/operations-contract.md``. Every parser
takes already-decoded data (JSON, a TOML table) and raises :class:`RecordError` naming the key
that is wrong, and nothing else whatever the input; the providers turn that into a
``ProtocolError`` naming the endpoint, file and line.

Strict on purpose: integers are JSON integers (never booleans, floats or strings), non-negative,
and no later than the last millisecond a datetime holds; numbers are finite and non-negative;
enumerations come from their known set. Nothing malformed is dropped. Two records with one
identity (an alert id in a ledger answer, a snapshot id) contradict each other
(:func:`check_distinct`), except where the contract defines the later one as an update: the
alert ledger file's resolution lines, folded by :class:`AlertLedger`, which may resolve an alert
or raise its severity but never lower it, reopen or re-date its resolution, or move its creation.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timezone
from enum import IntEnum
from typing import TypeVar

__all__ = [
    "MAX_INTEGER",
    "AlertEntry",
    "AlertLedger",
    "ArchiveManifest",
    "BindingStats",
    "BuildCheck",
    "BuildResult",
    "CursorStats",
    "DependencyGate",
    "LogEvent",
    "RecordError",
    "RestartPolicy",
    "RuntimeSelector",
    "SessionRoute",
    "Severity",
    "SnapshotMetadata",
    "SupervisorEvent",
    "SupervisorState",
    "SupervisorStatus",
    "check_distinct",
    "datetime_to_ms",
    "kept_since",
    "ms_to_datetime",
    "parse_alert_entry",
    "parse_archive_manifest",
    "parse_binding_stats",
    "parse_control",
    "parse_cursor_stats",
    "parse_history",
    "parse_runtime_selector",
    "parse_session_route",
    "parse_snapshot",
    "parse_snapshot_list",
    "parse_supervisor_event",
    "parse_supervisor_status",
]

T = TypeVar("T")

SNAPSHOT_TRIGGERS = ("Periodic", "Shutdown", "Manual")
RESOLVE_POLICIES = ("AutoResolve", "ManualAck")
SUPERVISOR_EVENT_KINDS = (
    "failure",
    "restart",
    "hold_down",
    "success",
    "stage_started",
    "stage_ready",
)
#: The supervisor events about its startup stages; they carry a ``stage``.
STAGE_EVENT_KINDS = ("stage_started", "stage_ready")
#: ``ComponentStage`` serde names, in ``startup_order()`` (daemon facts 5.5).
COMPONENT_STAGES = ("Sources", "Gateway", "Daemon", "Ui")
DAEMON_NAMES = ("v4", "v5")

MAX_INTEGER = 253_402_300_799_999
"""The largest integer a record field takes: the last millisecond of the year 9999 since the
epoch, the latest time a datetime holds (so every ``*_ms`` converts); far above any count."""


def ms_to_datetime(ms: int) -> datetime:
    """Epoch milliseconds -> aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def datetime_to_ms(when: datetime) -> int:
    """Aware datetime -> epoch milliseconds; a naive datetime is a programming error."""
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r}: pass an aware (UTC) datetime")
    return math.floor(when.timestamp() * 1000)


class RecordError(ValueError):
    """A record does not have its documented shape; ``key`` is the path to the bad value."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}" if key else problem)


def _join(prefix: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{prefix}[{name}]"
    return f"{prefix}.{name}" if prefix else name


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60


def _shown(value: object) -> str:
    """A one-line, bounded repr (however large or deep ``value`` is)."""
    text = _REPR.repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def _bad(key: str, expected: str, value: object) -> RecordError:
    return RecordError(key, f"expected {expected}, got {_type_name(value)} {_shown(value)}")


def _show_id(identity: str) -> str:
    """An identity as a message shows it: plain when it is, quoted (one line) otherwise."""
    if identity and identity.isprintable() and " " not in identity and len(identity) <= 80:
        return identity
    text = json.dumps(identity)
    return text if len(text) <= 80 else text[:80] + '..."'


class _Fields:
    """Typed access to one JSON object, raising :class:`RecordError` with the key path."""

    def __init__(self, value: object, key: str = "") -> None:
        if not isinstance(value, Mapping):
            raise _bad(key, "an object", value)
        self.data: Mapping[str, object] = value
        self.key = key

    def value(self, name: str) -> object:
        if name not in self.data:
            raise RecordError(_join(self.key, name), "missing")
        value = self.data[name]
        if value is None:
            raise _bad(_join(self.key, name), "a value", value)
        return value

    def integer(self, name: str, *, minimum: int = 0) -> int:
        value = self.value(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _bad(_join(self.key, name), f"an integer >= {minimum}", value)
        if value > MAX_INTEGER:
            raise _bad(_join(self.key, name), f"an integer <= {MAX_INTEGER} (year 9999)", value)
        return value

    def opt_integer(self, name: str, *, minimum: int = 0) -> int | None:
        if self.data.get(name) is None:
            return None
        return self.integer(name, minimum=minimum)

    def number(self, name: str, *, minimum: float = 0.0) -> float:
        value = self.value(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _bad(_join(self.key, name), f"a number >= {minimum:g}", value)
        try:
            number = float(value)  # an int too large for a double overflows here
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or number < minimum:
            raise _bad(_join(self.key, name), f"a finite number >= {minimum:g}", value)
        return number

    def boolean(self, name: str) -> bool:
        value = self.value(name)
        if not isinstance(value, bool):
            raise _bad(_join(self.key, name), "true or false", value)
        return value

    def text(self, name: str, *, choices: Sequence[str] = ()) -> str:
        value = self.value(name)
        if not isinstance(value, str):
            raise _bad(_join(self.key, name), "a string", value)
        if choices and value not in choices:
            raise _bad(_join(self.key, name), "one of " + ", ".join(choices), value)
        return value

    def opt_text(self, name: str) -> str | None:
        if self.data.get(name) is None:
            return None
        return self.text(name)

    def texts(self, name: str, *, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
        if default is not None and name not in self.data:
            return default
        values = self.array(name)
        out: list[str] = []
        for index, value in enumerate(values):
            if not isinstance(value, str):
                raise _bad(_join(_join(self.key, name), index), "a string", value)
            out.append(value)
        return tuple(out)

    def array(self, name: str) -> list[object]:
        value = self.value(name)
        if not isinstance(value, list | tuple):
            raise _bad(_join(self.key, name), "an array", value)
        return list(value)

    def obj(self, name: str) -> _Fields:
        return _Fields(self.value(name), _join(self.key, name))


def _items(value: object, key: str, parse: Callable[[object, str], T]) -> tuple[T, ...]:
    if not isinstance(value, list | tuple):
        raise _bad(key, "an array", value)
    return tuple(parse(item, _join(key, index)) for index, item in enumerate(value))


def check_distinct(
    records: Sequence[T],
    identity: Callable[[T], str],
    what: str,
    *,
    key: str = "",
    names: Sequence[str] | None = None,
) -> None:
    """Raise :class:`RecordError` if two ``records`` have one identity: they contradict each
    other, and neither may be picked. ``what`` names the identity ("alert", "snapshot");
    ``names`` says where each record was read (file names), by default its index under
    ``key``."""
    seen: dict[str, str] = {}
    for index, record in enumerate(records):
        ident = identity(record)
        here = names[index] if names is not None else _join(key, index)
        if ident in seen:
            raise RecordError(
                here,
                f"{what} {_show_id(ident)} is listed twice ({seen[ident]} and {here}): the "
                "evidence contradicts itself",
            )
        seen[ident] = here


# --- snapshots (daemon facts 4.1) ----------------------------------------------------------


@dataclass(frozen=True)
class SnapshotMetadata:
    """``SnapshotMetadata`` as the v5 library defines it (epoch ms, serde field names)."""

    snapshot_id: str
    created_at_ms: int
    projection_version: int
    session_count: int
    pane_count: int
    trigger: str  # "Periodic" | "Shutdown" | "Manual"
    size_bytes: int

    @property
    def created_at(self) -> datetime:
        """``created_at_ms`` as an aware UTC datetime."""
        return ms_to_datetime(self.created_at_ms)


def parse_snapshot(value: object, key: str = "") -> SnapshotMetadata:
    """Validate one ``SnapshotMetadata`` object."""
    f = _Fields(value, key)
    return SnapshotMetadata(
        snapshot_id=f.text("snapshot_id"),
        created_at_ms=f.integer("created_at_ms"),
        projection_version=f.integer("projection_version"),
        session_count=f.integer("session_count"),
        pane_count=f.integer("pane_count"),
        trigger=f.text("trigger", choices=SNAPSHOT_TRIGGERS),
        size_bytes=f.integer("size_bytes"),
    )


def parse_snapshot_list(value: object, key: str = "") -> tuple[SnapshotMetadata, ...]:
    """Validate an ``ops.snapshot_list`` result; returned oldest first. One ``snapshot_id``
    twice contradicts itself (:func:`check_distinct`)."""
    snapshots = _items(value, key, parse_snapshot)
    check_distinct(snapshots, lambda s: s.snapshot_id, "snapshot", key=key)
    return tuple(sorted(snapshots, key=lambda s: (s.created_at_ms, s.snapshot_id)))


# --- supervisor (daemon facts 5) -----------------------------------------------------------


@dataclass(frozen=True)
class RestartPolicy:
    """``RestartPolicy`` with the library's serde field names."""

    initial_backoff_ms: int
    multiplier: float
    max_backoff_ms: int
    jitter_pct: float
    failure_budget: int
    budget_window_ms: int
    holddown_ms: int


@dataclass(frozen=True)
class SupervisorState:
    """``SupervisorState``: ``name`` is "Ready", "Restarting" or "HoldDown"."""

    name: str
    attempt: int | None = None
    next_restart_ms: int | None = None
    until_ms: int | None = None


@dataclass(frozen=True)
class DependencyGate:
    """The ``DependencyGate`` a startup stage waited on."""

    stage: str
    all_ready: bool
    unready: tuple[str, ...]


@dataclass(frozen=True)
class SupervisorStatus:
    """The ``ops.supervisor_status`` answer. ``jitter_applied`` is optional: whether the runtime
    applies the policy's jitter to the delays it schedules (None when not exposed)."""

    state: SupervisorState
    policy: RestartPolicy
    startup_order: tuple[str, ...]
    dependency_gates: tuple[DependencyGate, ...]
    restart_count: int
    covers_from_ms: int
    as_of_ms: int
    jitter_applied: bool | None = None


@dataclass(frozen=True)
class SupervisorEvent:
    """One supervisor transition: failure, restart (scheduled), hold_down or success of the
    supervised child, or a startup stage started or ready (``stage``)."""

    at_ms: int
    kind: str
    process: str | None = None
    attempt: int | None = None
    after_ms: int | None = None
    until_ms: int | None = None
    stage: str | None = None

    @property
    def at(self) -> datetime:
        """``at_ms`` as an aware UTC datetime."""
        return ms_to_datetime(self.at_ms)


def _parse_policy(f: _Fields) -> RestartPolicy:
    return RestartPolicy(
        initial_backoff_ms=f.integer("initial_backoff_ms"),
        multiplier=f.number("multiplier"),
        max_backoff_ms=f.integer("max_backoff_ms"),
        jitter_pct=f.number("jitter_pct"),
        failure_budget=f.integer("failure_budget"),
        budget_window_ms=f.integer("budget_window_ms"),
        holddown_ms=f.integer("holddown_ms"),
    )


def _parse_state(value: object, key: str) -> SupervisorState:
    # serde's default enum form: "Ready", {"Restarting": {...}} or {"HoldDown": {...}}.
    if value == "Ready":
        return SupervisorState("Ready")
    if isinstance(value, Mapping) and len(value) == 1:
        ((name, body),) = value.items()
        if name == "Restarting":
            f = _Fields(body, _join(key, name))
            return SupervisorState(
                name, attempt=f.integer("attempt"), next_restart_ms=f.integer("next_restart_ms")
            )
        if name == "HoldDown":
            return SupervisorState(
                name, until_ms=_Fields(body, _join(key, name)).integer("until_ms")
            )
    raise _bad(key, '"Ready", {"Restarting": {...}} or {"HoldDown": {...}}', value)


def _parse_gates(f: _Fields) -> tuple[DependencyGate, ...]:
    gates = []
    table = f.obj("dependency_gate")
    for stage in table.data:
        g = table.obj(stage)
        gate = DependencyGate(stage, g.boolean("all_ready"), g.texts("unready"))
        if gate.all_ready == bool(gate.unready):
            raise RecordError(g.key, "all_ready contradicts the unready list")
        gates.append(gate)
    return tuple(gates)


def parse_supervisor_status(value: object, key: str = "") -> SupervisorStatus:
    """Validate an ``ops.supervisor_status`` result."""
    f = _Fields(value, key)
    status = SupervisorStatus(
        state=_parse_state(f.value("state"), _join(key, "state")),
        policy=_parse_policy(f.obj("policy")),
        startup_order=f.texts("startup_order"),
        dependency_gates=_parse_gates(f),
        restart_count=f.integer("restart_count"),
        covers_from_ms=f.integer("covers_from_ms"),
        as_of_ms=f.integer("as_of_ms"),
        jitter_applied=None
        if f.data.get("jitter_applied") is None
        else f.boolean("jitter_applied"),
    )
    _check_span(f, status.covers_from_ms, status.as_of_ms)
    return status


def parse_supervisor_event(value: object, key: str = "") -> SupervisorEvent:
    """Validate one supervisor event."""
    f = _Fields(value, key)
    kind = f.text("kind", choices=SUPERVISOR_EVENT_KINDS)
    return SupervisorEvent(
        at_ms=f.integer("at_ms"),
        kind=kind,
        process=f.opt_text("process"),
        attempt=f.integer("attempt") if kind == "restart" else f.opt_integer("attempt"),
        after_ms=f.integer("after_ms") if kind == "restart" else f.opt_integer("after_ms"),
        until_ms=f.integer("until_ms") if kind == "hold_down" else f.opt_integer("until_ms"),
        stage=f.text("stage", choices=COMPONENT_STAGES) if kind in STAGE_EVENT_KINDS else None,
    )


def kept_since(events: Sequence[SupervisorEvent], since_ms: int) -> tuple[SupervisorEvent, ...]:
    """The events at or after ``since_ms``, and whatever ``since_ms`` says the stage events of
    the latest startup (from the last ``stage_started`` of the first stage): they describe the
    running process however long ago it started (docs/operations-contract.md)."""
    starts = [
        e.at_ms for e in events if e.kind == "stage_started" and e.stage == COMPONENT_STAGES[0]
    ]
    startup = max(starts, default=None)
    return tuple(
        e
        for e in events
        if e.at_ms >= since_ms
        or (startup is not None and e.kind in STAGE_EVENT_KINDS and e.at_ms >= startup)
    )


# --- alert ledger (daemon facts 6) ---------------------------------------------------------


class Severity(IntEnum):
    """Alert severity, ordered Info < Warn < Degraded < Escalate."""

    INFO = 1
    WARN = 2
    DEGRADED = 3
    ESCALATE = 4

    @property
    def label(self) -> str:
        """The serde name: "Info", "Warn", "Degraded" or "Escalate"."""
        return self.name.capitalize()

    @classmethod
    def from_label(cls, label: str) -> Severity:
        """Parse a serde name (exact case); raise ValueError otherwise."""
        for member in cls:
            if member.label == label:
                return member
        raise ValueError(f"unknown severity {label!r}")

    def __str__(self) -> str:
        return self.label


SEVERITY_LABELS = tuple(s.label for s in Severity)


@dataclass(frozen=True)
class AlertEntry:
    """``AlertEntry`` with the library's serde field names."""

    alert_id: str
    severity: Severity
    source: str
    message: str
    created_at_ms: int
    resolved_at_ms: int | None
    resolve_policy: str  # "AutoResolve" | "ManualAck"

    @property
    def created_at(self) -> datetime:
        """``created_at_ms`` as an aware UTC datetime."""
        return ms_to_datetime(self.created_at_ms)

    @property
    def resolved_at(self) -> datetime | None:
        """``resolved_at_ms`` as an aware UTC datetime, or None while unresolved."""
        return None if self.resolved_at_ms is None else ms_to_datetime(self.resolved_at_ms)


def parse_alert_entry(value: object, key: str = "") -> AlertEntry:
    """Validate one ``AlertEntry``."""
    f = _Fields(value, key)
    entry = AlertEntry(
        alert_id=f.text("alert_id"),
        severity=Severity.from_label(f.text("severity", choices=SEVERITY_LABELS)),
        source=f.text("source"),
        message=f.text("message"),
        created_at_ms=f.integer("created_at_ms"),
        resolved_at_ms=f.opt_integer("resolved_at_ms"),
        resolve_policy=f.text("resolve_policy", choices=RESOLVE_POLICIES),
    )
    if entry.resolved_at_ms is not None and entry.resolved_at_ms < entry.created_at_ms:
        raise RecordError(_join(key, "resolved_at_ms"), "earlier than created_at_ms")
    return entry


class AlertLedger:
    """Folds the lines of an alert ledger file (operations contract, "Alert ledger"): a later
    line for an ``alert_id`` is an update of the earlier one, and the last one wins. An update
    may resolve the alert (``resolved_at_ms`` from null to a time), raise its severity or
    reword its message; anything else contradicts the history already written, and
    :meth:`add` raises :class:`RecordError` naming the alert: a severity lowered, a resolution
    taken back or moved, a creation time moved, another source or resolve policy. Repeating a
    line unchanged is harmless."""

    def __init__(self) -> None:
        self._latest: dict[str, AlertEntry] = {}

    def add(self, value: object, key: str = "") -> AlertEntry:
        """Validate one ledger line (:func:`parse_alert_entry`) and fold it in."""
        entry = parse_alert_entry(value, key)
        previous = self._latest.get(entry.alert_id)
        if previous is not None:
            problem = _update_problem(previous, entry)
            if problem:
                raise RecordError(
                    _join(key, "alert_id"),
                    f"alert {_show_id(entry.alert_id)} is recorded again with {problem}: the "
                    "ledger contradicts itself (a later line may only resolve an alert or "
                    "raise its severity)",
                )
        self._latest[entry.alert_id] = entry
        return entry

    def entries(self) -> tuple[AlertEntry, ...]:
        """The latest state of every alert, in the order each was first recorded."""
        return tuple(self._latest.values())


def _update_problem(before: AlertEntry, after: AlertEntry) -> str | None:
    """Why ``after`` may not update ``before`` (None when it may)."""
    if after.created_at_ms != before.created_at_ms:
        return f"created_at_ms moved from {before.created_at_ms} to {after.created_at_ms}"
    if after.severity < before.severity:
        return f"its severity lowered from {before.severity.label} to {after.severity.label}"
    if before.resolved_at_ms is not None and after.resolved_at_ms is None:
        return f"its resolution at {before.resolved_at_ms} taken back (reopened)"
    if before.resolved_at_ms is not None and after.resolved_at_ms != before.resolved_at_ms:
        return f"resolved_at_ms moved from {before.resolved_at_ms} to {after.resolved_at_ms}"
    if after.source != before.source:
        return f"its source changed from {_show_id(before.source)} to {_show_id(after.source)}"
    if after.resolve_policy != before.resolve_policy:
        return f"its resolve_policy changed from {before.resolve_policy} to {after.resolve_policy}"
    return None


# --- history answers (ops.supervisor_events, ops.alert_ledger) ----------------------------


def _check_span(f: _Fields, covers_from_ms: int, as_of_ms: int) -> None:
    if covers_from_ms > as_of_ms:
        raise RecordError(_join(f.key, "covers_from_ms"), "later than as_of_ms")


def parse_control(value: object, key: str = "") -> tuple[str, int] | None:
    """Recognize a JSON-lines control record: ``{"header": {"covers_from_ms": n}}`` gives
    ("header", n), ``{"checkpoint": {"at_ms": n}}`` gives ("checkpoint", n); anything else None."""
    if not isinstance(value, Mapping) or len(value) != 1:
        return None
    if "header" in value:
        return "header", _Fields(value["header"], _join(key, "header")).integer("covers_from_ms")
    if "checkpoint" in value:
        return "checkpoint", _Fields(value["checkpoint"], _join(key, "checkpoint")).integer("at_ms")
    return None


def parse_history(
    value: object, items_key: str, parse: Callable[[object, str], T], key: str = ""
) -> tuple[tuple[T, ...], int, int]:
    """Validate ``{<items_key>: [...], covers_from_ms, as_of_ms}``; return records and span."""
    f = _Fields(value, key)
    records = _items(f.value(items_key), _join(key, items_key), parse)
    covers_from_ms = f.integer("covers_from_ms")
    as_of_ms = f.integer("as_of_ms")
    _check_span(f, covers_from_ms, as_of_ms)
    return records, covers_from_ms, as_of_ms


# --- counters (ops.cursor_stats, ops.binding_stats) ---------------------------------------


@dataclass(frozen=True)
class CursorStats:
    """Gateway cursor watermarks and invalid-cursor counters since ``covers_from_ms``."""

    fetched: int
    committed: int
    invalid_streak: int
    max_invalid_streak: int
    retry_count: int
    full_resync_count: int
    last_advanced_at_ms: int | None
    covers_from_ms: int
    as_of_ms: int


def parse_cursor_stats(value: object, key: str = "") -> CursorStats:
    """Validate an ``ops.cursor_stats`` result."""
    f = _Fields(value, key)
    stats = CursorStats(
        fetched=f.integer("fetched"),
        committed=f.integer("committed"),
        invalid_streak=f.integer("invalid_streak"),
        max_invalid_streak=f.integer("max_invalid_streak"),
        retry_count=f.integer("retry_count"),
        full_resync_count=f.integer("full_resync_count"),
        last_advanced_at_ms=f.opt_integer("last_advanced_at_ms"),
        covers_from_ms=f.integer("covers_from_ms"),
        as_of_ms=f.integer("as_of_ms"),
    )
    _check_span(f, stats.covers_from_ms, stats.as_of_ms)
    if stats.max_invalid_streak < stats.invalid_streak:
        raise RecordError(_join(key, "max_invalid_streak"), "smaller than invalid_streak")
    return stats


@dataclass(frozen=True)
class BindingStats:
    """Binding-projection CAS conflicts counted since ``covers_from_ms``."""

    cas_conflicts: int
    last_conflict_at_ms: int | None
    covers_from_ms: int
    as_of_ms: int


def parse_binding_stats(value: object, key: str = "") -> BindingStats:
    """Validate an ``ops.binding_stats`` result."""
    f = _Fields(value, key)
    stats = BindingStats(
        cas_conflicts=f.integer("cas_conflicts"),
        last_conflict_at_ms=f.opt_integer("last_conflict_at_ms"),
        covers_from_ms=f.integer("covers_from_ms"),
        as_of_ms=f.integer("as_of_ms"),
    )
    _check_span(f, stats.covers_from_ms, stats.as_of_ms)
    if stats.cas_conflicts and stats.last_conflict_at_ms is None:
        raise RecordError(_join(key, "last_conflict_at_ms"), "required when cas_conflicts > 0")
    return stats


# --- runtime selector (daemon facts 11; runbook [runtime] table) --------------------------


@dataclass(frozen=True)
class SessionRoute:
    """Where the selector routes one tmux session: the ``daemon`` serving it, when the session
    last started (``started_at_ms``: its start or latest restart) and since when it has been
    routed there (``routed_at_ms``, at or after the start: later when it was moved without a
    restart)."""

    session_name: str
    daemon: str  # "v4" | "v5"
    started_at_ms: int
    routed_at_ms: int

    @property
    def started_at(self) -> datetime:
        """``started_at_ms`` as an aware UTC datetime."""
        return ms_to_datetime(self.started_at_ms)

    @property
    def routed_at(self) -> datetime:
        """``routed_at_ms`` as an aware UTC datetime."""
        return ms_to_datetime(self.routed_at_ms)


def parse_session_route(value: object, key: str = "") -> SessionRoute:
    """Validate one ``sessions`` entry of a runtime selector (``routed_at_ms`` optional: the
    session's start by default; never before it)."""
    f = _Fields(value, key)
    started = f.integer("started_at_ms")
    routed = f.opt_integer("routed_at_ms")
    if routed is not None and routed < started:
        raise _bad(_join(key, "routed_at_ms"), f"an integer >= started_at_ms ({started})", routed)
    return SessionRoute(
        session_name=f.text("session_name"),
        daemon=f.text("daemon", choices=DAEMON_NAMES),
        started_at_ms=started,
        routed_at_ms=started if routed is None else routed,
    )


@dataclass(frozen=True)
class RuntimeSelector:
    """The runbook's ``[runtime]`` table, and ``changed_at_ms``: when the routing it states last
    changed (epoch ms), None when the source does not say. ``ops.runtime_selector`` answers it;
    for the TOML file it is the file's modification time. ``sessions``: how it routes each tmux
    session, None when the source does not say."""

    default_daemon: str  # "v4" | "v5"
    v5_enabled: bool
    v5_canary_sessions: tuple[str, ...]
    changed_at_ms: int | None = None
    sessions: tuple[SessionRoute, ...] | None = None

    @property
    def changed_at(self) -> datetime | None:
        """``changed_at_ms`` as an aware UTC datetime, or None when not known."""
        return None if self.changed_at_ms is None else ms_to_datetime(self.changed_at_ms)


def parse_runtime_selector(value: object, key: str = "") -> RuntimeSelector:
    """Validate a ``[runtime]`` table or an ``ops.runtime_selector`` result (``changed_at_ms``
    optional: an integer, or absent/null when not known; ``sessions`` optional: the session
    routes, each session named once)."""
    f = _Fields(value, key)
    sessions = None
    if f.data.get("sessions") is not None:
        where = _join(key, "sessions")
        sessions = _items(f.array("sessions"), where, parse_session_route)
        check_distinct(sessions, lambda r: r.session_name, "session", key=where)
    return RuntimeSelector(
        default_daemon=f.text("default_daemon", choices=DAEMON_NAMES),
        v5_enabled=f.boolean("v5_enabled"),
        v5_canary_sessions=f.texts("v5_canary_sessions", default=()),
        changed_at_ms=f.opt_integer("changed_at_ms"),
        sessions=sessions,
    )


# --- daemon log and build results (parsed by their providers) -----------------------------


@dataclass(frozen=True)
class LogEvent:
    """One daemon log line: ``kind`` is its classification ("other" when not recognized) and
    ``values`` the numbers or ids parsed out of it (e.g. ``seconds`` of a hold-down); a plain
    dict so the observation's JSON form carries it, to be treated as read-only."""

    at: datetime
    level: str
    target: str
    message: str
    kind: str
    line: int
    values: Mapping[str, int | str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class BuildCheck:
    """A ``just verify`` step other than the tests (``fmt``, ``clippy``) and its outcome:
    "passed", "failed" (a failure or error) or "skipped"."""

    name: str
    outcome: str


@dataclass(frozen=True)
class BuildResult:
    """Totals of a JUnit XML report and the names of the tests that failed or errored; what
    the report says it is for (``version``, ``commit``), when the run started
    (``started_at_ms``), its non-test checks and the crates with a passing test
    (docs/operations-contract.md, "JUnit XML of the v5 build"). Unknown: None or empty."""

    tests: int
    failures: int
    errors: int
    skipped: int
    failing: tuple[str, ...]
    version: str | None = None
    commit: str | None = None
    started_at_ms: int | None = None
    checks: tuple[BuildCheck, ...] = ()
    crates: tuple[str, ...] = ()

    @property
    def passed(self) -> int:
        """Tests that neither failed, errored nor were skipped."""
        return self.tests - self.failures - self.errors - self.skipped


# --- v4 binary archive (docs/operations-contract.md, "archive") ---------------------------

_SHA256_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class ArchiveManifest:
    """A binary archive manifest, plus what the provider found beside it: ``present`` (the
    binary file exists) and ``actual_sha256`` (its digest, None when absent)."""

    binary: str
    sha256: str
    archived_at_ms: int
    retain_until_ms: int
    present: bool = False
    actual_sha256: str | None = None
    size_bytes: int | None = None
    #: the archived binary's version (``daemon.info`` version of the v4 it ran as); None when
    #: the manifest does not say (older manifests)
    version: str | None = None

    @property
    def archived_at(self) -> datetime:
        """``archived_at_ms`` as an aware UTC datetime."""
        return ms_to_datetime(self.archived_at_ms)

    @property
    def retain_until(self) -> datetime:
        """``retain_until_ms`` as an aware UTC datetime."""
        return ms_to_datetime(self.retain_until_ms)

    @property
    def intact(self) -> bool:
        """The binary is there and its sha256 is the manifest's."""
        return self.present and self.actual_sha256 == self.sha256


def parse_archive_manifest(value: object, key: str = "") -> ArchiveManifest:
    """Validate a manifest ``{binary, sha256, archived_at_ms, retain_until_ms}`` and the optional
    ``version``; ``binary`` is a plain file name (it must sit beside the manifest), ``sha256`` 64
    hex digits, ``version`` a non-empty string."""
    f = _Fields(value, key)
    binary = f.text("binary")
    if not binary or "/" in binary or "\\" in binary or binary in (".", ".."):
        raise _bad(_join(key, "binary"), "a file name beside the manifest (no path)", binary)
    digest = f.text("sha256").lower()
    if len(digest) != 64 or not set(digest) <= _SHA256_HEX:
        raise _bad(_join(key, "sha256"), "64 hexadecimal digits", f.data["sha256"])
    manifest = ArchiveManifest(
        binary=binary,
        sha256=digest,
        archived_at_ms=f.integer("archived_at_ms"),
        retain_until_ms=f.integer("retain_until_ms"),
        version=f.opt_text("version"),
    )
    if manifest.version is not None and not manifest.version.strip():
        raise _bad(_join(key, "version"), "a non-empty version", manifest.version)
    if manifest.retain_until_ms < manifest.archived_at_ms:
        raise RecordError(_join(key, "retain_until_ms"), "earlier than archived_at_ms")
    return manifest
