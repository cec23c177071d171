"""Start and stop a fleet of simulated daemons, each a child process on its own Unix socket.

Layout: ``<socket_dir>/<name>/agtmuxd.sock``, with that daemon's log beside it (``daemon.log``).
When the scenario has ``[operations]`` and the v5 daemon is started, the v5 deployment's
evidence is published too: files under ``<socket_dir>/evidence/`` and, when a kind of evidence
is read over HTTP, one operations HTTP server on 127.0.0.1 (its log in ``ops-http.log``).
:attr:`SimFleet.evidence` says where each kind of evidence is read.

Each child keeps its stdin as a pipe from this process, so none outlives its launcher: when the
launcher goes away, however it dies, the pipe reaches EOF and the child stops (a daemon removes
its socket first).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from types import TracebackType
from typing import IO
from typing import Any

from pytest_canarygate.agtmux.pack import RPC_EVIDENCE_KINDS
from pytest_canarygate.agtmux.runbook import PHASES
from pytest_canarygate.agtmux.sim import http_server
from pytest_canarygate.agtmux.sim.clock import anchor_ms_now
from pytest_canarygate.agtmux.sim.evidence_files import write_evidence
from pytest_canarygate.agtmux.sim.ops_answers import OpsModel
from pytest_canarygate.agtmux.sim.ops_answers import operations_model
from pytest_canarygate.agtmux.sim.scenario import OPS_DAEMON
from pytest_canarygate.agtmux.sim.scenario import Scenario
from pytest_canarygate.agtmux.sim.scenario import load_scenario
from pytest_canarygate.agtmux.sim.scenario import looks_like_path
from pytest_canarygate.endpoints import UNIX_PATH_MAX
from pytest_canarygate.errors import CanarygateError
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.observation import SIMULATOR_MARKER

__all__ = [
    "EVIDENCE_DIR",
    "EVIDENCE_TRANSPORTS",
    "SOCKET_NAME",
    "SimFleet",
    "SimulatorError",
    "start_fleet",
]

SOCKET_NAME = "agtmuxd.sock"
LOG_NAME = "daemon.log"
EVIDENCE_DIR = "evidence"
HTTP_LOG_NAME = f"{http_server.NAME}.log"
EVIDENCE_TRANSPORTS = {
    "snapshots": "unix",
    "supervisor": "unix",
    "cursor": "unix",
    "alerts": "http",
    "binding": "file",
    "selector": "file",
    "daemon_log": "file",
    "build": "file",
    "archive": "file",
}
"""How each kind of evidence is read in a simulated run, so that every provider is exercised. A
kind the deployment does not publish (no file, no HTTP answer) is read from the v5 socket, where
its ``ops.*`` method answers -32601, or, without such a method (an unpublished daemon log), is
left out of :attr:`SimFleet.evidence`."""
_DAEMON_MODULE = "pytest_canarygate.agtmux.sim.daemon"
_LOG_EXCERPT = 4000
_LOOPBACK = "127.0.0.1"


_Child = tuple[subprocess.Popen[bytes], Path, Callable[[], bool]]
"""A child being waited for: its process, its log and the check that it is ready."""


class SimulatorError(CanarygateError):
    """A simulated daemon or the operations HTTP server died or never became ready; the
    message carries its log."""


@dataclass
class SimFleet:
    """A running simulated fleet. Stop it with :meth:`stop` or use it as a context manager.

    ``endpoints`` and ``pids`` are per daemon; ``evidence`` maps each kind of evidence (the
    ``make_provider`` kinds) to the URI it is read from, empty when nothing is published;
    ``ops_url``/``ops_pid`` are the operations HTTP server's base URL and pid, if it runs;
    ``anchor_ms`` is the fleet's "now" (epoch ms) all scenario history ends at: its start, or
    the pinned value it was started with.
    """

    scenario: str
    socket_dir: Path
    endpoints: dict[str, str]
    pids: dict[str, int]
    phase: str | None = None
    anchor_ms: int = 0
    evidence: dict[str, str] = field(default_factory=dict)
    ops_url: str | None = None
    ops_pid: int | None = None
    _procs: dict[str, subprocess.Popen[bytes]] = field(  # the daemons
        default_factory=dict, init=False, repr=False, compare=False
    )
    _http: subprocess.Popen[bytes] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _evidence_dir: Path | None = field(default=None, init=False, repr=False, compare=False)
    _created: list[Path] = field(  # directories this fleet made, outermost first
        default_factory=list, init=False, repr=False, compare=False
    )
    _stopped: bool = field(default=False, init=False, repr=False, compare=False)
    _stopped_names: list[str] = field(  # daemons left stopped (no process, no socket)
        default_factory=list, init=False, repr=False, compare=False
    )

    def socket_path(self, name: str) -> Path:
        """The socket path of daemon ``name``."""
        return self.socket_dir / name / SOCKET_NAME

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every child (SIGTERM, then SIGKILL after ``timeout``) and remove what we made.

        Idempotent. Sockets are removed only if no process serves them any more, and directories
        only if this fleet created them; the evidence directory always (this fleet wrote it).
        """
        if self._stopped:
            return
        self._stopped = True
        children = [*self._procs.values(), *([self._http] if self._http else [])]
        for proc in children:
            _close(proc.stdin)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in children:
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
            (self.socket_dir / name / SIMULATOR_MARKER).unlink(missing_ok=True)
        for name in self._stopped_names:
            (self.socket_dir / name / SIMULATOR_MARKER).unlink(missing_ok=True)
        if self._http is not None:
            (self.socket_dir / HTTP_LOG_NAME).unlink(missing_ok=True)
        if self._evidence_dir is not None:
            shutil.rmtree(self._evidence_dir, ignore_errors=True)
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

    def _spawn(self, name: str, child_args: Sequence[str]) -> None:
        directory = self.socket_dir / name
        self._created.extend(_make_dirs(directory))
        # Beside the socket, so a run pointed at it by a config is still judged SIMULATED.
        (directory / SIMULATOR_MARKER).write_text("simulated agtmux daemon: never a sign-off\n")
        sock = directory / SOCKET_NAME
        argv = [_DAEMON_MODULE, "--name", name, *child_args, "--socket", str(sock)]
        proc = _start_child(argv, directory / LOG_NAME)
        self._procs[name] = proc
        self.pids[name] = proc.pid
        self.endpoints[name] = f"unix://{sock}"

    def _leave_stopped(self, name: str) -> None:
        """Daemon ``name`` is not running (decommissioned): its folder and the simulator's
        marker are there, its socket is not, so whoever reads its endpoint finds no socket."""
        directory = self.socket_dir / name
        self._created.extend(_make_dirs(directory))
        (directory / SIMULATOR_MARKER).write_text("simulated agtmux daemon: never a sign-off\n")
        self.endpoints[name] = f"unix://{directory / SOCKET_NAME}"
        self._stopped_names.append(name)

    def _publish(
        self, model: OpsModel, scenario: Scenario, child_args: Sequence[str], timeout: float
    ) -> None:
        """Write the v5 deployment's evidence files, start the HTTP server if a kind is read
        over HTTP, and fill :attr:`evidence`."""
        directory = self.socket_dir / EVIDENCE_DIR
        directory.mkdir(mode=0o700)  # never someone else's: it must not exist yet
        self._evidence_dir = directory
        files = write_evidence(
            directory,
            model,
            socket_path=str(self.socket_path(OPS_DAEMON)),
            v4_version=scenario.daemon("v4").version,
        )
        if any(EVIDENCE_TRANSPORTS[kind] == "http" for kind in files):
            self._start_http(child_args, timeout)
        v5 = self.endpoints[OPS_DAEMON]
        for kind, transport in EVIDENCE_TRANSPORTS.items():
            if kind in files:
                where = {"file": files[kind].as_uri(), "http": self.ops_url or v5}
                self.evidence[kind] = where.get(transport, v5)
            elif kind in RPC_EVIDENCE_KINDS:  # not published: its ops.* method answers -32601
                self.evidence[kind] = v5

    def _start_http(self, child_args: Sequence[str], timeout: float) -> None:
        # Bound and listening here, handed over: the port is known and no request is refused.
        with socket.create_server((_LOOPBACK, 0)) as listener:
            port = listener.getsockname()[1]
            fd = listener.fileno()
            argv = [http_server.__name__, "--fd", str(fd), *child_args]
            self._http = _start_child(argv, self.socket_dir / HTTP_LOG_NAME, pass_fds=(fd,))
        self.ops_pid = self._http.pid
        self.ops_url = f"http://{_LOOPBACK}:{port}{http_server.BASE_PATH}"
        log = self.socket_dir / HTTP_LOG_NAME
        ready = {"operations HTTP server": (self._http, log, lambda: _http_answers(port))}
        self._wait_ready(ready, timeout)

    def _wait_daemons(self, timeout: float) -> None:
        self._wait_ready(
            {
                f"daemon {name}": (
                    proc,
                    self.socket_dir / name / LOG_NAME,
                    self._answers(name, proc.pid),
                )
                for name, proc in self._procs.items()
            },
            timeout,
        )

    def _answers(self, name: str, pid: int) -> Callable[[], bool]:
        def check() -> bool:
            info = _daemon_info(self.socket_path(name))
            return info is not None and info.get("pid") == pid

        return check

    def _wait_ready(self, children: dict[str, _Child], timeout: float) -> None:
        """Wait until every child's check passes; SimulatorError (with its log) if one exits
        or is not ready within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        delay = 0.005
        pending = dict(children)
        while pending:
            for name, (proc, log, ready) in list(pending.items()):
                if proc.poll() is not None:
                    raise SimulatorError(
                        f"simulated {name} exited with status {proc.returncode} "
                        f"before it was ready:\n{_log_excerpt(log)}"
                    )
                if ready():
                    del pending[name]
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(pending)
                logs = "\n".join(
                    f"--- {name}:\n{_log_excerpt(log)}" for name, (_, log, _) in pending.items()
                )
                raise SimulatorError(f"simulated {names} not ready after {timeout:g} s:\n{logs}")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def start_fleet(
    scenario: str,
    socket_dir: Path | None = None,
    *,
    daemons: Sequence[str] = ("v4", "v5"),
    ready_timeout: float = 10.0,
    phase: str | None = None,
    anchor_ms: int | None = None,
    stopped: Sequence[str] | None = None,
) -> SimFleet:
    """Start one simulated daemon per name in ``daemons`` and wait until each answers; with
    the v5 daemon, publish its deployment's operations evidence (:attr:`SimFleet.evidence`).

    ``scenario`` is a built-in scenario name or a path to a scenario file. ``socket_dir``
    defaults to a new short temporary directory. ``phase`` is the migration phase being judged
    (one of alpha, canary, gradual, cutover, rollback): the facts of a scenario that follow it
    (the runtime selector, sessions drained at cutover) are those of that phase, and with no
    phase those of alpha. All scenario history (operations evidence, a daemon's ``uptime``) is
    placed before ``anchor_ms`` (epoch ms): by default the moment this is called, or the value of
    the environment variable ``CANARYGATE_SIM_ANCHOR_MS`` when set, so that a test can pin it.
    ``stopped`` names the daemons left not running (no process, no socket at their endpoint:
    decommissioned); by default those whose ``stopped_phases`` hold ``phase``.
    Raises ConfigError for a bad scenario, daemon name, phase, anchor or socket path,
    SimulatorError if a child dies or is not ready within ``ready_timeout`` seconds; whatever was
    started is stopped again before raising.
    """
    if phase is not None and phase not in PHASES:
        raise ConfigError(f"start_fleet: unknown phase {phase!r}; known: {', '.join(PHASES)}")
    loaded = load_scenario(scenario)
    names = list(dict.fromkeys(daemons))
    if not names:
        raise ConfigError("start_fleet: no daemons to start")
    for name in names:
        loaded.daemon(name)
    if stopped is None:
        stopped = [n for n in names if phase in loaded.daemon(n).stopped_phases]
    for name in stopped:
        if name not in names:
            raise ConfigError(f"start_fleet: cannot leave {name!r} stopped: not in {names}")
    if anchor_ms is None:
        anchor_ms = anchor_ms_now()
    elif anchor_ms < 0:
        raise ConfigError(f"start_fleet: anchor_ms {anchor_ms} is before the epoch")
    if looks_like_path(scenario):
        source = ["--scenario-file", os.path.abspath(scenario)]
    else:
        source = ["--scenario", scenario]
    child_args = [*source, *(["--phase", phase] if phase else []), "--anchor-ms", str(anchor_ms)]
    model = None
    if OPS_DAEMON in names:
        model = operations_model(loaded, phase=phase, anchor_ms=anchor_ms)
    created: list[Path] = []
    if socket_dir is None:
        base = Path(tempfile.mkdtemp(prefix="cg-sim-"))
        created.append(base)
    else:
        base = Path(os.path.abspath(socket_dir))
    fleet = SimFleet(scenario, base, {}, {}, phase=phase, anchor_ms=anchor_ms)
    fleet._created = created
    try:
        for name in names:
            _check_socket_path(base / name / SOCKET_NAME)
        if model is not None and os.path.lexists(base / EVIDENCE_DIR):
            raise ConfigError(
                f"{base / EVIDENCE_DIR} already exists (another fleet's, or one whose launcher "
                "was killed: remove it); choose another socket directory"
            )
        created.extend(_make_dirs(base))
        for name in names:
            if name in stopped:
                fleet._leave_stopped(name)
            else:
                fleet._spawn(name, child_args)
        fleet._wait_daemons(ready_timeout)
        if model is not None:
            fleet._publish(model, loaded, child_args, ready_timeout)
    except BaseException:
        fleet.stop()
        raise
    return fleet


def _check_socket_path(path: Path) -> None:
    size = len(os.fsencode(path))
    if size > UNIX_PATH_MAX:
        raise ConfigError(
            f"socket path {path} is {size} bytes, but AF_UNIX socket paths are limited to "
            f"{UNIX_PATH_MAX}; choose a shorter socket directory"
        )


def _make_dirs(directory: Path) -> list[Path]:
    """Create ``directory`` (0700) and missing parents; return the ones created, outermost first."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return list(reversed(missing))


def _start_child(
    argv: Sequence[str], log_path: Path, *, pass_fds: Sequence[int] = ()
) -> subprocess.Popen[bytes]:
    """``python -m <argv>``, stdin a pipe from us, stdout and stderr to ``log_path``."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", *argv],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env(),
            start_new_session=True,  # our signals are sent on purpose, not by a terminal
            pass_fds=pass_fds,
        )


def _log_excerpt(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return text[-_LOG_EXCERPT:].strip() or "(empty log)"


def _http_answers(port: int) -> bool:
    """True once the operations HTTP server answers a request (any status)."""
    conn = http.client.HTTPConnection(_LOOPBACK, port, timeout=2.0)
    try:
        conn.request("GET", f"{http_server.BASE_PATH}/")
        conn.getresponse().read()
    except OSError:
        return False
    finally:
        conn.close()
    return True


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
