"""One simulated agtmux daemon: a real process serving the daemon's JSON-RPC on a real Unix socket.

Run ``python -m pytest_canarygate.agtmux.sim.daemon --name v5 --scenario NAME --socket PATH`` (or
``--scenario-file PATH``; ``--phase`` and ``--anchor-ms`` as in :mod:`.process`). The wire
behaviour follows daemon facts sections 1 and 2: one request line per connection, one response
line, socket 0600 in a 0700 directory, stale sockets removed, live ones left alone. What the
daemon knows and answers is
:class:`~pytest_canarygate.agtmux.sim.projection.SimDaemon`, equipped for its scenario by
:func:`~pytest_canarygate.agtmux.sim.ops_answers.attach_operations`.

The daemon stops (removing its socket) on SIGTERM or SIGINT, and when its stdin is a pipe that
reaches EOF, i.e. when the launcher that started it has gone.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import socketserver
import stat
import sys
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path

from pytest_canarygate.agtmux.sim.clock import NS_PER_MS
from pytest_canarygate.agtmux.sim.clock import anchor_ms_now
from pytest_canarygate.agtmux.sim.clock import wall_ns
from pytest_canarygate.agtmux.sim.ops_answers import attach_operations
from pytest_canarygate.agtmux.sim.process import StopRequest
from pytest_canarygate.agtmux.sim.process import add_child_arguments
from pytest_canarygate.agtmux.sim.process import child_logger
from pytest_canarygate.agtmux.sim.process import load_child_scenario
from pytest_canarygate.agtmux.sim.process import serve_until_stopped
from pytest_canarygate.agtmux.sim.projection import SimDaemon
from pytest_canarygate.endpoints import UNIX_PATH_MAX
from pytest_canarygate.errors import ConfigError

__all__ = ["main"]


class _StartupError(Exception):
    """The daemon cannot serve at the requested path; the message says why."""


class _RequestHandler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        # Exactly one line per connection; anything after it is ignored.
        reply = self.server.model.handle_line(self.rfile.readline())
        if reply is not None:
            self.wfile.write(reply)


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    block_on_close = False  # a client that never sends its line must not block shutdown

    def __init__(self, path: str, model: SimDaemon) -> None:
        self.model = model
        super().__init__(path, _RequestHandler, bind_and_activate=False)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up early is not worth a traceback


def _prepare_directory(directory: Path) -> None:
    try:
        existed = directory.is_dir()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if existed and directory.stat().st_mode & stat.S_ISVTX:
            # The real daemon would chmod a shared directory such as /tmp to 0700.
            raise _StartupError(
                f"{directory} is a shared directory (sticky bit set); "
                "give each daemon its own socket directory"
            )
        os.chmod(directory, 0o700)
    except OSError as exc:
        raise _StartupError(
            f"cannot prepare socket directory {directory}: {exc.strerror}"
        ) from None


def _clear_stale_socket(path: Path, log: Callable[[str], None]) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise _StartupError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError:
        try:
            os.unlink(path)
        except OSError as exc:
            raise _StartupError(f"cannot remove stale socket {path}: {exc.strerror}") from None
        log(f"removed stale socket at {path}")
        return
    finally:
        probe.close()
    raise _StartupError(f"another daemon is already running at {path}")


def _open_server(path: Path, model: SimDaemon) -> tuple[_Server, tuple[int, int]]:
    """Bind the socket (0600, in a 0700 directory); return the server and the socket's identity."""
    if len(os.fsencode(path)) > UNIX_PATH_MAX:
        raise _StartupError(
            f"socket path {path} is {len(os.fsencode(path))} bytes; "
            f"AF_UNIX allows at most {UNIX_PATH_MAX}"
        )
    _prepare_directory(path.parent)
    _clear_stale_socket(path, model.log)
    server = _Server(str(path), model)
    try:
        server.server_bind()
    except OSError as exc:
        server.server_close()
        if exc.errno == errno.EADDRINUSE:  # another daemon bound it just now
            raise _StartupError(f"another daemon is already running at {path}") from None
        raise _StartupError(f"cannot bind {path}: {exc.strerror}") from None
    st = os.stat(path)
    identity = (st.st_dev, st.st_ino)
    try:
        os.chmod(path, 0o600)
        server.server_activate()
    except OSError as exc:
        server.server_close()
        _remove_socket(path, identity)
        raise _StartupError(f"cannot serve on {path}: {exc.strerror}") from None
    return server, identity


def _remove_socket(path: Path, identity: tuple[int, int]) -> None:
    """Unlink ``path`` only if it is still the socket this process bound."""
    try:
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) == identity:
            os.unlink(path)
    except OSError:
        pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_canarygate.agtmux.sim.daemon",
        description="One simulated agtmux daemon serving JSON-RPC on a Unix socket.",
    )
    parser.add_argument("--name", required=True, help="daemon name in the scenario (v4, v5, ...)")
    add_child_arguments(parser)
    parser.add_argument("--socket", required=True, type=Path, help="Unix socket path to serve")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve one simulated daemon until SIGTERM/SIGINT or EOF on a piped stdin."""
    args = _parser().parse_args(argv)
    log = child_logger(args.name)
    try:
        scenario = load_child_scenario(args)
        spec = scenario.daemon(args.name, args.phase)
        anchor_ms = anchor_ms_now() if args.anchor_ms is None else args.anchor_ms
    except ConfigError as exc:
        log(f"ERROR {exc}")
        return 2
    stop = StopRequest(log)
    model = SimDaemon(spec, pid=os.getpid(), start_ns=wall_ns(), anchor_ns=anchor_ms * NS_PER_MS)
    model.log = log
    attach_operations(model, scenario, phase=args.phase, anchor_ms=anchor_ms)
    model.warm()  # a big fleet's answers are encoded before the socket is served
    socket_path = Path(os.path.abspath(args.socket))
    try:
        server, identity = _open_server(socket_path, model)
    except _StartupError as exc:
        log(f"ERROR {exc}")
        return 1
    log(f"serving scenario {scenario.name} as {spec.name} {spec.version} at {socket_path}")
    serve_until_stopped(server, stop, before_shutdown=lambda: _remove_socket(socket_path, identity))
    log("daemon stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
