"""The JSON-RPC client against real threaded Unix-socket test servers."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest
from rpc_servers import SAMPLES
from rpc_servers import THREAD_PREFIX
from rpc_servers import RpcTestServer
from rpc_servers import ServerFactory
from rpc_servers import answer
from rpc_servers import canned
from rpc_servers import close_silently
from rpc_servers import daemon_line
from rpc_servers import full_backlog
from rpc_servers import huge
from rpc_servers import load_sample
from rpc_servers import never_answer
from rpc_servers import reply_with
from rpc_servers import reset
from rpc_servers import short_tempdir
from rpc_servers import sleep_then
from rpc_servers import stale_socket
from rpc_servers import trickle
from rpc_servers import wrong_id

from pytest_canarygate.endpoints import parse_endpoint
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.errors import EndpointError
from pytest_canarygate.errors import EndpointTimeout
from pytest_canarygate.errors import ProtocolError
from pytest_canarygate.errors import RemoteError
from pytest_canarygate.errors import TransportError
from pytest_canarygate.errors import UntrustedEndpointError
from pytest_canarygate.rpc import RpcClient
from pytest_canarygate.rpc import RpcExchange

DAEMON_INFO = load_sample("daemon.info.json")
UNKNOWN_METHOD = load_sample("unknown_method.json")


@pytest.fixture(autouse=True)
def _no_threads_left_behind() -> Iterator[None]:
    yield
    leftover = [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]
    assert not leftover, f"server threads left running: {leftover}"


@pytest.fixture
def serve() -> Iterator[ServerFactory]:
    factory = ServerFactory()
    yield factory
    factory.stop_all()


@pytest.fixture
def short_dir() -> Iterator[str]:
    path = short_tempdir()
    yield os.fspath(path)
    os.chmod(path, 0o700)
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def fails(
    exc_type: type[EndpointError], client: RpcClient, method: str, params: Any = None
) -> EndpointError:
    """Call, expect ``exc_type``; check the message names the endpoint and the method."""
    with pytest.raises(exc_type) as info:
        client.call(method, params)
    exc = info.value
    assert exc.endpoint == client.endpoint.uri
    assert exc.method == method
    assert client.endpoint.uri in str(exc)
    assert method in str(exc)
    return exc


# --- happy path -------------------------------------------------------------------------------


def test_happy_path_against_sample_reply(serve: ServerFactory) -> None:
    server = serve(reply_with(DAEMON_INFO))
    with RpcClient(server.uri) as client:
        ex = client.exchange("daemon.info")

    assert isinstance(ex, RpcExchange)
    assert ex.result == DAEMON_INFO["result"]
    assert ex.endpoint == server.uri
    assert ex.method == "daemon.info"
    assert ex.response == {**DAEMON_INFO, "id": 1}
    assert ex.started_at.tzinfo is timezone.utc
    assert ex.started_at <= ex.finished_at
    assert ex.elapsed_ms >= 0

    (conn,) = server.connections
    # One JSON object and one "\n", nothing else; then the client half-closed.
    assert conn.request.endswith(b"\n")
    assert conn.request.count(b"\n") == 1
    assert json.loads(conn.request) == {**load_sample("daemon.info.request.json"), "id": 1}
    assert conn.saw_eof
    assert ex.request == json.loads(conn.request)
    assert ex.raw_reply == conn.reply.decode()


def test_ids_increment_and_each_call_uses_its_own_connection(serve: ServerFactory) -> None:
    server = serve(reply_with(DAEMON_INFO))
    client = RpcClient(server.uri)
    assert client.call("daemon.info") == DAEMON_INFO["result"]
    assert client.call("daemon.info") == DAEMON_INFO["result"]
    assert [json.loads(c.request)["id"] for c in server.connections] == [1, 2]
    assert all(c.saw_eof for c in server.connections)


def test_params_are_sent(serve: ServerFactory) -> None:
    sample = load_sample("state_changed.json")
    server = serve(reply_with(sample))
    result = RpcClient(server.uri).call("state_changed", {"since_version": 0})
    assert result == sample["result"]
    expected = {**load_sample("state_changed.request.json"), "id": 1}
    assert json.loads(server.connections[0].request) == expected


def test_endpoint_object_accepted(serve: ServerFactory) -> None:
    server = serve(reply_with(DAEMON_INFO))
    assert RpcClient(parse_endpoint(server.uri)).call("daemon.info") == DAEMON_INFO["result"]


def test_call_many_collects_errors(serve: ServerFactory) -> None:
    server = serve(answer({"daemon.info": DAEMON_INFO}, UNKNOWN_METHOD))
    out = RpcClient(server.uri).call_many([("daemon.info", None), ("no.such.method", {})])
    first, second = out
    assert isinstance(first, RpcExchange)
    assert first.result == DAEMON_INFO["result"]
    assert isinstance(second, RemoteError)
    assert second.code == -32601


def test_call_many_survives_transport_errors(short_dir: str) -> None:
    client = RpcClient(f"unix://{short_dir}/absent.sock")
    out = client.call_many([("a", None), ("b", None)])
    assert [type(e) for e in out] == [TransportError, TransportError]


def test_closed_client_refuses() -> None:
    client = RpcClient("unix:///nonexistent/agtmuxd.sock")
    with client:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        client.call("daemon.info")


# --- transport --------------------------------------------------------------------------------


def test_missing_socket(short_dir: str) -> None:
    client = RpcClient(f"unix://{short_dir}/agtmuxd.sock")
    exc = fails(TransportError, client, "daemon.info")
    assert f"no socket at {short_dir}/agtmuxd.sock" in str(exc)


def test_refused_on_stale_socket(short_dir: str) -> None:
    path = f"{short_dir}/agtmuxd.sock"
    stale_socket(Path(path))
    exc = fails(TransportError, RpcClient(f"unix://{path}"), "daemon.info")
    assert not isinstance(exc, EndpointTimeout)
    assert "connection refused" in str(exc)


def test_reset_when_server_closes_without_reading(serve: ServerFactory) -> None:
    server = serve(reset())
    exc = fails(TransportError, RpcClient(server.uri), "list_panes")
    assert not isinstance(exc, EndpointTimeout)
    assert "connection broke" in str(exc)


def test_read_timeout_when_server_never_answers(serve: ServerFactory) -> None:
    server = serve(never_answer())
    client = RpcClient(server.uri, read_timeout=0.5)
    exc = fails(EndpointTimeout, client, "latency_status")
    assert "read timed out after 0.5 s" in str(exc)
    assert server.connections[0].saw_eof  # it had the whole request


def test_read_timeout_when_server_answers_too_late(serve: ServerFactory) -> None:
    server = serve(sleep_then(30.0, daemon_line({**DAEMON_INFO, "id": 1})))  # or until stopped
    exc = fails(EndpointTimeout, RpcClient(server.uri, read_timeout=0.3), "daemon.info")
    assert server.connections[0].reply == b""  # the client gave up before the answer came
    assert "read timed out after 0.3 s" in str(exc)


def test_read_deadline_is_total_not_per_recv(serve: ServerFactory) -> None:
    # A byte every 0.1 s would keep a per-recv timeout of 0.5 s happy until the whole reply
    # arrived: timing out at all, with bytes received, shows the deadline covers the whole read.
    server = serve(trickle(0.1))
    exc = fails(EndpointTimeout, RpcClient(server.uri, read_timeout=0.5), "daemon.info")
    assert "bytes received" in str(exc)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="backlog behaviour is Linux's")
def test_connect_timeout_when_backlog_is_full(serve: ServerFactory) -> None:
    server = serve(None, backlog=0, accept=False)
    with full_backlog(server) as filled:
        if not filled:
            pytest.skip("could not fill the accept backlog here")
        client = RpcClient(server.uri, connect_timeout=0.3)
        exc = fails(EndpointTimeout, client, "daemon.info")
    assert "connect timed out after 0.3 s" in str(exc)


# --- protocol ---------------------------------------------------------------------------------


def test_empty_reply(serve: ServerFactory) -> None:
    server = serve(close_silently())
    exc = fails(ProtocolError, RpcClient(server.uri), "daemon.info")
    assert str(exc).endswith(
        "empty reply (the daemon closed the connection without answering; "
        "it could not parse the request)"
    )


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"<html>502 Bad Gateway</html>\n", "reply is not JSON"),
        (b'{"id":1,"jsonrpc":"2.0","result":\n', "reply is not JSON"),
        (b"[1, 2, 3]\n", "reply is a JSON array, not an object"),
        (b'"hello"\n', "reply is a JSON string, not an object"),
        (b'{"id":1,"result":{}}\n', 'no "jsonrpc": "2.0" member'),
        (b'{"id":1,"jsonrpc":"1.0","result":{}}\n', '"jsonrpc": "1.0", expected "2.0"'),
        (b'{"id":1,"jsonrpc":"2.0"}\n', 'neither "result" nor "error"'),
        (b'{"error":{"code":1,"message":"x"},"id":1,"jsonrpc":"2.0","result":1}\n', "both"),
        (b'{"jsonrpc":"2.0","result":{}}\n', "reply has no id, expected id 1"),
        (b'{"id":true,"jsonrpc":"2.0","result":{}}\n', "reply has id true, expected id 1"),
        (b'{"id":"1","jsonrpc":"2.0","result":{}}\n', 'reply has id "1", expected id 1'),
        (b'{"error":"boom","id":1,"jsonrpc":"2.0"}\n', '"error" is not an object'),
        (b'{"error":{"code":"x"},"id":1,"jsonrpc":"2.0"}\n', 'integer "code"'),
        (b'{"id":1,"jsonrpc":"2.0","result":1}\n{"id":1}\n', "reply has 2 lines"),
        (b"\xff\xfe\n", "reply is not UTF-8"),
    ],
)
def test_malformed_replies(serve: ServerFactory, line: bytes, why: str) -> None:
    server = serve(canned(line))
    exc = fails(ProtocolError, RpcClient(server.uri), "list_sessions")
    assert why in str(exc)


def test_garbage_excerpt_is_capped(serve: ServerFactory) -> None:
    server = serve(canned(b"garbage " * 1000 + b"\n"))
    exc = fails(ProtocolError, RpcClient(server.uri), "list_panes")
    msg = str(exc)
    assert "reply is not JSON" in msg
    assert "'garbage garbage" in msg
    assert "(8001 chars in all)" in msg
    assert len(msg) < 400


def test_wrong_id(serve: ServerFactory) -> None:
    server = serve(wrong_id(DAEMON_INFO))
    exc = fails(ProtocolError, RpcClient(server.uri), "daemon.info")
    assert "reply has id 1001, expected id 1" in str(exc)


def test_verbatim_sample_has_someone_elses_id(serve: ServerFactory) -> None:
    server = serve(canned((SAMPLES / "daemon.info.json").read_bytes()))
    exc = fails(ProtocolError, RpcClient(server.uri), "daemon.info")
    assert "reply has id 7, expected id 1" in str(exc)


def test_oversize_reply(serve: ServerFactory) -> None:
    server = serve(huge(1024 * 1024))
    client = RpcClient(server.uri, max_reply_bytes=64 * 1024)
    exc = fails(ProtocolError, client, "list_panes")
    assert "larger than the 65536-byte limit" in str(exc)


def test_reply_up_to_the_limit_is_fine(serve: ServerFactory) -> None:
    server = serve(huge(100_000))
    result = RpcClient(server.uri, max_reply_bytes=200_000).call("list_panes")
    assert result == "x" * 100_000


# --- remote errors ----------------------------------------------------------------------------


def test_method_not_found(serve: ServerFactory) -> None:
    server = serve(reply_with(UNKNOWN_METHOD))
    exc = fails(RemoteError, RpcClient(server.uri), "no.such.method")
    assert isinstance(exc, RemoteError)
    assert exc.code == -32601
    assert exc.message == "method not found"
    assert "error -32601: method not found (method not served by this daemon)" in str(exc)
    # The server answered byte for byte what the daemon recorded, id aside.
    sample_text = (SAMPLES / "unknown_method.json").read_text()
    assert server.connections[0].reply.decode() == sample_text.replace('"id":12', '"id":1')


def test_invalid_params_error(serve: ServerFactory) -> None:
    server = serve(reply_with(load_sample("source.hello.bad_kind.json")))
    exc = fails(RemoteError, RpcClient(server.uri), "source.hello", {"source_kind": "bogus"})
    assert isinstance(exc, RemoteError)
    assert exc.code == -32602
    assert exc.message == 'unknown source_kind: "bogus"'


def test_error_with_null_id_is_a_remote_error(serve: ServerFactory) -> None:
    # JSON-RPC 2.0 answers a request whose id could not be read with id null.
    server = serve(canned(daemon_line({**UNKNOWN_METHOD, "id": None})))
    exc = fails(RemoteError, RpcClient(server.uri), "daemon.info")
    assert isinstance(exc, RemoteError)
    assert exc.code == -32601


# --- trust ------------------------------------------------------------------------------------


def untrusted(server: RpcTestServer, client: RpcClient, method: str = "daemon.info") -> str:
    """Expect a trust refusal, then prove the refused call never connected."""
    msg = str(fails(UntrustedEndpointError, client, method))
    assert "refusing to connect" in msg
    os.chmod(server.dir, 0o700)
    os.chmod(server.path, 0o600)
    # Connections are accepted in order: a refused call that had connected would show up first.
    assert RpcClient(server.uri).call("daemon.info") == DAEMON_INFO["result"]
    assert len(server.connections) == 1
    return msg


def test_untrusted_directory_mode(serve: ServerFactory) -> None:
    server = serve(reply_with(DAEMON_INFO))
    os.chmod(server.dir, 0o777)
    msg = untrusted(server, RpcClient(server.uri))
    assert f"directory {server.dir} is writable by group and others (mode 0777)" in msg


def test_untrusted_socket_mode(serve: ServerFactory) -> None:
    server = serve(reply_with(DAEMON_INFO))
    os.chmod(server.path, 0o666)
    msg = untrusted(server, RpcClient(server.uri))
    assert f"socket {server.path} is writable by group and others (mode 0666)" in msg


def test_untrusted_owner(serve: ServerFactory) -> None:
    server = serve(reply_with(DAEMON_INFO))
    uid = os.geteuid()
    msg = untrusted(server, RpcClient(server.uri, expected_uid=uid + 1))
    assert f"is owned by uid {uid}" in msg
    assert f"owned by uid {uid + 1}" in msg


def test_symlink_refused(serve: ServerFactory) -> None:
    server = serve(reply_with(DAEMON_INFO))
    link = server.dir / "link.sock"
    link.symlink_to(server.path)
    msg = untrusted(server, RpcClient(f"unix://{link}"))
    assert "is a symbolic link" in msg


def test_regular_file_refused(serve: ServerFactory) -> None:
    server = serve(reply_with(DAEMON_INFO))
    plain = server.dir / "plain.sock"
    plain.write_text("")
    os.chmod(plain, 0o600)
    msg = untrusted(server, RpcClient(f"unix://{plain}"))
    assert "is not a socket (it is a regular file" in msg


def test_trust_check_can_be_disabled(serve: ServerFactory) -> None:
    server = serve(reply_with(DAEMON_INFO))
    os.chmod(server.path, 0o666)
    assert RpcClient(server.uri, trust_check=False).call("daemon.info") == DAEMON_INFO["result"]


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"connect_timeout": 0}, "connect_timeout must be a positive number"),
        ({"read_timeout": -1}, "read_timeout must be a positive number"),
        ({"read_timeout": float("inf")}, "read_timeout must be a positive number"),
        ({"max_reply_bytes": 0}, "max_reply_bytes must be a positive integer"),
    ],
)
def test_bad_settings(kwargs: dict[str, Any], why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        RpcClient("unix:///x/agtmuxd.sock", **kwargs)


def test_only_unix_endpoints() -> None:
    with pytest.raises(ConfigError, match="Unix sockets only"):
        RpcClient("http://127.0.0.1:8080/rpc")


def test_bad_endpoint_uri() -> None:
    with pytest.raises(ConfigError, match="unix:relative"):
        RpcClient("unix:relative")


def test_unserializable_params() -> None:
    client = RpcClient("unix:///x/agtmuxd.sock")
    with pytest.raises(ConfigError, match="not JSON-serializable"):
        client.call("daemon.info", {"when": object()})
    with pytest.raises(ConfigError, match="not JSON-serializable"):
        client.call("daemon.info", {"x": float("nan")})


def test_peer_credentials_are_checked_after_connect() -> None:
    """The path check cannot see a directory swapped between check and connect; the kernel's
    SO_PEERCRED says who really serves the socket we reached."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        RpcClient("unix:///run/x/agtmuxd.sock")._check_peer(ours, "daemon.info")  # our own uid
        stranger = RpcClient("unix:///run/x/agtmuxd.sock", expected_uid=os.geteuid() + 1)
        with pytest.raises(UntrustedEndpointError) as info:
            stranger._check_peer(ours, "daemon.info")
    finally:
        ours.close()
        theirs.close()
    message = str(info.value)
    assert "unix:///run/x/agtmuxd.sock daemon.info" in message
    assert f"runs as uid {os.geteuid()}, expected uid {os.geteuid() + 1}" in message


# --- an answer read again ---------------------------------------------------------------------


def script(*lines: str) -> Any:
    """Answer the n-th connection with ``lines[n]`` (``{id}`` replaced by the request's id)."""
    served = iter(lines)
    lock = threading.Lock()

    def handle(conv: Any) -> None:
        conv.read_request()
        with lock:
            line = next(served)
        conv.send(line.replace("{id}", str(conv.request_id())).encode())

    return handle


def test_the_same_answer_again_is_a_new_exchange_sharing_the_decoded_result(
    serve: ServerFactory,
) -> None:
    server = serve(reply_with(DAEMON_INFO))
    client = RpcClient(server.uri)
    first = client.exchange("daemon.info")
    second = client.exchange("daemon.info", like=first)
    assert second.result is first.result  # the same text: not decoded again
    assert second.response == {**DAEMON_INFO, "id": 2}
    assert second.response is not first.response
    assert first.response == {**DAEMON_INFO, "id": 1}
    assert list(second.response) == list(first.response)
    assert second.raw_reply == server.connections[1].reply.decode() != first.raw_reply
    assert second.started_at >= first.finished_at


@pytest.mark.parametrize(
    ("before", "after"),
    [
        # the answer changed
        (
            '{"id":{id},"jsonrpc":"2.0","result":[1]}\n',
            '{"id":{id},"jsonrpc":"2.0","result":[2]}\n',
        ),
        # the id does not lead: decoded again
        (
            '{"jsonrpc":"2.0","id":{id},"result":[1]}\n',
            '{"jsonrpc":"2.0","id":{id},"result":[1]}\n',
        ),
        # spaces
        (
            '{"id": {id}, "jsonrpc":"2.0","result":[1]}\n',
            '{"id": {id}, "jsonrpc":"2.0","result":[1]}\n',
        ),
        # the same answer with a nested id changed with it
        (
            '{"id":{id},"jsonrpc":"2.0","result":[{"id":{id}}]}\n',
            '{"id":{id},"jsonrpc":"2.0","result":[{"id":{id}}]}\n',
        ),
    ],
)
def test_an_answer_not_the_same_text_is_decoded_afresh(
    serve: ServerFactory, before: str, after: str
) -> None:
    client = RpcClient(serve(script(before, after)).uri)
    first = client.exchange("list_panes")
    second = client.exchange("list_panes", like=first)
    assert second.response == json.loads(after.replace("{id}", "2"))
    assert second.result is not first.result


@pytest.mark.parametrize(
    ("after", "why"),
    [
        # the previous answer word for word, its id included: not this request's
        ('{"id":1,"jsonrpc":"2.0","result":{"id":2}}\n', "reply has id 1, expected id 2"),
        ('{"id":{id},"jsonrpc":"2.0","result":{"id":2},"result":{"id":2}}\n', "duplicate key"),
        ('{"id":{id},"jsonrpc":"2.0","result":{"id":2}}\n\n', "reply has 2 lines"),
        # where the text ends, not where its newline ends
        ('{"id":{id},"jsonrpc":"2.0","result":{"id":2}\n', "Expecting ',' delimiter at char 41"),
    ],
)
def test_an_answer_read_again_is_checked_as_strictly(
    serve: ServerFactory, after: str, why: str
) -> None:
    before = '{"id":{id},"jsonrpc":"2.0","result":{"id":2}}\n'
    client = RpcClient(serve(script(before, after)).uri)
    first = client.exchange("daemon.info")
    with pytest.raises(ProtocolError, match=why):
        client.exchange("daemon.info", like=first)


def test_a_refused_reply_names_the_place_without_its_newline(serve: ServerFactory) -> None:
    line = '{"id":{id},"jsonrpc":"2.0","result":[1,]}'
    client = RpcClient(serve(script(line + "\n", line)).uri)
    with_newline = fails(ProtocolError, client, "list_panes")
    without = fails(ProtocolError, client, "list_panes")
    for refused in (with_newline, without):
        assert "reply is not JSON (Expecting value at char 36)" in str(refused)
