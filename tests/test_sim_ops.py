"""The simulated v5 deployment's operations evidence, read back through the real providers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable
from collections.abc import Iterator
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest
from sim_helpers import http_get
from sim_helpers import pid_alive
from sim_helpers import result
from sim_helpers import rpc
from sim_helpers import short_dir

from pytest_canarygate.agtmux.providers import INTERFACES
from pytest_canarygate.agtmux.providers import make_provider
from pytest_canarygate.agtmux.providers.ops import OPS_METHODS
from pytest_canarygate.agtmux.records import ms_to_datetime
from pytest_canarygate.agtmux.sim import SimFleet
from pytest_canarygate.agtmux.sim import load_scenario
from pytest_canarygate.agtmux.sim import start_fleet
from pytest_canarygate.agtmux.sim.clock import ANCHOR_ENV
from pytest_canarygate.agtmux.sim.clock import NS_PER_MS
from pytest_canarygate.agtmux.sim.clock import format_tick
from pytest_canarygate.agtmux.sim.ops_answers import operations_model
from pytest_canarygate.agtmux.sim.ops_scenario import STARTUP_ORDER
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.errors import NotServed

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
KINDS = {
    "snapshots": "unix",
    "supervisor": "unix",
    "cursor": "unix",
    "alerts": "http",
    "binding": "file",
    "selector": "file",
    "daemon_log": "file",
    "build": "file",
    "archive": "file",
}
OPS_KINDS = ("snapshots", "supervisor", "alerts", "cursor", "binding", "selector")
CONTRACT_POLICY = {
    "initial_backoff_ms": 1000,
    "multiplier": 2.0,
    "max_backoff_ms": 30000,
    "jitter_pct": 0.2,
    "failure_budget": 5,
    "budget_window_ms": 600000,
    "holddown_ms": 300000,
}
FILES = {  # file:// evidence of a full deployment, relative to <socket_dir>/evidence
    "snapshots": "snapshots",
    "supervisor": "supervisor",
    "alerts": "alerts.jsonl",
    "cursor": "cursor.json",
    "binding": "binding.json",
    "selector": "runtime.toml",
    "daemon_log": "agtmux-v5.log",
    "build": "junit.xml",
    "archive": "v4-archive/manifest.json",
}


@pytest.fixture(scope="module")
def canary() -> Iterator[SimFleet]:
    with start_fleet("healthy", phase="canary") as fleet:
        yield fleet


def _now_ms() -> int:
    return time.time_ns() // NS_PER_MS


def _before_anchor(fleet: SimFleet, when: datetime) -> timedelta:
    """How long before the fleet's anchor (its "now") ``when`` is."""
    return ms_to_datetime(fleet.anchor_ms) - when


def _logged_at(fleet: SimFleet, when: datetime, ago_ms: int) -> None:
    """``when``, a log line's time, is ``ago_ms`` before the anchor: log timestamps carry made-up
    microseconds, less than a millisecond after that."""
    __tracebackhide__ = True
    assert (
        timedelta(0) <= when - ms_to_datetime(fleet.anchor_ms - ago_ms) < timedelta(milliseconds=1)
    ), (when, ago_ms)


def _live_version(fleet: SimFleet) -> int:
    version: int = result(fleet.socket_path("v5"), "summary_changed")["version"]
    return version


def _file_uri(fleet: SimFleet, kind: str) -> str:
    return (fleet.socket_dir / "evidence" / FILES[kind]).as_uri()


def _covers_30_days(evidence: Any, fleet: SimFleet) -> None:
    """The 30 days of history before the anchor, up to when it was read (a file: the anchor)."""
    __tracebackhide__ = True
    assert evidence.covers_from == ms_to_datetime(fleet.anchor_ms - 30 * DAY_MS)
    assert evidence.covers_to is not None
    assert ms_to_datetime(fleet.anchor_ms) <= evidence.covers_to <= ms_to_datetime(_now_ms())


# --- the evidence map ----------------------------------------------------------------------------


def test_evidence_map_mixes_every_transport(canary: SimFleet) -> None:
    assert canary.ops_url is not None
    assert canary.ops_url.startswith("http://127.0.0.1:")
    assert canary.ops_url.endswith("/ops")
    expected = {
        "unix": canary.endpoints["v5"],
        "http": canary.ops_url,
    }
    assert canary.evidence == {
        kind: expected.get(transport) or _file_uri(canary, kind)
        for kind, transport in KINDS.items()
    }
    assert canary.evidence["archive"].endswith("/evidence/v4-archive/manifest.json")
    assert canary.ops_pid is not None
    assert pid_alive(canary.ops_pid)
    assert canary.anchor_ms <= _now_ms()


def test_snapshots(canary: SimFleet) -> None:
    evidence = make_provider("snapshots", canary.evidence["snapshots"]).snapshots()
    assert [(s.snapshot_id, s.trigger) for s in evidence.records] == [
        ("snap-1", "Shutdown"),
        ("snap-2", "Manual"),
        ("snap-3", "Periodic"),
    ]
    newest = evidence.records[-1]
    assert newest.projection_version == _live_version(canary)
    assert newest.created_at_ms == canary.anchor_ms - 2 * 60_000
    assert evidence.records[1].created_at_ms == canary.anchor_ms - 2 * DAY_MS
    assert all(s.projection_version <= newest.projection_version for s in evidence.records)
    assert {(s.session_count, s.pane_count) for s in evidence.records} == {(6, 6)}


def test_supervisor_status(canary: SimFleet) -> None:
    evidence = make_provider("supervisor", canary.evidence["supervisor"]).supervisor_status()
    status = evidence.one()
    assert status.state.name == "Ready"
    assert dataclasses.asdict(status.policy) == CONTRACT_POLICY
    assert status.startup_order == ("Sources", "Gateway", "Daemon", "Ui")
    assert {(g.stage, g.all_ready, g.unready) for g in status.dependency_gates} == {
        (stage, True, ()) for stage in status.startup_order
    }
    assert status.restart_count == 13  # every 56h over the 30-day history
    _covers_30_days(evidence, canary)


def test_supervisor_restarts_are_steady_over_the_history(canary: SimFleet) -> None:
    evidence = make_provider("supervisor", canary.evidence["supervisor"]).supervisor_events()
    _covers_30_days(evidence, canary)
    now = ms_to_datetime(canary.anchor_ms)
    restarts = [e.at for e in evidence.records if e.kind == "restart"]
    recent = sum(1 for at in restarts if now - timedelta(days=7) <= at <= now)
    before = sum(1 for at in restarts if now - timedelta(days=14) <= at < now - timedelta(days=7))
    assert (before, recent) == (3, 3)
    # the 10 days since the selector's switch and the 10 days before it: 5 and 4
    switch = now - timedelta(days=10)
    phase = sum(1 for at in restarts if switch <= at <= now)
    baseline = sum(1 for at in restarts if switch - timedelta(days=10) <= at < switch)
    assert (baseline, phase) == (4, 5)
    assert {e.kind for e in evidence.records} == {
        "failure",
        "restart",
        "success",
        "stage_started",
        "stage_ready",
    }
    since = now - timedelta(days=3)
    later = make_provider("supervisor", canary.evidence["supervisor"]).supervisor_events(since)
    # the stage events of v5's start (10 days ago) come whatever since says
    startup = tuple(e for e in evidence.records if e.stage is not None)
    assert [e.stage for e in startup if e.kind == "stage_started"] == list(STARTUP_ORDER)
    assert later.records == startup + tuple(e for e in evidence.records if e.at >= since)


def test_alert_ledger_over_http(canary: SimFleet) -> None:
    provider = make_provider("alerts", canary.evidence["alerts"])
    with provider:
        evidence = provider.alert_entries()
        recent = provider.alert_entries(ms_to_datetime(canary.anchor_ms - 7 * DAY_MS))
    assert evidence.source.detail.startswith(f"GET {canary.ops_url}/alert_ledger")
    _covers_30_days(evidence, canary)
    assert [(e.alert_id, e.severity.label) for e in evidence.records] == [
        ("alert-1", "Info"),
        ("alert-2", "Warn"),
        ("alert-3", "Info"),
    ]
    assert all(e.resolved_at is not None for e in evidence.records)
    assert all(_before_anchor(canary, e.created_at) > timedelta(days=10) for e in evidence.records)
    assert recent.records == ()


def _advanced_while_read(stats: Any, read_from_ms: int) -> None:
    """The cursor advances once a second up to the moment it is read."""
    __tracebackhide__ = True
    assert stats.last_advanced_at_ms is not None
    assert read_from_ms - 1000 < stats.last_advanced_at_ms <= stats.as_of_ms <= _now_ms()


def test_cursor_stats(canary: SimFleet) -> None:
    read_from = _now_ms()
    evidence = make_provider("cursor", canary.evidence["cursor"]).cursor_stats()
    stats = evidence.one()
    assert (stats.invalid_streak, stats.max_invalid_streak) == (0, 0)
    assert (stats.retry_count, stats.full_resync_count) == (0, 0)
    assert stats.fetched == stats.committed > 0
    _advanced_while_read(stats, read_from)
    _covers_30_days(evidence, canary)


def test_binding_stats(canary: SimFleet) -> None:
    evidence = make_provider("binding", canary.evidence["binding"]).binding_stats()
    assert (evidence.one().cas_conflicts, evidence.one().last_conflict_at_ms) == (0, None)
    _covers_30_days(evidence, canary)


def test_selector_follows_canary(canary: SimFleet) -> None:
    selector = make_provider("selector", canary.evidence["selector"]).runtime_selector().one()
    assert (selector.default_daemon, selector.v5_enabled) == ("v4", True)
    assert selector.v5_canary_sessions == ("session-alpha", "session-beta")
    for name in ("v4", "v5"):
        sessions = {p["session_name"] for p in result(canary.socket_path(name), "list_panes")}
        assert set(selector.v5_canary_sessions) <= sessions


def test_daemon_log_is_real_format_spread_over_history(canary: SimFleet) -> None:
    uri = canary.evidence["daemon_log"]
    raw = Path(uri.removeprefix("file://")).read_text()
    assert raw.startswith("\x1b[2m")
    assert "\x1b[32m INFO\x1b[0m \x1b[2magtmux::poll_loop\x1b[0m\x1b[2m:\x1b[0m codex" in raw
    evidence = make_provider("daemon_log", uri).log_events()
    kinds = [e.kind for e in evidence.records]
    assert kinds.count("process_exited") == kinds.count("reconnected") == 13
    assert {e.level for e in evidence.records} == {"INFO"}
    assert evidence.covers_from is not None
    assert evidence.covers_to is not None
    start = ms_to_datetime(canary.anchor_ms - 30 * DAY_MS)
    assert timedelta(0) <= evidence.covers_from - start < timedelta(milliseconds=1)
    last_restart = ms_to_datetime(canary.anchor_ms - 2 * 60_000)  # reconnected 1.5 s later
    assert timedelta(0) < evidence.covers_to - last_restart < timedelta(seconds=2)
    restart = [e for e in evidence.records if e.message == "received SIGTERM, shutting down"]
    assert len(restart) == 1
    assert (
        timedelta(days=10) < _before_anchor(canary, restart[0].at) < timedelta(days=10, minutes=1)
    )


def test_build(canary: SimFleet) -> None:
    build = make_provider("build", canary.evidence["build"]).build_result().one()
    assert (build.tests, build.passed, build.failures, build.errors) == (700, 700, 0, 0)


def test_v4_binary_archive(canary: SimFleet) -> None:
    manifest_path = Path(canary.evidence["archive"].removeprefix("file://"))
    manifest = json.loads(manifest_path.read_text())
    binary = (manifest_path.parent / manifest["binary"]).read_bytes()
    assert manifest["sha256"] == hashlib.sha256(binary).hexdigest()
    assert manifest["retain_until_ms"] - manifest["archived_at_ms"] == 32 * DAY_MS
    assert manifest["archived_at_ms"] == canary.anchor_ms - DAY_MS
    assert manifest["version"] == "0.0.4"  # the v4 daemon's, unless the scenario says otherwise
    if "archive" in INTERFACES:  # the provider kind, where it exists
        provider: Any = make_provider("archive", canary.evidence["archive"])
        assert provider.archive_manifest().one().intact


@pytest.mark.parametrize("kind", OPS_KINDS)
def test_every_transport_serves_the_same(kind: str, canary: SimFleet) -> None:
    """The v5 socket, the HTTP server and the files agree (but on the time of the answer)."""
    assert canary.ops_url is not None
    read: Callable[[Any], Any] = {
        "snapshots": lambda p: p.snapshots(),
        "supervisor": lambda p: (p.supervisor_status(), p.supervisor_events()),
        "alerts": lambda p: p.alert_entries(),
        "cursor": lambda p: p.cursor_stats(),
        "binding": lambda p: p.binding_stats(),
        "selector": lambda p: p.runtime_selector(),
    }[kind]
    answers = []
    for uri in (canary.endpoints["v5"], canary.ops_url, _file_uri(canary, kind)):
        with make_provider(kind, uri) as provider:
            answers.append(_timeless(read(provider)))
    assert answers[0] == answers[1] == answers[2]


def _timeless(evidence: Any) -> Any:
    """The records without what depends on when they were read."""
    if isinstance(evidence, tuple):
        return tuple(_timeless(e) for e in evidence)
    moving = ("as_of_ms", "fetched", "committed", "last_advanced_at_ms")
    return tuple(
        dataclasses.replace(r, **{f: 0 for f in moving if hasattr(r, f)}) for r in evidence.records
    )


def test_nonce_says_when_each_daemon_started(canary: SimFleet) -> None:
    for name, days in (("v4", 60), ("v5", 10)):
        info = result(canary.socket_path(name), "daemon.info")
        pid, started_ns = info["nonce"].split("-")
        assert int(pid) == info["pid"] == canary.pids[name]
        started_ms = int(started_ns) // 1_000_000
        assert started_ms == canary.anchor_ms - days * DAY_MS


def test_v4_serves_no_operations_method(canary: SimFleet) -> None:
    for method in OPS_METHODS:
        error = rpc(canary.socket_path("v4"), method)["error"]
        assert error == {"code": -32601, "message": "method not found"}
    assert result(canary.socket_path("v5"), "ops.runtime_selector")["v5_enabled"] is True


@pytest.mark.parametrize(
    "path", ["/", "/ops", "/ops/", "/ops/nope", "/ops/list_panes", "/ops/alert_ledger/x", "/x"]
)
def test_http_unknown_names_are_404(path: str, canary: SimFleet) -> None:
    assert canary.ops_url is not None
    base = canary.ops_url.removesuffix("/ops")
    status, content_type, body = http_get(base + path)
    assert status == 404
    assert content_type == "application/json"
    assert "not served" in json.loads(body)["error"]


def test_http_answers_json_with_since(canary: SimFleet) -> None:
    assert canary.ops_url is not None
    since = canary.anchor_ms - 20 * DAY_MS
    status, content_type, body = http_get(f"{canary.ops_url}/alert_ledger?since_ms={since}")
    assert (status, content_type) == (200, "application/json")
    answer = json.loads(body)
    assert [e["alert_id"] for e in answer["entries"]] == ["alert-2", "alert-3"]
    assert answer["covers_from_ms"] == canary.anchor_ms - 30 * DAY_MS


# --- the simulator's clock -----------------------------------------------------------------------


def test_the_anchor_is_when_the_fleet_starts() -> None:
    before = _now_ms()
    with start_fleet("healthy", daemons=("v4",)) as fleet:
        after = _now_ms()
    assert before <= fleet.anchor_ms <= after


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_a_pinned_anchor_places_all_history_before_it(
    how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = _now_ms() - 3 * HOUR_MS - 1234  # not when the fleet starts: its history moves along
    if how == "argument":
        monkeypatch.setenv(ANCHOR_ENV, "0")  # the argument wins
        fleet = start_fleet("healthy", phase="canary", anchor_ms=pinned)
    else:
        monkeypatch.setenv(ANCHOR_ENV, str(pinned))
        fleet = start_fleet("healthy", phase="canary")
    with fleet:
        assert fleet.anchor_ms == pinned
        for name, days in (("v4", 60), ("v5", 10)):  # each daemon's uptime
            sock = fleet.socket_path(name)
            started_ns = (pinned - days * DAY_MS) * NS_PER_MS
            assert result(sock, "daemon.info")["nonce"] == f"{fleet.pids[name]}-{started_ns}"
            first = result(sock, "state_changed", {"since_version": 0})["changes"][0]
            assert first["timestamp"] == format_tick(started_ns)  # its first projection
        for uri in (fleet.endpoints["v5"], _file_uri(fleet, "snapshots")):
            newest = make_provider("snapshots", uri).snapshots().records[-1]
            assert newest.created_at_ms == pinned - 2 * MINUTE_MS
        status, _, body = http_get(f"{fleet.ops_url}/alert_ledger")
        assert status == 200
        assert json.loads(body)["covers_from_ms"] == pinned - 30 * DAY_MS


@pytest.mark.parametrize("value", ["soon", "-5", "1.5e12", "\u0661\u0662"])
def test_a_bad_pinned_anchor_is_a_config_error(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANCHOR_ENV, value)
    with pytest.raises(ConfigError, match=rf"^{ANCHOR_ENV}={re.escape(repr(value))}: expected"):
        start_fleet("healthy", daemons=("v4",))
    with pytest.raises(ConfigError, match="anchor_ms -1 is before the epoch"):
        start_fleet("healthy", daemons=("v4",), anchor_ms=-1)


# --- the stock daemon ----------------------------------------------------------------------------


def test_stock_daemon_serves_no_operations() -> None:
    with start_fleet("stock-daemon", daemons=("v5",)) as fleet:
        v5 = fleet.endpoints["v5"]
        for method in OPS_METHODS:
            assert rpc(fleet.socket_path("v5"), method)["error"]["code"] == -32601
        assert fleet.evidence == {
            **dict.fromkeys(OPS_KINDS, v5),
            "build": _file_uri(fleet, "build"),
            "archive": _file_uri(fleet, "archive"),
        }
        assert (fleet.ops_url, fleet.ops_pid) == (None, None)
        evidence_dir = fleet.socket_dir / "evidence"
        assert sorted(p.name for p in evidence_dir.iterdir()) == ["junit.xml", "v4-archive"]
        with pytest.raises(NotServed, match=r"method ops.snapshot_list not served by unix://"):
            make_provider("snapshots", fleet.evidence["snapshots"]).snapshots()


# --- failure scenarios ---------------------------------------------------------------------------


def _holddown(fleet: SimFleet) -> None:
    supervisor = make_provider("supervisor", fleet.evidence["supervisor"])
    status = supervisor.supervisor_status().one()
    events = supervisor.supervisor_events().records
    holds = [e for e in events if e.kind == "hold_down"]
    assert len(holds) == 1
    assert holds[0].at_ms == fleet.anchor_ms - 2 * HOUR_MS
    assert status.state.name == "HoldDown"
    assert status.state.until_ms == holds[0].until_ms == holds[0].at_ms + 300_000
    assert not [e for e in events if e.at > holds[0].at]  # never recovered
    log = make_provider("daemon_log", fleet.evidence["daemon_log"]).log_events().records
    warned = [e for e in log if e.kind == "hold_down"]
    assert [(e.level, e.values["seconds"], e.at) for e in warned] == [
        ("WARN", 300, holds[0].at.replace(microsecond=warned[0].at.microsecond))
    ]
    assert not [e for e in log if e.kind == "reconnected" and e.at > warned[0].at]
    raw = Path(fleet.evidence["daemon_log"].removeprefix("file://")).read_text()
    assert "\x1b[33m WARN\x1b[0m" in raw


def _escalate(fleet: SimFleet) -> None:
    entries = make_provider("alerts", fleet.evidence["alerts"]).alert_entries().records
    (escalate,) = [e for e in entries if e.severity.label == "Escalate"]
    assert (escalate.source, escalate.resolved_at_ms) == ("supervisor", None)
    assert escalate.created_at_ms == fleet.anchor_ms - 20 * MINUTE_MS


def _degraded(fleet: SimFleet) -> None:
    entries = make_provider("alerts", fleet.evidence["alerts"]).alert_entries().records
    (degraded,) = [e for e in entries if e.severity.label == "Degraded"]
    assert degraded.resolved_at is not None
    assert degraded.created_at_ms == fleet.anchor_ms - 3 * HOUR_MS
    assert degraded.resolved_at_ms == fleet.anchor_ms - 2 * HOUR_MS


def _cas(fleet: SimFleet) -> None:
    stats = make_provider("binding", fleet.evidence["binding"]).binding_stats().one()
    assert stats.cas_conflicts == 2
    assert stats.last_conflict_at_ms == fleet.anchor_ms - 40 * 60_000


def _cursor(fleet: SimFleet) -> None:
    read_from = _now_ms()
    stats = make_provider("cursor", fleet.evidence["cursor"]).cursor_stats().one()
    assert stats.max_invalid_streak >= 3
    assert stats.full_resync_count == 1
    _advanced_while_read(stats, read_from)
    log = make_provider("daemon_log", fleet.evidence["daemon_log"]).log_events().records
    (resync,) = [e for e in log if e.kind == "full_resync"]
    assert resync.level == "ERROR"
    _logged_at(fleet, resync.at, HOUR_MS)
    assert [e.kind for e in log if e.kind.startswith("cursor")] == [
        "cursor_advance_error",
        "cursor_retry",
        "cursor_advance_error",
        "cursor_retry",
        "cursor_advance_error",
    ]


def _newest_snapshot(fleet: SimFleet) -> Any:
    records = make_provider("snapshots", fleet.evidence["snapshots"]).snapshots().records
    return max(records, key=lambda s: s.created_at_ms)


def _version_ahead(fleet: SimFleet) -> None:
    assert _newest_snapshot(fleet).projection_version == _live_version(fleet) + 3


def _too_old(fleet: SimFleet) -> None:
    newest = _newest_snapshot(fleet)
    assert newest.created_at_ms == fleet.anchor_ms - 20 * MINUTE_MS
    assert newest.projection_version == _live_version(fleet)


def _selector_wrong(fleet: SimFleet) -> None:
    selector = make_provider("selector", fleet.evidence["selector"]).runtime_selector().one()
    assert (selector.default_daemon, selector.v5_enabled) == ("v5", True)
    assert selector.v5_canary_sessions == ()


def _v4_sessions_remain(fleet: SimFleet) -> None:
    v4 = fleet.socket_path("v4")
    assert len(result(v4, "list_sessions")) == 6
    assert any(p["presence"] == "managed" for p in result(v4, "list_panes"))
    selector = make_provider("selector", fleet.evidence["selector"]).runtime_selector().one()
    assert selector.default_daemon == "v5"


def _build_failing(fleet: SimFleet) -> None:
    build = make_provider("build", fleet.evidence["build"]).build_result().one()
    assert (build.tests, build.failures, build.passed) == (700, 3, 697)
    assert build.failing == (
        "agtmux-daemon-v5::supervisor::tests::hold_down_after_budget",
        "agtmux-daemon-v5::snapshot::tests::restore_ok_within_age",
        "agtmux-gateway::cursor_hardening::tests::rewind_too_far",
    )


@pytest.mark.parametrize(
    ("scenario", "phase", "daemons", "check"),
    [
        ("holddown-24h", "alpha", ("v5",), _holddown),
        ("escalate-alert", "canary", ("v5",), _escalate),
        ("degraded-alert", "canary", ("v5",), _degraded),
        ("cas-conflict", "canary", ("v5",), _cas),
        ("invalid-cursor", "canary", ("v5",), _cursor),
        ("snapshot-version-ahead", "alpha", ("v5",), _version_ahead),
        ("snapshot-too-old", "canary", ("v5",), _too_old),
        ("selector-wrong", "alpha", ("v5",), _selector_wrong),
        ("v4-sessions-remaining", "cutover", ("v4", "v5"), _v4_sessions_remain),
        ("build-failing", "gradual", ("v5",), _build_failing),
    ],
)
def test_failure_scenario_evidence(
    scenario: str, phase: str, daemons: tuple[str, ...], check: Callable[[SimFleet], None]
) -> None:
    with start_fleet(scenario, daemons=daemons, phase=phase) as fleet:
        check(fleet)


# --- phases --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "selector"),
    [
        (None, ("v4", False, [])),
        ("alpha", ("v4", False, [])),
        ("canary", ("v4", True, ["session-alpha", "session-beta"])),
        ("gradual", ("v5", True, [])),
        ("cutover", ("v5", True, [])),
        ("rollback", ("v4", False, [])),
    ],
)
def test_selector_follows_the_phase(phase: str | None, selector: tuple[Any, ...]) -> None:
    model = operations_model(load_scenario("healthy"), phase=phase, anchor_ms=0)
    assert model is not None
    answer = model.runtime_selector()
    assert (answer["default_daemon"], answer["v5_enabled"], answer["v5_canary_sessions"]) == (
        selector
    )


def test_cutover_drains_v4() -> None:
    with start_fleet("healthy", phase="cutover", stopped=()) as fleet:
        v4, v5 = fleet.socket_path("v4"), fleet.socket_path("v5")
        assert result(v4, "list_sessions") == []
        panes = result(v4, "list_panes")
        assert panes
        assert {p["presence"] for p in panes} == {"unmanaged"}
        assert len(result(v5, "list_sessions")) == 6
        assert sum(p["presence"] == "managed" for p in result(v5, "list_panes")) == 6
        assert result(v5, "ops.runtime_selector")["default_daemon"] == "v5"
        uri = fleet.evidence["selector"]
        assert make_provider("selector", uri).runtime_selector().one().default_daemon == "v5"


def test_unknown_phase_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown phase 'beta'; known: alpha, canary"):
        start_fleet("healthy", phase="beta")


# --- lifecycle -----------------------------------------------------------------------------------


def test_stop_leaves_no_process_socket_or_evidence() -> None:
    fleet = start_fleet("healthy")
    try:
        children = [*fleet.pids.values(), fleet.ops_pid]
        assert (fleet.socket_dir / "evidence").is_dir()
    finally:
        fleet.stop()
    assert not any(pid_alive(pid) for pid in children if pid is not None)
    assert not fleet.socket_dir.exists()


def test_stop_keeps_the_given_directory_but_removes_the_evidence() -> None:
    directory = short_dir()
    try:
        with start_fleet("healthy", directory) as fleet:
            assert fleet.evidence["binding"].startswith(f"file://{directory}/evidence/")
        assert list(directory.iterdir()) == []
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_an_existing_evidence_directory_is_not_overwritten() -> None:
    directory = short_dir()
    try:
        (directory / "evidence").mkdir()
        (directory / "evidence" / "mine").write_text("precious")
        with pytest.raises(ConfigError, match="evidence already exists"):
            start_fleet("healthy", directory)
        assert (directory / "evidence" / "mine").read_text() == "precious"
        assert sorted(p.name for p in directory.iterdir()) == ["evidence"]
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_without_v5_nothing_is_published() -> None:
    with start_fleet("healthy", daemons=("v4",)) as fleet:
        assert fleet.evidence == {}
        assert (fleet.ops_url, fleet.ops_pid) == (None, None)
        assert not (fleet.socket_dir / "evidence").exists()


# --- what the fail-closed gates read: when things changed --------------------------------------


def test_selector_says_when_it_changed(canary: SimFleet) -> None:
    """The ops answer's changed_at_ms and the selector file's modification time agree."""
    changed = canary.anchor_ms - 10 * DAY_MS
    from_file = make_provider("selector", canary.evidence["selector"]).runtime_selector().one()
    assert from_file.changed_at_ms == changed
    assert result(canary.socket_path("v5"), "ops.runtime_selector")["changed_at_ms"] == changed
    path = Path(canary.evidence["selector"].removeprefix("file://"))
    assert path.stat().st_mtime_ns == changed * 1_000_000


def test_jitter_applied_is_the_scenarios_claim(canary: SimFleet) -> None:
    status = make_provider("supervisor", canary.evidence["supervisor"]).supervisor_status()
    assert status.one().jitter_applied is True
    stock = operations_model(load_scenario("samples"), phase=None, anchor_ms=0)
    assert stock is None  # no [operations]: nothing is claimed at all


_STATE_CHANGED = {"id": 1, "method": "state_changed"}


def test_change_log_dates_the_first_projection_at_the_start_and_later_changes_after() -> None:
    from pytest_canarygate.agtmux.sim.projection import SimDaemon

    now_ns = 1_800_000_000_000 * 1_000_000
    spec = load_scenario("healthy").daemon("v5", "canary")
    log: Any = SimDaemon(spec, pid=1, start_ns=now_ns).respond(_STATE_CHANGED, now_ns)["result"][
        "changes"
    ]
    started = datetime.fromtimestamp(now_ns / 1e9 - 10 * 86_400, tz=timezone.utc)
    seeded = {e["timestamp"] for e in log[: 2 * 6]}  # each managed pane and its session
    assert seeded == {started.strftime("%Y-%m-%dT%H:%M:%S.000000000Z")}
    recent = [(e.get("pane_id"), e["timestamp"]) for e in log[2 * 6 :]]
    assert [pane for pane, _ in recent] == [None, "%7", None, "%1", None, "%5"]  # 25m, 3m, 40s
    idle = load_scenario("canary-idle").daemon("v5", "canary")
    changed: Any = SimDaemon(idle, pid=1, start_ns=now_ns).respond(_STATE_CHANGED, now_ns)[
        "result"
    ]["changes"]
    assert [e.get("pane_id") for e in changed[2 * 6 :]] == [None, "%1", None, "%5", None, "%7"]


def test_latency_flapped_log_lines() -> None:
    from pytest_canarygate.agtmux.providers.daemon_log import parse_log
    from pytest_canarygate.agtmux.sim.evidence_files import render_log_line

    model = operations_model(load_scenario("latency-flapped"), phase="canary", anchor_ms=10**12)
    assert model is not None
    text = "".join(render_log_line(line) for line in model.log_lines("/run/v5/agtmuxd.sock"))
    events, _, _ = parse_log(text.splitlines())
    slo = [(e.kind, e.values["consecutive"]) for e in events if e.kind.startswith("slo_")]
    assert slo == [("slo_breach", 1), ("slo_breach", 2)] + [
        ("slo_degraded", n) for n in range(3, 13)
    ]
    last = max(e.at for e in events if e.kind == "slo_degraded")
    assert last == ms_to_datetime(10**12 - 3_600_000)
