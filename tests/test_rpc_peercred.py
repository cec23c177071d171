"""The kernel peer check after connect: done on Linux, skipped elsewhere with one warning per
socket naming it (the README's Trust section says exactly this)."""

from __future__ import annotations

import os
import socket
import sys
import warnings
from collections.abc import Iterator

import pytest
from rpc_servers import RpcTestServer
from rpc_servers import load_sample
from rpc_servers import reply_with

from pytest_canarygate import rpc
from pytest_canarygate.errors import UntrustedEndpointError
from pytest_canarygate.rpc import PeerCredentialsUnavailable
from pytest_canarygate.rpc import RpcClient

DAEMON_INFO = load_sample("daemon.info.json")
SOCKET = "/run/x/agtmuxd.sock"


@pytest.fixture(autouse=True)
def _fresh_warning_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rpc, "_PEERCRED_WARNED", set())


@pytest.fixture
def pair() -> Iterator[socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        yield ours


@pytest.fixture
def no_peercred(monkeypatch: pytest.MonkeyPatch) -> None:
    """A platform without SO_PEERCRED, such as macOS."""
    monkeypatch.delattr(socket, "SO_PEERCRED", raising=False)


def _warnings_from(call: object) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert callable(call)
        call()
    return [w for w in caught if issubclass(w.category, PeerCredentialsUnavailable)]


@pytest.mark.usefixtures("no_peercred")
def test_skipped_check_warns_once_per_socket_naming_it(pair: socket.socket) -> None:
    client = RpcClient(f"unix://{SOCKET}")
    with pytest.warns(PeerCredentialsUnavailable, match=f"cannot ask the kernel .* {SOCKET}"):
        client._check_peer(pair, "daemon.info")
    assert _warnings_from(lambda: client._check_peer(pair, "daemon.info")) == []
    again = RpcClient(f"unix://{SOCKET}")  # another client, same socket: already said
    assert _warnings_from(lambda: again._check_peer(pair, "list_panes")) == []
    other = RpcClient("unix:///run/y/agtmuxd.sock")
    [warning] = _warnings_from(lambda: other._check_peer(pair, "daemon.info"))
    assert "/run/y/agtmuxd.sock" in str(warning.message)


@pytest.mark.usefixtures("no_peercred")
def test_skipped_check_really_skips_the_uid_comparison(pair: socket.socket) -> None:
    """Where the option is missing nothing is compared (the warning is the only trace), which
    is why the README must not claim the peer is always checked."""
    stranger = RpcClient(f"unix://{SOCKET}", expected_uid=os.geteuid() + 1)
    with pytest.warns(PeerCredentialsUnavailable):
        stranger._check_peer(pair, "daemon.info")


def test_a_non_linux_platform_is_not_read_as_linux_ucred(
    monkeypatch: pytest.MonkeyPatch, pair: socket.socket
) -> None:
    """OpenBSD has an SO_PEERCRED with another layout (uid, gid, pid): not read as Linux's."""
    monkeypatch.setattr(socket, "SO_PEERCRED", 17, raising=False)
    monkeypatch.setattr(sys, "platform", "openbsd7")
    stranger = RpcClient(f"unix://{SOCKET}", expected_uid=os.geteuid() + 1)
    with pytest.warns(PeerCredentialsUnavailable, match="openbsd7"):
        stranger._check_peer(pair, "daemon.info")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_PEERCRED is Linux's")
def test_on_linux_the_peer_is_checked_and_nothing_is_warned(pair: socket.socket) -> None:
    assert _warnings_from(lambda: RpcClient(f"unix://{SOCKET}")._check_peer(pair, "x")) == []
    stranger = RpcClient(f"unix://{SOCKET}", expected_uid=os.geteuid() + 1)
    with pytest.raises(UntrustedEndpointError, match="expected uid"):
        stranger._check_peer(pair, "daemon.info")


@pytest.mark.usefixtures("no_peercred")
def test_a_real_call_without_so_peercred_succeeds_and_warns() -> None:
    with RpcTestServer(reply_with(DAEMON_INFO)) as server, RpcClient(server.uri) as client:
        with pytest.warns(PeerCredentialsUnavailable) as record:
            result = client.call("daemon.info")
        assert _warnings_from(lambda: client.call("daemon.info")) == []
    assert result == DAEMON_INFO["result"]
    assert len(record) == 1
    assert str(server.path) in str(record[0].message)
