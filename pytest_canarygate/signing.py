"""Seal an evidence bundle: an in-toto Statement v1 over every file, in a signed DSSE envelope.

A bundle is a directory ``reports/<migration-id>/<phase>/<UTC time>-<verdict>/``. Its subjects
are every regular file in it (POSIX relative paths, sorted) except the envelope itself
(``statement.dsse.json``) and anything under ``html/`` (the rendered report is derived, not
evidence). Symlinks and other non-regular files are refused. Signing uses securesystemslib's
DSSE :class:`~securesystemslib.dsse.Envelope` and a securesystemslib ``Signer``; nothing here
touches private key material beyond handing the signer the DSSE pre-authentication encoding.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from pytest_canarygate._requires import require
from pytest_canarygate.errors import CanarygateError

require("securesystemslib")

if TYPE_CHECKING:
    from securesystemslib.signer import Signer

__all__ = [
    "ENVELOPE_NAME",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "REQUIRED_PREDICATE_KEYS",
    "STATEMENT_TYPE",
    "TARGET_KINDS",
    "BundleError",
    "BundleScan",
    "bundle_name",
    "bundle_subjects",
    "file_sha256",
    "files_sha256",
    "predicate_problems",
    "read_regular_file",
    "scan_bundle",
    "seal_bundle",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE = "https://pytest-canarygate.dev/evidence-bundle/v1"
ENVELOPE_NAME = "statement.dsse.json"
_REQUIRED_STRINGS = ("bundle", "migration_id", "phase", "verdict")
REQUIRED_PREDICATE_KEYS = (*_REQUIRED_STRINGS, "target")
TARGET_KINDS = ("live", "simulated")
_CHUNK = 1024 * 1024


class BundleError(CanarygateError):
    """A bundle cannot be sealed: it holds a symlink, is already sealed, or the predicate is bad."""


@dataclass(frozen=True)
class BundleScan:
    """What a bundle directory holds: candidate subjects, and entries refused with a reason."""

    files: tuple[str, ...]
    refused: tuple[tuple[str, str], ...]


def bundle_name(bundle_dir: Path) -> str:
    """The bundle's own directory name (``<UTC time>-<verdict>``), also for ``.`` or ``x/..``."""
    return Path(os.path.abspath(bundle_dir)).name


def scan_bundle(bundle_dir: Path) -> BundleScan:
    """List the bundle's regular files (sorted POSIX relative paths) without following links.

    A bundle holds its subjects and its envelope, nothing else: the envelope at the top level
    is skipped; symlinks, sockets, FIFOs, devices and empty folders are returned in ``refused``
    with the reason, judged from the directory entry alone (never opened, so a FIFO cannot
    block).
    """
    files: list[str] = []
    refused: list[tuple[str, str]] = []

    def walk(directory: str, prefix: str) -> int:
        held = 0
        with os.scandir(directory) as entries:
            for entry in entries:
                rel = f"{prefix}{entry.name}"
                held += 1
                if not prefix and entry.name == ENVELOPE_NAME:
                    continue
                if entry.is_symlink():
                    refused.append((rel, "is a symbolic link (a bundle holds regular files only)"))
                elif entry.is_dir(follow_symlinks=False):
                    if walk(entry.path, f"{rel}/") == 0:
                        refused.append((rel, "is an empty folder (a bundle holds its files only)"))
                elif entry.is_file(follow_symlinks=False):
                    files.append(rel)
                else:
                    refused.append(
                        (rel, "is not a regular file (a bundle holds regular files only)")
                    )
        return held

    walk(os.fspath(bundle_dir), "")
    return BundleScan(files=tuple(sorted(files)), refused=tuple(sorted(refused)))


_OPEN_FLAGS = (
    os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)


def _open_regular(path: Path | str, dir_fd: int | None = None) -> tuple[int, int]:
    """A read-only descriptor of the regular file ``path`` and its size: never follows a
    symlink, never waits on a FIFO (opened non-blocking, then refused for not being a regular
    file)."""
    fd = os.open(path, _OPEN_FLAGS, dir_fd=dir_fd)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
    return fd, info.st_size


def read_regular_file(path: Path) -> bytes:
    """The bytes of the regular file ``path`` (see :func:`file_sha256` for what is refused)."""
    fd, _ = _open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def file_sha256(path: Path | str, dir_fd: int | None = None) -> str:
    """Hex sha256 of a regular file, read in chunks; a symlink or anything but a regular file
    is refused (``OSError``), without blocking on a FIFO. ``dir_fd``: ``path`` is relative to
    that open directory (no path lookup from the root for each of many files)."""
    fd, size = _open_regular(path, dir_fd)
    try:
        if size <= _CHUNK:
            # the common case, a small file: one read (plus one to see the end), no buffer object
            data = os.read(fd, size + 1)
            digest = hashlib.sha256(data)
            if len(data) <= size:
                return digest.hexdigest()
        else:
            digest = hashlib.sha256()
        while chunk := os.read(fd, _CHUNK):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)


def files_sha256(bundle_dir: Path, names: Iterable[str]) -> dict[str, str | OSError]:
    """sha256 of each file ``names`` (POSIX paths relative to ``bundle_dir``), in that order,
    as :func:`file_sha256`; a file that cannot be read maps to its ``OSError``. The bundle
    folder is opened once and every file relative to it. (Threads do not help: for thousands
    of small files the GIL hand-offs cost more than the hashing they share out.)"""
    found: dict[str, str | OSError] = {}
    dir_fd = os.open(bundle_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        for name in names:
            try:
                found[name] = file_sha256(name, dir_fd)
            except OSError as exc:
                found[name] = exc
    finally:
        os.close(dir_fd)
    return found


def bundle_subjects(bundle_dir: Path) -> list[dict[str, Any]]:
    """The in-toto subjects of a bundle: ``{"name": relpath, "digest": {"sha256": hex}}``."""
    bundle_dir = Path(bundle_dir)
    scan = scan_bundle(bundle_dir)
    if scan.refused:
        details = "; ".join(f"{rel} {reason}" for rel, reason in scan.refused)
        raise BundleError(f"{bundle_dir}: cannot seal: {details}")
    subjects = []
    for rel, digest in files_sha256(bundle_dir, scan.files).items():
        if isinstance(digest, OSError):
            raise digest
        subjects.append({"name": rel, "digest": {"sha256": digest}})
    return subjects


def predicate_problems(predicate: Mapping[str, Any]) -> list[str]:
    """What makes ``predicate`` unusable for verification (empty when it is fine)."""
    problems = [
        f"predicate: field {key!r} missing or empty"
        for key in _REQUIRED_STRINGS
        if not (isinstance(predicate.get(key), str) and predicate[key])
    ]
    target = predicate.get("target")
    if not isinstance(target, Mapping):
        problems.append("predicate: field 'target' missing or not an object")
    elif target.get("kind") not in TARGET_KINDS:
        problems.append(
            f"predicate: field 'target.kind' is {target.get('kind')!r}, "
            f"expected one of {', '.join(TARGET_KINDS)}"
        )
    return problems


def seal_bundle(bundle_dir: Path, predicate: Mapping[str, Any], signer: Signer | None) -> Path:
    """Write ``statement.dsse.json`` into ``bundle_dir`` and return its path.

    The Statement lists every file of the bundle as a subject, with ``predicateType``
    :data:`PREDICATE_TYPE` and ``predicate`` built by the plugin. Keys the verifier relies on:

    - ``bundle``: the bundle directory name (``<UTC time>-<verdict>``); set here when absent;
    - ``migration_id``, ``phase``, ``verdict``: strings, required;
    - ``target``: ``{"kind": "live" | "simulated", "scenario": str | None}``, required;
    - ``scope``: ``"complete"`` or a description of the partial selection;
    - ``gates``: ``[{"gate", "item", "verdict", "nodeid"}]``; ``counts``: verdict -> number;
    - ``started_at``, ``finished_at``: UTC ISO 8601;
    - ``signer``: ``{"keyid": str | None, "ephemeral": bool}``; ``keyid`` is set here from
      ``signer`` (``None`` when unsigned), ``ephemeral`` comes from the caller (default false);
    - ``relies_on``: digests of the earlier bundles this run relied on.

    Other keys (config and catalog digests, host, engine version) are recorded as given. With
    ``signer`` ``None`` the envelope has no signatures: the bundle is *unsigned* and never
    verifies. The envelope is written atomically (temporary file + rename); a bundle that already
    has one is refused (:class:`BundleError`): a bundle is sealed exactly once.
    """
    bundle_dir = Path(bundle_dir)
    envelope_path = bundle_dir / ENVELOPE_NAME
    if os.path.lexists(envelope_path):
        raise BundleError(f"{envelope_path}: already exists; a bundle is sealed exactly once")
    body = _bind_predicate(bundle_dir, predicate, signer)
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": bundle_subjects(bundle_dir),
        "predicateType": PREDICATE_TYPE,
        "predicate": body,
    }
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode("utf-8")
    from securesystemslib.dsse import Envelope

    envelope = Envelope(payload=payload, payload_type=PAYLOAD_TYPE, signatures={})
    if signer is not None:
        envelope.sign(signer)
    document = json.dumps(envelope.to_dict(), indent=2, sort_keys=True) + "\n"
    _write_atomically(envelope_path, document.encode("utf-8"))
    return envelope_path


def _bind_predicate(
    bundle_dir: Path, predicate: Mapping[str, Any], signer: Signer | None
) -> dict[str, Any]:
    """Copy ``predicate``, binding it to this bundle's name and to the signing key."""
    body = dict(predicate)
    name = bundle_name(bundle_dir)
    claimed = body.setdefault("bundle", name)
    if claimed != name:
        raise BundleError(
            f"{bundle_dir}: predicate names bundle {claimed!r} but the directory is {name!r}"
        )
    keyid = None if signer is None else signer.public_key.keyid
    signer_info = dict(body.get("signer") or {})
    if signer_info.get("keyid") not in (None, keyid):
        raise BundleError(
            f"{bundle_dir}: predicate names signer key {signer_info['keyid']!r} but the bundle "
            f"is being signed with {keyid!r}"
        )
    signer_info["keyid"] = keyid
    signer_info.setdefault("ephemeral", False)
    body["signer"] = signer_info
    problems = predicate_problems(body)
    if problems:
        raise BundleError(f"{bundle_dir}: cannot seal: {'; '.join(problems)}")
    return body


def write_temp_beside(path: Path, data: bytes) -> str:
    """Write ``data`` durably to a new hidden temporary file (mode 0644) in ``path``'s folder
    and return its name, for the caller to rename or link into place."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), 0o644)
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(tmp_name)
        raise
    return tmp_name


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place (0644)."""
    tmp_name = write_temp_beside(path, data)
    try:
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.lexists(tmp_name):
            os.unlink(tmp_name)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename or link in ``directory`` durable (best effort where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - filesystems without directory fsync
        pass
    finally:
        os.close(fd)
