"""Key generation, loading (with the permission check), trust and key-path resolution."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from bundle_helpers import KeyPair
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pytest_canarygate.cli import main
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.keys import KEY_ENV_VAR
from pytest_canarygate.keys import ephemeral_signer
from pytest_canarygate.keys import generate_keypair
from pytest_canarygate.keys import load_public_key
from pytest_canarygate.keys import load_signer
from pytest_canarygate.keys import load_trusted_keys
from pytest_canarygate.keys import resolve_signing_key_path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generate_keypair_writes_0600_private_key_and_json_public_key(tmp_path: Path) -> None:
    keyid = generate_keypair(tmp_path / "k.pem")

    assert _mode(tmp_path / "k.pem") == 0o600
    assert (tmp_path / "k.pem").read_text().startswith("-----BEGIN PRIVATE KEY-----")
    public = json.loads((tmp_path / "k.pem.pub.json").read_text())
    assert public["keyid"] == keyid
    assert (public["keytype"], public["scheme"]) == ("ed25519", "ed25519")
    assert "private" not in json.dumps(public).lower()
    assert load_signer(tmp_path / "k.pem").public_key.keyid == keyid
    assert load_public_key(tmp_path / "k.pem.pub.json").keyid == keyid


def test_private_key_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        generate_keypair(tmp_path / "k.pem", tmp_path / "pub.json")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "k.pem") == 0o600


def test_generate_keypair_creates_a_private_parent_directory(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "keys" / "k.pem")
    assert _mode(tmp_path / "keys") & 0o077 == 0


def test_keygen_refuses_to_overwrite_a_private_key(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "k.pem")
    before = (tmp_path / "k.pem").read_bytes()

    with pytest.raises(ConfigError, match="already exists; refusing to overwrite"):
        generate_keypair(tmp_path / "k.pem", tmp_path / "other.pub.json")

    assert (tmp_path / "k.pem").read_bytes() == before
    assert not (tmp_path / "other.pub.json").exists()


def test_keygen_refuses_an_existing_public_key_and_writes_no_private_key(tmp_path: Path) -> None:
    (tmp_path / "k.pem.pub.json").write_text("{}")

    with pytest.raises(ConfigError, match=r"k\.pem\.pub\.json: already exists"):
        generate_keypair(tmp_path / "k.pem")

    assert not (tmp_path / "k.pem").exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_a_private_key_readable_or_writable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    keys = KeyPair(tmp_path)
    os.chmod(keys.private_path, mode)

    with pytest.raises(ConfigError) as excinfo:
        load_signer(keys.private_path)

    message = str(excinfo.value)
    assert str(keys.private_path) in message
    assert f"{mode:04o}" in message
    assert f"chmod 600 {keys.private_path}" in message
    assert not any(fragment in message for fragment in keys.secret_fragments())


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_private_key_only_the_owner_can_read_is_accepted(tmp_path: Path, mode: int) -> None:
    keys = KeyPair(tmp_path)
    os.chmod(keys.private_path, mode)
    assert load_signer(keys.private_path).public_key.keyid == keys.keyid


def test_a_missing_private_key_is_refused_with_a_hint(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match="no such file") as excinfo:
        load_signer(missing)
    assert str(missing) in str(excinfo.value)
    assert "canarygate keygen" in str(excinfo.value)


def test_a_directory_is_not_a_private_key(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_signer(tmp_path / "d")


def test_a_non_key_file_is_refused_without_echoing_its_content(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_text("SECRET-LOOKING-CONTENT\n")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="not a PEM-encoded Ed25519 private key") as excinfo:
        load_signer(path)
    assert "SECRET-LOOKING-CONTENT" not in str(excinfo.value)


def test_an_encrypted_private_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    path.write_bytes(pem)
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="encrypted"):
        load_signer(path)


def test_public_key_accepts_pem_with_the_same_keyid(tmp_path: Path) -> None:
    keys = KeyPair(tmp_path)
    private = serialization.load_pem_private_key(keys.private_path.read_bytes(), None)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "pub.pem").write_bytes(pem)
    assert load_public_key(tmp_path / "pub.pem").keyid == keys.keyid


def test_a_public_key_file_with_a_wrong_keyid_is_refused(tmp_path: Path) -> None:
    keys = KeyPair(tmp_path)
    document = json.loads(keys.public_path.read_text())
    document["keyid"] = "0" * 64
    keys.public_path.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match="does not match the key it holds"):
        load_public_key(keys.public_path)


def test_a_private_key_given_as_public_key_is_refused_without_echo(tmp_path: Path) -> None:
    keys = KeyPair(tmp_path)
    with pytest.raises(ConfigError, match="this is a private key") as excinfo:
        load_public_key(keys.private_path)
    assert not any(fragment in str(excinfo.value) for fragment in keys.secret_fragments())


@pytest.mark.parametrize(
    "where",
    [("keyval", "private"), ("private",), ("keyval", "private_hex"), ("extra", "PrivateKey")],
    ids=["keyval.private", "top-level", "keyval.private_hex", "nested-other-case"],
)
def test_a_json_public_key_that_also_carries_private_material_is_refused(
    tmp_path: Path, where: tuple[str, ...]
) -> None:
    """The securesystemslib JSON form can hold the private half beside the public one; such a
    file must never serve as a trusted public key (and the private value is never echoed)."""
    keys = KeyPair(tmp_path)
    document = json.loads(keys.public_path.read_text())
    secret = "ab" * 32
    node = document
    for name in where[:-1]:
        node = node.setdefault(name, {})
    node[where[-1]] = secret
    leaky = tmp_path / "leaky.pub.json"
    leaky.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match="carries private key material") as excinfo:
        load_public_key(leaky)
    assert secret not in str(excinfo.value)
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / "leaky.json").write_text(json.dumps(document))
    with pytest.raises(ConfigError, match="carries private key material"):
        load_trusted_keys(trusted)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "neither JSON nor PEM"),
        ("[]", "expected a JSON object"),
        ('{"keytype": "rsa", "scheme": "rsassa-pss-sha256"}', "expected ed25519/ed25519"),
        ('{"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "zz"}}', "32-byte"),
    ],
)
def test_bad_public_key_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "pub.json").write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_public_key(tmp_path / "pub.json")


def test_load_trusted_keys_reads_every_public_key_in_a_directory(tmp_path: Path) -> None:
    first, second = KeyPair(tmp_path, "a.key"), KeyPair(tmp_path, "b.key")
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    for keys in (first, second):
        (trusted / keys.public_path.name).write_bytes(keys.public_path.read_bytes())
    (trusted / "README.txt").write_text("not a key, ignored")

    assert set(load_trusted_keys(trusted)) == {first.keyid, second.keyid}


def test_load_trusted_keys_refuses_an_empty_or_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no public key files"):
        load_trusted_keys(tmp_path)
    with pytest.raises(ConfigError, match="not a directory"):
        load_trusted_keys(tmp_path / "missing")


def test_resolve_signing_key_path_prefers_the_option_then_the_environment() -> None:
    env = {KEY_ENV_VAR: "/keys/env.pem"}
    assert resolve_signing_key_path("opt.pem", env) == Path("opt.pem")
    assert resolve_signing_key_path(None, env) == Path("/keys/env.pem")
    assert resolve_signing_key_path("", env) == Path("/keys/env.pem")
    assert resolve_signing_key_path(None, {}) is None
    assert resolve_signing_key_path("  ", {KEY_ENV_VAR: ""}) is None
    assert resolve_signing_key_path("~/k.pem", {}) == Path.home() / "k.pem"


def test_ephemeral_signers_are_fresh_ed25519_keys() -> None:
    first, second = ephemeral_signer(), ephemeral_signer()
    assert first.public_key.keytype == "ed25519"
    assert first.public_key.keyid != second.public_key.keyid


def test_keygen_command_prints_key_id_and_paths_never_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private = tmp_path / "k.pem"
    assert main(["keygen", str(private)]) == 0
    out, err = capsys.readouterr()
    public = json.loads(Path(f"{private}.pub.json").read_text())
    assert public["keyid"] in out
    assert str(private) in out
    assert f"{private}.pub.json" in out
    pem_body = [ln for ln in private.read_text().splitlines() if not ln.startswith("-----")]
    assert not any(line in out + err for line in pem_body)
    assert "PRIVATE KEY-----" not in out + err

    # a key file that already exists: usage error (exit 2), keys are never overwritten
    assert main(["keygen", str(private), "--public", str(tmp_path / "x.json")]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
