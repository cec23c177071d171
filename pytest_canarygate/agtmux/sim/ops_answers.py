"""The operations evidence of a simulated v5 deployment (``docs/operations-contract.md``).

:class:`OpsModel` places a scenario's ``[operations]`` history (as :mod:`.ops_scenario` reads it)
before the fleet's start (``anchor_ms``, "now") and answers the seven ``ops.*`` methods at any
later moment. The v5 daemon serves those answers over JSON-RPC (:func:`attach_operations`), the
operations HTTP server over HTTP and
:mod:`~pytest_canarygate.agtmux.sim.evidence_files` writes them as files: all three say the same.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any

from pytest_canarygate.agtmux.providers.ops import ALERT_LEDGER
from pytest_canarygate.agtmux.providers.ops import BINDING_STATS
from pytest_canarygate.agtmux.providers.ops import CURSOR_STATS
from pytest_canarygate.agtmux.providers.ops import OPS_METHODS
from pytest_canarygate.agtmux.providers.ops import RUNTIME_SELECTOR
from pytest_canarygate.agtmux.providers.ops import SNAPSHOT_LIST
from pytest_canarygate.agtmux.providers.ops import SUPERVISOR_EVENTS
from pytest_canarygate.agtmux.providers.ops import SUPERVISOR_STATUS
from pytest_canarygate.agtmux.sim.clock import NS_PER_MS
from pytest_canarygate.agtmux.sim.ops_scenario import DAY_MS
from pytest_canarygate.agtmux.sim.ops_scenario import STARTUP_ORDER
from pytest_canarygate.agtmux.sim.ops_scenario import HoldDownSpec
from pytest_canarygate.agtmux.sim.ops_scenario import OperationsSpec
from pytest_canarygate.agtmux.sim.projection import SimDaemon
from pytest_canarygate.agtmux.sim.scenario import OPS_DAEMON
from pytest_canarygate.agtmux.sim.scenario import REGISTRY_STALE_MS
from pytest_canarygate.agtmux.sim.scenario import DaemonSpec
from pytest_canarygate.agtmux.sim.scenario import Scenario

__all__ = ["PROCESS", "LogLine", "OpsModel", "attach_operations", "operations_model"]

PROCESS = "codex_app_server"
"""The one child the v5 runtime supervises (daemon facts 5.4)."""
_POLL_LOOP = "agtmux::poll_loop"
_EXITED = "codex app-server process exited, attempting reconnect"  # daemon facts 5.4
_RECONNECTED = "codex app-server reconnected"
_SPAWN_MS = 500  # how long a (re)spawn of the supervised child takes
_QUIET_MS = 60_000  # steady restarts keep this far away from a hold-down
_SLO_TICK_MS = 20  # missed ticks fire back to back after a slow one (daemon facts 7.4)
_SLO_DEGRADED_TICKS = 10  # ERROR lines of one degraded episode, one per tick
_SLO_P95_MS = 3224
_STAGE_READY_MS = 40  # how long each startup stage takes to become ready
# How far each restart delay lands off the schedule, in units of the delay jitter: a fixed,
# varied pattern (the simulator is deterministic), each within one unit.
_JITTER_PATTERN = (0.7, -0.45, 0.9, -0.85, 0.3, -0.15, 0.55, -0.6)
_SUSTAINED_TICK_MS = 1_000  # a sustained breach logs one line per tick at the default poll


@dataclass(frozen=True)
class LogLine:
    """One line of the daemon's own log (tracing-subscriber's fields)."""

    at_us: int
    level: str
    target: str
    message: str


class _History:
    """Supervisor events and the daemon log lines that go with them, as they are generated."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lines: list[LogLine] = []

    def event(self, at_ms: int, kind: str, **extra: int) -> None:
        self.events.append({"at_ms": at_ms, "kind": kind, "process": PROCESS, **extra})

    def stage(self, at_ms: int, kind: str, stage: str) -> None:
        self.events.append({"at_ms": at_ms, "kind": kind, "stage": stage})

    def line(self, at_ms: int, level: str, message: str, target: str = _POLL_LOOP) -> None:
        # Real timestamps have microseconds: made up here, stable, in order within a millisecond.
        same_ms = sum(1 for line in self.lines if line.at_us // 1000 == at_ms)
        micros = at_ms * 7 % 400 + 13 * same_ms
        self.lines.append(LogLine(at_ms * 1000 + micros, level, target, message))

    def sorted_events(self) -> list[dict[str, Any]]:
        return sorted(self.events, key=lambda e: e["at_ms"])


class OpsModel:
    """The seven operations answers of one deployment, history relative to ``anchor_ms``.

    ``served`` are the ``ops.*`` methods the deployment serves (the others are not served by
    any transport); ``started_ms`` is when the v5 daemon started, ``projection_version``,
    ``session_count`` and ``pane_count`` what it holds now; ``stale_sources_at_ms`` when each
    registered source went stale (its WARN "source stale" line, daemon facts 2.9).
    """

    def __init__(
        self,
        spec: OperationsSpec,
        *,
        anchor_ms: int,
        phase: str | None,
        started_ms: int,
        projection_version: int,
        session_count: int,
        pane_count: int,
        served: frozenset[str],
        tmux_sessions: tuple[str, ...] = (),
        v5_version: str = "0.1.0",
        stale_sources_at_ms: tuple[tuple[str, int], ...] = (),
    ) -> None:
        self.spec = spec
        self.tmux_sessions = tmux_sessions
        self.v5_version = v5_version
        self.anchor_ms = anchor_ms
        self.phase = phase
        self.started_ms = started_ms
        self.served = served
        self.covers_from_ms = anchor_ms - spec.history_ms
        self.snapshots = [
            _snapshot(
                s.snapshot_id,
                anchor_ms - s.ago_ms,
                max(0, projection_version + s.version_delta),
                s.trigger,
                session_count,
                pane_count,
            )
            for s in sorted(spec.snapshots, key=lambda s: (-s.ago_ms, s.snapshot_id))
        ]
        history = _History()
        self._restarts_scheduled = 0
        self._startup_history(history)
        self.hold_down_until = self._supervisor_history(history)
        self._cursor_history(history)
        self._latency_history(history)
        for source_id, at_ms in stale_sources_at_ms:
            if at_ms >= self.covers_from_ms:
                history.line(at_ms, "WARN", f"source stale: {source_id}")
        self.events = history.sorted_events()
        self._lines = history.lines
        self.alert_records = self._alert_records()
        self._answers: dict[str, Callable[[int | None, int], object]] = {
            SNAPSHOT_LIST: lambda since, now: self.snapshots,
            SUPERVISOR_STATUS: lambda since, now: self.supervisor_status(now),
            SUPERVISOR_EVENTS: self.supervisor_events,
            ALERT_LEDGER: self.alert_ledger,
            CURSOR_STATS: lambda since, now: self.cursor_stats(now),
            BINDING_STATS: lambda since, now: self.binding_stats(now),
            RUNTIME_SELECTOR: lambda since, now: self.runtime_selector(),
        }

    # -- answers --

    def answer(self, method: str, params: Mapping[str, object], now_ms: int) -> object:
        """The result of ``method`` (an ``ops.*`` name) at ``now_ms``; KeyError if not served.

        ``since_ms`` is read leniently, like every daemon parameter: anything but a
        non-negative integer (or its decimal text, from a query string) means "all".
        """
        if method not in self.served:
            raise KeyError(method)
        return self._answers[method](_since_ms(params.get("since_ms")), now_ms)

    def supervisor_status(self, now_ms: int) -> dict[str, Any]:
        """The ``ops.supervisor_status`` result."""
        unready = dict(self.spec.unready)
        state: object = "Ready"
        if self.hold_down_until is not None:
            state = {"HoldDown": {"until_ms": self.hold_down_until}}
        status: dict[str, Any] = {
            "state": state,
            "policy": asdict(self.spec.policy),
            "startup_order": list(self.spec.startup_order),
            "dependency_gate": {
                stage: {
                    "all_ready": not unready.get(stage),
                    "unready": list(unready.get(stage, ())),
                }
                for stage in self.spec.startup_order
            },
            "restart_count": sum(1 for e in self.events if e["kind"] == "restart"),
            "covers_from_ms": self.covers_from_ms,
            "as_of_ms": now_ms,
        }
        if self.spec.jitter_applied is not None:
            status["jitter_applied"] = self.spec.jitter_applied
        return status

    def supervisor_events(self, since_ms: int | None, now_ms: int) -> dict[str, Any]:
        """The ``ops.supervisor_events`` result: events at or after ``since_ms``, and the stage
        events of the latest startup whenever it was."""
        starts = [
            e["at_ms"]
            for e in self.events
            if e["kind"] == "stage_started" and e["stage"] == STARTUP_ORDER[0]
        ]
        startup = max(starts, default=None)
        events = [
            e
            for e in self.events
            if since_ms is None
            or e["at_ms"] >= since_ms
            or (startup is not None and "stage" in e and e["at_ms"] >= startup)
        ]
        return {"events": events, "covers_from_ms": self.covers_from_ms, "as_of_ms": now_ms}

    def alert_ledger(self, since_ms: int | None, now_ms: int) -> dict[str, Any]:
        """The ``ops.alert_ledger`` result: entries unresolved or resolved at/after ``since_ms``."""
        entries = [
            entry
            for entry in self.alert_entries()
            if since_ms is None
            or entry["resolved_at_ms"] is None
            or entry["resolved_at_ms"] >= since_ms
        ]
        return {"entries": entries, "covers_from_ms": self.covers_from_ms, "as_of_ms": now_ms}

    def alert_entries(self) -> list[dict[str, Any]]:
        """Every ledger entry as it stands now, oldest first."""
        final: dict[str, dict[str, Any]] = {}
        for _, record in self.alert_records:
            final[record["alert_id"]] = record
        return sorted(final.values(), key=lambda e: e["created_at_ms"])

    def cursor_stats(self, now_ms: int) -> dict[str, Any]:
        """The ``ops.cursor_stats`` result: one gateway event per second since the daemon
        started or the watermarks were last reset by a full resync."""
        resyncs = self.spec.full_resyncs_ago_ms
        reset_ms = max([self.started_ms, *(self.anchor_ms - ago for ago in resyncs)])
        position = max(0, (now_ms - reset_ms) // 1000)
        return {
            "fetched": position,
            "committed": position,
            "invalid_streak": 0,
            "max_invalid_streak": 3 if resyncs else 0,
            "retry_count": 2 * len(resyncs),
            "full_resync_count": len(resyncs),
            "last_advanced_at_ms": reset_ms + position * 1000 if position else None,
            "covers_from_ms": self.covers_from_ms,
            "as_of_ms": now_ms,
        }

    def binding_stats(self, now_ms: int) -> dict[str, Any]:
        """The ``ops.binding_stats`` result."""
        conflicts = self.spec.cas_conflicts_ago_ms
        return {
            "cas_conflicts": len(conflicts),
            "last_conflict_at_ms": self.anchor_ms - min(conflicts) if conflicts else None,
            "covers_from_ms": self.covers_from_ms,
            "as_of_ms": now_ms,
        }

    @property
    def selector_changed_ms(self) -> int:
        """When the runtime selector last changed (epoch ms)."""
        return self.anchor_ms - self.spec.selector.changed_ago_ms

    def runtime_selector(self) -> dict[str, Any]:
        """The ``ops.runtime_selector`` result for the phase judged, with its session routes."""
        default_daemon, enabled, canary = self.spec.selector.for_phase(self.phase)
        return {
            "default_daemon": default_daemon,
            "v5_enabled": enabled,
            "v5_canary_sessions": list(canary),
            "changed_at_ms": self.selector_changed_ms,
            "sessions": self.session_routes(),
        }

    def session_routes(self) -> list[dict[str, Any]]:
        """How the selector routes each tmux session of the fleet (by session name)."""
        routes = []
        for session in self.tmux_sessions:
            daemon, started, routed = self.spec.selector.route(
                self.phase, session, self.anchor_ms, self.selector_changed_ms
            )
            routes.append(
                {
                    "session_name": session,
                    "daemon": daemon,
                    "started_at_ms": started,
                    "routed_at_ms": routed,
                }
            )
        return routes

    @property
    def build_started_ms(self) -> int:
        """When the build's ``just verify`` run started: as the scenario says, else a day ago
        or when v5 started, whichever is later."""
        ago = self.spec.build.ago_ms
        if ago is not None:
            return self.anchor_ms - ago
        return min(self.anchor_ms, max(self.started_ms, self.anchor_ms - DAY_MS))

    def log_lines(self, socket_path: str) -> list[LogLine]:
        """The v5 daemon's own log over the history, oldest first: its starts and stops, the
        supervised child's restarts and hold-downs, cursor recoveries."""
        starts = _History()
        starts.line(
            self.covers_from_ms, "INFO", f"removed stale socket at {socket_path}", "agtmux::server"
        )
        if self.started_ms > self.covers_from_ms:  # the previous process stopped then
            starts.line(self.started_ms - 1500, "INFO", "received SIGTERM, shutting down", "agtmux")
            starts.line(self.started_ms - 1400, "INFO", "daemon stopped")
        return sorted([*self._lines, *starts.lines], key=lambda line: line.at_us)

    # -- history --

    def _startup_history(self, history: _History) -> None:
        """The supervisor starting its stages when the v5 daemon started (if the history
        reaches back that far and the scenario keeps the events)."""
        startup = self.spec.startup
        if not startup.retained or self.started_ms < self.covers_from_ms:
            return
        at, previous_start = self.started_ms, self.started_ms
        for stage in startup.order:
            start = previous_start + 10 if stage == startup.early else at
            history.stage(start, "stage_started", stage)
            history.stage(start + _STAGE_READY_MS, "stage_ready", stage)
            at, previous_start = start + _STAGE_READY_MS + 1, start

    def _delay(self, attempt: int) -> int:
        """The delay the runtime schedules for ``attempt``: the policy's backoff, moved off
        it by the delay jitter (by default the policy's, when the runtime applies it)."""
        policy = self.spec.policy
        nominal = min(policy.initial_backoff_ms * policy.multiplier**attempt, policy.max_backoff_ms)
        jitter = self.spec.delay_jitter
        if jitter is None:
            jitter = policy.jitter_pct if self.spec.jitter_applied else 0.0
        factor = _JITTER_PATTERN[self._restarts_scheduled % len(_JITTER_PATTERN)]
        self._restarts_scheduled += 1
        return round(nominal * (1 + factor * jitter))

    def _supervisor_history(self, history: _History) -> int | None:
        """Generate the supervised child's events; return ``until_ms`` if it is in HoldDown."""
        spans: list[tuple[int, int]] = []
        held_until: int | None = None
        held_since: int | None = None
        for hold in sorted(self.spec.hold_downs, key=lambda h: -h.ago_ms):
            at = self.anchor_ms - hold.ago_ms
            until = self._hold_down(history, at, hold)
            spans.append((at - _QUIET_MS, until + _QUIET_MS))
            held_until, held_since = (None, None) if hold.recovered else (until, at)
        for restarts in (self.spec.restarts, *self.spec.extra_restarts):
            if not restarts.every_ms:
                continue
            at = self.anchor_ms - restarts.latest_ms
            while at >= self.anchor_ms - restarts.over_ms and at >= self.covers_from_ms:
                quiet = any(start <= at <= end for start, end in spans)
                if not quiet and (held_since is None or at < held_since - _QUIET_MS):
                    self._restart(history, at)
                at -= restarts.every_ms
        return held_until

    def _restart(self, history: _History, at: int) -> None:
        after = self._delay(0)
        history.event(at, "failure")
        history.event(at, "restart", attempt=0, after_ms=after)
        history.event(at + after + _SPAWN_MS, "success")
        history.line(at, "INFO", _EXITED)
        history.line(at + after + _SPAWN_MS, "INFO", _RECONNECTED)

    def _hold_down(self, history: _History, at: int, hold: HoldDownSpec) -> int:
        """Failures back to back until the budget is exhausted at ``at``; return ``until_ms``."""
        policy = self.spec.policy
        budget = hold.failures or max(1, policy.failure_budget)
        delays = [self._delay(i) for i in range(budget - 1)]
        failed = at - sum(delays) - _SPAWN_MS * len(delays)
        for attempt, delay in enumerate(delays):
            history.line(failed - _SPAWN_MS, "INFO", _EXITED)
            history.event(failed, "failure")
            history.event(failed, "restart", attempt=attempt, after_ms=delay)
            history.line(failed, "INFO", f"codex app-server: reconnect failed, retry in {delay}ms")
            failed += delay + _SPAWN_MS
        lasts = policy.holddown_ms if hold.lasts_ms is None else hold.lasts_ms
        until = at + lasts
        history.line(at - _SPAWN_MS, "INFO", _EXITED)
        history.event(at, "failure")
        history.event(at, "hold_down", until_ms=until)
        history.line(
            at,
            "WARN",
            f"codex app-server: failure budget exhausted, hold-down {lasts // 1000}s",
        )
        if hold.recovered:
            history.line(until + 100, "INFO", _EXITED)
            history.event(until + 100 + _SPAWN_MS, "success")
            history.line(until + 100 + _SPAWN_MS, "INFO", _RECONNECTED)
        return until

    def _cursor_history(self, history: _History) -> None:
        """The log lines of each full resync: two retries from committed, then the resync."""
        for ago in self.spec.full_resyncs_ago_ms:
            at = self.anchor_ms - ago
            current = max(10, (at - 2000 - self.started_ms) // 1000)
            for offset in (-2000, -1000, 0):
                history.line(
                    at + offset,
                    "WARN",
                    "cursor watermark advance_fetched error: non-monotonic: "
                    f"current={current}, attempted={current - 10}",
                )
                if offset:
                    history.line(
                        at + offset, "INFO", f"cursor recovery: retry from committed={current - 10}"
                    )
            history.line(at, "ERROR", "cursor recovery: full resync (streak exceeded)")

    def _latency_history(self, history: _History) -> None:
        """The log lines of each degraded latency episode (daemon facts 7.4): two WARN "SLO
        breach" lines, then one ERROR "SLO DEGRADED" per tick, the last one ``ago`` before now;
        of each brief breach (the two WARN lines, then healthy again); and of each sustained
        breach, one line per 1 s tick for as long as it lasted."""
        for ago in self.spec.slo_degraded_ago_ms:
            end = self.anchor_ms - ago
            ticks = 2 + _SLO_DEGRADED_TICKS
            for consecutive in range(1, ticks + 1):
                at = end - (ticks - consecutive) * _SLO_TICK_MS
                level, what = (
                    ("WARN", "SLO breach") if consecutive < 3 else ("ERROR", "SLO DEGRADED")
                )
                history.line(at, level, f"{what}: p95={_SLO_P95_MS}ms, consecutive={consecutive}")

        for ago in self.spec.slo_breached_ago_ms:
            end = self.anchor_ms - ago
            for consecutive in (1, 2):
                at = end - (2 - consecutive) * _SLO_TICK_MS
                history.line(
                    at, "WARN", f"SLO breach: p95={_SLO_P95_MS}ms, consecutive={consecutive}"
                )
        for ago, lasting in self.spec.slo_sustained:
            end = self.anchor_ms - ago
            ticks = lasting // _SUSTAINED_TICK_MS + 1
            for consecutive in range(1, ticks + 1):
                at = end - (ticks - consecutive) * _SUSTAINED_TICK_MS
                level, what = (
                    ("WARN", "SLO breach") if consecutive < 3 else ("ERROR", "SLO DEGRADED")
                )
                history.line(at, level, f"{what}: p95={_SLO_P95_MS}ms, consecutive={consecutive}")

    def _alert_records(self) -> list[tuple[int, dict[str, Any]]]:
        """(written at, ledger record) in the order a ledger file has them: each entry when it
        was created and again when it was resolved."""
        records: list[tuple[int, int, dict[str, Any]]] = []
        for order, alert in enumerate(self.spec.alerts):
            entry: dict[str, Any] = {
                "alert_id": alert.alert_id,
                "severity": alert.severity,
                "source": alert.source,
                "message": alert.message,
                "created_at_ms": self.anchor_ms - alert.created_ago_ms,
                "resolved_at_ms": None,
                "resolve_policy": alert.resolve_policy,
            }
            records.append((self.anchor_ms - alert.created_ago_ms, order, entry))
            if alert.resolved_ago_ms is not None:
                resolved_at = self.anchor_ms - alert.resolved_ago_ms
                records.append((resolved_at, order, {**entry, "resolved_at_ms": resolved_at}))
        return [(at, record) for at, _, record in sorted(records, key=lambda r: (r[0], r[1]))]


def _snapshot(
    snapshot_id: str,
    created_at_ms: int,
    version: int,
    trigger: str,
    session_count: int,
    pane_count: int,
) -> dict[str, Any]:
    return {
        "snapshot_id": snapshot_id,
        "created_at_ms": created_at_ms,
        "projection_version": version,
        "session_count": session_count,
        "pane_count": pane_count,
        "trigger": trigger,
        "size_bytes": 2048 + 512 * (session_count + pane_count) + 16 * version,
    }


def _since_ms(value: object) -> int | None:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def operations_model(
    scenario: Scenario,
    *,
    phase: str | None,
    anchor_ms: int,
    projection_version: int | None = None,
) -> OpsModel | None:
    """The operations evidence of ``scenario``'s v5 deployment, or None if it has none.

    ``projection_version`` is the v5 daemon's current one; by default it is computed from the
    scenario (what a freshly started v5 daemon holds).
    """
    spec = scenario.operations
    if spec is None:
        return None
    v5 = scenario.daemon(OPS_DAEMON, phase)
    if projection_version is None:
        projection_version = SimDaemon(v5, pid=0, start_ns=anchor_ms * NS_PER_MS).projection_version
    return OpsModel(
        spec,
        anchor_ms=anchor_ms,
        phase=phase,
        started_ms=anchor_ms - v5.uptime_ms,
        projection_version=projection_version,
        session_count=len(v5.sessions),
        pane_count=sum(1 for pane in v5.panes if pane.agent is not None),
        served=frozenset(OPS_METHODS) - v5.unavailable_methods,
        tmux_sessions=tuple(
            sorted({pane.tmux.session_name for pane in v5.panes if pane.tmux is not None})
        ),
        v5_version=v5.version,
        stale_sources_at_ms=_stale_sources_at(spec, v5, anchor_ms),
    )


def _stale_sources_at(
    spec: OperationsSpec, v5: DaemonSpec, anchor_ms: int
) -> tuple[tuple[str, int], ...]:
    """(source_id, when it went stale) for the scenario's past stale episodes and for each
    registry entry stale now: at the tick its heartbeat passed the stale limit."""
    past = [(source_id, anchor_ms - ago) for source_id, ago in spec.stale_sources]
    now_stale = [
        (entry.source_id, anchor_ms - max(entry.heartbeat_age_ms - REGISTRY_STALE_MS, 1))
        for entry in v5.registry
        if entry.lifecycle == "stale"
    ]
    return tuple(sorted([*past, *now_stale], key=lambda pair: pair[1]))


def attach_operations(
    daemon: SimDaemon, scenario: Scenario, *, phase: str | None, anchor_ms: int
) -> None:
    """Equip a daemon for its scenario: a nonce saying when it started (``uptime``) and, for
    the v5 daemon, the operations methods its deployment serves."""
    spec = daemon.spec
    if spec.uptime_ms:
        started_ns = (anchor_ms - spec.uptime_ms) * NS_PER_MS  # exactly uptime before the anchor
        daemon.nonce = f"{daemon.pid}-{started_ns}"
    if spec.name != OPS_DAEMON:
        return
    model = operations_model(
        scenario, phase=phase, anchor_ms=anchor_ms, projection_version=daemon.projection_version
    )
    if model is None:
        return

    def handler(method: str) -> Callable[[Mapping[str, Any], int], object]:
        return lambda params, now_ns: model.answer(method, params, now_ns // NS_PER_MS)

    daemon.add_methods({method: handler(method) for method in model.served})
