"""Every gate of gates/, called directly on hand-built observations: the healthy fleet passes
every gate of every phase, and each way a criterion can fail ends in the right verdict with the
numbers in its message. Fast (no daemons, no subprocess); the simulator runs are in
test_scenarios.py."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path
from types import MappingProxyType
from types import ModuleType
from typing import Any

import pytest
from gate_repo import OPS_METHOD

from pytest_canarygate.agtmux.judgement import RUNBOOK_RESTART_POLICY
from pytest_canarygate.agtmux.pack import ACCESSORS
from pytest_canarygate.agtmux.pack import RPC_EVIDENCE_KINDS
from pytest_canarygate.agtmux.pack import decode
from pytest_canarygate.agtmux.pack import past_timestamps
from pytest_canarygate.agtmux.providers import AlertEntry
from pytest_canarygate.agtmux.providers import ArchiveManifest
from pytest_canarygate.agtmux.providers import BindingStats
from pytest_canarygate.agtmux.providers import BuildResult
from pytest_canarygate.agtmux.providers import CursorStats
from pytest_canarygate.agtmux.providers import DependencyGate
from pytest_canarygate.agtmux.providers import Evidence
from pytest_canarygate.agtmux.providers import LogEvent
from pytest_canarygate.agtmux.providers import RuntimeSelector
from pytest_canarygate.agtmux.providers import Severity
from pytest_canarygate.agtmux.providers import SnapshotMetadata
from pytest_canarygate.agtmux.providers import Source
from pytest_canarygate.agtmux.providers import SupervisorEvent
from pytest_canarygate.agtmux.providers import SupervisorState
from pytest_canarygate.agtmux.providers import SupervisorStatus
from pytest_canarygate.agtmux.providers import Timeouts
from pytest_canarygate.agtmux.providers import make_provider
from pytest_canarygate.agtmux.records import BuildCheck
from pytest_canarygate.agtmux.records import SessionRoute
from pytest_canarygate.agtmux.records import datetime_to_ms
from pytest_canarygate.agtmux.runbook import PHASES
from pytest_canarygate.agtmux.settings import AgtmuxSettings
from pytest_canarygate.catalog import load_catalog
from pytest_canarygate.codec import encode
from pytest_canarygate.custody import Custody
from pytest_canarygate.custody import CustodyView
from pytest_canarygate.observation import CallRecord
from pytest_canarygate.observation import DaemonObservation
from pytest_canarygate.observation import EvidenceReading
from pytest_canarygate.observation import GateEvidence
from pytest_canarygate.observation import Observation
from pytest_canarygate.observation import ObservedView
from pytest_canarygate.observation import read_evidence
from pytest_canarygate.session import GATE_MARK
from pytest_canarygate.verdicts import Verdict
from pytest_canarygate.verdicts import verdict_of

ROOT = Path(__file__).resolve().parents[1]
CATALOG = load_catalog(ROOT / "gates" / "catalog.toml")
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
NOW_MS = datetime_to_ms(NOW)
MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
ENDPOINTS = {"v4": "unix:///run/cg/v4/agtmuxd.sock", "v5": "unix:///run/cg/v5/agtmuxd.sock"}
STARTED = {"v4": NOW - timedelta(days=20), "v5": NOW - timedelta(days=10)}
CHANGED_MS = NOW_MS - 10 * 86_400_000  # the selector was switched to each phase 10 days ago
# gradual: a canary session on v5 since before the switch, one started since, one left on v4
GRADUAL_ROUTES = (
    SessionRoute("session-alpha", "v5", NOW_MS - 30 * 86_400_000, NOW_MS - 12 * 86_400_000),
    SessionRoute("session-beta", "v5", NOW_MS - 2 * 86_400_000, NOW_MS - 2 * 86_400_000),
    SessionRoute("session-gamma", "v4", NOW_MS - 30 * 86_400_000, NOW_MS - 30 * 86_400_000),
)
NEW_ON_V4 = (*GRADUAL_ROUTES[:1], replace(GRADUAL_ROUTES[1], daemon="v4"), *GRADUAL_ROUTES[2:])
MOVED_OFF_V4 = (*GRADUAL_ROUTES[:2], replace(GRADUAL_ROUTES[2], daemon="v5", routed_at_ms=NOW_MS))
SELECTORS = {
    "alpha": RuntimeSelector("v4", False, (), CHANGED_MS),
    "canary": RuntimeSelector("v4", True, ("session-alpha", "session-beta"), CHANGED_MS),
    "gradual": RuntimeSelector("v5", True, (), CHANGED_MS, GRADUAL_ROUTES),
    "cutover": RuntimeSelector("v5", True, (), CHANGED_MS),
    "rollback": RuntimeSelector("v4", False, (), CHANGED_MS),
}
Record = dict[str, Any]


def _load_gate_modules() -> dict[str, Callable[..., None]]:
    """gate id -> the test function carrying @gate(id), from every module in gates/."""
    found: dict[str, Callable[..., None]] = {}
    for path in sorted((ROOT / "gates").glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"canarygate_gates_{path.stem}", path)
        assert spec is not None
        assert spec.loader is not None
        module: ModuleType = importlib.util.module_from_spec(spec)
        with warnings.catch_warnings():  # the plugin that registers the mark is off here
            warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
            spec.loader.exec_module(module)
        for _, function in inspect.getmembers(module, inspect.isfunction):
            for mark in getattr(function, "pytestmark", []):
                if mark.name == GATE_MARK:
                    found.update(dict.fromkeys(mark.args, function))
    return found


GATES = _load_gate_modules()


# --- the fleet an observation is built from ------------------------------------------------


def pane(pane_id: str, session: str, *, managed: bool = True, **extra: Any) -> Record:
    if not managed:
        return {
            "pane_id": pane_id,
            "presence": "unmanaged",
            "title": "zsh",
            "title_quality": "Unmanaged",
            "session_name": session,
        }
    return {
        "pane_id": pane_id,
        "presence": "managed",
        "evidence_mode": "heuristic",
        "signature_class": "heuristic",
        "signature_reason": "heuristic(provider_hint+cmd_match)",
        "signature_confidence": 1.0,
        "signature_inputs": {
            "provider_hint": True,
            "cmd_match": True,
            "poller_match": False,
            "title_match": False,
        },
        "activity_state": "Running",
        "provider": "claude",
        "title": "claude",
        "title_quality": "HeuristicTitle",
        "session_name": session,
        **extra,
    }


FLEET_PANES = [
    pane("%1", "session-alpha"),
    pane("%2", "session-alpha", managed=False),
    pane("%3", "session-beta"),
    pane("%4", "session-gamma"),
]


def sessions_for(panes: list[Record]) -> list[Record]:
    return [
        {
            "session_key": f"poller-{p['pane_id']}",
            "presence": "managed",
            "evidence_mode": "heuristic",
            "winner_tier": "heuristic",
            "activity_state": "Running",
        }
        for p in panes
        if p["presence"] == "managed"
    ]


def stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def changes_for(
    panes: list[Record], started_ms: int, recent_ms: int | None = NOW_MS - 5 * 60_000
) -> dict[str, Any]:
    """The change log: every managed pane's first projection at the start, then (unless
    ``recent_ms`` is None) an activity change of each (canary sessions included)."""
    entries: list[Record] = []
    for at in (started_ms, *([] if recent_ms is None else [recent_ms])):
        for p in panes:
            if p["presence"] == "managed":
                key = f"poller-{p['pane_id']}"
                entries.append(
                    {"version": len(entries) + 1, "session_key": key, "timestamp": stamp(at)}
                )
                entries.append(
                    {
                        "version": len(entries) + 1,
                        "session_key": key,
                        "timestamp": stamp(at),
                        "pane_id": p["pane_id"],
                    }
                )
    return {"changes": entries, "version": len(entries)}


def alert(n: int, severity: Severity, created_ms: int, resolved_ms: int | None) -> AlertEntry:
    return AlertEntry(
        f"alert-{n}", severity, "supervisor", "test", created_ms, resolved_ms, "ManualAck"
    )


def event(at_ms: int, kind: str, **extra: Any) -> SupervisorEvent:
    defaults: dict[str, Any] = {
        "restart": {"attempt": 0, "after_ms": 1000},
        "hold_down": {"until_ms": at_ms + 300_000},
    }.get(kind, {})
    return SupervisorEvent(at_ms, kind, "codex_app_server", **{**defaults, **extra})


HEALTHY_BUILD = BuildResult(
    700,
    0,
    0,
    2,
    (),
    version="0.1.0",
    started_at_ms=NOW_MS - DAY,
    checks=(BuildCheck("clippy", "passed"), BuildCheck("fmt", "passed")),
    crates=tuple(f"agtmux-crate-{n}" for n in range(6)),
)


def startup(at_ms: int, order: tuple[str, ...] = ("Sources", "Gateway", "Daemon", "Ui")) -> Any:
    """The supervisor starting its stages in ``order``, each 40 ms after the previous."""
    return tuple(
        SupervisorEvent(at_ms + 40 * i + offset, kind, stage=stage)
        for i, stage in enumerate(order)
        for offset, kind in ((0, "stage_started"), (39, "stage_ready"))
    )


def log(at_ms: int, kind: str = "other", **values: int) -> LogEvent:
    at = datetime.fromtimestamp(at_ms / 1000, tz=timezone.utc)
    return LogEvent(at, "INFO", "agtmux::poll_loop", kind, kind, 1, MappingProxyType(values))


def history(*records: Any, days: float = 30) -> tuple[tuple[Any, ...], int, int]:
    return tuple(records), NOW_MS - int(days * DAY), NOW_MS


#: Methods read twice in a run (the bracket, and gates needing "<method>*2").
READ_TWICE = ("daemon.info", "summary_changed", "list_panes", "list_sessions", "state_changed")


@dataclass
class Fleet:
    """Everything a run could observe; tests change one thing and build the observation."""

    phase: str = "alpha"
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed_calls: dict[tuple[str, str], str] = field(default_factory=dict)
    evidence: dict[str, tuple[tuple[Any, ...], int | None, int | None]] = field(
        default_factory=dict
    )
    failed_evidence: dict[str, str] = field(default_factory=dict)
    readings: dict[str, EvidenceReading] = field(default_factory=dict)
    restarted_mid_run: bool = False
    second: dict[tuple[str, str], Any] = field(default_factory=dict)  # reading 2 differs
    failed_second: dict[tuple[str, str], str] = field(default_factory=dict)
    #: what the archive held (custody.json); None: a healthy chain (:func:`healthy_custody`)
    custody: Custody | None = None
    #: daemons not running (decommissioned): no socket at their endpoint; setting one of
    #: their answers (:func:`calls`, :func:`started`) starts them again
    stopped: set[str] = field(default_factory=set)

    @classmethod
    def healthy(cls, phase: str = "alpha") -> Fleet:
        fleet = cls(phase)
        v4_panes = [] if phase == "cutover" else FLEET_PANES
        for name, daemon_panes in (("v4", v4_panes), ("v5", FLEET_PANES)):
            start_ns = int(STARTED[name].timestamp()) * 1_000_000_000 + 123
            fleet.calls[name] = {
                "daemon.info": {
                    "nonce": f"4{len(name)}21-{start_ns}",
                    "pid": 4021,
                    "version": "0.1.0" if name == "v5" else "0.0.4",
                },
                "list_panes": daemon_panes,
                "list_sessions": sessions_for(daemon_panes),
                "state_changed": changes_for(daemon_panes, start_ns // 1_000_000),
                "summary_changed": {"version": 120, "has_changes": True},
                "latency_status": {
                    "status": "healthy",
                    "p95_ms": 36,
                    "consecutive_breaches": 0,
                    "sample_count": 205,
                },
                "list_source_health": [  # healthy whichever sources the config expects
                    ["claude_hooks", {"status": "healthy"}],
                    ["claude_jsonl", {"status": "healthy"}],
                    ["codex_appserver", {"status": "healthy"}],
                    ["poller", {"status": "healthy"}],
                ],
                # an external hook relay registered and heartbeating: with the default expected
                # sources (always healthy), the registry is what shows the sources alive
                "list_source_registry": [{"source_id": "ext-hooks", "lifecycle": "active"}],
            }
        fleet.calls["v4"]["daemon.info"]["pid"] = 4020
        if phase == "cutover":  # drained, then decommissioned (runbook Phase 4 step 4)
            fleet.stopped.add("v4")
        fleet.evidence = {
            "snapshots": (
                (
                    SnapshotMetadata("snap-6", NOW_MS - 10 * DAY, 300, 3, 4, "Shutdown", 9000),
                    SnapshotMetadata("snap-1", NOW_MS - 9 * DAY, 40, 3, 4, "Manual", 9000),
                    SnapshotMetadata("snap-7", NOW_MS - 2 * MIN, 120, 3, 4, "Periodic", 9000),
                ),
                None,
                None,
            ),
            "supervisor_status": (
                (
                    SupervisorStatus(
                        SupervisorState("Ready"),
                        RUNBOOK_RESTART_POLICY,
                        ("Sources", "Gateway", "Daemon", "Ui"),
                        tuple(
                            DependencyGate(s, True, ())
                            for s in ("Sources", "Gateway", "Daemon", "Ui")
                        ),
                        2,
                        NOW_MS - 10 * DAY,
                        NOW_MS,
                        jitter_applied=True,
                    ),
                ),
                NOW_MS - 10 * DAY,
                NOW_MS,
            ),
            "supervisor_events": history(
                event(NOW_MS - 15 * DAY, "failure"),
                event(NOW_MS - 15 * DAY, "restart"),
                event(NOW_MS - 15 * DAY + 1000, "success"),
                *startup(NOW_MS - 10 * DAY - HOUR),
                event(NOW_MS - 10 * DAY, "failure"),
                event(NOW_MS - 10 * DAY, "restart", after_ms=1150),
                event(NOW_MS - 10 * DAY + 2000, "success"),
                event(NOW_MS - 3 * DAY, "failure"),
                event(NOW_MS - 3 * DAY, "restart", after_ms=880),
                event(NOW_MS - 3 * DAY + 1000, "success"),
            ),
            "alert_entries": history(
                alert(1, Severity.WARN, NOW_MS - 2 * DAY, NOW_MS - 2 * DAY + 10 * MIN),
                alert(2, Severity.ESCALATE, NOW_MS - 20 * DAY, NOW_MS - 20 * DAY + 2 * MIN),
            ),
            "cursor_stats": (
                (CursorStats(500, 500, 0, 0, 0, 0, NOW_MS - 1000, NOW_MS - 10 * DAY, NOW_MS),),
                NOW_MS - 10 * DAY,
                NOW_MS,
            ),
            "binding_stats": (
                (BindingStats(0, None, NOW_MS - 10 * DAY, NOW_MS),),
                NOW_MS - 10 * DAY,
                NOW_MS,
            ),
            "runtime_selector": ((SELECTORS[phase],), None, None),
            "log_events": history(log(NOW_MS - 10 * DAY), log(NOW_MS - 1000), days=10),
            "build_result": ((HEALTHY_BUILD,), None, None),
            "archive_manifest": (
                (
                    ArchiveManifest(
                        "agtmux-v4",
                        "ab" * 32,
                        NOW_MS - 2 * DAY,
                        NOW_MS + 31 * DAY,  # 30 days past a decommission as late as now
                        True,
                        "ab" * 32,
                        4096,
                        "0.0.4",
                    ),
                ),
                None,
                None,
            ),
        }
        return fleet

    # --- changing one thing ----------------------------------------------------------------
    def one(self, accessor: str, **changes: Any) -> Fleet:
        """Change fields of a one-record accessor's record."""
        (record,), start, end = self.evidence[accessor]
        self.evidence[accessor] = ((replace(record, **changes),), start, end)
        return self

    def records(self, accessor: str, *records: Any, days: float | None = 30) -> Fleet:
        """Replace an accessor's records (and its coverage: ``days`` back to now, or none)."""
        start = None if days is None else NOW_MS - int(days * DAY)
        self.evidence[accessor] = (records, start, None if days is None else NOW_MS)
        return self

    def add(self, accessor: str, *records: Any) -> Fleet:
        current, start, end = self.evidence[accessor]
        self.evidence[accessor] = ((*current, *records), start, end)
        return self

    def malformed(self, accessor: str) -> Fleet:
        """The accessor's source is configured and served, but answered something malformed."""
        kind = ACCESSORS[accessor][0]
        uri = f"file:///evidence/{accessor}"
        message = f"{uri}: line 8: kind: expected one of failure, restart, got 'hold_down_extended'"
        self.readings[accessor] = EvidenceReading(
            accessor, kind, uri, NOW.isoformat(), 1.0, None, message, "protocol"
        )
        return self

    def unserved(self, *accessors: str) -> Fleet:
        """As a v5 serving only today's eleven methods, with no file provider, answers."""
        for accessor in accessors:
            kind = ACCESSORS[accessor][0]
            method = OPS_METHOD.get(accessor)
            self.failed_evidence[accessor] = (
                f"{ENDPOINTS['v5']} {method}: method {method} not served by {ENDPOINTS['v5']}"
                if method
                else f"no provider configured for {kind!r} evidence: set [evidence] {kind} = "
                "'file:///...' (or http:// or unix://) in built-in defaults"
            )
        return self

    # --- the observation -------------------------------------------------------------------
    def observation(self) -> Observation:
        started = NOW.isoformat().replace("+00:00", "Z")
        daemons = {}
        for name, methods in self.calls.items():
            calls = []
            for method, result in methods.items():
                readings = 2 if method in READ_TWICE else 1
                for reading in range(1, readings + 1):
                    error = self.failed_calls.get((name, method))
                    if name in self.stopped:
                        path = ENDPOINTS[name].removeprefix("unix://")
                        error = f"{ENDPOINTS[name]} {method}: no socket at {path}"
                    answer = result
                    if method == "daemon.info" and reading == 2 and self.restarted_mid_run:
                        answer = {**result, "nonce": f"9-{int(NOW.timestamp()) * 10**9}"}
                    if reading == 2:
                        answer = self.second.get((name, method), answer)
                        error = self.failed_second.get((name, method), error)
                    calls.append(
                        CallRecord(
                            name,
                            ENDPOINTS[name],
                            method,
                            reading,
                            None,
                            started,
                            1.0,
                            result=None if error else answer,
                            error=error,
                            error_kind=(
                                ("transport" if name in self.stopped else "not-served")
                                if error
                                else None
                            ),
                        )
                    )
            daemons[name] = DaemonObservation(name, ENDPOINTS[name], calls)
        evidence = {}
        for accessor, (kind, _) in ACCESSORS.items():
            uri = "file:///evidence/" + accessor
            if accessor in self.readings:
                evidence[accessor] = self.readings[accessor]
                continue
            if accessor in self.failed_evidence:
                evidence[accessor] = EvidenceReading(
                    accessor,
                    kind,
                    uri,
                    started,
                    1.0,
                    None,
                    self.failed_evidence[accessor],
                    "not-served",
                )
                continue
            if accessor not in self.evidence:
                continue
            records, start, end = self.evidence[accessor]
            payload = Evidence(records, Source(uri, accessor), None, _dt(start), _dt(end))
            evidence[accessor] = EvidenceReading(accessor, kind, uri, started, 1.0, encode(payload))
        return Observation(self.phase, {"kind": "test"}, started, started, daemons, evidence)


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc)


def healthy_custody(phase: str) -> Custody:
    """A chain with every earlier phase's bundle and every sign-off the gates ask for."""
    earlier, before = [], CATALOG.requires.get(phase)
    while before is not None:
        earlier.append(before)
        before = CATALOG.requires.get(before)

    def signoff(item: str, session: str | None = None) -> dict[str, Any]:
        return {
            "file": f"x-signoff-{item}-alice.dsse.json",
            "kind": "signoff",
            "subject": item,
            "by": "alice",
            "signed_at": "2026-11-26T11:00:00.000Z",  # an hour before NOW, during the phase
            "session": session,
            "text": "",
            "until": None,
            "phase": None,
            "refers": [],
            "keyid": "k" * 64,
            "digest": "d" * 64,
        }

    custody = Custody(
        phase=phase,
        requires=CATALOG.requires.get(phase),
        relies_on=[
            {
                "phase": p,
                "bundle": f"20260101T000000.000Z-pass-{p}",
                "digest": "a" * 64,
                "signer_keyid": "k" * 64,
                "finished_at": "2026-01-01T00:00:00.000Z",
                "gates": {
                    "prereq.restore-dry-run": "PASS",
                    "alpha.exit.restore-dry-run": "PASS",
                    "canary.pre.restore-dry-run": "PASS",
                },
            }
            for p in earlier
        ],
        attestations=[
            signoff("P2-X3", "session-alpha"),
            signoff("P2-X3", "session-beta"),
            signoff("CG-7"),
        ],
        rehearsal={
            "phase": "rollback",
            "bundle": "20260101T000000.000Z-partial",
            "digest": "c" * 64,
            "signer_keyid": "k" * 64,
            "finished_at": "2026-01-01T00:00:00.000Z",
        },
        timeline=[
            {
                "phase": "alpha",
                "bundle": "20260101T000000.000Z-pass",
                "started_at": "2026-01-01T00:00:00.000Z",
                "finished_at": "2026-01-01T00:01:00.000Z",
            }
        ],
        # the canary exactly as long as the runbook's 48h (its alert window stays 48h)
        soak=healthy_soak(timedelta(hours=48) if phase == "canary" else timedelta(days=8)),
    )
    if phase == "cutover":  # every archived run saw v4 running, ready and empty
        for run in custody.soak["runs"]:
            run["facts"] = {"v4": {"state": "answering", "empty": True, "version": "0.0.4"}}
    return custody


def healthy_soak(
    span: timedelta, every: timedelta = timedelta(hours=4), monitor: str = "PASS"
) -> dict[str, Any]:
    """A phase started ``span`` before NOW with a passing archived run every ``every``."""
    start = NOW - span
    count = int(span / every)
    return {
        # the migration started 8 days ago; its backup (snap-1) was taken a day before
        "migration_start": (NOW - timedelta(days=8)).isoformat(),
        "phase_start": start.isoformat(),
        "max_gap_h": 6.0,
        "monitor_gates": ["m"],
        "runs": [
            {
                "bundle": f"run-{n}",
                "digest": "b" * 64,
                "started_at": (start + n * every).isoformat(),
                "finished_at": (start + n * every + timedelta(minutes=1)).isoformat(),
                "monitor": {"m": monitor},
            }
            for n in range(count)
        ],
    }


def judge(
    gate_id: str, fleet: Fleet, settings: AgtmuxSettings | None = None, session: str = ""
) -> tuple[Verdict, str, GateEvidence]:
    """Run one gate on the fleet's observation; its verdict, message and evidence."""
    function = GATES[gate_id]
    evidence = GateEvidence()
    settings = settings or AgtmuxSettings()
    observation = fleet.observation()
    custody = fleet.custody or healthy_custody(fleet.phase)
    fixtures: dict[str, Any] = {
        "canarygate_observed": ObservedView(observation, evidence, decode, past_timestamps),
        "canarygate_custody": CustodyView(custody, observation.now),
        "agtmux_settings": settings,
        "agtmux_tmux_session": session or "session-alpha",
        "agtmux_pane_parity": settings.pane_parity,
        "agtmux_session_parity": settings.session_parity,
    }
    wanted = inspect.signature(function).parameters
    try:
        function(**{name: fixtures[name] for name in wanted})
    except BaseException as exc:  # the verdict mapping is what is tested
        verdict, message = verdict_of(exc)
        return verdict, message, evidence
    return Verdict.PASS, "", evidence


def test_every_catalog_gate_is_loaded() -> None:
    assert set(GATES) == set(CATALOG.gates)


@pytest.mark.parametrize(
    ("phase", "gate_id"),
    [(phase, g.id) for phase in PHASES for g in CATALOG.gates_for(phase)],
)
def test_healthy_fleet_passes_every_gate_of_every_phase(phase: str, gate_id: str) -> None:
    verdict, message, _ = judge(gate_id, Fleet.healthy(phase))
    assert verdict is Verdict.PASS, message


# --- each way a criterion fails --------------------------------------------------------------

Change = Callable[[Fleet], object]


def calls(daemon: str, method: str, result: Any) -> Change:
    """The daemon answers ``method`` with ``result`` (a stopped daemon runs again)."""
    return lambda f: (f.stopped.discard(daemon), f.calls[daemon].__setitem__(method, result))


def started(daemon: str, ago: timedelta) -> Change:
    start_ns = int((NOW - ago).timestamp()) * 10**9
    return lambda f: (
        f.stopped.discard(daemon),
        f.calls[daemon]["daemon.info"].__setitem__("nonce", f"77-{start_ns}"),
    )


def v4_sighted(fact: dict[str, Any] | None) -> Change:
    """Every archived run of the phase saw v4 as ``fact`` says (None: recorded nothing)."""

    def change(f: Fleet) -> None:
        f.custody = healthy_custody(f.phase)
        for run in f.custody.soak["runs"]:
            run["facts"] = {} if fact is None else {"v4": fact}

    return change


def snapshots(*snaps: SnapshotMetadata) -> Change:
    return lambda f: f.records("snapshots", *snaps, days=None)


def periodic(age_ms: int, version: int = 120, snapshot_id: str = "snap-9") -> SnapshotMetadata:
    return SnapshotMetadata(snapshot_id, NOW_MS - age_ms, version, 3, 4, "Periodic", 9000)


def status(**changes: Any) -> Change:
    return lambda f: f.one("supervisor_status", **changes)


def policy(**changes: Any) -> Change:
    return status(policy=replace(RUNBOOK_RESTART_POLICY, **changes))


def both(*changes: Change) -> Change:
    return lambda f: [change(f) for change in changes]


def changed_at(ms: int | None) -> Change:
    return lambda f: f.one("runtime_selector", changed_at_ms=ms)


def coverage(accessor: str, *records: Any, start_ms: int, end_ms: int) -> Change:
    return lambda f: f.evidence.__setitem__(accessor, (records, start_ms, end_ms))


def decayed_title_session_differs(f: Fleet) -> None:
    """Pane %1's deterministic title decayed (its title is the tmux title); only the change log
    binds it to agent session 7f3c2a10-claude-alpha, which is Running on v4 and in Error on v5."""
    key = "7f3c2a10-claude-alpha"
    for name, activity in (("v4", "Running"), ("v5", "Error")):
        f.calls[name]["list_sessions"] = [
            *f.calls[name]["list_sessions"],
            {
                "session_key": key,
                "presence": "managed",
                "evidence_mode": "heuristic",
                "winner_tier": "deterministic",
                "activity_state": activity,
            },
        ]
        log = f.calls[name]["state_changed"]["changes"]
        entry = {"version": len(log) + 1, "session_key": key, "pane_id": "%1",
                 "timestamp": stamp(NOW_MS - HOUR)}  # fmt: skip
        f.calls[name]["state_changed"] = {"changes": [*log, entry], "version": len(log) + 1}


V5_START_MS = datetime_to_ms(STARTED["v5"])
IDLE_LOG = changes_for(FLEET_PANES, V5_START_MS, None)  # nothing changed since v5 started
NOT_STARTED = {"status": "not_started", "sample_count": 0, "p95_ms": None,
               "consecutive_breaches": 0}  # fmt: skip
DIED = "v5 unix:///run/cg/v5/agtmuxd.sock daemon.info: connection refused"
HOLD_DOWN_2H = event(NOW_MS - 2 * HOUR, "hold_down")
DEGRADED_3H = alert(9, Severity.DEGRADED, NOW_MS - 3 * HOUR, NOW_MS - 2 * HOUR)
ESCALATE_OPEN = alert(8, Severity.ESCALATE, NOW_MS - 20 * MIN, None)
STALE_V4 = [p if p["pane_id"] != "%4" else {**p, "session_name": None} for p in FLEET_PANES]
LAT = {"consecutive_breaches": 0, "sample_count": 230}
UNMANAGED = [pane(p["pane_id"], p["session_name"], managed=False) for p in FLEET_PANES]

CASES: list[tuple[str, str, Change, Verdict, str]] = [
    # the rollback rehearsal (--canarygate-stage=rehearsal)
    ("rollback.rehearsal.selector-writable", "rollback", lambda f: None, Verdict.UNOBSERVABLE,
     "cannot be examined"),
    ("rollback.rehearsal.v4-serves-canary", "rollback", lambda f: None, Verdict.INCONCLUSIVE,
     "names no canary session"),
    ("rollback.rehearsal.v4-serves-canary", "rollback",
     both(lambda f: f.one("runtime_selector", v5_enabled=True,
                          v5_canary_sessions=("session-alpha",)),
          calls("v4", "list_panes", UNMANAGED)),
     Verdict.FAIL, "session-alpha has no managed pane on v4"),
    ("rollback.rehearsal.v4-sources-active", "rollback",
     calls("v4", "list_source_health",
           [["poller", {"status": "degraded"}], ["claude_hooks", {"status": "healthy"}]]),
     Verdict.FAIL, "source poller is degraded"),
    ("rollback.rehearsal.v5-snapshot-possible", "rollback", snapshots(periodic(20 * MIN)),
     Verdict.FAIL, "restore dry-run FAIL: snapshot snap-9: TooOld"),
    ("rollback.rehearsal.v5-snapshot-possible", "rollback", snapshots(periodic(MIN, 105)),
     Verdict.FAIL, "snapshot FAIL: newest snapshot snap-9 (Periodic, version 105"),
    # prerequisites
    ("prereq.startup-order", "alpha",
     lambda f: f.add("supervisor_events", *startup(NOW_MS - DAY, ("Sources", "Daemon", "Gateway"))),
     Verdict.FAIL, "Daemon started at 2026-11-25T12:00:00Z out of order (Sources -> Daemon)"),
    # the declared order is not evidence: a status saying the right order does not pass it
    ("prereq.startup-order", "alpha", lambda f: f.records("supervisor_events", days=10),
     Verdict.INCONCLUSIVE, "no startup (Sources stage_started) in the v5 supervisor events"),
    ("prereq.startup-order", "alpha", lambda f: f.unserved("supervisor_events"),
     Verdict.UNOBSERVABLE, "method ops.supervisor_events not served"),
    ("prereq.snapshot-infrastructure", "alpha", snapshots(periodic(11 * MIN)),
     Verdict.FAIL, "older than two intervals (10m)"),
    ("prereq.snapshot-infrastructure", "alpha", snapshots(), Verdict.FAIL, "no Periodic snapshot"),
    ("prereq.restore-dry-run", "alpha", snapshots(periodic(MIN, 121)), Verdict.FAIL,
     "VersionAhead { snapshot_version: 121, current_version: 120 }"),
    ("prereq.restore-dry-run", "alpha", snapshots(periodic(20 * MIN)), Verdict.FAIL,
     "TooOld { age_ms: 1200000, max_age_ms: 600000 }"),
    ("prereq.restore-dry-run", "alpha", snapshots(periodic(10 * MIN)), Verdict.PASS, ""),
    ("prereq.restore-dry-run", "alpha", snapshots(), Verdict.FAIL, "no snapshot is retained"),
    ("prereq.restore-dry-run", "alpha",
     lambda f: f.failed_calls.__setitem__(("v5", "summary_changed"), "gone"),
     Verdict.UNOBSERVABLE, "v5: gone"),
    ("prereq.build-passes", "alpha",
     lambda f: f.one("build_result", failures=3, failing=("a::x", "a::y", "b::z")),
     Verdict.FAIL, "v5 build fails (700 tests: 695 passed, 3 failed"),
    ("prereq.build-passes", "alpha", lambda f: f.one("build_result", tests=400),
     Verdict.FAIL, "too few tests"),
    ("prereq.build-passes", "alpha", lambda f: f.unserved("build_result"),
     Verdict.UNOBSERVABLE, "no provider configured for 'build' evidence"),
    ("prereq.backup-taken", "alpha", snapshots(periodic(MIN)), Verdict.FAIL,
     "no Manual snapshot (backup) among 1 retained (triggers: Periodic)"),
    # phase 1
    ("alpha.selector.routes-to-v4", "alpha",
     lambda f: f.one("runtime_selector", v5_enabled=True), Verdict.FAIL,
     "v5_enabled must be false"),
    ("alpha.supervisor.ready", "alpha",
     status(state=SupervisorState("HoldDown", until_ms=NOW_MS + MIN)), Verdict.FAIL,
     "supervisor state HoldDown until 2026-11-26T12:01Z, not Ready"),
    ("alpha.supervisor.ready", "alpha",
     status(dependency_gates=(DependencyGate("Sources", True, ()),
                              DependencyGate("Gateway", False, ("poller",))),),
     Verdict.FAIL, "Gateway DependencyGate not all_ready: unready poller"),
    ("alpha.monitor.no-hold-down", "alpha", lambda f: f.add("supervisor_events", HOLD_DOWN_2H),
     Verdict.FAIL, "1 supervisor HoldDown events in the last 24h: hold_down at 2026-11-26T10:00Z"),
    ("alpha.monitor.no-hold-down", "alpha",
     lambda f: f.records("supervisor_events", days=14 / 24).unserved("log_events"),
     Verdict.INCONCLUSIVE, "(14h) of the required 24h window"),
    ("alpha.monitor.no-hold-down", "alpha",
     lambda f: f.records("supervisor_events", days=14 / 24), Verdict.PASS, ""),  # log covers
    ("alpha.monitor.no-hold-down", "alpha",
     lambda f: f.unserved("supervisor_events").add(
         "log_events", log(NOW_MS - HOUR, "hold_down", seconds=300)),
     Verdict.FAIL, "daemon log FAIL: 1 supervisor HoldDown events"),
    ("alpha.monitor.no-hold-down", "alpha",
     lambda f: f.unserved("supervisor_events", "log_events"), Verdict.UNOBSERVABLE,
     "method ops.supervisor_events not served"),
    ("alpha.monitor.no-escalations", "alpha",
     lambda f: f.add("alert_entries", alert(5, Severity.ESCALATE, NOW_MS - 3 * HOUR, None)),
     Verdict.FAIL, "1 alerts at or above Escalate in the last 24h: alert-5 Escalate"),
    ("alpha.monitor.no-escalations", "alpha", lambda f: f.add("alert_entries", DEGRADED_3H),
     Verdict.PASS, ""),
    ("alpha.exit.zero-hold-downs", "alpha", lambda f: f.add("supervisor_events", HOLD_DOWN_2H),
     Verdict.FAIL, "HoldDown events in the last 24h"),
    ("alpha.exit.restore-dry-run", "alpha", snapshots(periodic(MIN, 500)), Verdict.FAIL,
     "VersionAhead"),
    # phase 2
    ("canary.pre.snapshot-recorded", "canary", snapshots(periodic(MIN, 105)), Verdict.FAIL,
     "is 15 versions behind v5's current projection version 120"),
    ("canary.pre.snapshot-recorded", "canary", snapshots(periodic(MIN, 121)), Verdict.FAIL,
     "VersionAhead { snapshot_version: 121, current_version: 120 } on v5"),
    ("canary.pre.snapshot-recorded", "canary", snapshots(periodic(20 * MIN)), Verdict.PASS, ""),
    ("canary.pre.snapshot-recorded", "canary", snapshots(periodic(11 * 24 * HOUR)), Verdict.FAIL,
     "no snapshot taken since v5's process started"),
    ("canary.pre.snapshot-recorded", "canary", snapshots(periodic(MIN, snapshot_id="backup-1")),
     Verdict.FAIL, "'backup-1' is not snap-<n>"),
    ("canary.pre.restore-dry-run", "canary", snapshots(periodic(20 * MIN)), Verdict.FAIL,
     "TooOld"),
    ("canary.selector.canary-sessions", "canary",
     lambda f: f.one("runtime_selector", v5_canary_sessions=("session-alpha", "session-delta")),
     Verdict.FAIL, "canary sessions missing on v4: session-delta"),
    ("canary.selector.canary-sessions", "canary",
     lambda f: f.one("runtime_selector", default_daemon="v5", v5_canary_sessions=()),
     Verdict.FAIL, "default_daemon must be 'v4'"),
    ("canary.monitor.source-health", "canary",
     calls("v5", "list_source_registry", [{"source_id": "ext-poller", "lifecycle": "stale"}]),
     Verdict.FAIL, "registered source ext-poller is stale, not active"),
    ("canary.monitor.source-health", "canary",
     calls("v5", "list_source_health", [["poller", {"status": "down"}]]), Verdict.FAIL,
     "source claude_hooks is not reported by list_source_health"),
    ("canary.monitor.source-health", "canary", calls("v5", "list_source_health", {"x": 1}),
     Verdict.UNOBSERVABLE, "list_source_health: expected a list"),
    ("canary.monitor.latency", "canary",
     calls("v5", "latency_status", {**LAT, "status": "degraded", "p95_ms": 3224,
                                    "consecutive_breaches": 10}),
     Verdict.FAIL,
     "latency_status now FAIL: latency SLO degraded: rolling p95 3224 ms > 3000 ms"),
    # only latency alerts count here: the supervisor's belong to their own gates
    ("canary.monitor.latency", "canary",
     lambda f: f.add("alert_entries", replace(DEGRADED_3H, source="latency_window")),
     Verdict.FAIL,
     "latency alerts FAIL: 1 latency_window alerts at or above Degraded in the last 48h"),
    ("canary.monitor.latency", "canary",
     lambda f: f.add("alert_entries", DEGRADED_3H, ESCALATE_OPEN), Verdict.PASS, ""),
    ("canary.monitor.latency", "canary",
     calls("v5", "latency_status", {"status": "insufficient_data", "sample_count": 12,
                                    "min_required": 200, "p95_ms": None,
                                    "consecutive_breaches": 0}),
     Verdict.INCONCLUSIVE, "12 of 200 samples"),
    ("canary.monitor.cas-conflicts", "canary",
     lambda f: f.one("binding_stats", cas_conflicts=2, last_conflict_at_ms=NOW_MS - HOUR),
     Verdict.FAIL, "2 CAS conflicts since"),
    ("canary.monitor.cas-conflicts", "canary", lambda f: f.unserved("binding_stats"),
     Verdict.UNOBSERVABLE, "method ops.binding_stats not served"),
    ("canary.monitor.cursor", "canary",
     lambda f: f.one("cursor_stats", invalid_streak=3, max_invalid_streak=3,
                     full_resync_count=1),
     Verdict.FAIL, "1 full resyncs since"),
    ("canary.monitor.cursor", "canary",
     lambda f: f.one("cursor_stats", last_advanced_at_ms=NOW_MS - HOUR),
     Verdict.INCONCLUSIVE, "cursor watermarks advanced last at 2026-11-26T11:00Z"),
    ("canary.duration.active-48h", "canary", started("v5", timedelta(hours=20)),
     Verdict.INCONCLUSIVE, "canary running 20h since 2026-11-25T16:00Z (v5 started "
     "2026-11-25T16:00Z, selector last changed 2026-11-16T12:00Z), less than the required 48h"),
    ("canary.duration.active-48h", "canary", calls("v5", "list_panes", UNMANAGED),
     Verdict.INCONCLUSIVE, "2 of 2 canary sessions idle on v5"),
    ("canary.duration.active-48h", "canary",
     lambda f: setattr(f, "restarted_mid_run", True), Verdict.INCONCLUSIVE,
     "canary running 0s since 2026-11-26T12:00Z"),
    ("canary.duration.active-48h", "canary",
     calls("v5", "daemon.info", {"pid": 1, "nonce": "garbage"}), Verdict.UNOBSERVABLE,
     "no nonce '<pid>-<ns since epoch>'"),
    ("canary.expand.sessions-managed", "canary",
     calls("v5", "list_panes", [p for p in FLEET_PANES if p["session_name"] != "session-beta"]),
     Verdict.FAIL, "canary session session-beta is not on v5"),
    ("canary.expand.sessions-managed", "canary", calls("v5", "list_panes", UNMANAGED),
     Verdict.FAIL, "canary session session-alpha has no managed pane on v5"),
    ("canary.exit.stable-48h", "canary",
     lambda f: f.add("supervisor_events", event(NOW_MS - 30 * HOUR, "hold_down"),
                     event(NOW_MS - 29 * HOUR, "success")),
     Verdict.FAIL, "hold-downs / supervisor events FAIL: 1 supervisor HoldDown events"),
    ("canary.exit.stable-48h", "canary", started("v5", timedelta(hours=20)),
     Verdict.INCONCLUSIVE, "phase INCONCLUSIVE: canary running 20h"),
    ("canary.exit.no-degraded-alerts", "canary", lambda f: f.add("alert_entries", DEGRADED_3H),
     Verdict.FAIL, "alert-9 Degraded from supervisor at 2026-11-26T09:00Z (resolved"),
    ("canary.exit.no-degraded-alerts", "canary", lambda f: f.records("alert_entries", days=1),
     Verdict.INCONCLUSIVE, "(24h) of the required 48h window"),
    # phase 3
    ("gradual.selector.default-v5", "gradual", lambda f: f.one("runtime_selector",
                                                               default_daemon="v4"),
     Verdict.FAIL, "default_daemon must be 'v5'"),
    ("gradual.v4.serves-its-sessions", "gradual",
     lambda f: f.one("runtime_selector", sessions=MOVED_OFF_V4), Verdict.FAIL,
     "1 sessions started before the switch to v5 at 2026-11-16T12:00Z were moved to v5 "
     "without a restart: session-gamma"),
    ("gradual.v4.serves-its-sessions", "gradual", calls("v4", "list_panes", []), Verdict.FAIL,
     "1 sessions routed to v4 are not among the tmux sessions v4 shows: session-gamma"),
    # every daemon shows every tmux session: what v4 manages says nothing about its sessions
    ("gradual.v4.serves-its-sessions", "gradual", calls("v4", "list_panes", UNMANAGED),
     Verdict.PASS, ""),
    ("gradual.migration-rate", "gradual", lambda f: f.one("runtime_selector", sessions=NEW_ON_V4),
     Verdict.FAIL, "1 sessions started after the switch to v5 at 2026-11-16T12:00Z are routed "
     "to v4: session-beta"),
    ("gradual.migration-rate", "gradual", lambda f: f.one("runtime_selector", sessions=None),
     Verdict.INCONCLUSIVE, "the runtime selector does not say how it routes each session"),
    ("gradual.exit.v5-default-7d", "gradual",
     lambda f: f.one("runtime_selector", sessions=NEW_ON_V4), Verdict.FAIL,
     "1 of the 1 sessions started since the switch to v5 at 2026-11-16T12:00Z are routed to v4"),
    ("gradual.v4.rollback-target", "gradual",
     lambda f: f.failed_calls.__setitem__(("v4", "daemon.info"), "connection refused"),
     Verdict.UNOBSERVABLE, "v4: connection refused"),
    ("gradual.v4.rollback-target", "gradual", calls("v4", "list_panes", {"oops": 1}),
     Verdict.UNOBSERVABLE, "expected a list"),
    ("gradual.exit.v5-default-7d", "gradual", started("v5", timedelta(days=3)),
     Verdict.INCONCLUSIVE, "gradual running 3d since 2026-11-23T12:00Z"),
    ("gradual.exit.v5-default-7d", "gradual", lambda f: f.one("runtime_selector",
                                                              v5_enabled=False),
     Verdict.FAIL, "v5_enabled must be true"),
    ("gradual.exit.no-restart-regression", "gradual",
     lambda f: f.add("supervisor_events", *(event(NOW_MS - d * DAY, "restart")
                                            for d in (1, 2))),
     Verdict.FAIL, "supervisor restarts regressed: 4 in the gradual phase (10d since "),
    ("gradual.exit.no-restart-regression", "gradual",
     lambda f: f.records("supervisor_events", days=10).unserved("log_events"),
     Verdict.INCONCLUSIVE, "(10d) of the required 20d window"),
    ("gradual.exit.no-restart-regression", "gradual", changed_at(None), Verdict.INCONCLUSIVE,
     "gradual start unknown: the runtime selector does not say when it last changed"),
    ("gradual.exit.no-restart-regression", "gradual", lambda f: f.unserved("runtime_selector"),
     Verdict.UNOBSERVABLE, "method ops.runtime_selector not served"),
    # phase 4
    *[
        (gate_id, "cutover", both(calls("v4", "list_panes", FLEET_PANES),
                                  calls("v4", "list_sessions", sessions_for(FLEET_PANES))),
         Verdict.FAIL, "v4 still serves 3 agent sessions (poller-%1, poller-%3, poller-%4) and "
         "manages 3 panes in tmux sessions session-alpha, session-beta, session-gamma")
        for gate_id in ("cutover.migrate.v4-sessions-restarted",
                        "cutover.verify.zero-v4-sessions", "cutover.exit.zero-v4-sessions")
    ],
    # v4 decommissioned: zero sessions only after the last run that saw it running found it empty
    *[
        (gate_id, "cutover", v4_sighted(None), Verdict.INCONCLUSIVE,
         "but no archived run of the cutover phase observed it running")
        for gate_id in ("cutover.migrate.v4-sessions-restarted",
                        "cutover.verify.zero-v4-sessions", "cutover.exit.zero-v4-sessions")
    ],
    ("cutover.exit.zero-v4-sessions", "cutover",
     v4_sighted({"state": "answering", "empty": False, "version": "0.0.4"}), Verdict.INCONCLUSIVE,
     "v4 is decommissioned (unix:///run/cg/v4/agtmuxd.sock daemon.info: no socket at"),
    ("cutover.decommission.v4-binary-archived", "cutover", calls("v4", "list_panes", []),
     Verdict.FAIL, "v4 is not decommissioned: it still answers (unix:///run/cg/v4/agtmuxd.sock: "
     "daemon.info pid 4020, version 0.0.4)"),
    ("cutover.exit.v4-binary-retained", "cutover", lambda f: f.one("archive_manifest",
                                                                   version="0.0.3"),
     Verdict.FAIL, "is version 0.0.3, but the v4 that ran was 0.0.4 (recorded by run-47"),
    ("cutover.exit.v4-binary-retained", "cutover",
     lambda f: f.one("archive_manifest", retain_until_ms=NOW_MS + 29 * DAY), Verdict.FAIL,
     "less than 30d past the decommission (after 2026-11-26T08:00Z, when v4 was last seen"),
    ("cutover.exit.v4-binary-retained", "cutover", v4_sighted(None), Verdict.INCONCLUSIVE,
     "the version of the v4 that ran is not recorded"),
    ("cutover.exit.v4-binary-retained", "cutover", calls("v4", "list_panes", []),
     Verdict.INCONCLUSIVE, "v4 is not decommissioned yet, so 30d past its decommission"),
    ("cutover.final-snapshot", "cutover", snapshots(periodic(20 * MIN)), Verdict.FAIL, "TooOld"),
    ("cutover.decommission.v4-binary-archived", "cutover",
     lambda f: f.one("archive_manifest", present=False, actual_sha256=None), Verdict.FAIL,
     "binary agtmux-v4 is not beside its manifest"),
    ("cutover.decommission.v4-binary-archived", "cutover",
     lambda f: f.one("archive_manifest", retain_until_ms=NOW_MS + 18 * DAY), Verdict.FAIL,
     "retained 20d (2026-11-24T12:00Z..2026-12-14T12:00Z), less than 30d"),
    ("cutover.exit.v4-binary-retained", "cutover",
     lambda f: f.one("archive_manifest", actual_sha256="cd" * 32), Verdict.FAIL,
     "sha256 cdcd"),
    ("cutover.exit.v4-binary-retained", "cutover",
     lambda f: f.one("archive_manifest", archived_at_ms=NOW_MS - 40 * DAY,
                     retain_until_ms=NOW_MS - 5 * DAY),
     Verdict.FAIL, "retention ended 2026-11-21T12:00Z, before now"),
    ("cutover.exit.v4-binary-retained", "cutover", lambda f: f.unserved("archive_manifest"),
     Verdict.UNOBSERVABLE, "no provider configured for 'archive' evidence"),
    ("cutover.exit.v5-only-stable-7d", "cutover",
     lambda f: f.add("alert_entries", alert(4, Severity.DEGRADED, NOW_MS - 3 * DAY,
                                            NOW_MS - 3 * DAY + HOUR)),
     Verdict.FAIL, "alerts FAIL: 1 alerts at or above Degraded in the last 7d"),
    ("cutover.exit.v5-only-stable-7d", "cutover", started("v5", timedelta(days=6)),
     Verdict.INCONCLUSIVE, "v5 up 6d"),
    # rollback
    ("rollback.selector.back-to-v4", "rollback",
     lambda f: f.one("runtime_selector", v5_enabled=True), Verdict.FAIL,
     "selector wrong for rollback"),
    ("rollback.sessions.served-by-v4", "rollback", calls("v4", "list_panes", STALE_V4),
     Verdict.FAIL, "session session-gamma is not on v4 (v5 manages 1 panes in it)"),
    ("rollback.sessions.served-by-v4", "rollback", calls("v4", "list_panes", UNMANAGED),
     Verdict.FAIL, "session session-alpha: v4 does not manage panes %1 that v5 manages"),
    ("rollback.sessions.served-by-v4", "rollback", calls("v4", "latency_status", NOT_STARTED),
     Verdict.INCONCLUSIVE, "the sessions on v4 not judged: v4 not ready"),
    ("rollback.v4.list-panes", "rollback", calls("v4", "list_panes", []), Verdict.FAIL,
     "v4 list_panes differs from what v5 served at the rollback in 3 place(s): pane %1 "
     "(session-alpha): not in v4 list_panes"),
    ("rollback.v4.list-panes", "rollback", calls("v4", "list_panes", STALE_V4), Verdict.FAIL,
     "pane %4 (session-gamma): session_name v5='session-gamma' v4=None"),
    ("rollback.v4.list-panes", "rollback", calls("v4", "latency_status", NOT_STARTED),
     Verdict.INCONCLUSIVE, "v4 list_panes not judged: v4 not ready"),
    ("rollback.v4.list-panes", "rollback",
     calls("v4", "list_panes", [pane("%1", "s", signature_confidence=2.0)]), Verdict.FAIL,
     "v4 pane %1: signature_confidence 2.0 outside 0.0-1.0"),
    ("rollback.v4.sources-active", "rollback",
     calls("v4", "list_source_health", [["poller", {"status": "degraded"}],
                                        ["claude_hooks", {"status": "healthy"}]]),
     Verdict.FAIL, "source poller is degraded, not healthy"),
    # signals
    ("signal.hold-down-not-recovered", "rollback",
     both(lambda f: f.add("supervisor_events", HOLD_DOWN_2H),
          status(state=SupervisorState("HoldDown", until_ms=NOW_MS - 2 * HOUR + 5 * MIN))),
     Verdict.FAIL, "HoldDown at 2026-11-26T10:00Z ended 2026-11-26T10:05Z and no recovery"),
    ("signal.hold-down-not-recovered", "canary",
     lambda f: f.add("supervisor_events", HOLD_DOWN_2H,
                     event(NOW_MS - 2 * HOUR + 6 * MIN, "success")),
     Verdict.PASS, ""),
    ("signal.hold-down-not-recovered", "gradual",
     both(lambda f: f.add("supervisor_events", event(NOW_MS - 3 * MIN, "hold_down")),
          status(state=SupervisorState("HoldDown", until_ms=NOW_MS + 2 * MIN))),
     Verdict.INCONCLUSIVE, "recovery not due yet"),
    ("signal.hold-down-not-recovered", "cutover",
     status(state=SupervisorState("HoldDown", until_ms=NOW_MS - 3 * DAY)), Verdict.FAIL,
     "supervisor still in HoldDown 3d after it ended"),
    ("signal.escalate-persisting", "canary", lambda f: f.add("alert_entries", ESCALATE_OPEN),
     Verdict.FAIL, "1 Escalate alerts persisted longer than 5m: alert-8 Escalate"),
    ("signal.escalate-persisting", "rollback",
     lambda f: f.add("alert_entries", alert(8, Severity.ESCALATE, NOW_MS - 2 * MIN, None)),
     Verdict.PASS, ""),
    ("signal.escalate-persisting", "gradual", lambda f: f.records("alert_entries", days=0.5),
     Verdict.INCONCLUSIVE, "of the required 24h window"),
    ("signal.latency-breaches", "cutover",
     calls("v5", "latency_status", {**LAT, "status": "degraded", "p95_ms": 3224,
                                    "consecutive_breaches": 10}),
     Verdict.INCONCLUSIVE, "p95 breach in progress: status degraded"),
    ("signal.latency-breaches", "canary",
     calls("v5", "latency_status", {**LAT, "status": "breached", "p95_ms": 3300,
                                    "consecutive_breaches": 2}),
     Verdict.INCONCLUSIVE, "p95 breach in progress: status breached"),
    ("signal.latency-breaches", "canary",
     calls("v5", "latency_status", NOT_STARTED),
     Verdict.INCONCLUSIVE, "not checkable"),
    # counters that cannot say when: the log, showing none in the look-back, decides
    ("signal.cursor-full-resync", "canary",
     lambda f: f.one("cursor_stats", full_resync_count=1, max_invalid_streak=3),
     Verdict.PASS, ""),
    ("signal.cursor-full-resync", "canary",
     both(lambda f: f.one("cursor_stats", full_resync_count=1, max_invalid_streak=3,
                          covers_from_ms=NOW_MS - 2 * HOUR),
          lambda f: f.unserved("log_events")),
     Verdict.FAIL, "cursor FullResync triggered 1 times on the canary since"),
    ("signal.cursor-full-resync", "canary",
     lambda f: f.unserved("cursor_stats").add("log_events", log(NOW_MS - HOUR, "full_resync")),
     Verdict.FAIL, "daemon log FAIL: 1 cursor FullResyncs on the canary in the last 24h"),
    ("signal.cursor-full-resync", "rollback",
     both(lambda f: f.unserved("cursor_stats").add("log_events",
                                                   log(NOW_MS - HOUR, "full_resync")),
          changed_at(NOW_MS - 3 * HOUR)),
     Verdict.PASS, ""),
    ("signal.cursor-full-resync", "rollback", lambda f: f.unserved("cursor_stats"),
     Verdict.PASS, ""),
    ("signal.cursor-full-resync", "rollback",
     lambda f: f.unserved("cursor_stats", "log_events"), Verdict.UNOBSERVABLE,
     "method ops.cursor_stats not served"),
    ("rollback.post.v5-snapshot", "rollback", snapshots(), Verdict.FAIL,
     "no snapshot is retained"),
    ("rollback.post.v5-snapshot", "rollback",
     both(snapshots(periodic(2 * MIN)), changed_at(NOW_MS - MIN)), Verdict.FAIL,
     "no snapshot taken since the runtime selector changed to default_daemon='v4'"),
    ("rollback.post.v5-snapshot", "rollback",
     both(snapshots(periodic(MIN, 119)), changed_at(NOW_MS - 2 * MIN)), Verdict.FAIL,
     "is 1 versions behind v5's current projection version 120"),
    ("rollback.post.v5-snapshot", "rollback",
     both(snapshots(periodic(MIN)), changed_at(NOW_MS - 2 * MIN)), Verdict.PASS, ""),
    ("rollback.post.v5-snapshot", "rollback", changed_at(None), Verdict.INCONCLUSIVE,
     "does not say when it changed"),
    # supervisor contract
    ("contract.startup-order", "gradual",
     lambda f: f.add("supervisor_events", *startup(NOW_MS - DAY, ("Sources", "Gateway", "Daemon"))),
     Verdict.INCONCLUSIVE, "has not finished: Ui not ready"),
    ("contract.backoff-initial", "alpha", policy(initial_backoff_ms=2000), Verdict.FAIL,
     "initial_backoff_ms 2000 (contract 1000)"),
    ("contract.backoff-multiplier", "canary", policy(multiplier=1.5), Verdict.FAIL,
     "multiplier 1.5 (contract 2.0)"),
    ("contract.backoff-max", "cutover", policy(max_backoff_ms=60_000), Verdict.FAIL,
     "max_backoff_ms 60000 (contract 30000)"),
    ("contract.jitter", "alpha", policy(jitter_pct=0.0), Verdict.FAIL,
     "jitter_pct 0.0 (contract 0.2)"),
    ("contract.jitter", "alpha", status(jitter_applied=False), Verdict.FAIL,
     "the supervisor reports jitter_applied = false"),
    ("contract.jitter", "alpha", both(status(jitter_applied=False),
                                      lambda f: f.unserved("supervisor_events")),
     Verdict.FAIL, "the runtime does not apply it"),
    ("contract.jitter", "alpha", status(jitter_applied=True), Verdict.PASS, ""),
    ("contract.jitter", "alpha",
     lambda f: f.add("supervisor_events", event(NOW_MS - DAY, "restart", attempt=2, after_ms=5000)),
     Verdict.FAIL, "after 5000 ms (schedule 4000 ms, allowed 3200..4800)"),
    ("contract.failure-budget", "alpha", policy(budget_window_ms=60_000), Verdict.FAIL,
     "budget_window_ms 60000 (contract 600000)"),
    ("contract.failure-budget", "alpha",
     lambda f: f.add("supervisor_events", *(event(NOW_MS - DAY + i, "failure") for i in range(3)),
                     event(NOW_MS - DAY + 2, "hold_down")),
     Verdict.FAIL, "entered at the 3rd failure within 10m (contract: the 5th)"),
    ("contract.hold-down", "alpha", policy(holddown_ms=60_000), Verdict.FAIL,
     "holddown_ms 60000 (contract 300000)"),
    ("contract.hold-down", "alpha",
     lambda f: f.add("supervisor_events", event(NOW_MS - DAY, "hold_down", until_ms=NOW_MS - DAY)),
     Verdict.FAIL, "lasted 0 ms (until_ms - at_ms), contract 300000 ms"),
    # canary gate checklist
    ("cutover.checklist.restore-evidence-retained", "cutover", snapshots(), Verdict.FAIL,
     "no snapshot is retained"),
    ("cutover.checklist.no-unresolved-escalate", "cutover",
     lambda f: f.add("alert_entries", alert(3, Severity.ESCALATE, NOW_MS - 3 * DAY, None)),
     Verdict.FAIL, "1 Escalate alerts left unresolved in the last 7d: alert-3 Escalate"),
    ("cutover.checklist.no-unresolved-escalate", "cutover",
     lambda f: f.records("alert_entries", days=2), Verdict.INCONCLUSIVE,
     "(48h) of the required 7d window"),
    # --- fail-open findings: each case fails without its fix --------------------------------
    # phase windows start at the later of v5's start and the selector's last change
    ("canary.duration.active-48h", "canary", changed_at(NOW_MS - HOUR), Verdict.INCONCLUSIVE,
     "phase INCONCLUSIVE: canary running 1h since 2026-11-26T11:00Z"),
    ("canary.duration.active-48h", "canary", changed_at(None), Verdict.INCONCLUSIVE,
     "canary start unknown: the runtime selector does not say when it last changed"),
    ("canary.exit.stable-48h", "canary", changed_at(NOW_MS - HOUR), Verdict.INCONCLUSIVE,
     "phase INCONCLUSIVE: canary running 1h"),
    ("gradual.exit.v5-default-7d", "gradual", changed_at(NOW_MS - 2 * DAY), Verdict.INCONCLUSIVE,
     "gradual running 48h since 2026-11-24T12:00Z"),
    ("cutover.exit.v5-only-stable-7d", "cutover", started("v4", timedelta(hours=2)),
     Verdict.INCONCLUSIVE, "v4 holds no session, but it has been up only 2h"),
    ("cutover.exit.v5-only-stable-7d", "cutover", calls("v4", "list_panes", FLEET_PANES),
     Verdict.FAIL, "v4 still serves 0 agent sessions () and manages 3 panes"),
    ("cutover.exit.v5-only-stable-7d", "cutover", calls("v4", "latency_status", NOT_STARTED),
     Verdict.INCONCLUSIVE, "v4 not ready: latency_status not_started"),
    # an idle canary: managed panes stay, but nothing in the canary sessions changed for days
    ("canary.duration.active-48h", "canary", calls("v5", "state_changed", IDLE_LOG),
     Verdict.INCONCLUSIVE,
     "canary sessions idle on v5: no state_changed entry for them since 2026-11-24T12:00Z"),
    ("canary.duration.active-48h", "canary", calls("v5", "state_changed", {"changes": 3}),
     Verdict.UNOBSERVABLE, "state_changed: malformed answer"),
    # latency: the current sample AND the log's SLO lines over the window
    ("canary.monitor.latency", "canary",
     lambda f: f.add("log_events", log(NOW_MS - HOUR, "slo_degraded", p95_ms=3224,
                                       consecutive=3)),
     Verdict.FAIL, "daemon log p95 breaches FAIL: 1 SLO log lines (slo_breach, slo_degraded) "
     "with p95 > 3000 ms in the last 48h"),
    ("canary.monitor.latency", "canary", lambda f: f.unserved("log_events"),
     Verdict.INCONCLUSIVE, "latency over the last 48h not shown, no history"),
    # windows are 10-minute SLO windows: one line spans one; 31 minutes unbroken span four
    ("signal.latency-breaches", "rollback",
     lambda f: f.add("log_events", log(NOW_MS - HOUR, "slo_degraded", p95_ms=3224,
                                       consecutive=3)),
     Verdict.PASS, ""),
    ("signal.latency-breaches", "rollback",
     lambda f: f.add("log_events", *(log(NOW_MS - 2 * HOUR + n * MIN, "slo_degraded",
                                         p95_ms=3224, consecutive=3 + n) for n in range(32))),
     Verdict.FAIL, "p95 breach sustained over 4 consecutive 10m SLO windows (more than 3)"),
    ("signal.latency-breaches", "canary",
     lambda f: f.add("log_events", log(NOW_MS - HOUR, "slo_breach", p95_ms=3224,
                                       consecutive=2)),
     Verdict.PASS, ""),
    ("signal.latency-breaches", "gradual", lambda f: f.unserved("log_events"),
     Verdict.INCONCLUSIVE, "latency breaches over the last 24h not shown, no history"),
    ("signal.latency-breaches", "cutover",
     coverage("log_events", log(NOW_MS - 10 * DAY), start_ms=NOW_MS - 10 * DAY,
              end_ms=NOW_MS - 3 * HOUR),
     Verdict.INCONCLUSIVE, "it ends 3h before now"),
    # cursor FullResync: zero counted only on counters covering the window
    ("signal.cursor-full-resync", "canary",
     both(lambda f: f.one("cursor_stats", covers_from_ms=NOW_MS - 2 * MIN),
          lambda f: f.unserved("log_events")),
     Verdict.INCONCLUSIVE, "it starts after the window start"),
    ("signal.cursor-full-resync", "gradual",
     both(lambda f: f.one("cursor_stats", as_of_ms=NOW_MS - 3 * DAY,
                          last_advanced_at_ms=NOW_MS - 3 * DAY),
          lambda f: f.unserved("log_events")),
     Verdict.INCONCLUSIVE, "it ends 3d before now"),
    # HoldDown recovery: the history and the state must reach now
    ("signal.hold-down-not-recovered", "canary", status(as_of_ms=NOW_MS - 3 * DAY),
     Verdict.INCONCLUSIVE, "supervisor state Ready as of 2026-11-23T12:00Z, 3d before now"),
    # without a supervisor status, its log lines reaching now show the state; without both,
    # the codex_appserver proxy
    ("signal.hold-down-not-recovered", "canary",
     lambda f: f.unserved("supervisor_status", "supervisor_events"), Verdict.PASS, ""),
    ("signal.hold-down-not-recovered", "canary",
     both(lambda f: f.unserved("supervisor_status", "log_events"),
          calls("v5", "list_source_health", [["codex_appserver", {"status": "degraded"}]])),
     Verdict.INCONCLUSIVE, "state now INCONCLUSIVE: v5 codex_appserver degraded"),
    ("signal.hold-down-not-recovered", "canary",
     lambda f: f.unserved("supervisor_status", "log_events"), Verdict.PASS, ""),
    ("signal.hold-down-not-recovered", "rollback",
     both(coverage("supervisor_events", event(NOW_MS - 20 * HOUR, "hold_down"),
                   event(NOW_MS - 20 * HOUR + 6 * MIN, "success"),
                   start_ms=NOW_MS - 30 * DAY, end_ms=NOW_MS - 19 * HOUR),
          lambda f: f.unserved("log_events")),
     Verdict.INCONCLUSIVE, "but the history ends 2026-11-25T17:00Z, 19h before now"),
    # either: a configured source that answered garbage caps the other's PASS
    ("alpha.monitor.no-hold-down", "alpha", lambda f: f.malformed("supervisor_events"),
     Verdict.INCONCLUSIVE, "supervisor events UNOBSERVABLE: configured but unusable"),
    ("alpha.monitor.no-hold-down", "alpha",
     lambda f: f.malformed("supervisor_events").unserved("log_events"),
     Verdict.UNOBSERVABLE, "configured but unusable: "),
    ("alpha.monitor.no-hold-down", "alpha", lambda f: f.unserved("supervisor_events"),
     Verdict.PASS, ""),  # not served at all: the log alone proves it
    ("signal.cursor-full-resync", "rollback", lambda f: f.malformed("cursor_stats"),
     Verdict.INCONCLUSIVE, "cursor stats UNOBSERVABLE: configured but unusable"),
    # empty and flat projections prove nothing
    ("alpha.parity.sessions", "alpha",
     both(calls("v4", "list_sessions", []), calls("v5", "list_sessions", [])),
     Verdict.INCONCLUSIVE, "0 active agent sessions on v4 and 0 on v5, nothing to compare"),
    ("alpha.projection.version-advancing", "alpha", calls("v5", "state_changed", IDLE_LOG),
     Verdict.INCONCLUSIVE, "flat at 120 and no change in the last 24h: not shown advancing"),
    ("alpha.projection.version-advancing", "alpha",
     both(calls("v5", "state_changed", IDLE_LOG),
          lambda f: f.second.__setitem__(("v5", "summary_changed"), {"version": 121})),
     Verdict.PASS, ""),
    ("alpha.projection.version-advancing", "alpha",
     lambda f: f.second.__setitem__(("v5", "summary_changed"), {"version": 119}),
     Verdict.FAIL, "went backwards: 120 -> 119"),
    ("alpha.projection.version-advancing", "alpha",
     calls("v5", "daemon.info", {"pid": 4021, "version": "0.1.0"}),
     Verdict.UNOBSERVABLE, "daemon.info: no nonce"),
    ("alpha.projection.version-advancing", "alpha",
     lambda f: setattr(f, "restarted_mid_run", True), Verdict.FAIL,
     f"v5 ({ENDPOINTS['v5']}) restarted during the observation"),
    # an empty v4 is evidence only once it has ticked
    *[
        (gate_id, "cutover", calls("v4", "latency_status", NOT_STARTED), Verdict.INCONCLUSIVE,
         "readiness INCONCLUSIVE: v4 not ready: latency_status not_started")
        for gate_id in ("cutover.migrate.v4-sessions-restarted",
                        "cutover.verify.zero-v4-sessions", "cutover.exit.zero-v4-sessions")
    ],
    ("gradual.v4.serves-its-sessions", "gradual", lambda f: f.unserved("runtime_selector"),
     Verdict.UNOBSERVABLE, "method ops.runtime_selector not served"),
    ("gradual.v4.serves-its-sessions", "gradual", changed_at(None), Verdict.INCONCLUSIVE,
     "gradual start unknown"),
    ("gradual.v4.serves-its-sessions", "gradual", calls("v4", "latency_status", NOT_STARTED),
     Verdict.INCONCLUSIVE, "v4 not ready"),
    ("gradual.v4.rollback-target", "gradual", calls("v4", "latency_status", NOT_STARTED),
     Verdict.INCONCLUSIVE, "v4 not ready"),
    # a decayed deterministic title: the change log still binds the pane to its agent session
    ("alpha.exit.projection-matches", "alpha", decayed_title_session_differs, Verdict.FAIL,
     "agent session 7f3c2a10-claude-alpha: activity_state v4='Running' v5='Error'"),
    # a supervisor status nobody rewrote for a day shows no current state
    ("alpha.supervisor.ready", "alpha", status(as_of_ms=NOW_MS - DAY), Verdict.INCONCLUSIVE,
     "supervisor Ready as of 2026-11-25T12:00Z, 24h before now"),
    # jitter "applied by runtime" and shutdown snapshots "enabled" need positive evidence
    ("contract.jitter", "canary",
     both(status(jitter_applied=None), lambda f: f.records("supervisor_events", days=10)),
     Verdict.INCONCLUSIVE, "application by the runtime is not observable"),
    ("prereq.snapshot-infrastructure", "alpha", snapshots(periodic(MIN)), Verdict.INCONCLUSIVE,
     "no Shutdown snapshot among 1 retained"),
    # sources: always-healthy kinds and an empty registry prove nothing; duplicates are garbage
    ("rollback.v4.sources-active", "rollback",
     calls("v4", "list_source_health", [["poller", {"status": "down"}],
                                        ["poller", {"status": "healthy"}],
                                        ["claude_hooks", {"status": "healthy"}]]),
     Verdict.UNOBSERVABLE, "source poller is listed twice (down, then healthy)"),
    # a daemon that died during the observation
    ("canary.duration.active-48h", "canary",
     lambda f: f.failed_second.__setitem__(("v5", "daemon.info"), DIED),
     Verdict.UNOBSERVABLE, "closing daemon.info, read at the end of the observation, failed"),
    ("cutover.exit.v5-only-stable-7d", "cutover",
     lambda f: f.failed_second.__setitem__(("v5", "daemon.info"), DIED),
     Verdict.UNOBSERVABLE, "closing daemon.info"),
    # violations stamped after the observation started, inside the history
    ("canary.exit.no-degraded-alerts", "canary",
     coverage("alert_entries", alert(7, Severity.DEGRADED, NOW_MS + 20_000, None),
              start_ms=NOW_MS - 30 * DAY, end_ms=NOW_MS + 30_000),
     Verdict.FAIL, "1 alerts at or above Degraded in the last 48h: alert-7 Degraded"),
    ("cutover.checklist.no-unresolved-escalate", "cutover",
     coverage("alert_entries", alert(7, Severity.ESCALATE, NOW_MS + 20_000, None),
              start_ms=NOW_MS - 30 * DAY, end_ms=NOW_MS + 30_000),
     Verdict.FAIL, "1 Escalate alerts left unresolved"),
    # v5 reports the release (the build evidence's version), newer than v4's
    ("prereq.v5-deployed", "alpha",
     lambda f: f.calls["v5"]["daemon.info"].__setitem__("version", "0.0.4"), Verdict.FAIL,
     "v5 daemon.info reports 0.0.4, not the release 0.1.0 ([release] v5_version unset"),
    ("prereq.v5-deployed", "alpha",
     both(lambda f: f.calls["v5"]["daemon.info"].__setitem__("version", "0.0.4"),
          lambda f: f.one("build_result", version="0.0.4")), Verdict.FAIL,
     "v5 daemon.info reports 0.0.4, the same release as v4's 0.0.4: a downgrade"),
    ("prereq.v5-deployed", "alpha", lambda f: f.one("build_result", version=None),
     Verdict.INCONCLUSIVE, "there is no release to compare it with"),
    ("prereq.v5-deployed", "alpha", lambda f: f.unserved("build_result"),
     Verdict.UNOBSERVABLE, "no provider configured for 'build' evidence"),
    ("prereq.build-passes", "alpha",
     lambda f: f.one("build_result", started_at_ms=NOW_MS - 11 * DAY),
     Verdict.FAIL, "the build ran at 2026-11-15T12:00Z, 24h before v5 was deployed"),
    # migration counts: both read, v5 serving
    ("gradual.migration-rate", "gradual", changed_at(None), Verdict.INCONCLUSIVE,
     "gradual start unknown"),
    # a backup stamped in the future (beyond the clock skew: the evidence proves nothing), or
    # of an empty projection while the fleet is live
    ("prereq.backup-taken", "alpha",
     snapshots(periodic(MIN), SnapshotMetadata("snap-8", NOW_MS + HOUR, 100, 3, 4, "Manual", 9)),
     Verdict.UNOBSERVABLE, "created_at_ms is dated 2026-11-26T13:00:00+00:00, after the"),
    ("prereq.backup-taken", "alpha",
     snapshots(periodic(MIN), SnapshotMetadata("snap-8", NOW_MS - 20 * DAY, 0, 0, 0, "Manual", 9)),
     Verdict.FAIL, "version 0 (empty) while the live projection is at version 120"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("gate_id", "phase", "change", "verdict", "fragment"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_gate_verdict_and_reason(
    gate_id: str, phase: str, change: Change, verdict: Verdict, fragment: str
) -> None:
    assert phase in CATALOG.gates[gate_id].phases
    fleet = Fleet.healthy(phase)
    change(fleet)
    got, message, _ = judge(gate_id, fleet)
    assert (got, fragment in message) == (verdict, True), message


def test_every_gate_has_a_failure_case() -> None:
    failing = {c[0] for c in (*CASES, *CUSTODY_CASES) if c[3] is not Verdict.PASS}
    mine = {g for g in CATALOG.gates if not g.startswith(("alpha.parity", "alpha.exit.proj"))}
    existing = {
        "prereq.v5-deployed",
        "alpha.deploy.distinct-sockets",
        "alpha.projection.version-advancing",
    }
    # RB-4 is optional: its gate reports what it saw and never blocks
    existing.add("rollback.procedure.v5-stop-reported")
    assert mine - existing - failing == set()


STOCK_KINDS = ("snapshots", "supervisor_status", "supervisor_events", "alert_entries")


@pytest.mark.parametrize("phase", PHASES)
def test_stock_v5_makes_snapshot_supervisor_and_ledger_gates_unobservable(phase: str) -> None:
    """Only today's eleven methods, no file or HTTP provider: never PASS, and the first line
    names a missing method."""
    fleet = Fleet.healthy(phase).unserved(*ACCESSORS)
    judged = 0
    for spec in CATALOG.gates_for(phase):
        needed = {n.method for n in spec.needs if n.daemon == "evidence"}
        if not needed & set(STOCK_KINDS):
            continue
        verdict, message, _ = judge(spec.id, fleet)
        first = message.splitlines()[0]
        assert verdict is Verdict.UNOBSERVABLE, (spec.id, message)
        named = [OPS_METHOD[a] for a in needed if a in OPS_METHOD]
        assert any(f"method {m} not served" in first for m in named), (spec.id, first)
        judged += 1
    assert judged >= 3


# --- each provider kind: missing, unreachable or malformed makes its gates UNOBSERVABLE -------

#: Where else a gate may find the same evidence (supervisor events and the daemon log prove
#: hold-downs and restarts; the log proves full resyncs): broken too, so the kind decides.
ALTERNATIVES = {
    "supervisor_events": ("log_events",),
    "log_events": ("supervisor_events", "cursor_stats"),
    "cursor_stats": ("log_events",),
}
MALFORMED = {
    "snapshots": {"snap-1.json": '{"snapshot_id": "snap-1"}'},
    "supervisor": {"status.json": "[1, 2]", "events.jsonl": '{"at_ms": "soon"}\n'},
    "alerts": '{"alert_id": "alert-1", "severity": "Critical"}\n',
    "cursor": '{"fetched": -1}',
    "binding": "not json",
    "selector": "[runtime]\ndefault_daemon = 'v6'\n",
    "daemon_log": "this is not a daemon log line\n",
    "build": "<testsuites><testcase",
    "archive": '{"binary": "../v4", "sha256": "x"}',
}
MODES = ("missing", "unreachable", "malformed", "dead-socket")


def bad_endpoint(kind: str, mode: str, folder: Path) -> str:
    """A URI for ``kind`` that fails in ``mode``."""
    directory_kind = kind in ("snapshots", "supervisor")
    if mode == "missing":
        return (folder / "absent" / kind).as_uri()
    if mode == "unreachable":  # the wrong kind of file system object is there
        target = folder / kind
        if directory_kind:
            target.write_text("a file where a directory belongs")
        else:
            target.mkdir()
        return target.as_uri()
    if mode == "malformed":
        content = MALFORMED[kind]
        if isinstance(content, dict):
            (folder / kind).mkdir()
            for name, text in content.items():
                (folder / kind / name).write_text(text)
        else:
            (folder / kind).write_text(content)
        return (folder / kind).as_uri()
    return f"unix://{folder}/dead/agtmuxd.sock"  # nobody serves it


@pytest.mark.parametrize(
    ("accessor", "mode"),
    [
        (accessor, mode)
        for accessor, (kind, _) in sorted(ACCESSORS.items())
        for mode in MODES
        if mode != "dead-socket" or kind in RPC_EVIDENCE_KINDS
    ],
)
def test_broken_provider_makes_its_gates_unobservable(
    accessor: str, mode: str, tmp_path: Path
) -> None:
    kind = ACCESSORS[accessor][0]
    target = bad_endpoint(kind, mode, tmp_path)
    timeouts = Timeouts(connect=0.5, read=0.5)
    reading = read_evidence(
        accessor,
        ACCESSORS[accessor],
        target,
        lambda kind, uri: make_provider(kind, uri, timeouts=timeouts),
        NOW - timedelta(days=15),
        "canarygate.toml",
        encode,
    )
    assert not reading.ok
    judged = 0
    for phase in PHASES:
        fleet = Fleet.healthy(phase).unserved(*ALTERNATIVES.get(accessor, ()))
        fleet.readings[accessor] = reading
        for spec in CATALOG.gates_for(phase):
            if not any(n.daemon == "evidence" and n.method == accessor for n in spec.needs):
                continue
            verdict, message, _ = judge(spec.id, fleet)
            # a configured file that is not there is broken, never merely absent
            assert verdict is Verdict.UNOBSERVABLE, (phase, spec.id, message)
            assert target in message, (phase, spec.id, message)
            judged += 1
    assert judged, f"no gate reads {accessor}"


# --- gate_support.either: a broken source caps what another proves -----------------------


def part(verdict: Verdict, message: str = "x") -> Any:
    from pytest_canarygate.agtmux.judgement import Judgement

    return Judgement(verdict=verdict, message=message)


def test_either_rules() -> None:
    from pytest_canarygate.agtmux.gate_support import Broken
    from pytest_canarygate.agtmux.gate_support import either

    broken = Broken(verdict=Verdict.UNOBSERVABLE, message="line 8: bad", source="a")
    absent = part(Verdict.UNOBSERVABLE, "method not served")
    passed, short, failed = part(Verdict.PASS), part(Verdict.INCONCLUSIVE), part(Verdict.FAIL)
    assert either("h", {"a": absent, "b": passed}).verdict is Verdict.PASS
    assert either("h", {"a": broken, "b": failed}).verdict is Verdict.FAIL
    capped = either("h", {"a": broken, "b": passed})
    assert capped.verdict is Verdict.INCONCLUSIVE
    first = capped.message.splitlines()[0]
    assert first == "h: a UNOBSERVABLE: configured but unusable: line 8: bad (+1 more)"
    assert "b PASS: not enough while a is unusable: x" in capped.message
    assert either("h", {"a": broken, "b": short}).verdict is Verdict.INCONCLUSIVE
    assert either("h", {"a": broken, "b": absent}).verdict is Verdict.UNOBSERVABLE
    assert either("h", {"a": absent, "b": short}).verdict is Verdict.INCONCLUSIVE


def test_expecting_only_always_healthy_sources_with_no_registry_proves_nothing() -> None:
    """poller and claude_hooks always say healthy (daemon facts 9.1): a config that expects
    only those, with an empty source registry, has no positive evidence of source health."""
    fleet = Fleet.healthy("canary")
    calls("v5", "list_source_registry", [])(fleet)
    narrow = dataclasses.replace(
        AgtmuxSettings(), expected_healthy_sources=("poller", "claude_hooks")
    )
    got, message, _ = judge("canary.monitor.source-health", fleet, narrow)
    assert got is Verdict.INCONCLUSIVE
    assert "only always-healthy sources are expected (poller, claude_hooks)" in message
    default, _, _ = judge("canary.monitor.source-health", fleet)  # all four kinds expected
    assert default is Verdict.PASS


# --- chain of custody gates ---------------------------------------------------------------


def _custody(phase: str, **changes: Any) -> Custody:
    custody = healthy_custody(phase)
    for name, value in changes.items():
        setattr(custody, name, value)
    return custody


def _report(digest: str, session: str = "session-alpha") -> dict[str, Any]:
    return {
        **healthy_custody("canary").attestations[0],
        "file": f"x-report-{session}-carol.dsse.json",
        "kind": "report",
        "subject": session,
        "session": session,
        "by": "carol",
        "text": "pane list differs",
        "digest": digest,
    }


ROLLBACK = {
    "phase": "rollback",
    "bundle": "20260301T000000.000Z-fail",
    "digest": "r" * 64,
    "signer_keyid": "k" * 64,
    "finished_at": "2026-03-01T00:00:00.000Z",
}


def expansion_soak(*runs: tuple[int, tuple[str, ...], str]) -> dict[str, Any]:
    """A canary soak whose archived runs recorded canary sessions: (hours ago, sessions, the
    run's monitor verdict)."""
    soak = healthy_soak(timedelta(hours=48))
    soak["runs"] = [
        {
            "bundle": f"run-{n}",
            "digest": "b" * 64,
            "started_at": (NOW - timedelta(hours=ago)).isoformat(),
            "finished_at": (NOW - timedelta(hours=ago) + timedelta(minutes=1)).isoformat(),
            "monitor": {"m": verdict},
            "facts": {"canary_sessions": list(sessions)},
        }
        for n, (ago, sessions, verdict) in enumerate(runs)
    ]
    return soak


ALPHA, BETA = "session-alpha", "session-beta"

CUSTODY_CASES = [
        ("canary.pre.alpha-signed", "canary", _custody("canary"), Verdict.PASS, ""),
        ("canary.pre.alpha-signed", "canary",
         _custody("canary", relies_on=[], problems=["no signed alpha bundle to rely on: x"]),
         Verdict.INCONCLUSIVE, "no signed alpha bundle to rely on: x"),
        ("cutover.checklist.canary-signed", "cutover",
         _custody("cutover", relies_on=healthy_custody("cutover").relies_on[::2],
                  missing_earlier=["no signed canary bundle to rely on (cutover requires one)"]),
         Verdict.INCONCLUSIVE, "no signed canary bundle"),
        ("cutover.checklist.gradual-signed", "cutover", _custody("cutover"), Verdict.PASS, ""),
        ("cutover.checklist.gradual-signed", "cutover",
         _custody("cutover", relies_on=[], problems=["no signed gradual bundle to rely on: x"]),
         Verdict.INCONCLUSIVE, "no signed gradual bundle to rely on: x"),
        ("cutover.checklist.alpha-signed", "cutover",
         _custody("cutover", relies_on=healthy_custody("cutover").relies_on[:2],
                  missing_earlier=["no signed alpha bundle to rely on (cutover requires one)"]),
         Verdict.INCONCLUSIVE, "no signed alpha bundle"),
        ("canary.exit.users-confirm", "canary",
         _custody("canary", attestations=healthy_custody("canary").attestations[:1]),
         Verdict.INCONCLUSIVE, "1 of 2 canary session(s) have no signed confirmation (P2-X3): "
         "session-beta"),
        ("cutover.checklist.on-call-briefed", "cutover",
         _custody("cutover", attestations=[]), Verdict.INCONCLUSIVE,
         "no valid signed sign-off of CG-7"),
        ("signal.user-reported-inconsistency", "gradual", _custody("gradual"), Verdict.PASS, ""),
        ("signal.user-reported-inconsistency", "gradual",
         _custody("gradual", attestations=[_report("e" * 64)]), Verdict.FAIL,
         "1 unresolved user report(s) of data inconsistency, first by carol on session "
         "session-alpha"),
        ("signal.user-reported-inconsistency", "gradual",
         _custody("gradual", attestations=[
             _report("e" * 64),
             {**_report("f" * 64), "kind": "resolution", "subject": "e" * 64,
              "refers": ["e" * 64], "by": "dave"},
         ]), Verdict.PASS, ""),
        ("canary.pre.rca-after-rollback", "canary", _custody("canary", rollback=ROLLBACK),
         Verdict.FAIL, "the migration was rolled back (20260301T000000.000Z-fail)"),
        ("canary.pre.rca-after-rollback", "canary",
         _custody("canary", rollback=ROLLBACK, attestations=[
             {**healthy_custody("canary").attestations[2], "subject": "PR-3",
              "refers": [ROLLBACK["digest"]]},
         ]), Verdict.PASS, ""),
        # an RCA that names another bundle is no RCA of this rollback
        ("canary.pre.rca-after-rollback", "canary",
         _custody("canary", rollback=ROLLBACK, attestations=[
             {**healthy_custody("canary").attestations[2], "subject": "PR-3",
              "refers": ["0" * 64]},
         ]), Verdict.FAIL, "no signed root cause analysis (PR-3) names that bundle"),
        ("canary.pre.rollback-rehearsed", "canary",
         _custody("canary", rehearsal=None, rehearsal_problems=["no signed rollback rehearsal "
                  "to rely on"]), Verdict.INCONCLUSIVE, "no signed rollback rehearsal"),
        ("cutover.checklist.rollback-rehearsed", "cutover",
         _custody("cutover", rehearsal=None), Verdict.INCONCLUSIVE,
         "no rollback rehearsal was looked for"),
        ("rollback.post.incident-evidence", "rollback", _custody("rollback", timeline=[]),
         Verdict.INCONCLUSIVE, "the incident timeline is empty"),
        ("rollback.post.incident-evidence", "rollback", _custody("rollback"), Verdict.PASS, ""),
        # time in phase from the archive
        ("canary.duration.archive-48h", "canary", _custody("canary"), Verdict.PASS, ""),
        ("canary.duration.archive-48h", "canary",
         _custody("canary", soak=healthy_soak(timedelta(hours=30))), Verdict.INCONCLUSIVE,
         "canary duration: the archive covers 30h of the 48h"),
        ("canary.exit.archive-stable-48h", "canary",
         _custody("canary", soak=healthy_soak(timedelta(days=3), every=timedelta(hours=8))),
         Verdict.INCONCLUSIVE, "no archived monitor run between"),
        ("gradual.exit.archive-7d", "gradual",
         _custody("gradual", soak=healthy_soak(timedelta(days=8), monitor="FAIL")),
         Verdict.FAIL, "the archived run run-0 of this phase has m FAIL"),
        ("cutover.exit.archive-7d", "cutover",
         _custody("cutover", soak={"phase_start": None}), Verdict.INCONCLUSIVE,
         "the phase has not started in the archive"),
        ("cutover.exit.archive-7d", "cutover", _custody("cutover"), Verdict.PASS, ""),
        # a bundle of the phase that does not verify may hide a failing run
        ("gradual.exit.archive-7d", "gradual",
         _custody("gradual", soak={**healthy_soak(timedelta(days=8)),
                                   "unverified": ["20261125T000000.000Z-fail"]}),
         Verdict.INCONCLUSIVE, "1 bundle(s) of this phase since it started do not verify"),
        # runs that judged only part of the monitor gates fill no gap
        ("gradual.exit.archive-7d", "gradual",
         _custody("gradual", soak={**healthy_soak(timedelta(days=8)), "runs": [
             {**run, "counts": n % 3 == 0}
             for n, run in enumerate(healthy_soak(timedelta(days=8))["runs"])
         ]}),
         Verdict.INCONCLUSIVE, "judged only part of the monitor gates"),
        # a confirmation signed before the canary started is not one of this canary
        ("canary.exit.users-confirm", "canary",
         _custody("canary", soak={**healthy_soak(timedelta(hours=48)),
                                  "phase_start": "2026-11-26T11:30:00.000Z"}),
         Verdict.INCONCLUSIVE, "signed before the canary started at 2026-11-26T11:30"),
        # "Restore dry-run evidence retained": in the bundles of alpha and canary
        ("cutover.checklist.restore-evidence-retained", "cutover",
         _custody("cutover", relies_on=[
             {**link, "gates": {**link["gates"], "canary.pre.restore-dry-run": "WAIVED"}}
             for link in healthy_custody("cutover").relies_on
         ]), Verdict.INCONCLUSIVE, "canary.pre.restore-dry-run WAIVED"),
        ("cutover.checklist.restore-evidence-retained", "cutover",
         _custody("cutover", relies_on=healthy_custody("cutover").relies_on[:1],
                  missing_earlier=["no signed alpha bundle to rely on (cutover requires one)"]),
         Verdict.INCONCLUSIVE, "alpha: no signed alpha bundle"),
        # "Add 2-3 more sessions per day, continue monitoring at each expansion"
        ("canary.expand.pace", "canary", _custody("canary"), Verdict.PASS, ""),
        ("canary.expand.pace", "canary",
         _custody("canary", soak=expansion_soak((30, (ALPHA,), "PASS"))), Verdict.PASS, ""),
        ("canary.expand.pace", "canary",
         _custody("canary", soak=expansion_soak((30, ("x",), "PASS"),
                                                (20, ("x", "y1", "y2", "y3", "y4"), "PASS"),
                                                (10, (ALPHA, BETA), "PASS"))),
         Verdict.FAIL, "4 canary sessions added within the 24h up to"),
        ("canary.expand.pace", "canary",
         _custody("canary", soak=expansion_soak((40, (), "PASS"), (30, (ALPHA,), "FAIL"))),
         Verdict.FAIL, "with no passing monitor run since it grew at"),
        ("canary.expand.pace", "canary", _custody("canary", soak={"phase_start": None}),
         Verdict.INCONCLUSIVE, "the canary has not started in the archive"),
        # "Backup taken before migration start": before it, and not too long before it
        ("prereq.backup-taken", "alpha",
         _custody("alpha", soak={"migration_start": (NOW - timedelta(days=10)).isoformat()}),
         Verdict.FAIL, "no Manual snapshot taken before the migration started at "
         "2026-11-16T12:00:00+00:00"),
        ("prereq.backup-taken", "alpha",
         _custody("alpha", soak={"migration_start": (NOW - timedelta(hours=1)).isoformat()}),
         Verdict.FAIL, "and at most 7d before it: the newest backup is snap-1"),
        ("prereq.backup-taken", "alpha", _custody("alpha", soak={}), Verdict.FAIL,
         "before the migration started at this run (the migration's first)"),
]  # fmt: skip


@pytest.mark.parametrize(("gate_id", "phase", "custody", "verdict", "fragment"), CUSTODY_CASES)
def test_custody_gate(
    gate_id: str, phase: str, custody: Custody, verdict: Verdict, fragment: str
) -> None:
    fleet = Fleet.healthy(phase)
    fleet.custody = custody
    got, message, _ = judge(gate_id, fleet)
    assert (got, fragment in message) == (verdict, True), message


@pytest.mark.parametrize(
    ("canary_for", "verdict"),
    [(timedelta(hours=48), Verdict.PASS), (timedelta(days=5), Verdict.FAIL)],
)
def test_no_degraded_alert_covers_the_whole_canary(canary_for: timedelta, verdict: Verdict) -> None:
    """A Degraded alert four days ago, resolved: outside the runbook's 48h, inside a canary the
    archive shows running for five days."""
    four_days_ago = NOW_MS - 4 * DAY
    fleet = Fleet.healthy("canary")
    fleet.add("alert_entries", alert(9, Severity.DEGRADED, four_days_ago, four_days_ago + 60_000))
    fleet.custody = _custody("canary", soak=healthy_soak(canary_for))
    got, message, _ = judge("canary.exit.no-degraded-alerts", fleet)
    assert got is verdict, message
    if verdict is Verdict.FAIL:
        assert "alert-9 Degraded" in message
