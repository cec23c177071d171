"""Signed human attestations: sign-offs, waivers, user reports and their resolutions.

Each attestation is one file, a DSSE envelope (payload type ``application/vnd.in-toto+json``)
over an in-toto Statement v1 with predicate type :data:`ATTESTATION_PREDICATE_TYPE`::

    reports/<migration>/signoffs/<stamp>-signoff-<item>-<by>.dsse.json
    reports/<migration>/waivers/<stamp>-waiver-<gate>-<by>.dsse.json
    reports/<migration>/user-reports/<stamp>-report-<session>-<by>.dsse.json
    reports/<migration>/user-reports/<stamp>-resolution-<digest[:12]>-<by>.dsse.json

The statement has one subject, ``<migration>/<kind>/<subject>``, whose sha256 is that of the
canonical JSON of the predicate (:func:`predicate_digest`). The predicate holds exactly the
fields of :data:`PREDICATE_FIELDS`. An attestation counts only when it is signed by the key the
``[[signers]]`` allow-list gives the signer it names, that signer may sign the item or waive
the gate, it is for the migration asked about and not dated after the caller's clock; anything
else is :class:`Refused` with its reason. Nothing read is ever executed, and every file is
trust-checked (:mod:`pytest_canarygate.trust`) and read within a size bound.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from pytest_canarygate import strictjson
from pytest_canarygate._requires import require
from pytest_canarygate.config import MIGRATION_ID_RE
from pytest_canarygate.config import TableReader
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.errors import EndpointError
from pytest_canarygate.errors import StrictJSONError
from pytest_canarygate.keys import load_public_key
from pytest_canarygate.signing import PAYLOAD_TYPE
from pytest_canarygate.signing import STATEMENT_TYPE
from pytest_canarygate.signing import fsync_directory
from pytest_canarygate.signing import write_temp_beside
from pytest_canarygate.trust import open_trusted
from pytest_canarygate.verify import envelope_shape_problem

# securesystemslib (and cryptography under it) is imported where something is signed or verified,
# not with the plugin: an xdist worker of a phase run never needs it.
require("securesystemslib")

if TYPE_CHECKING:
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import Signer
    from securesystemslib.signer import SSlibKey

__all__ = [
    "ATTESTATION_PREDICATE_TYPE",
    "FOLDERS",
    "KINDS",
    "MAX_ATTESTATION_BYTES",
    "PREDICATE_FIELDS",
    "Attestation",
    "Attestations",
    "Refused",
    "SignerEntry",
    "build_predicate",
    "format_time",
    "load_attestations",
    "parse_signers",
    "parse_time",
    "predicate_digest",
    "write_attestation",
]

ATTESTATION_PREDICATE_TYPE = "https://pytest-canarygate.dev/attestation/v1"
KINDS = ("signoff", "waiver", "report", "resolution")
#: The pseudo-item a signer's ``items`` must list to resolve user reports.
RESOLVE_ITEM = "resolve-reports"
#: The folder under ``reports/<migration>/`` that holds each kind.
FOLDERS: Mapping[str, str] = {
    "signoff": "signoffs",
    "waiver": "waivers",
    "report": "user-reports",
    "resolution": "user-reports",
}
PREDICATE_FIELDS = (
    "kind",
    "migration_id",
    "subject",
    "by",
    "signed_at",
    "session",
    "text",
    "until",
    "phase",
    "refers",
    "keyid",
)
MAX_ATTESTATION_BYTES = 1024 * 1024
SUFFIX = ".dsse.json"
_MAX_NAME = 200
_MAX_TEXT = 64 * 1024
_MAX_REFERS = 100
_MAX_FILE_PART = 64
_READ_SECONDS = 5.0
_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
_TIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?Z$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TEXT_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")
_FOLDER_KINDS: Mapping[str, str] = {"signoffs": "signoff", "waivers": "waiver"}


# --- time and digests ----------------------------------------------------------------------


def format_time(when: datetime) -> str:
    """UTC ISO 8601 with millisecond precision and ``Z``: ``2026-12-04T20:39:06.161Z``."""
    utc = _aware(when, "time").astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """Parse the UTC form :func:`format_time` writes (1-6 fraction digits); ValueError if not."""
    match = _TIME_RE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a UTC time like 2026-12-04T20:39:06.161Z")
    base = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")
    micros = int((match.group(2) or "0").ljust(6, "0"))
    return base.replace(microsecond=micros, tzinfo=timezone.utc)


def predicate_digest(predicate: Mapping[str, Any]) -> str:
    """The sha256 (hex) of the canonical JSON of ``predicate`` (sorted keys, no spaces)."""
    return hashlib.sha256(_canonical(predicate)).hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _aware(when: datetime, what: str) -> datetime:
    if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise ConfigError(f"{what} must be a timezone-aware datetime, got {when!r}")
    return when


def _stamp(when: datetime) -> str:
    """The file-name stamp of ``when``: ``20261204T203906.161Z``."""
    return format_time(when).replace("-", "").replace(":", "")


# --- the allow-list ------------------------------------------------------------------------


@dataclass(frozen=True)
class SignerEntry:
    """One ``[[signers]]`` entry: who, with which public key, may sign off and waive what."""

    name: str
    keyid: str
    key: SSlibKey
    items: tuple[str, ...] = ()
    waive: tuple[str, ...] = ()

    def may_sign(self, item: str) -> bool:
        """True when ``item`` is listed exactly, or ``"*"`` is."""
        return "*" in self.items or item in self.items

    def may_waive(self, gate_id: str) -> bool:
        """True when a ``waive`` glob (fnmatch, case-sensitive) matches ``gate_id``."""
        return any(fnmatch.fnmatchcase(gate_id, pattern) for pattern in self.waive)


_SIGNER_KEYS = ("name", "key", "items", "waive")


def parse_signers(entries: object, base_dir: Path, source: str) -> tuple[SignerEntry, ...]:
    """Parse the config's ``[[signers]]`` array (``None`` means none); key paths are relative
    to ``base_dir``. Mistakes raise :class:`ConfigError` naming ``<source>: signers[<n>].<key>``
    (``n`` counts from 0)."""
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise ConfigError(
            f"{source}: signers = {entries!r}: expected an array of tables ([[signers]])"
        )
    parsed: list[SignerEntry] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{source}: signers[{index}] = {entry!r}: expected a table")
        parsed.append(_parse_signer(TableReader(source, entry, f"signers[{index}]"), base_dir))
    _refuse_duplicates(parsed, source)
    return tuple(parsed)


def _parse_signer(reader: TableReader, base_dir: Path) -> SignerEntry:
    reader.reject_unknown(_SIGNER_KEYS)
    name = reader.string("name")
    if name != name.strip() or _CONTROL_RE.search(name) or len(name) > _MAX_NAME:
        raise reader.error(
            "name",
            name,
            f"a name without control characters or surrounding spaces, "
            f"at most {_MAX_NAME} characters",
        )
    raw_key = reader.string("key")
    if "\x00" in raw_key:
        raise reader.error("key", raw_key, "a path without NUL bytes")
    try:
        key = load_public_key(base_dir / raw_key)
    except ConfigError as exc:
        raise ConfigError(f"{reader.source}: {reader.key('key')}: {exc}") from None
    return SignerEntry(
        name=name,
        keyid=str(key.keyid),
        key=key,
        items=_patterns(reader, "items", "any item"),
        waive=_patterns(reader, "waive", "any gate"),
    )


def _patterns(reader: TableReader, name: str, star: str) -> tuple[str, ...]:
    values = reader.strings(name, (), star=star)
    return ("*",) if values is None else values


def _refuse_duplicates(entries: Sequence[SignerEntry], source: str) -> None:
    names: dict[str, int] = {}
    keyids: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if entry.name in names:
            raise ConfigError(
                f"{source}: signers[{index}].name = {entry.name!r}: already the name of "
                f"signers[{names[entry.name]}]; each signer is listed once"
            )
        if entry.keyid in keyids:
            first = keyids[entry.keyid]
            raise ConfigError(
                f"{source}: signers[{index}].key: key id {entry.keyid} is already the key of "
                f"signer {entries[first].name!r} (signers[{first}]); a key belongs to one signer"
            )
        names[entry.name] = index
        keyids[entry.keyid] = index


# --- writing -------------------------------------------------------------------------------


def write_attestation(
    reports_dir: Path,
    migration: str,
    *,
    kind: str,
    subject: str,
    by: str,
    signer: Signer,
    now: datetime,
    session: str | None = None,
    text: str = "",
    until: datetime | None = None,
    phase: str | None = None,
    refers: Sequence[str] = (),
) -> Path:
    """Sign an attestation and write it under ``reports_dir/<migration>/<folder>/``.

    The file is created atomically with mode 0644 and never overwrites anything (a clash is a
    :class:`ConfigError` naming the path); missing folders are created 0755. Bad input raises
    :class:`ConfigError` with a one-line message. Returns the path written.
    """
    predicate = build_predicate(
        migration,
        kind=kind,
        subject=subject,
        by=by,
        keyid=str(signer.public_key.keyid),
        now=now,
        session=session,
        text=text,
        until=until,
        phase=phase,
        refers=refers,
    )
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": f"{migration}/{kind}/{predicate['subject']}",
                "digest": {"sha256": predicate_digest(predicate)},
            }
        ],
        "predicateType": ATTESTATION_PREDICATE_TYPE,
        "predicate": predicate,
    }
    from securesystemslib.dsse import Envelope

    envelope = Envelope(payload=_canonical(statement), payload_type=PAYLOAD_TYPE, signatures={})
    envelope.sign(signer)
    document = json.dumps(envelope.to_dict(), indent=2, sort_keys=True) + "\n"
    folder = _make_folders(Path(reports_dir), migration, FOLDERS[kind])
    path = folder / _file_name(predicate, now)
    _create_exclusively(path, document.encode("utf-8"))
    return path


def build_predicate(
    migration: str,
    *,
    kind: str,
    subject: str,
    by: str,
    keyid: str,
    now: datetime,
    session: str | None = None,
    text: str = "",
    until: datetime | None = None,
    phase: str | None = None,
    refers: Sequence[str] = (),
) -> dict[str, Any]:
    """The validated predicate of an attestation (see :data:`PREDICATE_FIELDS`)."""
    if kind not in KINDS:
        raise ConfigError(f"attestation kind {kind!r}: expected one of {', '.join(KINDS)}")
    _check_migration(migration)
    _check_name("subject", subject)
    _check_name("by", by)
    now = _aware(now, "now")
    if session is not None:
        _check_name("session", session)
    if phase is not None:
        _check_name("phase", phase)
    refs = _check_refers(refers)
    if kind == "report":
        if session not in (None, subject):
            raise ConfigError(f"a report names its session as subject; got session {session!r}")
        session = subject
    if kind == "resolution":
        if not _DIGEST_RE.match(subject):
            raise ConfigError(
                f"a resolution's subject is the sha256 of the report it resolves, got {subject!r}"
            )
        refs = refs if subject in refs else (subject, *refs)
    _check_text(kind, text)
    until_text = _check_until(kind, until, now)
    if phase is not None and kind != "waiver":
        raise ConfigError(f"phase {phase!r}: only a waiver is scoped to a phase")
    return {
        "kind": kind,
        "migration_id": migration,
        "subject": subject,
        "by": by,
        "signed_at": format_time(now),
        "session": session,
        "text": text,
        "until": until_text,
        "phase": phase,
        "refers": list(refs),
        "keyid": keyid,
    }


def _check_migration(migration: str) -> None:
    if not isinstance(migration, str) or not MIGRATION_ID_RE.match(migration):
        raise ConfigError(
            f"migration {migration!r}: expected letters, digits, '.', '_' or '-' "
            "(it names a folder under reports/)"
        )


def _check_name(what: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{what} {value!r}: expected a non-empty string")
    if _CONTROL_RE.search(value):
        raise ConfigError(f"{what} {value!r}: control characters are not allowed")
    if len(value) > _MAX_NAME:
        raise ConfigError(f"{what}: longer than {_MAX_NAME} characters ({len(value)})")


def _check_text(kind: str, text: object) -> None:
    if not isinstance(text, str):
        raise ConfigError(f"text {text!r}: expected a string")
    if kind in ("waiver", "report", "resolution") and not text.strip():
        what = "a waiver needs a justification" if kind == "waiver" else f"a {kind} needs a text"
        raise ConfigError(f"{what} (empty text)")
    if _TEXT_CONTROL_RE.search(text):
        raise ConfigError("text: control characters other than newline and tab are not allowed")
    if len(text) > _MAX_TEXT:
        raise ConfigError(f"text: longer than {_MAX_TEXT} characters ({len(text)})")


def _check_until(kind: str, until: datetime | None, now: datetime) -> str | None:
    if kind != "waiver":
        if until is not None:
            raise ConfigError(f"until: only a waiver expires, not a {kind}")
        return None
    if until is None:
        raise ConfigError("a waiver needs an expiry (until)")
    until = _aware(until, "until")
    if until <= now:
        raise ConfigError(
            f"until {format_time(until)} is not after now ({format_time(now)}); "
            "a waiver must expire in the future"
        )
    return format_time(until)


def _check_refers(refers: Sequence[str]) -> tuple[str, ...]:
    if isinstance(refers, str):
        raise ConfigError("refers: expected a list of sha256 digests, not a string")
    refs: list[str] = []
    for ref in refers:
        if not isinstance(ref, str) or not _DIGEST_RE.match(ref):
            raise ConfigError(f"refers: {ref!r} is not a sha256 digest (64 lowercase hex digits)")
        if ref not in refs:
            refs.append(ref)
    if len(refs) > _MAX_REFERS:
        raise ConfigError(f"refers: more than {_MAX_REFERS} digests")
    return tuple(refs)


def _file_name(predicate: Mapping[str, Any], now: datetime) -> str:
    subject = str(predicate["subject"])
    if predicate["kind"] == "resolution":
        subject = subject[:12]
    parts = (_stamp(now), predicate["kind"], _sanitize(subject), _sanitize(predicate["by"]))
    return "-".join(parts) + SUFFIX


def _sanitize(value: str) -> str:
    cleaned = _UNSAFE_RE.sub("_", value).strip(".")
    return (cleaned or "_")[:_MAX_FILE_PART]


def _make_folders(reports_dir: Path, migration: str, folder: str) -> Path:
    """Create the missing folders down to ``reports_dir/migration/folder``, each 0755."""
    target = reports_dir / migration / folder
    missing = []
    probe = target
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o755)
        except FileExistsError:
            continue
        os.chmod(path, 0o755)  # the umask may have removed bits
    if not target.is_dir() or target.is_symlink():
        raise ConfigError(f"{target}: not a folder; cannot file an attestation there")
    return target


def _create_exclusively(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file, then link it to ``path`` (never replacing it)."""
    tmp_name = write_temp_beside(path, data)
    try:
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            raise ConfigError(
                f"{path}: already exists; an attestation is never overwritten"
            ) from None
    finally:
        os.unlink(tmp_name)
    fsync_directory(path.parent)


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attestation:
    """An attestation that counts: signed by its allowed signer, for this migration."""

    path: Path
    kind: str
    migration_id: str
    subject: str
    by: str
    signed_at: datetime
    session: str | None
    text: str
    until: datetime | None
    phase: str | None
    refers: tuple[str, ...]
    keyid: str
    digest: str

    def active(self, now: datetime) -> bool:
        """For a waiver: not expired at ``now`` (``now < until``); True for other kinds."""
        return self.until is None or now < self.until


@dataclass(frozen=True)
class Refused:
    """A file that does not count, and why. ``malformed`` is True when it is not a well-formed
    signed attestation at all (unreadable, untrusted, not JSON, bad shape, unsigned, or no
    signature that verifies); False when it is one but does not count here. ``kind`` is the
    claimed kind when the statement parsed, else the folder's (``report`` for user-reports)."""

    path: Path
    reason: str
    malformed: bool
    kind: str | None = None


@dataclass(frozen=True)
class Attestations:
    """Everything found for one migration: what counts, and what was refused."""

    valid: tuple[Attestation, ...] = ()
    refused: tuple[Refused, ...] = ()

    def of_kind(self, kind: str) -> list[Attestation]:
        """The valid attestations of ``kind``, oldest first."""
        return [a for a in self.valid if a.kind == kind]

    def signoffs(self, item: str, session: str | None = None) -> list[Attestation]:
        """Valid sign-offs of runbook ``item`` (of ``session`` when given), oldest first."""
        return [
            a
            for a in self.of_kind("signoff")
            if a.subject == item and (session is None or a.session == session)
        ]

    def waivers(self, gate_id: str, phase: str | None, now: datetime) -> list[Attestation]:
        """Valid waivers of ``gate_id`` unexpired at ``now``, scoped to ``phase`` or to any."""
        return [a for a in self._waivers_of(gate_id, phase) if a.active(now)]

    def expired_waivers(self, gate_id: str, phase: str | None, now: datetime) -> list[Attestation]:
        """Valid waivers of ``gate_id`` in scope for ``phase`` that expired at or before ``now``."""
        return [a for a in self._waivers_of(gate_id, phase) if not a.active(now)]

    def _waivers_of(self, gate_id: str, phase: str | None) -> list[Attestation]:
        return [
            a
            for a in self.of_kind("waiver")
            if a.subject == gate_id and (a.phase is None or a.phase == phase)
        ]

    def open_reports(self, session: str | None = None) -> list[Attestation]:
        """Valid user reports (of ``session`` when given) that no valid resolution resolves."""
        resolved = {digest for a in self.of_kind("resolution") for digest in (a.subject, *a.refers)}
        return [
            a
            for a in self.of_kind("report")
            if a.digest not in resolved and (session is None or a.session == session)
        ]

    def malformed(self, kind: str | None = None) -> list[Refused]:
        """Refused files that are not well-formed signed attestations (of ``kind`` if given)."""
        return [r for r in self.refused if r.malformed and (kind is None or r.kind == kind)]


class _Refusal(Exception):
    def __init__(self, reason: str, *, malformed: bool, kind: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.malformed = malformed
        self.kind = kind


def load_attestations(
    reports_dir: Path,
    migration: str,
    signers: Sequence[SignerEntry],
    *,
    latest_allowed: datetime,
) -> Attestations:
    """Read every attestation of ``migration`` under ``reports_dir``; a missing folder holds
    none. Expiry is not decided here: compare ``until`` with the caller's clock
    (:meth:`Attestations.waivers`)."""
    latest_allowed = _aware(latest_allowed, "latest_allowed")
    by_name = {entry.name: entry for entry in signers}
    valid: list[Attestation] = []
    refused: list[Refused] = []
    for folder_name in dict.fromkeys(FOLDERS.values()):
        folder = Path(reports_dir) / migration / folder_name
        for path, problem in _folder_entries(folder):
            default_kind = _FOLDER_KINDS.get(folder_name, "report")
            if problem:
                refused.append(Refused(path, problem, True, default_kind))
                continue
            try:
                valid.append(_load_one(path, folder_name, migration, by_name, latest_allowed))
            except _Refusal as exc:
                refused.append(Refused(path, exc.reason, exc.malformed, exc.kind or default_kind))
    valid.sort(key=lambda a: (a.signed_at, str(a.path)))
    refused.sort(key=lambda r: str(r.path))
    return Attestations(valid=tuple(valid), refused=tuple(refused))


def _folder_entries(folder: Path) -> list[tuple[Path, str | None]]:
    """The candidate files of ``folder`` (dotfiles skipped), each with a refusal or None."""
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return []
    except OSError as exc:
        return [(folder, f"{folder}: cannot inspect ({exc.strerror or exc})")]
    if not stat.S_ISDIR(st.st_mode):
        return [(folder, f"{folder}: not a folder (a symbolic link or a file); make it a folder")]
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        return [(folder, f"{folder}: cannot be listed ({exc.strerror or exc})")]
    found: list[tuple[Path, str | None]] = []
    for name in names:
        if name.startswith("."):
            continue  # a writer's temporary file, or nothing of ours
        path = folder / name
        found.append((path, None if name.endswith(SUFFIX) else _misnamed(path)))
    return found


def _misnamed(path: Path) -> str:
    return f"{path}: not an attestation (the name does not end in {SUFFIX}); remove it"


def _load_one(
    path: Path,
    folder_name: str,
    migration: str,
    signers: Mapping[str, SignerEntry],
    latest_allowed: datetime,
) -> Attestation:
    raw = _read(path)
    envelope = _envelope(path, raw)
    predicate = _statement_predicate(path, envelope)
    kind = predicate["kind"]
    entry = signers.get(predicate["by"])
    if entry is None:
        raise _Refusal(
            f"{path}: signed as {predicate['by']!r}, who is not in [[signers]]",
            malformed=False,
            kind=kind,
        )
    _verify_signature(path, envelope, entry, predicate, kind)
    _check_counts(path, folder_name, migration, entry, predicate, latest_allowed)
    return _attestation(path, predicate, hashlib.sha256(raw).hexdigest())


def _read(path: Path) -> bytes:
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            raise _Refusal(
                f"{path}: is a symbolic link (to {_readlink(path)}); an attestation must be a "
                "regular file in its folder: replace the link with the file",
                malformed=True,
            )
        with open_trusted(
            path,
            endpoint="attestation",
            max_bytes=MAX_ATTESTATION_BYTES,
            seconds=_READ_SECONDS,
            expected="an attestation file",
            hint="an attestation is a small signed JSON file; remove this one",
        ) as opened:
            now = os.fstat(opened.handle.fileno())
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                raise _Refusal(f"{path}: replaced while it was read; read again", malformed=True)
            return opened.read()
    except EndpointError as exc:
        raise _Refusal(exc.reason, malformed=True) from None
    except OSError as exc:
        raise _Refusal(f"{path}: cannot be read ({exc.strerror or exc})", malformed=True) from None


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _envelope(path: Path, raw: bytes) -> Envelope:
    from securesystemslib.dsse import Envelope

    try:
        document = strictjson.loads(raw)
    except StrictJSONError as exc:
        raise _Refusal(f"{path}: not strict JSON ({exc.reason})", malformed=True) from None
    problem = envelope_shape_problem(document)
    if problem:
        raise _Refusal(f"{path}: {problem} (not a DSSE envelope)", malformed=True)
    try:
        envelope = Envelope.from_dict(copy.deepcopy(document))
    except (ValueError, KeyError, TypeError) as exc:
        raise _Refusal(f"{path}: not a decodable DSSE envelope ({exc})", malformed=True) from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise _Refusal(
            f"{path}: payloadType is {envelope.payload_type!r}, expected {PAYLOAD_TYPE!r}",
            malformed=True,
        )
    return envelope


def _statement_predicate(path: Path, envelope: Envelope) -> dict[str, Any]:
    """The checked predicate of the envelope's statement (its shape, not its signature)."""
    try:
        statement = strictjson.loads(envelope.payload)
    except StrictJSONError as exc:
        raise _Refusal(
            f"{path}: payload is not strict JSON ({exc.reason})", malformed=True
        ) from None
    if not isinstance(statement, dict):
        raise _Refusal(f"{path}: payload is not a JSON object", malformed=True)
    for name, expected in (
        ("_type", STATEMENT_TYPE),
        ("predicateType", ATTESTATION_PREDICATE_TYPE),
    ):
        if statement.get(name) != expected:
            raise _Refusal(
                f"{path}: statement {name} is {statement.get(name)!r}, expected {expected!r}",
                malformed=True,
            )
    predicate = statement.get("predicate")
    problem = _predicate_problem(predicate)
    if problem:
        raise _Refusal(f"{path}: predicate: {problem}", malformed=True)
    assert isinstance(predicate, dict)
    problem = _subject_problem(statement.get("subject"), predicate)
    if problem:
        raise _Refusal(f"{path}: statement: {problem}", malformed=True, kind=predicate["kind"])
    if not envelope.signatures:
        raise _Refusal(
            f"{path}: not signed (no signatures); it does not count",
            malformed=True,
            kind=predicate["kind"],
        )
    return predicate


def _predicate_problem(predicate: Any) -> str | None:
    if not isinstance(predicate, dict):
        return "missing or not an object"
    unknown = sorted(set(predicate) - set(PREDICATE_FIELDS))
    missing = [name for name in PREDICATE_FIELDS if name not in predicate]
    if unknown or missing:
        return f"unknown fields {unknown}" if unknown else f"missing fields {missing}"
    if predicate["kind"] not in KINDS:
        return f"kind {predicate['kind']!r} is not one of {', '.join(KINDS)}"
    problem = _type_problem(predicate)
    if problem:
        return problem
    try:
        rebuilt = build_predicate(
            predicate["migration_id"],
            kind=predicate["kind"],
            subject=predicate["subject"],
            by=predicate["by"],
            keyid=predicate["keyid"],
            now=parse_time(predicate["signed_at"]),
            session=predicate["session"],
            text=predicate["text"],
            until=None if predicate["until"] is None else parse_time(predicate["until"]),
            phase=predicate["phase"],
            refers=predicate["refers"],
        )
    except (ConfigError, ValueError) as exc:
        return str(exc)
    differing = [name for name in PREDICATE_FIELDS if rebuilt[name] != predicate[name]]
    if differing:
        return f"not in the form canarygate writes (fields {', '.join(differing)})"
    return None


def _type_problem(predicate: Mapping[str, Any]) -> str | None:
    for name in ("migration_id", "subject", "by", "signed_at", "text", "keyid"):
        if not isinstance(predicate[name], str):
            return f"field {name!r} is not a string"
    for name in ("session", "until", "phase"):
        if predicate[name] is not None and not isinstance(predicate[name], str):
            return f"field {name!r} is neither a string nor null"
    if not isinstance(predicate["refers"], list):
        return "field 'refers' is not a list"
    return None


def _subject_problem(subjects: Any, predicate: Mapping[str, Any]) -> str | None:
    expected = f"{predicate['migration_id']}/{predicate['kind']}/{predicate['subject']}"
    if not (isinstance(subjects, list) and len(subjects) == 1 and isinstance(subjects[0], dict)):
        return "expected exactly one subject"
    subject = subjects[0]
    if subject.get("name") != expected:
        return f"subject name {subject.get('name')!r} is not {expected!r}"
    digest = subject.get("digest")
    if not isinstance(digest, dict) or digest.get("sha256") != predicate_digest(predicate):
        return "subject digest does not match the predicate"
    return None


def _verify_signature(
    path: Path, envelope: Envelope, entry: SignerEntry, predicate: Mapping[str, Any], kind: str
) -> None:
    from securesystemslib.exceptions import UnverifiedSignatureError
    from securesystemslib.exceptions import VerificationError

    signature = envelope.signatures.get(entry.keyid)
    refusal = None
    if signature is None:
        refusal = f"not signed with the key of {entry.name!r} ({entry.keyid})"
    else:
        try:
            entry.key.verify_signature(signature, envelope.pae())
        except (UnverifiedSignatureError, VerificationError):
            refusal = (
                f"the signature by the key of {entry.name!r} does not verify "
                "(changed after signing)"
            )
    if refusal is None and predicate["keyid"] != entry.keyid:
        refusal = f"predicate keyid {predicate['keyid']!r} is not the key that signed it"
    if refusal:
        raise _Refusal(f"{path}: {refusal}; it does not count", malformed=True, kind=kind)


def _check_counts(
    path: Path,
    folder_name: str,
    migration: str,
    entry: SignerEntry,
    predicate: Mapping[str, Any],
    latest_allowed: datetime,
) -> None:
    kind, subject = predicate["kind"], predicate["subject"]
    reason = None
    if FOLDERS[kind] != folder_name:
        reason = f"a {kind} filed under {folder_name}/ (it belongs in {FOLDERS[kind]}/)"
    elif predicate["migration_id"] != migration:
        reason = f"for migration {predicate['migration_id']!r}, not {migration!r}"
    elif kind == "signoff" and not entry.may_sign(subject):
        reason = f"signer {entry.name!r} may not sign off {subject!r} ([[signers]] items)"
    elif kind == "waiver" and not entry.may_waive(subject):
        reason = f"signer {entry.name!r} may not waive {subject!r} ([[signers]] waive)"
    elif kind == "resolution" and not entry.may_sign(RESOLVE_ITEM):
        reason = (
            f"signer {entry.name!r} may not resolve user reports ([[signers]] items needs "
            f"{RESOLVE_ITEM!r})"
        )
    elif parse_time(predicate["signed_at"]) > latest_allowed:
        reason = (
            f"dated {predicate['signed_at']}, after the latest time allowed "
            f"({format_time(latest_allowed)}): check the clocks"
        )
    if reason:
        raise _Refusal(f"{path}: {reason}; it does not count", malformed=False, kind=kind)


def _attestation(path: Path, predicate: Mapping[str, Any], digest: str) -> Attestation:
    until = predicate["until"]
    return Attestation(
        path=path,
        kind=predicate["kind"],
        migration_id=predicate["migration_id"],
        subject=predicate["subject"],
        by=predicate["by"],
        signed_at=parse_time(predicate["signed_at"]),
        session=predicate["session"],
        text=predicate["text"],
        until=None if until is None else parse_time(until),
        phase=predicate["phase"],
        refers=tuple(predicate["refers"]),
        keyid=predicate["keyid"],
        digest=digest,
    )
