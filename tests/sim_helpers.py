"""Helpers for the simulator tests: raw socket and HTTP clients, process checks, samples."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SAMPLES_DIR = Path(__file__).parent / "data" / "agtmux-samples"
TICK_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")
EVENT_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z")
NONCE = re.compile(r"(\d+)-(\d{19})")
TICK_KEYS = frozenset({"updated_at", "checked_at", "timestamp"})
EPOCH_MS_KEYS = frozenset({"registered_at_ms", "last_heartbeat_ms"})


def short_dir() -> Path:
    """A new short temporary directory (AF_UNIX paths must stay under 108 bytes)."""
    return Path(tempfile.mkdtemp(prefix="cg-t-"))


def rpc_raw(path: Path | str, payload: bytes, timeout: float = 5.0) -> bytes:
    """Send ``payload``, half-close, and return every byte the daemon writes before closing."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(path))
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    return reply


def rpc(path: Path | str, method: str, params: Any = None, request_id: Any = 1) -> dict[str, Any]:
    """One JSON-RPC call; the whole response object."""
    request: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        request["params"] = params
    reply = rpc_raw(path, json.dumps(request).encode() + b"\n")
    response: dict[str, Any] = json.loads(reply)
    return response


def result(path: Path | str, method: str, params: Any = None) -> Any:
    """The ``result`` of a call that must succeed."""
    response = rpc(path, method, params)
    assert "error" not in response, response
    return response["result"]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str, bytes]:
    """(status, Content-Type, body) of a plain GET, whatever the status."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie waiting for a reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat_line.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def sample_names() -> list[str]:
    """Every NAME with both NAME.request.json and NAME.json in the samples directory."""
    return sorted(
        p.name.removesuffix(".request.json")
        for p in SAMPLES_DIR.glob("*.request.json")
        if (SAMPLES_DIR / p.name.replace(".request.json", ".json")).exists()
    )


def load_sample(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(request, expected response) of sample ``name``."""
    request = json.loads((SAMPLES_DIR / f"{name}.request.json").read_text())
    expected = json.loads((SAMPLES_DIR / f"{name}.json").read_text())
    return request, expected


def assert_like_sample(actual: Any, expected: Any, where: str = "$", *, since_ms: int) -> None:
    """Same nested keys, same JSON types, equal values; volatile values checked by format only.

    Volatile: tick times (RFC 3339, nanoseconds, "Z"), event times, epoch milliseconds (which
    must lie between ``since_ms``, when the daemon started, and now), pids and nonces
    ("<pid>-<19 digits>"; the caller checks the pid part against the real pid).
    """
    __tracebackhide__ = True
    key = where.rsplit(".", 1)[-1]
    if key in TICK_KEYS and isinstance(expected, str):
        assert isinstance(actual, str), f"{where}: {actual!r} is not a string"
        assert TICK_TIME.fullmatch(actual), f"{where}: {actual!r} is not RFC 3339 with ns and Z"
    elif key == "deterministic_last_seen" and isinstance(expected, str):
        assert isinstance(actual, str), f"{where}: {actual!r} is not a string"
        assert EVENT_TIME.fullmatch(actual), f"{where}: {actual!r} is not an RFC 3339 time"
    elif key in EPOCH_MS_KEYS:
        assert type(actual) is int, f"{where}: {actual!r} is not an integer"
        now_ms = time.time_ns() // 1_000_000
        assert since_ms <= actual <= now_ms, f"{where}: {actual} is not in {since_ms}..{now_ms}"
    elif key == "nonce":
        assert isinstance(actual, str), f"{where}: {actual!r} is not a string"
        assert NONCE.fullmatch(actual), f"{where}: {actual!r} is not <pid>-<ns since epoch>"
    elif key == "pid":
        assert type(actual) is int, f"{where}: {actual!r} is not an integer"
    else:
        assert type(actual) is type(expected), f"{where}: {actual!r} vs sample {expected!r}"
        if isinstance(expected, dict):
            assert sorted(actual) == sorted(expected), f"{where}: keys differ"
            for name in expected:
                assert_like_sample(
                    actual[name], expected[name], f"{where}.{name}", since_ms=since_ms
                )
        elif isinstance(expected, list):
            assert len(actual) == len(expected), f"{where}: {len(actual)} items vs {len(expected)}"
            for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
                assert_like_sample(got, want, f"{where}[{index}]", since_ms=since_ms)
        else:
            assert actual == expected, f"{where}: {actual!r} vs sample {expected!r}"
