"""The operations contract over a real Unix-socket JSON-RPC server (one request per connection)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from datetime import datetime
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest

from pytest_canarygate.agtmux.providers import Provider
from pytest_canarygate.agtmux.providers import Severity
from pytest_canarygate.agtmux.providers import Timeouts
from pytest_canarygate.agtmux.providers import make_provider
from pytest_canarygate.agtmux.providers.ops import OPS_METHODS
from pytest_canarygate.errors import EndpointTimeout
from pytest_canarygate.errors import NotServed
from pytest_canarygate.errors import ProtocolError
from pytest_canarygate.errors import RemoteError
from pytest_canarygate.errors import TransportError

OPS = Path(__file__).parent / "data" / "ops"
T0_MS = 1_795_564_800_000
H = 3_600_000
FAST = Timeouts(connect=1.0, read=0.3)
# The eleven methods today's daemon serves; anything else gets -32601.
TODAYS_METHODS = (
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

Answer = Callable[[dict[str, Any]], bytes | None]
"""Builds the reply line for a request; None means: never answer."""


def result(value: object) -> Answer:
    def answer(request: dict[str, Any]) -> bytes:
        reply = {"jsonrpc": "2.0", "id": request.get("id"), "result": value}
        return json.dumps(reply).encode() + b"\n"

    return answer


def error(code: int, message: str) -> Answer:
    def answer(request: dict[str, Any]) -> bytes:
        reply = {
            "jsonrpc": "2.0",
            "id": request.get("id"),
            "error": {"code": code, "message": message},
        }
        return json.dumps(reply).encode() + b"\n"

    return answer


def raw(data: bytes) -> Answer:
    return lambda request: data


def silent(request: dict[str, Any]) -> None:
    return None


class OpsServer:
    """A daemon stand-in: answers each method from ``answers``, -32601 for anything else.

    Lives in a short 0700 temp dir with a 0600 socket (the client's trust check wants both), runs
    in a daemon thread and stops by itself after ``lifetime`` seconds at the latest.
    """

    def __init__(self, answers: dict[str, Answer], lifetime: float = 30.0) -> None:
        self.answers = answers
        self.requests: list[dict[str, Any]] = []
        self.dir = Path(tempfile.mkdtemp(prefix="cg-ops-"))
        os.chmod(self.dir, 0o700)
        self.path = self.dir / "agtmuxd.sock"
        self.uri = f"unix://{self.path}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self._sock.listen(8)
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self.ended_silence = threading.Event()  # a silent answer held on until its end
        self._lifetime = lifetime
        self._deadline = time.monotonic() + lifetime
        self._thread = threading.Thread(target=self._serve, name="cg-ops-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(2.0)
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        request = json.loads(data)
        self.requests.append(request)
        answer = self.answers.get(request["method"], error(-32601, "method not found"))
        reply = answer(request)
        if reply is None:  # hold the connection open without answering, until stopped
            if not self._stop.wait(self._lifetime):
                self.ended_silence.set()
            return
        conn.sendall(reply)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def serve() -> Iterator[Callable[[dict[str, Answer]], OpsServer]]:
    servers: list[OpsServer] = []

    def start(answers: dict[str, Answer]) -> OpsServer:
        server = OpsServer(answers)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def read_json(name: str) -> Any:
    return json.loads((OPS / name).read_text())


def snapshot_list() -> list[Any]:
    return [read_json(f"snapshots/snap-{n}.json") for n in (3, 1, 2)]


def ledger() -> dict[str, Any]:
    lines = [json.loads(line) for line in (OPS / "alerts.jsonl").read_text().splitlines() if line]
    latest = {x["alert_id"]: x for x in lines if "alert_id" in x}  # a resolution replaces
    return {"entries": list(latest.values()), "covers_from_ms": T0_MS, "as_of_ms": T0_MS + 24 * H}


def events() -> dict[str, Any]:
    lines = (OPS / "supervisor" / "events.jsonl").read_text().splitlines()
    records = [x for x in map(json.loads, lines) if "kind" in x]
    return {"events": records, "covers_from_ms": T0_MS, "as_of_ms": T0_MS + 24 * H}


def full_contract() -> dict[str, Answer]:
    return {
        "ops.snapshot_list": result(snapshot_list()),
        "ops.supervisor_status": result(read_json("supervisor/status.json")),
        "ops.supervisor_events": result(events()),
        "ops.alert_ledger": result(ledger()),
        "ops.cursor_stats": result(read_json("cursor.json")),
        "ops.binding_stats": result(read_json("binding.json")),
        "ops.runtime_selector": result(
            {
                "default_daemon": "v5",
                "v5_enabled": True,
                "v5_canary_sessions": [],
                "changed_at_ms": T0_MS,
            }
        ),
    }


def test_every_ops_method_over_the_socket(serve: Callable[[dict[str, Answer]], OpsServer]) -> None:
    server = serve(full_contract())
    with make_provider("snapshots", server.uri, timeouts=FAST) as provider:
        snaps = provider.snapshots()
    assert [s.snapshot_id for s in snaps.records] == ["snap-1", "snap-2", "snap-3"]
    assert snaps.source.detail == "ops.snapshot_list"
    assert isinstance(snaps.raw, list)

    supervisor = make_provider("supervisor", server.uri, timeouts=FAST)
    status = supervisor.supervisor_status()
    assert status.one().restart_count == 2
    assert status.covers_from == datetime(2026, 11, 25, tzinfo=timezone.utc)
    history = supervisor.supervisor_events()
    assert [e.kind for e in history.records].count("restart") == 2
    assert history.covers_to == datetime(2026, 11, 26, tzinfo=timezone.utc)

    alerts = make_provider("alerts", server.uri, timeouts=FAST).alert_entries()
    assert [e.severity for e in alerts.records] == [Severity.INFO, Severity.WARN, Severity.DEGRADED]
    assert alerts.covers_from == datetime(2026, 11, 25, tzinfo=timezone.utc)

    assert make_provider("cursor", server.uri).cursor_stats().one().committed == 18231
    assert make_provider("binding", server.uri).binding_stats().one().cas_conflicts == 0
    selector = make_provider("selector", server.uri).runtime_selector().one()
    assert (selector.default_daemon, selector.v5_enabled) == ("v5", True)
    assert selector.changed_at == datetime(2026, 11, 25, tzinfo=timezone.utc)
    assert [r["method"] for r in server.requests] == list(OPS_METHODS)


def test_since_is_sent_as_since_ms(serve: Callable[[dict[str, Answer]], OpsServer]) -> None:
    server = serve(full_contract())
    provider = make_provider("alerts", server.uri, timeouts=FAST)
    provider.alert_entries(since=datetime(2026, 11, 25, 1, tzinfo=timezone.utc))
    provider.alert_entries()
    assert server.requests[0]["params"] == {"since_ms": T0_MS + H}
    assert "params" not in server.requests[1]


CALLS: list[tuple[str, Callable[[Any], object]]] = [
    ("snapshots", lambda p: p.snapshots()),
    ("supervisor", lambda p: p.supervisor_status()),
    ("supervisor", lambda p: p.supervisor_events()),
    ("alerts", lambda p: p.alert_entries()),
    ("cursor", lambda p: p.cursor_stats()),
    ("binding", lambda p: p.binding_stats()),
    ("selector", lambda p: p.runtime_selector()),
]


@pytest.mark.parametrize(
    ("kind", "call", "method"),
    [(kind, call, method) for (kind, call), method in zip(CALLS, OPS_METHODS, strict=True)],
    ids=OPS_METHODS,
)
def test_todays_daemon_does_not_serve_the_ops_methods(
    serve: Callable[[dict[str, Answer]], OpsServer],
    kind: str,
    call: Callable[[Provider], object],
    method: str,
) -> None:
    server = serve({name: result([]) for name in TODAYS_METHODS})
    provider = make_provider(kind, server.uri, timeouts=FAST)
    with pytest.raises(NotServed) as info:
        call(provider)
    assert f"method {method} not served by {server.uri}" in str(info.value)
    assert (info.value.endpoint, info.value.method) == (server.uri, method)


def test_other_remote_errors_pass_through(serve: Callable[[dict[str, Answer]], OpsServer]) -> None:
    server = serve({"ops.alert_ledger": error(-32602, "invalid params: since_ms")})
    with pytest.raises(RemoteError) as info:
        make_provider("alerts", server.uri, timeouts=FAST).alert_entries()
    assert info.value.code == -32602


@pytest.mark.parametrize(
    ("method", "call", "value", "problem"),
    [
        (
            "ops.alert_ledger",
            lambda p: p.alert_entries(),
            {**ledger(), "entries": [ledger()["entries"][0], {"alert_id": "alert-9"}]},
            "entries[1].severity: missing",
        ),
        (
            "ops.alert_ledger",
            lambda p: p.alert_entries(),
            {"entries": []},
            "covers_from_ms: missing",
        ),
        (
            "ops.supervisor_events",
            lambda p: p.supervisor_events(),
            {"events": {}, "covers_from_ms": 0, "as_of_ms": 0},
            "events: expected an array, got object",
        ),
        (
            "ops.snapshot_list",
            lambda p: p.snapshots(),
            [{**snapshot_list()[0], "projection_version": "7"}],
            "[0].projection_version: expected an integer >= 0, got string '7'",
        ),
        (
            "ops.supervisor_status",
            lambda p: p.supervisor_status(),
            {**read_json("supervisor/status.json"), "as_of_ms": None},
            "as_of_ms: expected a value, got null",
        ),
    ],
)
def test_malformed_results_name_method_and_key(
    serve: Callable[[dict[str, Answer]], OpsServer],
    method: str,
    call: Callable[[Any], object],
    value: object,
    problem: str,
) -> None:
    server = serve({method: result(value)})
    provider = make_provider("supervisor" if "supervisor" in method else "alerts", server.uri)
    with pytest.raises(ProtocolError) as info:
        call(provider)
    message = str(info.value)
    assert f"{server.uri} {method}: result: " in message
    assert problem in message


def test_reply_that_is_not_json_rpc(serve: Callable[[dict[str, Answer]], OpsServer]) -> None:
    server = serve({"ops.cursor_stats": raw(b"hello\n")})
    with pytest.raises(ProtocolError, match="not JSON"):
        make_provider("cursor", server.uri, timeouts=FAST).cursor_stats()


def test_silent_daemon_times_out(serve: Callable[[dict[str, Answer]], OpsServer]) -> None:
    server = serve({"ops.binding_stats": silent})
    with pytest.raises(EndpointTimeout, match="read timed out"):
        make_provider("binding", server.uri, timeouts=FAST).binding_stats()
    assert not server.ended_silence.is_set()  # the client gave up; the server still held on


def test_missing_socket_is_a_transport_error() -> None:
    directory = Path(tempfile.mkdtemp(prefix="cg-ops-"))
    try:
        target = f"unix://{directory / 'agtmuxd.sock'}"
        with pytest.raises(TransportError, match="no socket at") as info:
            make_provider("snapshots", target, timeouts=FAST).snapshots()
        assert info.value.method == "ops.snapshot_list"
    finally:
        shutil.rmtree(directory)
