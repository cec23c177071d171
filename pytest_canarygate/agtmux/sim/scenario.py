"""Simulator scenarios: TOML files describing one simulated fleet, loaded into frozen dataclasses.

The schema is documented in the comment block at the top of ``scenarios/healthy.toml``. Every key
is validated: a mistake raises :class:`~pytest_canarygate.errors.ConfigError` naming the file, the
key path, the bad value and what would have been accepted.
"""

from __future__ import annotations

import calendar
import datetime as dt
import os
import re
import sys
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from pytest_canarygate.agtmux.providers.ops import OPS_METHODS
from pytest_canarygate.agtmux.runbook import PHASES
from pytest_canarygate.agtmux.sim.ops_scenario import OperationsSpec
from pytest_canarygate.agtmux.sim.ops_scenario import read_operations
from pytest_canarygate.agtmux.sim.schema import Node
from pytest_canarygate.agtmux.sim.schema import Table
from pytest_canarygate.agtmux.sim.schema import annotate
from pytest_canarygate.agtmux.sim.schema import fail
from pytest_canarygate.errors import ConfigError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = [
    "ACTIVITY_STATES",
    "DETERMINISTIC_REASON",
    "EVIDENCE_MODES",
    "LIVE",
    "METHODS",
    "OPS_DAEMON",
    "PROVIDERS",
    "SOURCE_KINDS",
    "AgentInfo",
    "DaemonSpec",
    "LatencySpec",
    "PaneSpec",
    "Registration",
    "Scenario",
    "SessionSpec",
    "SignatureInputs",
    "TmuxInfo",
    "list_scenarios",
    "load_scenario",
    "load_scenario_file",
    "looks_like_path",
    "parse_rfc3339",
]

METHODS = (
    "list_panes",
    "list_sessions",
    "list_source_health",
    "state_changed",
    "summary_changed",
    "latency_status",
    "list_source_registry",
    "daemon.info",
    "source.hello",
    "source.heartbeat",
    "source.ingest",
)
"""The eleven JSON-RPC methods an agtmux daemon serves (daemon facts 0.6)."""
OPS_DAEMON = "v5"
"""The daemon whose deployment serves the scenario's ``[operations]`` (every other daemon, and
every daemon of a scenario without them, answers the ``ops.*`` methods with -32601)."""

PROVIDERS = ("claude", "codex", "gemini", "copilot")
ACTIVITY_STATES = ("Unknown", "Idle", "Running", "WaitingInput", "WaitingApproval", "Error")
EVIDENCE_MODES = ("deterministic", "heuristic")  # the projection never produces "none"
SIGNATURE_CLASSES = ("deterministic", "heuristic", "none")
SOURCE_KINDS = ("claude_hooks", "claude_jsonl", "codex_appserver", "poller")  # sorted, as served
HEALTH_STATUSES = ("healthy", "degraded", "down")
LATENCY_STATUSES = ("not_started", "insufficient_data", "healthy", "breached", "degraded")
LIFECYCLES = ("pending", "active", "stale", "revoked")
DETERMINISTIC_REASON = "all required deterministic fields present"
LIVE = "live"
"""``deterministic_last_seen`` value meaning "a deterministic event arrives every tick"."""

LATENCY_SLO_MS = 3000
LATENCY_MIN_SAMPLES = 200
LATENCY_BREACH_THRESHOLD = 3
REGISTRY_STALE_MS = 30_000
DEFAULT_VERSIONS = MappingProxyType({"v4": "0.0.4", "v5": "0.1.0"})
FALLBACK_VERSION = "0.1.0"
# What a stock daemon reports once it runs without Claude JSONL activity or a Codex App Server.
DEFAULT_SOURCE_HEALTH = MappingProxyType(
    {
        "claude_hooks": "healthy",
        "claude_jsonl": "down",
        "codex_appserver": "degraded",
        "poller": "healthy",
    }
)
# Heuristic signal weights, in the order signature_reason lists them (daemon facts 3.4).
SIGNAL_WEIGHTS = MappingProxyType(
    {"provider_hint": 1.0, "cmd_match": 0.86, "poller_match": 0.78, "title_match": 0.66}
)

_PANE_ID = re.compile(r"%\d+")
_SESSION_ID = re.compile(r"\$\d+")
_WINDOW_ID = re.compile(r"@\d+")
_DAEMON_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))"
)
_SCENARIO_PACKAGE = "pytest_canarygate.agtmux.sim"
_SCENARIO_DIR = "scenarios"


# --- the loaded scenario -------------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureInputs:
    """The four heuristic signal flags of a pane."""

    provider_hint: bool = False
    cmd_match: bool = False
    poller_match: bool = False
    title_match: bool = False

    def matched(self) -> tuple[str, ...]:
        """Names of the signals that matched, in weight order."""
        return tuple(name for name in SIGNAL_WEIGHTS if getattr(self, name))

    def as_json(self) -> dict[str, bool]:
        """The ``signature_inputs`` object as served."""
        return {name: bool(getattr(self, name)) for name in SIGNAL_WEIGHTS}


@dataclass(frozen=True)
class TmuxInfo:
    """What tmux says about a pane (``title`` is the tmux pane title)."""

    session_id: str
    session_name: str
    window_id: str
    window_name: str
    current_cmd: str
    current_path: str
    title: str


@dataclass(frozen=True)
class AgentInfo:
    """The projected agent state of a managed pane."""

    provider: str
    activity_state: str
    evidence_mode: str
    signature_class: str
    signature_reason: str
    signature_confidence: float
    signature_inputs: SignatureInputs
    conversation_title: str | None
    session_key: str


@dataclass(frozen=True)
class PaneSpec:
    """One pane: ``tmux`` is None for a ghost (gone from tmux), ``agent`` None when unmanaged;
    ``last_change_ms``: how long before now its state last changed (None: not since the
    daemon started)."""

    pane_id: str
    tmux: TmuxInfo | None
    agent: AgentInfo | None
    last_change_ms: int | None = None


@dataclass(frozen=True)
class SessionSpec:
    """One agent session of ``list_sessions``.

    ``deterministic_last_seen`` is None (never), :data:`LIVE` or an RFC 3339 timestamp.
    """

    session_key: str
    evidence_mode: str
    winner_tier: str
    activity_state: str
    activity_source: str
    deterministic_last_seen: str | None


@dataclass(frozen=True)
class LatencySpec:
    """The cached latency evaluation ``latency_status`` serves."""

    status: str
    sample_count: int = 0
    p95_ms: int | None = None
    consecutive_breaches: int = 0

    def as_result(self) -> dict[str, object]:
        """The ``latency_status`` result, with exactly the keys the real daemon sends."""
        result: dict[str, object] = {
            "status": self.status,
            "sample_count": self.sample_count,
            "p95_ms": self.p95_ms,
            "consecutive_breaches": self.consecutive_breaches,
        }
        if self.status == "insufficient_data":
            result["min_required"] = LATENCY_MIN_SAMPLES
        elif self.status == "breached":
            result["breach_threshold"] = LATENCY_BREACH_THRESHOLD
        return result


@dataclass(frozen=True)
class Registration:
    """A source-registry entry present when the daemon starts."""

    source_id: str
    source_kind: str
    protocol_version: int
    lifecycle: str
    socket_path: str | None
    heartbeat_age_ms: int


@dataclass(frozen=True)
class DaemonSpec:
    """Everything one simulated daemon serves, with the scenario's overrides applied."""

    name: str
    version: str
    panes: tuple[PaneSpec, ...]  # tmux order
    sessions: tuple[SessionSpec, ...]  # sorted by session_key
    latency: LatencySpec
    source_health: tuple[tuple[str, str], ...]  # (kind, status), sorted by kind
    registry: tuple[Registration, ...]
    unavailable_methods: frozenset[str]
    freshness_ms: int
    poll_interval_ms: int
    uptime_ms: int = 0  # how long before the fleet's start the daemon started (0: at it)
    drained_phases: frozenset[str] = frozenset()  # phases in which it serves no session
    # pane_id -> the agent state served on every odd-numbered list_panes answer (pane_flaps)
    pane_flaps: Mapping[str, AgentInfo] = field(default_factory=lambda: MappingProxyType({}))
    stopped_phases: frozenset[str] = frozenset()  # phases in which it is not running at all

    def drained(self) -> DaemonSpec:
        """This daemon once every session has left it: tmux panes all unmanaged, no session."""
        panes = tuple(
            replace(p, agent=None, last_change_ms=None) for p in self.panes if p.tmux is not None
        )
        return replace(self, panes=panes, sessions=(), pane_flaps=MappingProxyType({}))


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: one fleet, one :class:`DaemonSpec` per daemon name."""

    name: str
    description: str
    source: str
    daemons: Mapping[str, DaemonSpec]
    operations: OperationsSpec | None = None  # served by the OPS_DAEMON's deployment

    def daemon(self, name: str, phase: str | None = None) -> DaemonSpec:
        """The spec of daemon ``name`` while ``phase`` is judged (drained in its
        ``drained_phases``); ConfigError if the scenario has no such daemon."""
        try:
            spec = self.daemons[name]
        except KeyError:
            known = ", ".join(self.daemons)
            raise ConfigError(
                f"scenario {self.name}: no daemon {name!r} (available: {known})"
            ) from None
        return spec.drained() if phase in spec.drained_phases else spec


# --- public loading API --------------------------------------------------------------------------


def list_scenarios() -> list[str]:
    """Names of the built-in scenarios, sorted."""
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in _builtin_dir().iterdir()
        if entry.name.endswith(".toml")
    )


def looks_like_path(name_or_path: str) -> bool:
    """True if ``name_or_path`` names a scenario file rather than a built-in scenario."""
    return "/" in name_or_path or os.sep in name_or_path or name_or_path.endswith(".toml")


def load_scenario(name_or_path: str) -> Scenario:
    """Load a built-in scenario by name, or a scenario file by path (anything with a ``/``)."""
    if looks_like_path(name_or_path):
        return load_scenario_file(Path(name_or_path))
    source = _builtin_source(name_or_path)
    if source is None:
        raise ConfigError(
            f"unknown scenario {name_or_path!r}; available: {', '.join(list_scenarios())}"
        )
    return _build(name_or_path, source)


def load_scenario_file(path: Path) -> Scenario:
    """Load and validate the scenario file at ``path``."""
    return _build(path.stem, _file_source(path))


def parse_rfc3339(text: str) -> int:
    """Nanoseconds since the epoch for an RFC 3339 timestamp.

    Raises ValueError with chrono's wording ("input contains invalid characters", "input is out
    of range"), which is what the daemon puts in its error messages.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError("input contains invalid characters")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction, sign, off_hours, off_minutes = match.group(7, 8, 9, 10)
    try:
        dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.timezone.utc)
    except ValueError:
        raise ValueError("input is out of range") from None
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if sign:
        offset = int(off_hours) * 3600 + int(off_minutes) * 60
        seconds -= offset if sign == "+" else -offset
    nanos = int((fraction or "0")[:9].ljust(9, "0"))
    return seconds * 1_000_000_000 + nanos


# --- merging scenario files ----------------------------------------------------------------------


# Tables replaced as a whole by an override instead of merged key by key: a latency block's
# status decides which other keys it may have.
_REPLACED_TABLES = frozenset({"latency"})


def _merge(base: Node, over: Node) -> Node:
    """Overlay ``over`` on ``base``: tables merge key by key, everything else is replaced."""
    leaf = over.path.rsplit(".", 1)[-1]
    if (
        isinstance(base.value, dict)
        and isinstance(over.value, dict)
        and leaf not in _REPLACED_TABLES
    ):
        merged = dict(base.value)
        for key, child in over.value.items():
            merged[key] = _merge(merged[key], child) if key in merged else child
        # Keep the base's place: a key missing from both is reported where the table is defined.
        return Node(merged, base.path, base.file)
    return over


# --- the schema ----------------------------------------------------------------------------------

# Top-level keys of a scenario file. A new section is added here: name the key, parse it in
# _build and give the result a field on Scenario (or on DaemonSpec via _DAEMON_KEYS).
_TOP_LEVEL = ("description", "extends", "fleet", "defaults", "daemons", "operations")
_FLEET_KEYS = ("panes", "sessions", "generate")
_GENERATE_KEYS = ("sessions", "panes_per_session", "canary_sessions")
MAX_GENERATED_PANES = 100_000
"""Upper bound of ``sessions * panes_per_session`` in ``[fleet.generate]``."""
# Settings that name the panes, tmux sessions or agent sessions of a listed fleet: a file that
# generates its fleet drops the ones it inherits (they would name panes that no longer exist).
_FLEET_BOUND_DAEMON_KEYS = ("remove_panes", "pane_overrides", "pane_flaps", "session_overrides")
_FLEET_BOUND_SELECTOR_KEYS = ("canary_sessions", "v5_canary_sessions", "started", "routes")
_TMUX_KEYS = (
    "session_id",
    "session_name",
    "window_id",
    "window_name",
    "current_cmd",
    "current_path",
    "title",
)
_AGENT_KEYS = (
    "provider",
    "activity_state",
    "evidence_mode",
    "signature_class",
    "signature_reason",
    "signature_confidence",
    "signature_inputs",
    "conversation_title",
    "session_key",
)
_PANE_KEYS = ("pane_id", "ghost", *_TMUX_KEYS, *_AGENT_KEYS, "last_change")
_SESSION_KEYS = (
    "session_key",
    "evidence_mode",
    "winner_tier",
    "activity_state",
    "activity_source",
    "deterministic_last_seen",
)
_DAEMON_KEYS = (
    "version",
    "latency",
    "source_health",
    "registry",
    "unavailable_methods",
    "remove_panes",
    "pane_overrides",
    "pane_flaps",
    "session_overrides",
    "freshness_ms",
    "poll_interval_ms",
    "uptime",
    "drained_phases",
    "stopped_phases",
)
_REGISTRY_KEYS = (
    "source_id",
    "source_kind",
    "protocol_version",
    "lifecycle",
    "socket_path",
    "heartbeat_age_ms",
)
_LATENCY_KEYS = MappingProxyType(
    {
        "not_started": ("status",),
        "insufficient_data": ("status", "sample_count"),
        "healthy": ("status", "p95_ms", "sample_count"),
        "breached": ("status", "p95_ms", "consecutive_breaches", "sample_count"),
        "degraded": ("status", "p95_ms", "consecutive_breaches", "sample_count"),
    }
)
_DETERMINISTIC_SOURCE = MappingProxyType({"claude": "claude_hooks", "codex": "codex_appserver"})
_ALL_HEURISTIC = SignatureInputs(True, True, True, True)


def _read_pane(table: Table) -> PaneSpec:
    pane_id = table.string("pane_id", pattern=_PANE_ID)
    ghost = table.boolean("ghost", False)
    tmux: TmuxInfo | None = None
    if ghost:
        for key in _TMUX_KEYS:  # a ghost's tmux keys may stay, as a record; they are not served
            table.optional_string(key)
    else:
        tmux = TmuxInfo(
            session_id=table.string("session_id", pattern=_SESSION_ID),
            session_name=table.string("session_name"),
            window_id=table.string("window_id", pattern=_WINDOW_ID),
            window_name=table.string("window_name"),
            current_cmd=table.string("current_cmd"),
            current_path=table.string("current_path"),
            title=table.string("title"),
        )
    if table.get("provider") is None:
        if ghost:
            table.require("provider")  # ghosts are managed panes that left tmux
        for key in (*_AGENT_KEYS, "last_change"):
            node = table.get(key)
            if node is not None:
                fail(node, "only managed panes (those with a provider) take this key")
        return PaneSpec(pane_id, tmux, None)
    last_change = table.get("last_change")
    return PaneSpec(
        pane_id,
        tmux,
        _read_agent(table, pane_id),
        None if last_change is None else table.duration("last_change"),
    )


def _read_agent(table: Table, pane_id: str) -> AgentInfo:
    provider = table.choice("provider", PROVIDERS)
    evidence = table.choice("evidence_mode", EVIDENCE_MODES, "heuristic")
    signature_class = table.choice("signature_class", SIGNATURE_CLASSES, evidence)
    inputs = _ALL_HEURISTIC if signature_class == "heuristic" else SignatureInputs()
    flags = table.table("signature_inputs", tuple(SIGNAL_WEIGHTS))
    if flags is not None:
        inputs = SignatureInputs(**{name: flags.boolean(name, False) for name in SIGNAL_WEIGHTS})
    matched = inputs.matched()
    if signature_class == "deterministic":
        reason, confidence = DETERMINISTIC_REASON, 1.0
    elif signature_class == "heuristic" and matched:
        reason = f"heuristic({'+'.join(matched)})"
        confidence = max(SIGNAL_WEIGHTS[name] for name in matched)
    else:
        reason, confidence = "no heuristic signals matched", 0.0
    if signature_class == "deterministic":
        default_key = f"{provider}-session-{pane_id.removeprefix('%')}"
    else:
        default_key = f"poller-{pane_id}"
    explicit_confidence = table.number("signature_confidence", 0.0, 1.0)
    return AgentInfo(
        provider=provider,
        activity_state=table.choice("activity_state", ACTIVITY_STATES, "Unknown"),
        evidence_mode=evidence,
        signature_class=signature_class,
        signature_reason=table.string("signature_reason", reason),
        signature_confidence=confidence if explicit_confidence is None else explicit_confidence,
        signature_inputs=inputs,
        conversation_title=table.optional_string("conversation_title"),
        session_key=table.string("session_key", default_key),
    )


def _derived_session(agent: AgentInfo) -> SessionSpec:
    deterministic = agent.signature_class == "deterministic"
    return SessionSpec(
        session_key=agent.session_key,
        evidence_mode=agent.evidence_mode,
        winner_tier="deterministic" if deterministic else "heuristic",
        activity_state=agent.activity_state,
        activity_source=(
            _DETERMINISTIC_SOURCE.get(agent.provider, "claude_hooks") if deterministic else "poller"
        ),
        deterministic_last_seen=LIVE if deterministic else None,
    )


def _read_session_fields(table: Table) -> tuple[str, dict[str, Any]]:
    """The session key of a session table and the fields it sets."""
    key = table.string("session_key")
    fields: dict[str, Any] = {}
    for name, choices in (
        ("evidence_mode", EVIDENCE_MODES),
        ("winner_tier", EVIDENCE_MODES),
        ("activity_state", ACTIVITY_STATES),
        ("activity_source", SOURCE_KINDS),
    ):
        if table.get(name) is not None:
            fields[name] = table.choice(name, choices)
    node = table.get("deterministic_last_seen")
    if node is not None:
        fields["deterministic_last_seen"] = _read_last_seen(node)
    return key, fields


def _read_last_seen(node: Node) -> str | None:
    hint = f'expected "{LIVE}", "never" or an RFC 3339 timestamp'
    if not isinstance(node.value, str):
        fail(node, hint)
    if node.value in (LIVE, "never"):
        return None if node.value == "never" else LIVE
    try:
        parse_rfc3339(node.value)
    except ValueError as exc:
        fail(node, f"{hint} ({exc})")
    return node.value


def _sessions(
    daemon: str, panes: Sequence[PaneSpec], fleet: Sequence[Table], overrides: Sequence[Table]
) -> tuple[SessionSpec, ...]:
    sessions: dict[str, SessionSpec] = {}
    for pane in sorted(panes, key=lambda p: p.pane_id):
        if pane.agent is not None:
            sessions.setdefault(pane.agent.session_key, _derived_session(pane.agent))
    for table in fleet:  # [[fleet.sessions]] adjust a derived session or add one without a pane
        key, fields = _read_session_fields(table)
        base = sessions.get(key) or SessionSpec(
            key, "heuristic", "heuristic", "Unknown", "poller", None
        )
        sessions[key] = replace(base, **fields)
    for table in overrides:
        key, fields = _read_session_fields(table)
        if key not in sessions:
            known = ", ".join(sorted(sessions)) or "none"
            fail(table.require("session_key"), f"no such session on {daemon} (known: {known})")
        sessions[key] = replace(sessions[key], **fields)
    return tuple(sessions[key] for key in sorted(sessions))


def _read_latency(node: Node) -> LatencySpec:
    table = Table(node, ("status", "sample_count", "p95_ms", "consecutive_breaches"))
    status = table.choice("status", LATENCY_STATUSES)
    allowed = _LATENCY_KEYS[status]
    for key, child in table.items.items():
        if key not in allowed:
            fail(child, f'not used when status = "{status}" (accepted: {", ".join(allowed)})')
    if status == "not_started":
        return LatencySpec(status)
    if status == "insufficient_data":
        count = table.integer("sample_count", None, minimum=0, maximum=LATENCY_MIN_SAMPLES - 1)
        return LatencySpec(status, sample_count=count)
    count = table.integer("sample_count", None, minimum=LATENCY_MIN_SAMPLES)
    if status == "healthy":
        p95 = table.integer("p95_ms", None, minimum=0, maximum=LATENCY_SLO_MS)
        return LatencySpec(status, sample_count=count, p95_ms=p95)
    p95 = table.integer("p95_ms", None, minimum=LATENCY_SLO_MS + 1)
    if status == "breached":
        breaches = table.integer(
            "consecutive_breaches", None, minimum=1, maximum=LATENCY_BREACH_THRESHOLD - 1
        )
    else:
        breaches = table.integer("consecutive_breaches", None, minimum=LATENCY_BREACH_THRESHOLD)
    return LatencySpec(status, sample_count=count, p95_ms=p95, consecutive_breaches=breaches)


def _read_registration(table: Table) -> Registration:
    lifecycle = table.choice("lifecycle", LIFECYCLES, "active")
    # Active and pending entries keep heartbeating; an age past the stale limit contradicts that.
    alive = lifecycle in ("active", "pending")
    return Registration(
        source_id=table.string("source_id"),
        source_kind=table.choice("source_kind", SOURCE_KINDS),
        protocol_version=table.integer("protocol_version", 1, minimum=1, maximum=1),
        lifecycle=lifecycle,
        socket_path=table.optional_string("socket_path"),
        heartbeat_age_ms=table.integer(
            "heartbeat_age_ms", 0, minimum=0, maximum=REGISTRY_STALE_MS if alive else None
        ),
    )


def _build_daemon(
    name: str, table: Table, fleet_panes: Mapping[str, _FleetPane], fleet_sessions: Sequence[Table]
) -> DaemonSpec:
    known_panes = _some(fleet_panes)
    removed: set[str] = set()
    for node in table.strings("remove_panes"):
        if node.value not in fleet_panes:
            fail(node, f"no such pane in [fleet] (known: {known_panes})")
        removed.add(str(node.value))
    merged: dict[str, _FleetPane] = dict(fleet_panes)
    for override in table.tables("pane_overrides", _PANE_KEYS):
        pane_id = override.string("pane_id")
        if pane_id not in fleet_panes:
            fail(override.require("pane_id"), f"no such pane in [fleet] (known: {known_panes})")
        if pane_id in removed:
            fail(override.require("pane_id"), "this pane is also listed in remove_panes")
        merged[pane_id] = _merge(_node_of(merged[pane_id]), override.node)
    panes = tuple(
        _read_pane(Table(entry, _PANE_KEYS)) if isinstance(entry, Node) else entry.spec
        for pid, entry in merged.items()
        if pid not in removed
    )
    flaps: dict[str, AgentInfo] = {}
    for flap in table.tables("pane_flaps", ("pane_id", *_AGENT_KEYS)):
        pane_id = flap.string("pane_id")
        served = next((p for p in panes if p.pane_id == pane_id), None)
        if served is None or served.agent is None or pane_id in flaps:
            fail(flap.require("pane_id"), "not a managed pane this daemon serves, or listed twice")
        flapped = _read_pane(Table(_merge(_node_of(merged[pane_id]), flap.node), _PANE_KEYS))
        assert flapped.agent is not None
        flaps[pane_id] = flapped.agent
    health = dict(DEFAULT_SOURCE_HEALTH)
    health_table = table.table("source_health", SOURCE_KINDS)
    if health_table is not None:
        for kind in SOURCE_KINDS:
            health[kind] = health_table.choice(kind, HEALTH_STATUSES, health[kind])
    latency_node = table.get("latency")
    registry: dict[str, Registration] = {}
    for entry_table in table.tables("registry", _REGISTRY_KEYS):
        entry = _read_registration(entry_table)
        if entry.source_id in registry:
            fail(entry_table.require("source_id"), "duplicate source_id in the registry")
        registry[entry.source_id] = entry
    return DaemonSpec(
        name=name,
        version=table.string("version", DEFAULT_VERSIONS.get(name, FALLBACK_VERSION)),
        panes=panes,
        sessions=_sessions(
            name, panes, fleet_sessions, table.tables("session_overrides", _SESSION_KEYS)
        ),
        latency=(
            LatencySpec("insufficient_data", sample_count=10)
            if latency_node is None
            else _read_latency(latency_node)
        ),
        source_health=tuple(sorted(health.items())),
        registry=tuple(registry.values()),
        unavailable_methods=frozenset(
            str(node.value)
            for node in table.strings("unavailable_methods", (*METHODS, *OPS_METHODS))
        ),
        freshness_ms=table.integer("freshness_ms", 3000, minimum=0, maximum=3_600_000),
        poll_interval_ms=table.integer("poll_interval_ms", 1000, minimum=1, maximum=3_600_000),
        uptime_ms=table.duration("uptime", 0),
        drained_phases=frozenset(
            str(node.value) for node in table.strings("drained_phases", PHASES)
        ),
        pane_flaps=MappingProxyType(flaps),
        stopped_phases=frozenset(
            str(node.value) for node in table.strings("stopped_phases", PHASES)
        ),
    )


@dataclass(frozen=True)
class _GeneratedPane:
    """A pane of ``[fleet.generate]``: its spec, and the keys an override is merged onto."""

    spec: PaneSpec
    raw: Mapping[str, object]
    file: str

    def node(self) -> Node:
        return annotate(dict(self.raw), f"fleet.generate.panes[{self.spec.pane_id}]", self.file)


_FleetPane = Node | _GeneratedPane


def _node_of(entry: _FleetPane) -> Node:
    return entry if isinstance(entry, Node) else entry.node()


def generated_session_name(index: int) -> str:
    """The tmux session name of the ``index``-th session of a generated fleet."""
    return f"session-{index:04d}"


def _generated_change_ms(session: int) -> int:
    """How long ago the agent of generated session ``session`` last changed state: spread
    from 1 minute to 12 hours, so every session shows activity in any window of 12h or more."""
    return ((session * 37) % 720 + 1) * 60_000


def _generated_fleet(table: Table) -> tuple[dict[str, _FleetPane], tuple[str, ...]]:
    """The panes of ``[fleet.generate]`` in tmux order, and its canary session names."""
    sessions = table.integer("sessions", None, minimum=1, maximum=MAX_GENERATED_PANES)
    per_session = table.integer("panes_per_session", None, minimum=1, maximum=MAX_GENERATED_PANES)
    if sessions * per_session > MAX_GENERATED_PANES:
        fail(
            table.node,
            f"{sessions} sessions x {per_session} panes = {sessions * per_session} panes: "
            f"expected at most {MAX_GENERATED_PANES} panes",
        )
    canary = table.integer("canary_sessions", min(2, sessions), minimum=0, maximum=sessions)
    file = table.node.file
    template = _read_agent(
        Table(annotate(dict(_GENERATED_AGENT), "fleet.generate", file), _PANE_KEYS), "%0"
    )
    panes: dict[str, _FleetPane] = {}
    for session in range(sessions):
        name = generated_session_name(session)
        for index in range(per_session):
            pane_id = f"%{len(panes)}"
            managed = index % 2 == 1
            raw: dict[str, object] = {
                "pane_id": pane_id,
                "session_id": f"${session}",
                "session_name": name,
                "window_id": f"@{session}",
                "window_name": "work",
                "current_cmd": "claude" if managed else "bash",
                "current_path": "/home/operator/work",
                "title": "Claude Code" if managed else "devbox",
            }
            agent, last_change = None, None
            if managed:
                raw.update(_GENERATED_AGENT)
                agent = replace(template, session_key=f"poller-{pane_id}")
                if index == 1:  # the session's first agent was active lately
                    last_change = _generated_change_ms(session)
                    raw["last_change"] = f"{last_change // 60_000}m"
            tmux = TmuxInfo(**{k: str(raw[k]) for k in _TMUX_KEYS})
            spec = PaneSpec(pane_id, tmux, agent, last_change)
            panes[pane_id] = _GeneratedPane(spec, MappingProxyType(raw), file)
    return panes, tuple(generated_session_name(s) for s in range(canary))


_GENERATED_AGENT = MappingProxyType({"provider": "claude", "activity_state": "Idle"})


def _with_canary_sessions(operations: Node | None, names: Sequence[str]) -> Node | None:
    """``[operations]`` whose selector names ``names`` as its canary sessions unless it names
    its own (a generated fleet's sessions are not the ones an extended scenario names)."""
    if operations is None or not isinstance(operations.value, dict):
        return operations
    selector = operations.value.get("selector")
    if selector is None or not isinstance(selector.value, dict):
        return operations
    if "canary_sessions" in selector.value:
        return operations
    path = f"{selector.path}.canary_sessions"
    listed = Node(
        [Node(name, f"{path}[{i}]", selector.file) for i, name in enumerate(names)],
        path,
        selector.file,
    )
    selector = Node({**selector.value, "canary_sessions": listed}, selector.path, selector.file)
    return Node({**operations.value, "selector": selector}, operations.path, operations.file)


def _some(names: Sequence[str] | Mapping[str, object], shown: int = 12) -> str:
    """Up to ``shown`` of ``names`` for an error message ("none" when empty)."""
    listed = list(names)
    more = f", ... ({len(listed)} in all)" if len(listed) > shown else ""
    return ", ".join(listed[:shown]) + more if listed else "none"


def _fleet_panes(tables: Sequence[Table]) -> dict[str, _FleetPane]:
    panes: dict[str, _FleetPane] = {}
    for table in tables:
        pane_id = table.string("pane_id", pattern=_PANE_ID)
        if pane_id in panes:
            fail(table.require("pane_id"), "duplicate pane_id in [fleet]")
        panes[pane_id] = table.node
    return panes


def _build(name: str, source: _Source) -> Scenario:
    root = Table(_load_tree(source, ()), _TOP_LEVEL)
    fleet = Table(root.require("fleet"), _FLEET_KEYS)
    generate = fleet.table("generate", _GENERATE_KEYS)
    operations_node = root.get("operations")
    if generate is None:
        fleet_panes = _fleet_panes(fleet.tables("panes", _PANE_KEYS))
    else:
        listed = fleet.get("panes")
        if listed is not None:
            fail(
                listed, "not together with [fleet.generate]: a generated fleet has no listed panes"
            )
        fleet_panes, canary = _generated_fleet(generate)
        operations_node = _with_canary_sessions(operations_node, canary)
    fleet_sessions = fleet.tables("sessions", _SESSION_KEYS)
    defaults = root.get("defaults")
    if defaults is not None:
        Table(defaults, _DAEMON_KEYS)
    declared: dict[str, Node] = {}
    daemons_table = root.table("daemons", None)
    if daemons_table is not None:
        for daemon_name, node in daemons_table.items.items():
            if not _DAEMON_NAME.fullmatch(daemon_name):
                fail(node, "daemon names are lower-case letters, digits, - and _ (like v4, v5)")
            declared[daemon_name] = node
    operations = None if operations_node is None else read_operations(operations_node)
    specs: dict[str, DaemonSpec] = {}
    for daemon_name in dict.fromkeys(("v4", "v5", *sorted(declared))):
        layers = [n for n in (defaults, declared.get(daemon_name)) if n is not None]
        merged = layers[0] if layers else Node({}, f"daemons.{daemon_name}", source.label)
        for layer in layers[1:]:
            merged = _merge(merged, layer)
        spec = _build_daemon(daemon_name, Table(merged, _DAEMON_KEYS), fleet_panes, fleet_sessions)
        if daemon_name != OPS_DAEMON or operations is None:  # no operations method to serve
            spec = replace(spec, unavailable_methods=spec.unavailable_methods | set(OPS_METHODS))
        specs[daemon_name] = spec
    return Scenario(
        name=name,
        description=root.string("description"),
        source=source.label,
        daemons=MappingProxyType(specs),
        operations=operations,
    )


# --- files and `extends` -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    label: str  # how messages name the file
    text: str
    directory: Path | None  # where a relative `extends` path is resolved; None for built-ins


def _builtin_dir() -> Traversable:
    return resources.files(_SCENARIO_PACKAGE).joinpath(_SCENARIO_DIR)


def _builtin_source(name: str) -> _Source | None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        return None
    entry = _builtin_dir().joinpath(f"{name}.toml")
    if not entry.is_file():
        return None
    return _Source(str(entry), entry.read_text(encoding="utf-8"), None)


def _file_source(path: Path) -> _Source:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read scenario file {path}: {reason}") from None
    return _Source(str(path), text, path.parent)


def _load_tree(source: _Source, chain: tuple[str, ...]) -> Node:
    """Parse ``source`` and overlay it on the scenario it extends, if any."""
    try:
        raw = tomllib.loads(source.text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"scenario file {source.label}: invalid TOML: {exc}") from None
    root = annotate(raw, "", source.label)
    table = Table(root, _TOP_LEVEL)
    table.string("description")  # every file describes itself, even one that extends another
    extends = table.get("extends")
    if extends is None:
        return root
    base_source = _extended_source(extends, source)
    if base_source.label in (*chain, source.label):
        fail(extends, "circular extends: " + " -> ".join((*chain, source.label, base_source.label)))
    base = _load_tree(base_source, (*chain, source.label))
    own = Node({k: v for k, v in table.items.items() if k != "extends"}, "", source.label)
    return Node(_merge(_inherited(base, own), own).value, "", source.label)


def _inherited(base: Node, own: Node) -> Node:
    """What ``own`` keeps of the scenario it extends: a file that generates its fleet
    (``[fleet.generate]``) replaces the whole inherited ``[fleet]`` and drops the inherited
    settings that name its panes or sessions (pane and session overrides, flaps, removals, the
    selector's sessions); a file that lists ``[[fleet.panes]]`` drops an inherited generator."""
    own_fleet = _child(own, "fleet")
    if own_fleet is None or not isinstance(base.value, dict):
        return base
    if _child(own_fleet, "generate") is not None:
        items = {k: v for k, v in base.value.items() if k != "fleet"}
        for key in ("defaults", "daemons"):
            layer = items.get(key)
            if layer is None or not isinstance(layer.value, dict):
                continue
            if key == "defaults":
                items[key] = _without(layer, _FLEET_BOUND_DAEMON_KEYS)
            else:
                daemons = {
                    name: _without(daemon, _FLEET_BOUND_DAEMON_KEYS)
                    for name, daemon in layer.value.items()
                }
                items[key] = Node(daemons, layer.path, layer.file)
        operations = items.get("operations")
        selector = None if operations is None else _child(operations, "selector")
        if operations is not None and selector is not None:
            stripped = _without(selector, _FLEET_BOUND_SELECTOR_KEYS)
            items["operations"] = Node(
                {**operations.value, "selector": stripped}, operations.path, operations.file
            )
        return Node(items, base.path, base.file)
    base_fleet = _child(base, "fleet")
    if _child(own_fleet, "panes") is not None and base_fleet is not None:
        return Node(
            {**base.value, "fleet": _without(base_fleet, ("generate",))}, base.path, base.file
        )
    return base


def _child(node: Node, key: str) -> Node | None:
    return node.value.get(key) if isinstance(node.value, dict) else None


def _without(node: Node, keys: Sequence[str]) -> Node:
    if not isinstance(node.value, dict):
        return node
    return Node({k: v for k, v in node.value.items() if k not in keys}, node.path, node.file)


def _extended_source(node: Node, source: _Source) -> _Source:
    if not isinstance(node.value, str):
        fail(node, "expected a scenario name or a path to a .toml file")
    if not looks_like_path(node.value):
        found = _builtin_source(node.value)
        if found is None:
            fail(node, f"no such scenario (available: {', '.join(list_scenarios())})")
        return found
    if source.directory is None:
        fail(node, "a built-in scenario extends other built-in scenarios by name only")
    path = source.directory / node.value
    if not path.is_file():
        fail(node, f"no such file: {path}")
    return _file_source(path)
