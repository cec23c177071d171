"""Offline verification: round trip, each tamper case with its own message, CLI exit codes."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bundle_helpers import KeyPair
from bundle_helpers import make_bundle
from bundle_helpers import make_predicate
from bundle_helpers import read_envelope
from bundle_helpers import read_statement
from bundle_helpers import secret_fragments
from bundle_helpers import write_envelope
from securesystemslib.dsse import Envelope

from pytest_canarygate.cli import main
from pytest_canarygate.keys import load_signer
from pytest_canarygate.signing import ENVELOPE_NAME
from pytest_canarygate.signing import seal_bundle
from pytest_canarygate.verify import EXIT_INVALID
from pytest_canarygate.verify import EXIT_MALFORMED
from pytest_canarygate.verify import EXIT_USAGE
from pytest_canarygate.verify import EXIT_VALID
from pytest_canarygate.verify import SIMULATED_WARNING
from pytest_canarygate.verify import Status
from pytest_canarygate.verify import VerifyResult
from pytest_canarygate.verify import format_result
from pytest_canarygate.verify import verify_bundle


@pytest.fixture
def keys(tmp_path: Path) -> KeyPair:
    return KeyPair(tmp_path / "keys")


@pytest.fixture
def sealed(tmp_path: Path, keys: KeyPair) -> Path:
    bundle = make_bundle(tmp_path)
    seal_bundle(bundle, make_predicate(bundle), keys.signer)
    return bundle


def _invalid(result: VerifyResult, expected: str) -> None:
    assert result.status is Status.INVALID, result.problems
    assert result.exit_code == EXIT_INVALID
    assert any(expected in problem for problem in result.problems), result.problems


def _repayload(bundle: Path, statement: dict[str, Any]) -> None:
    document = read_envelope(bundle)
    document["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    write_envelope(bundle, document)


def test_sign_and_verify_round_trip(sealed: Path, keys: KeyPair) -> None:
    result = verify_bundle(sealed, keys.trusted, expected_phase="canary")

    assert result.status is Status.VALID, result.problems
    assert result.ok
    assert result.exit_code == EXIT_VALID
    assert result.problems == []
    assert result.signer_keyid == keys.keyid
    assert result.predicate is not None
    assert result.predicate["bundle"] == sealed.name
    assert result.statement is not None
    assert len(result.statement["subject"]) == 5


def test_one_changed_byte_fails_naming_the_file(sealed: Path, keys: KeyPair) -> None:
    path = sealed / "allure-results" / "0b1c-result.json"
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    path.write_bytes(bytes(data))

    result = verify_bundle(sealed, keys.trusted)

    _invalid(
        result,
        "allure-results/0b1c-result.json: sha256 mismatch (bundle was modified after signing)",
    )
    assert len(result.problems) == 1


def test_an_extra_file_fails(sealed: Path, keys: KeyPair) -> None:
    (sealed / "allure-results" / "planted-result.json").write_text("{}")
    _invalid(
        verify_bundle(sealed, keys.trusted),
        "allure-results/planted-result.json: present but not listed in the statement",
    )


def test_a_missing_file_fails(sealed: Path, keys: KeyPair) -> None:
    (sealed / "observation" / "observation.json.gz").unlink()
    _invalid(
        verify_bundle(sealed, keys.trusted),
        "observation/observation.json.gz: listed in the statement but missing",
    )


def test_an_edited_payload_fails_the_signature(sealed: Path, keys: KeyPair) -> None:
    statement = read_statement(sealed)
    statement["predicate"]["verdict"] = "FAIL-made-to-look-PASS"
    _repayload(sealed, statement)

    result = verify_bundle(sealed, keys.trusted)

    _invalid(result, f"signature by key {keys.keyid} does not verify")
    assert result.signer_keyid is None


def test_a_changed_payload_type_fails(sealed: Path, keys: KeyPair) -> None:
    document = read_envelope(sealed)
    document["payloadType"] = "application/json"
    write_envelope(sealed, document)

    result = verify_bundle(sealed, keys.trusted)

    _invalid(
        result,
        f"{ENVELOPE_NAME}: payloadType is 'application/json', "
        "expected 'application/vnd.in-toto+json'",
    )
    _invalid(result, "does not verify")


def test_a_wrong_key_fails_as_untrusted(sealed: Path, keys: KeyPair, tmp_path: Path) -> None:
    other = KeyPair(tmp_path / "other")
    _invalid(
        verify_bundle(sealed, other.trusted),
        f"signed by key {keys.keyid}, which is not trusted",
    )


def test_a_forged_keyid_label_does_not_help(sealed: Path, keys: KeyPair, tmp_path: Path) -> None:
    forger = KeyPair(tmp_path / "forger")
    forged = make_bundle(tmp_path / "forged")
    seal_bundle(forged, make_predicate(forged), forger.signer)
    document = read_envelope(forged)
    document["signatures"][0]["keyid"] = keys.keyid  # claim to be the trusted key
    write_envelope(forged, document)

    _invalid(verify_bundle(forged, keys.trusted), f"signature by key {keys.keyid} does not verify")


def test_an_envelope_moved_to_another_bundle_with_identical_files_fails(
    tmp_path: Path, keys: KeyPair
) -> None:
    first = make_bundle(tmp_path, name="20250101T000000Z-PASS")
    second = make_bundle(tmp_path, name="20250102T000000Z-PASS")  # the very same files
    seal_bundle(first, make_predicate(first), keys.signer)
    seal_bundle(second, make_predicate(second), keys.signer)
    assert verify_bundle(second, keys.trusted).ok

    shutil.copy(first / ENVELOPE_NAME, second / ENVELOPE_NAME)

    _invalid(
        verify_bundle(second, keys.trusted),
        f"{ENVELOPE_NAME}: sealed for bundle '20250101T000000Z-PASS' but found in directory "
        "'20250102T000000Z-PASS' (envelope moved to another bundle",
    )


def test_a_bundle_moved_to_another_phase_fails(sealed: Path, keys: KeyPair, tmp_path: Path) -> None:
    moved = tmp_path / "reports" / "agtmux-v4-v5" / "cutover" / sealed.name
    moved.parent.mkdir(parents=True)
    shutil.copytree(sealed, moved)
    _invalid(
        verify_bundle(moved, keys.trusted),
        "sealed for phase 'canary' but the bundle sits under agtmux-v4-v5/cutover/",
    )


def test_a_bundle_moved_to_another_migration_fails(
    sealed: Path, keys: KeyPair, tmp_path: Path
) -> None:
    moved = tmp_path / "reports" / "other-migration" / "canary" / sealed.name
    moved.parent.mkdir(parents=True)
    shutil.copytree(sealed, moved)
    _invalid(verify_bundle(moved, keys.trusted), "sealed for migration 'agtmux-v4-v5'")


def test_a_bundle_copied_outside_a_migration_tree_verifies_and_says_it_is_not_bound(
    sealed: Path, keys: KeyPair, tmp_path: Path
) -> None:
    copy = tmp_path / "audit" / "inbox" / sealed.name
    shutil.copytree(sealed, copy)
    result = verify_bundle(copy, keys.trusted)
    assert result.ok
    assert len(result.notes) == 1
    assert "not bound to a place: it sits in audit/inbox/" in result.notes[0]
    assert "note: not bound to a place" in format_result(result)
    assert not verify_bundle(sealed, keys.trusted).notes  # in its own folders it is bound


@pytest.mark.parametrize("root", ["reports", "evidence", "archive-2026"])
def test_the_phase_binding_holds_whatever_the_root_is_called(
    sealed: Path, keys: KeyPair, tmp_path: Path, root: str
) -> None:
    migration = sealed.parent.parent.name
    moved = tmp_path / root / migration / "cutover" / sealed.name
    shutil.copytree(sealed, moved)
    _invalid(verify_bundle(moved, keys.trusted), "sealed for phase 'canary' but the bundle sits")
    other = tmp_path / f"{root}-2" / "another-migration" / sealed.parent.name / sealed.name
    shutil.copytree(sealed, other)
    _invalid(verify_bundle(other, keys.trusted), "sealed for migration")


def test_an_unsigned_bundle_is_invalid_not_signed(tmp_path: Path, keys: KeyPair) -> None:
    bundle = make_bundle(tmp_path)
    seal_bundle(bundle, make_predicate(bundle), None)
    _invalid(verify_bundle(bundle, keys.trusted), "not signed")


def test_a_symlink_planted_in_a_bundle_fails(sealed: Path, keys: KeyPair) -> None:
    target = sealed / "run.json"
    (sealed / "run.json").rename(sealed / "run.real")
    (sealed / "run.json").symlink_to(target.with_name("run.real"))
    result = verify_bundle(sealed, keys.trusted)
    _invalid(result, "run.json: is a symbolic link")
    assert not any("run.json: listed in the statement but missing" in p for p in result.problems)


@pytest.mark.parametrize(
    ("plant", "reason"),
    [
        ("html/index.html", "html/index.html: present but not listed in the statement"),
        ("empty-folder/", "empty-folder: is an empty folder"),
        ("allure-results/nested/", "allure-results/nested: is an empty folder"),
        ("html->", "html: is a symbolic link"),
        ("fifo", "fifo: is not a regular file"),
        ("observation/fifo", "observation/fifo: is not a regular file"),
    ],
)
def test_a_bundle_holds_its_subjects_and_envelope_and_nothing_else(
    sealed: Path, keys: KeyPair, tmp_path: Path, plant: str, reason: str
) -> None:
    """The rendering goes beside a bundle, so nothing inside it is ever tolerated: any DSSE
    verifier then accepts an untampered bundle as it lies. A FIFO is judged without opening
    it (this test would hang otherwise)."""
    target = sealed / plant.rstrip("/").removesuffix("->")
    target.parent.mkdir(parents=True, exist_ok=True)
    if plant.endswith("/"):
        target.mkdir()
    elif plant.endswith("->"):
        (tmp_path / "elsewhere").mkdir()
        target.symlink_to(tmp_path / "elsewhere")
    elif plant.endswith("fifo"):
        os.mkfifo(target)
    else:
        target.write_text("<html>forged</html>")
    _invalid(verify_bundle(sealed, keys.trusted), reason)


def test_an_envelope_that_is_a_fifo_is_refused_without_waiting(sealed: Path, keys: KeyPair) -> None:
    (sealed / ENVELOPE_NAME).unlink()
    os.mkfifo(sealed / ENVELOPE_NAME)
    _invalid(verify_bundle(sealed, keys.trusted), f"{ENVELOPE_NAME}: is not a regular file")


@pytest.mark.parametrize(
    "name", ["evil\nVALID  all good", "\x1b[32mgreen\x1b[0m", "rtl\u202eexe.json"]
)
def test_file_names_from_a_bundle_are_printed_escaped(
    sealed: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    (sealed / name).write_text("planted")
    code = main(["verify", str(sealed), "--key", str(keys.public_path)])
    out = capsys.readouterr().out
    assert code == EXIT_INVALID
    assert out.startswith("INVALID  ")
    assert "\x1b" not in out
    assert "\u202e" not in out
    assert not any(line.startswith("VALID") for line in out.splitlines())
    assert len(out.splitlines()) == 2  # the headline and one problem, on one line each
    assert name.encode("unicode_escape").decode()[:4] in out or "\\x" in out


def test_text_from_a_valid_bundle_is_printed_escaped(
    tmp_path: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = make_bundle(tmp_path)
    predicate = {
        **make_predicate(bundle),
        "promotable": False,
        "not_promotable_because": ["x\nVALID  forged line", "\x1b]0;title\x07"],
    }
    seal_bundle(bundle, predicate, keys.signer)
    assert main(["verify", str(bundle), "--key", str(keys.public_path)]) == EXIT_VALID
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\x07" not in out
    assert not any(line.startswith("VALID  forged") for line in out.splitlines())
    assert "x\\x0aVALID  forged line" in out
    assert main(["verify", str(bundle), "--key", str(keys.public_path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["summary"]["not_promotable_because"][0] == "x\nVALID  forged line"


def test_expected_phase_and_migration_are_enforced(sealed: Path, keys: KeyPair) -> None:
    _invalid(
        verify_bundle(sealed, keys.trusted, expected_phase="cutover"),
        "predicate: phase is 'canary', expected 'cutover' (--phase)",
    )
    _invalid(
        verify_bundle(sealed, keys.trusted, expected_migration="other"),
        "predicate: migration_id is 'agtmux-v4-v5', expected 'other' (--migration)",
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON (Expecting property name"),
        (b'{"payload": "a", "payload": "b"}', 'duplicate key "payload"'),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b"[]", "expected a JSON object"),
        (b'{"payloadType": "x", "signatures": []}', "field 'payload' missing"),
        (b'{"payload": "", "payloadType": "x"}', "field 'signatures' missing"),
        (b'{"payload": "", "payloadType": "x", "signatures": [{}]}', "signatures[0] needs"),
        (b'{"payload": "%%%", "payloadType": "x", "signatures": []}', "not a decodable DSSE"),
    ],
)
def test_a_malformed_envelope_is_malformed(
    sealed: Path, keys: KeyPair, content: bytes, message: str
) -> None:
    (sealed / ENVELOPE_NAME).write_bytes(content)
    result = verify_bundle(sealed, keys.trusted)
    assert result.status is Status.MALFORMED
    assert result.exit_code == EXIT_MALFORMED
    assert any(message in problem for problem in result.problems), result.problems


def test_a_directory_without_envelope_is_malformed(tmp_path: Path, keys: KeyPair) -> None:
    bundle = make_bundle(tmp_path)
    result = verify_bundle(bundle, keys.trusted)
    assert result.status is Status.MALFORMED
    assert result.problems == [f"{ENVELOPE_NAME}: missing (not a sealed evidence bundle)"]
    assert verify_bundle(tmp_path / "nope", keys.trusted).status is Status.MALFORMED


def test_a_signed_payload_that_is_not_our_statement_is_malformed(
    tmp_path: Path, keys: KeyPair
) -> None:
    bundle = make_bundle(tmp_path)
    seal_bundle(bundle, make_predicate(bundle), keys.signer)
    statement = read_statement(bundle)
    statement["predicateType"] = "https://slsa.dev/provenance/v1"
    _repayload(bundle, statement)
    document = read_envelope(bundle)
    document["signatures"] = []
    write_envelope(bundle, document)
    # Re-sign the foreign statement properly with the trusted key: signature fine, content not ours.
    envelope = Envelope.from_dict(document)
    envelope.sign(keys.signer)
    write_envelope(bundle, envelope.to_dict())

    result = verify_bundle(bundle, keys.trusted)

    assert result.status is Status.MALFORMED, result.problems
    assert any("predicateType is 'https://slsa.dev/provenance/v1'" in p for p in result.problems)


def test_subject_paths_escaping_the_bundle_are_rejected(tmp_path: Path, keys: KeyPair) -> None:
    bundle = make_bundle(tmp_path)
    seal_bundle(bundle, make_predicate(bundle), None)
    statement = read_statement(bundle)
    statement["subject"].append({"name": "../../etc/passwd", "digest": {"sha256": "0" * 64}})
    _repayload(bundle, statement)
    result = verify_bundle(bundle, keys.trusted)
    assert any("'../../etc/passwd' is not a bundle file path" in p for p in result.problems)


# --- the command line -------------------------------------------------------------------------


def test_cli_valid_bundle_prints_a_summary(
    tmp_path: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = make_bundle(tmp_path)
    gates = [
        {"gate": "test_parity", "item": "C-1", "verdict": "PASS", "nodeid": "g::p"},
        {"gate": "test_hold_down", "item": "C-7", "verdict": "FAIL", "nodeid": "g::h"},
        {"gate": "test_ledger", "item": "C-9", "verdict": "UNOBSERVABLE", "nodeid": "g::l"},
    ]
    seal_bundle(bundle, make_predicate(bundle, gates=gates), keys.signer)

    code = main(["verify", str(bundle), "--key", str(keys.public_path), "--phase", "canary"])

    out = capsys.readouterr().out
    assert code == EXIT_VALID
    assert out.startswith(f"VALID  {bundle}")
    for text in ("agtmux-v4-v5", "canary", "complete", "2025-01-01T00:05:00Z", keys.keyid):
        assert text in out
    assert "1 FAIL, 1 PASS, 1 UNOBSERVABLE" in out
    assert "C-7 (test_hold_down): FAIL" in out
    assert "C-9 (test_ledger): UNOBSERVABLE" in out
    assert "C-1 (test_parity)" not in out
    assert SIMULATED_WARNING not in out


def test_cli_simulated_bundle_is_valid_but_never_a_sign_off(
    tmp_path: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = make_bundle(tmp_path)
    seal_bundle(bundle, make_predicate(bundle, kind="simulated", ephemeral=True), keys.signer)
    assert main(["verify", str(bundle), "--key", str(keys.public_path)]) == EXIT_VALID
    out = capsys.readouterr().out
    assert "SIMULATED — never sign-off for a real migration" in out
    assert "EPHEMERAL KEY" in out
    assert "simulated (scenario healthy)" in out


def test_cli_json_output(sealed: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(sealed), "--key", str(keys.public_path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["status"] == "VALID"
    assert document["exit_code"] == 0
    assert document["signer_keyid"] == keys.keyid
    summary = document["summary"]
    assert summary["phase"] == "canary"
    assert summary["migration"] == "agtmux-v4-v5"
    assert summary["gate_counts"] == {"PASS": 1, "WAIVED": 1}
    assert summary["blocking"] == []
    assert summary["simulated"] is False


def test_cli_exit_codes(
    sealed: Path, keys: KeyPair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    shutil.copy(keys.public_path, trusted)
    assert main(["verify", str(sealed), "--trusted-keys", str(trusted)]) == EXIT_VALID

    (sealed / "run.json").write_text("tampered")
    assert main(["verify", str(sealed), "--key", str(keys.public_path)]) == EXIT_INVALID
    assert "run.json: sha256 mismatch" in capsys.readouterr().out

    (sealed / ENVELOPE_NAME).write_text("garbage")
    assert main(["verify", str(sealed), "--key", str(keys.public_path), "--json"]) == 3
    assert json.loads(capsys.readouterr().out)["status"] == "MALFORMED"

    assert main(["verify", str(sealed), "--key", str(tmp_path / "missing.json")]) == EXIT_USAGE
    assert "missing.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as excinfo:
        main(["verify", str(sealed)])  # neither --key nor --trusted-keys
    assert excinfo.value.code == EXIT_USAGE


def test_cli_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    out = capsys.readouterr().out
    for line in ("0  valid", "1  invalid", "2  usage error", "3  malformed"):
        assert line in out


def test_installed_console_script_verifies(sealed: Path, keys: KeyPair) -> None:
    script = shutil.which("canarygate", path=str(Path(sys.executable).parent))
    assert script, "the canarygate console script is not installed next to this Python"
    command = [script, "verify", str(sealed), "--key", str(keys.public_path)]

    ok = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert ok.returncode == EXIT_VALID, ok.stdout + ok.stderr
    (sealed / "run.json").write_text("tampered")
    bad = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert bad.returncode == EXIT_INVALID
    assert "run.json: sha256 mismatch" in bad.stdout


def test_the_private_key_never_appears_in_any_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private = tmp_path / "k.pem"
    assert main(["keygen", str(private)]) == 0
    keys_out = capsys.readouterr()
    bundle = make_bundle(tmp_path)
    seal_bundle(bundle, make_predicate(bundle), load_signer(private))
    main(["verify", str(bundle), "--key", f"{private}.pub.json"])
    main(["verify", str(bundle), "--key", f"{private}.pub.json", "--json"])
    main(["verify", str(bundle), "--key", str(private)])  # the private key by mistake
    verify_out = capsys.readouterr()

    everything = keys_out.out + keys_out.err + verify_out.out + verify_out.err
    everything += "".join(
        p.read_bytes().decode("utf-8", "replace") for p in bundle.rglob("*") if p.is_file()
    )
    assert "PRIVATE KEY-----" not in everything
    for fragment in secret_fragments(private):
        assert fragment not in everything


def test_a_statement_that_does_not_claim_promotable_is_shown_as_not_promotable(
    sealed: Path, keys: KeyPair
) -> None:
    """Bundles built by these tests carry no 'promotable' key: verify must not assume one."""
    result = verify_bundle(sealed, keys.trusted)
    assert result.ok
    assert "promotable: NO: the statement does not say it is" in format_result(result)


def _sign_off(tmp_path: Path, keys: KeyPair, **changes: Any) -> Path:
    bundle = make_bundle(tmp_path, name="20250101T000000Z-pass")
    predicate = {
        **make_predicate(bundle),
        "promotable": True,
        "not_promotable_because": [],
        "signer": {"keyid": keys.keyid, "ephemeral": False},
        **changes,
    }
    seal_bundle(bundle, predicate, keys.signer)
    return bundle


def test_require_promotable_passes_a_live_complete_promotable_sign_off(
    tmp_path: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = _sign_off(tmp_path, keys)
    args = ["verify", str(bundle), "--key", str(keys.public_path), "--require-promotable"]
    assert main(args) == EXIT_VALID
    assert "NOT PROMOTABLE" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"target": {"kind": "simulated", "scenario": "healthy"}}, "its target is simulated"),
        ({"signer": {"ephemeral": True}}, "signed with an ephemeral key"),
        ({"scope": "partial"}, "its scope is partial, not complete"),
        ({"verdict": "fail"}, "its verdict is fail, not pass"),
        (
            {"promotable": False, "not_promotable_because": ["gate g FAIL: x"]},
            "not promotable: gate g FAIL: x",
        ),
        ({"promotable": None}, "the statement does not say it is"),
    ],
    ids=["simulated", "ephemeral", "partial", "failed", "not-promotable", "silent"],
)
def test_require_promotable_refuses_a_valid_bundle_that_is_no_sign_off(
    tmp_path: Path,
    keys: KeyPair,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, Any],
    reason: str,
) -> None:
    bundle = _sign_off(tmp_path, keys, **changes)
    args = ["verify", str(bundle), "--key", str(keys.public_path)]
    assert main(args) == EXIT_VALID  # valid evidence, just no sign-off
    capsys.readouterr()
    assert main([*args, "--require-promotable"]) == EXIT_INVALID
    out = capsys.readouterr().out
    assert "NOT PROMOTABLE (--require-promotable):" in out
    assert reason in out
    assert main([*args, "--require-promotable", "--json"]) == EXIT_INVALID
    document = json.loads(capsys.readouterr().out)
    assert document["exit_code"] == EXIT_INVALID
    assert any(reason in problem for problem in document["promotion_problems"])


def test_require_promotable_on_an_invalid_bundle_keeps_the_invalid_exit(
    tmp_path: Path, keys: KeyPair
) -> None:
    bundle = _sign_off(tmp_path, keys)
    (bundle / "run.json").write_text("{}")
    args = ["verify", str(bundle), "--key", str(keys.public_path), "--require-promotable"]
    assert main(args) == EXIT_INVALID
