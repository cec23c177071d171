"""The socket trust check, on real (bound, non-listening) sockets in short 0700 temp dirs."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from rpc_servers import SOCKET_NAME
from rpc_servers import short_tempdir
from rpc_servers import stale_socket

from pytest_canarygate.errors import TransportError
from pytest_canarygate.errors import UntrustedEndpointError
from pytest_canarygate.trust import check_socket_trust

URI = "unix:///somewhere/agtmuxd.sock"
METHOD = "daemon.info"
UID = os.geteuid()


@pytest.fixture
def sockdir() -> Iterator[Path]:
    path = short_tempdir()
    yield path
    os.chmod(path, 0o700)
    shutil.rmtree(path)
    assert not path.exists()


@pytest.fixture
def sock(sockdir: Path) -> Path:
    path = sockdir / SOCKET_NAME
    stale_socket(path)
    return path


def check(path: Path, **kwargs: int) -> None:
    check_socket_trust(path, endpoint=URI, method=METHOD, **kwargs)


def refused(path: Path, **kwargs: int) -> str:
    with pytest.raises(UntrustedEndpointError) as info:
        check(path, **kwargs)
    msg = str(info.value)
    assert URI in msg
    assert METHOD in msg
    assert msg.count("refusing to connect") == 1
    return msg


def test_own_0600_socket_in_0700_dir_is_trusted(sock: Path) -> None:
    check(sock)
    check(sock, expected_uid=UID)


def test_missing_socket(sockdir: Path) -> None:
    with pytest.raises(TransportError) as info:
        check(sockdir / "absent.sock")
    assert not isinstance(info.value, UntrustedEndpointError)
    msg = str(info.value)
    assert f"no socket at {sockdir / 'absent.sock'}" in msg
    assert URI in msg
    assert METHOD in msg


def test_missing_directory(sockdir: Path) -> None:
    with pytest.raises(TransportError, match="no socket at"):
        check(sockdir / "nodir" / "agtmuxd.sock")


def test_regular_file_refused(sockdir: Path) -> None:
    path = sockdir / "plain.sock"
    path.write_text("")
    os.chmod(path, 0o600)
    msg = refused(path)
    assert f"{path} is not a socket (it is a regular file, mode 0600)" in msg


def test_directory_refused(sockdir: Path) -> None:
    path = sockdir / "sub"
    path.mkdir(mode=0o700)
    assert "is not a socket (it is a directory" in refused(path)


def test_fifo_refused(sockdir: Path) -> None:
    path = sockdir / "fifo"
    os.mkfifo(path, 0o600)
    assert "is not a socket (it is a named pipe" in refused(path)


def test_symlink_to_a_good_socket_refused(sock: Path) -> None:
    link = sock.parent / "link.sock"
    link.symlink_to(sock)
    msg = refused(link)
    assert f"{link} is a symbolic link (to {sock}), not a socket" in msg


def test_dangling_symlink_refused(sockdir: Path) -> None:
    link = sockdir / "link.sock"
    link.symlink_to(sockdir / "gone.sock")
    assert "is a symbolic link" in refused(link)


@pytest.mark.parametrize(
    ("mode", "who"),
    [(0o666, "group and others"), (0o660, "group"), (0o602, "others"), (0o777, "group and others")],
)
def test_writable_socket_refused(sock: Path, mode: int, who: str) -> None:
    os.chmod(sock, mode)
    msg = refused(sock)
    assert (
        f"refusing to connect: socket {sock} is writable by {who} (mode {mode:04o}); "
        f"expected a 0600 socket owned by uid {UID}"
    ) in msg


@pytest.mark.parametrize(
    ("mode", "who"),
    [
        (0o777, "group and others"),
        (0o770, "group"),
        (0o1777, "group and others"),
        (0o703, "others"),
    ],
)
def test_writable_directory_refused(sock: Path, mode: int, who: str) -> None:
    os.chmod(sock.parent, mode)
    msg = refused(sock)
    assert (
        f"refusing to connect: directory {sock.parent} is writable by {who} (mode {mode:04o}); "
        f"expected a 0700 directory owned by uid {UID}"
    ) in msg


def test_readable_but_not_writable_is_fine(sock: Path) -> None:
    os.chmod(sock, 0o644)
    os.chmod(sock.parent, 0o755)
    check(sock)


def test_owner_mismatch_refused(sock: Path) -> None:
    msg = refused(sock, expected_uid=UID + 1)
    mode = stat.S_IMODE(os.lstat(sock).st_mode)
    assert (
        f"refusing to connect: socket {sock} is owned by uid {UID} (mode {mode:04o}); "
        f"expected a 0600 socket owned by uid {UID + 1}"
    ) in msg


def test_socket_in_shared_temp_dir_refused(sockdir: Path) -> None:
    # The system temp dir is what a runbook path like /tmp/agtmux-v5.sock lands in: usually
    # root-owned and world-writable, so the directory check (owner or mode) must refuse it.
    parent = sockdir.parent
    pst = os.stat(parent)
    if pst.st_uid == UID and not pst.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        pytest.skip(f"{parent} is ours and private here; nothing to refuse")
    path = parent / f"{sockdir.name}.sock"
    stale_socket(path)
    try:
        msg = refused(path)
    finally:
        path.unlink()
    assert f"refusing to connect: directory {parent} is " in msg
    assert f"expected a 0700 directory owned by uid {UID}" in msg


def test_method_is_optional(sockdir: Path) -> None:
    with pytest.raises(TransportError) as info:
        check_socket_trust(sockdir / "absent.sock", endpoint=URI)
    assert info.value.method is None
    assert str(info.value).startswith(f"{URI}: no socket at")
