"""The ``canarygate`` command: one subcommand per concern, each defined in its own module.

Every subcommand module exposes ``add_subcommand(subparsers)``, which adds
its parser and sets ``func`` to a callable taking the parsed namespace and returning an exit code.
A subcommand whose module cannot be imported (a dependency is missing) is still listed; running it
prints one line naming the missing module and exits 1.

Packs add subcommands of their own through the ``pytest_canarygate.subcommands`` entry-point
group (name -> module), e.g. the agtmux pack's ``sim``.

Exit codes are the same for every subcommand: :data:`EXIT_CODES`, printed by
``canarygate --help``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_canarygate import progress

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_CODES",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_MALFORMED",
    "EXIT_OK",
    "EXIT_USAGE",
    "SUBCOMMAND_GROUP",
    "SUBCOMMAND_MODULES",
    "build_parser",
    "main",
    "progress_stage",
    "subcommand_modules",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_MALFORMED = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

EXIT_CODES = """\
exit codes (the same for every subcommand):
  0    success: catalog printed; sim stopped by Ctrl-C or SIGTERM, or --list found every
       scenario valid; key pair written; bundle VALID; HTML report written; sign-off,
       waiver or report written; status read; every link of verify --chain OK
  1    the thing checked is bad, or the work failed: bundle INVALID (tampered, unsigned, bad or
       untrusted signature, not the expected phase or migration), or with verify
       --require-promotable not a live, complete, promotable sign-off; html refused a bundle
       that does not verify; a link of verify --chain
       BROKEN; an archive folder others may write; an attestation that could not be
       written; Allure missing or failing, or its report not offline; key files could not be
       written; a simulated daemon did not start; sim --list found an invalid scenario; a
       module the subcommand needs is missing
  2    usage error: bad or missing arguments, unknown subcommand or scenario, a file or
       directory named on the command line that does not exist (bundle, key, catalog,
       scenario), or an output that may not be written there (keygen never overwrites a key;
       html never writes inside a bundle or through a symlink)
  3    malformed input: what was named exists but cannot be used as such: not an evidence
       bundle, an unreadable envelope or statement, a key file that is not an Ed25519 public
       key, a scenario or catalog file that does not parse or validate
  130  interrupted (Ctrl-C), except for sim, where Ctrl-C is the normal stop (0)
  141  standard output was closed early (e.g. piped into head): the output was cut short, so
       the outcome is not reported; 141 is what a shell reports for a process killed by
       SIGPIPE. Run again without the pipe to get the real exit code.
"""
"""The exit-code table of every subcommand, printed by ``canarygate --help``."""

#: The engine's own subcommands: name -> the module that defines it.
SUBCOMMAND_MODULES = {
    "catalog": "pytest_canarygate.catalog",
    "keygen": "pytest_canarygate.keys",
    "verify": "pytest_canarygate.verify",
    "html": "pytest_canarygate.report_html",
    "signoff": "pytest_canarygate.attestation_cli",
    "waive": "pytest_canarygate.attestation_cli",
    "report": "pytest_canarygate.attestation_cli",
    "status": "pytest_canarygate.chain",
}
#: The entry-point group through which packs add subcommands (name -> module).
SUBCOMMAND_GROUP = "pytest_canarygate.subcommands"


def subcommand_modules() -> dict[str, str]:
    """The engine's subcommands, then those installed packs add (name -> module)."""
    from importlib.metadata import entry_points

    found = dict(SUBCOMMAND_MODULES)
    for entry in entry_points(group=SUBCOMMAND_GROUP):
        found.setdefault(entry.name, entry.value)
    return found


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help output does not hide a closed pipe: argparse swallows
    write errors, which would make ``canarygate --help | head -1`` exit 0 where every other
    output cut short exits 141. Subparsers are created with the same class."""

    def print_help(self, file: SupportsWrite[str] | None = None) -> None:
        (sys.stdout if file is None else file).write(self.format_help())


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand, or with ``only`` that one (the others'
    modules not even imported: ``canarygate verify`` starts without loading the simulator).

    A subcommand whose module cannot be imported is added as a placeholder that accepts any
    arguments and, when run, reports the missing module (exit 1), so the failure is never
    mistaken for an unknown subcommand and the other subcommands keep working.
    """
    parser = _Parser(
        prog="canarygate",
        description="Gate a phased daemon migration: catalog, keys, verify, html, sign-offs,\n"
        "waivers, reports and the status of the chain.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command, module_name in subcommand_modules().items():
        if only is not None and command != only:
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            _add_unavailable(subparsers, command, _import_problem(module_name, exc))
            continue
        # A module that defines several subcommands names each adder after it.
        adder = getattr(module, f"add_{command}_subcommand", None) or module.add_subcommand
        adder(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``canarygate`` with ``argv`` (default: the process arguments); return the exit code.

    A closed standard output (``canarygate ... | head -1``) ends the command with
    :data:`EXIT_BROKEN_PIPE` and no traceback.
    """
    try:
        try:
            return _dispatch(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not as a traceback at interpreter exit
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def progress_stage(label: str) -> progress.Stage:
    """A :class:`~pytest_canarygate.progress.Stage` whose line goes to the standard error, so
    that the standard output holds only the command's result (``--json`` stays parseable)."""
    return progress.Stage(label, _write_stderr, threshold_s=progress.DEFAULT_THRESHOLD_S)


def _write_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _dispatch(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    named = argv[0] if argv and argv[0] in subcommand_modules() else None
    parser = build_parser(named)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except ModuleNotFoundError as exc:  # a dependency imported only when the command runs
        print(f"canarygate {args.command}: error: {_missing(exc)}", file=sys.stderr)
        return EXIT_FAILED


def _import_problem(module_name: str, exc: ImportError) -> str:
    if isinstance(exc, ModuleNotFoundError):
        return f"cannot load {module_name}: {_missing(exc)}"
    return f"cannot load {module_name}: {exc}"


def _missing(exc: ModuleNotFoundError) -> str:
    name = exc.name or "?"
    return f"module {name!r} is missing ({exc}); install it, or reinstall pytest-canarygate"


def _add_unavailable(
    subparsers: argparse._SubParsersAction[_Parser], command: str, problem: str
) -> None:
    # A prefix character no argument uses: every argument, "-h" included, is taken as a
    # positional, so whatever the user typed reaches the error below instead of a parse error.
    sub = subparsers.add_parser(
        command, help=f"(unavailable: {problem})", add_help=False, prefix_chars="\x00"
    )
    sub.add_argument("ignored", nargs="*", help=argparse.SUPPRESS)

    def report(args: argparse.Namespace) -> int:
        print(f"canarygate {command}: error: {problem}", file=sys.stderr)
        return EXIT_FAILED

    sub.set_defaults(func=report)


def _discard_stdout() -> None:
    """Point the standard output at devnull, so the final flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (captured output): nothing to redirect
        pass
