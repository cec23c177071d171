"""Bundles checked by a verifier written from the DSSE and in-toto specifications alone.

``spec_dsse`` (in this folder) shares no code with the engine. It must accept every bundle the
engine writes, as it lies, and reject every tampered copy with that tamper's own reason; the
engine's ``verify_bundle`` must reject the same copies and accept the spec-valid ones. Where it
does not yet, the case is marked ``xfail(strict=True)`` naming the issue point that fixes it, or
the disagreement with the specification it shows ("finding").
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import spec_dsse as spec
from bundle_helpers import make_bundle
from bundle_helpers import make_predicate
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.hazmat.primitives.serialization import NoEncryption
from cryptography.hazmat.primitives.serialization import PrivateFormat
from cryptography.hazmat.primitives.serialization import PublicFormat
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from gate_repo import make_gate_repo
from gate_repo import only_run

from pytest_canarygate.keys import generate_keypair
from pytest_canarygate.keys import load_public_key as engine_public_key
from pytest_canarygate.keys import load_signer
from pytest_canarygate.signing import PREDICATE_TYPE
from pytest_canarygate.signing import seal_bundle
from pytest_canarygate.verify import verify_bundle as engine_verify

R = spec.Reason

# --- the verifier's own building blocks, against the specifications' words -------------------


def test_pae_matches_the_dsse_test_vector() -> None:
    # protocol.md, "Test Vectors"
    assert (
        spec.pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters_and_keeps_the_body_verbatim() -> None:
    body = b"\x00 \xff\n"
    assert spec.pae("t/\u00e9", body) == b"DSSEv1 4 t/\xc3\xa9 4 " + body
    assert spec.pae("", b"") == b"DSSEv1 0  0 "


def test_the_dsse_example_envelope_parses_and_a_missing_keyid_is_empty() -> None:
    # protocol.md, "Test Vectors": the result envelope (its signature is ECDSA, not ours)
    raw = (
        b'{"payload": "aGVsbG8gd29ybGQ=", "payloadType": "http://example.com/HelloWorld", '
        b'"signatures": [{"sig": "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUi'
        b'HqJPcIAriEGAHTVeCUjW2JIZA=="}], "unknown": 1}'
    )
    envelope = spec.parse_envelope(raw)
    assert envelope.payload == b"hello world"
    assert envelope.payload_type == "http://example.com/HelloWorld"
    assert [s.keyid for s in envelope.signatures] == [""]
    assert len(envelope.signatures[0].sig) == 64


def test_standard_and_url_safe_base64_both_decode_and_junk_does_not() -> None:
    data = bytes(range(250, 256)) * 3 + b"x"
    standard, urlsafe = base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()
    assert "+" in standard
    assert "-" in urlsafe
    assert urlsafe.endswith("=")
    assert spec.b64decode(standard) == spec.b64decode(urlsafe) == data
    for junk in ("a+b-", "ab cd", "abc$", "a", urlsafe.rstrip("="), "ab=c", "===="):
        with pytest.raises(spec.SpecError):
            spec.b64decode(junk)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"[]", "not a JSON object"),
        (b'{"payloadType": "t", "signatures": []}', "'payload' missing"),
        (b'{"payload": "", "signatures": []}', "'payloadType' missing"),
        (b'{"payload": "", "payloadType": "t"}', "'signatures' missing"),
        (b'{"payload": "", "payloadType": "t", "signatures": [{"keyid": "k"}]}', "no string"),
        (b'{"payload": "", "payloadType": "t", "signatures": [{"sig": "", "keyid": 1}]}', "keyid"),
        (b'{"payload": "", "payload": "", "payloadType": "t", "signatures": []}', "repeats"),
        (b'{"payload": NaN, "payloadType": "t", "signatures": []}', "NaN"),
        (b"\xff", "not UTF-8"),
    ],
)
def test_malformed_envelopes_are_refused(raw: bytes, fragment: str) -> None:
    with pytest.raises(spec.SpecError, match=fragment) as caught:
        spec.parse_envelope(raw)
    assert caught.value.reason is R.ENVELOPE_MALFORMED


def _statement(**changes: Any) -> bytes:
    document: dict[str, Any] = {
        "_type": spec.STATEMENT_V1,
        "subject": [{"name": "run.json", "digest": {"sha256": "a" * 64}}],
        "predicateType": "https://example.com/p/v1",
        "predicate": {},
    }
    document.update(changes)
    return json.dumps({k: v for k, v in document.items() if v is not None}).encode()


def test_a_statement_parses_ignoring_unknown_fields_and_other_digests() -> None:
    statement = spec.parse_statement(
        _statement(
            subject=[{"name": "a/b", "digest": {"sha256": "b" * 64, "sha512": "c"}, "uri": "x"}],
            extra={"ignored": True},
            predicate=None,  # optional: unset is the same as empty
        )
    )
    assert statement.subjects == (spec.Subject("a/b", "b" * 64),)
    assert statement.predicate == {}
    assert statement.predicate_type == "https://example.com/p/v1"


@pytest.mark.parametrize(
    ("changes", "reason", "fragment"),
    [
        ({"_type": "https://in-toto.io/Statement/v0.1"}, R.STATEMENT_MALFORMED, "_type"),
        ({"predicateType": None}, R.STATEMENT_MALFORMED, "predicateType"),
        ({"predicate": []}, R.STATEMENT_MALFORMED, "predicate is not"),
        ({"subject": []}, R.STATEMENT_MALFORMED, "empty"),
        ({"subject": [{"name": "a"}]}, R.SUBJECT_DIGEST, "DigestSet"),
        ({"subject": [{"name": "a", "digest": {"sha256": "A" * 64}}]}, R.SUBJECT_DIGEST, "sha256"),
        ({"subject": [{"name": "a", "digest": {"sha1": "a" * 40}}]}, R.SUBJECT_DIGEST, "sha256"),
        ({"subject": [{"digest": {"sha256": "a" * 64}}]}, R.SUBJECT_NAME, "no string name"),
    ],
)
def test_statements_outside_the_spec_or_the_contract_are_refused(
    changes: dict[str, Any], reason: spec.Reason, fragment: str
) -> None:
    with pytest.raises(spec.SpecError, match=fragment) as caught:
        spec.parse_statement(_statement(**changes))
    assert caught.value.reason is reason


@pytest.mark.parametrize(
    "name",
    ["", "/abs", "../x", "a/../b", "a//b", "./a", "a/", "a\x00b", "\udcff", "statement.dsse.json"],
)
def test_subject_names_must_be_relative_paths_inside_the_bundle(name: str) -> None:
    assert spec.subject_name_problem(name) is not None


@pytest.mark.parametrize(
    "name", ["run.json", "a/b/c.json", "..a", "a..", "html/index.html", "x/statement.dsse.json"]
)
def test_relative_paths_inside_the_bundle_are_subject_names(name: str) -> None:
    assert spec.subject_name_problem(name) is None


# --- public keys ----------------------------------------------------------------------------


def test_the_keygen_json_file_pem_and_raw_bytes_give_the_same_key(tmp_path: Path) -> None:
    private_path = tmp_path / "signing.key"
    keyid = generate_keypair(private_path)
    from_json = spec.load_public_key_file(Path(f"{private_path}.pub.json"))
    private = load_pem_private_key(private_path.read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    public = private.public_key()
    from_pem = spec.load_public_key(
        public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    from_raw = spec.load_public_key(public.public_bytes(Encoding.Raw, PublicFormat.Raw))
    assert from_json.keyid == from_pem.keyid == from_raw.keyid == keyid
    envelope = spec.parse_envelope(json.dumps(spec.sign_envelope("t", b"body", private)).encode())
    for key in (from_json, from_pem, from_raw):
        assert spec.verified_by(envelope, [key]) == keyid


def _keygen_document(tmp_path: Path) -> dict[str, Any]:
    private_path = tmp_path / "signing.key"
    generate_keypair(private_path)
    document: dict[str, Any] = json.loads(Path(f"{private_path}.pub.json").read_text())
    return document


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda d: d["keyval"].update(private="00" * 32), "only 'public'"),
        (lambda d: d.update(keyid="0" * 64), "not the id of the key"),
        (lambda d: d.update(keytype="rsa"), "keytype and scheme"),
        (lambda d: d["keyval"].update(public=d["keyval"]["public"][:-2]), "32 bytes"),
        (lambda d: d.update(comment="x"), "unknown fields"),
    ],
)
def test_key_files_that_are_not_one_public_ed25519_key_are_refused(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], fragment: str
) -> None:
    document = _keygen_document(tmp_path)
    spec.load_public_key(json.dumps(document).encode())  # the untouched file loads
    edit(document)
    with pytest.raises(ValueError, match=fragment):
        spec.load_public_key(json.dumps(document).encode())


def test_private_key_pem_is_refused_where_a_public_key_is_expected() -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    with pytest.raises(ValueError, match="private key material"):
        spec.load_public_key(pem)


# --- tampered copies: each with its own reason, rejected by both verifiers -------------------


@dataclass
class Keys:
    """The trusted key pair of a bundle, as the engine and as the spec verifier load it."""

    private_path: Path
    public_path: Path
    keyid: str

    @property
    def private(self) -> Ed25519PrivateKey:
        key = load_pem_private_key(self.private_path.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key

    def spec_keys(self) -> list[spec.PublicKey]:
        return [spec.load_public_key_file(self.public_path)]

    def engine_keys(self) -> dict[str, Any]:
        return {self.keyid: engine_public_key(self.public_path)}


def _keys(directory: Path) -> Keys:
    private_path = directory / "signing.key"
    keyid = generate_keypair(private_path)
    return Keys(private_path, Path(f"{private_path}.pub.json"), keyid)


def _envelope(bundle: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((bundle / spec.ENVELOPE_FILE).read_bytes())
    return document


def _write_envelope(bundle: Path, document: dict[str, Any]) -> None:
    (bundle / spec.ENVELOPE_FILE).write_text(json.dumps(document, indent=2))


def _statement_of(bundle: Path) -> dict[str, Any]:
    statement: dict[str, Any] = json.loads(base64.b64decode(_envelope(bundle)["payload"]))
    return statement


def _body(statement: dict[str, Any]) -> bytes:
    return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()


def _resign(bundle: Path, keys: Keys, statement: dict[str, Any], payload_type: str) -> None:
    """What a holder of the trusted key (a buggy or subverted writer) could seal."""
    _write_envelope(
        bundle, spec.sign_envelope(payload_type, _body(statement), keys.private, keys.keyid)
    )


def _repayload_unsigned(bundle: Path, statement: dict[str, Any]) -> None:
    """Swap the payload and keep the old signature (what anyone without the key can do)."""
    document = _envelope(bundle)
    document["payload"] = base64.b64encode(_body(statement)).decode()
    _write_envelope(bundle, document)


#: A listed file in a subfolder, in every bundle the engine writes.
IN_SUBFOLDER = "observation/observation.json.gz"


def change_a_byte(bundle: Path, keys: Keys) -> None:
    path = bundle / IN_SUBFOLDER
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def add_a_file(bundle: Path, keys: Keys) -> None:
    (bundle / "observation" / "extra.json").write_text("{}\n")


def add_a_file_with_a_newline_in_its_name(bundle: Path, keys: Keys) -> None:
    (bundle / "observation" / "x\nVALID  all good").write_text("{}\n")


def add_a_file_whose_name_is_not_utf8(bundle: Path, keys: Keys) -> None:
    (bundle / "observation" / os.fsdecode(b"\xff.json")).write_text("{}\n")


def add_a_file_under_html(bundle: Path, keys: Keys) -> None:
    (bundle / "html").mkdir(exist_ok=True)
    (bundle / "html" / "index.html").write_text("<html>all green</html>\n")


def remove_a_file(bundle: Path, keys: Keys) -> None:
    (bundle / "run.json").unlink()


def add_an_empty_folder(bundle: Path, keys: Keys) -> None:
    (bundle / "observation" / "empty").mkdir()


def add_a_symlink(bundle: Path, keys: Keys) -> None:
    (bundle / "observation" / "link.json").symlink_to("../run.json")


def replace_a_file_by_a_symlink_to_its_copy(bundle: Path, keys: Keys) -> None:
    path = bundle / IN_SUBFOLDER
    copy = bundle.parent / f"{bundle.name}.copy.json"
    shutil.copyfile(path, copy)
    path.unlink()
    path.symlink_to(copy)


def add_an_html_symlink(bundle: Path, keys: Keys) -> None:
    (bundle / "html").symlink_to(bundle.parent, target_is_directory=True)


def add_a_fifo(bundle: Path, keys: Keys) -> None:
    os.mkfifo(bundle / "observation" / "pipe")


def replace_a_file_by_a_fifo(bundle: Path, keys: Keys) -> None:
    path = bundle / IN_SUBFOLDER
    path.unlink()
    os.mkfifo(path)


def replace_the_envelope_by_a_fifo(bundle: Path, keys: Keys) -> None:
    (bundle / spec.ENVELOPE_FILE).unlink()
    os.mkfifo(bundle / spec.ENVELOPE_FILE)


def replace_the_envelope_by_a_symlink(bundle: Path, keys: Keys) -> None:
    envelope = bundle / spec.ENVELOPE_FILE
    copy = bundle.parent / f"{bundle.name}.envelope.json"
    shutil.copyfile(envelope, copy)
    envelope.unlink()
    envelope.symlink_to(copy)


def remove_the_envelope(bundle: Path, keys: Keys) -> None:
    (bundle / spec.ENVELOPE_FILE).unlink()


def repeat_the_payload_member(bundle: Path, keys: Keys) -> None:
    """A first ``payload`` that a first-wins reader takes, before the signed one."""
    document = _envelope(bundle)
    forged = base64.b64encode(b'{"_type": "https://in-toto.io/Statement/v1"}').decode()
    text = json.dumps(document)
    (bundle / spec.ENVELOPE_FILE).write_text(f'{{"payload": "{forged}", {text[1:]}')


def strip_the_signatures(bundle: Path, keys: Keys) -> None:
    document = _envelope(bundle)
    document["signatures"] = []
    _write_envelope(bundle, document)


def change_the_payload(bundle: Path, keys: Keys) -> None:
    statement = _statement_of(bundle)
    statement["predicate"].update(verdict="PASS", promotable=True, not_promotable_because=[])
    statement["predicate"]["forged"] = True  # the bytes differ even where it said PASS already
    _repayload_unsigned(bundle, statement)


def sign_with_another_key(bundle: Path, keys: Keys) -> None:
    other = Ed25519PrivateKey.generate()
    otherid = spec.keyid_of(other.public_key())
    document = _envelope(bundle)
    payload = base64.b64decode(document["payload"])
    _write_envelope(bundle, spec.sign_envelope(document["payloadType"], payload, other, otherid))


def change_the_payload_type(bundle: Path, keys: Keys) -> None:
    document = _envelope(bundle)
    document["payloadType"] = "application/json"
    _write_envelope(bundle, document)


def resign_under_another_payload_type(bundle: Path, keys: Keys) -> None:
    _resign(bundle, keys, _statement_of(bundle), "application/json")


def _edit_subjects(edit: Callable[[list[dict[str, Any]]], None]) -> Callable[[Path, Keys], None]:
    def tamper(bundle: Path, keys: Keys) -> None:
        statement = _statement_of(bundle)
        edit(statement["subject"])
        _resign(bundle, keys, statement, spec.IN_TOTO_PAYLOAD_TYPE)

    return tamper


def _edit_digest(subjects: list[dict[str, Any]]) -> None:
    subject = next(s for s in subjects if s["name"] == "run.json")
    subject["digest"]["sha256"] = hashlib.sha256(b"another run.json").hexdigest()


def edit_a_digest_unsigned(bundle: Path, keys: Keys) -> None:
    statement = _statement_of(bundle)
    _edit_digest(statement["subject"])
    _repayload_unsigned(bundle, statement)


def _outside(subjects: list[dict[str, Any]], name: str) -> None:
    subjects.append({"name": name, "digest": {"sha256": hashlib.sha256(b"{}\n").hexdigest()}})


def _twice(subjects: list[dict[str, Any]]) -> None:
    subjects.append(json.loads(json.dumps(next(s for s in subjects if s["name"] == "run.json"))))


@dataclass(frozen=True)
class Tamper:
    """A way to tamper with a sealed bundle, and the only reasons the spec verifier may give."""

    apply: Callable[[Path, Keys], None]
    reasons: frozenset[spec.Reason]


def _t(apply: Callable[[Path, Keys], None], *reasons: spec.Reason) -> Tamper:
    return Tamper(apply, frozenset(reasons))


TAMPERS: dict[str, Tamper] = {
    "changed-file": _t(change_a_byte, R.DIGEST_MISMATCH),
    "extra-file": _t(add_a_file, R.UNLISTED_FILE),
    "extra-file-newline-name": _t(add_a_file_with_a_newline_in_its_name, R.UNLISTED_FILE),
    "extra-file-non-utf8-name": _t(add_a_file_whose_name_is_not_utf8, R.UNLISTED_FILE),
    "extra-file-under-html": _t(add_a_file_under_html, R.UNLISTED_FILE),
    "missing-file": _t(remove_a_file, R.MISSING_FILE),
    "extra-empty-folder": _t(add_an_empty_folder, R.EMPTY_FOLDER),
    "symlink": _t(add_a_symlink, R.SYMLINK),
    "file-replaced-by-symlink": _t(replace_a_file_by_a_symlink_to_its_copy, R.SYMLINK),
    "html-symlink": _t(add_an_html_symlink, R.SYMLINK),
    "fifo": _t(add_a_fifo, R.SPECIAL_FILE),
    "file-replaced-by-fifo": _t(replace_a_file_by_a_fifo, R.SPECIAL_FILE),
    "envelope-fifo": _t(replace_the_envelope_by_a_fifo, R.ENVELOPE_NOT_REGULAR),
    "envelope-symlink": _t(replace_the_envelope_by_a_symlink, R.ENVELOPE_NOT_REGULAR),
    "envelope-missing": _t(remove_the_envelope, R.ENVELOPE_MISSING),
    "unsigned": _t(strip_the_signatures, R.NOT_SIGNED),
    "envelope-member-repeated": _t(repeat_the_payload_member, R.ENVELOPE_MALFORMED),
    "payload-changed": _t(change_the_payload, R.BAD_SIGNATURE),
    "another-key": _t(sign_with_another_key, R.UNTRUSTED_SIGNER),
    "payload-type-changed": _t(change_the_payload_type, R.BAD_SIGNATURE, R.PAYLOAD_TYPE),
    "payload-type-resigned": _t(resign_under_another_payload_type, R.PAYLOAD_TYPE),
    "digest-edited": _t(edit_a_digest_unsigned, R.BAD_SIGNATURE),
    "digest-edited-resigned": _t(_edit_subjects(_edit_digest), R.DIGEST_MISMATCH),
    "subject-twice": _t(_edit_subjects(_twice), R.SUBJECT_DUPLICATE),
    "subject-dotdot": _t(_edit_subjects(lambda s: _outside(s, "../x")), R.SUBJECT_NAME),
    "subject-absolute": _t(_edit_subjects(lambda s: _outside(s, "/abs")), R.SUBJECT_NAME),
}


@dataclass(frozen=True)
class Sealed:
    bundle: Path
    keys: Keys


@pytest.fixture
def sealed(tmp_path: Path) -> Sealed:
    """A bundle laid out like a run's (files in subfolders), sealed by the engine."""
    keys = _keys(tmp_path / "keys")
    bundle = make_bundle(tmp_path)
    seal_bundle(bundle, make_predicate(bundle), load_signer(keys.private_path))
    return Sealed(bundle, keys)


def _spec_verify(bundle: Path, keys: Keys) -> spec.Report:
    return spec.verify_bundle(bundle, keys.spec_keys(), predicate_type=PREDICATE_TYPE)


def test_the_hand_sealed_bundle_is_accepted_by_both(sealed: Sealed) -> None:
    report = _spec_verify(sealed.bundle, sealed.keys)
    assert report.ok, [str(p) for p in report.problems]
    assert report.signed_by == sealed.keys.keyid
    assert report.statement is not None
    assert {s.name for s in report.statement.subjects} == {
        "allure-results/0b1c-result.json",
        "allure-results/9f2e-attachment.json",
        "allure-results/environment.properties",
        "observation/observation.json.gz",
        "run.json",
    }
    assert engine_verify(sealed.bundle, sealed.keys.engine_keys()).ok


@pytest.mark.parametrize("name", list(TAMPERS))
def test_the_spec_verifier_rejects_each_tampered_copy_for_its_own_reason(
    sealed: Sealed, name: str
) -> None:
    tamper = TAMPERS[name]
    tamper.apply(sealed.bundle, sealed.keys)
    report = _spec_verify(sealed.bundle, sealed.keys)
    assert not report.ok
    assert report.reasons == tamper.reasons, [str(p) for p in report.problems]


@pytest.mark.parametrize("name", list(TAMPERS))
def test_the_engine_rejects_each_tampered_copy_too(sealed: Sealed, name: str) -> None:
    TAMPERS[name].apply(sealed.bundle, sealed.keys)
    result = engine_verify(sealed.bundle, sealed.keys.engine_keys())
    assert not result.ok, f"engine accepted the {name!r} copy"


def test_a_bundle_reached_through_a_symlink_is_refused(sealed: Sealed, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(sealed.bundle, target_is_directory=True)
    assert _spec_verify(link, sealed.keys).reasons == {R.SYMLINK}
    assert _spec_verify(sealed.bundle, sealed.keys).ok


def test_the_problem_names_the_file_at_fault(sealed: Sealed) -> None:
    add_a_fifo(sealed.bundle, sealed.keys)
    change_a_byte(sealed.bundle, sealed.keys)
    problems = {(p.reason, p.where) for p in _spec_verify(sealed.bundle, sealed.keys).problems}
    assert problems == {
        (R.SPECIAL_FILE, "observation/pipe"),
        (R.DIGEST_MISMATCH, "observation/observation.json.gz"),
    }


# --- spec-valid envelopes written by someone else ---------------------------------------------


def _reencode_url_safe(document: dict[str, Any]) -> None:
    for signature in document["signatures"]:
        signature["sig"] = base64.urlsafe_b64encode(base64.b64decode(signature["sig"])).decode()
    document["payload"] = base64.urlsafe_b64encode(base64.b64decode(document["payload"])).decode()


def _drop_keyids(document: dict[str, Any]) -> None:
    for signature in document["signatures"]:
        del signature["keyid"]


def _add_a_foreign_signature(document: dict[str, Any]) -> None:
    other = Ed25519PrivateKey.generate()
    payload = base64.b64decode(document["payload"])
    forged = spec.sign_envelope(document["payloadType"], payload, other, "someone-else")
    document["signatures"] += forged["signatures"]


def _repeat_the_signature(document: dict[str, Any]) -> None:
    document["signatures"].append(dict(document["signatures"][0]))


_ENGINE_REFUSES = "finding: the engine refuses this spec-valid envelope as MALFORMED"
REENCODINGS: dict[str, tuple[Callable[[dict[str, Any]], None], str | None]] = {
    "url-safe-base64": (_reencode_url_safe, None),
    "extra-foreign-signature": (_add_a_foreign_signature, None),
    # envelope.md: keyid is optional, "an unset field MUST be treated the same as set-but-empty"
    "no-keyid": (_drop_keyids, f"{_ENGINE_REFUSES} (it requires a keyid)"),
    # envelope.md "Multiple signatures": nothing forbids two signatures under one keyid
    "keyid-twice": (_repeat_the_signature, f"{_ENGINE_REFUSES} (one signature per keyid)"),
}


@pytest.mark.parametrize("name", list(REENCODINGS))
def test_the_spec_verifier_accepts_a_spec_valid_re_encoding(sealed: Sealed, name: str) -> None:
    document = _envelope(sealed.bundle)
    REENCODINGS[name][0](document)
    _write_envelope(sealed.bundle, document)
    report = _spec_verify(sealed.bundle, sealed.keys)
    assert report.ok, [str(p) for p in report.problems]
    assert report.signed_by == sealed.keys.keyid


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name,
            marks=[pytest.mark.xfail(strict=True, raises=AssertionError, reason=gap)]
            if gap
            else [],
        )
        for name, (_, gap) in REENCODINGS.items()
    ],
)
def test_the_engine_accepts_a_spec_valid_re_encoding(sealed: Sealed, name: str) -> None:
    document = _envelope(sealed.bundle)
    REENCODINGS[name][0](document)
    _write_envelope(sealed.bundle, document)
    result = engine_verify(sealed.bundle, sealed.keys.engine_keys())
    assert result.ok, result.problems


# --- bundles the engine writes, as they lie ---------------------------------------------------


def _fake_allure(directory: Path) -> Path:
    """An executable that answers like Allure 3 and writes a small report."""
    script = directory / "fake-allure"
    script.write_text(
        f"#!{sys.executable}\n"
        "import pathlib, sys\n"
        "args = sys.argv[1:]\n"
        "if args == ['--version']:\n    print('3.18.0'); sys.exit(0)\n"
        "out = pathlib.Path(args[args.index('--output') + 1])\n"
        "out.mkdir(parents=True, exist_ok=True)\n"
        "(out / 'index.html').write_text('<html><body>report</body></html>')\n"
    )
    script.chmod(0o755)
    return script


def test_a_bundle_after_canarygate_html_is_accepted(sealed: Sealed, tmp_path: Path) -> None:
    """`canarygate html` writes its report beside the bundle: the bundle still holds exactly
    its subjects, so a spec-only verifier accepts it as it lies."""
    from pytest_canarygate.report_html import render_html

    report_path = render_html(
        sealed.bundle, trusted_keys=sealed.keys.engine_keys(), allure=_fake_allure(tmp_path)
    )
    assert report_path.is_file()
    assert not report_path.is_relative_to(sealed.bundle)
    report = _spec_verify(sealed.bundle, sealed.keys)
    assert report.ok, [str(p) for p in report.problems]


def _run(pytester: pytest.Pytester, *args: str) -> tuple[Path, pytest.RunResult]:
    make_gate_repo(pytester)
    result = pytester.runpytest_subprocess("--phase=alpha", *args)
    bundle, _ = only_run(pytester.path)
    return bundle, result


def _accepted(bundle: Path, keys: list[spec.PublicKey]) -> spec.Statement:
    report = spec.verify_bundle(bundle, keys, predicate_type=PREDICATE_TYPE)
    assert report.ok, [str(p) for p in report.problems]
    assert report.signed_by == keys[0].keyid
    assert report.statement is not None
    names = {s.name for s in report.statement.subjects}
    assert {"run.json", IN_SUBFOLDER} <= names
    assert any(name.startswith("allure-results/") for name in names)
    return report.statement


def _copy(bundle: Path, root: Path) -> Path:
    """``bundle`` copied (links as links) to the same reports/<migration>/<phase>/ place."""
    copy = root / Path(*bundle.parts[-4:])
    shutil.copytree(bundle, copy, symlinks=True)
    return copy


def test_a_signed_alpha_run_is_accepted_and_every_tampered_copy_refused(
    pytester: pytest.Pytester,
) -> None:
    keys = _keys(pytester.path / "k")
    bundle, result = _run(
        pytester, "--canarygate-sim=healthy", f"--canarygate-key={keys.private_path}"
    )
    assert result.ret == 0
    statement = _accepted(bundle, keys.spec_keys())
    assert statement.predicate["phase"] == "alpha"
    assert statement.predicate["verdict"] == "pass"
    assert statement.predicate["signer"] == {"keyid": keys.keyid, "ephemeral": False}

    wrong: dict[str, object] = {}
    for index, (name, tamper) in enumerate(TAMPERS.items()):
        copy = _copy(bundle, pytester.path / "copies" / str(index))
        assert spec.verify_bundle(copy, keys.spec_keys()).ok  # the copy itself is intact
        tamper.apply(copy, keys)
        reasons = spec.verify_bundle(copy, keys.spec_keys()).reasons
        if reasons != tamper.reasons:
            wrong[name] = sorted(reasons)
        if engine_verify(copy, keys.engine_keys()).ok:
            wrong[name] = "the engine accepted it"
    assert wrong == {}


def test_a_failing_run_signed_with_an_ephemeral_key_is_accepted(pytester: pytest.Pytester) -> None:
    bundle, result = _run(pytester, "--canarygate-sim=title-decayed")
    assert result.ret != 0
    key = spec.load_public_key_file(bundle.with_name(f"{bundle.name}.ephemeral.pub.json"))
    statement = _accepted(bundle, [key])
    assert statement.predicate["verdict"] == "fail"
    assert statement.predicate["signer"]["ephemeral"] is True
    assert bundle.name.endswith("-fail")


def test_a_run_under_xdist_is_accepted(pytester: pytest.Pytester) -> None:
    keys = _keys(pytester.path / "k")
    bundle, result = _run(
        pytester, "--canarygate-sim=healthy", "-n", "2", f"--canarygate-key={keys.private_path}"
    )
    assert result.ret == 0
    statement = _accepted(bundle, keys.spec_keys())
    results = {s.name for s in statement.subjects if s.name.endswith("-result.json")}
    assert len(results) == len(statement.predicate["gates"]) > 1
