"""Reaching ``ssh://`` daemon endpoints through the system's OpenSSH client.

A remote daemon is read exactly like a local one, over a local Unix socket: one
``ssh -N -L <local>:<remote> ...`` process per host forwards every daemon socket of that host
into a fresh 0700 folder of ours (OpenSSH's Unix-socket forwarding), with the operator's own
ssh config, keys and agent. Before anything is forwarded, the same trust rules as for a local
socket (:mod:`pytest_canarygate.trust`) are checked on the remote side, read-only, over ssh:
the socket is a socket (not a link), owned by the remote user or root and writable by nobody
else, and so is its folder. ``ssh`` is always run from an argv list, never through a local
shell; the remote command is built from paths :mod:`pytest_canarygate.endpoints` already held
to a narrow alphabet, each quoted anyway.

Every process started here is stopped again (:meth:`Forward.close`), also on errors and
Ctrl-C; ``ControlMaster=no`` keeps a multiplexing master of the operator's from serving (and
outliving) the forward, so the local socket is always served by our own ``ssh`` child.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from pytest_canarygate.config import SshConfig
from pytest_canarygate.endpoints import Endpoint
from pytest_canarygate.errors import EndpointError
from pytest_canarygate.errors import ProtocolError
from pytest_canarygate.errors import TransportError
from pytest_canarygate.observation import SIMULATOR_MARKER
from pytest_canarygate.rpc import NO_SOCKET
from pytest_canarygate.textsafe import visible
from pytest_canarygate.trust import check_directory_stat
from pytest_canarygate.trust import check_socket_stat

__all__ = ["Forward", "Forwards", "RemoteCheck", "check_remote", "ssh_argv"]

#: The ssh client; tests may point it elsewhere.
SSH = "ssh"
_STDERR_CHARS = 300
_ENOENT = "No such file or directory"


def ssh_argv(destination: Endpoint, settings: SshConfig, connect_timeout: float) -> list[str]:
    """``ssh`` and its options for ``destination`` (up to, not including, ``--`` and the host).

    Our own options come first: ssh keeps the first value it is given for an option, so the
    config's ``[ssh] options`` cannot switch off batch mode (no password prompt) or let a
    multiplexing master serve the connection."""
    argv = [
        SSH,
        "-o",
        "BatchMode=yes",
        "-o",
        "ControlMaster=no",
        "-o",
        "ControlPath=none",
        "-o",
        f"ConnectTimeout={max(1, math.ceil(connect_timeout))}",
    ]
    if settings.config_file is not None:
        argv += ["-F", str(settings.config_file)]
    for option in settings.options:
        argv += ["-o", option]
    if destination.port is not None:
        argv += ["-p", str(destination.port)]
    if destination.user is not None:
        argv += ["-l", destination.user]
    return argv


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _STDERR_CHARS:
        text = text[: _STDERR_CHARS - 3] + "..."
    return visible(text) or "no message"


@dataclass
class RemoteCheck:
    """What the remote side said about each daemon socket: an error (None: trusted), and
    whether the simulator's marker lies beside it."""

    remote_uid: int | None = None
    errors: dict[str, EndpointError] = field(default_factory=dict)
    simulated: set[str] = field(default_factory=set)


def _remote_script(paths: Mapping[str, str]) -> str:
    lines = ["LC_ALL=C", "export LC_ALL", "id -u"]
    for path in paths.values():
        sock, folder = shlex.quote(path), shlex.quote(os.path.dirname(path) or "/")
        marker = shlex.quote(os.path.join(os.path.dirname(path), SIMULATOR_MARKER))
        # stat's own message on failure (LC_ALL=C): only ENOENT means "no socket there"
        lines += [
            f"stat -c '%f %u' -- {sock} 2>&1 | head -n 1",
            f"stat -L -c '%f %u' -- {folder} 2>&1 | head -n 1",
            f"if test -e {marker}; then echo simulated; else echo live; fi",
        ]
    return "; ".join(lines)


def _parse_stat(line: str) -> os.stat_result | None:
    parts = line.split()
    if len(parts) != 2:
        return None
    try:
        mode, uid = int(parts[0], 16), int(parts[1])
    except ValueError:
        return None
    return os.stat_result((mode, 0, 0, 0, uid, 0, 0, 0, 0, 0))


def check_remote(
    destination: Endpoint,
    endpoints: Mapping[str, Endpoint],
    settings: SshConfig,
    *,
    connect_timeout: float,
    read_timeout: float,
) -> RemoteCheck:
    """Check each of ``endpoints`` (daemon name to ``ssh://`` endpoint, all on
    ``destination``'s host) on the remote side with :mod:`trust`'s rules; read-only."""
    paths = {name: ep.path for name, ep in endpoints.items()}
    argv = [*ssh_argv(destination, settings, connect_timeout), "--", destination.host]
    argv.append(_remote_script(paths))
    found = RemoteCheck()

    def fail_all(error_for: type[EndpointError], why: str) -> RemoteCheck:
        found.errors = {name: error_for(ep.uri, None, why) for name, ep in endpoints.items()}
        return found

    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=connect_timeout + read_timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return fail_all(
            TransportError, f"ssh did not answer within {connect_timeout + read_timeout:g} s"
        )
    except OSError as exc:
        return fail_all(TransportError, f"cannot run {SSH}: {exc.strerror or exc}")
    stdout = done.stdout.decode("utf-8", "replace")
    lines = stdout.splitlines()
    if done.returncode != 0 or not lines:
        stderr = _excerpt(done.stderr.decode("utf-8", "replace"))
        return fail_all(TransportError, f"ssh exited {done.returncode}: {stderr}")
    if len(lines) != 1 + 3 * len(paths) or not lines[0].strip().isdigit():
        return fail_all(
            ProtocolError,
            f"the remote trust check answered {len(lines)} line(s) that are not `id -u` and "
            "`stat -c '%f %u'` output (is GNU coreutils installed there?)",
        )
    uid = found.remote_uid = int(lines[0])
    uids = (uid,) if uid == 0 else (uid, 0)
    where = f"on {destination.host}"
    for index, (name, ep) in enumerate(endpoints.items()):
        sock_line, dir_line, marker = lines[1 + 3 * index : 4 + 3 * index]
        folder = os.path.dirname(ep.path)
        try:
            sock_st = _parse_stat(sock_line)
            if sock_st is None and sock_line.rstrip().endswith(_ENOENT):
                raise TransportError(ep.uri, None, f"{NO_SOCKET} {ep.path} {where}")
            if sock_st is None:
                raise TransportError(
                    ep.uri, None, f"cannot inspect {ep.path} {where}: {_excerpt(sock_line)}"
                )
            check_socket_stat(
                f"{ep.path} ({where})", sock_st, endpoint=ep.uri, method=None, uids=uids
            )
            dir_st = _parse_stat(dir_line)
            if dir_st is None:
                raise TransportError(
                    ep.uri,
                    None,
                    f"cannot inspect directory {folder} {where}: {_excerpt(dir_line)}",
                )
            check_directory_stat(
                f"{folder} ({where})", dir_st, endpoint=ep.uri, method=None, uids=uids
            )
        except EndpointError as exc:
            found.errors[name] = exc
            continue
        if marker.strip() == "simulated":
            found.simulated.add(name)
    return found


class Forward:
    """One ``ssh -N`` process forwarding daemon sockets of one host to local sockets."""

    def __init__(
        self,
        destination: Endpoint,
        remote: Mapping[str, str],
        settings: SshConfig,
        *,
        connect_timeout: float,
    ) -> None:
        self.destination = destination
        self.remote = dict(remote)
        self.settings = settings
        self.connect_timeout = connect_timeout
        self.folder: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The pid of our ``ssh`` child (it serves every local socket), once started."""
        return self.process.pid if self.process is not None else None

    def open(self) -> dict[str, str]:
        """Start ``ssh`` and wait until every local socket listens; daemon name to local path.
        Raises :class:`TransportError` (after closing) if ssh fails or is not ready in time."""
        with self._lock:
            if self._closed:
                raise TransportError(self.destination.uri, None, "the forward was closed")
            # mkdtemp makes the folder 0700: only we can create or swap sockets in it.
            self.folder = Path(tempfile.mkdtemp(prefix="cg-ssh-"))
            local = {name: str(self.folder / f"{i}.sock") for i, name in enumerate(self.remote)}
            argv = ssh_argv(self.destination, self.settings, self.connect_timeout)
            argv += ["-N", "-o", "ExitOnForwardFailure=yes"]
            for name, remote_path in self.remote.items():
                argv += ["-L", f"{local[name]}:{remote_path}"]
            argv += ["--", self.destination.host]
            with open(self.folder / "ssh.log", "wb") as log:
                self.process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
                )
        try:
            self._wait(local)
        except BaseException:
            self.close()
            raise
        return local

    def _wait(self, local: Mapping[str, str]) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.connect_timeout
        while True:
            if all(_is_socket(path) for path in local.values()) and _listening(local.values()):
                return
            code = self.process.poll()
            if code is not None:
                raise TransportError(
                    self.destination.uri,
                    None,
                    f"ssh forwarding exited {code}: {self._stderr()}",
                )
            if time.monotonic() > deadline:
                raise TransportError(
                    self.destination.uri,
                    None,
                    f"ssh did not forward the daemon sockets within {self.connect_timeout:g} s "
                    f"(connect_s): {self._stderr()}",
                )
            time.sleep(0.02)

    def _stderr(self) -> str:
        try:
            assert self.folder is not None
            return _excerpt((self.folder / "ssh.log").read_text("utf-8", "replace"))
        except OSError:
            return "no message"

    def close(self) -> None:
        """Stop ``ssh`` (SIGTERM, then SIGKILL) and remove the local folder; idempotent."""
        with self._lock:
            self._closed = True
            process, self.process = self.process, None
            folder, self.folder = self.folder, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


#: Linux's table of Unix sockets, and the flag it shows on one that listens.
_UNIX_SOCKETS = "/proc/net/unix"
_ACCEPTING = 0x10000


def _listening(paths: Iterable[str]) -> bool:
    """Whether a socket listens at each of ``paths``. ssh creates a socket file (bind) a moment
    before it listens on it, and a connection in between is refused: Linux's socket table
    tells the two apart without connecting (a connection would reach the remote daemon).
    A path the table does not list at all (no such table, or one that shows no sockets, as
    some sandboxes have) is taken as listening once its file exists, as before."""
    try:
        with open(_UNIX_SOCKETS, encoding="utf-8", errors="replace") as table:
            lines = table.readlines()
    except OSError:
        return True
    wanted = set(paths)
    listed: set[str] = set()
    accepting: set[str] = set()
    for line in lines[1:]:
        fields = line.split(None, 7)  # Num RefCount Protocol Flags Type St Inode Path
        path = fields[7].rstrip("\n") if len(fields) == 8 else ""
        if path in wanted:
            listed.add(path)
            with contextlib.suppress(ValueError):
                if int(fields[3], 16) & _ACCEPTING:
                    accepting.add(path)
    return not (listed - accepting)


class Forwards:
    """Every :class:`Forward` of one observation, so that all of them are stopped at once
    (on Ctrl-C or an error) from the thread that started the observation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Forward] = []
        self._closed = False

    def add(self, forward: Forward) -> Forward:
        """Keep ``forward``; after :meth:`close_all` it is closed at once (it never starts)."""
        with self._lock:
            self._items.append(forward)
            closed = self._closed
        if closed:
            forward.close()
        return forward

    def close_all(self) -> None:
        """Stop every forward kept, and any added later."""
        with self._lock:
            self._closed = True
            items = list(self._items)
        for forward in items:
            forward.close()
