"""``canarygate signoff``, ``canarygate waive`` and ``canarygate report``: signed attestations.

Each writes one signed file under ``reports/<migration>/`` (see
:mod:`pytest_canarygate.attestation`). The signer name given with ``--by`` is not checked
against the ``[[signers]]`` allow-list here: the allow-list decides, where attestations are
read, whether the file counts.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import sys
from collections.abc import Callable
from datetime import date
from datetime import datetime
from datetime import time
from datetime import timezone
from pathlib import Path
from typing import Any

from pytest_canarygate import cli
from pytest_canarygate import clock
from pytest_canarygate import strictjson
from pytest_canarygate.attestation import FOLDERS
from pytest_canarygate.attestation import RESOLVE_ITEM
from pytest_canarygate.attestation import write_attestation
from pytest_canarygate.config import CONFIG_FILENAME
from pytest_canarygate.config import MIGRATION_ID_RE
from pytest_canarygate.config import read_toml
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.errors import StrictJSONError
from pytest_canarygate.keys import load_signer
from pytest_canarygate.signing import ENVELOPE_NAME
from pytest_canarygate.trust import FileRefused
from pytest_canarygate.trust import read_regular_file

__all__ = [
    "add_report_subcommand",
    "add_signoff_subcommand",
    "add_waive_subcommand",
    "parse_until",
]

REPORTS_DIR = "reports"
_MAX_REFERRED = 64 * 1024 * 1024


class _Malformed(ConfigError):
    """A file named on the command line exists but cannot be used as such (exit 3)."""


class _Missing(ConfigError):
    """A file named on the command line does not exist (a usage error, exit 2)."""


def parse_until(text: str) -> datetime:
    """``--until``: an ISO 8601 date (the end of that day, UTC) or a datetime with a zone."""
    value = text.strip()
    try:
        day = date.fromisoformat(value)
    except ValueError:
        pass
    else:
        return datetime.combine(day, time(23, 59, 59, 999000), tzinfo=timezone.utc)
    try:
        when = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise ConfigError(
            f"--until {text!r}: expected an ISO 8601 date (2026-12-31) or date and time "
            "with a zone (2026-12-31T18:00Z)"
        ) from None
    if when.tzinfo is None:
        raise ConfigError(
            f"--until {text!r}: give a time zone (Z or +HH:MM), or a date alone for the end "
            "of that day UTC"
        )
    return when


def _now() -> datetime:
    return clock.wall_now()


def _migration(args: argparse.Namespace) -> str:
    """``--migration``, else ``[migration] id`` of ``./canarygate.toml``."""
    if args.migration:
        return str(args.migration)
    config = Path(CONFIG_FILENAME)
    if not config.exists():
        raise ConfigError(
            f"no --migration given and no {CONFIG_FILENAME} here to read [migration] id from; "
            "pass --migration ID"
        )
    _, data = read_toml(config)
    table = data.get("migration")
    migration = table.get("id") if isinstance(table, dict) else None
    if not isinstance(migration, str) or not MIGRATION_ID_RE.match(migration):
        raise ConfigError(
            f"{config}: [migration] id missing or not a migration id; pass --migration ID"
        )
    return migration


def _file_digest(path: Path, what: str) -> tuple[str, bytes]:
    """The sha256 and bytes of the regular file ``path`` (a FIFO is refused unopened)."""
    try:
        data = read_regular_file(path, max_bytes=_MAX_REFERRED)
    except FileNotFoundError:
        raise _Missing(f"{what} {path}: no such file") from None
    except FileRefused as exc:
        raise _Malformed(f"{what} {exc}") from None
    except OSError as exc:
        raise _Malformed(f"{what} {path}: cannot be read ({exc.strerror or exc})") from None
    return hashlib.sha256(data).hexdigest(), data


def _refers_digest(raw: str) -> str:
    """``--refers``: a bundle folder (its envelope's sha256) or an attestation file's sha256."""
    path = Path(raw)
    if path.is_dir():
        envelope = path / ENVELOPE_NAME
        if not envelope.exists():
            raise _Malformed(f"--refers {path}: a folder without {ENVELOPE_NAME} (not a bundle)")
        return _file_digest(envelope, "--refers")[0]
    return _file_digest(path, "--refers")[0]


def _report_predicate(data: bytes, path: Path) -> dict[str, Any]:
    """The (unverified) predicate of a report file, to file its resolution beside it."""
    try:
        envelope = strictjson.loads(data)
        payload = base64.b64decode(envelope["payload"], validate=True)
        predicate = strictjson.loads(payload)["predicate"]
    except (StrictJSONError, KeyError, TypeError, ValueError):
        predicate = None
    if not isinstance(predicate, dict) or predicate.get("kind") != "report":
        raise _Malformed(f"--resolve {path}: not a user report written by `canarygate report`")
    return predicate


def _reports_dir(args: argparse.Namespace) -> Path:
    return Path(args.reports or REPORTS_DIR)


def _write(args: argparse.Namespace, **fields: Any) -> Path:
    signer = load_signer(Path(args.key))
    path = write_attestation(
        _reports_dir(args), fields.pop("migration"), by=args.by, signer=signer, now=_now(), **fields
    )
    print(f"wrote {path}")
    print(f"key id: {signer.public_key.keyid}")
    print(f"it counts only where [[signers]] lists {args.by!r} with this key")
    return path


def _known(what: str, value: str | None, option: str) -> None:
    """Refuse an item, gate or phase the catalog here (``gates/catalog.toml`` in this folder
    or above) does not know: a sign-off or waiver of a misspelt id would never count."""
    if value is None:
        return
    from pytest_canarygate.catalog import find_catalog
    from pytest_canarygate.catalog import load_catalog

    try:
        catalog = load_catalog(find_catalog(Path.cwd()))
    except ConfigError:
        return  # no catalog here: nothing to check against
    known = {"item": catalog.items, "gate": catalog.gates, "phase": catalog.phases}[what]
    if value not in known and not (what == "item" and value == RESOLVE_ITEM):
        raise ConfigError(
            f"{option} {value!r}: not {'an' if what == 'item' else 'a'} {what} of "
            f"{catalog.path} (see `canarygate catalog`)"
        )


def _run_signoff(args: argparse.Namespace) -> None:
    _known("item", args.item, "--item")
    _write(
        args,
        migration=_migration(args),
        kind="signoff",
        subject=args.item,
        session=args.session,
        text=args.text or "",
        refers=[_refers_digest(raw) for raw in args.refers or ()],
    )


def _run_waive(args: argparse.Namespace) -> None:
    _known("gate", args.gate, "--gate")
    _known("phase", args.phase, "--phase")
    _write(
        args,
        migration=_migration(args),
        kind="waiver",
        subject=args.gate,
        text=args.why,
        until=parse_until(args.until),
        phase=args.phase,
    )


def _run_report(args: argparse.Namespace) -> None:
    if args.session is not None:
        _write(
            args, migration=_migration(args), kind="report", subject=args.session, text=args.text
        )
        return
    report = Path(args.resolve)
    digest, data = _file_digest(report, "--resolve")
    predicate = _report_predicate(data, report)
    migration = args.migration or predicate.get("migration_id")
    if not isinstance(migration, str):
        migration = _migration(args)
    folder = report.parent
    if (
        args.reports is None
        and folder.name == FOLDERS["report"]
        and folder.parent.name == migration
    ):
        args.reports = str(folder.parent.parent)  # file the resolution beside the report
    _write(args, migration=migration, kind="resolution", subject=digest, text=args.text)


def _runner(command: str, run: Callable[[argparse.Namespace], None]) -> Any:
    def main(args: argparse.Namespace) -> int:
        try:
            run(args)
        except _Malformed as exc:
            print(f"canarygate {command}: error: {exc}", file=sys.stderr)
            return cli.EXIT_MALFORMED
        except ConfigError as exc:
            print(f"canarygate {command}: error: {exc}", file=sys.stderr)
            return cli.EXIT_USAGE
        except OSError as exc:
            print(f"canarygate {command}: error: cannot write: {exc}", file=sys.stderr)
            return cli.EXIT_FAILED
        return cli.EXIT_OK

    return main


_EPILOG = f"""\
The file is signed with PRIVATE (a key from `canarygate keygen`, mode 0600) and written under
REPORTS/<migration>/ with mode 0644; an existing file is never overwritten. The name given
with --by is not checked here: the file counts only where it is read and the [[signers]] list
of canarygate.toml names that signer with this key (and, for sign-offs and waivers, allows
the item or gate).

exit codes: {cli.EXIT_OK} written; {cli.EXIT_FAILED} the file could not be written; \
{cli.EXIT_USAGE} usage error (bad arguments, a
missing file, a key readable by others, no migration); {cli.EXIT_MALFORMED} a file named \
exists but cannot be used
(--refers, --resolve). The full table is in `canarygate --help`.
"""


def _parser(subparsers: Any, name: str, help_text: str, description: str) -> Any:
    parser = subparsers.add_parser(
        name,
        help=help_text,
        description=description,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _common(parser: Any) -> None:
    parser.add_argument(
        "--by",
        metavar="NAME",
        required=True,
        help="Your signer name as [[signers]] lists it (not checked when writing)",
    )
    parser.add_argument(
        "--key", metavar="PRIVATE", required=True, help="Your private key (mode 0600)"
    )
    parser.add_argument(
        "--migration",
        metavar="M",
        help=f"Migration id (default: [migration] id of ./{CONFIG_FILENAME})",
    )
    parser.add_argument("--reports", metavar="DIR", help=f"Reports folder (default: {REPORTS_DIR})")


def add_signoff_subcommand(subparsers: Any) -> None:
    """Add ``canarygate signoff``."""
    parser = _parser(
        subparsers,
        "signoff",
        "Sign off a runbook item no daemon can show",
        "Write a signed sign-off of a runbook item to REPORTS/<migration>/signoffs/.",
    )
    parser.add_argument("--item", metavar="ID", required=True, help="Runbook item id (P2-X3)")
    parser.add_argument("--session", metavar="S", help="The session the sign-off is about")
    parser.add_argument("--text", metavar="T", help="A note")
    parser.add_argument(
        "--refers",
        metavar="BUNDLE_OR_FILE",
        nargs="+",
        action="extend",
        help="Bundles (folders) or attestation files it refers to; their sha256 is recorded",
    )
    _common(parser)
    parser.set_defaults(func=_runner("signoff", _run_signoff))


def add_waive_subcommand(subparsers: Any) -> None:
    """Add ``canarygate waive``."""
    parser = _parser(
        subparsers,
        "waive",
        "Waive a gate until a date, with a justification",
        "Write a signed waiver of a gate to REPORTS/<migration>/waivers/.",
    )
    parser.add_argument("--gate", metavar="ID", required=True, help="Gate id to waive")
    parser.add_argument("--why", metavar="TEXT", required=True, help="Justification")
    parser.add_argument(
        "--until",
        metavar="DATE",
        required=True,
        help="Expiry: ISO 8601 date (the end of that day UTC) or date and time with a zone",
    )
    parser.add_argument("--phase", metavar="P", help="Only for this phase (default: any phase)")
    _common(parser)
    parser.set_defaults(func=_runner("waive", _run_waive))


def add_report_subcommand(subparsers: Any) -> None:
    """Add ``canarygate report``."""
    parser = _parser(
        subparsers,
        "report",
        "File a signed user report of a data inconsistency, or resolve one",
        "Write a signed user report of a session (--session), or the resolution of a report\n"
        "file (--resolve), to REPORTS/<migration>/user-reports/. A resolution is filed beside\n"
        "the report it resolves, for the report's migration, unless --reports/--migration say.",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--session", metavar="S", help="The session the report is about")
    what.add_argument("--resolve", metavar="FILE", help="The report file this resolves")
    parser.add_argument("--text", metavar="T", required=True, help="What happened / how resolved")
    _common(parser)
    parser.set_defaults(func=_runner("report", _run_report))
