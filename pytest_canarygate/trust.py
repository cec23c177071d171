"""Socket trust check: decide, before connecting, whether a Unix socket may be talked to.

The daemon authenticates nobody: the 0700 directory and 0600 socket are the whole security
model (daemon facts 1.2, 1.3). So we only connect to a socket that we own, that nobody else can
write, in a directory that we own and nobody else can write. The directory matters as much as the
socket: whoever can write it can swap the socket between this check and the connect.

This check uses only ``lstat``/``stat`` and runs before every connect on every platform. The
second check, asking the kernel after the connect which uid serves the socket (``SO_PEERCRED``),
exists on Linux only; it lives in :mod:`pytest_canarygate.rpc`, which warns where it is skipped.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pytest_canarygate.errors import TransportError
from pytest_canarygate.errors import UntrustedEndpointError

__all__ = ["check_socket_trust"]

_REFUSE = "refusing to connect"


def check_socket_trust(
    path: Path,
    *,
    endpoint: str,
    method: str | None = None,
    expected_uid: int | None = None,
) -> None:
    """Raise unless ``path`` is a socket we may connect to.

    The socket itself is inspected with ``lstat`` (a symlink is refused); it must be owned by
    ``expected_uid`` (default: our effective uid) and not writable by group or others, and so must
    its parent directory. A missing socket raises :class:`TransportError`; every other refusal
    raises :class:`UntrustedEndpointError` saying exactly why.
    """
    uid = os.geteuid() if expected_uid is None else expected_uid
    path = Path(path)
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise TransportError(endpoint, method, f"no socket at {path}") from None
    except OSError as exc:
        raise TransportError(
            endpoint, method, f"cannot inspect {path}: {exc.strerror or exc}"
        ) from None

    if stat.S_ISLNK(st.st_mode):
        target = _readlink(path)
        raise UntrustedEndpointError(
            endpoint,
            method,
            f"{_REFUSE}: {path} is a symbolic link (to {target}), not a socket; "
            "give the socket's real path",
        )
    if not stat.S_ISSOCK(st.st_mode):
        raise UntrustedEndpointError(
            endpoint,
            method,
            f"{_REFUSE}: {path} is not a socket (it is a {_kind(st.st_mode)}, "
            f"mode {_mode(st.st_mode)})",
        )
    _check_owner_and_mode(endpoint, method, f"socket {path}", st, uid, "a 0600 socket")

    parent = path.parent
    try:
        # The parent is followed if it is a symlink: what counts is the directory that really
        # holds the socket entry.
        pst = os.stat(parent)
    except OSError as exc:
        raise TransportError(
            endpoint, method, f"cannot inspect directory {parent}: {exc.strerror or exc}"
        ) from None
    _check_owner_and_mode(endpoint, method, f"directory {parent}", pst, uid, "a 0700 directory")


def _check_owner_and_mode(
    endpoint: str,
    method: str | None,
    what: str,
    st: os.stat_result,
    uid: int,
    expected: str,
) -> None:
    expectation = f"expected {expected} owned by uid {uid}"
    if st.st_uid != uid:
        raise UntrustedEndpointError(
            endpoint,
            method,
            f"{_REFUSE}: {what} is owned by uid {st.st_uid} (mode {_mode(st.st_mode)}); "
            f"{expectation}",
        )
    writers = [
        who for who, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH)) if st.st_mode & bit
    ]
    if writers:
        raise UntrustedEndpointError(
            endpoint,
            method,
            f"{_REFUSE}: {what} is writable by {' and '.join(writers)} "
            f"(mode {_mode(st.st_mode)}); {expectation}",
        )


def _mode(st_mode: int) -> str:
    return f"{stat.S_IMODE(st_mode):04o}"


def _kind(st_mode: int) -> str:
    if stat.S_ISREG(st_mode):
        return "regular file"
    if stat.S_ISDIR(st_mode):
        return "directory"
    if stat.S_ISFIFO(st_mode):
        return "named pipe"
    if stat.S_ISCHR(st_mode) or stat.S_ISBLK(st_mode):
        return "device"
    return "file of another kind"


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"
