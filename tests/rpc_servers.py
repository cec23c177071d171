"""Real threaded Unix-socket servers that play the agtmux daemon for the RPC client tests.

Each server lives in its own short ``mkdtemp`` directory (mode 0700; the AF_UNIX path limit is
~107 bytes, too short for pytest's ``tmp_path``) with its socket chmodded to 0600, like the
daemon's. A *handler* decides what a connection gets; the factories below cover the behaviours
the tests need. :meth:`RpcTestServer.stop` joins every thread and removes the directory.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).parent / "data" / "agtmux-samples"
THREAD_PREFIX = "cg-rpc-server"
SOCKET_NAME = "agtmuxd.sock"


def load_sample(name: str) -> dict[str, Any]:
    """A recorded daemon reply (or request) from tests/data/agtmux-samples."""
    data = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def daemon_line(reply: Mapping[str, Any]) -> bytes:
    """Serialize a reply the way the daemon does: sorted keys, compact, one line."""
    return json.dumps(reply, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def short_tempdir() -> Path:
    """A fresh 0700 directory with a path short enough for a socket inside it."""
    path = Path(tempfile.mkdtemp(prefix="cg-"))
    os.chmod(path, 0o700)
    assert len(os.fsencode(path / SOCKET_NAME)) < 100, f"temp dir path too long: {path}"
    return path


def stale_socket(path: Path) -> None:
    """Leave a socket file nobody listens on (bound, never listened, closed): connect refuses."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fspath(path))
        os.chmod(path, 0o600)
    finally:
        sock.close()


@dataclass
class Connection:
    """What the server saw on one accepted connection."""

    request: bytes = b""
    saw_eof: bool = False  # the client half-closed (or closed) its write side
    reply: bytes = b""


class Conversation:
    """One accepted connection, as a handler drives it."""

    def __init__(self, sock: socket.socket, record: Connection, stop: threading.Event) -> None:
        self.sock = sock
        self.record = record
        self.stop = stop

    def read_request(self, timeout: float = 3.0) -> bytes:
        """Read until the client half-closes (or ``timeout`` passes); record what came."""
        self.sock.settimeout(timeout)
        chunks: list[bytes] = []
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    self.record.saw_eof = True
                    break
                chunks.append(chunk)
        except (TimeoutError, OSError):
            pass
        self.record.request = b"".join(chunks)
        return self.record.request

    def request_id(self) -> Any:
        """The id of the request read so far (None if it did not parse)."""
        try:
            return json.loads(self.record.request).get("id")
        except (ValueError, AttributeError):
            return None

    def request_method(self) -> Any:
        """The method of the request read so far (None if it did not parse)."""
        try:
            return json.loads(self.record.request).get("method")
        except (ValueError, AttributeError):
            return None

    def send(self, data: bytes) -> bool:
        """Send ``data``; False if the client went away first."""
        self.sock.settimeout(5.0)
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        self.record.reply += data
        return True


Handler = Callable[[Conversation], None]


class RpcTestServer:
    """A threaded Unix-socket server in its own short temp directory.

    With ``accept=False`` it listens with ``backlog`` and never accepts (for connect timeouts).
    """

    def __init__(self, handler: Handler | None, *, backlog: int = 16, accept: bool = True) -> None:
        self.handler = handler
        self.backlog = backlog
        self.accept = accept
        self.dir = short_tempdir()
        self.path = self.dir / SOCKET_NAME
        self.uri = f"unix://{self.path}"
        self.connections: list[Connection] = []
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> RpcTestServer:
        """Bind (socket mode 0600), listen and start accepting."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(os.fspath(self.path))
            os.chmod(self.path, 0o600)
            listener.listen(self.backlog)
        except BaseException:
            listener.close()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self._listener = listener
        if self.accept:
            self._spawn(self._accept_loop, "accept")
        return self

    def stop(self) -> None:
        """Stop, join every thread and remove the directory."""
        self._stop.set()
        # The accept thread comes first and spawns every other, so the list is complete once
        # the join loop gets past it.
        joined = 0
        while True:
            with self._lock:
                if joined >= len(self._threads):
                    threads = list(self._threads)
                    break
                thread = self._threads[joined]
            thread.join(10.0)
            joined += 1
        if self._listener is not None:
            self._listener.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        alive = [t.name for t in threads if t.is_alive()]
        assert not alive, f"test server threads did not stop: {alive}"

    def __enter__(self) -> RpcTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _spawn(self, target: Callable[[], None], what: str) -> None:
        thread = threading.Thread(target=target, name=f"{THREAD_PREFIX}-{what}", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        # Poll so that stop() is noticed promptly without closing the socket under accept().
        self._listener.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            record = Connection()
            with self._lock:
                self.connections.append(record)
            self._spawn(functools.partial(self._serve, conn, record), "conn")

    def _serve(self, conn: socket.socket, record: Connection) -> None:
        with conn:
            if self.handler is not None:
                self.handler(Conversation(conn, record, self._stop))


# --- behaviours -------------------------------------------------------------------------------


def canned(line: bytes) -> Handler:
    """Read the request, answer ``line`` verbatim."""

    def handle(conv: Conversation) -> None:
        conv.read_request()
        conv.send(line)

    return handle


def answer(replies: Mapping[str, Mapping[str, Any]], default: Mapping[str, Any]) -> Handler:
    """Answer a sample reply chosen by method, its id replaced by the request's id."""

    def handle(conv: Conversation) -> None:
        conv.read_request()
        reply = dict(replies.get(conv.request_method(), default))
        reply["id"] = conv.request_id()
        conv.send(daemon_line(reply))

    return handle


def reply_with(sample: Mapping[str, Any]) -> Handler:
    """Answer ``sample`` to every method, its id replaced by the request's id."""
    return answer({}, sample)


def wrong_id(sample: Mapping[str, Any], offset: int = 1000) -> Handler:
    """Answer ``sample`` with an id that is not the request's."""

    def handle(conv: Conversation) -> None:
        conv.read_request()
        conv.send(daemon_line({**sample, "id": conv.request_id() + offset}))

    return handle


def close_silently() -> Handler:
    """Read the request, close with zero bytes (what the daemon does with malformed JSON)."""

    def handle(conv: Conversation) -> None:
        conv.read_request()

    return handle


def reset() -> Handler:
    """Close without reading: the unread request makes the client see ECONNRESET or EPIPE."""

    def handle(conv: Conversation) -> None:
        pass

    return handle


def sleep_then(seconds: float, line: bytes) -> Handler:
    """Read the request, wait ``seconds`` (or until stopped), then answer ``line``."""

    def handle(conv: Conversation) -> None:
        conv.read_request()
        if not conv.stop.wait(seconds):
            conv.send(line)

    return handle


def never_answer() -> Handler:
    """Read the request and hold the connection open until the server stops."""

    def handle(conv: Conversation) -> None:
        conv.read_request()
        conv.stop.wait()

    return handle


def trickle(interval: float, byte: bytes = b" ") -> Handler:
    """Read the request, then send one byte every ``interval`` seconds, never finishing."""

    def handle(conv: Conversation) -> None:
        conv.read_request()
        while not conv.stop.wait(interval):
            if not conv.send(byte):
                return

    return handle


def huge(size: int) -> Handler:
    """Read the request, then send a ``size``-byte string result in chunks."""

    def handle(conv: Conversation) -> None:
        conv.read_request()
        head = b'{"id":%d,"jsonrpc":"2.0","result":"' % conv.request_id()
        if not conv.send(head):
            return
        chunk = b"x" * 65536
        left = size
        while left > 0 and not conv.stop.is_set():
            if not conv.send(chunk[: min(left, len(chunk))]):
                return
            left -= len(chunk)
        conv.send(b'"}\n')

    return handle


@contextlib.contextmanager
def full_backlog(server: RpcTestServer, limit: int = 64) -> Iterator[bool]:
    """Fill a non-accepting server's backlog; yield whether it filled (False: not reproducible)."""
    fillers: list[socket.socket] = []
    filled = False
    try:
        for _ in range(limit):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(os.fspath(server.path))
            except BlockingIOError:
                sock.close()
                filled = True
                break
            except OSError:
                sock.close()
                break
            fillers.append(sock)
        yield filled
    finally:
        for sock in fillers:
            sock.close()


@dataclass
class ServerFactory:
    """Starts servers for one test and stops them all afterwards (used by fixtures)."""

    servers: list[RpcTestServer] = field(default_factory=list)

    def __call__(
        self, handler: Handler | None, *, backlog: int = 16, accept: bool = True
    ) -> RpcTestServer:
        server = RpcTestServer(handler, backlog=backlog, accept=accept).start()
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        """Stop every server started; check each left nothing behind."""
        for server in self.servers:
            server.stop()
            assert not server.dir.exists(), f"{server.dir} left behind"
