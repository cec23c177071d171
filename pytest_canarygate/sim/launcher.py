"""Start and stop a fleet of simulated daemons, each a child process on its own Unix socket.

Layout: ``<socket_dir>/<name>/agtmuxd.sock``, with that daemon's log beside it (``daemon.log``).
Each child keeps its stdin as a pipe from this process, so no daemon outlives its launcher: when
the launcher goes away, however it dies, the pipe reaches EOF and the daemon removes its socket
and exits.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from types import TracebackType
from typing import IO
from typing import Any

from pytest_canarygate.errors import CanarygateError
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.sim.scenario import load_scenario
from pytest_canarygate.sim.scenario import looks_like_path

__all__ = ["SOCKET_NAME", "SimFleet", "SimulatorError", "start_fleet"]

SOCKET_NAME = "agtmuxd.sock"
LOG_NAME = "daemon.log"
_MAX_SOCKET_PATH_BYTES = 107  # sun_path is 108 bytes including the terminating NUL
_DAEMON_MODULE = "pytest_canarygate.sim.daemon"
_LOG_EXCERPT = 4000


class SimulatorError(CanarygateError):
    """A simulated daemon died or never became ready; the message carries its log."""


@dataclass
class SimFleet:
    """A running simulated fleet. Stop it with :meth:`stop` or use it as a context manager."""

    scenario: str
    socket_dir: Path
    endpoints: dict[str, str]
    pids: dict[str, int]
    _procs: dict[str, subprocess.Popen[bytes]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _created: list[Path] = field(  # directories this fleet made, outermost first
        default_factory=list, init=False, repr=False, compare=False
    )
    _stopped: bool = field(default=False, init=False, repr=False, compare=False)

    def socket_path(self, name: str) -> Path:
        """The socket path of daemon ``name``."""
        return self.socket_dir / name / SOCKET_NAME

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every daemon (SIGTERM, then SIGKILL after ``timeout``) and remove what we made.

        Idempotent. Sockets are removed only if no process serves them any more, and directories
        only if this fleet created them.
        """
        if self._stopped:
            return
        self._stopped = True
        for proc in self._procs.values():
            _close(proc.stdin)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self._procs.values():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for name in self._procs:
            path = self.socket_path(name)
            if _is_socket(path) and not _is_served(path):  # a SIGKILLed daemon leaves it behind
                path.unlink(missing_ok=True)
            (self.socket_dir / name / LOG_NAME).unlink(missing_ok=True)
        for directory in reversed(self._created):
            try:
                directory.rmdir()
            except OSError:
                pass  # not empty: something we did not create is in it

    def __enter__(self) -> SimFleet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, name: str, scenario_args: Sequence[str]) -> None:
        directory = self.socket_dir / name
        self._created.extend(_make_dirs(directory))
        with open(directory / LOG_NAME, "wb") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    _DAEMON_MODULE,
                    "--name",
                    name,
                    *scenario_args,
                    "--socket",
                    str(directory / SOCKET_NAME),
                ],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_child_env(),
                start_new_session=True,  # our signals are sent on purpose, not by a terminal
            )
        self._procs[name] = proc
        self.pids[name] = proc.pid
        self.endpoints[name] = f"unix://{directory / SOCKET_NAME}"

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.005
        pending = dict(self._procs)
        while pending:
            for name, proc in list(pending.items()):
                if proc.poll() is not None:
                    raise SimulatorError(
                        f"simulated daemon {name} exited with status {proc.returncode} "
                        f"before it was ready:\n{self._log_excerpt(name)}"
                    )
                info = _daemon_info(self.socket_path(name))
                if info is not None and info.get("pid") == proc.pid:
                    del pending[name]
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(pending)
                logs = "\n".join(f"--- {name}:\n{self._log_excerpt(name)}" for name in pending)
                raise SimulatorError(
                    f"simulated daemon(s) {names} not ready after {timeout:g} s:\n{logs}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _log_excerpt(self, name: str) -> str:
        try:
            text = (self.socket_dir / name / LOG_NAME).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return text[-_LOG_EXCERPT:].strip() or "(empty log)"


def start_fleet(
    scenario: str,
    socket_dir: Path | None = None,
    *,
    daemons: Sequence[str] = ("v4", "v5"),
    ready_timeout: float = 10.0,
) -> SimFleet:
    """Start one simulated daemon per name in ``daemons`` and wait until each answers.

    ``scenario`` is a built-in scenario name or a path to a scenario file. ``socket_dir``
    defaults to a new short temporary directory. Raises ConfigError for a bad scenario, daemon
    name or socket path, SimulatorError if a daemon dies or is not ready within ``ready_timeout``
    seconds; whatever was started is stopped again before raising.
    """
    loaded = load_scenario(scenario)
    names = list(dict.fromkeys(daemons))
    if not names:
        raise ConfigError("start_fleet: no daemons to start")
    for name in names:
        loaded.daemon(name)
    if looks_like_path(scenario):
        scenario_args = ["--scenario-file", os.path.abspath(scenario)]
    else:
        scenario_args = ["--scenario", scenario]
    created: list[Path] = []
    if socket_dir is None:
        base = Path(tempfile.mkdtemp(prefix="cg-sim-"))
        created.append(base)
    else:
        base = Path(os.path.abspath(socket_dir))
    fleet = SimFleet(scenario, base, {}, {})
    fleet._created = created
    try:
        for name in names:
            _check_socket_path(base / name / SOCKET_NAME)
        created.extend(_make_dirs(base))
        for name in names:
            fleet._spawn(name, scenario_args)
        fleet._wait_ready(ready_timeout)
    except BaseException:
        fleet.stop()
        raise
    return fleet


def _check_socket_path(path: Path) -> None:
    size = len(os.fsencode(path))
    if size > _MAX_SOCKET_PATH_BYTES:
        raise ConfigError(
            f"socket path {path} is {size} bytes, but AF_UNIX socket paths are limited to "
            f"{_MAX_SOCKET_PATH_BYTES}; choose a shorter socket directory"
        )


def _make_dirs(directory: Path) -> list[Path]:
    """Create ``directory`` (0700) and missing parents; return the ones created, outermost first."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return list(reversed(missing))


def _child_env() -> dict[str, str]:
    # Make the daemon import this very copy of the package, installed or not.
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _close(stream: IO[bytes] | None) -> None:
    if stream is not None:
        try:
            stream.close()
        except OSError:
            pass


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def _is_served(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _daemon_info(path: Path) -> dict[str, Any] | None:
    """The ``daemon.info`` result of the daemon at ``path``, or None if it does not answer yet."""
    request = b'{"jsonrpc":"2.0","id":0,"method":"daemon.info"}\n'
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(2.0)
            conn.connect(str(path))
            conn.sendall(request)
            conn.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        result = json.loads(reply)["result"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return result if isinstance(result, dict) else None
