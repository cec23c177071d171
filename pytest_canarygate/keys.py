"""Ed25519 signing keys for evidence bundles: generate, load (refusing loose permissions), trust.

Files:

- private key: PEM, unencrypted PKCS#8 Ed25519, created with mode 0600 and never overwritten.
  Loading refuses a file that group or others may read or write (``chmod 600 <path>`` fixes it).
- public key: a JSON file holding the securesystemslib key dict
  ``{"keyid": ..., "keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "<hex>"}}``.
  The key id is securesystemslib's default: the sha256 of the canonical JSON of the key, so it is
  recomputed on load and a file whose ``keyid`` does not match its key is refused.
  ``load_public_key`` also accepts a PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo) file.

The signing key of a run comes from ``--canarygate-key=PATH`` (with ``=``: pytest takes a path
after a space for a test path) or, when that option is not given, from the environment variable
``CANARYGATE_SIGNING_KEY`` (see :func:`resolve_signing_key_path`). Error messages name paths and
modes, never key material; a public key file that exists but is not a usable Ed25519 public key
raises :class:`MalformedKeyError`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from pytest_canarygate._requires import require
from pytest_canarygate.cli import EXIT_FAILED
from pytest_canarygate.cli import EXIT_OK
from pytest_canarygate.cli import EXIT_USAGE
from pytest_canarygate.errors import ConfigError

# cryptography and securesystemslib are imported where a key is read or made.
require("cryptography", "securesystemslib")

if TYPE_CHECKING:
    from securesystemslib.signer import CryptoSigner
    from securesystemslib.signer import SSlibKey

__all__ = [
    "KEY_ENV_VAR",
    "PUBLIC_SUFFIX",
    "MalformedKeyError",
    "add_subcommand",
    "default_public_path",
    "ephemeral_signer",
    "generate_keypair",
    "load_public_key",
    "load_signer",
    "load_trusted_keys",
    "resolve_signing_key_path",
    "signing_hints",
]

KEY_ENV_VAR = "CANARYGATE_SIGNING_KEY"
PUBLIC_SUFFIX = ".pub.json"
_MAX_KEY_FILE = 64 * 1024
_ED25519 = "ed25519"
_TRUSTED_SUFFIXES = (".json", ".pem")


class MalformedKeyError(ConfigError):
    """A key file that exists and was read, but is not a usable Ed25519 public key."""


def default_public_path(private_path: Path) -> Path:
    """Where ``keygen`` puts the public key by default: ``PRIVATE_PATH`` + ``.pub.json``."""
    return Path(f"{private_path}{PUBLIC_SUFFIX}")


def generate_keypair(private_path: Path, public_path: Path | None = None) -> str:
    """Write a new Ed25519 key pair and return its key id.

    The private key is a PEM (PKCS#8) file created with mode 0600 in a single ``open`` (so it is
    never readable by others, not even briefly); the public key is the JSON key dict described in
    the module docstring (default path: :func:`default_public_path`). Neither file may exist yet:
    existing keys are never overwritten (:class:`ConfigError`). A missing parent directory of the
    private key is created with mode 0700.
    """
    private_path = Path(private_path)
    public_path = default_public_path(private_path) if public_path is None else Path(public_path)
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise ConfigError(f"{path}: already exists; refusing to overwrite a key file")
    from securesystemslib.signer import CryptoSigner

    signer = CryptoSigner.generate_ed25519()
    public_bytes = _public_key_json(signer.public_key)
    private_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _create_new_file(private_path, signer.private_bytes, 0o600)
    try:
        _create_new_file(public_path, public_bytes, 0o644)
    except BaseException:
        private_path.unlink()
        raise
    return str(signer.public_key.keyid)


def load_signer(private_path: Path) -> CryptoSigner:
    """Load the Ed25519 private key at ``private_path`` as a securesystemslib signer.

    Refuses (with :class:`ConfigError`) a missing file, a file that is not a regular file, a file
    readable or writable by group or others (``mode & 0o077``), an encrypted key, and anything
    that is not an Ed25519 private key in PEM.
    """
    path = Path(private_path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ConfigError(
            f"signing key {path}: no such file (create one with "
            f"`canarygate keygen {shlex.quote(str(path))}`, or pass --canarygate-key=PATH / "
            f"set {KEY_ENV_VAR} to an existing key)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"signing key {path}: cannot open ({exc.strerror or exc})") from None
    st = os.fstat(fd)  # of the file we opened: no race with a chmod or a swap
    mode = stat.S_IMODE(st.st_mode)
    refusal = None
    if not stat.S_ISREG(st.st_mode):
        refusal = "not a regular file"
    elif mode & 0o077:
        refusal = (
            f"mode {mode:04o} lets group or others access the private key; refusing to use it. "
            f"Fix: chmod 600 {shlex.quote(str(path))}"
        )
    if refusal:
        os.close(fd)
        raise ConfigError(f"signing key {path}: {refusal}")
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(_MAX_KEY_FILE + 1)
    if len(data) > _MAX_KEY_FILE:
        raise ConfigError(f"signing key {path}: too large to be an Ed25519 private key")
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from securesystemslib.signer import CryptoSigner

    try:
        private_key = load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(
            f"signing key {path}: the key is encrypted; canarygate needs an unencrypted "
            "PEM key protected by file permissions (mode 0600)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            f"signing key {path}: not a PEM-encoded Ed25519 private key (PKCS#8)"
        ) from None
    if not isinstance(private_key, Ed25519PrivateKey):
        raise ConfigError(f"signing key {path}: not an Ed25519 key")
    return CryptoSigner(private_key)


def ephemeral_signer() -> CryptoSigner:
    """A fresh in-memory Ed25519 signer for simulator runs; the caller marks it ephemeral."""
    from securesystemslib.signer import CryptoSigner

    return CryptoSigner.generate_ed25519()


def load_public_key(path: Path) -> SSlibKey:
    """Load a public key file (JSON key dict, or PEM ``PUBLIC KEY``); the key id is recomputed."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"public key {path}: cannot read ({exc.strerror or exc})") from None
    if len(data) > _MAX_KEY_FILE:
        raise MalformedKeyError(f"public key {path}: too large to be a public key")
    if b"PRIVATE KEY" in data:
        raise MalformedKeyError(
            f"public key {path}: this is a private key; give verifiers the public key "
            f"(the {PUBLIC_SUFFIX} file written by `canarygate keygen`)"
        )
    if data.lstrip().startswith(b"-----BEGIN"):
        return _public_key_from_pem(path, data)
    return _public_key_from_json(path, data)


def load_trusted_keys(directory: Path) -> dict[str, SSlibKey]:
    """Load every ``*.json`` and ``*.pem`` public key in ``directory``, keyed by key id."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"trusted keys {directory}: not a directory")
    keys: dict[str, SSlibKey] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.suffix not in _TRUSTED_SUFFIXES:
            continue
        if not path.is_file():
            continue
        key = load_public_key(path)
        keys[key.keyid] = key
    if not keys:
        raise ConfigError(f"trusted keys {directory}: no public key files (*.json or *.pem) in it")
    return keys


def resolve_signing_key_path(option_value: str | None, environ: Mapping[str, str]) -> Path | None:
    """The signing key path: ``--canarygate-key`` if given, else ``$CANARYGATE_SIGNING_KEY``.

    Empty values count as unset; ``~`` is expanded. ``None`` means: no key, the bundle is
    written unsigned (NOT SIGNED - NOT PROMOTABLE).
    """
    for value in (option_value, environ.get(KEY_ENV_VAR)):
        if value and value.strip():
            return Path(value.strip()).expanduser()
    return None


def _public_key_json(key: SSlibKey) -> bytes:
    document = {"keyid": key.keyid, **key.to_dict()}
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _public_key_from_pem(path: Path, data: bytes) -> SSlibKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from securesystemslib.signer import SSlibKey

    try:
        public_key = load_pem_public_key(data)
    except ValueError:
        raise MalformedKeyError(f"public key {path}: not a PEM public key") from None
    if not isinstance(public_key, Ed25519PublicKey):
        raise MalformedKeyError(f"public key {path}: not an Ed25519 key")
    return SSlibKey.from_crypto(public_key)


def _public_key_from_json(path: Path, data: bytes) -> SSlibKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from securesystemslib.signer import SSlibKey

    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise MalformedKeyError(f"public key {path}: neither JSON nor PEM") from None
    if not isinstance(document, dict):
        raise MalformedKeyError(
            f"public key {path}: expected a JSON object (a securesystemslib key)"
        )
    keytype, scheme = document.get("keytype"), document.get("scheme")
    if keytype != _ED25519 or scheme != _ED25519:
        raise MalformedKeyError(
            f"public key {path}: keytype/scheme is {keytype}/{scheme}, expected ed25519/ed25519"
        )
    keyval = document.get("keyval")
    if _holds_private_material(document):
        raise MalformedKeyError(
            f"public key {path}: it also carries private key material (a 'private' field); "
            f"refusing it: give verifiers the public key only (the {PUBLIC_SUFFIX} file "
            "written by `canarygate keygen`), and treat this file's private key as exposed"
        )
    public_hex = keyval.get("public") if isinstance(keyval, dict) else None
    try:
        raw = bytes.fromhex(public_hex) if isinstance(public_hex, str) else b""
        public_key = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise MalformedKeyError(
            f"public key {path}: keyval.public is not a 32-byte hex Ed25519 public key"
        ) from None
    key = SSlibKey.from_crypto(public_key)
    declared = document.get("keyid")
    if declared is not None and declared != key.keyid:
        raise MalformedKeyError(
            f"public key {path}: keyid {declared!r} does not match the key it holds "
            f"({key.keyid}); refusing a relabelled key"
        )
    return key


def _holds_private_material(value: Any) -> bool:
    """True when a JSON key document has a ``private`` (or ``*private*``) field anywhere."""
    if isinstance(value, dict):
        return any(
            "private" in str(name).lower() or _holds_private_material(inner)
            for name, inner in value.items()
        )
    if isinstance(value, list):
        return any(_holds_private_material(inner) for inner in value)
    return False


def _create_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (never overwriting, never following a symlink) with exactly ``mode``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise ConfigError(f"{path}: already exists; refusing to overwrite a key file") from None
    try:
        os.fchmod(fd, mode)  # the umask may have removed bits we want (never added any)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


def _run_keygen(args: argparse.Namespace) -> int:
    private_path = Path(args.private_path)
    public_path = Path(args.public) if args.public else default_public_path(private_path)
    try:
        keyid = generate_keypair(private_path, public_path)
    except ConfigError as exc:  # a key file already exists: keys are never overwritten
        print(f"canarygate keygen: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"canarygate keygen: error: cannot write the key files: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"key id:      {keyid}")
    print(f"private key: {private_path} (mode 0600; keep it secret, never commit it)")
    print(
        f"public key:  {public_path} (for verifiers: "
        f"canarygate verify BUNDLE --key {shlex.quote(str(public_path))})"
    )
    for line in signing_hints(private_path):
        print(line)
    return EXIT_OK


def signing_hints(private_path: Path) -> list[str]:
    """How to sign runs with ``private_path``, as options and commands that work as printed:
    the absolute path (pytest may run from another directory), shell-quoted, and the option
    written with ``=`` (after a space pytest would take a path outside the repository for a
    test path)."""
    quoted = shlex.quote(os.path.abspath(private_path))
    return [
        f"sign runs with: pytest --phase=alpha --canarygate-key={quoted}  # or any other phase",
        f"            or: export {KEY_ENV_VAR}={quoted}",
    ]


def add_subcommand(subparsers: Any) -> None:
    """Add ``canarygate keygen``."""
    parser = subparsers.add_parser(
        "keygen",
        help="Generate an Ed25519 key pair for signing evidence bundles",
        description="Write a new Ed25519 private key (PEM, mode 0600) and its public key "
        "(securesystemslib JSON key dict). Existing files are never overwritten.",
        epilog=f"Use the private key with --canarygate-key=PATH (with '=') or the {KEY_ENV_VAR} "
        "environment variable; give the public key to whoever verifies bundles. "
        f"Exit codes: {EXIT_OK} written, {EXIT_FAILED} the key files could not be written, "
        f"{EXIT_USAGE} usage error (a key file already exists: keys are never overwritten); "
        "the full table is in `canarygate --help`.",
    )
    parser.add_argument("private_path", metavar="PRIVATE_PATH", help="Private key file to create")
    parser.add_argument(
        "--public",
        metavar="PATH",
        help=f"Public key file to create (default: PRIVATE_PATH{PUBLIC_SUFFIX})",
    )
    parser.set_defaults(func=_run_keygen)
