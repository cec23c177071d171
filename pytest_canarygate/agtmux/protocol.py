"""What the engine knows about agtmux answers: shapes, and how two projections are compared.

Shape checks turn a malformed answer into :class:`Unobservable` (naming daemon, method and the
offending element) instead of a crash deep inside a gate.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Callable
from collections.abc import Hashable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
from functools import cached_property
from typing import Any
from typing import TypeVar

from pytest_canarygate.agtmux.memo import derived
from pytest_canarygate.agtmux.providers.daemon_log import parse_timestamp
from pytest_canarygate.agtmux.settings import ParityConfig
from pytest_canarygate.observation import CallRecord
from pytest_canarygate.observation import DaemonView
from pytest_canarygate.verdicts import Unobservable

Record = dict[str, Any]
P = TypeVar("P", bound=Mapping[str, Any])

#: The per-pane signature fields of daemon facts 2.1 (the runbook's "pane_presence" is presence).
SIGNATURE_FIELDS = (
    "evidence_mode",
    "presence",
    "signature_class",
    "signature_confidence",
    "signature_inputs",
    "signature_reason",
)
EVIDENCE_MODES = ("deterministic", "heuristic", "none")
PRESENCES = ("managed", "unmanaged")


def _records(
    view: DaemonView,
    method: str,
    key: str,
    problem: Callable[[Record], str | None] | None = None,
    reading: int = 1,
) -> list[Record]:
    """The answer of ``method`` (reading number ``reading``): a list of objects, each with a
    string ``key`` that no other has (two records with one identity contradict each other:
    which would a gate believe?), and nothing ``problem`` finds wrong; else
    :class:`Unobservable` naming the element. Checked once per answer and process."""
    return _checked_answer(view, method, key, problem, reading)[1]


def _checked_answer(
    view: DaemonView,
    method: str,
    key: str,
    problem: Callable[[Record], str | None] | None,
    reading: int,
) -> tuple[CallRecord, list[Record]]:
    """:func:`_records` and the record of the call it read."""
    record = _answered(view, method, reading)
    # Kept with the answer, not the record: two readings that got the same text share one
    # decoded answer (observation.py), and so its check.
    return record, derived(
        record,
        ("records", method, key, problem, *_judged_by(view)),
        lambda: _checked_records(view, method, key, problem, record.result),
        answer=record.result,
    )


def _answered(view: DaemonView, method: str, reading: int) -> CallRecord:
    """The record of the call (kept as this gate's evidence), or :class:`Unobservable` if it
    failed (as :meth:`DaemonView.result`)."""
    record = view.call(method, reading)
    if not record.ok:
        raise Unobservable(f"{view.name}: {record.error}")
    return record


def _judged_by(view: DaemonView) -> tuple[object, ...]:
    """What a check of an answer depends on besides the answer: who is named in its messages
    and the latest time it may carry."""
    return (view.name, view.endpoint, view.latest_allowed)


def _checked_records(
    view: DaemonView,
    method: str,
    key: str,
    problem: Callable[[Record], str | None] | None,
    result: Any,
) -> list[Record]:
    where = f"{view.name} {view.endpoint} {method}"
    if not isinstance(result, list):
        raise Unobservable(
            f"{where}: malformed answer, expected a list, got {type(result).__name__}"
        )
    seen: dict[str, int] = {}
    for index, record in enumerate(result):
        if not isinstance(record, dict) or not isinstance(record.get(key), str):
            raise Unobservable(f"{where}: malformed answer, element {index} has no string {key!r}")
        identity = record[key]
        wrong = problem(record) if problem is not None else None
        if wrong:
            raise Unobservable(
                f"{where}: malformed answer, element {index} ({key} {_shown_id(identity)}): {wrong}"
            )
        if identity in seen:
            raise Unobservable(
                f"{where}: {key} {_shown_id(identity)} is listed twice (elements {seen[identity]} "
                f"and {index}): the answer contradicts itself"
            )
        seen[identity] = index
    refuse_future_times(view, method, result)
    return result


#: Fields of the daemon's answers that say when something happened: RFC 3339 text, or epoch
#: milliseconds. None of them may lie past the run's clock (plus the allowed skew).
TEXT_TIMES = ("updated_at", "deterministic_last_seen", "checked_at")
MS_TIMES = ("last_heartbeat_ms", "registered_at_ms")


def refuse_future_times(view: DaemonView, method: str, records: Iterable[object]) -> None:
    """:class:`Unobservable` if a record of ``method``'s answer is dated in the future."""
    parsed: dict[str, datetime | None] = {}
    for index, record in enumerate(records):
        if isinstance(record, list | tuple) and len(record) == 2:
            record = record[1]  # list_source_health pairs: [kind, {...}]
        if not isinstance(record, dict):
            continue
        for name in TEXT_TIMES:
            value = record.get(name)
            if isinstance(value, str):
                when = _parsed(value, parsed)
                if when is None:
                    continue
                view.not_in_future(when, f"{method} element {index} {name}")
        for name in MS_TIMES:
            if record.get(name) is None:
                continue
            value = record[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
                raise Unobservable(
                    f"{view.name} {view.endpoint} {method}: element {index} {name} "
                    f"{_short(value)} is not milliseconds since the epoch (an integer >= 0)"
                )
            when = datetime.fromtimestamp(value / 1000, tz=timezone.utc)
            view.not_in_future(when, f"{method} element {index} {name}")


def _parsed(text: str, parsed: dict[str, datetime | None]) -> datetime | None:
    """:func:`parse_timestamp` of ``text``, None if it is no timestamp; each text parsed once
    per answer (a daemon stamps every record of one tick alike)."""
    if text in parsed:
        return parsed[text]
    try:
        when: datetime | None = parse_timestamp(text)
    except ValueError:
        when = None
    parsed[text] = when
    return when


def _shown_id(identity: str) -> str:
    if identity and identity.isprintable() and " " not in identity and len(identity) <= 80:
        return identity
    return json.dumps(identity)[:80]


def _pane_problem(pane: Record) -> str | None:
    presence = pane.get("presence")
    if presence not in PRESENCES:
        return f"presence {_short(presence)} is not one of {', '.join(PRESENCES)}"
    if "session_name" not in pane:
        return "no session_name (a string, or null once the pane left tmux)"
    name = pane["session_name"]
    if name is not None and not isinstance(name, str):
        return f"session_name {_short(name)} is not a string or null"
    return None


def _short(value: object) -> str:
    text = reprlib.repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def panes(view: DaemonView, reading: int = 1) -> list[Record]:
    """The daemon's ``list_panes`` answer, shape-checked: every pane has a string ``pane_id``
    no other pane has, a known ``presence`` and a ``session_name`` (string or null); else
    :class:`Unobservable` naming the pane."""
    return _records(view, "list_panes", "pane_id", _pane_problem, reading)


@dataclass(frozen=True)
class PaneIndex:
    """One shape-checked ``list_panes`` answer, its panes by tmux session."""

    panes: Sequence[Record]
    #: session name (None: the panes no tmux session lists) -> pane id -> pane, in answer order
    by_session: Mapping[str | None, Mapping[str, Record]]

    def of_session(self, name: str | None) -> dict[str, Record]:
        """The panes tmux lists in session ``name`` (None: in no session), by pane id."""
        return dict(self.by_session.get(name, {}))


def pane_index(view: DaemonView, reading: int = 1) -> PaneIndex:
    """:func:`panes`, indexed by tmux session once per answer and process."""
    record, found = _checked_answer(view, "list_panes", "pane_id", _pane_problem, reading)
    return derived(record, ("pane-index",), lambda: _index_panes(found), answer=found)


def _index_panes(found: Sequence[Record]) -> PaneIndex:
    by_session: dict[str | None, dict[str, Record]] = {}
    for pane in found:
        by_session.setdefault(pane.get("session_name"), {})[pane["pane_id"]] = pane
    return PaneIndex(found, by_session)


def agent_sessions(view: DaemonView, reading: int = 1) -> list[Record]:
    """The daemon's ``list_sessions`` answer (agent sessions, not tmux sessions), shape-checked:
    every session has a string ``session_key`` no other session has; else
    :class:`Unobservable` naming the key."""
    return _records(view, "list_sessions", "session_key", None, reading)


@dataclass(frozen=True)
class Change:
    """One ``state_changed`` change-log entry (daemon facts 2.4): ``pane_id`` None for a
    session-level entry, ``session_key`` "" for the freshness sweep's."""

    version: int
    session_key: str
    at: datetime
    pane_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry as the daemon gave it (a gate's evidence)."""
        found: dict[str, Any] = {
            "version": self.version,
            "session_key": self.session_key,
            "timestamp": self.at.isoformat(),
        }
        if self.pane_id is not None:
            found["pane_id"] = self.pane_id
        return found


def state_changes(view: DaemonView, reading: int = 1) -> list[Change]:
    """The daemon's change log (``state_changed`` since version 0, never trimmed), shape-checked
    once per answer and process."""
    return _checked_changes_of(view, reading)[1]


def _checked_changes_of(view: DaemonView, reading: int) -> tuple[CallRecord, list[Change]]:
    """:func:`state_changes` and the record of the call it read."""
    record = _answered(view, "state_changed", reading)
    return record, derived(  # with the answer, as _checked_answer does
        record,
        ("changes", *_judged_by(view)),
        lambda: _checked_changes(view, record.result),
        answer=record.result,
    )


def _checked_changes(view: DaemonView, result: Any) -> list[Change]:
    where = f"{view.name} {view.endpoint} state_changed: malformed answer"
    entries = result.get("changes") if isinstance(result, dict) else None
    if not isinstance(entries, list):
        raise Unobservable(f"{where}, expected {{changes: [...], version}}, got {result!r:.120}")
    changes = []
    parsed: dict[str, datetime | None] = {}
    for index, entry in enumerate(entries):
        version = entry.get("version") if isinstance(entry, dict) else None
        key = entry.get("session_key") if isinstance(entry, dict) else None
        stamp = entry.get("timestamp") if isinstance(entry, dict) else None
        pane_id = entry.get("pane_id") if isinstance(entry, dict) else None
        at = _parsed(stamp, parsed) if isinstance(stamp, str) else None
        if (
            isinstance(version, bool)
            or not isinstance(version, int)
            or version < 0
            or not isinstance(key, str)
            or at is None
            or not (pane_id is None or isinstance(pane_id, str))
        ):
            raise Unobservable(
                f"{where}, change {index} is not {{version, session_key, timestamp[, pane_id]}}: "
                f"{entry!r:.120}"
            )
        view.not_in_future(at, f"state_changed change {index} (version {version})")
        changes.append(Change(version, key, at, pane_id))
    return changes


ChangesByPane = Mapping[str, Sequence[Change]]


def changes_by_pane(changes: Iterable[Change]) -> dict[str, list[Change]]:
    """The pane-level entries of a change log by pane id, in log order."""
    found: dict[str, list[Change]] = {}
    for change in changes:
        if change.pane_id is not None:
            found.setdefault(change.pane_id, []).append(change)
    return found


def by_key(records: Iterable[Record], key: str) -> dict[str, Record]:
    """Index records by ``key``."""
    return {r[key]: r for r in records}


def sessions_by_name(all_panes: Iterable[P]) -> dict[str, list[P]]:
    """Panes grouped by the tmux session that lists them (ghost panes have none)."""
    sessions: dict[str, list[P]] = {}
    for pane in all_panes:
        name = pane.get("session_name")
        if isinstance(name, str):
            sessions.setdefault(name, []).append(pane)
    return sessions


def managed(some_panes: Iterable[P]) -> list[P]:
    """The managed panes among ``some_panes``."""
    return [p for p in some_panes if p.get("presence") == "managed"]


def panes_of_session(all_panes: Iterable[Record], session_name: str) -> dict[str, Record]:
    """The panes that tmux lists in ``session_name``, by pane id."""
    return {p["pane_id"]: p for p in all_panes if p.get("session_name") == session_name}


def agent_session_keys(session_panes: Iterable[Record], changes: Iterable[Change] = ()) -> set[str]:
    """The agent session keys bound to these panes: the poller's ``poller-<pane_id>`` for every
    managed pane, the title of deterministically bound panes (daemon facts 3.3, 3.5), and every
    non-empty session key a ``state_changed`` entry of one of these panes carries: a title
    decays to the tmux title about 3 s after the last deterministic event, the change log
    keeps the binding (daemon facts 2.4)."""
    keys, pane_ids = _bound_by_panes(session_panes)
    keys.update(c.session_key for c in changes if c.pane_id in pane_ids and c.session_key)
    return keys


def agent_session_keys_indexed(session_panes: Iterable[Record], changes: ChangesByPane) -> set[str]:
    """:func:`agent_session_keys` with the change log indexed by pane (:func:`changes_by_pane`):
    reads only the entries of these panes."""
    keys, pane_ids = _bound_by_panes(session_panes)
    for pane_id in pane_ids:
        keys.update(c.session_key for c in changes.get(pane_id, ()) if c.session_key)
    return keys


def _bound_by_panes(session_panes: Iterable[Record]) -> tuple[set[str], set[str]]:
    keys: set[str] = set()
    pane_ids: set[str] = set()
    for pane in session_panes:
        if pane.get("presence") != "managed":
            continue
        pane_ids.add(pane["pane_id"])
        keys.add(f"poller-{pane['pane_id']}")
        if pane.get("title_quality") == "DeterministicBinding" and pane.get("title"):
            keys.add(str(pane["title"]))
    return keys, pane_ids


def live_panes(some_panes: Iterable[P]) -> list[P]:
    """The panes tmux still lists (a string ``session_name``)."""
    return [p for p in some_panes if isinstance(p.get("session_name"), str)]


@dataclass(frozen=True)
class SessionIndex:
    """One reading of both daemons' agent sessions, indexed for parity judged per tmux
    session: the sessions in use across the fleet, each daemon's sessions by key and the keys
    it keeps only as history, and the change log of both daemons by pane."""

    #: agent sessions bound to a managed pane tmux still lists, on either daemon
    active: frozenset[str]
    #: daemon -> session key -> session
    sessions: Mapping[str, Mapping[str, Record]]
    #: daemon -> the keys of the sessions it keeps only as history, sorted
    history: Mapping[str, Sequence[str]]
    changes: ChangesByPane

    def history_of(self, name: str, keys: Iterable[str]) -> list[str]:
        """Which of ``keys`` daemon ``name`` keeps only as history, sorted."""
        kept = self._history_sets[name]
        return sorted(key for key in set(keys) if key in kept)

    @cached_property
    def _history_sets(self) -> dict[str, frozenset[str]]:
        return {name: frozenset(keys) for name, keys in self.history.items()}


def session_index(views: Mapping[str, DaemonView], reading: int = 1) -> SessionIndex:
    """The :class:`SessionIndex` of ``views`` in one reading, built once per process from
    their ``state_changed``, ``list_panes`` and ``list_sessions`` answers (read in that order,
    each kept as the gate's evidence; the first one unusable is :class:`Unobservable`)."""
    logs = [_checked_changes_of(view, reading) for view in views.values()]
    fleet = [
        _checked_answer(view, "list_panes", "pane_id", _pane_problem, reading)
        for view in views.values()
    ]
    answers = {
        name: _checked_answer(view, "list_sessions", "session_key", None, reading)
        for name, view in views.items()
    }
    records = [
        *(record for record, _ in logs),
        *(record for record, _ in fleet),
        *(record for record, _ in answers.values()),
    ]

    def build() -> SessionIndex:
        changes: dict[str, list[Change]] = {}
        for _, log in logs:
            for pane_id, found in changes_by_pane(log).items():
                changes.setdefault(pane_id, []).extend(found)
        live = live_panes(p for _, found in fleet for p in found)
        active = frozenset(agent_session_keys_indexed(live, changes))
        sessions = {name: by_key(found, "session_key") for name, (_, found) in answers.items()}
        history = {
            name: sorted(key for key in found if key not in active)
            for name, found in sessions.items()
        }
        return SessionIndex(active, sessions, history, changes)

    return derived(records[0], ("session-index", tuple(views)), build, also=tuple(records[1:]))


@dataclass(frozen=True)
class Difference:
    """One way the v5 projection differs from v4."""

    where: str
    field: str
    v4: Any
    v5: Any

    def __str__(self) -> str:
        return f"{self.where}: {self.field} v4={self.v4!r} v5={self.v5!r}"


_MISSING = "<missing>"


def diff_projections(
    v4: Mapping[str, Record],
    v5: Mapping[str, Record],
    parity: ParityConfig,
    *,
    label: str,
) -> list[Difference]:
    """Compare two keyed projections field by field; ``label`` names the key (``pane``...)."""
    differences: list[Difference] = []
    for key in sorted(set(v4) | set(v5)):
        where = f"{label} {key}"
        if key not in v5:
            differences.append(Difference(where, "(record)", "present", _MISSING))
            continue
        if key not in v4:
            differences.append(Difference(where, "(record)", _MISSING, "present"))
            continue
        left, right = v4[key], v5[key]
        for name in parity.compared(set(left) | set(right)):
            a, b = left.get(name, _MISSING), right.get(name, _MISSING)
            if a != b:
                differences.append(Difference(where, name, a, b))
    return differences


def compare_projections(
    v4: Mapping[str, Record],
    v5: Mapping[str, Record],
    parity: ParityConfig,
    *,
    label: str,
    key_field: str,
) -> tuple[list[Difference], dict[str, Any]]:
    """:func:`diff_projections`, and what was judged, in one pass: the fields compared of
    each record, once for both daemons where they agree on them.

    The records v4 and v5 agree on are grouped by those values: ``{"v4 and v5": [{key_field:
    [keys...], "fields": {...}}, ...]}``, where ``key_field`` (the field the records are keyed
    by) is left out of ``fields`` when it equals the key. The records they do not agree on
    (or that one daemon does not list: None) are under ``"differ"``, by key, with each
    daemon's fields: ``{"v4": {...}, "v5": {...}}``."""
    differences: list[Difference] = []
    groups: dict[Hashable, tuple[list[str], dict[str, Any]]] = {}
    differ: dict[str, dict[str, Any]] = {}
    fixed = parity.compared(set()) if parity.fields is not None else None
    for key in sorted(v4.keys() | v5.keys()):
        if key not in v4 or key not in v5:
            present = v4[key] if key in v4 else v5[key]
            names = fixed if fixed is not None else parity.compared(set(present))
            shown = _fields(present, names)
            where = f"{label} {key}"
            if key in v4:
                differences.append(Difference(where, "(record)", "present", _MISSING))
                differ[key] = {"v4": shown, "v5": None}
            else:
                differences.append(Difference(where, "(record)", _MISSING, "present"))
                differ[key] = {"v4": None, "v5": shown}
            continue
        left, right = v4[key], v5[key]
        names = fixed if fixed is not None else parity.compared(left.keys() | right.keys())
        shown = {name: left[name] for name in names if name in left}
        other = {name: right[name] for name in names if name in right}
        if shown != other:
            for name in names:
                a, b = left.get(name, _MISSING), right.get(name, _MISSING)
                if a != b:
                    differences.append(Difference(f"{label} {key}", name, a, b))
            differ[key] = {"v4": shown, "v5": other}
            continue
        # The same fields with the same values on both (answers are strict JSON, no NaN):
        # no field differs. Grouped with the records whose values are written alike too
        # (1, 1.0 and True stay apart).
        if key_field in shown and shown[key_field] == key:
            del shown[key_field]
        alike: Hashable = repr(shown)
        if alike in groups and groups[alike][1] != shown:
            alike = object()
        if alike in groups:
            groups[alike][0].append(key)
        else:
            groups[alike] = ([key], shown)
    judged: dict[str, Any] = {
        "v4 and v5": [{key_field: keys, "fields": shown} for keys, shown in groups.values()]
    }
    if differ:
        judged["differ"] = differ
    return differences, judged


def _fields(record: Record, names: Sequence[str]) -> dict[str, Any]:
    """The fields ``names`` of ``record`` that it has."""
    return {name: record[name] for name in names if name in record}


def failure_message(headline: str, problems: Iterable[object], *, limit: int = 12) -> str:
    """``headline: first problem (+N more)`` on one line, then the problems one per line
    (at most ``limit``); the first line is what the end-of-run summary shows."""
    texts = [str(p) for p in problems]
    more = f" (+{len(texts) - 1} more)" if len(texts) > 1 else ""
    lines = [f"{headline}: {texts[0]}{more}", *texts[:limit]]
    if len(texts) > limit:
        lines.append(f"... and {len(texts) - limit} more (see the gate's evidence)")
    return "\n".join(lines)


def signature_problems(pane: Record) -> list[str]:
    """What is wrong with one managed pane's signature fields on their own."""
    problems = []
    if pane.get("presence") not in PRESENCES:
        problems.append(f"presence {pane.get('presence')!r} not one of {PRESENCES}")
    if pane.get("presence") != "managed":
        return problems
    if pane.get("evidence_mode") not in EVIDENCE_MODES:
        problems.append(f"evidence_mode {pane.get('evidence_mode')!r} not one of {EVIDENCE_MODES}")
    confidence = pane.get("signature_confidence")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        problems.append(f"signature_confidence {confidence!r} is not a number")
    elif not 0.0 <= confidence <= 1.0:
        problems.append(f"signature_confidence {confidence!r} outside 0.0-1.0")
    inputs = pane.get("signature_inputs")
    if not isinstance(inputs, dict) or not all(isinstance(v, bool) for v in inputs.values()):
        problems.append(f"signature_inputs {inputs!r} is not an object of booleans")
    return problems
