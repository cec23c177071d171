"""JSON-RPC 2.0 client for a daemon's Unix socket (one request per connection).

Framing follows daemon facts 1.3: one request per connection. Connect, write one JSON object
terminated by ``\\n``, half-close the write side, read until EOF, close. Every failure raises an
:class:`~pytest_canarygate.errors.EndpointError` naming the endpoint and the method.

Before each connect the socket and its directory are checked (:mod:`pytest_canarygate.trust`).
After the connect, on Linux, the kernel's ``SO_PEERCRED`` says which uid the serving process runs
as. Elsewhere (macOS, the BSDs) that second check is skipped, and a
:class:`PeerCredentialsUnavailable` warning naming the socket is issued once per socket path.
"""

from __future__ import annotations

import errno
import json
import math
import os
import socket
import struct
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from typing import NoReturn
from typing import TypeAlias

from pytest_canarygate import clock
from pytest_canarygate import strictjson
from pytest_canarygate.endpoints import Endpoint
from pytest_canarygate.endpoints import parse_endpoint
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.errors import EndpointError
from pytest_canarygate.errors import EndpointTimeout
from pytest_canarygate.errors import ProtocolError
from pytest_canarygate.errors import RemoteError
from pytest_canarygate.errors import StrictJSONError
from pytest_canarygate.errors import TransportError
from pytest_canarygate.errors import UntrustedEndpointError
from pytest_canarygate.trust import check_socket_trust

__all__ = ["EXCERPT_CHARS", "Params", "PeerCredentialsUnavailable", "RpcClient", "RpcExchange"]

Params: TypeAlias = Mapping[str, Any] | list[Any] | None
"""Request params: an object, an array, or None to leave ``params`` out."""

EXCERPT_CHARS = 200
"""How much of a bad reply an error message quotes."""
#: How a connect that found nothing listening begins its reason: no socket file at the path, or
#: a socket file nobody accepts on. Both say the daemon is not running there (read-only: the
#: connect changes nothing), unlike a timeout or a refused peer.
NO_SOCKET = "no socket at"
NOT_LISTENING = "connection refused at"

_CHUNK = 256 * 1024  # a large answer in few reads
_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)
# Hints appended to the daemon's own error message (RemoteError.message keeps the original).
_REMOTE_HINTS = {-32601: "method not served by this daemon"}
# Socket paths already warned about (PeerCredentialsUnavailable is issued once per path).
_PEERCRED_WARNED: set[str] = set()
_PEERCRED_LOCK = threading.Lock()


class PeerCredentialsUnavailable(UserWarning):
    """This platform has no ``SO_PEERCRED`` (Linux ``struct ucred``): the kernel check of who
    serves a socket after connecting is skipped; only the owner and mode checks made before the
    connect protect that socket."""


def _peercred_option() -> int | None:
    """``SO_PEERCRED`` where it returns Linux's ``struct ucred`` (pid, uid, gid), else None."""
    if not sys.platform.startswith("linux"):
        return None  # OpenBSD's option of that name returns (uid, gid, pid): not read here
    option = getattr(socket, "SO_PEERCRED", None)
    return option if isinstance(option, int) else None


@dataclass(frozen=True)
class RpcExchange:
    """One successful request/response, kept as evidence.

    ``raw_reply`` is the reply exactly as read (decoded as UTF-8, trailing newline included);
    ``response`` is the parsed JSON-RPC object. Timestamps are UTC; ``elapsed_ms`` is measured on
    a monotonic clock from just before the trust check to just after parsing.
    """

    endpoint: str
    method: str
    request: dict[str, Any]
    raw_reply: str
    response: dict[str, Any]
    started_at: datetime
    finished_at: datetime
    elapsed_ms: float
    #: The pid of the process that served the socket, as the kernel says (SO_PEERCRED); None
    #: where the platform cannot tell.
    peer_pid: int | None = None

    @property
    def result(self) -> Any:
        """The ``result`` member of the response."""
        return self.response["result"]


class RpcClient:
    """JSON-RPC 2.0 client for one ``unix://`` endpoint; one connection per call.

    The trust check (:func:`~pytest_canarygate.trust.check_socket_trust`) runs before every
    connect; ``trust_check=False`` exists only for tests of other paths. ``connect_timeout`` bounds
    the connect; ``read_timeout`` is one deadline for sending the request and reading the whole
    reply. Replies over ``max_reply_bytes`` are refused. Safe to share between threads.
    """

    def __init__(
        self,
        endpoint: str | Endpoint,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        expected_uid: int | None = None,
        max_reply_bytes: int = 64 * 1024 * 1024,
        trust_check: bool = True,
    ) -> None:
        ep = endpoint if isinstance(endpoint, Endpoint) else parse_endpoint(endpoint)
        if ep.scheme != "unix":
            raise ConfigError(
                f"RpcClient speaks JSON-RPC over Unix sockets only; endpoint {ep.uri!r} is "
                f"{ep.scheme}://, expected unix:///absolute/path/to.sock"
            )
        for name, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
        if not (isinstance(max_reply_bytes, int) and max_reply_bytes > 0):
            raise ConfigError(
                f"max_reply_bytes must be a positive integer, got {max_reply_bytes!r}"
            )
        self.endpoint = ep
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.expected_uid = expected_uid
        self.max_reply_bytes = max_reply_bytes
        self.trust_check = trust_check
        self._next_id = 1
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"RpcClient({self.endpoint.uri!r})"

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Refuse further calls. Nothing is held open between calls, so nothing else to do."""
        self._closed = True

    def call(self, method: str, params: Params = None) -> Any:
        """Call ``method`` and return its ``result``; raise an EndpointError otherwise."""
        return self.exchange(method, params).result

    def call_many(self, methods: Sequence[tuple[str, Params]]) -> list[RpcExchange | EndpointError]:
        """Run the calls one after another; a failed call yields its error instead of raising."""
        out: list[RpcExchange | EndpointError] = []
        for method, params in methods:
            try:
                out.append(self.exchange(method, params))
            except EndpointError as exc:
                out.append(exc)
        return out

    def exchange(
        self, method: str, params: Params = None, *, like: RpcExchange | None = None
    ) -> RpcExchange:
        """Call ``method`` and return the whole exchange; raise an EndpointError unless the reply
        is a well-formed JSON-RPC 2.0 success for this request.

        ``like`` is an earlier exchange (a previous reading of the same method): when this reply
        is the same text apart from its leading ``"id"``, the earlier decoded ``result`` is
        reused instead of decoding the same text again; everything else is checked as usual."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        if not isinstance(method, str) or not method:
            raise ConfigError(f"method must be a non-empty string, got {method!r}")
        uri = self.endpoint.uri
        request_id = self._take_id()
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            request["params"] = list(params) if isinstance(params, list) else dict(params)
        try:
            payload = (json.dumps(request, ensure_ascii=False, allow_nan=False) + "\n").encode()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{uri} {method}: params are not JSON-serializable: {exc}") from None

        started_at = clock.wall_now()
        t0 = time.monotonic()
        path = Path(self.endpoint.path)
        if self.trust_check:
            check_socket_trust(path, endpoint=uri, method=method, expected_uid=self.expected_uid)
        raw, peer_pid = self._roundtrip(method, payload)
        text, response = self._parse(method, raw, request_id, like)
        elapsed_ms = (time.monotonic() - t0) * 1000.0
        return RpcExchange(
            endpoint=uri,
            method=method,
            request=request,
            raw_reply=text,
            response=response,
            started_at=started_at,
            finished_at=clock.wall_now(),
            elapsed_ms=round(elapsed_ms, 3),
            peer_pid=peer_pid,
        )

    def _take_id(self) -> int:
        with self._lock:
            request_id = self._next_id
            self._next_id += 1
            return request_id

    def _roundtrip(self, method: str, payload: bytes) -> tuple[bytes, int | None]:
        """Send one request and read its reply; also the pid serving the socket, if known."""
        sock = self._connect(method)
        try:
            peer_pid = self._check_peer(sock, method) if self.trust_check else None
            deadline = time.monotonic() + self.read_timeout
            self._send(sock, method, payload, deadline)
            return self._read(sock, method, deadline), peer_pid
        finally:
            sock.close()

    def _connect(self, method: str) -> socket.socket:
        path = self.endpoint.path
        deadline = time.monotonic() + self.connect_timeout
        pause = 0.005
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                sock.connect(path)
                return sock
            except BlockingIOError:
                # Linux answers EAGAIN at once when the accept backlog is full (there is no
                # pending connect to wait on), so retry until the deadline.
                sock.close()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._connect_timed_out(method)
                time.sleep(min(pause, remaining))
                pause = min(pause * 2, 0.05)
            except TimeoutError:
                sock.close()
                self._connect_timed_out(method)
            except FileNotFoundError:
                sock.close()
                raise TransportError(self.endpoint.uri, method, f"{NO_SOCKET} {path}") from None
            except ConnectionRefusedError:
                sock.close()
                raise TransportError(
                    self.endpoint.uri,
                    method,
                    f"{NOT_LISTENING} {path} (a stale socket file: no daemon is listening)",
                ) from None
            except OSError as exc:
                sock.close()
                raise TransportError(
                    self.endpoint.uri, method, f"cannot connect to {path}: {_oserror(exc)}"
                ) from None

    def _check_peer(self, sock: socket.socket, method: str) -> int | None:
        """Ask the kernel who is serving the socket we reached (the path check before connect
        cannot see a directory swapped between the check and the connect); its pid, or None
        where the platform cannot tell."""
        option = _peercred_option()
        if option is None:
            self._warn_peer_unchecked()
            return None
        creds = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", creds)
        expected = os.geteuid() if self.expected_uid is None else self.expected_uid
        if uid != expected:
            raise UntrustedEndpointError(
                self.endpoint.uri,
                method,
                f"refusing to talk: the process serving {self.endpoint.path} (pid {pid}) runs as "
                f"uid {uid}, expected uid {expected}",
            )
        return int(pid)

    def _warn_peer_unchecked(self) -> None:
        path = self.endpoint.path
        with _PEERCRED_LOCK:
            if path in _PEERCRED_WARNED:
                return
            _PEERCRED_WARNED.add(path)
        warnings.warn(
            PeerCredentialsUnavailable(
                f"{self.endpoint.uri}: SO_PEERCRED is not available on this platform "
                f"({sys.platform}), so canarygate cannot ask the kernel which user serves "
                f"{path}; only the owner and mode checks of the socket and its directory made "
                "before connecting protect it"
            ),
            stacklevel=4,
        )

    def _connect_timed_out(self, method: str) -> NoReturn:
        raise EndpointTimeout(
            self.endpoint.uri,
            method,
            f"connect timed out after {self.connect_timeout:g} s (the socket exists but nothing "
            "accepted the connection: the daemon is stuck or its accept backlog is full)",
        )

    def _send(self, sock: socket.socket, method: str, payload: bytes, deadline: float) -> None:
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.sendall(payload, _SEND_FLAGS)
            sock.shutdown(socket.SHUT_WR)
        except TimeoutError:
            raise EndpointTimeout(
                self.endpoint.uri,
                method,
                f"read timed out after {self.read_timeout:g} s while sending the request "
                "(the daemon is not reading)",
            ) from None
        except OSError as exc:
            raise TransportError(
                self.endpoint.uri, method, f"connection broke while sending: {_oserror(exc)}"
            ) from None

    def _read(self, sock: socket.socket, method: str, deadline: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        cap = self.max_reply_bytes
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                sock.settimeout(remaining)
                chunk = sock.recv(min(_CHUNK, cap + 1 - size))
            except TimeoutError:
                raise EndpointTimeout(
                    self.endpoint.uri,
                    method,
                    f"read timed out after {self.read_timeout:g} s "
                    f"(no complete reply; {size} bytes received)",
                ) from None
            except OSError as exc:
                raise TransportError(
                    self.endpoint.uri,
                    method,
                    f"connection broke while reading the reply after {size} bytes: {_oserror(exc)}",
                ) from None
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                raise ProtocolError(
                    self.endpoint.uri,
                    method,
                    f"reply larger than the {cap}-byte limit (max_reply_bytes); stopped reading",
                )

    def _parse(
        self, method: str, raw: bytes, request_id: int, like: RpcExchange | None = None
    ) -> tuple[str, dict[str, Any]]:
        uri = self.endpoint.uri

        def bad(why: str, text: str) -> ProtocolError:
            return ProtocolError(uri, method, f"{why}: {_excerpt(text)}")

        if not raw:
            raise ProtocolError(
                uri,
                method,
                "empty reply (the daemon closed the connection without answering; "
                "it could not parse the request)",
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise bad(f"reply is not UTF-8 ({exc.reason} at byte {exc.start})", repr(raw)) from None
        end = len(text) - 1 if text.endswith("\n") else len(text)
        if text.find("\n", 0, end) >= 0:
            raise bad(f"reply has {text.count(chr(10), 0, end) + 1} lines, expected one", text)
        response = _same_reply(text, request_id, like)
        if response is None:
            try:
                # The reply with its newline (JSON whitespace): no copy of a large reply.
                response = strictjson.loads(text)
            except StrictJSONError as exc:
                error = exc
                if end != len(text):  # refused: the message's positions are those without it
                    try:
                        strictjson.loads(text[:end])
                    except StrictJSONError as again:
                        error = again
                # Strict: a key named twice in one object says two things at once (which one
                # a reader keeps is not defined), and NaN/Infinity or 1e999 are no JSON numbers.
                why = "reply is not JSON" if error.syntax else "reply is not strict JSON"
                raise bad(f"{why} ({error.reason})", text) from None
        if not isinstance(response, dict):
            raise bad(f"reply is a JSON {_json_type(response)}, not an object", text)
        if response.get("jsonrpc") != "2.0":
            if "jsonrpc" in response:
                why = f'reply has "jsonrpc": {_short(response["jsonrpc"])}, expected "2.0"'
            else:
                why = 'reply has no "jsonrpc": "2.0" member'
            raise bad(why, text)
        has_result = "result" in response
        has_error = "error" in response
        if has_result and has_error:
            raise bad('reply has both "result" and "error"', text)
        if not has_result and not has_error:
            raise bad('reply has neither "result" nor "error"', text)
        reply_id = response.get("id", _MISSING)
        # JSON-RPC 2.0 answers a request whose id could not be read with an error and id null.
        null_id_error = has_error and reply_id is None
        if not (_same_id(reply_id, request_id) or null_id_error):
            shown = "no id" if reply_id is _MISSING else f"id {_short(reply_id)}"
            raise bad(f"reply has {shown}, expected id {request_id}", text)
        if has_error:
            self._raise_remote(method, response["error"], text)
        return text, response

    def _raise_remote(self, method: str, error: object, text: str) -> NoReturn:
        uri = self.endpoint.uri
        if not isinstance(error, dict):
            raise ProtocolError(uri, method, f'"error" is not an object: {_excerpt(text)}')
        code = error.get("code")
        message = error.get("message")
        if type(code) is not int or not isinstance(message, str):
            raise ProtocolError(
                uri,
                method,
                f'"error" needs an integer "code" and a string "message": {_excerpt(text)}',
            )
        hint = _REMOTE_HINTS.get(code)
        exc = RemoteError(uri, method, code, f"{message} ({hint})" if hint else message)
        exc.message = message
        raise exc


_MISSING = object()


def _same_reply(text: str, request_id: int, like: RpcExchange | None) -> dict[str, Any] | None:
    """The response ``text`` decodes to, taken from ``like`` without decoding, when ``text`` is
    ``like``'s reply with only its leading ``"id"`` changed; None otherwise.

    Both must begin ``{"id":<id>,`` exactly, so the changed member is the top-level id (the
    first member of the outermost object), and be the same text after it. ``like``'s reply
    decoded strictly with that id first and no key twice, so this one decodes to the same
    object with the new id: the answer's values are shared, not copied."""
    if like is None or not isinstance(like.response, dict):
        return None
    before = like.response.get("id")
    if type(before) is not int or next(iter(like.response)) != "id":
        return None
    head, head_before = f'{{"id":{request_id},', f'{{"id":{before},'
    previous = like.raw_reply
    if (
        len(text) - len(head) != len(previous) - len(head_before)
        or not text.startswith(head)
        or not previous.startswith(head_before)
        or text[len(head) :] != previous[len(head_before) :]
    ):
        return None
    response = dict(like.response)
    response["id"] = request_id
    return response


def _same_id(reply_id: object, request_id: int) -> bool:
    # type() rather than ==: True == 1 and 1.0 == 1 in Python, but not in JSON-RPC.
    return type(reply_id) is int and reply_id == request_id


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null"


def _short(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _excerpt(text: str) -> str:
    if len(text) <= EXCERPT_CHARS:
        return repr(text)
    return f"{text[:EXCERPT_CHARS]!r}... ({len(text)} chars in all)"


def _oserror(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0)
    reason = exc.strerror or str(exc)
    return f"{reason} ({name})" if name else reason
