"""Verify an evidence bundle offline with nothing but trusted public keys.

Checks, each reported with its own message naming the file or field at fault:

1. the envelope ``statement.dsse.json`` exists and is a DSSE envelope (else MALFORMED);
2. ``payloadType`` is exactly ``application/vnd.in-toto+json``;
3. at least one signature, made by a trusted key, verifies over the DSSE pre-authentication
   encoding (an unsigned bundle is INVALID: "not signed");
4. the payload is an in-toto Statement v1 with our predicate type and a usable predicate;
5. every subject's sha256 matches, no listed file is missing, and the bundle holds nothing
   else: no unlisted file, symlink, special file or empty folder, anywhere (each judged from
   its directory entry, never opened);
6. the bundle's identity: the directory name is the ``bundle`` the statement was sealed for
   and, inside a ``reports/<migration-id>/<phase>/`` tree, the two parent directories match the
   predicate's migration id and phase, so an envelope moved to another bundle fails even when
   both bundles hold identical files;
7. optionally, the phase and migration the caller expects.

Status: VALID (exit 0), INVALID (exit 1: tampered, unsigned, bad or untrusted signature),
MALFORMED (exit 3: not a bundle, unreadable envelope or statement). ``canarygate verify`` also
exits 3 for a public key file that is not an Ed25519 public key, and 2 for a usage error (bad
arguments, a bundle, key file or key directory that does not exist), as every ``canarygate``
subcommand does (the table is in :mod:`pytest_canarygate.cli`).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import stat
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from pytest_canarygate import cli
from pytest_canarygate import strictjson
from pytest_canarygate._requires import require
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.errors import StrictJSONError
from pytest_canarygate.keys import MalformedKeyError
from pytest_canarygate.keys import load_public_key
from pytest_canarygate.keys import load_trusted_keys
from pytest_canarygate.signing import ENVELOPE_NAME
from pytest_canarygate.signing import PAYLOAD_TYPE
from pytest_canarygate.signing import PREDICATE_TYPE
from pytest_canarygate.signing import STATEMENT_TYPE
from pytest_canarygate.signing import files_sha256
from pytest_canarygate.signing import predicate_problems
from pytest_canarygate.signing import read_regular_file
from pytest_canarygate.signing import scan_bundle
from pytest_canarygate.textsafe import visible
from pytest_canarygate.verdicts import Verdict

require("securesystemslib")

if TYPE_CHECKING:
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import Key

__all__ = [
    "EXIT_INVALID",
    "EXIT_MALFORMED",
    "EXIT_USAGE",
    "EXIT_VALID",
    "Status",
    "VerifyResult",
    "add_subcommand",
    "format_result",
    "load_keys",
    "result_to_json",
    "summarize",
    "verify_bundle",
]

EXIT_VALID = cli.EXIT_OK
EXIT_INVALID = cli.EXIT_FAILED
EXIT_USAGE = cli.EXIT_USAGE
EXIT_MALFORMED = cli.EXIT_MALFORMED
REPORTS_DIR = "reports"
SIMULATED_WARNING = "SIMULATED — never sign-off for a real migration"
EPHEMERAL_WARNING = "EPHEMERAL KEY — signed with a throwaway key, never sign-off"
_PROMOTING = frozenset(v.value for v in Verdict if v.allows_promotion)
_SHA256 = re.compile(r"[0-9a-f]{64}")


class Status(str, Enum):
    """Outcome of verifying a bundle."""

    VALID = "VALID"
    INVALID = "INVALID"
    MALFORMED = "MALFORMED"

    def __str__(self) -> str:
        return self.value


_EXIT_CODES = {
    Status.VALID: EXIT_VALID,
    Status.INVALID: EXIT_INVALID,
    Status.MALFORMED: EXIT_MALFORMED,
}


@dataclass(frozen=True)
class VerifyResult:
    """The verdict on one bundle; ``statement``/``predicate`` are set whenever they parsed.

    A parsed statement or predicate of a bundle that is not VALID is a *claim*, not evidence.
    """

    bundle: Path
    status: Status
    problems: list[str] = field(default_factory=list)
    statement: dict[str, Any] | None = None
    predicate: dict[str, Any] | None = None
    signer_keyid: str | None = None
    #: what the reader should know about a valid bundle (e.g. it is not bound to a place)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the bundle is VALID."""
        return self.status is Status.VALID

    @property
    def exit_code(self) -> int:
        """The ``canarygate verify`` exit code for this result."""
        return _EXIT_CODES[self.status]


class _Findings:
    """Problems in discovery order; any INVALID one outranks MALFORMED ones."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.invalid = False
        self.malformed = False

    def note(self, message: str) -> None:
        """Something the reader should know that does not make the bundle invalid."""
        self.notes.append(message)

    def tampered(self, message: str) -> None:
        self.problems.append(message)
        self.invalid = True

    def broken(self, message: str) -> None:
        self.problems.append(message)
        self.malformed = True

    @property
    def status(self) -> Status:
        if self.invalid:
            return Status.INVALID
        return Status.MALFORMED if self.malformed else Status.VALID


class _Stop(Exception):
    """Verification cannot go on (no envelope to read)."""


def verify_bundle(
    bundle_dir: Path,
    trusted_keys: Mapping[str, Key],
    *,
    expected_phase: str | None = None,
    expected_migration: str | None = None,
) -> VerifyResult:
    """Verify the bundle in ``bundle_dir`` against ``trusted_keys`` (key id -> public key)."""
    bundle = Path(os.path.abspath(bundle_dir))
    findings = _Findings()
    try:
        envelope = _read_envelope(bundle, findings)
    except _Stop:
        return VerifyResult(bundle=bundle, status=findings.status, problems=findings.problems)

    if envelope.payload_type != PAYLOAD_TYPE:
        findings.tampered(
            f"{ENVELOPE_NAME}: payloadType is {envelope.payload_type!r}, expected {PAYLOAD_TYPE!r}"
        )
    signer_keyid = _check_signatures(envelope, trusted_keys, findings)
    statement = _parse_statement(envelope.payload, findings)
    predicate = None
    if statement is not None:
        _check_subjects(bundle, statement.get("subject"), findings)
        predicate = statement.get("predicate")
        predicate = predicate if isinstance(predicate, dict) else None
    if predicate is not None:
        _check_identity(bundle, predicate, findings)
        _check_expected(predicate, "phase", expected_phase, "--phase", findings)
        _check_expected(predicate, "migration_id", expected_migration, "--migration", findings)
        _check_signer_binding(predicate, signer_keyid, findings)
    return VerifyResult(
        bundle=bundle,
        status=findings.status,
        problems=findings.problems,
        statement=statement,
        predicate=predicate,
        signer_keyid=signer_keyid,
        notes=findings.notes,
    )


def _read_envelope(bundle: Path, findings: _Findings) -> Envelope:
    if not bundle.is_dir():
        findings.broken(f"{bundle}: not a directory (not an evidence bundle)")
        raise _Stop
    path = bundle / ENVELOPE_NAME
    try:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            findings.tampered(
                f"{ENVELOPE_NAME}: is a symbolic link (a bundle holds regular files only)"
            )
            raise _Stop
        if not stat.S_ISREG(mode):
            # judged from lstat alone: opening a FIFO would wait for a writer forever
            findings.tampered(
                f"{ENVELOPE_NAME}: is not a regular file (a bundle holds regular files only)"
            )
            raise _Stop
        raw = read_regular_file(path)
    except FileNotFoundError:
        findings.broken(f"{ENVELOPE_NAME}: missing (not a sealed evidence bundle)")
        raise _Stop from None
    except OSError as exc:
        findings.broken(f"{ENVELOPE_NAME}: cannot be read ({exc.strerror or exc})")
        raise _Stop from None
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        findings.broken(f"{ENVELOPE_NAME}: not UTF-8 text (not a DSSE envelope)")
        raise _Stop from None
    try:
        # strict: an envelope naming "payload" twice would read as two different statements
        document = strictjson.loads(raw)
    except StrictJSONError as exc:
        findings.broken(f"{ENVELOPE_NAME}: not valid JSON ({exc})")
        raise _Stop from None
    problem = envelope_shape_problem(document)
    if problem:
        findings.broken(f"{ENVELOPE_NAME}: {problem}")
        raise _Stop
    from securesystemslib.dsse import Envelope

    try:
        return Envelope.from_dict(copy.deepcopy(document))
    except (ValueError, KeyError, TypeError) as exc:
        findings.broken(f"{ENVELOPE_NAME}: not a decodable DSSE envelope ({exc})")
        raise _Stop from None


def envelope_shape_problem(document: Any) -> str | None:
    """Why ``document`` is not a DSSE envelope (payload, payloadType, signatures), or None."""
    if not isinstance(document, dict):
        return "not a DSSE envelope (expected a JSON object)"
    for name in ("payload", "payloadType"):
        if not isinstance(document.get(name), str):
            return f"field {name!r} missing or not a string (not a DSSE envelope)"
    signatures = document.get("signatures")
    if not isinstance(signatures, list):
        return "field 'signatures' missing or not a list (not a DSSE envelope)"
    for index, signature in enumerate(signatures):
        if not (
            isinstance(signature, dict)
            and isinstance(signature.get("keyid"), str)
            and isinstance(signature.get("sig"), str)
        ):
            return f"signatures[{index}] needs string fields 'keyid' and 'sig'"
    return None


def _check_signatures(
    envelope: Envelope, trusted_keys: Mapping[str, Key], findings: _Findings
) -> str | None:
    """Return the key id of a trusted key whose signature verifies, recording why not otherwise."""
    from securesystemslib.exceptions import UnverifiedSignatureError
    from securesystemslib.exceptions import VerificationError

    if not envelope.signatures:
        findings.tampered(f"{ENVELOPE_NAME}: not signed (no signatures): NOT PROMOTABLE")
        return None
    pae = envelope.pae()
    failed: list[str] = []
    untrusted: list[str] = []
    for keyid, signature in envelope.signatures.items():
        key = trusted_keys.get(keyid)
        if key is None:
            untrusted.append(keyid)
            continue
        try:
            key.verify_signature(signature, pae)
        except (UnverifiedSignatureError, VerificationError):
            failed.append(keyid)
            continue
        return str(keyid)
    for keyid in failed:
        findings.tampered(
            f"{ENVELOPE_NAME}: signature by key {keyid} does not verify "
            "(payload or payloadType changed after signing)"
        )
    for keyid in untrusted:
        findings.tampered(f"{ENVELOPE_NAME}: signed by key {keyid}, which is not trusted")
    return None


def _parse_statement(payload: bytes, findings: _Findings) -> dict[str, Any] | None:
    try:
        statement = strictjson.loads(payload)
    except (UnicodeDecodeError, StrictJSONError):
        findings.broken(f"{ENVELOPE_NAME}: payload is not JSON (not an in-toto Statement)")
        return None
    if not isinstance(statement, dict):
        findings.broken(f"{ENVELOPE_NAME}: payload is not a JSON object (not an in-toto Statement)")
        return None
    for name, expected in (("_type", STATEMENT_TYPE), ("predicateType", PREDICATE_TYPE)):
        if statement.get(name) != expected:
            findings.broken(f"statement: {name} is {statement.get(name)!r}, expected {expected!r}")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        findings.broken("statement: field 'predicate' missing or not an object")
    else:
        for problem in predicate_problems(predicate):
            findings.broken(problem)
    return statement


def _subject_map(subjects: Any, findings: _Findings) -> dict[str, str] | None:
    """Subject name -> sha256, or ``None`` (with the problems recorded) when unusable."""
    if not isinstance(subjects, list):
        findings.broken("statement: field 'subject' missing or not a list")
        return None
    listed: dict[str, str] = {}
    usable = True
    for index, subject in enumerate(subjects):
        name = subject.get("name") if isinstance(subject, dict) else None
        digests = subject.get("digest") if isinstance(subject, dict) else None
        sha256 = digests.get("sha256") if isinstance(digests, dict) else None
        if not isinstance(name, str) or not _is_subject_name(name):
            findings.broken(f"statement: subject[{index}] name {name!r} is not a bundle file path")
            usable = False
        elif not (isinstance(sha256, str) and _SHA256.fullmatch(sha256)):
            findings.broken(f"statement: subject {name!r} has no valid sha256 digest")
            usable = False
        elif name in listed:
            findings.broken(f"statement: subject {name!r} is listed twice")
            usable = False
        else:
            listed[name] = sha256
    return listed if usable else None


def _is_subject_name(name: str) -> bool:
    parts = name.split("/")
    return (
        bool(name)
        and not name.startswith("/")
        and all(part not in ("", ".", "..") for part in parts)
        and name != ENVELOPE_NAME
        and "\x00" not in name
    )


def _check_subjects(bundle: Path, subjects: Any, findings: _Findings) -> None:
    listed = _subject_map(subjects, findings)
    try:
        scan = scan_bundle(bundle)
    except OSError as exc:
        findings.broken(f"{exc.filename or bundle}: cannot be listed ({exc.strerror or exc})")
        return
    refused = {rel for rel, _ in scan.refused}
    for rel, reason in scan.refused:
        findings.tampered(f"{rel}: {reason}")
    if listed is None:
        return
    present = set(scan.files)
    try:
        digests = files_sha256(bundle, (n for n in listed if n in present and n not in refused))
    except OSError as exc:  # the bundle folder itself cannot be opened
        findings.broken(f"{bundle}: cannot be read ({exc.strerror or exc})")
        return
    for name, expected in listed.items():
        if name in refused:
            continue
        if name not in present:
            findings.tampered(f"{name}: listed in the statement but missing")
            continue
        actual = digests[name]
        if isinstance(actual, OSError):
            findings.broken(f"{name}: cannot be read ({actual.strerror or actual})")
            continue
        if actual != expected:
            findings.tampered(f"{name}: sha256 mismatch (bundle was modified after signing)")
    for name in sorted(present - listed.keys()):
        findings.tampered(f"{name}: present but not listed in the statement")


def _check_identity(bundle: Path, predicate: Mapping[str, Any], findings: _Findings) -> None:
    """Bind the envelope to its directory name and to the ``<migration>/<phase>/`` folders it
    sits in, whatever the folder above them is called."""
    claimed = predicate.get("bundle")
    if isinstance(claimed, str) and claimed and claimed != bundle.name:
        findings.tampered(
            f"{ENVELOPE_NAME}: sealed for bundle {claimed!r} but found in directory "
            f"{bundle.name!r} (envelope moved to another bundle, or bundle renamed)"
        )
    if len(bundle.parents) < 2:
        return
    placed = {"migration_id": bundle.parents[1].name, "phase": bundle.parent.name}
    matching = [key for key, folder in placed.items() if predicate.get(key) == folder]
    in_reports_tree = len(bundle.parents) >= 3 and bundle.parents[2].name == REPORTS_DIR
    if not matching and not in_reports_tree:
        findings.note(
            f"not bound to a place: it sits in {placed['migration_id']}/{placed['phase']}/, "
            f"not under {predicate.get('migration_id')}/{predicate.get('phase')}/, so only "
            "its folder name binds it; give --migration and --phase to require them"
        )
        return
    where = f"{placed['migration_id']}/{placed['phase']}/"
    for key, what in (("migration_id", "migration"), ("phase", "phase")):
        sealed_for = predicate.get(key)
        if key not in matching and isinstance(sealed_for, str) and sealed_for:
            findings.tampered(
                f"{ENVELOPE_NAME}: sealed for {what} {sealed_for!r} but the bundle sits under "
                f"{where} (envelope or bundle moved to another {what})"
            )


def _check_expected(
    predicate: Mapping[str, Any],
    key: str,
    expected: str | None,
    option: str,
    findings: _Findings,
) -> None:
    if expected is not None and predicate.get(key) != expected:
        findings.tampered(
            f"predicate: {key} is {predicate.get(key)!r}, expected {expected!r} ({option})"
        )


def _check_signer_binding(
    predicate: Mapping[str, Any], signer_keyid: str | None, findings: _Findings
) -> None:
    signer = predicate.get("signer")
    claimed = signer.get("keyid") if isinstance(signer, dict) else None
    if signer_keyid is not None and claimed != signer_keyid:
        findings.tampered(
            f"predicate: signer.keyid {claimed!r} is not the key that signed the envelope "
            f"({signer_keyid})"
        )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def summarize(result: VerifyResult) -> dict[str, Any]:
    predicate = result.predicate or {}
    gates = [g for g in predicate.get("gates") or [] if isinstance(g, dict)]
    counts: Mapping[str, Any] = (
        Counter(str(g.get("verdict")) for g in gates)
        if gates
        else _mapping(predicate.get("counts"))
    )
    target = _mapping(predicate.get("target"))
    signer = _mapping(predicate.get("signer"))
    return {
        "migration": predicate.get("migration_id"),
        "phase": predicate.get("phase"),
        "verdict": predicate.get("verdict"),
        "scope": predicate.get("scope"),
        "target": target,
        "simulated": target.get("kind") == "simulated",
        "started_at": predicate.get("started_at"),
        "finished_at": predicate.get("finished_at"),
        "signer": {"keyid": result.signer_keyid, "ephemeral": bool(signer.get("ephemeral"))},
        "gate_counts": dict(sorted(counts.items())),
        "blocking": [g for g in gates if str(g.get("verdict")) not in _PROMOTING],
        # a statement that does not say it is promotable is not (older or foreign bundles)
        "promotable": predicate.get("promotable") is True,
        "not_promotable_because": list(predicate.get("not_promotable_because") or []),
        "relies_on": predicate.get("relies_on") or [],
    }


def promotion_problems(result: VerifyResult) -> list[str]:
    """Why the bundle is no sign-off a pipeline may promote on (empty: it is one): it must be
    valid, live, complete, signed by a trusted key that is not ephemeral, and promotable."""
    if not result.ok:
        return [f"the bundle is {result.status.value}"]
    summary = summarize(result)
    problems = []
    if summary["simulated"] or summary["target"].get("kind") != "live":
        problems.append(f"its target is {summary['target'].get('kind') or 'unknown'}, not live")
    if summary["signer"]["ephemeral"]:
        problems.append("it is signed with an ephemeral key")
    if summary["scope"] != "complete":
        problems.append(f"its scope is {summary['scope'] or 'unknown'}, not complete")
    if summary["verdict"] != "pass":
        problems.append(f"its verdict is {summary['verdict'] or 'unknown'}, not pass")
    if not summary["promotable"]:
        reasons = summary["not_promotable_because"] or ["the statement does not say it is"]
        problems.append("not promotable: " + "; ".join(str(r) for r in reasons))
    return problems


def result_to_json(result: VerifyResult, *, require_promotable: bool = False) -> dict[str, Any]:
    """The ``--json`` document; ``summary`` only for a VALID bundle, ``predicate`` as claimed;
    with ``require_promotable``, ``promotion_problems`` too (empty: promotable)."""
    document = {
        "bundle": str(result.bundle),
        "status": result.status.value,
        "exit_code": result.exit_code,
        "problems": list(result.problems),
        "notes": list(result.notes),
        "signer_keyid": result.signer_keyid,
        "summary": summarize(result) if result.ok else None,
        "predicate": result.predicate,
    }
    if require_promotable:
        problems = promotion_problems(result)
        document["promotion_problems"] = problems
        document["exit_code"] = result.exit_code or (EXIT_INVALID if problems else EXIT_VALID)
    return document


def _plain(value: Any) -> str:
    """A value from the bundle as one printable line (its text is the signer's claim)."""
    if value is None or value == "":
        return "-"
    return visible(value if isinstance(value, str) else json.dumps(value, sort_keys=True))


def format_result(result: VerifyResult) -> str:
    """A short human summary of a valid bundle, or the list of problems."""
    lines = [f"{result.status.value}  {visible(str(result.bundle))}"]
    if not result.ok:
        lines += [f"  - {visible(problem)}" for problem in result.problems]
        return "\n".join(lines)
    summary = summarize(result)
    target = summary["target"]
    lines += [f"  note: {visible(note)}" for note in result.notes]
    if summary["simulated"]:
        lines.append(f"  {SIMULATED_WARNING}")
    if summary["signer"]["ephemeral"]:
        lines.append(f"  {EPHEMERAL_WARNING}")
    target_text = _plain(target.get("kind"))
    if target.get("scenario"):
        target_text += f" (scenario {_plain(target['scenario'])})"
    counts = ", ".join(f"{n} {_plain(verdict)}" for verdict, n in summary["gate_counts"].items())
    lines += [
        f"  migration : {_plain(summary['migration'])}",
        f"  phase     : {_plain(summary['phase'])}",
        f"  verdict   : {_plain(summary['verdict'])}",
        f"  scope     : {_plain(summary['scope'])}",
        f"  target    : {target_text}",
        f"  finished  : {_plain(summary['finished_at'])}",
        f"  signer    : {_plain(summary['signer']['keyid'])}",
        f"  gates     : {counts or 'none'}",
    ]
    blocking = summary["blocking"]
    lines.append(f"  blocking  : {len(blocking) or 'none'}")
    lines += [
        f"    - {_plain(g.get('item'))} ({_plain(g.get('gate'))}): {_plain(g.get('verdict'))}"
        for g in blocking
    ]
    if summary["promotable"]:
        lines.append("  promotable: yes (the sign-off the next phase requires)")
    else:
        reasons = summary["not_promotable_because"] or ["the statement does not say it is"]
        lines.append(f"  promotable: NO: {'; '.join(_plain(r) for r in reasons)}")
    return "\n".join(lines)


def load_keys(args: argparse.Namespace, command: str = "verify") -> dict[str, Key] | int:
    """The trusted keys of ``--trusted-keys`` or ``--key``, or the exit code of a bad one
    (its reason printed as ``canarygate COMMAND: error: ...``)."""
    try:
        if args.trusted_keys:
            trusted: dict[str, Key] = dict(load_trusted_keys(Path(args.trusted_keys)))
        else:
            trusted = {}
            for key_path in args.key:
                key = load_public_key(Path(key_path))
                trusted[key.keyid] = key
    except MalformedKeyError as exc:
        print(f"canarygate {command}: error: {visible(str(exc))}", file=sys.stderr)
        return EXIT_MALFORMED
    except ConfigError as exc:
        print(f"canarygate {command}: error: {visible(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    return trusted


def _usage(message: str) -> int:
    print(f"canarygate verify: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _run_verify(args: argparse.Namespace) -> int:
    if args.chain is not None:
        return _run_verify_chain(args)
    for option in ("reports", "requires"):
        if getattr(args, option) is not None:
            return _usage(f"--{option} goes with --chain MIGRATION")
    if args.bundle is None:
        return _usage("give a BUNDLE directory, or --chain MIGRATION")
    if not os.path.lexists(args.bundle):
        return _usage(f"bundle {visible(args.bundle)}: no such directory")
    trusted = load_keys(args)
    if isinstance(trusted, int):
        return trusted
    stage = cli.progress_stage("verified")
    result = verify_bundle(
        Path(args.bundle),
        trusted,
        expected_phase=args.phase,
        expected_migration=args.migration,
    )
    subjects = (result.statement or {}).get("subject")
    stage.label = "verified" if result.ok else "checked"
    stage.done(count=len(subjects) if isinstance(subjects, list) else None, what="files")
    refused = promotion_problems(result) if args.require_promotable and result.ok else []
    if args.json:
        document = result_to_json(result, require_promotable=args.require_promotable)
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print(format_result(result))
        if refused:
            print("NOT PROMOTABLE (--require-promotable):")
            print("\n".join(f"  - {visible(problem)}" for problem in refused))
    return EXIT_INVALID if refused else result.exit_code


def _run_verify_chain(args: argparse.Namespace) -> int:
    """``canarygate verify --chain MIGRATION``: check every recorded link (see
    :func:`pytest_canarygate.chain.check_links`)."""
    from pytest_canarygate import chain

    if args.bundle is not None:
        return _usage("give either a BUNDLE or --chain MIGRATION, not both")
    if args.require_promotable:
        return _usage("--require-promotable checks one BUNDLE; not with --chain")
    if args.phase is not None or args.migration is not None:
        return _usage("--phase and --migration check one BUNDLE; not with --chain")
    requires_given = args.requires or chain.catalog_requires(Path.cwd())
    if not requires_given:
        return _usage(
            "--chain needs --requires PHASE=PREDECESSOR,... (which phase relies on which), or "
            "a gates/catalog.toml with [runbook] requires here or above"
        )
    reports = Path(args.reports or REPORTS_DIR)
    try:
        requires = chain.parse_requires(requires_given)
        chain.parse_phases(args.chain)  # a plain name
        if not (reports / args.chain).is_dir():
            raise ConfigError(f"reports folder {reports}: no migration {args.chain!r} in it")
    except ConfigError as exc:
        return _usage(str(exc))
    trusted = load_keys(args)
    if isinstance(trusted, int):
        return trusted
    try:
        checks = chain.check_links(reports, args.chain, requires, trusted)
    except chain.ChainError as exc:
        print(f"canarygate verify: error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        document = {
            "migration": args.chain,
            "ok": not any(check.broken for check in checks),
            "links": [check.as_json() for check in checks],
        }
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print(chain.format_link_checks(args.chain, checks))
    return EXIT_INVALID if any(check.broken for check in checks) else EXIT_VALID


_EPILOG = f"""\
exit codes:
  {EXIT_VALID}  valid: signed by a trusted key, every file intact
  {EXIT_INVALID}  invalid: tampered (changed, extra or missing file, moved envelope), not signed,
     bad or untrusted signature, or not the expected phase/migration; with
     --require-promotable also a valid bundle that is not a live, complete, promotable
     sign-off signed by a trusted key that is not ephemeral
  {EXIT_USAGE}  usage error: bad arguments, or a bundle, key file or key directory that does
     not exist or cannot be read
  {EXIT_MALFORMED}  malformed: not a bundle, an unreadable envelope or statement, or a key file
     that is not an Ed25519 public key

These are the codes of the table every canarygate subcommand follows (canarygate --help),
which adds {cli.EXIT_INTERRUPTED} (interrupted) and {cli.EXIT_BROKEN_PIPE} (stdout closed early,
e.g. piped into head).

With --chain MIGRATION (instead of BUNDLE), every phase folder of the migration that has a
predecessor in --requires is checked: its newest promotable bundle must list in relies_on a
predecessor bundle that counts as a link (see docs/chain-of-custody.md), with the recorded
sha256, finished before the phase started. Exit 0 when every link is OK, 1 when one is broken.

A bundle holds its signed files and its envelope only; its HTML rendering (canarygate html)
lives beside it.
A bundle whose target is simulated verifies, but is never a sign-off for a real migration.
"""


def add_subcommand(subparsers: Any) -> None:
    """Add ``canarygate verify``."""
    parser = subparsers.add_parser(
        "verify",
        help="Verify a signed evidence bundle offline",
        description="Check a bundle's DSSE signature against trusted public keys, its in-toto\n"
        "statement, every file digest, and that the envelope belongs to this bundle.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "bundle", metavar="BUNDLE", nargs="?", help="Bundle directory (not with --chain)"
    )
    keys = parser.add_mutually_exclusive_group(required=True)
    keys.add_argument(
        "--key",
        metavar="PUB",
        action="append",
        help="Trusted public key file (JSON from `canarygate keygen`, or PEM); repeatable",
    )
    keys.add_argument(
        "--trusted-keys", metavar="DIR", help="Directory of trusted public keys (*.json, *.pem)"
    )
    parser.add_argument("--phase", metavar="P", help="Require the bundle to be of this phase")
    parser.add_argument("--migration", metavar="M", help="Require this migration id")
    parser.add_argument("--json", action="store_true", help="Machine-readable output")
    parser.add_argument(
        "--require-promotable",
        action="store_true",
        help=f"Exit {EXIT_INVALID} unless the bundle is also live, complete, signed by a trusted "
        "key that is not ephemeral, and promotable: the check a pipeline promotes on",
    )
    parser.add_argument(
        "--chain",
        metavar="MIGRATION",
        help="Check every link between the phase bundles of MIGRATION instead of one BUNDLE",
    )
    parser.add_argument(
        "--reports", metavar="DIR", help=f"With --chain: reports folder (default: {REPORTS_DIR})"
    )
    parser.add_argument(
        "--requires",
        metavar="PHASE=PRED,...",
        help="With --chain: which phase relies on which, e.g. canary=alpha,gradual=canary",
    )
    parser.set_defaults(func=_run_verify)
