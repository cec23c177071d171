"""The ``[operations]`` section of a scenario: the operations evidence a v5 deployment serves.

Snapshots, the supervisor's history, the alert ledger, cursor and binding counters, the runtime
selector, the v5 build and the archived v4 binary (``docs/operations-contract.md``). Every time
is a duration before the fleet's start ("now"), so the history always ends at the present. The
keys are documented at the top of ``scenarios/healthy.toml``; :mod:`.ops_answers` turns them into
the ``ops.*`` answers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import fields

from pytest_canarygate.agtmux.records import RESOLVE_POLICIES
from pytest_canarygate.agtmux.records import SEVERITY_LABELS
from pytest_canarygate.agtmux.records import SNAPSHOT_TRIGGERS
from pytest_canarygate.agtmux.records import RestartPolicy
from pytest_canarygate.agtmux.sim.schema import Node
from pytest_canarygate.agtmux.sim.schema import Table
from pytest_canarygate.agtmux.sim.schema import fail
from pytest_canarygate.agtmux.sim.schema import join_key

__all__ = [
    "CONTRACT_POLICY",
    "STARTUP_ORDER",
    "AlertSpec",
    "ArchiveSpec",
    "BuildSpec",
    "HoldDownSpec",
    "OperationsSpec",
    "RestartSpec",
    "SelectorSpec",
    "SnapshotSpec",
    "StartupSpec",
    "read_operations",
]

DAY_MS = 86_400_000
# Deliberately written out again rather than imported from pytest_canarygate.agtmux.judgement: the
# simulator is the oracle the contract gates are tested against, and must not echo a mistake.
CONTRACT_POLICY = RestartPolicy(
    initial_backoff_ms=1_000,
    multiplier=2.0,
    max_backoff_ms=30_000,
    jitter_pct=0.2,
    failure_budget=5,
    budget_window_ms=600_000,
    holddown_ms=300_000,
)
"""The runbook's Supervisor Contract Reference (daemon facts 5.1)."""
STARTUP_ORDER = ("Sources", "Gateway", "Daemon", "Ui")
"""``startup_order()`` (daemon facts 5.5)."""

_SNAPSHOT_ID = re.compile(r"snap-[1-9]\d*")
_ALERT_ID = re.compile(r"alert-[1-9]\d*")
_TEST_NAME = re.compile(r"[A-Za-z0-9_.-]+::\S+")
_DAEMON_CHOICES = ("v4", "v5")
_OPERATIONS_KEYS = (
    "history",
    "daemon_log",
    "snapshots",
    "supervisor",
    "alerts",
    "cursor",
    "binding",
    "latency",
    "sources",
    "selector",
    "build",
    "archive",
)
_SNAPSHOT_KEYS = ("trigger", "ago", "version_delta")
_SUPERVISOR_KEYS = (
    "policy",
    "startup_order",
    "unready",
    "restarts",
    "extra_restarts",
    "hold_downs",
    "jitter_applied",
    "delay_jitter",
    "startup",
)
_RESTART_KEYS = ("every", "latest", "over")
_HOLD_DOWN_KEYS = ("ago", "recovered", "failures", "lasts")
_STARTUP_KEYS = ("order", "early", "retained")
_ALERT_KEYS = ("severity", "source", "message", "created", "resolved", "resolve_policy")
_SELECTOR_KEYS = (
    "follow_phase",
    "canary_sessions",
    "default_daemon",
    "v5_enabled",
    "v5_canary_sessions",
    "changed",
    "started",
    "routes",
)
_ROUTE_KEYS = ("daemon", "routed")
DEFAULT_SESSION_STARTED_MS = 30 * DAY_MS
"""When each tmux session started, unless ``started`` says otherwise: before every phase."""
DEFAULT_SELECTOR_CHANGED_MS = 10 * DAY_MS
"""When the selector last changed by default: long enough before now for every phase window."""
_FIXED_SELECTOR_KEYS = ("default_daemon", "v5_enabled", "v5_canary_sessions")


@dataclass(frozen=True)
class SnapshotSpec:
    """A retained snapshot, taken ``ago_ms`` before now at the live version + ``version_delta``."""

    snapshot_id: str
    trigger: str
    ago_ms: int
    version_delta: int


@dataclass(frozen=True)
class RestartSpec:
    """Steady supervised-child restarts: one every ``every_ms`` over the last ``over_ms``, the
    latest ``latest_ms`` ago (``every_ms`` 0: none)."""

    every_ms: int
    latest_ms: int
    over_ms: int


@dataclass(frozen=True)
class HoldDownSpec:
    """A hold-down (failure budget exhausted) ``ago_ms`` before now, and whether it recovered;
    entered at the ``failures``-th failure and lasting ``lasts_ms`` (None: as the policy says)."""

    ago_ms: int
    recovered: bool
    failures: int | None = None
    lasts_ms: int | None = None


@dataclass(frozen=True)
class StartupSpec:
    """The supervisor's start of its stages when v5 started: in ``order``, each after the
    previous was ready except ``early`` (started before it), the events ``retained`` or not."""

    order: tuple[str, ...] = STARTUP_ORDER
    early: str | None = None
    retained: bool = True


@dataclass(frozen=True)
class AlertSpec:
    """One alert-ledger entry (``resolved_ago_ms`` None: still unresolved)."""

    alert_id: str
    severity: str
    source: str
    message: str
    created_ago_ms: int
    resolved_ago_ms: int | None
    resolve_policy: str


@dataclass(frozen=True)
class SelectorSpec:
    """The runtime selector: follows the phase judged (``follow_phase``) or is fixed."""

    follow_phase: bool
    canary_sessions: tuple[str, ...]
    default_daemon: str = "v4"
    v5_enabled: bool = False
    v5_canary_sessions: tuple[str, ...] = ()
    changed_ago_ms: int = DEFAULT_SELECTOR_CHANGED_MS  # when the routing last changed
    started_ago_ms: tuple[tuple[str, int], ...] = ()  # tmux session -> when it (re)started
    # tmux session -> (daemon, routed ago or None: since its start), replacing the derived route
    routes: tuple[tuple[str, str, int | None], ...] = ()

    def route(
        self, phase: str | None, session: str, anchor_ms: int, switch_ms: int
    ) -> tuple[str, int, int]:
        """(daemon, started_ms, routed_ms) of a tmux session while ``phase`` is judged, the
        selector having switched to it at ``switch_ms`` (``started`` says when the session
        started, by default :data:`DEFAULT_SESSION_STARTED_MS` before ``anchor_ms``): alpha
        routes every session to v4; canary its canary sessions to v5 (from the switch); gradual
        those started since the switch to v5, the older ones stay where they were (canary
        sessions on v5, the rest on v4); cutover and rollback restarted every older session at
        the switch onto v5, v4 respectively. ``routes`` replaces the derived daemon."""
        started_ago = dict(self.started_ago_ms).get(session, DEFAULT_SESSION_STARTED_MS)
        started_ms = anchor_ms - started_ago
        restarted = max(started_ms, switch_ms)
        if phase == "cutover":
            daemon, started_ms, routed = "v5", restarted, restarted
        elif phase == "rollback":
            daemon, started_ms, routed = "v4", restarted, restarted
        elif phase == "canary" and session in self.canary_sessions:
            daemon, routed = "v5", restarted
        elif phase == "gradual" and (started_ms >= switch_ms or session in self.canary_sessions):
            daemon, routed = "v5", started_ms
        else:
            daemon, routed = "v4", started_ms
        for name, fixed, routed_ago in self.routes:
            if name == session:
                daemon = fixed
                routed = routed if routed_ago is None else max(started_ms, anchor_ms - routed_ago)
        return daemon, started_ms, routed

    def for_phase(self, phase: str | None) -> tuple[str, bool, tuple[str, ...]]:
        """(default_daemon, v5_enabled, v5_canary_sessions) while ``phase`` is judged; no phase
        is alpha, where the runbook starts."""
        if not self.follow_phase:
            return self.default_daemon, self.v5_enabled, self.v5_canary_sessions
        if phase == "canary":
            return "v4", True, self.canary_sessions
        if phase in ("gradual", "cutover"):
            return "v5", True, ()
        return "v4", False, ()  # alpha, rollback


BUILD_CHECKS = ("fmt", "clippy")
"""``just verify``'s steps besides the tests."""
BUILD_CRATES = 6


@dataclass(frozen=True)
class BuildSpec:
    """The v5 build's JUnit report: ``tests`` cases over ``crates`` crates, ``failing`` of
    them failed (by name), the ``checks`` it carries, the ``version`` it names (None: the v5
    daemon's) and when it ran (``ago_ms`` before now; None: a day ago, or when v5 started if
    that is later)."""

    tests: int
    failing: tuple[str, ...]
    version: str | None = None
    ago_ms: int | None = None
    crates: int = BUILD_CRATES
    checks: tuple[str, ...] = BUILD_CHECKS


@dataclass(frozen=True)
class ArchiveSpec:
    """The archived v4 binary: archived ``archived_ago_ms`` before now, kept ``retention_ms``."""

    archived_ago_ms: int
    retention_ms: int
    version: str | None = None  # the manifest's version; None: the v4 daemon's version


@dataclass(frozen=True)
class OperationsSpec:
    """Everything the v5 deployment's operations evidence says, relative to now."""

    history_ms: int
    daemon_log: bool  # the v5 daemon's own log is published as a file
    snapshots: tuple[SnapshotSpec, ...]
    policy: RestartPolicy
    startup_order: tuple[str, ...]
    unready: tuple[tuple[str, tuple[str, ...]], ...]  # (stage, unready dependencies)
    restarts: RestartSpec
    hold_downs: tuple[HoldDownSpec, ...]
    alerts: tuple[AlertSpec, ...]
    full_resyncs_ago_ms: tuple[int, ...]
    cas_conflicts_ago_ms: tuple[int, ...]
    selector: SelectorSpec
    build: BuildSpec
    archive: ArchiveSpec
    jitter_applied: bool | None = None  # None: the status does not expose it
    extra_restarts: tuple[RestartSpec, ...] = ()  # further cadences on top of ``restarts``
    # how far the runtime moves each restart delay off the schedule, as a fraction (None: the
    # policy's jitter_pct when jitter_applied is true, else none)
    delay_jitter: float | None = None
    startup: StartupSpec = StartupSpec()
    slo_degraded_ago_ms: tuple[int, ...] = ()  # degraded latency episodes, ending that long ago
    slo_breached_ago_ms: tuple[int, ...] = ()  # brief breaches (WARN lines only), that long ago
    # sustained breaches: (ago_ms, lasting_ms), one breach line per tick for lasting_ms
    slo_sustained: tuple[tuple[int, int], ...] = ()
    # registered sources that went stale (and came back with a hello): (source_id, ago_ms)
    stale_sources: tuple[tuple[str, int], ...] = ()


def read_operations(node: Node) -> OperationsSpec:
    """Validate an ``[operations]`` table."""
    table = Table(node, _OPERATIONS_KEYS)
    supervisor = _subtable(table, "supervisor", _SUPERVISOR_KEYS)
    startup_order = (
        _names(supervisor.strings("startup_order"))
        if supervisor.get("startup_order") is not None
        else STARTUP_ORDER
    )
    snapshots = table.named_tables("snapshots", _SNAPSHOT_KEYS, pattern=_SNAPSHOT_ID)
    alerts = table.named_tables("alerts", _ALERT_KEYS, pattern=_ALERT_ID)
    latency = _subtable(table, "latency", ("degraded", "breached", "sustained"))
    return OperationsSpec(
        history_ms=table.duration("history", 30 * DAY_MS),
        daemon_log=table.boolean("daemon_log", True),
        snapshots=tuple(_read_snapshot(name, t) for name, t in snapshots.items()),
        policy=_read_policy(supervisor.table("policy", [f.name for f in fields(RestartPolicy)])),
        startup_order=startup_order,
        unready=_read_unready(supervisor, startup_order),
        restarts=_read_restarts(supervisor.table("restarts", _RESTART_KEYS)),
        hold_downs=tuple(
            _read_hold_down(t) for t in supervisor.tables("hold_downs", _HOLD_DOWN_KEYS)
        ),
        alerts=tuple(_read_alert(name, t) for name, t in alerts.items()),
        full_resyncs_ago_ms=tuple(
            _subtable(table, "cursor", ("full_resyncs",)).durations("full_resyncs")
        ),
        cas_conflicts_ago_ms=tuple(
            _subtable(table, "binding", ("cas_conflicts",)).durations("cas_conflicts")
        ),
        selector=_read_selector(table.table("selector", _SELECTOR_KEYS)),
        build=_read_build(
            table.table("build", ("tests", "failing", "version", "ago", "crates", "checks"))
        ),
        archive=_read_archive(table.table("archive", ("archived", "retention", "version"))),
        jitter_applied=(
            None
            if supervisor.get("jitter_applied") is None
            else supervisor.boolean("jitter_applied", False)
        ),
        slo_degraded_ago_ms=tuple(latency.durations("degraded")),
        slo_breached_ago_ms=tuple(latency.durations("breached")),
        slo_sustained=tuple(
            (t.duration("ago"), t.duration("lasting"))
            for t in latency.tables("sustained", ("ago", "lasting"))
        ),
        stale_sources=tuple(
            (t.string("source_id"), t.duration("ago"))
            for t in _subtable(table, "sources", ("stale",)).tables("stale", ("source_id", "ago"))
        ),
        extra_restarts=tuple(
            _read_restarts(t) for t in supervisor.tables("extra_restarts", _RESTART_KEYS)
        ),
        delay_jitter=supervisor.number("delay_jitter", 0.0, 1.0),
        startup=_read_startup(supervisor.table("startup", _STARTUP_KEYS)),
    )


def _read_hold_down(table: Table) -> HoldDownSpec:
    lasts = table.get("lasts")
    return HoldDownSpec(
        ago_ms=table.duration("ago"),
        recovered=table.boolean("recovered", False),
        failures=table.integer("failures", 0, minimum=1, maximum=100) or None,
        lasts_ms=table.duration("lasts") if lasts is not None else None,
    )


def _read_startup(table: Table | None) -> StartupSpec:
    if table is None:
        return StartupSpec()
    order = _names(table.strings("order", STARTUP_ORDER)) or STARTUP_ORDER
    if sorted(order) != sorted(STARTUP_ORDER):
        fail(table.require("order"), f"expected each of {', '.join(STARTUP_ORDER)} once")
    early = table.get("early")
    if early is not None and (early.value not in order or early.value == order[0]):
        fail(early, "expected a stage of the order other than the first")
    return StartupSpec(
        order=order,
        early=None if early is None else str(early.value),
        retained=table.boolean("retained", True),
    )


def _subtable(parent: Table, key: str, accepted: Sequence[str]) -> Table:
    """``parent.key`` validated, or an empty table where it is absent."""
    found = parent.table(key, accepted)
    if found is not None:
        return found
    return Table(Node({}, join_key(parent.node.path, key), parent.node.file), accepted)


def _read_snapshot(snapshot_id: str, table: Table) -> SnapshotSpec:
    return SnapshotSpec(
        snapshot_id=snapshot_id,
        trigger=table.choice("trigger", SNAPSHOT_TRIGGERS),
        ago_ms=table.duration("ago"),
        version_delta=table.integer("version_delta", 0, minimum=-(2**31), maximum=2**31),
    )


def _read_policy(table: Table | None) -> RestartPolicy:
    if table is None:
        return CONTRACT_POLICY
    c = CONTRACT_POLICY
    return RestartPolicy(
        initial_backoff_ms=table.integer("initial_backoff_ms", c.initial_backoff_ms, minimum=0),
        multiplier=_number(table, "multiplier", c.multiplier, 1.0, 100.0),
        max_backoff_ms=table.integer("max_backoff_ms", c.max_backoff_ms, minimum=0),
        jitter_pct=_number(table, "jitter_pct", c.jitter_pct, 0.0, 1.0),
        failure_budget=table.integer("failure_budget", c.failure_budget, minimum=0),
        budget_window_ms=table.integer("budget_window_ms", c.budget_window_ms, minimum=0),
        holddown_ms=table.integer("holddown_ms", c.holddown_ms, minimum=0),
    )


def _number(table: Table, key: str, default: float, minimum: float, maximum: float) -> float:
    value = table.number(key, minimum, maximum)
    return default if value is None else value


def _read_unready(
    supervisor: Table, startup_order: Sequence[str]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    gates = supervisor.table("unready", startup_order)
    if gates is None:
        return ()
    return tuple((stage, tuple(sorted(_names(gates.strings(stage))))) for stage in gates.items)


def _read_restarts(table: Table | None) -> RestartSpec:
    if table is None:
        return RestartSpec(0, 0, 0)
    return RestartSpec(
        every_ms=table.duration("every"),
        latest_ms=table.duration("latest", 0),
        over_ms=table.duration("over", 14 * DAY_MS),
    )


def _read_alert(alert_id: str, table: Table) -> AlertSpec:
    created = table.duration("created")
    resolved_node = table.get("resolved")
    resolved = table.duration("resolved") if resolved_node is not None else None
    if resolved_node is not None and resolved is not None and resolved > created:
        fail(resolved_node, f"resolved before it was created ({table.string('created')} ago)")
    return AlertSpec(
        alert_id=alert_id,
        severity=table.choice("severity", SEVERITY_LABELS),
        source=table.string("source"),
        message=table.string("message"),
        created_ago_ms=created,
        resolved_ago_ms=resolved,
        resolve_policy=table.choice("resolve_policy", RESOLVE_POLICIES, "AutoResolve"),
    )


def _read_selector(table: Table | None) -> SelectorSpec:
    if table is None:
        return SelectorSpec(follow_phase=True, canary_sessions=())
    follow = table.boolean("follow_phase", True)
    canary = _names(table.strings("canary_sessions"))
    changed = table.duration("changed", DEFAULT_SELECTOR_CHANGED_MS)
    started_table = table.table("started", None)
    started = (
        ()
        if started_table is None
        else tuple((name, started_table.duration(name)) for name in started_table.items)
    )
    routes_table = table.table("routes", None)
    routes = tuple(
        _read_route(name, Table(node, _ROUTE_KEYS))
        for name, node in (routes_table.items.items() if routes_table else ())
    )
    if follow:
        for key in _FIXED_SELECTOR_KEYS:
            node = table.get(key)
            if node is not None:
                fail(node, "a fixed selector value needs follow_phase = false")
        return SelectorSpec(
            follow_phase=True,
            canary_sessions=canary,
            changed_ago_ms=changed,
            started_ago_ms=started,
            routes=routes,
        )
    enabled = table.get("v5_enabled")
    if enabled is None:
        table.missing("v5_enabled")
    return SelectorSpec(
        follow_phase=False,
        canary_sessions=canary,
        default_daemon=table.choice("default_daemon", _DAEMON_CHOICES),
        v5_enabled=table.boolean("v5_enabled", False),
        v5_canary_sessions=_names(table.strings("v5_canary_sessions")),
        changed_ago_ms=changed,
        started_ago_ms=started,
        routes=routes,
    )


def _read_route(session: str, table: Table) -> tuple[str, str, int | None]:
    """One ``routes.<session>`` entry: the daemon, and since when (default: the session's
    start)."""
    routed = table.duration("routed") if table.get("routed") is not None else None
    return session, table.choice("daemon", _DAEMON_CHOICES), routed


def _names(nodes: Sequence[Node]) -> tuple[str, ...]:
    return tuple(str(node.value) for node in nodes)


def _read_build(table: Table | None) -> BuildSpec:
    if table is None:
        return BuildSpec(700, ())
    ago = table.get("ago")
    checks = table.get("checks")
    tests = table.integer("tests", 700, minimum=0, maximum=100_000)
    failing = table.strings("failing")
    for node in failing:
        if not _TEST_NAME.fullmatch(str(node.value)):
            fail(node, "expected a test name like agtmux-daemon-v5::supervisor::tests::name")
    if len(failing) > tests:
        fail(table.require("failing"), f"more failing tests than the {tests} tests")
    names = _names(failing)
    if len(set(names)) != len(names):
        fail(table.require("failing"), "a test is named twice")
    return BuildSpec(
        tests,
        names,
        version=table.optional_string("version"),
        ago_ms=table.duration("ago") if ago is not None else None,
        crates=table.integer("crates", BUILD_CRATES, minimum=1, maximum=BUILD_CRATES),
        checks=_names(table.strings("checks", BUILD_CHECKS))
        if checks is not None
        else BUILD_CHECKS,
    )


def _read_archive(table: Table | None) -> ArchiveSpec:
    if table is None:
        return ArchiveSpec(DAY_MS, 30 * DAY_MS)
    return ArchiveSpec(
        archived_ago_ms=table.duration("archived", DAY_MS),
        retention_ms=table.duration("retention", 30 * DAY_MS),
        version=table.optional_string("version"),
    )
