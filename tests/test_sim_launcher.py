"""The simulator's processes, sockets, scenarios and `canarygate sim` command."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sim_helpers import http_get
from sim_helpers import pid_alive
from sim_helpers import result
from sim_helpers import rpc
from sim_helpers import short_dir
from sim_helpers import wait_for

from pytest_canarygate.agtmux.providers import make_provider
from pytest_canarygate.agtmux.sim import SimFleet
from pytest_canarygate.agtmux.sim import SimulatorError
from pytest_canarygate.agtmux.sim import list_scenarios
from pytest_canarygate.agtmux.sim import load_scenario
from pytest_canarygate.agtmux.sim import start_fleet
from pytest_canarygate.agtmux.sim.scenario import LatencySpec
from pytest_canarygate.cli import main as canarygate_main
from pytest_canarygate.errors import ConfigError

DAEMON = [sys.executable, "-m", "pytest_canarygate.agtmux.sim.daemon"]
BUILT_IN = {
    "samples",
    "healthy",
    "parity-drift",
    "latency-degraded",
    "stale-source",
    "holddown-24h",
    "escalate-alert",
    "degraded-alert",
    "cas-conflict",
    "invalid-cursor",
    "snapshot-version-ahead",
    "snapshot-too-old",
    "selector-wrong",
    "v4-sessions-remaining",
    "build-failing",
    "stock-daemon",
    "canary-idle",
    "selector-just-changed",
    "latency-flapped",
    "v4-restarted",
    "title-decayed",
    "no-agents",
}
VOLATILE = frozenset(
    {
        "updated_at",
        "checked_at",
        "timestamp",
        "deterministic_last_seen",
        "last_heartbeat_ms",
        "registered_at_ms",
    }
)


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    directory = short_dir()
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts by hand; killed, reaped and their pipes closed afterwards
    whatever happens."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        with proc:  # closes stdin, stdout and stderr, then waits
            pass


def _daemon(
    procs: list[subprocess.Popen[bytes]], sock: Path, scenario: str = "samples"
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*DAEMON, "--name", "v5", "--scenario", scenario, "--socket", str(sock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    procs.append(proc)
    wait_for(lambda: _answers(sock, proc.pid), what=f"daemon at {sock}")
    return proc


def _answers(sock: Path, pid: int) -> bool:
    try:
        return bool(result(sock, "daemon.info")["pid"] == pid)
    except OSError:
        return False


def _strip(value: Any) -> Any:
    """``value`` without its volatile members (times, heartbeats)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


# --- fleet lifecycle -----------------------------------------------------------------------------


def test_start_fleet_serves_v4_and_v5_quickly() -> None:
    fleet = start_fleet("healthy", ready_timeout=5.0)  # SimulatorError if not ready by then
    try:
        assert fleet.socket_dir.name.startswith("cg-sim-")
        assert fleet.endpoints == {
            name: f"unix://{fleet.socket_dir}/{name}/agtmuxd.sock" for name in ("v4", "v5")
        }
        assert fleet.endpoints["v5"].startswith("unix:///")
        for name, version in (("v4", "0.0.4"), ("v5", "0.1.0")):
            sock = fleet.socket_path(name)
            info = result(sock, "daemon.info")
            assert (info["pid"], info["version"]) == (fleet.pids[name], version)
            assert info["nonce"].startswith(f"{fleet.pids[name]}-")
            mode = os.lstat(sock).st_mode
            assert stat.S_ISSOCK(mode)
            assert stat.S_IMODE(mode) == 0o600
            assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
    finally:
        fleet.stop()
    for name, pid in fleet.pids.items():
        assert not pid_alive(pid)
        assert not fleet.socket_path(name).exists()
    assert not fleet.socket_dir.exists()
    fleet.stop()  # idempotent


def test_stop_keeps_a_given_directory_and_removes_what_it_made(sock_dir: Path) -> None:
    nested = sock_dir / "a" / "b"
    with start_fleet("samples", sock_dir, daemons=("v5",)) as fleet:
        assert fleet.socket_dir == sock_dir
        with start_fleet("samples", nested, daemons=("v4",)) as inner:
            assert result(inner.socket_path("v4"), "daemon.info")["version"] == "0.0.4"
        assert not (sock_dir / "a").exists()
    assert not fleet.socket_path("v5").exists()
    assert sock_dir.is_dir()
    assert list(sock_dir.iterdir()) == []


def test_too_long_socket_path_is_a_config_error(sock_dir: Path) -> None:
    deep = sock_dir / ("d" * 110)
    with pytest.raises(ConfigError, match=r"is \d+ bytes.*limited to 107.*shorter"):
        start_fleet("samples", deep)
    assert not deep.exists()


def test_unknown_scenario_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown scenario 'nope'; available: .*healthy"):
        start_fleet("nope")


def test_unknown_daemon_name_is_a_config_error(sock_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"no daemon 'v6' \(available: v4, v5\)"):
        start_fleet("healthy", sock_dir, daemons=("v6",))
    assert list(sock_dir.iterdir()) == []


def test_fleet_on_a_live_socket_fails_and_leaves_the_first_running(sock_dir: Path) -> None:
    with start_fleet("samples", sock_dir, daemons=("v5",)) as first:
        with pytest.raises(SimulatorError, match="another daemon is already running"):
            start_fleet("healthy", sock_dir, daemons=("v5",))
        assert result(first.socket_path("v5"), "daemon.info")["pid"] == first.pids["v5"]


def test_second_daemon_on_a_live_socket_refuses(
    sock_dir: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    sock = sock_dir / "v5" / "agtmuxd.sock"
    first = _daemon(procs, sock)
    second = subprocess.run(
        [*DAEMON, "--name", "v5", "--scenario", "samples", "--socket", str(sock)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert second.returncode != 0
    assert f"another daemon is already running at {sock}" in second.stderr.decode()
    assert result(sock, "daemon.info")["pid"] == first.pid


def test_stale_socket_file_is_replaced(sock_dir: Path) -> None:
    sock = sock_dir / "v5" / "agtmuxd.sock"
    sock.parent.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as leftover:
        leftover.bind(str(sock))  # bound, never listening, never unlinked: a stale socket
    with start_fleet("samples", sock_dir, daemons=("v5",)) as fleet:
        assert result(sock, "daemon.info")["pid"] == fleet.pids["v5"]
        assert "removed stale socket" in (sock.parent / "daemon.log").read_text()


def test_a_file_that_is_not_a_socket_is_left_alone(sock_dir: Path) -> None:
    path = sock_dir / "v5" / "agtmuxd.sock"
    path.parent.mkdir(mode=0o700)
    path.write_text("precious")
    with pytest.raises(SimulatorError, match="exists and is not a socket"):
        start_fleet("samples", sock_dir, daemons=("v5",))
    assert path.read_text() == "precious"


def test_a_shared_sticky_directory_is_refused(sock_dir: Path) -> None:
    shared = sock_dir / "v5"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(SimulatorError, match="shared directory"):
        start_fleet("samples", sock_dir, daemons=("v5",))
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777


def test_sigterm_removes_the_socket_and_exits_zero(
    sock_dir: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    sock = sock_dir / "v5" / "agtmuxd.sock"
    proc = _daemon(procs, sock)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert not sock.exists()
    assert proc.stderr is not None
    assert b"received SIGTERM, shutting down" in proc.stderr.read()


def test_closing_stdin_stops_the_daemon(
    sock_dir: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    sock = sock_dir / "v5" / "agtmuxd.sock"
    proc = _daemon(procs, sock)
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(10) == 0
    assert not sock.exists()


def test_children_do_not_outlive_a_killed_launcher(
    sock_dir: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    launcher_code = (
        "import json, sys, time\n"
        "from pytest_canarygate.agtmux.sim import start_fleet\n"
        "fleet = start_fleet('healthy', sys.argv[1])\n"
        "print(json.dumps([fleet.pids, fleet.ops_pid, fleet.ops_url]), flush=True)\n"
        "time.sleep(120)\n"
    )
    launcher = subprocess.Popen(
        [sys.executable, "-c", launcher_code, str(sock_dir)], stdout=subprocess.PIPE
    )
    procs.append(launcher)
    assert launcher.stdout is not None
    pids, ops_pid, ops_url = json.loads(launcher.stdout.readline())
    assert set(pids) == {"v4", "v5"}
    children = [*pids.values(), ops_pid]
    assert all(pid_alive(pid) for pid in children)
    assert http_get(f"{ops_url}/runtime_selector")[0] == 200
    launcher.kill()
    launcher.wait()
    wait_for(lambda: not any(map(pid_alive, children)), what="the daemons and the HTTP server")
    assert not (sock_dir / "v4" / "agtmuxd.sock").exists()
    assert not (sock_dir / "v5" / "agtmuxd.sock").exists()
    with pytest.raises(OSError):
        http_get(f"{ops_url}/runtime_selector", timeout=1.0)


# --- scenarios -----------------------------------------------------------------------------------


def test_built_in_scenarios_all_load() -> None:
    names = list_scenarios()
    assert BUILT_IN <= set(names)
    for name in names:
        scenario = load_scenario(name)
        assert scenario.description
        assert scenario.daemon("v4").version == "0.0.4"
        # only the scenarios about v5's version deploy another one
        v5_version = {"v5-downgraded": "0.0.3", "v5-unexpected-version": "0.1.1"}
        assert scenario.daemon("v5").version == v5_version.get(name, "0.1.0")


@pytest.fixture(scope="module")
def healthy() -> Iterator[SimFleet]:
    with start_fleet("healthy") as fleet:
        yield fleet


@pytest.fixture(scope="module")
def drift() -> Iterator[SimFleet]:
    with start_fleet("parity-drift") as fleet:
        yield fleet


READ_METHODS = (
    "list_panes",
    "list_sessions",
    "list_source_health",
    "state_changed",
    "summary_changed",
    "latency_status",
    "list_source_registry",
)


@pytest.mark.parametrize("method", READ_METHODS)
def test_healthy_v4_and_v5_agree(method: str, healthy: SimFleet) -> None:
    v4 = result(healthy.socket_path("v4"), method)
    v5 = result(healthy.socket_path("v5"), method)
    assert _strip(v4) == _strip(v5)


def test_healthy_fleet_shape(healthy: SimFleet) -> None:
    sock = healthy.socket_path("v5")
    panes = result(sock, "list_panes")
    managed = [p["pane_id"] for p in panes if p["presence"] == "managed"]
    assert managed == ["%1", "%10", "%4", "%5", "%7", "%8"]  # sorted as strings
    assert {p["session_name"] for p in panes} == {"session-alpha", "session-beta", "session-gamma"}
    assert {p["provider"] for p in panes if "provider" in p} == {"claude", "codex"}
    unmanaged = next(p for p in panes if p["presence"] == "unmanaged")
    assert "evidence_mode" not in unmanaged
    assert "updated_at" not in unmanaged
    latency = result(sock, "latency_status")
    assert latency["status"] == "healthy"
    assert latency["sample_count"] >= 200
    health = dict(result(sock, "list_source_health"))
    assert {kind: report["status"] for kind, report in health.items()} == {
        "claude_hooks": "healthy",
        "claude_jsonl": "healthy",
        "codex_appserver": "healthy",
        "poller": "healthy",
    }


def test_parity_drift_differs_as_described(drift: SimFleet) -> None:
    v4 = {p["pane_id"]: p for p in result(drift.socket_path("v4"), "list_panes")}
    v5 = {p["pane_id"]: p for p in result(drift.socket_path("v5"), "list_panes")}
    assert v4["%5"]["evidence_mode"] == "heuristic"
    assert v5["%5"]["evidence_mode"] == "deterministic"
    assert v4["%8"]["session_name"] == "session-gamma"
    assert "%8" not in v5
    assert set(v4) - set(v5) == {"%8"}
    for pane_id in set(v5) - {"%5"}:
        assert _strip(v4[pane_id]) == _strip(v5[pane_id]), pane_id


def test_latency_degraded_scenario() -> None:
    with start_fleet("latency-degraded", daemons=("v5",)) as fleet:
        assert result(fleet.socket_path("v5"), "latency_status") == {
            "status": "degraded",
            "p95_ms": 3224,
            "consecutive_breaches": 10,
            "sample_count": 213,
        }


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_stale_source_registry_is_live() -> None:
    with start_fleet("stale-source", daemons=("v5",)) as fleet:
        sock = fleet.socket_path("v5")
        asked = _now_ms()
        entries = {e["source_id"]: e for e in result(sock, "list_source_registry")}
        answered = _now_ms()
        assert entries["ext-claude-hooks"]["lifecycle"] == "active"
        # an active source keeps heartbeating: its last heartbeat is when it was asked
        assert asked <= entries["ext-claude-hooks"]["last_heartbeat_ms"] <= answered
        assert entries["ext-poller"]["lifecycle"] == "stale"
        # the stale one stopped 95 s before the fleet's anchor (more than the 90 s limit)
        assert entries["ext-poller"]["last_heartbeat_ms"] == fleet.anchor_ms - 95_000
        hello = {"source_id": "ext-poller", "source_kind": "claude_hooks", "protocol_version": 1}
        assert result(sock, "source.hello", hello)["status"] == "accepted"
        entry = next(
            e for e in result(sock, "list_source_registry") if e["source_id"] == "ext-poller"
        )
        assert (entry["lifecycle"], entry["source_kind"]) == ("active", "poller")


@pytest.mark.parametrize(
    ("status", "keys"),
    [
        ("not_started", {"status", "sample_count", "p95_ms", "consecutive_breaches"}),
        (
            "insufficient_data",
            {"status", "sample_count", "min_required", "p95_ms", "consecutive_breaches"},
        ),
        ("healthy", {"status", "p95_ms", "consecutive_breaches", "sample_count"}),
        (
            "breached",
            {"status", "p95_ms", "consecutive_breaches", "breach_threshold", "sample_count"},
        ),
        ("degraded", {"status", "p95_ms", "consecutive_breaches", "sample_count"}),
    ],
)
def test_latency_keys_per_status(status: str, keys: set[str]) -> None:
    assert set(LatencySpec(status).as_result()) == keys


MINIMAL = """\
description = "minimal"

[[fleet.panes]]
pane_id = "%0"
session_id = "$0"
session_name = "session-alpha"
window_id = "@0"
window_name = "main"
current_cmd = "claude"
current_path = "/srv"
title = "Claude Code"
provider = "claude"
"""


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            MINIMAL.replace('provider = "claude"', 'provider = "claude"\nevidence_mode = "determ"'),
            ['fleet.panes[0].evidence_mode = "determ"', '"deterministic", "heuristic"'],
        ),
        (
            MINIMAL + "[snapshots]\nkeep = 3\n",
            ["snapshots = ", "unknown key", "accepted: description, extends, fleet, defaults"],
        ),
        (
            MINIMAL + '[operations]\nhistory = "30 days"\n',
            ['operations.history = "30 days"', 'like "90s", "20m"'],
        ),
        (
            MINIMAL + '[daemons.v4]\ndrained_phases = ["beta"]\n',
            ['daemons.v4.drained_phases[0] = "beta"', '"alpha", "canary"'],
        ),
        (MINIMAL + "[daemons.v5]\nuptime = 10\n", ["daemons.v5.uptime = 10", "a duration"]),
        (
            MINIMAL + '[operations.alerts.alert-x]\nseverity = "Info"\n',
            ["operations.alerts.alert-x = ", r"alert-[1-9]\d*"],
        ),
        (
            MINIMAL
            + '[operations.alerts.alert-1]\nseverity = "Fatal"\nsource = "s"\nmessage = "m"\n'
            + 'created = "1h"\n',
            ['operations.alerts.alert-1.severity = "Fatal"', '"Info", "Warn", "Degraded"'],
        ),
        (
            MINIMAL
            + '[operations.alerts.alert-1]\nseverity = "Info"\nsource = "s"\nmessage = "m"\n'
            + 'created = "1h"\nresolved = "2h"\n',
            ['operations.alerts.alert-1.resolved = "2h"', "resolved before it was created"],
        ),
        (
            MINIMAL + '[operations.snapshots.snap-1]\ntrigger = "Periodic"\n',
            ["operations.snapshots.snap-1.ago: missing required key"],
        ),
        (
            MINIMAL + '[operations.selector]\ndefault_daemon = "v5"\n',
            ['operations.selector.default_daemon = "v5"', "needs follow_phase = false"],
        ),
        (
            MINIMAL + '[operations.build]\ntests = 1\nfailing = ["a::b", "a::c"]\n',
            ["operations.build.failing = ", "more failing tests than the 1 tests"],
        ),
        (
            MINIMAL + '[operations.supervisor]\nunready = { Proxy = ["x"] }\n',
            ["operations.supervisor.unready.Proxy", "accepted: Sources, Gateway, Daemon, Ui"],
        ),
        (MINIMAL.replace('title = "Claude Code"', 'colour = "red"'), ["fleet.panes[0].colour"]),
        (
            MINIMAL.replace('session_id = "$0"\n', ""),
            ["fleet.panes[0].session_id: missing required key"],
        ),
        (MINIMAL.replace('pane_id = "%0"', 'pane_id = "3"'), ['pane_id = "3"', "%\\d+"]),
        (MINIMAL + "[fleet\n", ["invalid TOML"]),
        (
            MINIMAL + '[[daemons.v5.pane_overrides]]\npane_id = "%42"\n',
            ['daemons.v5.pane_overrides[0].pane_id = "%42"', "no such pane", "known: %0"],
        ),
        (
            MINIMAL + '[daemons.v4]\nremove_panes = ["%7"]\n',
            ['daemons.v4.remove_panes[0] = "%7"', "no such pane"],
        ),
        (
            MINIMAL + '[defaults]\nunavailable_methods = ["list_alerts"]\n',
            ['defaults.unavailable_methods[0] = "list_alerts"', '"list_panes"', '"source.ingest"'],
        ),
        (
            MINIMAL
            + '[daemons.v5]\nlatency = { status = "healthy", p95_ms = 9000, sample_count = 300 }\n',
            ["daemons.v5.latency.p95_ms = 9000", "from 0 to 3000"],
        ),
        (
            MINIMAL
            + '[daemons.v5]\nlatency = { status = "healthy", p95_ms = 5, '
            + "sample_count = 300, consecutive_breaches = 1 }\n",
            ["latency.consecutive_breaches = 1", 'not used when status = "healthy"'],
        ),
        (
            MINIMAL.replace('provider = "claude"\n', 'activity_state = "Idle"\n'),
            ['activity_state = "Idle"', "only managed panes"],
        ),
        (MINIMAL + "[daemons.V5]\n", ["daemons.V5", "daemon names"]),
        (
            MINIMAL + '[[daemons.v5.session_overrides]]\nsession_key = "nope"\n',
            ['session_overrides[0].session_key = "nope"', "known: poller-%0"],
        ),
        (
            MINIMAL.replace('description = "minimal"', 'extends = "nope"\ndescription = "x"'),
            ['extends = "nope"', "available: "],
        ),
        (MINIMAL.replace('description = "minimal"\n', ""), ["description: missing required key"]),
    ],
)
def test_scenario_errors_name_file_key_and_value(
    text: str, fragments: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_scenario(str(path))
    message = str(raised.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_override_errors_name_the_overriding_file(tmp_path: Path) -> None:
    path = tmp_path / "child.toml"
    path.write_text(
        'extends = "healthy"\ndescription = "c"\n'
        '[[daemons.v5.pane_overrides]]\npane_id = "%5"\nactivity_state = "Busy"\n'
    )
    with pytest.raises(ConfigError) as raised:
        load_scenario(str(path))
    message = str(raised.value)
    assert f'{path}: daemons.v5.pane_overrides[0].activity_state = "Busy"' in message
    assert '"WaitingApproval"' in message


def test_circular_extends_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('extends = "b.toml"\ndescription = "a"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\ndescription = "b"\n')
    with pytest.raises(ConfigError, match="circular extends"):
        load_scenario(str(tmp_path / "a.toml"))


def test_ghost_pane_from_a_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "ghost.toml"
    path.write_text(
        MINIMAL + '\n[[fleet.panes]]\npane_id = "%3"\nghost = true\nprovider = "codex"\n'
    )
    with start_fleet(str(path), daemons=("v5",)) as fleet:
        sock = fleet.socket_path("v5")
        ghost = next(p for p in result(sock, "list_panes") if p["pane_id"] == "%3")
        assert (ghost["title"], ghost["title_quality"], ghost["session_id"]) == (
            "",
            "Unmanaged",
            None,
        )
        summary = result(sock, "summary_changed")["summary"]
        assert (summary["managed"], summary["total"], summary["unmanaged"]) == (2, 1, 0)


# --- canarygate sim ------------------------------------------------------------------------------


def test_cli_list_shows_scenarios_with_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert canarygate_main(["sim", "--list"]) == 0
    out = capsys.readouterr().out
    for name in list_scenarios():
        assert f"{name}  " in out
        assert load_scenario(name).description in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sim"], "--scenario NAME is required"),
        (["sim", "--scenario", "nope"], "unknown scenario 'nope'"),
    ],
)
def test_cli_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert canarygate_main(argv) == 2
    assert message in capsys.readouterr().err


def _read_until(proc: subprocess.Popen[bytes], marker: bytes, timeout: float) -> str:
    """Everything ``proc`` writes to stdout up to and including ``marker``."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    output = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while marker not in output:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise AssertionError(f"canarygate sim printed only {output!r}")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError(f"canarygate sim exited after printing {output!r}")
            output += chunk
    return output.decode()


def test_cli_runs_a_fleet_until_sigint(sock_dir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_canarygate", "sim", "--phase", "canary", "--scenario",
         "healthy", "--socket-dir", str(sock_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        lines = _read_until(proc, b"Ctrl-C to stop\n", 20).splitlines()
        assert lines[-1] == "simulated fleet ready (scenario healthy, phase canary); Ctrl-C to stop"
        pids = {}
        for line in lines[:2]:
            name, endpoint, _, pid = line.split()
            assert endpoint == f"unix://{sock_dir}/{name}/agtmuxd.sock"
            pids[name] = int(pid)
            assert rpc(endpoint.removeprefix("unix://"), "daemon.info")["result"]["pid"] == int(pid)
        assert lines[2].startswith("operations over HTTP  http://127.0.0.1:")
        ops_url, pids["ops"] = lines[2].split()[3], int(lines[2].split()[5])
        assert lines[3] == "[evidence]"
        evidence = tomllib.loads("\n".join(lines[3:-1]))["evidence"]
        assert evidence["snapshots"] == f"unix://{sock_dir}/v5/agtmuxd.sock"
        assert evidence["alerts"] == ops_url
        assert evidence["archive"] == f"file://{sock_dir}/evidence/v4-archive/manifest.json"
        assert len(evidence) == 9
        selector = make_provider("selector", evidence["selector"]).runtime_selector().one()
        assert selector.v5_canary_sessions == ("session-alpha", "session-beta")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert b"simulated fleet stopped" in out
    assert not any(map(pid_alive, pids.values()))
    assert list(sock_dir.iterdir()) == []
