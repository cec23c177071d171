"""The simulator speaks the agtmux daemon protocol exactly as the recorded samples show."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sim_helpers import NONCE
from sim_helpers import assert_like_sample
from sim_helpers import load_sample
from sim_helpers import result
from sim_helpers import rpc
from sim_helpers import rpc_raw
from sim_helpers import sample_names
from sim_helpers import short_dir
from sim_helpers import wait_for

from pytest_canarygate.agtmux.sim import SimFleet
from pytest_canarygate.agtmux.sim import start_fleet

# Samples recorded after one claude_hooks and one codex_appserver event had been ingested and had
# aged (their deterministic evidence had gone stale); all others before any ingestion.
AFTER_INGEST = frozenset(
    {
        "list_panes_after_ingest",
        "list_sessions_after_ingest",
        "state_changed_after_ingest",
        "state_changed.no_params",
        "state_changed.since_9",
        "summary_changed_after_ingest",
        "summary_changed.since_current",
    }
)
NEEDS_HELLO = frozenset({"source.heartbeat", "list_source_registry"})
INGEST_SEQUENCE = ("source.hello", "source.ingest", "source.ingest.codex")
FRESHNESS_MS = 1000


def _fast_scenario(directory: Path, freshness_ms: int, extra: str = "") -> Path:
    """A scenario file: the samples fleet with short ticks, so ingested events age quickly."""
    path = directory / "fast-samples.toml"
    path.write_text(
        'extends = "samples"\n'
        'description = "samples with 20 ms ticks"\n'
        "[defaults]\n"
        "poll_interval_ms = 20\n"
        f"freshness_ms = {freshness_ms}\n" + extra
    )
    return path


def _now_rfc3339_us() -> str:
    """The current time like the samples' event timestamps (microseconds, "Z")."""
    micros = time.time_ns() // 1000
    if micros % 1000 == 0:  # keep six digits after a round trip through the daemon
        micros += 1
    seconds, fraction = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:06d}Z"


@pytest.fixture(scope="module")
def sock_root() -> Iterator[Path]:
    directory = short_dir()
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def pristine(sock_root: Path) -> Iterator[SimFleet]:
    """A v5 daemon of the samples scenario that never projects an ingested event."""
    with start_fleet("samples", sock_root / "pristine", daemons=("v5",)) as fleet:
        yield fleet


@pytest.fixture(scope="module")
def ingested(
    sock_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SimFleet, str]]:
    """A samples daemon after the samples' ingest sequence, once the evidence has aged."""
    scenario = _fast_scenario(tmp_path_factory.mktemp("scenario"), FRESHNESS_MS)
    with start_fleet(str(scenario), sock_root / "ingested", daemons=("v5",)) as fleet:
        sock = fleet.socket_path("v5")
        stamp = _now_rfc3339_us()
        for name in INGEST_SEQUENCE:
            request, expected = load_sample(name)
            if "event" in request["params"]:
                request["params"]["event"]["timestamp"] = stamp  # older events are suppressed
            reply = json.loads(rpc_raw(sock, json.dumps(request).encode() + b"\n"))
            assert reply == expected
        wait_for(
            lambda: result(sock, "state_changed", {"since_version": 0})["version"] == 10,
            timeout=FRESHNESS_MS / 1000 + 5,
            what="the ingested evidence to age (version 10)",
        )
        yield fleet, stamp


@pytest.mark.parametrize("name", sample_names())
def test_answer_matches_sample(
    name: str, pristine: SimFleet, request: pytest.FixtureRequest
) -> None:
    fleet = request.getfixturevalue("ingested")[0] if name in AFTER_INGEST else pristine
    sock = fleet.socket_path("v5")
    if name in NEEDS_HELLO:
        hello, _ = load_sample("source.hello")
        rpc_raw(sock, json.dumps(hello).encode() + b"\n")
    sample_request, expected = load_sample(name)
    raw = rpc_raw(sock, json.dumps(sample_request).encode() + b"\n")

    response = json.loads(raw)
    assert raw == json.dumps(response, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    assert_like_sample(response, expected, since_ms=fleet.anchor_ms)  # it started at its anchor
    if name == "daemon.info":
        match = NONCE.fullmatch(response["result"]["nonce"])
        assert match is not None
        assert int(match.group(1)) == response["result"]["pid"] == fleet.pids["v5"]


def test_after_ingest_event_times_are_the_ingested_ones(ingested: tuple[SimFleet, str]) -> None:
    fleet, stamp = ingested
    sessions = {s["session_key"]: s for s in result(fleet.socket_path("v5"), "list_sessions")}
    assert sessions["sess-test-1"]["deterministic_last_seen"] == stamp
    assert sessions["codex-sess-1"]["deterministic_last_seen"] == stamp
    assert sessions["poller-%5"]["deterministic_last_seen"] == stamp  # same resolver group
    assert sessions["poller-%4"]["deterministic_last_seen"] is None


# --- envelope and errors -------------------------------------------------------------------------

NOT_FOUND = b'{"error":{"code":-32601,"message":"method not found"},"id":null,"jsonrpc":"2.0"}\n'


@pytest.mark.parametrize(
    "payload",
    [
        b'[{"jsonrpc":"2.0","id":1,"method":"daemon.info"}]\n',
        b"[]\n",
        b"42\n",
        b'{"jsonrpc":"2.0"}\n',
        b'{"jsonrpc":"2.0","method":7}\n',
    ],
    ids=["batch", "empty-batch", "bare-number", "no-method", "method-not-a-string"],
)
def test_not_a_request_is_method_not_found_with_null_id(payload: bytes, pristine: SimFleet) -> None:
    assert rpc_raw(pristine.socket_path("v5"), payload) == NOT_FOUND


@pytest.mark.parametrize(
    "payload",
    [
        b'{"jsonrpc": "2.0", "id": 1, "method": "daemon.info"\n',
        b"not json\n",
        b"\n",
        b"",
        b'{"jsonrpc":"2.0","id":NaN,"method":"daemon.info"}\n',
        b'{"jsonrpc":"2.0","id":1,"method":"daemon.info"}\xff\n',
    ],
    ids=["truncated", "text", "empty-line", "nothing", "nan", "not-utf8"],
)
def test_malformed_json_closes_without_a_byte(payload: bytes, pristine: SimFleet) -> None:
    assert rpc_raw(pristine.socket_path("v5"), payload) == b""


@pytest.mark.parametrize("request_id", ["abc", 0, 1.5, None, {"k": [1]}])
def test_id_is_echoed_verbatim(request_id: Any, pristine: SimFleet) -> None:
    response = rpc(pristine.socket_path("v5"), "latency_status", request_id=request_id)
    assert response["id"] == request_id
    assert type(response["id"]) is type(request_id)


def test_request_without_id_or_jsonrpc_is_served(pristine: SimFleet) -> None:
    reply = rpc_raw(pristine.socket_path("v5"), b'{"method":"daemon.info"}')  # no newline either
    response = json.loads(reply)
    assert response["id"] is None
    assert response["jsonrpc"] == "2.0"
    assert response["result"]["version"] == "0.1.0"


def test_only_the_first_request_of_a_connection_is_answered(pristine: SimFleet) -> None:
    two = b'{"id":1,"method":"daemon.info"}\n{"id":2,"method":"latency_status"}\n'
    reply = rpc_raw(pristine.socket_path("v5"), two)
    assert reply.count(b"\n") == 1
    assert json.loads(reply)["id"] == 1


@pytest.mark.parametrize(
    "params",
    [{"since_version": "1"}, {"since_version": -3}, {"since_version": True}, [1], "x", None],
)
def test_params_are_lenient(params: Any, pristine: SimFleet) -> None:
    changes = result(pristine.socket_path("v5"), "state_changed", params)["changes"]
    assert [c["version"] for c in changes] == [1, 2, 3, 4]


def test_since_version_filters_oldest_first(pristine: SimFleet) -> None:
    answer = result(pristine.socket_path("v5"), "state_changed", {"since_version": 2})
    assert [c["version"] for c in answer["changes"]] == [3, 4]
    assert answer["version"] == 4


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("source.hello", {"source_id": "x"}, 'unknown source_kind: ""'),
        ("source.hello", {"source_kind": 'we"ird'}, 'unknown source_kind: "we\\"ird"'),
        ("source.ingest", {"source_kind": "poller", "event": {}}, 'unknown source_kind: "poller"'),
        (
            "source.ingest",
            {"source_kind": "claude_jsonl", "event": {}},
            'unknown source_kind: "claude_jsonl"',
        ),
        (
            "source.ingest",
            {"source_kind": "claude_hooks", "event": {"hook_id": "h"}},
            "invalid event: missing field `hook_type`",
        ),
        (
            "source.ingest",
            {
                "source_kind": "claude_hooks",
                "event": {
                    "hook_id": "h",
                    "hook_type": "idle",
                    "session_id": "s",
                    "timestamp": "2026-01-01T00:00:00Z",
                },
            },
            "invalid event: missing field `data`",
        ),
        (
            "source.ingest",
            {"source_kind": "codex_appserver", "event": {"payload": {}}},
            "invalid event: missing field `id`",
        ),
        (
            "source.ingest",
            {"source_kind": "claude_hooks", "event": {"hook_id": 5}},
            "invalid event: invalid type: integer `5`, expected a string",
        ),
        (
            "source.ingest",
            {
                "source_kind": "codex_appserver",
                "event": {"id": "c", "timestamp": "yesterday"},
            },
            "invalid event: input contains invalid characters",
        ),
        (
            "source.ingest",
            {"source_kind": "claude_hooks"},
            "invalid event: invalid type: null, expected a map",
        ),
    ],
)
def test_invalid_params_messages(
    method: str, params: dict[str, Any], message: str, pristine: SimFleet
) -> None:
    response = rpc(pristine.socket_path("v5"), method, params, request_id=9)
    assert response == {"jsonrpc": "2.0", "id": 9, "error": {"code": -32602, "message": message}}


def test_rejected_hellos_do_not_register(pristine: SimFleet) -> None:
    sock = pristine.socket_path("v5")
    for name in ("source.hello.bad_kind", "source.hello.bad_protocol"):
        request, _ = load_sample(name)
        rpc_raw(sock, json.dumps(request).encode() + b"\n")
    ids = {entry["source_id"] for entry in result(sock, "list_source_registry")}
    assert not ids & {"x", "y"}


# --- projection after ingestion ------------------------------------------------------------------


@pytest.fixture
def fresh_fleet(sock_root: Path, tmp_path: Path) -> Iterator[SimFleet]:
    """A samples daemon with 20 ms ticks whose ingested evidence stays fresh for a minute."""
    scenario = _fast_scenario(tmp_path, 60_000)
    with start_fleet(str(scenario), sock_root / "fresh", daemons=("v5",)) as fleet:
        yield fleet


def _hook(hook_type: str, session_id: str, pane_id: str | None, stamp: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "hook_id": f"h-{time.monotonic_ns()}",
        "hook_type": hook_type,
        "session_id": session_id,
        "timestamp": stamp,
        "data": {},
    }
    if pane_id is not None:
        event["pane_id"] = pane_id
    return {"source_kind": "claude_hooks", "event": event}


def _version(sock: Path) -> int:
    version: int = result(sock, "summary_changed")["version"]
    return version


def test_fresh_hook_event_makes_a_deterministic_pane(fresh_fleet: SimFleet) -> None:
    sock = fresh_fleet.socket_path("v5")
    assert result(sock, "source.ingest", _hook("tool_start", "sess-A", "%1", _now_rfc3339_us()))
    wait_for(lambda: _version(sock) == 6, what="the event to be projected")
    panes = result(sock, "list_panes")
    assert [p["pane_id"] for p in panes] == ["%1", "%4", "%5", "%0", "%2", "%3"]
    pane = panes[0]
    assert pane["evidence_mode"] == pane["signature_class"] == "deterministic"
    assert (pane["title"], pane["title_quality"]) == ("sess-A", "DeterministicBinding")
    assert (pane["activity_state"], pane["provider"]) == ("Running", "claude")
    assert pane["signature_reason"] == "all required deterministic fields present"
    summary = result(sock, "summary_changed", {"since_version": 4})
    assert summary["summary"] == {
        "deterministic": 1,
        "heuristic": 2,
        "managed": 3,
        "total": 6,
        "unmanaged": 3,
    }
    assert (summary["pane_changes"], summary["session_changes"]) == (1, 1)

    # An event without pane_id reaches the pane its session is bound to.
    assert result(sock, "source.ingest", _hook("session_end", "sess-A", None, _now_rfc3339_us()))
    wait_for(lambda: _version(sock) == 8, what="the second event to be projected")
    assert result(sock, "list_panes")[0]["activity_state"] == "Idle"
    session = next(s for s in result(sock, "list_sessions") if s["session_key"] == "sess-A")
    assert (session["activity_state"], session["activity_source"]) == ("Idle", "claude_hooks")
    assert session["evidence_mode"] == session["winner_tier"] == "deterministic"


def test_stale_event_is_accepted_then_suppressed(fresh_fleet: SimFleet) -> None:
    sock = fresh_fleet.socket_path("v5")
    old = time.strftime("%Y-%m-%dT%H:%M:%S.000001Z", time.gmtime(time.time() - 120))
    assert result(sock, "source.ingest", _hook("tool_start", "sess-old", "%1", old)) == {
        "status": "ok"
    }
    time.sleep(0.1)  # several ticks
    assert _version(sock) == 4
    assert all(
        p["pane_id"] != "%1" or p["presence"] == "unmanaged" for p in result(sock, "list_panes")
    )


def test_event_for_a_pane_tmux_does_not_list_projects_a_ghost(fresh_fleet: SimFleet) -> None:
    sock = fresh_fleet.socket_path("v5")
    params = {
        "source_kind": "codex_appserver",
        "event": {
            "id": "c-9",
            "event_type": "turn.started",
            "session_id": "thread-9",
            "timestamp": _now_rfc3339_us(),
            "pane_id": "%99",
            "payload": {"matched_pattern": "codex"},
        },
    }
    assert result(sock, "source.ingest", params) == {"status": "ok"}
    wait_for(lambda: _version(sock) == 6, what="the event to be projected")
    ghost = next(p for p in result(sock, "list_panes") if p["pane_id"] == "%99")
    assert ghost["session_name"] is ghost["window_id"] is ghost["current_cmd"] is None
    assert (ghost["provider"], ghost["activity_state"]) == ("codex", "Running")
    assert ghost["signature_inputs"]["poller_match"] is True
    assert result(sock, "summary_changed")["summary"]["total"] == 6


def test_unavailable_methods_answer_method_not_found(sock_root: Path, tmp_path: Path) -> None:
    scenario = _fast_scenario(
        tmp_path, 3000, '[daemons.v5]\nunavailable_methods = ["latency_status"]\n'
    )
    with start_fleet(str(scenario), sock_root / "gaps", daemons=("v5",)) as fleet:
        reply = rpc_raw(fleet.socket_path("v5"), b'{"id":3,"method":"latency_status"}\n')
        assert reply == NOT_FOUND.replace(b'"id":null', b'"id":3')
        assert result(fleet.socket_path("v5"), "list_panes")
