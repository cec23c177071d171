"""Sealing: subjects, the in-toto statement, the DSSE envelope, refusals."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from bundle_helpers import DEFAULT_FILES
from bundle_helpers import KeyPair
from bundle_helpers import make_bundle
from bundle_helpers import make_predicate
from bundle_helpers import read_envelope
from bundle_helpers import read_statement
from securesystemslib.dsse import Envelope

from pytest_canarygate.signing import ENVELOPE_NAME
from pytest_canarygate.signing import PAYLOAD_TYPE
from pytest_canarygate.signing import PREDICATE_TYPE
from pytest_canarygate.signing import STATEMENT_TYPE
from pytest_canarygate.signing import BundleError
from pytest_canarygate.signing import bundle_subjects
from pytest_canarygate.signing import seal_bundle


def test_subjects_are_every_file_sorted_with_posix_paths_and_sha256(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)

    subjects = bundle_subjects(bundle)

    assert [s["name"] for s in subjects] == sorted(DEFAULT_FILES)
    for subject in subjects:
        expected = hashlib.sha256(DEFAULT_FILES[subject["name"]]).hexdigest()
        assert subject["digest"] == {"sha256": expected}


def test_subjects_are_every_file_but_the_top_level_envelope(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    (bundle / ENVELOPE_NAME).write_text("{}")
    (bundle / "html").mkdir()
    (bundle / "html" / "index.html").write_text("<html></html>")
    (bundle / "observation" / ENVELOPE_NAME).write_text("{}")

    names = [s["name"] for s in bundle_subjects(bundle)]

    assert ENVELOPE_NAME not in names
    assert "html/index.html" in names  # nothing inside a bundle is exempt
    assert f"observation/{ENVELOPE_NAME}" in names


def test_an_empty_folder_cannot_be_sealed(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    (bundle / "observation" / "empty").mkdir(parents=True)
    with pytest.raises(BundleError, match="observation/empty is an empty folder"):
        bundle_subjects(bundle)


def test_large_files_are_hashed_in_chunks_correctly(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    bundle = make_bundle(tmp_path, files={"allure-results/big.bin": data})
    assert bundle_subjects(bundle)[0]["digest"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_symlinked_file_is_refused(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    (tmp_path / "outside.json").write_text("{}")
    (bundle / "allure-results" / "link-result.json").symlink_to(tmp_path / "outside.json")
    with pytest.raises(BundleError, match=r"allure-results/link-result\.json is a symbolic link"):
        bundle_subjects(bundle)


def test_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (bundle / "extra").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(BundleError, match="extra is a symbolic link"):
        bundle_subjects(bundle)


def test_a_fifo_is_refused(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    os.mkfifo(bundle / "observation" / "pipe")
    with pytest.raises(BundleError, match="observation/pipe is not a regular file"):
        bundle_subjects(bundle)


def test_seal_writes_a_signed_in_toto_statement_in_a_dsse_envelope(tmp_path: Path) -> None:
    keys = KeyPair(tmp_path)
    bundle = make_bundle(tmp_path)

    path = seal_bundle(bundle, make_predicate(bundle), keys.signer)

    assert path == bundle / ENVELOPE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    document = read_envelope(bundle)
    assert document["payloadType"] == PAYLOAD_TYPE
    assert [s["keyid"] for s in document["signatures"]] == [keys.keyid]
    statement = read_statement(bundle)
    assert statement["_type"] == STATEMENT_TYPE
    assert statement["predicateType"] == PREDICATE_TYPE
    assert statement["subject"] == bundle_subjects(bundle)
    predicate = statement["predicate"]
    assert predicate["bundle"] == bundle.name
    assert predicate["signer"] == {"keyid": keys.keyid, "ephemeral": False}
    assert predicate["phase"] == "canary"
    envelope = Envelope.from_dict(document)
    assert set(envelope.verify([keys.public_key], 1)) == {keys.keyid}


def test_seal_without_a_signer_writes_an_unsigned_envelope(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    seal_bundle(bundle, make_predicate(bundle), None)
    assert read_envelope(bundle)["signatures"] == []
    assert read_statement(bundle)["predicate"]["signer"]["keyid"] is None


def test_seal_keeps_the_callers_ephemeral_mark(tmp_path: Path) -> None:
    keys = KeyPair(tmp_path)
    bundle = make_bundle(tmp_path)
    seal_bundle(bundle, make_predicate(bundle, ephemeral=True), keys.signer)
    assert read_statement(bundle)["predicate"]["signer"]["ephemeral"] is True


def test_a_bundle_is_sealed_exactly_once(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    seal_bundle(bundle, make_predicate(bundle), None)
    before = (bundle / ENVELOPE_NAME).read_bytes()
    with pytest.raises(BundleError, match="sealed exactly once"):
        seal_bundle(bundle, make_predicate(bundle), None)
    assert (bundle / ENVELOPE_NAME).read_bytes() == before


def test_seal_refuses_a_predicate_naming_another_bundle(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    predicate = {**make_predicate(bundle), "bundle": "20240101T000000Z-PASS"}
    with pytest.raises(BundleError, match="predicate names bundle"):
        seal_bundle(bundle, predicate, None)


def test_seal_refuses_a_predicate_naming_another_signing_key(tmp_path: Path) -> None:
    keys = KeyPair(tmp_path)
    bundle = make_bundle(tmp_path)
    predicate = {**make_predicate(bundle), "signer": {"keyid": "f" * 64, "ephemeral": False}}
    with pytest.raises(BundleError, match="predicate names signer key"):
        seal_bundle(bundle, predicate, keys.signer)


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("phase", "field 'phase' missing"),
        ("migration_id", "field 'migration_id' missing"),
        ("verdict", "field 'verdict' missing"),
        ("target", "field 'target' missing"),
    ],
)
def test_seal_refuses_a_predicate_the_verifier_could_not_use(
    tmp_path: Path, drop: str, message: str
) -> None:
    bundle = make_bundle(tmp_path)
    predicate = make_predicate(bundle)
    del predicate[drop]
    with pytest.raises(BundleError, match=message):
        seal_bundle(bundle, predicate, None)
    assert not (bundle / ENVELOPE_NAME).exists()


def test_seal_refuses_an_unknown_target_kind(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    predicate = {**make_predicate(bundle), "target": {"kind": "staging"}}
    with pytest.raises(BundleError, match=r"target\.kind"):
        seal_bundle(bundle, predicate, None)


def test_a_failed_seal_leaves_no_envelope_and_no_temporary_file(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    before = sorted(p.name for p in bundle.iterdir())
    predicate = {**make_predicate(bundle), "unserialisable": object()}
    with pytest.raises(TypeError):
        seal_bundle(bundle, predicate, None)
    assert sorted(p.name for p in bundle.iterdir()) == before


def test_sealing_leaves_only_the_envelope_behind(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    before = {p.name for p in bundle.iterdir()}
    seal_bundle(bundle, make_predicate(bundle), None)
    assert {p.name for p in bundle.iterdir()} == before | {ENVELOPE_NAME}


def test_seal_accepts_a_relative_dot_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = make_bundle(tmp_path)
    monkeypatch.chdir(bundle)
    seal_bundle(Path("."), make_predicate(bundle), None)
    assert json.loads((bundle / ENVELOPE_NAME).read_text())["payloadType"] == PAYLOAD_TYPE
    assert read_statement(bundle)["predicate"]["bundle"] == bundle.name


def test_the_private_key_never_lands_in_the_bundle(tmp_path: Path) -> None:
    keys = KeyPair(tmp_path)
    bundle = make_bundle(tmp_path)
    seal_bundle(bundle, make_predicate(bundle), keys.signer)
    for path in bundle.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", "replace")
            assert "PRIVATE KEY" not in text
            assert not any(fragment in text for fragment in keys.secret_fragments()), path


def test_an_interrupted_write_removes_its_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = make_bundle(tmp_path)
    before = sorted(p.name for p in bundle.iterdir())

    def fail(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        seal_bundle(bundle, make_predicate(bundle), None)
    assert sorted(p.name for p in bundle.iterdir()) == before
