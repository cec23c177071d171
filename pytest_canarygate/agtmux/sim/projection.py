"""What one simulated agtmux daemon knows and answers, method by method, like the recorded samples.

:class:`SimDaemon` is the in-memory projection of one daemon (panes, sessions, the change log, the
source registry) and its answer to one JSON-RPC request line, shaped field for field like the
recorded daemon samples (daemon facts sections 1 and 2): sorted compact keys, -32601 / -32602
only, no answer at all for malformed JSON. :mod:`.daemon` serves it on a Unix socket.

* ``list_panes``: the managed panes, sorted by pane_id as a string, then the unmanaged ones in
  tmux order (a flapping pane, ``pane_flaps``, switches state at each answer);
  ``list_sessions``: the sessions, sorted by session_key;
* ``state_changed`` and ``summary_changed``: the change log after ``since_version``;
* ``latency_status`` and ``list_source_health``: what the scenario says;
* ``list_source_registry``, ``source.hello`` and ``source.heartbeat``: a real source registry,
  whose active and pending entries go stale without heartbeats;
* ``source.ingest``: a ``claude_hooks`` or ``codex_appserver`` event, validated the way serde
  would, buffered for the next tick;
* ``daemon.info``: the nonce, pid and version;
* anything :meth:`SimDaemon.add_methods` adds: the v5 daemon of a scenario with ``[operations]``
  also serves the ``ops.*`` methods (:mod:`.ops_answers`), which also makes ``daemon.info``'s
  nonce say when a daemon with an ``uptime`` started.

The state is a simplified projection that moves the way the real one does:

* scenario panes and sessions are re-projected every tick (their ``updated_at`` is the last tick);
* ``source.ingest`` buffers an event; the next tick projects it unless its timestamp is more than
  ``freshness_ms`` older than the tick. It makes the pane managed with deterministic evidence and
  creates or updates the session, bumping the version once per changed pane or session;
* once that evidence is no longer fresh, a scenario pane goes back to its scenario state and any
  other pane keeps signature_class "deterministic" with evidence_mode "heuristic" (a change entry
  with session_key ""); every ingested session marked deterministic is rewritten to heuristic.

Ticks are computed lazily on each request from the daemon's start time and poll interval, so an
idle daemon does no work.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import replace
from typing import Any
from typing import Final

from pytest_canarygate.agtmux.sim.clock import format_event_time
from pytest_canarygate.agtmux.sim.clock import format_tick
from pytest_canarygate.agtmux.sim.clock import wall_ns
from pytest_canarygate.agtmux.sim.scenario import DETERMINISTIC_REASON
from pytest_canarygate.agtmux.sim.scenario import LIVE
from pytest_canarygate.agtmux.sim.scenario import REGISTRY_STALE_MS
from pytest_canarygate.agtmux.sim.scenario import SOURCE_KINDS
from pytest_canarygate.agtmux.sim.scenario import AgentInfo
from pytest_canarygate.agtmux.sim.scenario import DaemonSpec
from pytest_canarygate.agtmux.sim.scenario import SessionSpec
from pytest_canarygate.agtmux.sim.scenario import SignatureInputs
from pytest_canarygate.agtmux.sim.scenario import TmuxInfo
from pytest_canarygate.agtmux.sim.scenario import parse_rfc3339

__all__ = ["SimDaemon"]

METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INGEST_KINDS: Final = ("claude_hooks", "codex_appserver")
# Sources the trust guard knows without a source.hello (daemon facts 9.5).
_PREREGISTERED: Final = frozenset(SOURCE_KINDS)
_U64_MAX: Final = 2**64 - 1

# Event type -> activity (daemon facts 3.2); anything else is "Unknown".
_EVENT_ACTIVITY: Final[Mapping[str, str]] = {
    name: state
    for state, names in (
        (
            "Running",
            "activity.running lifecycle.running activity.start lifecycle.start activity.user_input "
            "thread.active turn.started turn.inProgress",
        ),
        (
            "Idle",
            "activity.idle lifecycle.idle activity.end activity.stop lifecycle.end lifecycle.stop "
            "activity.tool_complete thread.idle thread.not_loaded turn.completed turn.interrupted",
        ),
        ("WaitingInput", "activity.waiting_input lifecycle.waiting_input"),
        ("WaitingApproval", "activity.waiting_approval lifecycle.waiting_approval"),
        (
            "Error",
            "activity.error lifecycle.error thread.error thread.systemError turn.failed",
        ),
    )
    for name in names.split()
}
# Claude hook_type -> event type (daemon facts 2.11).
_HOOK_EVENT: Final[Mapping[str, str]] = {
    "session_start": "lifecycle.start",
    "session_end": "lifecycle.end",
    "tool_start": "lifecycle.running",
    "thinking": "lifecycle.running",
    "tool_end": "lifecycle.idle",
    "idle": "lifecycle.idle",
    "error": "lifecycle.error",
}

# Event fields per ingest kind, in declaration order: (name, expected type, required).
_STRING = "a string"
_OPTIONAL_STRING = "a string or null"
_TIMESTAMP = "an RFC 3339 formatted date and time string"
_BOOLEAN = "a boolean"
_ANY = "any JSON value"
_EVENT_FIELDS: Final[Mapping[str, tuple[tuple[str, str, bool], ...]]] = {
    "claude_hooks": (
        ("hook_id", _STRING, True),
        ("hook_type", _STRING, True),
        ("session_id", _STRING, True),
        ("timestamp", _TIMESTAMP, True),
        ("pane_id", _OPTIONAL_STRING, False),
        ("data", _ANY, True),
    ),
    "codex_appserver": (
        ("id", _STRING, True),
        ("event_type", _STRING, True),
        ("session_id", _STRING, True),
        ("timestamp", _TIMESTAMP, True),
        ("pane_id", _OPTIONAL_STRING, False),
        ("pane_generation", _ANY, False),
        ("pane_birth_ts", _ANY, False),
        ("payload", _ANY, True),
        ("is_heartbeat", _BOOLEAN, False),
    ),
}


class _RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _EventError(Exception):
    """An ingested event that would not deserialize; the message is serde's wording."""


@dataclass
class _Pane:
    pane_id: str
    tmux: TmuxInfo | None  # None: gone from tmux (a ghost)
    agent: AgentInfo | None  # None: unmanaged
    scenario_agent: AgentInfo | None  # what the scenario says; restored when ingested evidence ages
    live: bool  # re-projected every tick
    updated_ns: int
    fresh_until_ns: int | None = None  # ingested deterministic evidence is fresh until then


@dataclass
class _Session:
    session_key: str
    evidence_mode: str
    winner_tier: str
    activity_state: str
    activity_source: str
    last_seen: str | None  # LIVE: the current tick
    last_seen_ns: int
    live: bool
    updated_ns: int

    def state(self) -> tuple[str, str, str, str]:
        return (self.activity_state, self.evidence_mode, self.winner_tier, self.activity_source)

    def see(self, event: _Event) -> None:
        # A LIVE session hears deterministic events every tick: nothing ingested is newer.
        if self.last_seen != LIVE and event.ts_ns >= self.last_seen_ns:
            self.last_seen, self.last_seen_ns = event.ts_text, event.ts_ns


@dataclass(frozen=True)
class _Change:
    version: int
    session_key: str
    tick_ns: int
    pane_id: str | None


@dataclass(frozen=True)
class _Event:
    kind: str
    event_id: str
    session_key: str
    activity: str
    ts_ns: int
    ts_text: str
    pane_id: str | None
    inputs: SignatureInputs
    apply_tick_ns: int


@dataclass
class _Registration:
    source_id: str
    source_kind: str
    protocol_version: int
    lifecycle: str
    registered_at_ms: int
    last_heartbeat_ms: int
    socket_path: str | None
    kept_alive_age_ms: int | None = None  # scenario entry that keeps heartbeating at this age

    def heartbeat(self, now_ms: int) -> int:
        if self.kept_alive_age_ms is None:
            return self.last_heartbeat_ms
        return now_ms - self.kept_alive_age_ms

    def as_json(self, now_ms: int) -> dict[str, object]:
        return {
            "source_id": self.source_id,
            "source_kind": self.source_kind,
            "protocol_version": self.protocol_version,
            "lifecycle": self.lifecycle,
            "registered_at_ms": self.registered_at_ms,
            "last_heartbeat_ms": self.heartbeat(now_ms),
            "socket_path": self.socket_path,
        }

    def touch(self, now_ms: int) -> None:
        self.last_heartbeat_ms = now_ms
        self.kept_alive_age_ms = None


def _pane_state(agent: AgentInfo) -> tuple[object, ...]:
    """The fields whose change bumps the version (daemon facts 2.4)."""
    return (
        agent.signature_class,
        agent.evidence_mode,
        agent.signature_confidence,
        agent.activity_state,
        agent.provider,
    )


_Handler = Callable[[Mapping[str, Any], int], object]

# Answers that only change with the projection are encoded once per state; the current tick,
# which live panes and sessions carry, is spliced in per answer where this placeholder stands
# (a JSON key can only be followed by an unquoted value where it really is a key).
_TICK_HOLE: Final = -1
_TICK_KEYS: Final = (b'"updated_at":-1', b'"deterministic_last_seen":-1')
_CACHED_ANSWERS: Final = 16


@dataclass(frozen=True)
class _Raw:
    """A result already encoded as compact, key-sorted JSON."""

    data: bytes


def _encode(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class SimDaemon:
    """The in-memory state of one simulated daemon and its answers to the eleven methods."""

    def __init__(
        self, spec: DaemonSpec, *, pid: int, start_ns: int, anchor_ns: int | None = None
    ) -> None:
        """``start_ns``: when this daemon starts (its ticks count from it); ``anchor_ns``: the
        fleet's "now" that the scenario's history is placed before (by default ``start_ns``)."""
        self.spec = spec
        self.pid = pid
        self.start_ns = start_ns
        self.anchor_ns = start_ns if anchor_ns is None else anchor_ns
        self.nonce = f"{pid}-{start_ns}"
        self.log: Callable[[str], None] = lambda message: None
        self._interval_ns = spec.poll_interval_ms * 1_000_000
        self._freshness_ns = spec.freshness_ms * 1_000_000
        self._lock = threading.Lock()
        self._panes: dict[str, _Pane] = {}  # tmux order; panes first seen through ingest last
        self._sessions: dict[str, _Session] = {}
        self._changes: list[_Change] = []
        self._pending: deque[_Event] = deque()
        self._registry: dict[str, _Registration] = {}
        self._list_panes_answers = 0
        self._generation = 0  # bumped whenever panes, sessions or the change log may change
        self._answers: dict[tuple[object, ...], bytes] = {}
        self._answers_generation = 0
        self._methods: dict[str, _Handler] = {
            "list_panes": self._list_panes,
            "list_sessions": self._list_sessions,
            "list_source_health": self._list_source_health,
            "state_changed": self._state_changed,
            "summary_changed": self._summary_changed,
            "latency_status": lambda params, now_ns: self.spec.latency.as_result(),
            "list_source_registry": self._list_source_registry,
            "daemon.info": self._daemon_info,
            "source.hello": self._source_hello,
            "source.heartbeat": self._source_heartbeat,
            "source.ingest": self._source_ingest,
        }
        self._seed()

    @property
    def projection_version(self) -> int:
        """The current projection version (``summary_changed.version``)."""
        return len(self._changes)

    def add_methods(self, methods: Mapping[str, _Handler]) -> None:
        """Serve ``methods`` too (handlers take the params and the time in ns)."""
        self._methods.update(methods)

    # -- JSON-RPC envelope --

    def handle_line(self, line: bytes, now_ns: int | None = None) -> bytes | None:
        """The response line for one request line, or None to close without answering."""
        try:
            request = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError included
            return None
        response = self._respond(request, wall_ns() if now_ns is None else now_ns)
        result = response.get("result")
        if isinstance(result, _Raw):  # keys sorted: id, jsonrpc, result
            return (
                b"".join(
                    (b'{"id":', _encode(response["id"]), b',"jsonrpc":"2.0","result":', result.data)
                )
                + b"}\n"
            )
        return _encode(response) + b"\n"

    def respond(self, request: object, now_ns: int) -> dict[str, object]:
        """The JSON-RPC response object for a parsed request."""
        response = self._respond(request, now_ns)
        result = response.get("result")
        if isinstance(result, _Raw):
            response["result"] = json.loads(result.data)
        return response

    def warm(self, now_ns: int | None = None) -> None:
        """Encode the answers that only change with the projection now, before any request."""
        now_ns = wall_ns() if now_ns is None else now_ns
        with self._lock:
            self._advance(now_ns)
            self._panes_answer()
            self._sessions_answer()
            self._state_changed_answer(0)
            self._summary_answer(0)

    def _respond(self, request: object, now_ns: int) -> dict[str, object]:
        if not isinstance(request, dict):  # a batch, or a bare value
            return _error(None, METHOD_NOT_FOUND, "method not found")
        request_id = request.get("id")
        method = request.get("method")
        handler = self._methods.get(method) if isinstance(method, str) else None
        if handler is None or method in self.spec.unavailable_methods:
            return _error(request_id, METHOD_NOT_FOUND, "method not found")
        params = request.get("params")
        with self._lock:
            self._advance(now_ns)
            try:
                result = handler(params if isinstance(params, dict) else {}, now_ns)
            except _RpcError as exc:
                return _error(request_id, exc.code, exc.message)
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    # -- ticks --

    def _tick_at(self, ns: int) -> int:
        """The last tick at or before ``ns``."""
        elapsed = max(0, ns - self.start_ns)
        return self.start_ns + elapsed // self._interval_ns * self._interval_ns

    def _tick_after(self, ns: int) -> int:
        """The first tick strictly after ``ns``."""
        if ns < self.start_ns:
            return self.start_ns
        return self._tick_at(ns) + self._interval_ns

    def _advance(self, now_ns: int) -> None:
        """Run, in order, every tick up to ``now_ns`` that had work to do."""
        current = self._tick_at(now_ns)
        while True:
            due = [tick for tick, _ in self._expiries()]
            if self._pending:
                due.append(self._pending[0].apply_tick_ns)
            tick = min(due, default=None)
            if tick is None or tick > current:
                break
            self._run_tick(tick)
        self._expire_registry(now_ns // 1_000_000)

    def _expiries(self) -> list[tuple[int, _Pane]]:
        """(the first tick at which its ingested evidence is no longer fresh, pane)."""
        return [
            (self._tick_after(p.fresh_until_ns), p)
            for p in self._panes.values()
            if p.fresh_until_ns is not None
        ]

    def _run_tick(self, tick: int) -> None:
        self._generation += 1
        seen: set[tuple[str, str, str]] = set()
        while self._pending and self._pending[0].apply_tick_ns <= tick:
            event = self._pending.popleft()
            key = (event.kind, event.session_key, event.event_id)
            if key in seen:  # duplicates are dropped within one tick's batch only
                continue
            seen.add(key)
            if tick - event.ts_ns > self._freshness_ns:
                self.log(f"suppressed stale {event.kind} event {event.event_id!r}")
                continue
            self._apply(event, tick)
        expired = sorted((p for due, p in self._expiries() if due <= tick), key=lambda p: p.pane_id)
        if not expired:
            return
        # Scenario panes are re-projected from their scenario state first; then the freshness
        # sweep downgrades the panes nothing else speaks for.
        for pane in expired:
            if pane.scenario_agent is not None:
                self._set_agent(pane, pane.scenario_agent, pane.scenario_agent.session_key, tick)
        for pane in expired:
            if pane.scenario_agent is None and pane.agent is not None:
                self._set_agent(pane, replace(pane.agent, evidence_mode="heuristic"), "", tick)
        for session in self._sessions.values():
            if not session.live and session.evidence_mode == "deterministic":
                session.evidence_mode = "heuristic"
                session.updated_ns = tick

    def _apply(self, event: _Event, tick: int) -> None:
        session = self._sessions.get(event.session_key)
        if session is None:
            session = _Session(
                session_key=event.session_key,
                evidence_mode="deterministic",
                winner_tier="deterministic",
                activity_state=event.activity,
                activity_source=event.kind,
                last_seen=None,
                last_seen_ns=0,
                live=False,
                updated_ns=tick,
            )
            self._sessions[event.session_key] = session
            self._log(event.session_key, None, tick)
        else:
            before = session.state()
            session.evidence_mode = session.winner_tier = "deterministic"
            session.activity_state, session.activity_source = event.activity, event.kind
            session.updated_ns = tick
            if session.state() != before:
                self._log(event.session_key, None, tick)
        session.see(event)
        pane_id = event.pane_id or self._pane_of_session(event.session_key)
        if pane_id is None:
            return
        pane = self._panes.get(pane_id)
        if pane is None:  # a pane tmux does not list: it is projected as a ghost
            pane = self._panes[pane_id] = _Pane(pane_id, None, None, None, False, tick)
        agent = AgentInfo(
            provider="claude" if event.kind == "claude_hooks" else "codex",
            activity_state=event.activity,
            evidence_mode="deterministic",
            signature_class="deterministic",
            signature_reason=DETERMINISTIC_REASON,
            signature_confidence=1.0,
            signature_inputs=event.inputs,
            conversation_title=pane.agent.conversation_title if pane.agent else None,
            session_key=event.session_key,
        )
        fresh_until = max(pane.fresh_until_ns or 0, event.ts_ns + self._freshness_ns)
        self._set_agent(pane, agent, event.session_key, tick)
        pane.fresh_until_ns = fresh_until
        # The pane's scenario (poller) session is in the same resolver group.
        other = pane.scenario_agent.session_key if pane.scenario_agent else None
        if other is not None and other != event.session_key and other in self._sessions:
            self._sessions[other].see(event)

    def _set_agent(self, pane: _Pane, agent: AgentInfo, change_key: str, tick: int) -> None:
        before = pane.agent
        pane.agent = agent
        pane.fresh_until_ns = None
        pane.updated_ns = tick
        if before is None or _pane_state(before) != _pane_state(agent):
            self._log(change_key, pane.pane_id, tick)

    def _pane_of_session(self, session_key: str) -> str | None:
        for pane_id in sorted(self._panes):
            agent = self._panes[pane_id].agent
            if agent is not None and agent.session_key == session_key:
                return pane_id
        return None

    def _log(self, session_key: str, pane_id: str | None, tick: int) -> None:
        self._changes.append(_Change(len(self._changes) + 1, session_key, tick, pane_id))

    def _seed(self) -> None:
        start = self.start_ns
        now = self.anchor_ns  # the scenario's history ends at the fleet's anchor
        # The first projection happened when the daemon started (its nonce says when: now, or
        # the scenario's uptime before the anchor); a pane's later change is logged when it
        # happened.
        started = now - self.spec.uptime_ms * 1_000_000 if self.spec.uptime_ms else start
        for spec in self.spec.panes:
            self._panes[spec.pane_id] = _Pane(
                spec.pane_id, spec.tmux, spec.agent, spec.agent, spec.tmux is not None, start
            )
        for session in self.spec.sessions:
            self._sessions[session.session_key] = _seed_session(session, start)
        logged: set[str] = set()
        for pane in self._managed():
            assert pane.agent is not None
            key = pane.agent.session_key
            if key not in logged:
                logged.add(key)
                self._log(key, None, started)
            self._log(key, pane.pane_id, started)
        for key in sorted(set(self._sessions) - logged):
            self._log(key, None, started)
        changed = sorted(
            (max(started, now - spec.last_change_ms * 1_000_000), spec.pane_id)
            for spec in self.spec.panes
            if spec.agent is not None and spec.last_change_ms is not None
        )
        for at, pane_id in changed:  # an activity change: its session's entry, then the pane's
            agent = self._panes[pane_id].agent
            assert agent is not None
            self._log(agent.session_key, None, at)
            self._log(agent.session_key, pane_id, at)
        now_ms = now // 1_000_000
        for entry in self.spec.registry:
            alive = entry.lifecycle in ("active", "pending")
            self._registry[entry.source_id] = _Registration(
                entry.source_id,
                entry.source_kind,
                entry.protocol_version,
                entry.lifecycle,
                registered_at_ms=now_ms - entry.heartbeat_age_ms,
                last_heartbeat_ms=now_ms - entry.heartbeat_age_ms,
                socket_path=entry.socket_path,
                kept_alive_age_ms=entry.heartbeat_age_ms if alive else None,
            )

    def _managed(self) -> list[_Pane]:
        """Managed panes, sorted by pane_id as a string (so "%10" comes before "%2")."""
        return sorted((p for p in self._panes.values() if p.agent), key=lambda p: p.pane_id)

    def _expire_registry(self, now_ms: int) -> None:
        for entry in self._registry.values():
            if entry.lifecycle in ("active", "pending") and (
                entry.heartbeat(now_ms) + REGISTRY_STALE_MS < now_ms
            ):
                entry.lifecycle = "stale"
                self.log(f"WARN source stale: {entry.source_id}")

    # -- read methods --

    def _cached(self, key: tuple[object, ...], build: Callable[[], object]) -> bytes:
        """The encoded answer ``key`` of the current projection state, built once per state."""
        if self._answers_generation != self._generation or len(self._answers) >= _CACHED_ANSWERS:
            self._answers.clear()
            self._answers_generation = self._generation
        data = self._answers.get(key)
        if data is None:
            data = self._answers[key] = _encode(build())
        return data

    def _with_tick(self, data: bytes, now_ns: int) -> _Raw:
        """``data`` with the current tick where live panes and sessions carry it."""
        tick = b":" + _encode(format_tick(self._tick_at(now_ns)))
        for key in _TICK_KEYS:  # b'"<key>":-1' -> b'"<key>":"<tick>"'
            data = data.replace(key, key[:-3] + tick)
        return _Raw(data)

    def _list_panes(self, params: Mapping[str, Any], now_ns: int) -> _Raw:
        self._list_panes_answers += 1
        self._flap(self._tick_at(now_ns))
        return self._with_tick(self._panes_answer(), now_ns)

    def _panes_answer(self) -> bytes:
        return self._cached(("list_panes",), self._panes_now)

    def _panes_now(self) -> list[dict[str, object]]:
        managed = [self._managed_pane(p) for p in self._managed()]
        unmanaged = [
            {
                "pane_id": p.pane_id,
                "presence": "unmanaged",
                "title": p.tmux.title,
                "title_quality": "Unmanaged",
                **_tmux_fields(p.tmux),
                "git_branch": None,
            }
            for p in self._panes.values()
            if p.agent is None and p.tmux is not None
        ]
        return managed + unmanaged

    def _managed_pane(self, pane: _Pane) -> dict[str, object]:
        agent = pane.agent
        assert agent is not None
        tmux_title = pane.tmux.title if pane.tmux else ""
        if agent.evidence_mode == "deterministic":
            title, quality = agent.session_key, "DeterministicBinding"
        elif tmux_title:
            title, quality = tmux_title, "HeuristicTitle"
        else:
            title, quality = tmux_title, "Unmanaged"
        return {
            "pane_id": pane.pane_id,
            "presence": "managed",
            "evidence_mode": agent.evidence_mode,
            "signature_class": agent.signature_class,
            "signature_reason": agent.signature_reason,
            "signature_confidence": agent.signature_confidence,
            "signature_inputs": agent.signature_inputs.as_json(),
            "activity_state": agent.activity_state,
            "provider": agent.provider,
            "conversation_title": agent.conversation_title,
            "title": title,
            "title_quality": quality,
            **_tmux_fields(pane.tmux),
            "git_branch": None,
            "updated_at": _TICK_HOLE if pane.live else format_tick(pane.updated_ns),
        }

    def _flap(self, tick: int) -> None:
        """Flapping panes (``pane_flaps``) take their flapped state for odd-numbered
        ``list_panes`` answers and their own for the others, each switch a logged change."""
        odd = self._list_panes_answers % 2 == 1
        if self.spec.pane_flaps:
            self._generation += 1
        for pane_id, flapped in self.spec.pane_flaps.items():
            pane = self._panes.get(pane_id)
            if pane is None or pane.scenario_agent is None or pane.fresh_until_ns is not None:
                continue  # ingested evidence speaks for the pane now
            agent = flapped if odd else pane.scenario_agent
            self._set_agent(pane, agent, agent.session_key, tick)

    def _list_sessions(self, params: Mapping[str, Any], now_ns: int) -> _Raw:
        return self._with_tick(self._sessions_answer(), now_ns)

    def _sessions_answer(self) -> bytes:
        return self._cached(("list_sessions",), self._sessions_now)

    def _sessions_now(self) -> list[dict[str, object]]:
        return [
            {
                "session_key": s.session_key,
                "presence": "managed",
                "evidence_mode": s.evidence_mode,
                "deterministic_last_seen": _TICK_HOLE if s.last_seen == LIVE else s.last_seen,
                "winner_tier": s.winner_tier,
                "activity_state": s.activity_state,
                "activity_source": s.activity_source,
                "representative_pane_instance_id": None,
                "updated_at": _TICK_HOLE if s.live else format_tick(s.updated_ns),
            }
            for s in sorted(self._sessions.values(), key=lambda s: s.session_key)
        ]

    def _list_source_health(self, params: Mapping[str, Any], now_ns: int) -> list[object]:
        checked_at = format_tick(self._tick_at(now_ns))
        return [
            [kind, {"status": status, "checked_at": checked_at}]
            for kind, status in self.spec.source_health
        ]

    def _state_changed(self, params: Mapping[str, Any], now_ns: int) -> _Raw:
        return _Raw(self._state_changed_answer(_since_version(params)))

    def _state_changed_answer(self, since: int) -> bytes:
        def build() -> dict[str, object]:
            # versions are 1, 2, ...: the entries after ``since`` are a slice of the log
            newer = self._changes[min(since, len(self._changes)) :]
            return {"changes": [self._change(c) for c in newer], "version": len(self._changes)}

        return self._cached(("state_changed", since), build)

    def _change(self, change: _Change) -> dict[str, object]:
        entry: dict[str, object] = {
            "version": change.version,
            "session_key": change.session_key,
            "timestamp": format_tick(change.tick_ns),
        }
        if change.pane_id is not None:
            entry["pane_id"] = change.pane_id
            pane = self._panes.get(change.pane_id)
            if pane is not None and pane.agent is not None:
                agent = pane.agent
                entry["pane_state"] = {
                    "signature_class": agent.signature_class,
                    "evidence_mode": agent.evidence_mode,
                    "activity_state": agent.activity_state,
                    "provider": agent.provider,
                    "signature_confidence": agent.signature_confidence,
                }
        session = self._sessions.get(change.session_key)
        if session is not None:
            entry["session_state"] = {
                "presence": "managed",
                "evidence_mode": session.evidence_mode,
                "activity_state": session.activity_state,
                "winner_tier": session.winner_tier,
            }
        return entry

    def _summary_changed(self, params: Mapping[str, Any], now_ns: int) -> _Raw:
        return _Raw(self._summary_answer(_since_version(params)))

    def _summary_answer(self, since: int) -> bytes:
        return self._cached(("summary_changed", since), lambda: self._summary_now(since))

    def _summary_now(self, since: int) -> dict[str, object]:
        newer = self._changes[min(since, len(self._changes)) :]
        pane_changes = sum(1 for c in newer if c.pane_id is not None)
        managed = self._managed()
        total = sum(1 for p in self._panes.values() if p.tmux is not None)
        deterministic = sum(
            1 for p in managed if p.agent is not None and p.agent.evidence_mode == "deterministic"
        )
        return {
            "has_changes": bool(newer),
            "pane_changes": pane_changes,
            "session_changes": len(newer) - pane_changes,
            "summary": {
                "managed": len(managed),
                "total": total,
                "unmanaged": total - min(len(managed), total),
                "deterministic": deterministic,
                "heuristic": len(managed) - deterministic,
            },
            "version": len(self._changes),
        }

    def _daemon_info(self, params: Mapping[str, Any], now_ns: int) -> dict[str, object]:
        return {"nonce": self.nonce, "pid": self.pid, "version": self.spec.version}

    # -- source registry and ingestion --

    def _list_source_registry(self, params: Mapping[str, Any], now_ns: int) -> list[object]:
        now_ms = now_ns // 1_000_000
        return [self._registry[key].as_json(now_ms) for key in sorted(self._registry)]

    def _source_hello(self, params: Mapping[str, Any], now_ns: int) -> dict[str, object]:
        kind = _string_param(params, "source_kind")
        if kind not in SOURCE_KINDS:
            raise _RpcError(INVALID_PARAMS, f"unknown source_kind: {_debug_string(kind)}")
        source_id = _string_param(params, "source_id")
        version = params.get("protocol_version")
        if not isinstance(version, int) or isinstance(version, bool) or version != 1:
            return {"status": "rejected", "reason": "protocol mismatch"}
        socket_path = params.get("socket_path")
        socket_path = socket_path if isinstance(socket_path, str) else None
        now_ms = now_ns // 1_000_000
        entry = self._registry.get(source_id)
        if entry is None:
            self._registry[source_id] = _Registration(
                source_id, kind, version, "active", now_ms, now_ms, socket_path
            )
        elif entry.lifecycle == "revoked":
            return {"status": "rejected", "reason": "source revoked"}
        else:  # the stored source_kind is never updated
            entry.lifecycle, entry.protocol_version, entry.socket_path = (
                "active",
                version,
                socket_path,
            )
            entry.touch(now_ms)
        return {"status": "accepted", "source_id": source_id}

    def _source_heartbeat(self, params: Mapping[str, Any], now_ns: int) -> dict[str, object]:
        entry = self._registry.get(_string_param(params, "source_id"))
        if entry is not None:  # the lifecycle stays as it is, even when stale
            entry.touch(now_ns // 1_000_000)
        return {"acknowledged": entry is not None}

    def _source_ingest(self, params: Mapping[str, Any], now_ns: int) -> dict[str, object]:
        kind = _string_param(params, "source_kind")
        if kind not in INGEST_KINDS:
            raise _RpcError(INVALID_PARAMS, f"unknown source_kind: {_debug_string(kind)}")
        try:
            event = _parse_event(kind, params.get("event"), self._tick_after(now_ns))
        except _EventError as exc:
            raise _RpcError(INVALID_PARAMS, f"invalid event: {exc}") from None
        source_id = _string_param(params, "source_id", kind)
        nonce = params.get("nonce")
        if isinstance(nonce, str) and nonce != self.nonce:
            self.log(f"WARN source.ingest admission warning: nonce mismatch for {source_id}")
        elif not isinstance(nonce, str) and source_id not in _PREREGISTERED:
            self.log(f"WARN source.ingest: unregistered source_id={source_id}")
        self._pending.append(event)
        return {"status": "ok"}


def _seed_session(spec: SessionSpec, start_ns: int) -> _Session:
    last_seen, last_seen_ns = spec.deterministic_last_seen, 0
    if last_seen not in (None, LIVE):
        last_seen_ns = parse_rfc3339(str(last_seen))
        last_seen = format_event_time(last_seen_ns)
    return _Session(
        spec.session_key,
        spec.evidence_mode,
        spec.winner_tier,
        spec.activity_state,
        spec.activity_source,
        last_seen,
        last_seen_ns,
        live=True,
        updated_ns=start_ns,
    )


def _tmux_fields(tmux: TmuxInfo | None) -> dict[str, object]:
    return {
        "session_id": tmux.session_id if tmux else None,
        "session_name": tmux.session_name if tmux else None,
        "window_id": tmux.window_id if tmux else None,
        "window_name": tmux.window_name if tmux else None,
        "current_cmd": tmux.current_cmd if tmux else None,
        "current_path": tmux.current_path if tmux else None,
    }


def _error(request_id: object, code: int, message: str) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")  # serde_json rejects NaN and Infinity


def _since_version(params: Mapping[str, Any]) -> int:
    value = params.get("since_version")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _U64_MAX:
        return value
    return 0


def _string_param(params: Mapping[str, Any], key: str, default: str = "") -> str:
    value = params.get(key)
    return value if isinstance(value, str) else default


def _debug_string(value: str) -> str:
    """Rust's ``{:?}`` of a string, close enough: quoted, with JSON-style escapes."""
    return json.dumps(value, ensure_ascii=False)


def _unexpected(value: object) -> str:
    """serde's description of a JSON value that has the wrong type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f"string {_debug_string(value)}"
    return "sequence" if isinstance(value, list) else "map"


def _parse_event(kind: str, raw: object, apply_tick_ns: int) -> _Event:
    """Validate an ingested event the way serde would and turn it into an :class:`_Event`."""
    if not isinstance(raw, dict):
        raise _EventError(f"invalid type: {_unexpected(raw)}, expected a map")
    fields = _EVENT_FIELDS[kind]
    expected = {name: what for name, what, _ in fields}
    ts_ns = 0
    # serde reports a wrongly typed field while walking the map (keys in sorted order), and a
    # missing one only after the walk, in declaration order.
    for name in sorted(raw):
        what, value = expected.get(name), raw[name]
        if what in (_STRING, _TIMESTAMP) or (what == _OPTIONAL_STRING and value is not None):
            if not isinstance(value, str):
                wanted = _STRING if what == _OPTIONAL_STRING else what
                raise _EventError(f"invalid type: {_unexpected(value)}, expected {wanted}")
        elif what == _BOOLEAN and not isinstance(value, bool):
            raise _EventError(f"invalid type: {_unexpected(value)}, expected {_BOOLEAN}")
        if what == _TIMESTAMP:
            try:
                ts_ns = parse_rfc3339(value)
            except ValueError as exc:
                raise _EventError(str(exc)) from None
    for name, _, required in fields:
        if required and name not in raw:
            raise _EventError(f"missing field `{name}`")
    if kind == "claude_hooks":
        event_id, event_type = (
            raw["hook_id"],
            _HOOK_EVENT.get(raw["hook_type"], "lifecycle.unknown"),
        )
        payload = raw["data"]
    else:
        event_id, event_type, payload = raw["id"], raw["event_type"], raw["payload"]
    return _Event(
        kind=kind,
        event_id=event_id,
        session_key=raw["session_id"],
        activity=_EVENT_ACTIVITY.get(event_type, "Unknown"),
        ts_ns=ts_ns,
        ts_text=format_event_time(ts_ns),
        pane_id=raw.get("pane_id"),
        inputs=_signal_inputs(payload),
        apply_tick_ns=apply_tick_ns,
    )


def _signal_inputs(payload: object) -> SignatureInputs:
    """Heuristic flags read from a deterministic event's payload (all false when absent)."""
    if not isinstance(payload, dict):
        return SignatureInputs()
    return SignatureInputs(
        provider_hint=payload.get("provider_hint") is True,
        cmd_match=payload.get("cmd_match") is True,
        poller_match=payload.get("poller_match") is True
        or payload.get("capture_match") is True
        or payload.get("matched_pattern") is not None,
        title_match=payload.get("title_match") is True,
    )
