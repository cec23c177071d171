"""Property-based tests of the strict decoding layer: whatever bytes a daemon sends and whatever
JSON an evidence source holds, the JSON-RPC reply parser, strict JSON and every record decoder
either decode or raise the engine's own decoding error (ProtocolError / RemoteError,
StrictJSONError, RecordError); nothing else escapes to crash a gate. Small, derandomized runs:
the same examples every time, so they never flake and stay fast."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from pytest_canarygate.agtmux.judgement.health import LatencyStatus
from pytest_canarygate.agtmux.judgement.health import decode_latency_status
from pytest_canarygate.agtmux.protocol import agent_sessions
from pytest_canarygate.agtmux.protocol import panes
from pytest_canarygate.agtmux.records import MAX_INTEGER
from pytest_canarygate.agtmux.records import AlertLedger
from pytest_canarygate.agtmux.records import RecordError
from pytest_canarygate.agtmux.records import ms_to_datetime
from pytest_canarygate.agtmux.records import parse_alert_entry
from pytest_canarygate.agtmux.records import parse_archive_manifest
from pytest_canarygate.agtmux.records import parse_binding_stats
from pytest_canarygate.agtmux.records import parse_control
from pytest_canarygate.agtmux.records import parse_cursor_stats
from pytest_canarygate.agtmux.records import parse_history
from pytest_canarygate.agtmux.records import parse_runtime_selector
from pytest_canarygate.agtmux.records import parse_snapshot
from pytest_canarygate.agtmux.records import parse_snapshot_list
from pytest_canarygate.agtmux.records import parse_supervisor_event
from pytest_canarygate.agtmux.records import parse_supervisor_status
from pytest_canarygate.errors import ProtocolError
from pytest_canarygate.errors import RemoteError
from pytest_canarygate.errors import StrictJSONError
from pytest_canarygate.observation import CallRecord
from pytest_canarygate.observation import DaemonObservation
from pytest_canarygate.observation import DaemonView
from pytest_canarygate.observation import GateEvidence
from pytest_canarygate.rpc import RpcClient
from pytest_canarygate.strictjson import loads
from pytest_canarygate.verdicts import Unobservable

SMALL = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- JSON values ---------------------------------------------------------------------------

EDGE_INTEGERS = st.sampled_from([0, 1, -1, 2**63, MAX_INTEGER, MAX_INTEGER + 1, -(10**30), 10**400])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | EDGE_INTEGERS
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(
        ["Ready", "Info", "Escalate", "Manual", "Periodic", "restart", "hold_down", "v5", "snap-1"]
    )
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=8,
)
FINITE_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=8,
)

# --- valid records, to be broken one field at a time ---------------------------------------

#: What a hostile or broken server puts where a value belongs.
HOSTILE_VALUES: list[object] = [
    *(10**400, -(10**400), -1, MAX_INTEGER + 1, True, False, 1.5, -0.5, "5", "", None),
    *(float("nan"), float("inf"), [], {}, [1, 2], {"a": 1}, "Ready", "snap-3"),
]
HOSTILE = st.sampled_from(HOSTILE_VALUES)

T = 1_795_650_900_000
VALID: dict[str, dict[str, Any]] = {
    "snapshot": {
        "snapshot_id": "snap-3",
        "created_at_ms": T,
        "projection_version": 120,
        "session_count": 3,
        "pane_count": 7,
        "trigger": "Manual",
        "size_bytes": 12288,
    },
    "supervisor_status": {
        "state": {"HoldDown": {"until_ms": T}},
        "policy": {
            "initial_backoff_ms": 1000,
            "multiplier": 2.0,
            "max_backoff_ms": 30000,
            "jitter_pct": 0.2,
            "failure_budget": 5,
            "budget_window_ms": 600000,
            "holddown_ms": 300000,
        },
        "startup_order": ["Sources", "Gateway", "Daemon", "Ui"],
        "dependency_gate": {"Sources": {"all_ready": False, "unready": ["x"]}},
        "restart_count": 2,
        "covers_from_ms": T - 1000,
        "as_of_ms": T,
        "jitter_applied": True,
    },
    "supervisor_event": {
        "at_ms": T,
        "kind": "restart",
        "process": "codex_app_server",
        "attempt": 0,
        "after_ms": 1000,
    },
    "alert": {
        "alert_id": "alert-3",
        "severity": "Degraded",
        "source": "source_health",
        "message": "claude_jsonl down",
        "created_at_ms": T,
        "resolved_at_ms": T + 5,
        "resolve_policy": "ManualAck",
    },
    "cursor": {
        "fetched": 18231,
        "committed": 18231,
        "invalid_streak": 0,
        "max_invalid_streak": 1,
        "retry_count": 0,
        "full_resync_count": 0,
        "last_advanced_at_ms": T,
        "covers_from_ms": T - 1000,
        "as_of_ms": T,
    },
    "binding": {
        "cas_conflicts": 1,
        "last_conflict_at_ms": T,
        "covers_from_ms": T - 1000,
        "as_of_ms": T,
    },
    "selector": {
        "default_daemon": "v4",
        "v5_enabled": True,
        "v5_canary_sessions": ["session-alpha"],
        "changed_at_ms": T,
    },
    "archive": {
        "binary": "agtmux-v4",
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "archived_at_ms": T,
        "retain_until_ms": T + 1,
    },
}
VALID["history"] = {"entries": [VALID["alert"]], "covers_from_ms": T - 5, "as_of_ms": T}
VALID["snapshot_list"] = {"list": [VALID["snapshot"], {**VALID["snapshot"], "snapshot_id": "s"}]}


def _ledger(value: object, key: str) -> object:
    fold = AlertLedger()
    items = value if isinstance(value, list) else [value]
    return [fold.add(item, f"{key}[{i}]") for i, item in enumerate(items)]


def _history(value: object, key: str) -> object:
    return parse_history(value, "entries", parse_alert_entry, key)


def _snapshot_list(value: object, key: str) -> object:
    return parse_snapshot_list(value.get("list") if isinstance(value, dict) else value, key)


DECODERS: dict[str, tuple[str, Callable[[object, str], object]]] = {
    "parse_snapshot": ("snapshot", parse_snapshot),
    "parse_snapshot_list": ("snapshot_list", _snapshot_list),
    "parse_supervisor_status": ("supervisor_status", parse_supervisor_status),
    "parse_supervisor_event": ("supervisor_event", parse_supervisor_event),
    "parse_alert_entry": ("alert", parse_alert_entry),
    "AlertLedger.add": ("alert", _ledger),
    "parse_history": ("history", _history),
    "parse_control": ("alert", parse_control),
    "parse_cursor_stats": ("cursor", parse_cursor_stats),
    "parse_binding_stats": ("binding", parse_binding_stats),
    "parse_runtime_selector": ("selector", parse_runtime_selector),
    "parse_archive_manifest": ("archive", parse_archive_manifest),
}


@st.composite
def mutated(draw: st.DrawFn, base: object) -> object:
    """``base`` with some values replaced by arbitrary JSON, some keys dropped or added, at any
    depth: near-valid records reach every check, not only the first."""
    if isinstance(base, dict):
        out: dict[str, object] = {}
        for key, value in base.items():
            action = draw(st.sampled_from(["keep", "keep", "recurse", "replace", "drop"]))
            if action == "keep":
                out[key] = value
            elif action == "recurse":
                out[key] = draw(mutated(value))
            elif action == "replace":
                out[key] = draw(st.one_of(HOSTILE, JSON))
        out.update(draw(st.dictionaries(st.text(max_size=6), JSON, max_size=2)))
        return out
    if isinstance(base, list):
        items = [draw(mutated(item)) for item in base]
        if items and draw(st.booleans()):
            items.append(items[0])  # an identity twice
        return items
    return draw(st.one_of(st.just(base), HOSTILE, JSON))


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_every_record_decoder_raises_only_record_errors(name: str) -> None:
    template, decode = DECODERS[name]

    @SMALL
    @given(value=st.one_of(JSON, mutated(VALID[template])))
    def run(value: object) -> None:
        try:
            decode(value, "result")
        except RecordError as exc:
            error: RecordError | None = exc
        else:
            error = None
        if error is not None:
            assert "\n" not in str(error)
            assert error.key == "" or error.key.startswith(("result", "["))

    run()


_GONE = object()


def _every_time_converts(value: object) -> None:
    """Every ``*_ms`` of a decoded record is a time the providers and judgements can use."""
    if isinstance(value, list | tuple):
        for item in value:
            _every_time_converts(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.name.endswith("_ms") and isinstance(item, int):
                ms_to_datetime(item)
            _every_time_converts(item)


def _leaves(value: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    if isinstance(value, dict):
        return [path, *(p for k, v in value.items() for p in _leaves(v, (*path, k)))]
    if isinstance(value, list):
        return [path, *(p for i, v in enumerate(value) for p in _leaves(v, (*path, i)))]
    return [path]


def _replaced(value: object, path: tuple[object, ...], new: object) -> object:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        out = dict(value)
        if rest or new is not _GONE:
            out[str(head)] = _replaced(value[str(head)], rest, new)
        else:
            del out[str(head)]
        return out
    assert isinstance(value, list)
    items = list(value)
    assert isinstance(head, int)
    if rest or new is not _GONE:
        items[head] = _replaced(items[head], rest, new)
    else:
        del items[head]
    return items


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_every_field_broken_one_at_a_time_raises_only_record_errors(name: str) -> None:
    """Exhaustive where the random search is thin: each field of a valid record, at any depth,
    replaced by each hostile value or removed."""
    template, decode = DECODERS[name]
    tried = 0
    for path in _leaves(VALID[template]):
        for new in (*HOSTILE_VALUES, _GONE):
            if not path and new is _GONE:
                continue
            try:
                decoded = decode(_replaced(VALID[template], path, new), "result")
            except RecordError:
                pass
            else:
                _every_time_converts(decoded)
            tried += 1
    assert tried > len(HOSTILE_VALUES)


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_every_valid_template_decodes(name: str) -> None:
    """The templates the properties break are themselves valid (else they test too little)."""
    template, decode = DECODERS[name]
    decode(VALID[template], "result")


@SMALL
@given(text=st.one_of(st.text(max_size=60), st.builds(json.dumps, JSON)))
def test_strict_json_raises_only_its_own_error(text: str) -> None:
    try:
        loads(text)
    except StrictJSONError as exc:
        error: StrictJSONError | None = exc
    else:
        error = None
    assert error is None or "\n" not in str(error)


@SMALL
@given(value=FINITE_JSON)
def test_strict_json_reads_what_json_writes(value: object) -> None:
    text = json.dumps(value)
    assert loads(text) == json.loads(text)


@SMALL
@given(
    value=st.dictionaries(st.text(max_size=8), FINITE_JSON, min_size=1, max_size=5),
    data=st.data(),
)
def test_any_key_written_twice_is_refused_by_name(value: dict[str, object], data: Any) -> None:
    key = data.draw(st.sampled_from(sorted(value)))
    again = json.dumps({key: value[key]})[1:-1]
    text = json.dumps(value)[:-1] + ", " + again + "}"
    with pytest.raises(StrictJSONError) as info:
        loads(text)
    assert info.value.key == key
    assert json.dumps(key)[:60] in str(info.value)


# --- JSON-RPC framing --------------------------------------------------------------------

CLIENT = RpcClient("unix:///run/canarygate-props/agtmuxd.sock")  # never connects here


def _parse(raw: bytes, request_id: int = 1) -> tuple[str, dict[str, Any]]:
    return CLIENT._parse("latency_status", raw, request_id)


@st.composite
def replies(draw: st.DrawFn) -> bytes:
    """JSON-RPC-ish replies: the members a reply may have, each present, absent, wrong or
    repeated; serialized as the daemon would, or cut, doubled, or with a key written twice."""
    members: dict[str, object] = {}
    for name, good in (
        ("jsonrpc", st.just("2.0")),
        ("id", st.sampled_from([1, 2, None, True, 1.0, "1"])),
        ("result", JSON),
        ("error", JSON | st.fixed_dictionaries({"code": EDGE_INTEGERS, "message": st.text()})),
    ):
        if draw(st.booleans()):
            members[name] = draw(st.one_of(good, JSON))
    text = json.dumps(members, allow_nan=True)
    how = draw(st.sampled_from(["plain", "plain", "newline", "cut", "twice", "dupkey", "bytes"]))
    if how == "newline":
        text += "\n"
    elif how == "cut":
        text = text[: draw(st.integers(min_value=0, max_value=len(text)))]
    elif how == "twice":
        text = text + "\n" + text
    elif how == "dupkey" and members:
        name = draw(st.sampled_from(sorted(members)))
        text = text[:-1] + ", " + json.dumps({name: members[name]}, allow_nan=True)[1:-1] + "}"
    elif how == "bytes":
        return draw(st.binary(max_size=40))
    return text.encode()


@SMALL
@given(raw=replies())
def test_reply_parsing_raises_only_protocol_or_remote_errors(raw: bytes) -> None:
    try:
        text, response = _parse(raw)
    except (RemoteError, ProtocolError) as exc:
        error: RemoteError | ProtocolError | None = exc
    else:
        error = None
    if isinstance(error, RemoteError):
        assert isinstance(error.code, int)
        assert "\n" not in str(error) or "\n" in error.message
    elif error is not None:
        assert error.method == "latency_status"
        assert "\n" not in str(error)
    else:  # a success: strict JSON, one line, this request's id, a result and no error
        assert response["jsonrpc"] == "2.0"
        assert type(response["id"]) is int
        assert response["id"] == 1
        assert "result" in response
        assert "error" not in response
        assert loads(text) == response


@SMALL
@given(raw=st.binary(max_size=200))
def test_any_bytes_parse_or_raise_protocol_errors(raw: bytes) -> None:
    try:
        _parse(raw)
    except (ProtocolError, RemoteError):
        pass


# --- the daemon's own answers through the pack's view functions --------------------------


def _view(method: str, result: object) -> DaemonView:
    call = CallRecord("v5", "unix:///x.sock", method, 1, None, "t", 1.0, result=result)
    return DaemonView(DaemonObservation("v5", "unix:///x.sock", [call]), GateEvidence())


PANE = {"pane_id": "%1", "presence": "managed", "session_name": "s"}
SESSION = {"session_key": "poller-%1", "presence": "managed"}


@SMALL
@given(result=st.one_of(JSON, mutated([PANE, {**PANE, "pane_id": "%2"}])))
def test_list_panes_view_raises_only_unobservable(result: object) -> None:
    try:
        got = panes(_view("list_panes", result))
    except Unobservable as exc:
        error: Unobservable | None = exc
    else:
        error = None
        ids = [p["pane_id"] for p in got]
        assert len(ids) == len(set(ids))
    assert error is None or "\n" not in str(error)


@SMALL
@given(result=st.one_of(JSON, mutated([SESSION, {**SESSION, "session_key": "k"}])))
def test_list_sessions_view_raises_only_unobservable(result: object) -> None:
    try:
        got = agent_sessions(_view("list_sessions", result))
    except Unobservable:
        pass
    else:
        keys = [s["session_key"] for s in got]
        assert len(keys) == len(set(keys))


LATENCY = {"status": "healthy", "p95_ms": 36, "consecutive_breaches": 0, "sample_count": 205}


@SMALL
@given(result=st.one_of(JSON, mutated(LATENCY)))
def test_latency_status_decodes_or_says_why(result: object) -> None:
    decoded = decode_latency_status(result)
    if isinstance(decoded, str):
        assert "\n" not in decoded
        return
    assert isinstance(decoded, LatencyStatus)
    for value in (decoded.consecutive_breaches, decoded.sample_count, decoded.p95_ms or 0):
        assert type(value) is int
        assert value >= 0
