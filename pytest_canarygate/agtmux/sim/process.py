"""What every simulator child process shares: its arguments, its log lines and how it stops.

A child (a daemon, the operations HTTP server) serves until SIGTERM or SIGINT, or until its
stdin, a pipe from the launcher, reaches EOF: then the launcher has gone, however it died, and
the child must not outlive it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socketserver
import stat
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from pytest_canarygate.agtmux.runbook import PHASES
from pytest_canarygate.agtmux.sim.clock import format_tick
from pytest_canarygate.agtmux.sim.clock import wall_ns
from pytest_canarygate.agtmux.sim.scenario import Scenario
from pytest_canarygate.agtmux.sim.scenario import load_scenario
from pytest_canarygate.agtmux.sim.scenario import load_scenario_file

__all__ = [
    "StopRequest",
    "add_child_arguments",
    "child_logger",
    "load_child_scenario",
    "serve_until_stopped",
]

Log = Callable[[str], None]


def add_child_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments every child takes: the scenario, the phase judged and the fleet's "now"."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--scenario", metavar="NAME", help="built-in scenario name")
    source.add_argument("--scenario-file", metavar="PATH", type=Path, help="scenario TOML file")
    parser.add_argument("--phase", choices=PHASES, help="the migration phase being judged")
    parser.add_argument(
        "--anchor-ms",
        type=int,
        help="the fleet's start (epoch ms) that scenario history is placed before (default: "
        "$CANARYGATE_SIM_ANCHOR_MS if set, else now)",
    )


def load_child_scenario(args: argparse.Namespace) -> Scenario:
    """The scenario named by ``--scenario`` or ``--scenario-file``; ConfigError if invalid."""
    if args.scenario_file is not None:
        return load_scenario_file(args.scenario_file)
    return load_scenario(args.scenario)


def child_logger(name: str) -> Log:
    """A logger writing ``<time> agtmux-sim[<name>] <message>`` lines to stderr."""

    def log(message: str) -> None:
        stamp = format_tick(wall_ns())
        print(f"{stamp} agtmux-sim[{name}] {message}", file=sys.stderr, flush=True)

    return log


class StopRequest:
    """Why a child should stop: SIGTERM/SIGINT (handled from construction on) or EOF on a piped
    stdin (watched from :meth:`watch_stdin` on).

    The signal handlers only record the signal and :meth:`wait` polls, which never deadlocks.
    """

    def __init__(self, log: Log) -> None:
        self._log = log
        self._signals: list[str] = []
        self._stdin_closed = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signal.Signals(signum).name)

    def watch_stdin(self) -> None:
        """Stop when stdin, if it is a pipe, reaches EOF."""
        if _stdin_is_pipe():
            threading.Thread(target=self._read_stdin, daemon=True).start()

    def _read_stdin(self) -> None:
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            pass
        self._log("stdin closed (launcher gone), shutting down")
        self._stdin_closed.set()

    def wait(self) -> None:
        """Block until a signal arrives or stdin closes."""
        while not self._signals and not self._stdin_closed.wait(0.05):
            pass
        if self._signals:
            self._log(f"received {self._signals[0]}, shutting down")


def serve_until_stopped(
    server: socketserver.BaseServer,
    stop: StopRequest,
    *,
    before_shutdown: Callable[[], None] = lambda: None,
) -> None:
    """Serve in a background thread until ``stop``; run ``before_shutdown``, then close."""
    stop.watch_stdin()
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    stop.wait()
    before_shutdown()
    server.shutdown()
    server.server_close()


def _stdin_is_pipe() -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(0).st_mode)
    except OSError:
        return False
