"""Generated fleets (``[fleet.generate]``): their shape, their validation, and a big one served
over the real socket, its projection advancing."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sim_helpers import result
from sim_helpers import rpc
from sim_helpers import rpc_raw
from sim_helpers import short_dir
from sim_helpers import wait_for

from pytest_canarygate.agtmux.sim import SimFleet
from pytest_canarygate.agtmux.sim import start_fleet
from pytest_canarygate.agtmux.sim.scenario import load_scenario
from pytest_canarygate.errors import ConfigError


def _generated(
    directory: Path,
    sessions: int,
    panes: int,
    *,
    extends: str = "healthy",
    extra: str = "",
    name: str = "big.toml",
) -> Path:
    path = directory / name
    path.write_text(
        f'extends = "{extends}"\ndescription = "generated"\n'
        f"[fleet.generate]\nsessions = {sessions}\npanes_per_session = {panes}\n" + extra
    )
    return path


def _hand_written(sessions: int, panes: int) -> str:
    """The panes ``[fleet.generate]`` stands for, written out one by one."""
    lines = ['extends = "healthy"', 'description = "hand-written"']
    pane = 0
    for s in range(sessions):
        for p in range(panes):
            agent = p % 2 == 1
            lines += [
                "[[fleet.panes]]",
                f'pane_id = "%{pane}"',
                f'session_id = "${s}"',
                f'session_name = "session-{s:04d}"',
                f'window_id = "@{s}"',
                'window_name = "work"',
                f'current_cmd = "{"claude" if agent else "bash"}"',
                'current_path = "/home/operator/work"',
                f'title = "{"Claude Code" if agent else "devbox"}"',
            ]
            if agent:
                lines += ['provider = "claude"', 'activity_state = "Idle"']
            if p == 1:
                lines.append(f'last_change = "{(s * 37) % 720 + 1}m"')
            pane += 1
    lines += [
        "[operations.selector]",
        f"canary_sessions = {json.dumps([f'session-{s:04d}' for s in range(min(2, sessions))])}",
    ]
    return "\n".join(lines) + "\n"


# --- shape -------------------------------------------------------------------------------


def test_generated_fleet_shape(tmp_path: Path) -> None:
    scenario = load_scenario(str(_generated(tmp_path, 7, 4)))
    for name in ("v4", "v5"):
        spec = scenario.daemon(name)
        ids = [p.pane_id for p in spec.panes]
        assert ids == [f"%{n}" for n in range(28)]
        assert all(p.tmux is not None for p in spec.panes)
        tmux = [p.tmux for p in spec.panes if p.tmux is not None]
        assert sorted({t.session_name for t in tmux}) == [f"session-{s:04d}" for s in range(7)]
        assert {t.session_id for t in tmux} == {f"${s}" for s in range(7)}
        managed = [p for p in spec.panes if p.agent is not None]
        assert [p.pane_id for p in managed] == [f"%{n}" for n in range(1, 28, 2)]
        assert {(p.agent.provider, p.agent.activity_state) for p in managed if p.agent} == {
            ("claude", "Idle")
        }
        keys = [s.session_key for s in spec.sessions]
        assert len(keys) == len(set(keys)) == 14
        # one agent per tmux session changed state lately, the others not since the start
        recent = [p for p in managed if p.last_change_ms is not None]
        assert len(recent) == 7
        assert all(0 < p.last_change_ms <= 12 * 3_600_000 for p in recent if p.last_change_ms)
    assert scenario.operations is not None
    assert scenario.operations.selector.canary_sessions == ("session-0000", "session-0001")


def test_generated_fleet_is_the_hand_written_one(tmp_path: Path) -> None:
    generated = load_scenario(str(_generated(tmp_path, 5, 3)))
    (tmp_path / "listed.toml").write_text(_hand_written(5, 3))
    listed = load_scenario(str(tmp_path / "listed.toml"))
    for name in ("v4", "v5"):
        assert generated.daemon(name) == listed.daemon(name)
    assert generated.operations == listed.operations


def test_an_odd_pane_count_manages_every_second_pane(tmp_path: Path) -> None:
    spec = load_scenario(str(_generated(tmp_path, 2, 1))).daemon("v5")
    assert [p.agent for p in spec.panes] == [None, None]  # no second pane: no agent
    assert spec.sessions == ()


def test_generate_replaces_the_inherited_fleet_and_what_names_it(tmp_path: Path) -> None:
    # parity-drift overrides v5's panes %4, %5 and %8 of the healthy fleet; a generated fleet
    # has other panes, so those overrides are not inherited (the pane ids exist, their
    # meaning does not)
    scenario = load_scenario(str(_generated(tmp_path, 3, 4, extends="parity-drift")))
    v4, v5 = scenario.daemon("v4"), scenario.daemon("v5")
    assert v4.panes == v5.panes
    assert v4.sessions == v5.sessions
    assert not {t.session_name for p in v5.panes if (t := p.tmux)} & {"session-alpha"}


def test_a_listed_fleet_replaces_an_inherited_generator(tmp_path: Path) -> None:
    base = _generated(tmp_path, 50, 10, name="base.toml")
    (tmp_path / "child.toml").write_text(
        f'extends = "{base.name}"\ndescription = "c"\n'
        '[[fleet.panes]]\npane_id = "%0"\nsession_id = "$0"\nsession_name = "solo"\n'
        'window_id = "@0"\nwindow_name = "w"\ncurrent_cmd = "bash"\ncurrent_path = "/"\n'
        'title = "t"\n'
    )
    spec = load_scenario(str(tmp_path / "child.toml")).daemon("v5")
    assert [p.pane_id for p in spec.panes] == ["%0"]


def test_a_generating_file_keeps_its_own_canary_sessions(tmp_path: Path) -> None:
    path = _generated(
        tmp_path, 10, 2, extra='[operations.selector]\ncanary_sessions = ["session-0007"]\n'
    )
    operations = load_scenario(str(path)).operations
    assert operations is not None
    assert operations.selector.canary_sessions == ("session-0007",)
    counted = _generated(tmp_path, 10, 2, extra="canary_sessions = 3\n", name="three.toml")
    operations = load_scenario(str(counted)).operations
    assert operations is not None
    assert operations.selector.canary_sessions == tuple(f"session-{s:04d}" for s in range(3))


# --- validation ----------------------------------------------------------------------------

_BASE = 'extends = "healthy"\ndescription = "g"\n[fleet.generate]\n'


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        (
            "sessions = 0\npanes_per_session = 10\n",
            ["fleet.generate.sessions = 0", "from 1 to 100000"],
        ),
        ("sessions = -3\npanes_per_session = 10\n", ["fleet.generate.sessions = -3"]),
        ('sessions = "10"\npanes_per_session = 10\n', ['fleet.generate.sessions = "10"']),
        ("sessions = true\npanes_per_session = 10\n", ["fleet.generate.sessions = true"]),
        ("sessions = 1.5\npanes_per_session = 10\n", ["fleet.generate.sessions = 1.5"]),
        ("sessions = 10\npanes_per_session = 0\n", ["fleet.generate.panes_per_session = 0"]),
        ("sessions = 10\n", ["fleet.generate.panes_per_session: missing required key"]),
        ("panes_per_session = 10\n", ["fleet.generate.sessions: missing required key"]),
        (
            "sessions = 10\npanes_per_session = 10\npanes = 4\n",
            ["fleet.generate.panes = 4", "unknown key", "sessions, panes_per_session"],
        ),
        (
            "sessions = 1000\npanes_per_session = 101\n",
            ["fleet.generate = ", "101000 panes", "at most 100000 panes"],
        ),
        (
            "sessions = 100001\npanes_per_session = 1\n",
            ["fleet.generate.sessions = 100001", "from 1 to 100000"],
        ),
        (
            "sessions = 3\npanes_per_session = 2\ncanary_sessions = 4\n",
            ["fleet.generate.canary_sessions = 4", "from 0 to 3"],
        ),
        (
            'sessions = 3\npanes_per_session = 2\n[[fleet.panes]]\npane_id = "%0"\n',
            ["fleet.panes = ", "not together with [fleet.generate]"],
        ),
    ],
)
def test_generate_errors_name_the_key(body: str, fragments: list[str], tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(_BASE + body)
    with pytest.raises(ConfigError) as raised:
        load_scenario(str(path))
    message = str(raised.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_generate_must_be_a_table(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('extends = "healthy"\ndescription = "g"\n[fleet]\ngenerate = 1000\n')
    with pytest.raises(ConfigError, match=r"fleet.generate = 1000: expected a table"):
        load_scenario(str(path))


def test_an_override_of_a_missing_pane_names_a_few_known_ones(tmp_path: Path) -> None:
    path = _generated(tmp_path, 100, 10, extra='[[daemons.v5.pane_overrides]]\npane_id = "%1000"\n')
    with pytest.raises(ConfigError) as raised:
        load_scenario(str(path))
    message = str(raised.value)
    assert 'pane_overrides[0].pane_id = "%1000"' in message
    assert "(1000 in all)" in message
    assert len(message) < 1000


def test_an_override_of_a_generated_pane_applies_to_it(tmp_path: Path) -> None:
    path = _generated(
        tmp_path,
        3,
        4,
        extra='[[daemons.v5.pane_overrides]]\npane_id = "%5"\nactivity_state = "Running"\n',
    )
    scenario = load_scenario(str(path))
    [v4_pane] = [p for p in scenario.daemon("v4").panes if p.pane_id == "%5"]
    [v5_pane] = [p for p in scenario.daemon("v5").panes if p.pane_id == "%5"]
    assert v4_pane.agent is not None
    assert v4_pane.agent.activity_state == "Idle"
    assert v5_pane.agent is not None
    assert v5_pane.agent.activity_state == "Running"
    assert v5_pane.last_change_ms == v4_pane.last_change_ms
    assert v5_pane.tmux == v4_pane.tmux


# --- a big fleet over the real socket ----------------------------------------------------


def _big_fleet() -> Iterator[SimFleet]:
    """A 1,000 x 10 generated fleet (10,000 panes) on 20 ms ticks, v5 only."""
    directory = short_dir()
    path = _generated(
        directory,
        1000,
        10,
        extra="[defaults]\npoll_interval_ms = 20\nfreshness_ms = 200\n",
    )
    try:
        with start_fleet(str(path), directory / "socks", daemons=("v5",)) as fleet:
            yield fleet
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def big() -> Iterator[SimFleet]:
    """A big fleet nothing is ingested into."""
    yield from _big_fleet()


@pytest.fixture(scope="module")
def busy() -> Iterator[SimFleet]:
    """A big fleet the tests ingest events into (each test into panes of its own)."""
    yield from _big_fleet()


def test_big_fleet_serves_every_pane_and_session(big: SimFleet) -> None:
    sock = big.socket_path("v5")
    panes: list[dict[str, Any]] = result(sock, "list_panes")
    assert len(panes) == 10_000
    assert len({p["pane_id"] for p in panes}) == 10_000
    managed = [p for p in panes if p["presence"] == "managed"]
    assert len(managed) == 5_000
    assert [p["pane_id"] for p in managed] == sorted(p["pane_id"] for p in managed)
    assert len({p["session_name"] for p in panes}) == 1000
    sessions = result(sock, "list_sessions")
    assert len(sessions) == 5_000
    assert len({s["session_key"] for s in sessions}) == 5_000
    summary = result(sock, "summary_changed", {"since_version": 0})["summary"]
    assert summary == {
        "managed": 5000,
        "total": 10_000,
        "unmanaged": 5000,
        "deterministic": 0,
        "heuristic": 5000,
    }


def test_big_fleet_change_log_shows_every_session_active_lately(big: SimFleet) -> None:
    sock = big.socket_path("v5")
    answer = result(sock, "state_changed", {"since_version": 0})
    changes = answer["changes"]
    assert [c["version"] for c in changes] == list(range(1, answer["version"] + 1))
    day_ago = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 86_400))
    recent_panes = {c["pane_id"] for c in changes if "pane_id" in c and c["timestamp"] > day_ago}
    assert recent_panes == {f"%{s * 10 + 1}" for s in range(1000)}  # one agent per session
    later = result(sock, "state_changed", {"since_version": answer["version"] - 3})
    assert later["changes"] == changes[-3:]
    assert later["version"] == answer["version"]


def test_big_fleet_answers_carry_the_current_tick(big: SimFleet) -> None:
    sock = big.socket_path("v5")
    first = result(sock, "list_panes")
    wait_for(
        lambda: result(sock, "list_source_health")[0][1]["checked_at"] > first[0]["updated_at"]
    )
    second = result(sock, "list_panes")
    checked_at = result(sock, "list_source_health")[0][1]["checked_at"]
    assert first[0]["updated_at"] < second[0]["updated_at"] <= checked_at
    assert {p["updated_at"] for p in second if p["presence"] == "managed"} == {
        second[0]["updated_at"]
    }
    sessions = result(sock, "list_sessions")
    assert {s["updated_at"] for s in sessions} == {sessions[0]["updated_at"]}
    assert sessions[0]["updated_at"] >= second[0]["updated_at"]


def _ingest(sock: Path, session_id: str, pane_id: str) -> None:
    micros = time.time_ns() // 1000
    seconds, fraction = divmod(micros, 1_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:06d}Z"
    event = {
        "hook_id": f"h-{micros}",
        "hook_type": "tool_start",
        "session_id": session_id,
        "timestamp": stamp,
        "pane_id": pane_id,
        "data": {},
    }
    params = {"source_kind": "claude_hooks", "source_id": "claude_hooks", "event": event}
    assert result(sock, "source.ingest", params) == {"status": "ok"}


def test_big_fleet_projection_advances_between_two_readings(busy: SimFleet) -> None:
    sock = busy.socket_path("v5")
    first = result(sock, "summary_changed", {"since_version": 0})["version"]
    _ingest(sock, "claude-session-4321", "%4321")
    wait_for(lambda: result(sock, "summary_changed", {"since_version": 0})["version"] > first)
    second = result(sock, "summary_changed", {"since_version": first})
    assert second["has_changes"]
    assert second["pane_changes"] >= 1
    # the new state is served, not an answer encoded before it
    panes = {p["pane_id"]: p for p in result(sock, "list_panes")}
    assert panes["%4321"]["presence"] == "managed"
    assert panes["%4321"]["activity_state"] == "Running"
    newer = result(sock, "state_changed", {"since_version": first})["changes"]
    assert {c.get("pane_id") for c in newer} >= {"%4321"}
    assert "claude-session-4321" in {s["session_key"] for s in result(sock, "list_sessions")}


def test_a_hostile_session_key_is_served_verbatim(busy: SimFleet) -> None:
    sock = busy.socket_path("v5")
    hostile = 'x","updated_at":-1,"deterministic_last_seen":-1'
    _ingest(sock, hostile, "%20")
    wait_for(lambda: hostile in {s["session_key"] for s in result(sock, "list_sessions")})
    [served] = [s for s in result(sock, "list_sessions") if s["session_key"] == hostile]
    assert isinstance(served["updated_at"], str)
    assert isinstance(served["deterministic_last_seen"], str)
    reply = rpc_raw(sock, b'{"id":"q","method":"list_sessions"}\n')
    assert reply.startswith(b'{"id":"q","jsonrpc":"2.0","result":[')
    assert reply.endswith(b"]}\n")
    assert hostile in {s["session_key"] for s in json.loads(reply)["result"]}


def test_big_fleet_envelope_echoes_any_id(big: SimFleet) -> None:
    sock = big.socket_path("v5")
    for request_id in (None, 0, 'x\u00e9"', [1], {"a": 1}):
        response = rpc(sock, "summary_changed", {"since_version": 0}, request_id=request_id)
        assert response["id"] == request_id
        assert response["jsonrpc"] == "2.0"
        assert response["result"]["summary"]["total"] == 10_000
