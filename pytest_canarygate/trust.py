"""Socket trust check: decide, before connecting, whether a Unix socket may be talked to.

The daemon authenticates nobody: the 0700 directory and 0600 socket are the whole security
model (daemon facts 1.2, 1.3). So we only connect to a socket that we own, that nobody else can
write, in a directory that we own and nobody else can write. The directory matters as much as the
socket: whoever can write it can swap the socket between this check and the connect.

This check uses only ``lstat``/``stat`` and runs before every connect on every platform. The
second check, asking the kernel after the connect which uid serves the socket (``SO_PEERCRED``),
exists on Linux only; it lives in :mod:`pytest_canarygate.rpc`, which warns where it is skipped.

Evidence files get the same rule (:func:`check_file_trust`, :func:`open_trusted`), walked along
the whole path: every folder from ``/`` down and the file itself must belong to the current user
or root and be writable by nobody else. One exception: a sticky folder that others can write
(``/tmp``, mode 1777) may be passed through, because in a sticky folder nobody but its owner,
root and the entry's owner can rename or delete an entry; it may hold a trusted folder but never
the evidence file itself or a symbolic link (as a socket may not sit directly in ``/tmp``).
Symbolic links are followed only when they sit in a folder nobody else can write, and where they
point is checked by the same rule. Only regular files (and, where a folder is asked for,
folders) are read: a FIFO, device or socket is refused after ``lstat``, before anything is
opened, and the file is then opened with ``O_NONBLOCK | O_NOFOLLOW`` and ``fstat``-ed to make
sure it is the very file that was checked. Every read is bounded in bytes and in time.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from pytest_canarygate.errors import EndpointTimeout
from pytest_canarygate.errors import EvidenceMissing
from pytest_canarygate.errors import ProtocolError
from pytest_canarygate.errors import TransportError
from pytest_canarygate.errors import UntrustedEndpointError

__all__ = [
    "FileRefused",
    "TrustedFile",
    "TrustedPath",
    "check_directory_stat",
    "check_file_trust",
    "check_socket_stat",
    "check_socket_trust",
    "open_trusted",
    "read_regular_file",
]

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

    check_socket_stat(
        path,
        st,
        endpoint=endpoint,
        method=method,
        uids=(uid,),
        link_target=_readlink(path) if stat.S_ISLNK(st.st_mode) else None,
    )
    parent = path.parent
    try:
        # The parent is followed if it is a symlink: what counts is the directory that really
        # holds the socket entry.
        pst = os.stat(parent)
    except OSError as exc:
        raise TransportError(
            endpoint, method, f"cannot inspect directory {parent}: {exc.strerror or exc}"
        ) from None
    check_directory_stat(parent, pst, endpoint=endpoint, method=method, uids=(uid,))


def check_socket_stat(
    path: Path | str,
    st: os.stat_result,
    *,
    endpoint: str,
    method: str | None,
    uids: tuple[int, ...],
    link_target: str | None = None,
) -> None:
    """The rules for a socket's own ``lstat``, wherever it was taken (here, or on a remote
    host over ssh): a socket, not a symbolic link, owned by one of ``uids``, writable by no
    group or others."""
    if stat.S_ISLNK(st.st_mode):
        raise UntrustedEndpointError(
            endpoint,
            method,
            f"{_REFUSE}: {path} is a symbolic link (to {link_target or 'somewhere'}), not a "
            "socket; give the socket's real path",
        )
    if not stat.S_ISSOCK(st.st_mode):
        raise UntrustedEndpointError(
            endpoint,
            method,
            f"{_REFUSE}: {path} is not a socket (it is a {_kind(st.st_mode)}, "
            f"mode {_mode(st.st_mode)})",
        )
    _check_owner_and_mode(endpoint, method, f"socket {path}", st, uids, "a 0600 socket")


def check_directory_stat(
    path: Path | str,
    st: os.stat_result,
    *,
    endpoint: str,
    method: str | None,
    uids: tuple[int, ...],
) -> None:
    """The rules for the ``stat`` of the directory holding a socket: owned by one of ``uids``,
    writable by no group or others (whoever can write it can swap the socket)."""
    _check_owner_and_mode(endpoint, method, f"directory {path}", st, uids, "a 0700 directory")


def _check_owner_and_mode(
    endpoint: str,
    method: str | None,
    what: str,
    st: os.stat_result,
    uids: tuple[int, ...],
    expected: str,
) -> None:
    owners = " or ".join(f"uid {u}" for u in uids)
    expectation = f"expected {expected} owned by {owners}"
    if st.st_uid not in uids:
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
    if stat.S_ISSOCK(st_mode):
        return "socket"
    if stat.S_ISLNK(st_mode):
        return "symbolic link"
    return "file of another kind"


# --- evidence files ----------------------------------------------------------------------

_REFUSE_READ = "refusing to read"
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
#: As many symbolic links as the kernel follows in one path (Linux: 40) before ELOOP.
_MAX_SYMLINKS = 40
_CHUNK = 1 << 20
# O_NONBLOCK: opening a FIFO that slipped in after the check must not wait for a writer.
# O_NOFOLLOW: the last component must not have become a symbolic link since it was checked.
# O_NOCTTY: a terminal device must never become our controlling terminal.
_OPEN_FLAGS = (
    os.O_RDONLY
    | os.O_NONBLOCK
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOCTTY", 0)
)


class FileRefused(ValueError):
    """:func:`read_regular_file` refused a file: not a regular file, or too large. The message
    names the path and why."""


@dataclass(frozen=True)
class TrustedPath:
    """What :func:`check_file_trust` found: the path asked for, the real path it leads to
    through trusted symbolic links, and the ``lstat`` of the entry there (never a link)."""

    path: Path
    real: Path
    stat: os.stat_result


def _owners(uid: int) -> str:
    return "uid 0 (root)" if uid == 0 else f"uid {uid} or root (uid 0)"


def _writers(st_mode: int) -> str:
    return " and ".join(
        who for who, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH)) if st_mode & bit
    )


class _Walk:
    """One walk of :func:`check_file_trust`: the endpoint and method every error names, and the
    last symbolic link followed (named in refusals past it)."""

    def __init__(self, endpoint: str, method: str | None, uid: int, noun: str) -> None:
        self.endpoint = endpoint
        self.method = method
        self.uid = uid
        self.noun = noun
        self.via: Path | None = None

    def refuse(self, reason: str) -> UntrustedEndpointError:
        through = f" (reached through the symbolic link {self.via})" if self.via else ""
        return UntrustedEndpointError(
            self.endpoint, self.method, f"{_REFUSE_READ}: {reason}{through}"
        )

    def lstat(self, path: Path, given: Path) -> os.stat_result:
        try:
            return os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            through = f" ({path} does not exist)" if path != given else ""
            raise EvidenceMissing(
                self.endpoint, self.method, f"no such {self.noun}: {given}{through}"
            ) from None
        except OSError as exc:
            raise TransportError(
                self.endpoint, self.method, f"cannot inspect {path}: {exc.strerror or exc}"
            ) from None

    def check(self, what: str, path: Path, st: os.stat_result, *, sticky_ok: bool) -> None:
        """Owner is us or root; nobody else may write it (a sticky folder only where allowed)."""
        if st.st_uid not in (self.uid, 0):
            raise self.refuse(
                f"{what} {path} is owned by uid {st.st_uid} (mode {_mode(st.st_mode)}); "
                f"expected {_owners(self.uid)}: chown {self.uid} {path}"
            )
        if st.st_mode & _OTHERS_WRITE and not (sticky_ok and st.st_mode & stat.S_ISVTX):
            raise self.refuse(
                f"{what} {path} is writable by {_writers(st.st_mode)} "
                f"(mode {_mode(st.st_mode)}); nobody but {_owners(self.uid)} may write "
                f"evidence or the folders above it: chmod go-w {path}"
            )

    def holder(self, what: str, path: Path, folder: Path, st: os.stat_result) -> None:
        """A file or symbolic link must sit in a folder nobody else can write, sticky or not."""
        if st.st_mode & _OTHERS_WRITE:
            raise self.refuse(
                f"{what} {path} sits directly in {folder}, which {_writers(st.st_mode)} can "
                f"write (mode {_mode(st.st_mode)}); move it into a folder of its own that only "
                f"{_owners(self.uid)} can write"
            )


def check_file_trust(
    path: Path | str,
    *,
    endpoint: str,
    method: str | None = None,
    directory: bool = False,
    expected: str | None = None,
    expected_uid: int | None = None,
) -> TrustedPath:
    """Raise unless ``path`` is evidence we may read: a regular file (a folder if
    ``directory``) that, like every folder above it, belongs to us (``expected_uid``, default
    our effective uid) or root and that nobody else can write.

    Walked from ``/`` with ``lstat``, one component at a time, so nothing is opened: a sticky
    folder that others can write (``/tmp``) may hold a folder of ours (on the way, or the
    directory asked for) but not an evidence file or a symbolic link; a symbolic link is
    followed only from a folder nobody else can write, and its target is walked by the same
    rule. A missing entry raises :class:`EvidenceMissing`; a refusal :class:`UntrustedEndpointError`
    naming the path and the fix (``chmod go-w DIR``); a path that cannot be inspected, or a
    folder where a file is expected (or the reverse), :class:`TransportError`. ``expected``
    names what the file should be in that last message.
    """
    uid = os.geteuid() if expected_uid is None else expected_uid
    walk = _Walk(endpoint, method, uid, "directory" if directory else "file")
    given = Path(path) if os.path.isabs(path) else Path.cwd() / path
    root = Path(given.anchor)
    # The folders resolved so far, "/" first, each with its lstat; ".." pops one.
    chain = [(root, walk.lstat(root, given))]
    walk.check("folder", root, chain[0][1], sticky_ok=True)
    pending = list(reversed(given.parts[1:]))
    links = 0
    while pending:
        name = pending.pop()
        if name in ("", "."):
            continue
        if name == "..":
            if len(chain) > 1:
                chain.pop()
            continue
        folder, folder_st = chain[-1]
        entry = folder / name
        st = walk.lstat(entry, given)
        if stat.S_ISLNK(st.st_mode):
            walk.holder("symbolic link", entry, folder, folder_st)
            links += 1
            if links > _MAX_SYMLINKS:
                raise walk.refuse(f"{given}: more than {_MAX_SYMLINKS} symbolic links")
            try:
                target = Path(os.readlink(entry))
            except OSError as exc:
                raise TransportError(
                    endpoint, method, f"cannot read the symbolic link {entry}: {exc.strerror}"
                ) from None
            if target.is_absolute():
                del chain[1:]
                pending.extend(reversed(target.parts[1:]))
            else:
                pending.extend(reversed(target.parts))
            walk.via = entry
            continue
        if pending:  # a folder on the way
            if not stat.S_ISDIR(st.st_mode):
                raise TransportError(
                    endpoint, method, f"{entry} is a {_kind(st.st_mode)}, not a folder ({given})"
                )
            walk.check("folder", entry, st, sticky_ok=True)
            chain.append((entry, st))
            continue
        _check_kind(walk, entry, st, directory=directory, expected=expected)
        if not directory:  # a folder of ours may sit in a sticky shared one, as on the way
            walk.holder("file", entry, folder, folder_st)
        walk.check("directory" if directory else "file", entry, st, sticky_ok=False)
        return TrustedPath(given, entry, st)
    # Only "/" itself, or a path that ".." led back to a folder already checked.
    folder, folder_st = chain[-1]
    _check_kind(walk, folder, folder_st, directory=directory, expected=expected)
    walk.check("directory", folder, folder_st, sticky_ok=False)
    return TrustedPath(given, folder, folder_st)


def _check_kind(
    walk: _Walk, path: Path, st: os.stat_result, *, directory: bool, expected: str | None
) -> None:
    if stat.S_ISDIR(st.st_mode):
        if not directory:
            raise TransportError(
                walk.endpoint,
                walk.method,
                f"{path} is a directory, expected {expected or 'a file'}",
            )
        return
    if stat.S_ISREG(st.st_mode):
        if directory:
            raise TransportError(
                walk.endpoint,
                walk.method,
                f"{path} is a regular file, expected {expected or 'a directory'}",
            )
        return
    raise walk.refuse(
        f"{path} is a {_kind(st.st_mode)} (mode {_mode(st.st_mode)}), not a regular file; "
        f"point at {expected or 'a regular file'}"
    )


class TrustedFile:
    """A regular file opened by :func:`open_trusted`: every read counts against ``max_bytes``
    (more raises :class:`ProtocolError`) and against ``seconds`` from the opening (later raises
    :class:`EndpointTimeout`), checked between reads."""

    def __init__(
        self,
        handle: BinaryIO,
        checked: TrustedPath,
        *,
        endpoint: str,
        method: str | None,
        max_bytes: int,
        seconds: float,
        hint: str,
    ) -> None:
        self.handle = handle
        self.path = checked.path
        self.real = checked.real
        self.size = os.fstat(handle.fileno()).st_size
        self.mtime_ns = os.fstat(handle.fileno()).st_mtime_ns
        self.endpoint = endpoint
        self.method = method
        self.max_bytes = max_bytes
        self.seconds = seconds
        self.hint = hint
        self.bytes_read = 0
        self._deadline = time.monotonic() + seconds

    def too_large(self, size: int | None = None) -> ProtocolError:
        shown = f"{size} bytes" if size is not None else f"over {self.max_bytes} bytes"
        return ProtocolError(
            self.endpoint,
            self.method,
            f"{self.path} is {shown}, more than the {self.max_bytes} read as evidence"
            + (f" ({self.hint})" if self.hint else ""),
        )

    def check_time(self) -> None:
        """Raise :class:`EndpointTimeout` once the time allowed for this file is over."""
        if time.monotonic() > self._deadline:
            raise EndpointTimeout(
                self.endpoint,
                self.method,
                f"reading {self.path} took longer than the {self.seconds:g} s allowed "
                f"({self.bytes_read} bytes read); the file was not judged",
            )

    def _account(self, data: bytes) -> bytes:
        self.bytes_read += len(data)
        if self.bytes_read > self.max_bytes:
            raise self.too_large()
        self.check_time()
        return data

    def _io(self, read: Callable[[int], bytes], size: int) -> bytes:
        try:
            return read(size)
        except OSError as exc:
            raise TransportError(
                self.endpoint, self.method, f"cannot read {self.path}: {exc.strerror or exc}"
            ) from None

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left when negative), within the limits."""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(_CHUNK), b""))
        self.check_time()
        room = self.max_bytes - self.bytes_read + 1
        return self._account(self._io(self.handle.read, min(size, room)))

    def readline(self, limit: int) -> bytes:
        """One line, at most ``limit`` bytes of it (the rest comes with the next call)."""
        room = self.max_bytes - self.bytes_read + 1
        return self._account(self._io(self.handle.readline, min(limit, room)))

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> TrustedFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_trusted(
    path: Path | str,
    *,
    endpoint: str,
    method: str | None = None,
    max_bytes: int,
    seconds: float,
    expected: str | None = None,
    hint: str = "",
    expected_uid: int | None = None,
) -> TrustedFile:
    """Check ``path`` with :func:`check_file_trust`, then open it without blocking or following
    a link, make sure (``fstat``) it is the regular file that was checked, and refuse it if it
    is larger than ``max_bytes`` (``hint`` says what to do about it)."""
    checked = check_file_trust(
        path, endpoint=endpoint, method=method, expected=expected, expected_uid=expected_uid
    )
    try:
        fd = os.open(checked.real, _OPEN_FLAGS)
    except FileNotFoundError:
        raise EvidenceMissing(endpoint, method, f"no such file: {checked.path}") from None
    except OSError as exc:
        raise TransportError(
            endpoint, method, f"cannot open {checked.real}: {exc.strerror or exc}"
        ) from None
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (checked.stat.st_dev, checked.stat.st_ino) or not (
            stat.S_ISREG(st.st_mode)
        ):
            raise UntrustedEndpointError(
                endpoint,
                method,
                f"{_REFUSE_READ}: {checked.real} was replaced between its check and its "
                f"opening (now a {_kind(st.st_mode)}); read it again",
            )
        handle = os.fdopen(fd, "rb", buffering=_CHUNK)
    except BaseException:
        os.close(fd)
        raise
    opened = TrustedFile(
        handle,
        checked,
        endpoint=endpoint,
        method=method,
        max_bytes=max_bytes,
        seconds=seconds,
        hint=hint,
    )
    if opened.size > max_bytes:
        opened.close()
        raise opened.too_large(opened.size)
    return opened


def read_regular_file(path: Path, *, max_bytes: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``; raise
    :class:`FileRefused` for anything else (a FIFO is refused before it is opened, so this never
    blocks) and :class:`OSError` when it cannot be read. Symbolic links are followed."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise FileRefused(f"{path} is a {_kind(st.st_mode)}, not a regular file")
    fd = os.open(path, _OPEN_FLAGS & ~getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused(f"{path} is a {_kind(st.st_mode)}, not a regular file")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileRefused(f"{path} is larger than {max_bytes} bytes")
    return data


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"
