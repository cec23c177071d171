"""A hostile relay in front of a daemon's Unix socket, for the fault-matrix tests and benchmark.

:class:`Relay` starts this file as a child process (stdlib only) that listens on its own socket
(``<0700 temp folder>/agtmuxd.sock``, mode 0600, same user: the engine's trust check accepts it,
and with no simulator marker beside it a run counts as LIVE). Each connection carries one
JSON-RPC request line and gets one reply line (daemon facts 1.3): the relay reads the request,
forwards it to the upstream daemon, and hands back the reply, or does something else to it, as
the fault planned for that method says (:data:`FAULTS`). ``missing`` and ``refused`` concern the
whole endpoint: no process then runs, the socket is absent or a stale file nobody listens on.

Every connection, the relay logs one JSON line: the method, which reading of it this was, the
fault and whether it changed anything (``applied``: a mutation that found nothing to change,
such as ``future`` on an answer without timestamps, is not a fault that was tried).
:meth:`Relay.log` reads them after :meth:`Relay.stop`.

The child stops by itself: when its stdin (a pipe from the parent) reaches EOF, on SIGTERM, or
after ``--lifetime`` seconds; every wait inside it is bounded too.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import IO
from typing import Any

SOCKET_NAME = "agtmuxd.sock"
#: The faults of one whole endpoint: no relay process runs.
ENDPOINT_FAULTS = ("missing", "refused")
#: The faults applied to one method's answers (a name, optionally with a parameter).
METHOD_FAULTS = (
    "transparent",
    "hang",
    "bytewise",
    "slow",
    "midclose",
    "garbage",
    "wrong-shape",
    "huge",
    "rpc-error",
    "wrong-id",
    "changes",
    "dup-keys",
    "dup-records",
    "future",
    "out-of-range",
    "nan",
    "impersonate",
)
FAULTS: Mapping[str, str] = {
    "missing": "no socket at the endpoint",
    "refused": "a stale socket file nobody listens on",
    "transparent": "the daemon's own answer, relayed unchanged",
    "hang": "reads the request and never answers (holds the connection open)",
    "bytewise": "the daemon's answer one byte per write, finishing well within the timeouts",
    "slow": "the daemon's answer one byte every 0.25 s: not finished within the read timeout",
    "midclose": "closes the connection halfway through the daemon's answer",
    "garbage": "answers bytes that are not JSON",
    "wrong-shape": "valid JSON-RPC for this request, but the result has the wrong type",
    "huge": "a 20 MB answer (valid JSON-RPC, a string result)",
    "rpc-error": "a JSON-RPC error object instead of the result",
    "wrong-id": "the daemon's answer under another request's id",
    "changes": "the first reading relayed, later readings changed (same process, other answer)",
    "dup-keys": 'each object key written twice, a bad value first ("status": "degraded", '
    '"status": "healthy")',
    "dup-records": "one record twice under one identity (pane id, ...), the differing copy first",
    "future": "every timestamp of something that happened moved a year ahead",
    "out-of-range": "a number replaced by a value of the wrong type or range",
    "nan": "numbers replaced by NaN / Infinity literals",
    "impersonate": "daemon.info's pid (and the pid in its nonce) rewritten to the relay's own",
}
#: Faults whose answer is still the daemon's own, correct one: judged as without the relay.
BENIGN = frozenset({"transparent", "bytewise"})

HUGE_BYTES = 20 * 1024 * 1024
MAX_HOLD_S = 60.0
"""The longest the relay holds a connection open (``hang``, ``slow``) before closing it."""
REQUEST_TIMEOUT_S = 5.0
UPSTREAM_TIMEOUT_S = 10.0
MAX_REQUEST_BYTES = 1 << 20
MAX_UPSTREAM_BYTES = 64 << 20
YEAR = timedelta(days=365)
YEAR_MS = 365 * 86_400 * 1000
YEAR_NS = YEAR_MS * 1_000_000

#: ISO-8601 UTC timestamps as the daemon writes them (up to nanoseconds).
ISO_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")
#: Epoch-millisecond fields that say when something happened (not when it is due).
HAPPENED_MS = re.compile(r"((^|_)at_ms|^as_of_ms|_heartbeat_ms)$")
#: ``daemon.info.nonce``: "<pid>-<ns since the epoch at start>".
NONCE = re.compile(r"^(\d+)-(\d+)$")
#: The fields that identify a record, in the order they are looked for.
IDENTITY_KEYS = ("pane_id", "session_key", "alert_id", "snapshot_id", "source_id")
#: A worse value for fields whose healthy value is known: written first, the real one last.
POISON: Mapping[str, Any] = {
    "healthy": "degraded",
    "Ready": "HoldDown",
    "managed": "unmanaged",
    "deterministic": "heuristic",
    "Info": "Escalate",
    "Warn": "Escalate",
    "active": "stale",
    "v4": "v5",
    "v5": "v4",
    "Running": "Error",
    "Idle": "Error",
}
#: The field ``changes`` alters on later readings, per method (else the first scalar found).
CHANGED_FIELD = {"daemon.info": "version", "summary_changed": "version"}
#: What ``out-of-range`` writes when no parameter is given: every integer made negative.
DEFAULT_OUT_OF_RANGE = ("*", "-7")


# --- the parent's side ------------------------------------------------------------------------


def short_tempdir(prefix: str = "cg-relay-") -> Path:
    """A fresh 0700 directory with a path short enough for a socket inside it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o700)
    if len(os.fsencode(path / SOCKET_NAME)) >= 100:
        shutil.rmtree(path, ignore_errors=True)
        raise RuntimeError(f"temp dir path too long for a socket: {path}")
    return path


def stale_socket(path: Path) -> None:
    """Leave a socket file nobody listens on (bound, never listened, closed): connect refuses."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fspath(path))
        os.chmod(path, 0o600)
    finally:
        sock.close()


FaultSpec = str | tuple[str, Any]
"""A fault name, or (name, parameter): ``("out-of-range", ["consecutive_breaches", '"5"'])``
sets that field to the JSON text given (``"*"``: every integer field)."""


def _spec(fault: FaultSpec) -> list[Any]:
    name, param = (fault, None) if isinstance(fault, str) else fault
    if name not in METHOD_FAULTS:
        raise ValueError(f"unknown method fault {name!r}; known: {', '.join(METHOD_FAULTS)}")
    return [name, param]


class Relay:
    """A relay in front of ``upstream`` (a ``unix://`` URI or a socket path).

    ``faults`` maps a method (or ``"*"``, every other method) to its fault; methods not named
    are relayed unchanged. ``endpoint_fault`` (``missing`` or ``refused``) replaces the whole
    relay. Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        upstream: str | os.PathLike[str],
        faults: Mapping[str, FaultSpec] | None = None,
        *,
        endpoint_fault: str | None = None,
        lifetime_s: float = 900.0,
        ready_timeout_s: float = 10.0,
    ) -> None:
        if endpoint_fault is not None and endpoint_fault not in ENDPOINT_FAULTS:
            raise ValueError(f"unknown endpoint fault {endpoint_fault!r}; known: {ENDPOINT_FAULTS}")
        self.upstream = os.fspath(upstream).removeprefix("unix://")
        self.plan = {method: _spec(fault) for method, fault in (faults or {}).items()}
        self.endpoint_fault = endpoint_fault
        self.lifetime_s = lifetime_s
        self.ready_timeout_s = ready_timeout_s
        self.dir: Path | None = None
        self.path: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None
        self._log_text = ""

    @property
    def uri(self) -> str:
        assert self.path is not None, "relay not started"
        return f"unix://{self.path}"

    @property
    def pid(self) -> int | None:
        """The relay process's pid (what SO_PEERCRED reports for the relay's socket)."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> Relay:
        self.dir = short_tempdir()
        self.path = self.dir / SOCKET_NAME
        try:
            if self.endpoint_fault == "refused":
                stale_socket(self.path)
            elif self.endpoint_fault is None:
                self._spawn()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self) -> None:
        assert self.path is not None
        self._out = tempfile.TemporaryFile()  # closed in stop()
        argv = [
            sys.executable,
            os.path.abspath(__file__),
            "--listen",
            os.fspath(self.path),
            "--upstream",
            self.upstream,
            "--plan",
            json.dumps(self.plan),
            "--lifetime",
            str(self.lifetime_s),
        ]
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.ready_timeout_s
        while not self._accepts():
            if self._proc.poll() is not None:
                raise RuntimeError(f"relay exited with {self._proc.returncode}: {self._output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"relay not ready after {self.ready_timeout_s:g} s")
            time.sleep(0.01)

    def _accepts(self) -> bool:
        assert self.path is not None
        if not self.path.exists():
            return False
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(os.fspath(self.path))
            probe.sendall(b"")  # a probe: the relay sees EOF without a request and closes
            probe.shutdown(socket.SHUT_WR)
            probe.recv(1)
        except OSError:
            return False
        finally:
            probe.close()
        return True

    def _output(self) -> str:
        if self._out is None:
            return self._log_text
        self._out.seek(0)
        return self._out.read().decode("utf-8", "replace")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the relay process (stdin EOF, then SIGTERM, then SIGKILL) and remove its folder.
        Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            assert proc.stdin is not None
            try:
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout / 2)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout / 2)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self._out is not None:
            self._log_text = self._output()
            self._out.close()
            self._out = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> list[dict[str, Any]]:
        """One entry per connection the relay served (read after :meth:`stop`)."""
        entries = []
        for line in self._output().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and "method" in entry:
                entries.append(entry)
        return entries

    def applied(self) -> set[str]:
        """The methods on which a (non-benign) fault changed at least one answer."""
        return {e["method"] for e in self.log() if e.get("applied")}

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --- what the faults do to an answer ----------------------------------------------------------


def _walk(value: Any, visit: Callable[[Any, Any, Any], bool]) -> bool:
    """Call ``visit(container, key, leaf)`` for every scalar leaf (in place edits allowed);
    True if any call returned True."""
    changed = False
    if isinstance(value, dict):
        for key in list(value):
            item = value[key]
            if isinstance(item, dict | list):
                changed |= _walk(item, visit)
            else:
                changed |= visit(value, key, item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict | list):
                changed |= _walk(item, visit)
            else:
                changed |= visit(value, index, item)
    return changed


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def poisoned(value: Any) -> Any:
    """A different, worse-looking value of the same type."""
    if isinstance(value, bool):
        return not value
    if is_int(value):
        return value + 3
    if isinstance(value, float):
        return value + 3.5
    if isinstance(value, str):
        return POISON.get(value, value + "-poisoned")
    if isinstance(value, list):
        return []
    if isinstance(value, dict):
        return {}
    return "poisoned"


def dumps_dup_keys(value: Any) -> tuple[str, bool]:
    """Compact JSON in which every object names each key twice: a poisoned value first, the
    real one last (so a last-wins parser sees the real answer). True if any object was found."""
    found = False

    def enc(item: Any) -> str:
        nonlocal found
        if isinstance(item, dict):
            parts = []
            for key in sorted(item):
                real = item[key]
                name = json.dumps(key)
                parts.append(f"{name}:{json.dumps(poisoned(real), sort_keys=True)}")
                parts.append(f"{name}:{enc(real)}")
                found = True
            return "{" + ",".join(parts) + "}"
        if isinstance(item, list):
            return "[" + ",".join(enc(x) for x in item) + "]"
        return json.dumps(item)

    return enc(value), found


def identity_of(record: Any) -> tuple[str, Any] | None:
    """The identity field of a record (or a ``[name, {...}]`` pair's name), if it has one."""
    if isinstance(record, dict):
        for key in IDENTITY_KEYS:
            if key in record:
                return key, record[key]
    if (
        isinstance(record, list)
        and len(record) == 2
        and isinstance(record[0], str)
        and isinstance(record[1], dict)
    ):
        return "0", record[0]
    return None


def differing_copy(record: Any) -> Any:
    """A copy of ``record`` with the same identity and different (worse) other fields."""
    if isinstance(record, list):  # [name, {...}]
        return [record[0], differing_copy(record[1])]
    ident = identity_of(record)
    twin = copy.deepcopy(record)

    def worsen(container: Any, key: Any, leaf: Any) -> bool:
        if container is twin and ident is not None and key == ident[0]:
            return False
        if isinstance(leaf, str) and leaf in POISON:
            container[key] = POISON[leaf]
            return True
        return False

    if not _walk(twin, worsen):  # nothing with a known worse value: change every scalar
        for key, leaf in list(twin.items()):
            if ident is not None and key == ident[0]:
                continue
            if not isinstance(leaf, dict | list):
                twin[key] = poisoned(leaf)
    return twin


def duplicate_records(result: Any) -> bool:
    """Put a differing copy of the first record with an identity before it, in every list of
    such records (top-level or one level inside an object). True if any was found."""
    lists: list[list[Any]] = []
    if isinstance(result, list):
        lists.append(result)
    elif isinstance(result, dict):
        lists += [v for v in result.values() if isinstance(v, list)]
    changed = False
    for records in lists:
        for index, record in enumerate(records):
            if identity_of(record) is not None:
                records.insert(index, differing_copy(record))
                changed = True
                break
    return changed


def shift_time(text: str) -> str | None:
    match = ISO_TIME.match(text)
    if match is None:
        return None
    moved = datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%S") + YEAR
    return moved.strftime("%Y-%m-%dT%H:%M:%S") + (match[2] or "") + match[3]


def move_to_future(result: Any) -> bool:
    """Move every "happened at" timestamp a year ahead (ISO strings, ``*_at_ms``, ``as_of_ms``,
    heartbeats, the start time in ``daemon.info``'s nonce). True if any was found."""

    def visit(container: Any, key: Any, leaf: Any) -> bool:
        if isinstance(leaf, str):
            moved = shift_time(leaf)
            if moved is not None:
                container[key] = moved
                return True
            nonce = NONCE.match(leaf) if key == "nonce" else None
            if nonce is not None:
                container[key] = f"{nonce[1]}-{int(nonce[2]) + YEAR_NS}"
                return True
        if isinstance(key, str) and HAPPENED_MS.search(key) and is_int(leaf):
            container[key] = leaf + YEAR_MS
            return True
        return False

    return _walk(result, visit)


def out_of_range(result: Any, field: str, literal: str) -> bool:
    """Set ``field`` (``"*"``: every integer field) to the JSON value ``literal``."""
    value = json.loads(literal)

    def visit(container: Any, key: Any, leaf: Any) -> bool:
        if not isinstance(container, dict):
            return False
        if (field == "*" and is_int(leaf)) or key == field:
            container[key] = value
            return True
        return False

    return _walk(result, visit)


def non_finite(result: Any) -> tuple[Any, bool]:
    """Numbers replaced by NaN, Infinity, -Infinity in turn; without numbers, a NaN member
    added to the first object (or the result wrapped). Always applied."""
    specials = [float("nan"), float("inf"), float("-inf")]
    count = 0

    def visit(container: Any, key: Any, leaf: Any) -> bool:
        nonlocal count
        if is_int(leaf) or isinstance(leaf, float):
            container[key] = specials[count % 3]
            count += 1
            return True
        return False

    if _walk(result, visit):
        return result, True
    target = result[0] if isinstance(result, list) and result else result
    if isinstance(target, dict):
        target["relay_probe"] = specials[0]
        return result, True
    return {"value": result, "relay_probe": specials[0]}, True


def wrong_shape(result: Any) -> Any:
    if isinstance(result, dict):
        return [result]
    if isinstance(result, list):
        return {"items": result}
    return {"value": result}


def changed_reading(method: str, result: Any) -> bool:
    """Change one field of a later reading: ``version`` for daemon.info (a string) and
    summary_changed (an integer, moved backwards), else the first scalar found."""
    field = CHANGED_FIELD.get(method)
    if isinstance(result, dict) and field in result:
        old = result[field]
        if is_int(old):
            result[field] = old - 5 if old >= 5 else old + 7
        elif isinstance(old, str):
            result[field] = "9.9.9-changed"
        else:
            result[field] = poisoned(old)
        return True
    done = False

    def visit(container: Any, key: Any, leaf: Any) -> bool:
        nonlocal done
        if done:
            return False
        container[key] = poisoned(leaf)
        done = True
        return True

    return _walk(result, visit)


def impersonate(result: Any) -> bool:
    """Claim to be the daemon: the reported pid (and the pid in the nonce) made this
    process's, so that it matches what SO_PEERCRED says of the relay's socket."""
    if not isinstance(result, dict) or "pid" not in result:
        return False
    result["pid"] = os.getpid()
    nonce = NONCE.match(result.get("nonce") or "") if isinstance(result.get("nonce"), str) else None
    if nonce is not None:
        result["nonce"] = f"{os.getpid()}-{nonce[2]}"
    return True


def line(reply: Mapping[str, Any]) -> bytes:
    """The daemon's way: sorted keys, compact, one line (NaN written as the bare literal)."""
    return json.dumps(reply, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def transform(
    fault: str, param: Any, method: str, reading: int, request_id: Any, raw: bytes, prev_id: Any
) -> tuple[bytes | Iterator[bytes], bool]:
    """The bytes (or chunks) to send for ``fault``, and whether the fault changed anything."""
    if fault == "garbage":
        return b"\x00\xff\xfe<garbage>{not: json]]\n", True
    if fault == "rpc-error":
        error = {"code": -32603, "message": "internal error (relay)"}
        return line({"jsonrpc": "2.0", "id": request_id, "error": error}), True
    if fault == "huge":
        return _huge(request_id), True
    if fault in ("transparent", "bytewise", "slow", "midclose"):
        return raw, fault != "transparent"
    try:
        reply = json.loads(raw)
    except ValueError:
        return raw, False
    if not isinstance(reply, dict):
        return raw, False
    if fault == "wrong-id":
        other = prev_id if prev_id is not None and prev_id != request_id else None
        if other is None:
            other = request_id + 1 if is_int(request_id) else 1
        reply["id"] = other
        return line(reply), True
    if "result" not in reply:  # an error answer: nothing to change inside
        return raw, False
    result = reply["result"]
    applied = False
    if fault == "wrong-shape":
        reply["result"] = wrong_shape(result)
        applied = True
    elif fault == "changes":
        applied = reading > 1 and changed_reading(method, result)
    elif fault == "dup-records":
        applied = duplicate_records(result)
    elif fault == "future":
        applied = move_to_future(result)
    elif fault == "out-of-range":
        field, literal = param if param else DEFAULT_OUT_OF_RANGE
        applied = out_of_range(result, field, literal)
    elif fault == "nan":
        reply["result"], applied = non_finite(result)
    elif fault == "impersonate":
        applied = impersonate(result)
    elif fault == "dup-keys":
        body, applied = dumps_dup_keys(result)
        if not applied:  # no object in the result: the envelope names "result" twice
            poison = json.dumps(poisoned(result))
            body = f'{poison},"result":{json.dumps(result)}'
            applied = True
        head = json.dumps({"id": reply.get("id"), "jsonrpc": reply.get("jsonrpc")})[:-1]
        return f'{head},"result":{body}}}\n'.encode(), applied
    return line(reply), applied


def _huge(request_id: Any) -> Iterator[bytes]:
    yield b'{"id":%s,"jsonrpc":"2.0","result":"' % json.dumps(request_id).encode()
    chunk = b"x" * 65536
    left = HUGE_BYTES
    while left > 0:
        yield chunk[: min(left, len(chunk))]
        left -= len(chunk)
    yield b'"}\n'


# --- the relay process ------------------------------------------------------------------------


class _Server:
    def __init__(self, listen: str, upstream: str, plan: Mapping[str, list[Any]]) -> None:
        self.listen = listen
        self.upstream = upstream
        self.plan = plan
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.readings: dict[str, int] = {}
        self.prev_id: Any = None
        self.threads: list[threading.Thread] = []

    def emit(self, entry: Mapping[str, Any]) -> None:
        with self.lock:
            sys.stdout.write(json.dumps(entry) + "\n")
            sys.stdout.flush()

    def serve(self, lifetime: float) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.listen)
        os.chmod(self.listen, 0o600)
        listener.listen(64)
        listener.settimeout(0.1)
        deadline = time.monotonic() + lifetime
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    break
                thread = threading.Thread(target=self.handle, args=(conn,), daemon=True)
                self.threads = [t for t in self.threads if t.is_alive()]
                self.threads.append(thread)
                thread.start()
        finally:
            self.stop.set()
            listener.close()
            try:
                os.unlink(self.listen)
            except OSError:
                pass
            until = time.monotonic() + 5.0
            for thread in self.threads:
                thread.join(max(0.0, until - time.monotonic()))

    def handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                self._handle(conn)
            except OSError:
                pass  # the client went away

    def _handle(self, conn: socket.socket) -> None:
        request = _read_all(conn, REQUEST_TIMEOUT_S, MAX_REQUEST_BYTES)
        if not request.strip():
            return  # a readiness probe
        try:
            parsed = json.loads(request)
            method, request_id = parsed.get("method"), parsed.get("id")
        except (ValueError, AttributeError):
            method, request_id = None, None
        method = method if isinstance(method, str) else "?"
        fault, param = self.plan.get(method, self.plan.get("*", ["transparent", None]))
        with self.lock:
            reading = self.readings[method] = self.readings.get(method, 0) + 1
            prev_id, self.prev_id = self.prev_id, request_id
        entry: dict[str, Any] = {"method": method, "reading": reading, "fault": fault}
        if fault == "hang":
            self.emit({**entry, "applied": True})
            self.stop.wait(MAX_HOLD_S)
            return
        try:
            raw = self._forward(request)
        except OSError as exc:
            self.emit({**entry, "applied": False, "upstream_error": str(exc)})
            return
        out, applied = transform(fault, param, method, reading, request_id, raw, prev_id)
        self.emit({**entry, "applied": applied and fault not in BENIGN})
        conn.settimeout(UPSTREAM_TIMEOUT_S)
        if fault == "bytewise":
            assert isinstance(out, bytes)
            pause = min(0.0005, 0.5 / max(len(out), 1))
            for index in range(len(out)):
                conn.sendall(out[index : index + 1])
                if index % 64 == 63:
                    time.sleep(pause)
        elif fault == "slow":
            assert isinstance(out, bytes)
            for index in range(len(out)):
                if self.stop.wait(0.25) or index * 0.25 > MAX_HOLD_S:
                    return
                conn.sendall(out[index : index + 1])
        elif fault == "midclose":
            assert isinstance(out, bytes)
            conn.sendall(out[: max(1, len(out) // 2)])
        elif isinstance(out, bytes):
            conn.sendall(out)
        else:
            for chunk in out:
                if self.stop.is_set():
                    return
                conn.sendall(chunk)

    def _forward(self, request: bytes) -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as up:
            up.settimeout(UPSTREAM_TIMEOUT_S)
            up.connect(self.upstream)
            up.sendall(request)
            up.shutdown(socket.SHUT_WR)
            return _read_all(up, UPSTREAM_TIMEOUT_S, MAX_UPSTREAM_BYTES)


def _read_all(sock: socket.socket, timeout: float, limit: int) -> bytes:
    """Read until EOF, ``timeout`` in all or ``limit`` bytes, whichever comes first."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a hostile JSON-RPC relay (see the docstring)")
    parser.add_argument("--listen", required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--plan", default="{}")
    parser.add_argument("--lifetime", type=float, default=900.0)
    args = parser.parse_args(argv)
    server = _Server(args.listen, args.upstream, json.loads(args.plan))

    def on_stdin_eof() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except OSError:
            pass
        server.stop.set()

    signal.signal(signal.SIGTERM, lambda *_: server.stop.set())
    threading.Thread(target=on_stdin_eof, daemon=True).start()
    server.serve(args.lifetime)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
