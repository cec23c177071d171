"""``canarygate sim``: run a simulated v4/v5 agtmux fleet in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from pytest_canarygate.agtmux.runbook import PHASES
from pytest_canarygate.agtmux.sim.launcher import SimulatorError
from pytest_canarygate.agtmux.sim.launcher import start_fleet
from pytest_canarygate.agtmux.sim.scenario import list_scenarios
from pytest_canarygate.agtmux.sim.scenario import load_scenario
from pytest_canarygate.agtmux.sim.scenario import looks_like_path
from pytest_canarygate.cli import EXIT_FAILED
from pytest_canarygate.cli import EXIT_MALFORMED
from pytest_canarygate.cli import EXIT_USAGE
from pytest_canarygate.errors import ConfigError

__all__ = ["add_subcommand", "run"]

_PROG = "canarygate sim"


def add_subcommand(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sim`` subcommand."""
    parser = subparsers.add_parser(
        "sim",
        help="run a simulated agtmux fleet (v4 and v5 daemons on real Unix sockets)",
        description="Start the simulated v4 and v5 daemons of a scenario, print their endpoints "
        "and where each kind of operations evidence is read (an [evidence] table for the "
        "config), and serve until Ctrl-C (SIGINT) or SIGTERM.",
    )
    parser.add_argument(
        "--scenario",
        metavar="NAME",
        help="Built-in scenario name (see --list) or path to a scenario TOML file",
    )
    parser.add_argument(
        "--socket-dir",
        metavar="DIR",
        type=Path,
        help="Directory for the daemons' sockets (default: a new short temporary directory)",
    )
    parser.add_argument(
        "--phase",
        choices=PHASES,
        help="The migration phase being judged: the scenario's phase-dependent facts (runtime "
        "selector, v4 sessions at cutover) follow it (default: alpha's)",
    )
    parser.add_argument("--list", action="store_true", help="List the built-in scenarios and exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; return the exit code."""
    if args.list:
        return _list()
    if not args.scenario:
        return _usage("--scenario NAME is required (see --list for the scenarios)")
    status = _check_scenario(args.scenario)
    if status:
        return status
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            fleet = start_fleet(args.scenario, args.socket_dir, phase=args.phase)
        except ConfigError as exc:
            return _usage(str(exc))
        except SimulatorError as exc:
            print(f"{_PROG}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        with fleet:
            width = max(len(name) for name in fleet.endpoints)
            for name, endpoint in fleet.endpoints.items():
                print(f"{name:<{width}}  {endpoint}  pid {fleet.pids[name]}")
            if fleet.ops_url is not None:
                print(f"operations over HTTP  {fleet.ops_url}  pid {fleet.ops_pid}")
            if fleet.evidence:
                print("[evidence]")
                for kind, uri in fleet.evidence.items():
                    print(f"{kind} = {json.dumps(uri)}")
            phase = f", phase {args.phase}" if args.phase else ""
            print(
                f"simulated fleet ready (scenario {args.scenario}{phase}); Ctrl-C to stop",
                flush=True,
            )
            while not received:
                time.sleep(0.05)
        print("simulated fleet stopped", flush=True)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _list() -> int:
    names = list_scenarios()
    width = max((len(name) for name in names), default=0)
    status = 0
    for name in names:
        try:
            description = load_scenario(name).description
        except ConfigError as exc:
            description, status = f"INVALID: {exc}", 1
        print(f"{name:<{width}}  {description}")
    return status


def _check_scenario(name_or_path: str) -> int:
    """Exit code for a scenario that cannot run: 2 if it does not exist, 3 if it does not load
    (bad TOML or fields); 0 when it loads."""
    if looks_like_path(name_or_path):
        if not Path(name_or_path).is_file():
            return _usage(f"scenario file {name_or_path}: no such file")
    elif name_or_path not in list_scenarios():
        known = ", ".join(list_scenarios())
        return _usage(f"unknown scenario {name_or_path!r}; available: {known}")
    try:
        load_scenario(name_or_path)
    except ConfigError as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return EXIT_MALFORMED
    return 0


def _usage(message: str) -> int:
    print(f"{_PROG}: error: {message}", file=sys.stderr)
    return EXIT_USAGE
