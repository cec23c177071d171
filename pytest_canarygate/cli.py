"""The ``canarygate`` command: one subcommand per concern, each defined in its own module.

Every module listed in ``SUBCOMMAND_MODULES`` exposes ``add_subcommand(subparsers)``, which adds
its parser and sets ``func`` to a callable taking the parsed namespace and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMAND_MODULES = (
    "pytest_canarygate.catalog",
    "pytest_canarygate.agtmux.sim.cli",
    "pytest_canarygate.keys",
    "pytest_canarygate.verify",
    "pytest_canarygate.report_html",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="canarygate",
        description="Gate a phased daemon migration: catalog, simulator, keys, verify, html.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            continue  # subcommand not built yet in this tree
        module.add_subcommand(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``canarygate`` with ``argv`` (default: the process arguments); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
