"""An independent verifier of evidence bundles, written from the specifications alone.

It shares no code with the engine: it imports neither ``pytest_canarygate`` nor
``securesystemslib``, and checks Ed25519 signatures with ``cryptography`` directly. Tests use it
to show that what the engine writes is what the specifications say, not what the engine's own
verifier happens to accept.

Specifications followed:

- DSSE "Protocol" (``protocol.md``, version 1.0.2) of secure-systems-lab/dsse: the signature is
  over ``PAE(UTF8(PAYLOAD_TYPE), SERIALIZED_BODY)``, where
  ``PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`` and ``LEN`` is the
  ASCII decimal byte length without leading zeros; KEYID is an unauthenticated hint that must
  not decide anything; verify the signature, then reject an unsupported payload type, then parse
  the very bytes that were verified (the envelope is never re-read). Multi-signature: the
  envelope is accepted when signatures of at least ``t`` (here 1) trusted keys verify.
- DSSE "Envelope" (``envelope.md``, version 1.0.2) of secure-systems-lab/dsse: the JSON
  envelope ``{"payload": Base64(body), "payloadType": str, "signatures": [{"keyid", "sig"}]}``;
  ``payload``, ``payloadType``, ``signatures`` and each ``sig`` are required, ``keyid`` is
  optional (unset is the same as empty), unknown fields are ignored, and both standard and
  URL-safe Base64 (RFC 4648, with its padding: the DSSE texts do not waive it) are accepted.
- in-toto Attestation Framework v1 of in-toto/attestation: "Statement layer specification"
  (``spec/v1/statement.md``: ``_type`` is ``https://in-toto.io/Statement/v1``, ``subject`` a
  required array of ResourceDescriptors each with ``digest``, ``predicateType`` a required
  TypeURI, ``predicate`` an optional object), "ResourceDescriptor field type specification"
  (``spec/v1/resource_descriptor.md``), "DigestSet field type specification"
  (``spec/v1/digest_set.md``: lowercase hex values), "Envelope layer specification"
  (``spec/v1/envelope.md``: payloadType ``application/vnd.in-toto+json``) and the parsing rules
  of ``spec/v1/README.md`` (unrecognized fields are ignored).

What the bundle contract adds, where the specifications leave it to producer and consumer:
every subject has a ``name`` that is a relative POSIX path inside the bundle and a ``sha256``
digest (other digest algorithms are ignored; sha256 is required, so ignoring them can never
turn a rejection into an acceptance); names are unique; and the bundle folder holds exactly the
subjects plus the envelope ``statement.dsse.json``: every subject a regular file with that
digest, no unlisted file, no symbolic link, no other kind of file, no empty folder, at any
depth. Nothing in the folder is opened before ``lstat`` says it is a regular file, so a FIFO
cannot block the check. JSON with duplicate member names is refused (RFC 8259 leaves its meaning
to the reader, so two readers could see two different statements).

Public keys are accepted as raw 32 bytes, PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo) or the JSON
key file ``canarygate keygen`` writes (``keytype``/``scheme`` ``ed25519``, ``keyval.public`` in
hex, and a ``keyid`` that must be the sha256 of the canonical JSON of the rest); anything
carrying private material is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from enum import Enum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.hazmat.primitives.serialization import PublicFormat
from cryptography.hazmat.primitives.serialization import load_pem_public_key

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
ENVELOPE_FILE = "statement.dsse.json"
MAX_ENVELOPE_BYTES = 64 * 1024 * 1024
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_STANDARD_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_URLSAFE_B64 = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_CHUNK = 1024 * 1024


class Reason(str, Enum):
    """Why a bundle is rejected; each attack has its own."""

    ENVELOPE_MISSING = "envelope-missing"
    ENVELOPE_NOT_REGULAR = "envelope-not-regular"
    ENVELOPE_MALFORMED = "envelope-malformed"
    NOT_SIGNED = "not-signed"
    BAD_SIGNATURE = "bad-signature"
    UNTRUSTED_SIGNER = "untrusted-signer"
    PAYLOAD_TYPE = "payload-type"
    STATEMENT_MALFORMED = "statement-malformed"
    PREDICATE_TYPE = "predicate-type"
    SUBJECT_NAME = "subject-name"
    SUBJECT_DUPLICATE = "subject-duplicate"
    SUBJECT_DIGEST = "subject-digest"
    MISSING_FILE = "missing-file"
    DIGEST_MISMATCH = "digest-mismatch"
    UNLISTED_FILE = "unlisted-file"
    SYMLINK = "symlink"
    SPECIAL_FILE = "special-file"
    EMPTY_FOLDER = "empty-folder"
    UNREADABLE = "unreadable"


class SpecError(ValueError):
    """Input that the specifications (or the bundle contract) do not allow."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Problem:
    """One reason to reject, and where (a path in the bundle, or ``statement.dsse.json``)."""

    reason: Reason
    where: str
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason.value}: {self.detail}"


@dataclass(frozen=True)
class Signature:
    """One DSSE signature: the KEYID hint (``""`` when unset) and the signature bytes."""

    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A decoded DSSE JSON envelope: SERIALIZED_BODY, PAYLOAD_TYPE and the signatures."""

    payload: bytes
    payload_type: str
    signatures: tuple[Signature, ...]


@dataclass(frozen=True)
class Subject:
    """A statement subject as the bundle contract uses it: a file path and its sha256."""

    name: str
    sha256: str


@dataclass(frozen=True)
class Statement:
    """An in-toto Statement v1."""

    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: dict[str, Any]


@dataclass(frozen=True)
class PublicKey:
    """A trusted Ed25519 public key and the key id it is known by (a hint, never a decision)."""

    keyid: str
    key: Ed25519PublicKey


@dataclass(frozen=True)
class Report:
    """The result of :func:`verify_bundle`: accepted when there is no problem."""

    problems: tuple[Problem, ...]
    statement: Statement | None = None
    signed_by: str | None = None

    @property
    def ok(self) -> bool:
        """True when the bundle is accepted."""
        return not self.problems

    @property
    def reasons(self) -> frozenset[Reason]:
        """The distinct reasons of the problems."""
        return frozenset(problem.reason for problem in self.problems)


# --- DSSE -----------------------------------------------------------------------------------


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding of ``UTF8(payload_type)`` and ``body``."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(body), body)


def b64decode(text: str) -> bytes:
    """Decode standard or URL-safe Base64 (RFC 4648, padded); any other character is an error."""
    decode: Callable[[str], bytes]
    if _STANDARD_B64.fullmatch(text):
        decode = base64.b64decode
    elif _URLSAFE_B64.fullmatch(text):
        decode = base64.urlsafe_b64decode
    else:
        raise SpecError(Reason.ENVELOPE_MALFORMED, "not standard or URL-safe Base64")
    if len(text) % 4:
        raise SpecError(Reason.ENVELOPE_MALFORMED, "Base64 without its padding")
    try:
        return decode(text)
    except (binascii.Error, ValueError):
        raise SpecError(Reason.ENVELOPE_MALFORMED, "not decodable Base64") from None


def strict_json(raw: bytes, reason: Reason, what: str) -> Any:
    """Parse UTF-8 JSON, refusing duplicate member names and NaN/Infinity."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [name for name, _ in items]
        if len(set(names)) != len(names):
            raise SpecError(reason, f"{what} repeats a member name")
        return dict(items)

    def constant(name: str) -> Any:
        raise SpecError(reason, f"{what} holds {name}, which JSON does not have")

    try:
        text = raw.decode("utf-8")
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except UnicodeDecodeError:
        raise SpecError(reason, f"{what} is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise SpecError(reason, f"{what} is not JSON ({exc.msg})") from None
    except RecursionError:
        raise SpecError(reason, f"{what} nests too deeply") from None


def parse_envelope(raw: bytes) -> Envelope:
    """Decode a DSSE JSON envelope (envelope.md "Parsing rules"); unknown fields are ignored."""
    document = strict_json(raw, Reason.ENVELOPE_MALFORMED, "the envelope")
    if not isinstance(document, dict):
        raise SpecError(Reason.ENVELOPE_MALFORMED, "the envelope is not a JSON object")
    for name in ("payload", "payloadType"):
        if not isinstance(document.get(name), str):
            raise SpecError(Reason.ENVELOPE_MALFORMED, f"{name!r} missing or not a string")
    if not isinstance(document.get("signatures"), list):
        raise SpecError(Reason.ENVELOPE_MALFORMED, "'signatures' missing or not an array")
    signatures = []
    for index, entry in enumerate(document["signatures"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("sig"), str):
            raise SpecError(Reason.ENVELOPE_MALFORMED, f"signatures[{index}] has no string 'sig'")
        keyid = entry.get("keyid", "")
        if not isinstance(keyid, str):
            raise SpecError(Reason.ENVELOPE_MALFORMED, f"signatures[{index}].keyid not a string")
        signatures.append(Signature(keyid=keyid, sig=b64decode(entry["sig"])))
    return Envelope(
        payload=b64decode(document["payload"]),
        payload_type=document["payloadType"],
        signatures=tuple(signatures),
    )


def verified_by(envelope: Envelope, keys: Sequence[PublicKey]) -> str | None:
    """The key id of the first trusted key a signature verifies with over the PAE, or None.

    Every signature is tried with every key: KEYID is a hint and decides nothing.
    """
    message = pae(envelope.payload_type, envelope.payload)
    for signature in envelope.signatures:
        for key in keys:
            try:
                key.key.verify(signature.sig, message)
            except InvalidSignature:
                continue
            return key.keyid
    return None


def sign_envelope(
    payload_type: str, body: bytes, private_key: Ed25519PrivateKey, keyid: str | None = None
) -> dict[str, Any]:
    """A DSSE JSON envelope over ``body`` signed with ``private_key`` (for tests that forge)."""
    signature: dict[str, str] = {
        "sig": base64.b64encode(private_key.sign(pae(payload_type, body))).decode("ascii")
    }
    if keyid is not None:
        signature["keyid"] = keyid
    return {
        "payload": base64.b64encode(body).decode("ascii"),
        "payloadType": payload_type,
        "signatures": [signature],
    }


# --- in-toto Statement v1 -------------------------------------------------------------------


def parse_statement(payload: bytes) -> Statement:
    """Parse an in-toto Statement v1 whose subjects are bundle files (see the module docstring)."""
    document = strict_json(payload, Reason.STATEMENT_MALFORMED, "the statement")
    if not isinstance(document, dict):
        raise SpecError(Reason.STATEMENT_MALFORMED, "the statement is not a JSON object")
    if document.get("_type") != STATEMENT_V1:
        raise SpecError(
            Reason.STATEMENT_MALFORMED, f"_type is {document.get('_type')!r}, not {STATEMENT_V1}"
        )
    predicate_type = document.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise SpecError(Reason.STATEMENT_MALFORMED, "predicateType missing or not a string")
    predicate = document.get("predicate", {})
    if not isinstance(predicate, dict):
        raise SpecError(Reason.STATEMENT_MALFORMED, "predicate is not an object")
    entries = document.get("subject")
    if not isinstance(entries, list) or not entries:
        raise SpecError(Reason.STATEMENT_MALFORMED, "subject missing, not an array, or empty")
    subjects: list[Subject] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        subject = _subject(index, entry)
        if subject.name in seen:
            raise SpecError(Reason.SUBJECT_DUPLICATE, f"subject {subject.name!r} listed twice")
        seen.add(subject.name)
        subjects.append(subject)
    return Statement(tuple(subjects), predicate_type, predicate)


def _subject(index: int, entry: Any) -> Subject:
    if not isinstance(entry, dict):
        raise SpecError(Reason.STATEMENT_MALFORMED, f"subject[{index}] is not an object")
    name = entry.get("name")
    if not isinstance(name, str):
        raise SpecError(Reason.SUBJECT_NAME, f"subject[{index}] has no string name")
    problem = subject_name_problem(name)
    if problem:
        raise SpecError(Reason.SUBJECT_NAME, f"subject[{index}] name {name!r}: {problem}")
    digest = entry.get("digest")
    if not isinstance(digest, dict) or not all(isinstance(v, str) for v in digest.values()):
        raise SpecError(Reason.SUBJECT_DIGEST, f"subject {name!r}: digest is not a DigestSet")
    sha256 = digest.get("sha256")
    if not (isinstance(sha256, str) and _SHA256_HEX.fullmatch(sha256)):
        raise SpecError(Reason.SUBJECT_DIGEST, f"subject {name!r}: no lowercase hex sha256")
    return Subject(name, sha256)


def subject_name_problem(name: str) -> str | None:
    """Why ``name`` is not a relative POSIX path of a file inside a bundle, or None."""
    if not name:
        return "empty"
    if "\x00" in name:
        return "holds a NUL"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid Unicode text"
    if name.startswith("/"):
        return "absolute"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "has an empty, '.' or '..' component"
    if name == ENVELOPE_FILE:
        return "the envelope cannot be its own subject"
    return None


# --- the bundle folder ----------------------------------------------------------------------


@dataclass
class Tree:
    """What a bundle folder holds, found with ``lstat`` only (nothing is followed or opened)."""

    files: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (st_dev, st_ino)
    refused: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return f"of file type {stat.S_IFMT(mode):o}"


def scan_tree(bundle: Path) -> Tree:
    """Every entry under ``bundle``, except the top-level envelope, classified by ``lstat``."""
    tree = Tree()

    def walk(directory: str, prefix: str) -> None:
        with os.scandir(directory) as iterator:
            entries = sorted(iterator, key=lambda e: e.name)
        if not entries and prefix:
            tree.problems.append(Problem(Reason.EMPTY_FOLDER, prefix, "an empty folder"))
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            if not prefix and entry.name == ENVELOPE_FILE:
                continue
            st = os.lstat(entry.path)
            if stat.S_ISLNK(st.st_mode):
                tree.refused.add(rel)
                target = os.readlink(entry.path)
                tree.problems.append(Problem(Reason.SYMLINK, rel, f"a symbolic link to {target!r}"))
            elif stat.S_ISDIR(st.st_mode):
                walk(entry.path, f"{rel}/")
            elif stat.S_ISREG(st.st_mode):
                tree.files[rel] = (st.st_dev, st.st_ino)
            else:
                tree.refused.add(rel)
                detail = f"{_kind(st.st_mode)}, not a regular file"
                tree.problems.append(Problem(Reason.SPECIAL_FILE, rel, detail))

    walk(os.fspath(bundle), "")
    return tree


def _open_regular(path: Path, identity: tuple[int, int] | None) -> int:
    """Open ``path`` for reading only if it is (still) the regular file ``identity`` names."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or (
        identity is not None and (st.st_dev, st.st_ino) != identity
    ):
        os.close(fd)
        raise OSError(f"{path.name} changed while it was being verified")
    return fd


def sha256_of(path: Path, identity: tuple[int, int]) -> str:
    """The hex sha256 of the regular file ``path`` (the one ``identity`` names)."""
    digest = hashlib.sha256()
    with os.fdopen(_open_regular(path, identity), "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_envelope_file(bundle: Path) -> bytes:
    """The envelope's bytes, read only if ``lstat`` says it is a regular file of sane size."""
    path = bundle / ENVELOPE_FILE
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise SpecError(Reason.ENVELOPE_MISSING, "no envelope") from None
    if stat.S_ISLNK(st.st_mode):
        raise SpecError(Reason.ENVELOPE_NOT_REGULAR, "the envelope is a symbolic link")
    if not stat.S_ISREG(st.st_mode):
        raise SpecError(Reason.ENVELOPE_NOT_REGULAR, f"the envelope is {_kind(st.st_mode)}")
    if st.st_size > MAX_ENVELOPE_BYTES:
        raise SpecError(Reason.ENVELOPE_MALFORMED, "the envelope is too large")
    with os.fdopen(_open_regular(path, (st.st_dev, st.st_ino)), "rb") as handle:
        data = handle.read(MAX_ENVELOPE_BYTES + 1)
    if len(data) > MAX_ENVELOPE_BYTES:
        raise SpecError(Reason.ENVELOPE_MALFORMED, "the envelope is too large")
    return data


def verify_bundle(
    bundle: Path,
    keys: Sequence[PublicKey],
    *,
    payload_type: str = IN_TOTO_PAYLOAD_TYPE,
    predicate_type: str | None = None,
) -> Report:
    """Verify the bundle folder ``bundle`` against the trusted ``keys``; see the module docstring.

    The folder is always checked for links, special files and empty folders; the statement is
    parsed only once a trusted signature verified and the payload type is supported.
    """
    bundle = Path(bundle)
    try:
        mode = os.lstat(bundle).st_mode
    except OSError as exc:
        return Report((Problem(Reason.UNREADABLE, bundle.name, str(exc)),))
    if stat.S_ISLNK(mode):
        return Report((Problem(Reason.SYMLINK, bundle.name, "the bundle is a symbolic link"),))
    if not stat.S_ISDIR(mode):
        return Report((Problem(Reason.ENVELOPE_MISSING, bundle.name, "not a folder"),))
    try:
        tree = scan_tree(bundle)
    except OSError as exc:
        return Report((Problem(Reason.UNREADABLE, bundle.name, f"cannot be listed ({exc})"),))
    problems = list(tree.problems)
    try:
        envelope = parse_envelope(read_envelope_file(bundle))
    except SpecError as exc:
        return Report((*problems, Problem(exc.reason, ENVELOPE_FILE, exc.detail)))
    except OSError as exc:
        return Report((*problems, Problem(Reason.UNREADABLE, ENVELOPE_FILE, str(exc))))

    signed_by = _check_signatures(envelope, keys, problems)
    if envelope.payload_type != payload_type:
        detail = f"payloadType {envelope.payload_type!r}, expected {payload_type!r}"
        problems.append(Problem(Reason.PAYLOAD_TYPE, ENVELOPE_FILE, detail))
    if signed_by is None or envelope.payload_type != payload_type:
        return Report(tuple(problems))  # DSSE: reject before parsing the payload

    try:
        statement = parse_statement(envelope.payload)  # the bytes that were verified
    except SpecError as exc:
        return Report((*problems, Problem(exc.reason, ENVELOPE_FILE, exc.detail)), None, signed_by)
    if predicate_type is not None and statement.predicate_type != predicate_type:
        detail = f"predicateType {statement.predicate_type!r}, expected {predicate_type!r}"
        problems.append(Problem(Reason.PREDICATE_TYPE, ENVELOPE_FILE, detail))
    problems += _compare(bundle, statement.subjects, tree)
    return Report(tuple(problems), statement, signed_by)


def _check_signatures(
    envelope: Envelope, keys: Sequence[PublicKey], problems: list[Problem]
) -> str | None:
    if not envelope.signatures:
        problems.append(Problem(Reason.NOT_SIGNED, ENVELOPE_FILE, "no signatures"))
        return None
    signed_by = verified_by(envelope, keys)
    if signed_by is None:
        hints = {s.keyid for s in envelope.signatures}
        trusted = {k.keyid for k in keys}
        # the hint only chooses the message: either way the envelope is rejected
        if hints & trusted:
            reason, detail = Reason.BAD_SIGNATURE, "a trusted key's signature does not verify"
        else:
            reason, detail = Reason.UNTRUSTED_SIGNER, f"signed by {sorted(hints)}, none trusted"
        problems.append(Problem(reason, ENVELOPE_FILE, detail))
    return signed_by


def _compare(bundle: Path, subjects: Iterable[Subject], tree: Tree) -> list[Problem]:
    problems: list[Problem] = []
    listed: set[str] = set()
    for subject in subjects:
        listed.add(subject.name)
        if subject.name in tree.refused:
            continue  # already reported as a link or a special file
        identity = tree.files.get(subject.name)
        if identity is None:
            problems.append(Problem(Reason.MISSING_FILE, subject.name, "listed but not present"))
            continue
        try:
            actual = sha256_of(bundle / subject.name, identity)
        except OSError as exc:
            problems.append(Problem(Reason.UNREADABLE, subject.name, str(exc)))
            continue
        if actual != subject.sha256:
            problems.append(Problem(Reason.DIGEST_MISMATCH, subject.name, "sha256 differs"))
    for name in sorted(set(tree.files) - listed):
        problems.append(Problem(Reason.UNLISTED_FILE, name, "present but not a subject"))
    return problems


# --- public keys ----------------------------------------------------------------------------


def keyid_of(key: Ed25519PublicKey) -> str:
    """The id ``canarygate keygen`` gives a key: sha256 of the canonical JSON of its key dict."""
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    document = {"keytype": "ed25519", "keyval": {"public": raw.hex()}, "scheme": "ed25519"}
    # all strings are lowercase ASCII: compact sorted JSON is the canonical JSON
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def load_public_key(data: bytes) -> PublicKey:
    """A public key from raw 32 bytes, a PEM ``PUBLIC KEY`` or a ``canarygate keygen`` JSON file.

    Raises :class:`ValueError` for anything else, and for anything carrying private material.
    """
    if len(data) == 32:
        key = Ed25519PublicKey.from_public_bytes(data)
        return PublicKey(keyid_of(key), key)
    if b"PRIVATE" in data:
        raise ValueError("holds private key material; a verifier takes public keys only")
    if data.lstrip().startswith(b"-----BEGIN PUBLIC KEY-----"):
        try:
            loaded = load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm):
            raise ValueError("not a PEM public key") from None
        if not isinstance(loaded, Ed25519PublicKey):
            raise ValueError("not an Ed25519 key")
        return PublicKey(keyid_of(loaded), loaded)
    return _json_key(data)


def _json_key(data: bytes) -> PublicKey:
    try:
        document = strict_json(data, Reason.UNREADABLE, "the key file")
    except SpecError as exc:
        raise ValueError(exc.detail) from None
    if not isinstance(document, dict):
        raise ValueError("the key file is not a JSON object")
    keyval = document.get("keyval")
    if not isinstance(keyval, dict):
        raise ValueError("keyval missing or not an object")
    if set(keyval) != {"public"}:
        raise ValueError(f"keyval holds {sorted(keyval)}; only 'public' belongs in a public key")
    unknown = set(document) - {"keyid", "keytype", "scheme", "keyval"}
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    if document.get("keytype") != "ed25519" or document.get("scheme") != "ed25519":
        raise ValueError("keytype and scheme must both be 'ed25519'")
    public = keyval["public"]
    if not (isinstance(public, str) and re.fullmatch(r"[0-9a-f]{64}", public)):
        raise ValueError("keyval.public is not 32 bytes in lowercase hex")
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public))
    keyid = keyid_of(key)
    if document.get("keyid", keyid) != keyid:
        raise ValueError(f"keyid {document.get('keyid')!r} is not the id of the key it holds")
    return PublicKey(keyid, key)


def load_public_key_file(path: Path) -> PublicKey:
    """:func:`load_public_key` of the file at ``path`` (a regular file, at most 64 KiB)."""
    with os.fdopen(_open_regular(Path(path), None), "rb") as handle:
        data = handle.read(64 * 1024 + 1)
    if len(data) > 64 * 1024:
        raise ValueError("too large to be a public key")
    return load_public_key(data)
