"""One strict decoding layer between every provider and the judgements (issue 8): JSON with a
key named twice or a non-finite number is refused at the door (RPC, HTTP, files, JSON lines);
records are type- and range-checked; two records with one identity contradict each other
(unless the contract defines the later one as an update, and then it may not rewrite history);
the daemon's own answers (panes, sessions, source health, latency) are checked the same way.
Every case ends UNOBSERVABLE (or a ProtocolError, which the gates read as UNOBSERVABLE) with a
message naming the key or the id; without the strict layer each of them read as something else.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from rpc_servers import THREAD_PREFIX
from rpc_servers import ServerFactory
from rpc_servers import answer
from rpc_servers import canned
from test_gates_units import CATALOG
from test_gates_units import DAY
from test_gates_units import FLEET_PANES
from test_gates_units import HOUR
from test_gates_units import MIN
from test_gates_units import NOW
from test_gates_units import NOW_MS
from test_gates_units import Fleet
from test_gates_units import judge
from test_gates_units import pane

from pytest_canarygate.agtmux.judgement import daemon_ready
from pytest_canarygate.agtmux.judgement import latency_breach_signal
from pytest_canarygate.agtmux.judgement import latency_slo
from pytest_canarygate.agtmux.judgement.health import decode_latency_status
from pytest_canarygate.agtmux.pack import ACCESSORS
from pytest_canarygate.agtmux.providers import Timeouts
from pytest_canarygate.agtmux.providers import make_provider
from pytest_canarygate.agtmux.providers.files import AlertLedgerFile
from pytest_canarygate.agtmux.providers.files import CursorStatsFile
from pytest_canarygate.agtmux.providers.files import SnapshotDirectory
from pytest_canarygate.agtmux.providers.files import SupervisorDirectory
from pytest_canarygate.agtmux.providers.http import HttpOpsProvider
from pytest_canarygate.agtmux.providers.rpc import RpcOpsProvider
from pytest_canarygate.agtmux.records import MAX_INTEGER
from pytest_canarygate.agtmux.records import AlertLedger
from pytest_canarygate.agtmux.records import RecordError
from pytest_canarygate.agtmux.records import Severity
from pytest_canarygate.agtmux.records import check_distinct
from pytest_canarygate.agtmux.records import parse_cursor_stats
from pytest_canarygate.agtmux.records import parse_snapshot_list
from pytest_canarygate.agtmux.records import parse_supervisor_status
from pytest_canarygate.agtmux.runbook import PHASES
from pytest_canarygate.codec import encode
from pytest_canarygate.errors import CanarygateError
from pytest_canarygate.errors import ProtocolError
from pytest_canarygate.errors import StrictJSONError
from pytest_canarygate.observation import read_evidence
from pytest_canarygate.rpc import RpcClient
from pytest_canarygate.strictjson import loads
from pytest_canarygate.verdicts import Verdict

TIMEOUTS = Timeouts(connect=1.0, read=2.0)

# --- strict JSON --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "where"),
    [
        ('{"severity": "Escalate", "severity": "Info"}', "severity", "in the top-level object"),
        (
            '{"entries": [{"a": 1}, {"alert_id": "x", "severity": "E", "severity": "I"}]}',
            "severity",
            "in the object at entries[1]",
        ),
        ('{"full_resync_count": 3, "full_resync_count": 0}', "full_resync_count", "top-level"),
        ('[{"status": "degraded", "status": "healthy"}]', "status", "in the object at [0]"),
        ('{"a b": {"k": 1, "k": 1}}', "k", 'in the object at ["a b"]'),  # even the same value
        ('{"x": {"y": 1}, "x": {"y": 1}}', "x", "top-level"),
    ],
)
def test_a_key_named_twice_is_refused_naming_key_and_place(text: str, key: str, where: str) -> None:
    with pytest.raises(StrictJSONError) as info:
        loads(text)
    exc = info.value
    assert exc.key == key
    assert f"duplicate key {json.dumps(key)}" in str(exc)
    assert where in str(exc)
    assert "\n" not in str(exc)
    assert not exc.syntax


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("NaN", "non-finite number NaN"),
        ('{"p95_ms": Infinity}', "non-finite number Infinity"),
        ('{"p95_ms": -Infinity}', "non-finite number -Infinity"),
        ('{"created_at_ms": 1e999}', "number 1e999 is out of range"),
        ("[-1e400]", "number -1e400 is out of range"),
        ("1" * 5000, "an integer of 5000 digits is too long"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_numbers_json_has_not_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(StrictJSONError, match=fragment):
        loads(text)


def test_ordinary_json_reads_as_before() -> None:
    text = '{"a": [1, -2, 3.5, 1e300, true, null, "\\u00e9"], "b": {"a": 1}, "c": {}}'
    assert loads(text) == json.loads(text)
    assert loads(b'{"x": 1}') == {"x": 1}


def test_the_strict_error_is_an_engine_error_and_a_value_error() -> None:
    with pytest.raises(StrictJSONError) as info:
        loads("{nope")
    assert isinstance(info.value, CanarygateError)
    assert isinstance(info.value, ValueError)  # call sites catching ValueError still catch it
    assert info.value.syntax
    assert info.value.pos == 1
    with pytest.raises(StrictJSONError, match="not UTF-8"):
        loads(b'{"x": "\xff"}')


# --- the daemon socket: a reply that is not strict JSON is a protocol error ------------------


@pytest.fixture
def serve() -> Iterator[ServerFactory]:
    factory = ServerFactory()
    yield factory
    factory.stop_all()
    leftover = [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]
    assert not leftover, f"server threads left running: {leftover}"


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        (
            '{"jsonrpc":"2.0","id":1,"result":{"status":"degraded","status":"healthy"}}',
            'duplicate key "status" in the object at result',
        ),
        ('{"jsonrpc":"2.0","id":1,"id":1,"result":{}}', 'duplicate key "id"'),
        ('{"jsonrpc":"2.0","id":1,"result":{"p95_ms":NaN}}', "non-finite number NaN"),
        ('{"jsonrpc":"2.0","id":1,"result":{"p95_ms":1e999}}', "1e999 is out of range"),
    ],
)
def test_rpc_reply_that_is_not_strict_json_is_a_protocol_error(
    serve: ServerFactory, reply: str, fragment: str
) -> None:
    server = serve(canned(reply.encode() + b"\n"))
    with pytest.raises(ProtocolError) as info:
        RpcClient(server.uri).call("latency_status")
    message = str(info.value)
    assert "reply is not strict JSON" in message
    assert fragment in message
    assert server.uri in message
    assert "\n" not in message
    # as the run records a failed call, the latency gates read it UNOBSERVABLE, naming the key
    fleet = Fleet.healthy("canary")
    fleet.failed_calls[("v5", "latency_status")] = message
    verdict, why, _ = judge("canary.monitor.latency", fleet)
    assert verdict is Verdict.UNOBSERVABLE, why
    assert fragment in why


def test_ops_answers_over_the_socket_are_strict(serve: ServerFactory) -> None:
    entry = alert_line(7, "Escalate")
    replies = {
        "ops.alert_ledger": {
            "jsonrpc": "2.0",
            "result": {
                "entries": [entry, {**entry, "severity": "Info"}],
                "covers_from_ms": NOW_MS - 30 * DAY,
                "as_of_ms": NOW_MS,
            },
        },
        "ops.snapshot_list": {
            "jsonrpc": "2.0",
            "result": [snapshot(3), snapshot(4), {**snapshot(3), "pane_count": 0}],
        },
    }
    server = serve(answer(replies, {"jsonrpc": "2.0", "result": None}))
    with RpcOpsProvider(server.uri, TIMEOUTS) as provider:
        with pytest.raises(ProtocolError, match=r"entries\[1\]: alert alert-7 is listed twice"):
            provider.alert_entries()
        with pytest.raises(ProtocolError, match=r"\[2\]: snapshot snap-3 is listed twice"):
            provider.snapshots()


# --- HTTP ----------------------------------------------------------------------------------


class _Canned(BaseHTTPRequestHandler):
    server: _CannedServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = self.server.bodies.get(self.path.split("?")[0].rsplit("/", 1)[-1], b"{}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _CannedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, bodies: dict[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _Canned)
        self.bodies = bodies
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/ops"

    def stop(self) -> None:
        self.shutdown()
        self._thread.join(timeout=5)
        self.server_close()


@pytest.fixture
def http_bodies() -> dict[str, bytes]:
    return {}


@pytest.fixture
def http_server(http_bodies: dict[str, bytes]) -> Iterator[_CannedServer]:
    server = _CannedServer(http_bodies)
    yield server
    server.stop()


def test_http_answers_are_strict(http_server: _CannedServer, http_bodies: dict[str, bytes]) -> None:
    http_bodies["cursor_stats"] = (
        b'{"fetched": 5, "committed": 5, "invalid_streak": 0, "max_invalid_streak": 0, '
        b'"retry_count": 0, "full_resync_count": 3, "full_resync_count": 0, '
        b'"last_advanced_at_ms": 1, "covers_from_ms": 0, "as_of_ms": 2}'
    )
    http_bodies["binding_stats"] = b'{"cas_conflicts": NaN}'
    entry = alert_line(2, "Escalate")
    http_bodies["alert_ledger"] = json.dumps(
        {"entries": [entry, entry], "covers_from_ms": 0, "as_of_ms": NOW_MS}
    ).encode()
    with HttpOpsProvider(http_server.base, TIMEOUTS) as provider:
        with pytest.raises(ProtocolError) as info:
            provider.cursor_stats()
        assert 'body is not strict JSON (duplicate key "full_resync_count"' in str(info.value)
        with pytest.raises(ProtocolError, match="non-finite number NaN"):
            provider.binding_stats()
        with pytest.raises(ProtocolError, match="alert alert-2 is listed twice"):
            provider.alert_entries()


# --- files ---------------------------------------------------------------------------------


def alert_line(n: int, severity: str, resolved: int | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "alert_id": f"alert-{n}",
        "severity": severity,
        "source": "supervisor",
        "message": "codex app-server hold-down",
        "created_at_ms": NOW_MS - 3 * HOUR,
        "resolved_at_ms": resolved,
        "resolve_policy": "ManualAck",
        **extra,
    }


def snapshot(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "snapshot_id": f"snap-{n}",
        "created_at_ms": NOW_MS - n * MIN,
        "projection_version": 100 + n,
        "session_count": 3,
        "pane_count": 4,
        "trigger": "Periodic",
        "size_bytes": 9000,
        **extra,
    }


def ledger(tmp_path: Path, *lines: object) -> AlertLedgerFile:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path = tmp_path / "alerts.jsonl"
    path.write_text(f'{{"header": {{"covers_from_ms": {NOW_MS - 30 * DAY}}}}}\n{text}\n')
    return AlertLedgerFile(path.as_uri())


RESOLVED = NOW_MS - 2 * HOUR


@pytest.mark.parametrize(
    ("first", "later", "fragment"),
    [
        (
            alert_line(7, "Escalate"),
            alert_line(7, "Info"),
            "severity lowered from Escalate to Info",
        ),
        (
            alert_line(7, "Escalate", RESOLVED),
            alert_line(7, "Escalate"),
            f"resolution at {RESOLVED} taken back (reopened)",
        ),
        (
            alert_line(7, "Warn", RESOLVED),
            alert_line(7, "Warn", RESOLVED - HOUR),
            f"resolved_at_ms moved from {RESOLVED} to {RESOLVED - HOUR}",
        ),
        (
            alert_line(7, "Degraded"),
            alert_line(7, "Degraded", created_at_ms=NOW_MS - 10 * DAY),
            "created_at_ms moved from",
        ),
        (
            alert_line(7, "Degraded"),
            alert_line(7, "Degraded", source="latency_window"),
            "source changed from supervisor to latency_window",
        ),
        (
            alert_line(7, "Degraded"),
            alert_line(7, "Degraded", resolve_policy="AutoResolve"),
            "resolve_policy changed from ManualAck to AutoResolve",
        ),
    ],
)
def test_a_ledger_line_may_not_rewrite_history(
    tmp_path: Path, first: dict[str, Any], later: dict[str, Any], fragment: str
) -> None:
    provider = ledger(tmp_path, first, alert_line(8, "Info"), later)
    with pytest.raises(ProtocolError) as info:
        provider.alert_entries()
    message = str(info.value)
    assert "line 4: alert_id: alert alert-7 is recorded again with" in message
    assert fragment in message
    assert "the ledger contradicts itself" in message


def test_a_ledger_line_may_resolve_or_raise_an_alert(tmp_path: Path) -> None:
    provider = ledger(
        tmp_path,
        alert_line(1, "Warn"),
        alert_line(2, "Degraded"),
        alert_line(1, "Warn", RESOLVED),  # resolved: the contract's update
        alert_line(2, "Escalate", message="worse"),  # raised
        alert_line(1, "Warn", RESOLVED),  # the same line again: harmless
        {"checkpoint": {"at_ms": NOW_MS}},
    )
    entries = {e.alert_id: e for e in provider.alert_entries().records}
    assert entries["alert-1"].resolved_at_ms == RESOLVED
    assert entries["alert-2"].severity is Severity.ESCALATE
    assert entries["alert-2"].message == "worse"


def test_a_ledger_line_with_a_key_twice_names_line_and_key(tmp_path: Path) -> None:
    line = json.dumps(alert_line(7, "Escalate"))[:-1] + ', "severity": "Info"}'
    with pytest.raises(ProtocolError) as info:
        ledger(tmp_path, alert_line(1, "Warn"), line).alert_entries()
    assert "line 3" in str(info.value)
    assert 'duplicate key "severity"' in str(info.value)


def test_json_files_are_strict(tmp_path: Path) -> None:
    stats = tmp_path / "cursor.json"
    stats.write_text('{"fetched": 1, "full_resync_count": 3, "full_resync_count": 0}')
    with pytest.raises(ProtocolError, match='duplicate key "full_resync_count"'):
        CursorStatsFile(stats.as_uri()).cursor_stats()
    stats.write_text('{"fetched": Infinity}')
    with pytest.raises(ProtocolError, match="non-finite number Infinity"):
        CursorStatsFile(stats.as_uri()).cursor_stats()
    folder = tmp_path / "supervisor"
    folder.mkdir()
    (folder / "events.jsonl").write_text('{"at_ms": 1, "kind": "success", "kind": "failure"}\n')
    with pytest.raises(ProtocolError, match='line 1: not JSON: duplicate key "kind"'):
        SupervisorDirectory(folder.as_uri()).supervisor_events()


def test_one_snapshot_id_in_two_files_contradicts_itself(tmp_path: Path) -> None:
    (tmp_path / "snap-3.json").write_text(json.dumps(snapshot(3)))
    (tmp_path / "snap-4.json").write_text(json.dumps(snapshot(4)))
    (tmp_path / "zz-copy.json").write_text(json.dumps(snapshot(3, projection_version=999)))
    with pytest.raises(ProtocolError) as info:
        SnapshotDirectory(tmp_path.as_uri()).snapshots()
    assert "snapshot snap-3 is listed twice (snap-3.json and zz-copy.json)" in str(info.value)
    assert "contradicts itself" in str(info.value)


# --- the gates reading contradicting evidence files ----------------------------------------

ALERTS_ESCALATE_THEN_INFO = "\n".join(
    [
        json.dumps({"header": {"covers_from_ms": NOW_MS - 30 * DAY}}),
        json.dumps(alert_line(7, "Escalate")),
        json.dumps(alert_line(7, "Info")),
        json.dumps({"checkpoint": {"at_ms": NOW_MS}}),
    ]
)
ALERTS_KEY_TWICE = "\n".join(
    [
        json.dumps({"header": {"covers_from_ms": NOW_MS - 30 * DAY}}),
        json.dumps(alert_line(7, "Escalate"))[:-1] + ', "severity": "Info"}',
        json.dumps({"checkpoint": {"at_ms": NOW_MS}}),
    ]
)
CURSOR_KEY_TWICE = (
    f'{{"fetched": 9, "committed": 9, "invalid_streak": 0, "max_invalid_streak": 0, '
    f'"retry_count": 0, "full_resync_count": 3, "full_resync_count": 0, '
    f'"last_advanced_at_ms": {NOW_MS - 1000}, "covers_from_ms": {NOW_MS - 30 * DAY}, '
    f'"as_of_ms": {NOW_MS}}}'
)
BINDING_OVERFLOW = (
    f'{{"cas_conflicts": 0, "last_conflict_at_ms": null, "covers_from_ms": 1e999, '
    f'"as_of_ms": {NOW_MS}}}'
)
#: accessor -> (files to write, the fragment the gates' message must show)
CONTRADICTIONS: dict[str, tuple[str | dict[str, str], str]] = {
    "alert_entries": (ALERTS_ESCALATE_THEN_INFO, "alert alert-7 is recorded again"),
    "snapshots": (
        {
            "snap-1.json": json.dumps(snapshot(1, trigger="Shutdown")),
            "snap-2.json": json.dumps(snapshot(2, trigger="Manual")),
            "snap-3.json": json.dumps(snapshot(3)),
            "zz.json": json.dumps(snapshot(3, trigger="Manual")),
        },
        "snapshot snap-3 is listed twice",
    ),
    "cursor_stats": (CURSOR_KEY_TWICE, 'duplicate key "full_resync_count"'),
    "binding_stats": (BINDING_OVERFLOW, "1e999 is out of range"),
}
#: Where else a gate may find the same evidence: not served, so the broken kind decides.
ALTERNATIVES = {"cursor_stats": ("log_events",)}


def _write(folder: Path, content: str | dict[str, str]) -> str:
    target = folder / "evidence"
    if isinstance(content, dict):
        target.mkdir()
        for name, text in content.items():
            (target / name).write_text(text)
    else:
        target.write_text(content)
    return target.as_uri()


@pytest.mark.parametrize(
    ("accessor", "content", "fragment"),
    [
        *[
            (accessor, content, fragment)
            for accessor, (content, fragment) in CONTRADICTIONS.items()
        ],
        ("alert_entries", ALERTS_KEY_TWICE, 'duplicate key "severity"'),
    ],
)
def test_every_gate_reading_contradicting_evidence_is_unobservable(
    accessor: str, content: str | dict[str, str], fragment: str, tmp_path: Path
) -> None:
    target = _write(tmp_path, content)
    reading = read_evidence(
        accessor,
        ACCESSORS[accessor],
        target,
        lambda kind, uri: make_provider(kind, uri, timeouts=TIMEOUTS),
        NOW - timedelta(days=15),
        "canarygate.toml",
        encode,
    )
    assert not reading.ok, reading
    assert reading.error_kind == "protocol"
    judged = 0
    for phase in PHASES:
        fleet = Fleet.healthy(phase).unserved(*ALTERNATIVES.get(accessor, ()))
        fleet.readings[accessor] = reading
        for spec in CATALOG.gates_for(phase):
            if not any(n.daemon == "evidence" and n.method == accessor for n in spec.needs):
                continue
            verdict, message, _ = judge(spec.id, fleet)
            assert verdict is Verdict.UNOBSERVABLE, (phase, spec.id, message)
            assert fragment in message, (phase, spec.id, message)
            judged += 1
    assert judged, f"no gate reads {accessor}"


# --- records: types, ranges, identities ----------------------------------------------------

CURSOR = {
    "fetched": 9,
    "committed": 9,
    "invalid_streak": 0,
    "max_invalid_streak": 0,
    "retry_count": 0,
    "full_resync_count": 0,
    "last_advanced_at_ms": 1,
    "covers_from_ms": 0,
    "as_of_ms": 2,
}


@pytest.mark.parametrize("field", ["full_resync_count", "max_invalid_streak", "as_of_ms"])
@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("0", "string '0'"),
        (0.0, "number 0.0"),
        (True, "boolean True"),
        (None, "null None"),
        (-3, "number -3"),
        (MAX_INTEGER + 1, "(year 9999)"),
        (10**400, "(year 9999)"),
    ],
)
def test_counts_and_times_are_non_negative_integers(field: str, value: object, shown: str) -> None:
    with pytest.raises(RecordError) as info:
        parse_cursor_stats({**CURSOR, field: value})
    assert info.value.key == field
    assert shown in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(-0.5, "got number -0.5"), (10**400, "got number 1000"), (float("nan"), "got number nan")],
)
def test_policy_numbers_are_finite_and_non_negative(value: object, expected: str) -> None:
    status = {
        "state": "Ready",
        "policy": {
            "initial_backoff_ms": 1000,
            "multiplier": value,
            "max_backoff_ms": 30000,
            "jitter_pct": 0.2,
            "failure_budget": 5,
            "budget_window_ms": 600000,
            "holddown_ms": 300000,
        },
        "startup_order": [],
        "dependency_gate": {},
        "restart_count": 0,
        "covers_from_ms": 0,
        "as_of_ms": 0,
    }
    with pytest.raises(RecordError) as info:
        parse_supervisor_status(status)
    assert str(info.value).startswith("policy.multiplier: expected a finite number >= 0, ")
    assert expected in str(info.value)


def test_one_snapshot_id_twice_in_a_list_contradicts_itself() -> None:
    with pytest.raises(RecordError) as info:
        parse_snapshot_list([snapshot(1), snapshot(2), snapshot(1, pane_count=0)])
    assert info.value.key == "[2]"
    assert "snapshot snap-1 is listed twice ([0] and [2])" in str(info.value)
    assert len(parse_snapshot_list([snapshot(1), snapshot(2)])) == 2


def test_check_distinct_names_odd_ids_on_one_line() -> None:
    with pytest.raises(RecordError) as info:
        check_distinct(["a\nb", "x", "a\nb"], lambda s: s, "source", key="sources")
    assert 'source "a\\nb" is listed twice (sources[0] and sources[2])' in str(info.value)
    assert "\n" not in str(info.value)


def test_the_ledger_fold_keeps_the_first_order_and_the_last_state() -> None:
    fold = AlertLedger()
    fold.add(alert_line(2, "Warn"))
    fold.add(alert_line(1, "Info"))
    fold.add(alert_line(2, "Warn", RESOLVED))
    assert [(e.alert_id, e.resolved_at_ms) for e in fold.entries()] == [
        ("alert-2", RESOLVED),
        ("alert-1", None),
    ]
    with pytest.raises(RecordError, match="alert alert-2 is recorded again with its severity"):
        fold.add(alert_line(2, "Info", RESOLVED))


# --- the daemon's own answers --------------------------------------------------------------

Fault = Callable[[Fleet], object]


def _set(daemon: str, method: str, value: Any) -> Fault:
    return lambda f: f.calls[daemon].__setitem__(method, value)


def _twice(daemon: str) -> Fault:
    """``%1`` listed twice, the differing copy first (a last-one-wins reader sees parity)."""

    def change(fleet: Fleet) -> None:
        panes = list(fleet.calls[daemon]["list_panes"] or FLEET_PANES)
        first = next(p for p in panes if p["pane_id"] == "%1")
        fleet.calls[daemon]["list_panes"] = [{**first, "activity_state": "Error"}, *panes]

    return change


def _sessions_twice(daemon: str) -> Fault:
    def change(fleet: Fleet) -> None:
        sessions = list(fleet.calls[daemon]["list_sessions"])
        duplicate = {"session_key": "poller-%1", "activity_state": "Error"}
        if not any(s["session_key"] == "poller-%1" for s in sessions):  # v4 at cutover: none
            sessions.append({**duplicate, "activity_state": "Idle"})
        fleet.calls[daemon]["list_sessions"] = [duplicate, *sessions]

    return change


HEALTH_TWICE = [
    ["claude_hooks", {"status": "healthy"}],
    ["codex_appserver", {"status": "down"}],
    ["codex_appserver", {"status": "healthy"}],
    ["poller", {"status": "healthy"}],
]
REGISTRY_TWICE = [
    {"source_id": "ext-hooks", "lifecycle": "stale"},
    {"source_id": "ext-hooks", "lifecycle": "active"},
]
LATENCY = {"status": "healthy", "p95_ms": 36, "consecutive_breaches": 0, "sample_count": 205}
#: (daemon, method, how the answer goes wrong, what the message must name)
DAEMON_FAULTS: list[tuple[str, str, Fault, str]] = [
    *[(d, "list_panes", _twice(d), "pane_id %1 is listed twice") for d in ("v4", "v5")],
    *[
        (d, "list_sessions", _sessions_twice(d), "session_key poller-%1 is listed twice")
        for d in ("v4", "v5")
    ],
    *[
        (d, "list_source_health", _set(d, "list_source_health", HEALTH_TWICE), "codex_appserver")
        for d in ("v4", "v5")
    ],
    *[
        (d, "list_source_registry", _set(d, "list_source_registry", REGISTRY_TWICE), "ext-hooks")
        for d in ("v4", "v5")
    ],
    *[
        (d, "latency_status", _set(d, "latency_status", {**LATENCY, key: value}), key)
        for d in ("v4", "v5")
        for key, value in (
            ("consecutive_breaches", "5"),
            ("consecutive_breaches", 5.0),
            ("consecutive_breaches", None),
            ("consecutive_breaches", -3),
            ("p95_ms", -5),
            ("sample_count", -7),
            ("status", "Healthy"),
        )
    ],
]


@pytest.mark.parametrize(
    ("daemon", "method", "fault", "fragment"),
    DAEMON_FAULTS,
    ids=[f"{d}-{m}-{i}" for i, (d, m, _, _) in enumerate(DAEMON_FAULTS)],
)
def test_every_gate_reading_a_contradicting_answer_is_unobservable(
    daemon: str, method: str, fault: Fault, fragment: str
) -> None:
    judged = 0
    for phase in PHASES:
        fleet = Fleet.healthy(phase)
        fault(fleet)
        fleet.stopped.discard(daemon)  # the contradiction is in an answer: the daemon runs
        for spec in CATALOG.gates_for(phase):
            if not any(n.daemon == daemon and n.method == method for n in spec.needs):
                continue
            verdict, message, _ = judge(spec.id, fleet)
            assert verdict is Verdict.UNOBSERVABLE, (phase, spec.id, message)
            assert fragment in message, (phase, spec.id, message)
            judged += 1
    assert judged, f"no gate reads {daemon} {method}"


def test_the_differing_copy_of_a_pane_does_not_pass_parity() -> None:
    fleet = Fleet.healthy("alpha")
    _twice("v5")(fleet)
    verdict, message, _ = judge("alpha.parity.panes", fleet)
    assert verdict is Verdict.UNOBSERVABLE
    assert "list_panes: pane_id %1 is listed twice (elements 0 and 1)" in message
    assert "the answer contradicts itself" in message


@pytest.mark.parametrize(
    ("broken", "fragment"),
    [
        ({"presence": "MANAGED"}, "presence 'MANAGED' is not one of managed, unmanaged"),
        ({"session_name": 7}, "session_name 7 is not a string or null"),
        ({"session_name": ...}, "no session_name"),
    ],
)
def test_a_pane_of_unknown_shape_is_not_skipped(broken: dict[str, Any], fragment: str) -> None:
    """An unknown presence would make a managed pane look unmanaged: "no v4 sessions" PASS."""
    fleet = Fleet.healthy("cutover")
    bad = {**pane("%9", "session-alpha"), **broken}
    fleet.calls["v4"]["list_panes"] = [{k: v for k, v in bad.items() if v is not ...}]
    fleet.stopped.discard("v4")  # v4 still runs and answers with that pane
    verdict, message, _ = judge("cutover.verify.zero-v4-sessions", fleet)
    assert verdict is Verdict.UNOBSERVABLE, message
    assert f"element 0 (pane_id %9): {fragment}" in message


# --- latency_status ------------------------------------------------------------------------

BAD_LATENCY = [
    ({"consecutive_breaches": "5"}, "consecutive_breaches '5'"),
    ({"consecutive_breaches": 5.0}, "consecutive_breaches 5.0"),
    ({"consecutive_breaches": None}, "consecutive_breaches None"),
    ({"consecutive_breaches": -3}, "consecutive_breaches -3"),
    ({"consecutive_breaches": True}, "consecutive_breaches True"),
    ({"p95_ms": -5}, "p95_ms -5"),
    ({"p95_ms": None}, "p95_ms None"),
    ({"p95_ms": "36"}, "p95_ms '36'"),
    ({"sample_count": -7}, "sample_count -7"),
    ({"sample_count": ...}, "sample_count missing"),
    ({"min_required": -1}, "min_required -1"),
    ({"status": "warming_up"}, "status 'warming_up', not one of not_started"),
    ({"status": ...}, "status missing"),
]


@pytest.mark.parametrize(("change", "fragment"), BAD_LATENCY)
@pytest.mark.parametrize(
    "judgement",
    [latency_slo, latency_breach_signal, daemon_ready],
    ids=["slo", "signal", "ready"],
)
def test_latency_status_values_are_checked(
    change: dict[str, Any], fragment: str, judgement: Callable[[object], Any]
) -> None:
    answer = {k: v for k, v in {**LATENCY, **change}.items() if v is not ...}
    judged = judgement(answer)
    assert judged.verdict is Verdict.UNOBSERVABLE, judged.message
    assert fragment in judged.message
    assert "\n" not in judged.message
    assert isinstance(decode_latency_status(answer), str)


@pytest.mark.parametrize(
    "answer",
    [
        {"status": "not_started", "sample_count": 0, "p95_ms": None, "consecutive_breaches": 0},
        {
            "status": "insufficient_data",
            "sample_count": 12,
            "min_required": 200,
            "p95_ms": None,
            "consecutive_breaches": 0,
        },
        LATENCY,
        {**LATENCY, "status": "degraded", "p95_ms": 3224, "consecutive_breaches": 10},
        {
            **LATENCY,
            "status": "breached",
            "p95_ms": 3224,
            "consecutive_breaches": 2,
            "breach_threshold": 3,
        },
    ],
)
def test_every_shape_the_daemon_answers_decodes(answer: dict[str, Any]) -> None:
    decoded = decode_latency_status(answer)
    assert not isinstance(decoded, str), decoded
    assert decoded.status == answer["status"]
    assert decoded.consecutive_breaches == answer["consecutive_breaches"]
    assert latency_slo(answer).verdict is not Verdict.UNOBSERVABLE
