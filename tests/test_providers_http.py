"""The operations contract over HTTP, against a real local ``http.server`` on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from datetime import timezone
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest

from pytest_canarygate.agtmux.providers import Timeouts
from pytest_canarygate.agtmux.providers import http as http_provider
from pytest_canarygate.agtmux.providers import make_provider
from pytest_canarygate.agtmux.providers.http import HttpOpsProvider
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.errors import EndpointTimeout
from pytest_canarygate.errors import NotServed
from pytest_canarygate.errors import ProtocolError
from pytest_canarygate.errors import TransportError

OPS = Path(__file__).parent / "data" / "ops"
T0_MS = 1_795_564_800_000
FAST = Timeouts(connect=1.0, read=0.3)
STALL_S = 30.0  # how long the slow routes stall unless the server stops: far past FAST's deadlines
TRICKLE_S = 0.1  # between the bytes of the trickling route: well inside FAST.read


def read_json(name: str) -> Any:
    return json.loads((OPS / name).read_text())


ANSWERS: dict[str, object] = {
    "snapshot_list": [read_json("snapshots/snap-2.json"), read_json("snapshots/snap-1.json")],
    "supervisor_status": read_json("supervisor/status.json"),
    "supervisor_events": {"events": [], "covers_from_ms": T0_MS, "as_of_ms": T0_MS + 1000},
    "alert_ledger": {"entries": [], "covers_from_ms": T0_MS, "as_of_ms": T0_MS + 1000},
    "cursor_stats": read_json("cursor.json"),
    "binding_stats": read_json("binding.json"),
    "runtime_selector": {"default_daemon": "v4", "v5_enabled": False},
}
MALFORMED: dict[str, object] = {
    "alert_ledger": {"entries": [{"alert_id": 1}], "covers_from_ms": 0, "as_of_ms": 0},
}


class Handler(BaseHTTPRequestHandler):
    """Routes by the first path segment: how the answer goes wrong, if it does."""

    server: OpsHttpServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        self.server.seen.append((parts.path, parse_qs(parts.query)))
        _, mode, name = parts.path.split("/", 2)
        try:
            self._answer(mode, name)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer(self, mode: str, name: str) -> None:
        answers = {"ops": ANSWERS, "malformed": MALFORMED}.get(mode)
        if answers is not None and name in answers:
            self._send(200, json.dumps(answers[name]).encode())
        elif mode in ("ops", "malformed", "none"):
            self._send(404, b'{"error": "not found"}')
        elif mode == "broken":
            self._send(500, b"internal error", "text/plain")
        elif mode == "text":
            self._send(200, b"<html>dashboard</html>", "text/html; charset=utf-8")
        elif mode == "badjson":
            self._send(200, b"{nope")
        elif mode == "redirect":
            self.send_response(302)
            self.send_header("Location", "/ops/" + name)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif mode == "slow":
            if self.server.stall(STALL_S):
                self._send(200, b"{}")
        elif mode == "trickle":  # a byte at a time, each well inside the read timeout
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(int(STALL_S / TRICKLE_S)):
                self.wfile.write(b" ")
                self.wfile.flush()
                if not self.server.stall(TRICKLE_S, late=False):
                    return
            self.server.answered_late.set()
        elif mode == "stall":  # headers and part of the body, then nothing
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b'{"entries": [')
            self.wfile.flush()
            self.server.stall(STALL_S)


class OpsHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[tuple[str, dict[str, list[str]]]] = []
        self.timeout = 0.05
        self._stop = threading.Event()
        self.answered_late = threading.Event()  # a slow route went on to its end
        self._thread = threading.Thread(target=self._serve, name="cg-http-server", daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def _serve(self, lifetime: float = 30.0) -> None:
        deadline = time.monotonic() + lifetime  # stops by itself even if nobody calls stop()
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.handle_request()

    def stall(self, seconds: float, *, late: bool = True) -> bool:
        """Wait ``seconds``, or less if the server stops; True if they passed (and, with
        ``late``, note that a slow route went on to its end)."""
        passed = not self._stop.wait(seconds)
        if passed and late:
            self.answered_late.set()
        return passed

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.server_close()


@pytest.fixture
def server() -> Iterator[OpsHttpServer]:
    srv = OpsHttpServer()
    yield srv
    srv.stop()


def test_every_ops_method_over_http(server: OpsHttpServer) -> None:
    base = f"{server.base}/ops/"
    with make_provider("snapshots", base, timeouts=FAST) as provider:
        snaps = provider.snapshots()
    assert [s.snapshot_id for s in snaps.records] == ["snap-1", "snap-2"]
    assert snaps.source.detail == f"GET {server.base}/ops/snapshot_list"
    supervisor = make_provider("supervisor", base, timeouts=FAST)
    assert supervisor.supervisor_status().one().policy.failure_budget == 5
    events = supervisor.supervisor_events()
    assert events.records == ()
    assert events.covers_from == datetime(2026, 11, 25, tzinfo=timezone.utc)
    assert make_provider("alerts", base).alert_entries().covers_to is not None
    assert make_provider("cursor", base).cursor_stats().one().fetched == 18231
    assert make_provider("binding", base).binding_stats().one().cas_conflicts == 0
    assert make_provider("selector", base).runtime_selector().one().v5_enabled is False
    assert [path for path, _ in server.seen] == [
        "/ops/snapshot_list",
        "/ops/supervisor_status",
        "/ops/supervisor_events",
        "/ops/alert_ledger",
        "/ops/cursor_stats",
        "/ops/binding_stats",
        "/ops/runtime_selector",
    ]


def test_since_goes_in_the_query_string(server: OpsHttpServer) -> None:
    provider = make_provider("alerts", f"{server.base}/ops", timeouts=FAST)
    provider.alert_entries(since=datetime(2026, 11, 25, tzinfo=timezone.utc))
    assert server.seen == [("/ops/alert_ledger", {"since_ms": [str(T0_MS)]})]


def test_404_is_not_served_and_names_the_method(server: OpsHttpServer) -> None:
    base = f"{server.base}/none"
    with pytest.raises(NotServed) as info:
        make_provider("snapshots", base, timeouts=FAST).snapshots()
    assert f"method ops.snapshot_list not served by {base}" in str(info.value)
    assert "404" in str(info.value)


@pytest.mark.parametrize(
    ("mode", "error", "problem"),
    [
        ("broken", TransportError, "HTTP 500 Internal Server Error"),
        ("redirect", TransportError, "HTTP 302 Found to /ops/cursor_stats (redirects are not"),
        ("text", ProtocolError, "expected a JSON answer, got 'text/html; charset=utf-8'"),
        ("badjson", ProtocolError, "body is not JSON"),
        ("slow", EndpointTimeout, "read timed out after 0.3 s"),
        ("stall", EndpointTimeout, "read timed out after 0.3 s"),
    ],
)
def test_broken_http_answers(
    server: OpsHttpServer, mode: str, error: type[Exception], problem: str
) -> None:
    provider = make_provider("cursor", f"{server.base}/{mode}", timeouts=FAST)
    with pytest.raises(error) as info:
        provider.cursor_stats()
    assert not server.answered_late.is_set()  # the client gave up, it did not wait the stall out
    message = str(info.value)
    assert problem in message
    assert message.startswith(f"{server.base}/{mode} ops.cursor_stats: GET ")


def test_malformed_record_over_http_names_the_key(server: OpsHttpServer) -> None:
    provider = make_provider("alerts", f"{server.base}/malformed", timeouts=FAST)
    with pytest.raises(ProtocolError, match=r"result: entries\[0\]\.alert_id: expected a string"):
        provider.alert_entries()


def test_body_over_the_cap_is_refused(
    server: OpsHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_provider, "MAX_BODY_BYTES", 64)
    with pytest.raises(ProtocolError, match="body larger than 64 bytes"):
        make_provider("supervisor", f"{server.base}/ops", timeouts=FAST).supervisor_status()


def test_connection_refused_is_a_transport_error() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = make_provider("binding", f"http://127.0.0.1:{port}/ops", timeouts=FAST)
    with pytest.raises(TransportError, match="cannot connect") as info:
        provider.binding_stats()
    assert info.value.method == "ops.binding_stats"


def test_https_uses_the_same_provider() -> None:
    provider = make_provider("alerts", "https://ops.example:8443/agtmux/", timeouts=FAST)
    assert isinstance(provider, HttpOpsProvider)
    assert provider.url_for("ops.alert_ledger") == "https://ops.example:8443/agtmux/alert_ledger"
    provider.close()


@pytest.mark.parametrize(
    "base", ["http://127.0.0.1:1/ops?token=x", "http://127.0.0.1:1/ops#frag", "http:///nohost"]
)
def test_bad_base_urls_are_config_errors(base: str) -> None:
    with pytest.raises(ConfigError):
        make_provider("alerts", base)


def test_a_trickling_server_hits_the_whole_answer_deadline(server: OpsHttpServer) -> None:
    """Each byte arrives well within the read timeout; the answer as a whole must not."""
    provider = make_provider("cursor", f"{server.base}/trickle", timeouts=FAST)
    with pytest.raises(EndpointTimeout, match="the whole answer did not arrive within"):
        provider.cursor_stats()
    assert not server.answered_late.is_set()  # the client gave up while bytes still came
