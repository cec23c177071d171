"""ssh:// endpoints against a real sshd on 127.0.0.1: the remote trust rules, the forward,
and that no ssh process outlives it."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import ssh_helpers
from sim_helpers import short_dir
from ssh_helpers import Sshd
from ssh_helpers import ssh_processes
from ssh_helpers import start_sshd

from pytest_canarygate import ssh_forward
from pytest_canarygate.config import SshConfig
from pytest_canarygate.endpoints import parse_endpoint
from pytest_canarygate.errors import TransportError
from pytest_canarygate.errors import UntrustedEndpointError
from pytest_canarygate.rpc import RpcClient
from pytest_canarygate.ssh_forward import Forward
from pytest_canarygate.ssh_forward import check_remote


@pytest.fixture
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    yield from start_sshd(tmp_path_factory)


@pytest.fixture
def folder() -> Iterator[Path]:
    path = short_dir()
    path.chmod(0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _listen(path: Path) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    return server


def _check(server: Sshd, path: Path) -> dict[str, object]:
    ep = parse_endpoint(server.uri(path), strict=True)
    found = check_remote(
        ep,
        {"v5": ep},
        SshConfig(config_file=server.client_config),
        connect_timeout=10,
        read_timeout=10,
    )
    return {"uid": found.remote_uid, "errors": found.errors, "simulated": found.simulated}


def test_a_trusted_remote_socket_passes_the_remote_check(sshd: Sshd, folder: Path) -> None:
    with _listen(folder / "d.sock"):
        found = _check(sshd, folder / "d.sock")
    assert found == {"uid": os.geteuid(), "errors": {}, "simulated": set()}


def test_a_world_writable_remote_folder_is_refused(sshd: Sshd, folder: Path) -> None:
    (folder / "open").mkdir()
    (folder / "open").chmod(0o777)
    with _listen(folder / "open" / "d.sock"):
        error = _check(sshd, folder / "open" / "d.sock")["errors"]["v5"]  # type: ignore[index]
    assert isinstance(error, UntrustedEndpointError)
    assert "writable by group and others" in str(error)
    assert f"directory {folder / 'open'} (on 127.0.0.1)" in str(error)
    assert sshd.uri(folder / "open" / "d.sock") in str(error)


def test_a_regular_file_instead_of_the_remote_socket_is_refused(sshd: Sshd, folder: Path) -> None:
    (folder / "d.sock").write_text("not a socket")
    error = _check(sshd, folder / "d.sock")["errors"]["v5"]  # type: ignore[index]
    assert isinstance(error, UntrustedEndpointError)
    assert "is not a socket (it is a regular file" in str(error)


def test_a_remote_socket_of_another_user_is_refused(sshd: Sshd, folder: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a socket to another user needs root")
    with _listen(folder / "d.sock"):
        os.chown(folder / "d.sock", 4242, 4242)
        error = _check(sshd, folder / "d.sock")["errors"]["v5"]  # type: ignore[index]
    assert isinstance(error, UntrustedEndpointError)
    assert "is owned by uid 4242" in str(error)


def test_a_missing_remote_socket_is_a_transport_error(sshd: Sshd, folder: Path) -> None:
    error = _check(sshd, folder / "gone.sock")["errors"]["v5"]  # type: ignore[index]
    assert isinstance(error, TransportError)
    assert f"no socket at {folder / 'gone.sock'} on 127.0.0.1" in str(error)


def test_an_unreachable_host_fails_every_daemon(sshd: Sshd, folder: Path) -> None:
    ep = parse_endpoint(f"ssh://127.0.0.1:1{folder}/d.sock")
    found = check_remote(
        ep,
        {"v4": ep},
        SshConfig(config_file=sshd.client_config),
        connect_timeout=5,
        read_timeout=5,
    )
    assert isinstance(found.errors["v4"], TransportError)
    assert "ssh exited 255" in str(found.errors["v4"])


def test_the_forward_reaches_the_remote_socket_and_leaves_nothing(sshd: Sshd, folder: Path) -> None:
    """A real answer through the forward; our ssh child serves the local socket in a 0700
    folder; closing it leaves no ssh process and no folder."""
    server = _listen(folder / "d.sock")
    ep = parse_endpoint(sshd.uri(folder / "d.sock"))
    forward = Forward(
        ep, {"v5": ep.path}, SshConfig(config_file=sshd.client_config), connect_timeout=10
    )
    try:
        local = forward.open()
        assert ssh_processes(str(sshd.client_config)) == [forward.pid]
        local_folder = Path(local["v5"]).parent
        assert (local_folder.stat().st_mode & 0o777) == 0o700
        client = RpcClient(f"unix://{local['v5']}", connect_timeout=5, read_timeout=5)
        server.settimeout(10)

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                request = conn.recv(65536)
                assert b'"method": "daemon.info"' in request
                conn.sendall(b'{"jsonrpc": "2.0", "id": 1, "result": {"pid": 7}}\n')

        thread = threading.Thread(target=answer)
        thread.start()
        exchange = client.exchange("daemon.info")
        thread.join()
        assert exchange.response["result"] == {"pid": 7}
        assert exchange.peer_pid == forward.pid
    finally:
        forward.close()
        server.close()
    assert ssh_processes(str(sshd.client_config)) == []
    assert not local_folder.exists()


def test_a_forward_that_cannot_connect_fails_within_its_timeout_and_cleans_up(
    sshd: Sshd, folder: Path
) -> None:
    ep = parse_endpoint(f"ssh://127.0.0.1:1{folder}/d.sock")
    forward = Forward(
        ep, {"v5": ep.path}, SshConfig(config_file=sshd.client_config), connect_timeout=5
    )
    with pytest.raises(TransportError, match="ssh forwarding exited 255"):
        forward.open()
    assert ssh_processes(str(sshd.client_config)) == []


def test_a_remote_path_that_cannot_be_inspected_is_not_called_missing(
    sshd: Sshd, folder: Path
) -> None:
    """Only "No such file" means no socket (a stopped daemon); any other failure of the remote
    stat is a failure to look, never evidence that the daemon is gone."""
    (folder / "file").write_text("a regular file, not a folder")
    error = _check(sshd, folder / "file" / "d.sock")["errors"]["v5"]  # type: ignore[index]
    assert isinstance(error, TransportError)
    assert "no socket at" not in str(error)
    assert f"cannot inspect {folder / 'file' / 'd.sock'} on 127.0.0.1: stat:" in str(error)
    assert "Not a directory" in str(error)


def test_without_sshd_the_ssh_tests_skip_naming_the_package_unless_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(ssh_helpers, "SSHD", tmp_path / "no-sshd")
    monkeypatch.delenv("CANARYGATE_REQUIRE_SSHD", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install the openssh-server package"):
        ssh_helpers.require_sshd()
    monkeypatch.setenv("CANARYGATE_REQUIRE_SSHD", "1")
    with pytest.raises(pytest.fail.Exception, match="openssh-server"):
        ssh_helpers.require_sshd()


#: An ``ssh`` that creates each local socket, then listens on it only ``delay`` s later (the
#: real one does both back to back: a moment that a loaded machine can stretch).
SLOW_TO_LISTEN = """#!{python}
import signal, socket, sys, time
args = sys.argv[1:]
servers = []
for i, arg in enumerate(args):
    if arg == "-L":
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(args[i + 1].split(":", 1)[0])
        servers.append(server)
time.sleep({delay})
for server in servers:
    server.listen(4)
signal.pause()
"""


def _slow_ssh(monkeypatch: pytest.MonkeyPatch, folder: Path, delay: float) -> None:
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ssh"
    fake.write_text(SLOW_TO_LISTEN.format(python=sys.executable, delay=delay))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_a_forward_is_used_only_once_ssh_listens_on_every_socket(
    monkeypatch: pytest.MonkeyPatch, folder: Path
) -> None:
    _slow_ssh(monkeypatch, folder, delay=1.0)
    ep = parse_endpoint("ssh://127.0.0.1/srv/agtmux/v5.sock")
    remote = {"v4": "/srv/agtmux/v4.sock", "v5": "/srv/agtmux/v5.sock"}
    forward = Forward(ep, remote, SshConfig(), connect_timeout=10)
    try:
        local = forward.open()
        for path in local.values():  # none refused: each was listening when open() returned
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(path)
    finally:
        forward.close()


def test_a_forward_whose_sockets_never_listen_fails_within_its_timeout(
    monkeypatch: pytest.MonkeyPatch, folder: Path
) -> None:
    _slow_ssh(monkeypatch, folder, delay=3600)
    ep = parse_endpoint("ssh://127.0.0.1/srv/agtmux/v5.sock")
    forward = Forward(ep, {"v5": ep.path}, SshConfig(), connect_timeout=1)
    try:
        with pytest.raises(TransportError, match="did not forward the daemon sockets within 1 s"):
            forward.open()
        assert forward.process is None  # stopped, its folder removed
        assert forward.folder is None
    finally:
        forward.close()  # should the test fail, its fake ssh does not outlive it


TABLE_HEAD = "Num       RefCount Protocol Flags    Type St Inode Path\n"


@pytest.mark.parametrize(
    ("rows", "listening"),
    [
        (["0000: 00000002 00000000 00000000 0001 01 11 /f/0.sock"], False),  # bound, not yet
        (["0000: 00000002 00000000 00010000 0001 01 11 /f/0.sock"], True),
        (  # the same path twice: one of them listening is enough
            [
                "0000: 00000002 00000000 00000000 0001 01 11 /f/0.sock",
                "0001: 00000002 00000000 00010000 0001 01 12 /f/0.sock",
            ],
            True,
        ),
        (["0000: 00000002 00000000 00010000 0001 01 11 /f/other.sock"], True),  # not listed
        ([], True),  # a table that shows no sockets tells nothing
        (["garbage"], True),
    ],
    ids=["bound", "listening", "twice", "unlisted", "empty", "garbage"],
)
def test_the_socket_table_decides_only_for_the_sockets_it_lists(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rows: list[str], listening: bool
) -> None:
    table = tmp_path / "unix"
    table.write_text(TABLE_HEAD + "".join(f"{row}\n" for row in rows))
    monkeypatch.setattr(ssh_forward, "_UNIX_SOCKETS", str(table))
    assert ssh_forward._listening(["/f/0.sock"]) is listening
    monkeypatch.setattr(ssh_forward, "_UNIX_SOCKETS", str(tmp_path / "absent"))
    assert ssh_forward._listening(["/f/0.sock"]) is True  # no table: the file is enough
