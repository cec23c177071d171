"""Signed attestations: round trip, every refusal reason, waiver scope and expiry, reports."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner

from pytest_canarygate.attestation import ATTESTATION_PREDICATE_TYPE
from pytest_canarygate.attestation import MAX_ATTESTATION_BYTES
from pytest_canarygate.attestation import Attestations
from pytest_canarygate.attestation import Refused
from pytest_canarygate.attestation import SignerEntry
from pytest_canarygate.attestation import format_time
from pytest_canarygate.attestation import load_attestations
from pytest_canarygate.attestation import parse_signers
from pytest_canarygate.attestation import predicate_digest
from pytest_canarygate.attestation import write_attestation
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.keys import generate_keypair
from pytest_canarygate.keys import load_signer
from pytest_canarygate.signing import PAYLOAD_TYPE
from pytest_canarygate.signing import STATEMENT_TYPE

MIGRATION = "mig-1"
NOW = datetime(2026, 12, 4, 20, 39, 6, 161000, tzinfo=timezone.utc)
LATEST = NOW + timedelta(seconds=30)
GATE = "canary.exit.no-degraded-alerts"


class World:
    """Keys for alice, bob (both listed) and mallory (not listed), and a reports folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.reports = root / "reports"
        self.keys = root / "keys"
        self.signers_raw: list[dict[str, Any]] = []
        self.signer: dict[str, CryptoSigner] = {}
        for name in ("alice", "bob", "mallory"):
            generate_keypair(self.keys / f"{name}.pem")
            self.signer[name] = load_signer(self.keys / f"{name}.pem")
        self.signers_raw = [
            {"name": "alice", "key": "keys/alice.pem.pub.json", "items": ["P2-X3"], "waive": []},
            {"name": "bob", "key": "keys/bob.pem.pub.json", "items": "*", "waive": ["canary.*"]},
        ]

    @property
    def signers(self) -> tuple[SignerEntry, ...]:
        return parse_signers(self.signers_raw, self.root, "canarygate.toml")

    def write(self, kind: str = "signoff", *, by: str = "alice", **kw: Any) -> Path:
        kw.setdefault("subject", "P2-X3" if kind == "signoff" else GATE)
        kw.setdefault("now", NOW)
        kw.setdefault("text", "" if kind == "signoff" else "because")
        if kind == "waiver":
            kw.setdefault("until", NOW + timedelta(days=7))
        return write_attestation(
            self.reports,
            kw.pop("migration", MIGRATION),
            kind=kind,
            by=by,
            signer=kw.pop("signer", self.signer.get(by, self.signer["alice"])),
            **kw,
        )

    def load(self, latest: datetime = LATEST) -> Attestations:
        return load_attestations(self.reports, MIGRATION, self.signers, latest_allowed=latest)


@pytest.fixture
def world(tmp_path: Path) -> World:
    os.chmod(tmp_path, 0o755)
    return World(tmp_path)


def only_refusal(found: Attestations) -> Refused:
    assert found.valid == ()
    assert len(found.refused) == 1, found.refused
    return found.refused[0]


def rewrite(path: Path, change: Any) -> None:
    """Rewrite the envelope at ``path`` as ``change(document)`` returns it (mode kept 0644)."""
    document = json.loads(path.read_text())
    path.write_text(json.dumps(change(document)))
    os.chmod(path, 0o644)


def change_statement(document: dict[str, Any], edit: Any) -> dict[str, Any]:
    """Edit the statement inside ``document``, keeping the subject digest consistent."""
    statement = json.loads(base64.b64decode(document["payload"]))
    edit(statement["predicate"])
    statement["subject"][0]["digest"]["sha256"] = predicate_digest(statement["predicate"])
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    return {**document, "payload": base64.b64encode(payload).decode()}


# --- round trip ------------------------------------------------------------------------------


def test_signoff_round_trip(world: World) -> None:
    path = world.write(session="sess-1", text="checked by hand", refers=["a" * 64])

    assert path.parent == world.reports / MIGRATION / "signoffs"
    assert path.name == "20261204T203906.161Z-signoff-P2-X3-alice.dsse.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    for folder in (world.reports, world.reports / MIGRATION, path.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    found = world.load()
    assert found.refused == ()
    (got,) = found.valid
    assert (got.kind, got.migration_id, got.subject, got.by) == (
        "signoff",
        MIGRATION,
        "P2-X3",
        "alice",
    )
    assert (got.signed_at, got.session, got.text) == (NOW, "sess-1", "checked by hand")
    assert (got.until, got.phase, got.refers) == (None, None, ("a" * 64,))
    assert got.keyid == world.signer["alice"].public_key.keyid
    assert got.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert found.signoffs("P2-X3") == [got]
    assert found.signoffs("P2-X3", session="sess-1") == [got]
    assert found.signoffs("P2-X3", session="other") == []
    assert found.signoffs("CG-7") == []


def test_envelope_is_an_in_toto_statement_with_the_documented_predicate(world: World) -> None:
    document = json.loads(world.write().read_text())
    assert document["payloadType"] == PAYLOAD_TYPE
    statement = json.loads(base64.b64decode(document["payload"]))
    assert statement["_type"] == STATEMENT_TYPE
    assert statement["predicateType"] == ATTESTATION_PREDICATE_TYPE
    predicate = statement["predicate"]
    documented = "kind migration_id subject by signed_at session text until phase refers keyid"
    assert sorted(predicate) == sorted(documented.split())
    assert predicate["signed_at"] == "2026-12-04T20:39:06.161Z"
    assert statement["subject"] == [
        {"name": f"{MIGRATION}/signoff/P2-X3", "digest": {"sha256": predicate_digest(predicate)}}
    ]


def test_file_names_are_sanitized_and_digests_shortened(world: World) -> None:
    path = world.write("report", subject="sess/../x y", by="bob")
    assert path.name == "20261204T203906.161Z-report-sess_.._x_y-bob.dsse.json"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    resolution = world.write("resolution", subject=digest, by="bob", now=NOW + timedelta(1))
    assert resolution.name.endswith(f"-resolution-{digest[:12]}-bob.dsse.json")
    assert resolution.parent == path.parent == world.reports / MIGRATION / "user-reports"


def test_folders_are_0755_and_files_0644_under_a_loose_umask(world: World) -> None:
    old = os.umask(0o002)
    try:
        path = world.write()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755
    assert world.load().refused == ()


def test_an_existing_file_is_never_overwritten(world: World) -> None:
    path = world.write(text="first")
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="already exists") as info:
        world.write(text="second")
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


# --- waivers ---------------------------------------------------------------------------------


def test_waiver_phase_scope_and_expiry(world: World) -> None:
    until = NOW + timedelta(days=2)
    world.write("waiver", by="bob", subject="canary.a", until=until, phase="canary")
    world.write("waiver", by="bob", subject="canary.b", until=until, now=NOW + timedelta(1))
    found = world.load(latest=NOW + timedelta(days=1))
    assert found.refused == ()

    scoped = found.waivers("canary.a", "canary", NOW)
    assert [w.phase for w in scoped] == ["canary"]
    assert scoped[0].until == until
    assert found.waivers("canary.a", "gradual", NOW) == []
    assert len(found.waivers("canary.b", "gradual", NOW + timedelta(days=1))) == 1
    assert len(found.waivers("canary.b", None, NOW + timedelta(days=1))) == 1
    assert found.expired_waivers("canary.a", "canary", NOW) == []

    later = until + timedelta(milliseconds=1)
    assert found.waivers("canary.a", "canary", later) == []
    assert found.waivers("canary.a", "canary", until) == []  # expired at `until`
    assert [w.subject for w in found.expired_waivers("canary.a", "canary", later)] == ["canary.a"]
    assert found.expired_waivers("canary.a", "gradual", later) == []


def test_waiver_not_matching_the_signers_globs_does_not_count(world: World) -> None:
    world.write("waiver", by="bob", subject="gradual.x")
    refusal = only_refusal(world.load())
    assert not refusal.malformed
    assert "may not waive 'gradual.x'" in refusal.reason
    assert refusal.kind == "waiver"


def test_a_waiver_needs_a_future_expiry_and_a_justification(world: World) -> None:
    with pytest.raises(ConfigError, match="must expire in the future"):
        world.write("waiver", by="bob", until=NOW)
    with pytest.raises(ConfigError, match="needs an expiry"):
        world.write("waiver", by="bob", until=None)
    with pytest.raises(ConfigError, match="justification"):
        world.write("waiver", by="bob", text="  ")
    with pytest.raises(ConfigError, match="only a waiver"):
        world.write(phase="canary")


# --- reports ---------------------------------------------------------------------------------


def test_reports_are_open_until_a_valid_resolution_names_their_digest(world: World) -> None:
    report = world.write("report", subject="sess-1", text="pane lost its history")
    world.write("report", subject="sess-2", text="second", now=NOW + timedelta(seconds=1))
    found = world.load()
    assert [r.session for r in found.open_reports()] == ["sess-1", "sess-2"]
    assert [r.path for r in found.open_reports("sess-1")] == [report]

    digest = hashlib.sha256(report.read_bytes()).hexdigest()
    resolution = world.write("resolution", subject=digest, text="replayed", by="bob")
    found = world.load()
    assert [r.session for r in found.open_reports()] == ["sess-2"]
    assert found.open_reports("sess-1") == []
    (got,) = [a for a in found.valid if a.kind == "resolution"]
    assert (got.path, got.subject, got.refers) == (resolution, digest, (digest,))


def test_a_resolution_by_an_unlisted_signer_resolves_nothing(world: World) -> None:
    report = world.write("report", subject="sess-1")
    digest = hashlib.sha256(report.read_bytes()).hexdigest()
    world.write("resolution", subject=digest, by="mallory")
    found = world.load()
    assert len(found.open_reports()) == 1
    assert [r.kind for r in found.refused] == ["resolution"]


def test_a_report_needs_text(world: World) -> None:
    with pytest.raises(ConfigError, match="a report needs a text"):
        world.write("report", subject="sess-1", text="")


# --- refusals --------------------------------------------------------------------------------


def test_unsigned_file_is_malformed(world: World) -> None:
    path = world.write()
    rewrite(path, lambda d: {**d, "signatures": []})
    refusal = only_refusal(world.load())
    assert refusal.malformed
    assert "not signed" in refusal.reason
    assert world.load().malformed("signoff") == [refusal]
    assert world.load().malformed("waiver") == []


def test_tampered_payload_is_malformed(world: World) -> None:
    path = world.write(text="original")
    rewrite(path, lambda d: change_statement(d, lambda p: p.update(text="changed")))
    refusal = only_refusal(world.load())
    assert refusal.malformed
    assert "does not verify" in refusal.reason


def test_signature_by_another_key_than_the_named_signers_is_malformed(world: World) -> None:
    world.write(by="alice", signer=world.signer["bob"])
    refusal = only_refusal(world.load())
    assert refusal.malformed
    assert "not signed with the key of 'alice'" in refusal.reason


def test_signer_not_on_the_list_does_not_count(world: World) -> None:
    world.write(by="mallory")
    refusal = only_refusal(world.load())
    assert not refusal.malformed
    assert "'mallory', who is not in [[signers]]" in refusal.reason


def test_signer_not_allowed_the_item_does_not_count(world: World) -> None:
    world.write(subject="CG-7")
    refusal = only_refusal(world.load())
    assert not refusal.malformed
    assert "may not sign off 'CG-7'" in refusal.reason


def test_foreign_migration_does_not_count(world: World) -> None:
    path = world.write(migration="other")
    target = world.reports / MIGRATION / "signoffs"
    target.mkdir(mode=0o755, parents=True)
    os.chmod(world.reports / MIGRATION, 0o755)
    os.chmod(target, 0o755)
    path.rename(target / path.name)
    refusal = only_refusal(world.load())
    assert not refusal.malformed
    assert "for migration 'other'" in refusal.reason


def test_misfiled_kind_does_not_count(world: World) -> None:
    path = world.write("waiver", by="bob")
    signoffs = world.reports / MIGRATION / "signoffs"
    signoffs.mkdir(mode=0o755)
    os.chmod(signoffs, 0o755)
    path.rename(signoffs / path.name)
    refusal = only_refusal(world.load())
    assert not refusal.malformed
    assert "a waiver filed under signoffs/" in refusal.reason


def test_future_dated_does_not_count(world: World) -> None:
    world.write(now=LATEST + timedelta(milliseconds=1))
    refusal = only_refusal(world.load())
    assert not refusal.malformed
    assert "after the latest time allowed" in refusal.reason
    assert len(world.load(latest=LATEST + timedelta(seconds=1)).valid) == 1


def test_not_json_is_malformed(world: World) -> None:
    path = world.write()
    path.write_text("{not json")
    refusal = only_refusal(world.load())
    assert refusal.malformed
    assert "not strict JSON" in refusal.reason


def test_duplicate_json_key_is_malformed(world: World) -> None:
    path = world.write()
    text = path.read_text()
    path.write_text('{"payloadType": "text/plain", ' + text.lstrip()[1:])
    refusal = only_refusal(world.load())
    assert refusal.malformed
    assert 'duplicate key "payloadType"' in refusal.reason


def test_bad_predicate_shape_is_malformed(world: World) -> None:
    path = world.write()
    rewrite(path, lambda d: change_statement(d, lambda p: p.update(extra=1)))
    refusal = only_refusal(world.load())
    assert refusal.malformed
    assert "unknown fields ['extra']" in refusal.reason


def test_world_writable_file_is_refused(world: World) -> None:
    path = world.write()
    os.chmod(path, 0o666)
    refusal = only_refusal(world.load())
    assert refusal.malformed
    assert str(path) in refusal.reason
    assert "chmod go-w" in refusal.reason


def test_symlink_out_of_the_folder_is_refused(world: World) -> None:
    path = world.write()
    outside = world.root / "outside"
    outside.mkdir(mode=0o755)
    os.chmod(outside, 0o755)
    moved = outside / path.name
    path.rename(moved)
    path.symlink_to(moved)
    refusal = only_refusal(world.load())
    assert refusal.malformed
    assert "symbolic link" in refusal.reason


def test_oversize_file_is_refused(world: World) -> None:
    path = world.write()
    path.write_bytes(b" " * (MAX_ATTESTATION_BYTES + 1))
    os.chmod(path, 0o644)
    refusal = only_refusal(world.load())
    assert refusal.malformed
    assert "more than the" in refusal.reason


def test_stray_files_are_refused_and_dotfiles_ignored(world: World) -> None:
    path = world.write()
    (path.parent / ".half-written.tmp").write_text("x")
    (path.parent / "notes.txt").write_text("x")
    found = world.load()
    assert len(found.valid) == 1
    (refusal,) = found.refused
    assert refusal.malformed
    assert refusal.path.name == "notes.txt"


def test_missing_folders_hold_nothing(world: World) -> None:
    assert world.load() == Attestations()


# --- input validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"subject": ""}, "subject '': expected a non-empty string"),
        ({"subject": "P2\nX3"}, "control characters"),
        ({"subject": "x" * 201}, "longer than 200"),
        ({"by": ""}, "by '': expected a non-empty string"),
        ({"migration": "../up"}, "names a folder"),
        ({"now": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"refers": ["abc"]}, "not a sha256 digest"),
        ({"kind": "vote"}, "expected one of signoff, waiver, report, resolution"),
    ],
)
def test_bad_input_is_a_config_error(world: World, change: dict[str, Any], message: str) -> None:
    kw: dict[str, Any] = {"kind": "signoff", **change}
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as info:
        world.write(**kw)
    assert "\n" not in str(info.value)


def test_format_time_is_utc_with_milliseconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_time(datetime(2026, 1, 2, 5, 4, 3, 999999, tzinfo=plus_two)) == (
        "2026-01-02T03:04:03.999Z"
    )


# --- the allow-list --------------------------------------------------------------------------


def test_parse_signers_reads_items_and_globs(world: World) -> None:
    alice, bob = world.signers
    assert (alice.name, alice.keyid) == ("alice", world.signer["alice"].public_key.keyid)
    assert alice.may_sign("P2-X3")
    assert not alice.may_sign("CG-7")
    assert not alice.may_waive(GATE)
    assert bob.items == ("*",)
    assert bob.may_sign("anything")
    assert bob.may_waive(GATE)
    assert not bob.may_waive("gradual.x")
    assert not bob.may_waive("Canary.x")  # case-sensitive
    assert parse_signers(None, world.root, "c.toml") == ()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "carol", "key": "keys/alice.pem.pub.json", "role": "x"}, r"'signers\[2\].role'"),
        ({"key": "keys/mallory.pem.pub.json"}, r"missing key 'signers\[2\].name'"),
        ({"name": "", "key": "keys/mallory.pem.pub.json"}, r"signers\[2\].name = ''"),
        ({"name": "carol"}, r"missing key 'signers\[2\].key'"),
        ({"name": "carol", "key": 3}, r"signers\[2\].key = 3"),
        ({"name": "carol", "key": "keys/none.json"}, r"signers\[2\].key: public key"),
        (
            {"name": "carol", "key": "keys/mallory.pem.pub.json", "items": "P2"},
            r"signers\[2\].items",
        ),
        (
            {"name": "carol", "key": "keys/mallory.pem.pub.json", "waive": [1]},
            r"signers\[2\].waive",
        ),
        ({"name": "alice", "key": "keys/mallory.pem.pub.json"}, r"signers\[2\].name = 'alice'"),
        ({"name": "carol", "key": "keys/alice.pem.pub.json"}, r"signers\[2\].key: key id"),
    ],
)
def test_parse_signers_errors_name_the_entry_and_key(
    world: World, entry: dict[str, Any], message: str
) -> None:
    raw = [*world.signers_raw, entry]
    with pytest.raises(ConfigError, match=message) as info:
        parse_signers(raw, world.root, "canarygate.toml")
    assert str(info.value).startswith("canarygate.toml: ")


def test_parse_signers_refuses_a_non_list(world: World) -> None:
    with pytest.raises(ConfigError, match=r"c.toml: signers = .*array of tables"):
        parse_signers({"name": "x"}, world.root, "c.toml")
    with pytest.raises(ConfigError, match=r"c.toml: signers\[0\] = 'x': expected a table"):
        parse_signers(["x"], world.root, "c.toml")


def test_only_a_signer_allowed_to_resolve_reports_resolves_one(world: World) -> None:
    """alice may sign off P2-X3 only: her resolution is refused, naming the item it needs."""
    report = world.write("report", subject="session-alpha", text="panes differ", by="bob")
    digest = hashlib.sha256(report.read_bytes()).hexdigest()
    world.write("resolution", subject=digest, text="fixed", by="alice")
    found = world.load()
    assert [r.session for r in found.open_reports()] == ["session-alpha"]
    (refused,) = [r for r in found.refused if r.kind == "resolution"]
    assert "may not resolve user reports" in refused.reason
    assert "'resolve-reports'" in refused.reason
