"""The chain between phase bundles: links, refusals, ``canarygate status``, ``verify --chain``.

Every bundle here is a small archive fixture signed for real with a key made by keygen.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bundle_helpers import DEFAULT_FILES
from bundle_helpers import KeyPair
from bundle_helpers import make_bundle
from bundle_helpers import make_predicate

from pytest_canarygate.chain import Candidate
from pytest_canarygate.chain import ChainError
from pytest_canarygate.chain import ChainSettings
from pytest_canarygate.chain import Link
from pytest_canarygate.chain import chain_status
from pytest_canarygate.chain import check_links
from pytest_canarygate.chain import describe_refusal
from pytest_canarygate.chain import find_link
from pytest_canarygate.chain import latest_rollback
from pytest_canarygate.chain import list_phases
from pytest_canarygate.chain import parse_chain_table
from pytest_canarygate.chain import parse_requires
from pytest_canarygate.cli import EXIT_FAILED
from pytest_canarygate.cli import EXIT_OK
from pytest_canarygate.cli import EXIT_USAGE
from pytest_canarygate.cli import main
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.signing import ENVELOPE_NAME
from pytest_canarygate.signing import seal_bundle

M = "mig-1"
PEERS = [
    {"daemon": "old", "endpoint": "unix:///run/old/old.sock", "version": "4"},
    {"daemon": "new", "endpoint": "unix:///run/new/new.sock", "version": "5"},
]
ENDPOINTS = {"old": "unix:///run/old/old.sock", "new": "unix:///run/new/new.sock"}
DAY1 = "20250101T000000Z"
DAY2 = "20250102T000000Z"
DAY3 = "20250103T000000Z"
DAY4 = "20250104T000000Z"

_SIGNER = object()  # "sign with the test's trusted key"


def _iso(stamp: str, minutes: int = 0) -> str:
    return f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{minutes:02d}:00Z"


def _fix_modes(root: Path) -> None:
    """Folders 0755, files 0644: the modes an archive needs, whatever the umask."""
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)


def _bundle(
    root: Path,
    keys: KeyPair,
    phase: str,
    stamp: str,
    *,
    verdict: str = "PASS",
    migration: str = M,
    signer: Any = _SIGNER,
    files: dict[str, bytes] | None = None,
    **changes: Any,
) -> Path:
    """A sealed bundle under ``root/reports/<migration>/<phase>/<stamp>-<verdict>`` (with
    ``files`` when given); the predicate is promotable, live and complete unless ``changes``
    say otherwise."""
    extra = {} if files is None else {"files": files}
    bundle = make_bundle(root, migration=migration, phase=phase, name=f"{stamp}-{verdict}", **extra)
    predicate = make_predicate(bundle)
    predicate.update(
        incomplete=False,
        promotable=True,
        not_promotable_because=[],
        peers=PEERS,
        started_at=_iso(stamp, 0),
        finished_at=_iso(stamp, 5),
    )
    predicate.update(changes)
    _fix_modes(root / "reports")
    seal_bundle(bundle, predicate, keys.signer if signer is _SIGNER else signer)
    return bundle


def _digest(bundle: Path) -> str:
    return hashlib.sha256((bundle / ENVELOPE_NAME).read_bytes()).hexdigest()


def _relies(bundle: Path, digest: str | None = None) -> list[dict[str, str]]:
    return [
        {"phase": bundle.parent.name, "bundle": bundle.name, "digest": digest or _digest(bundle)}
    ]


@pytest.fixture
def keys(tmp_path: Path) -> KeyPair:
    return KeyPair(tmp_path / "keys")


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    path = tmp_path / "reports"
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)
    return path


@pytest.fixture
def trusted_dir(tmp_path: Path, keys: KeyPair) -> Path:
    path = tmp_path / "trusted"
    path.mkdir()
    shutil.copy(keys.public_path, path)
    return path


def _candidates(found: Link | tuple[Candidate, ...]) -> tuple[Candidate, ...]:
    assert not isinstance(found, Link), found
    return found


# --- find_link ----------------------------------------------------------------------------


def test_the_newest_qualifying_bundle_is_the_link(
    tmp_path: Path, reports: Path, keys: KeyPair
) -> None:
    _bundle(tmp_path, keys, "alpha", DAY1)
    chosen = _bundle(tmp_path, keys, "alpha", DAY2)
    fail_gate = {"gate": "g", "item": "A-1", "verdict": "FAIL", "nodeid": "g::f"}
    _bundle(
        tmp_path,
        keys,
        "alpha",
        DAY3,
        verdict="FAIL",
        promotable=False,
        gates=[fail_gate],
        not_promotable_because=["gate A-1 failed"],
    )

    link = find_link(reports, M, "alpha", keys.trusted, endpoints=ENDPOINTS)

    assert isinstance(link, Link)
    assert link.bundle.name == chosen.name == link.name
    assert link.digest == _digest(chosen)
    assert link.signer_keyid == keys.keyid
    assert link.verdict == "PASS"
    assert link.finished_at == _iso(DAY2, 5)
    assert link.as_json() == {
        "phase": "alpha",
        "bundle": chosen.name,
        "digest": _digest(chosen),
        "signer_keyid": keys.keyid,
        "finished_at": _iso(DAY2, 5),
    }
    assert find_link(reports, M, "alpha", keys.trusted, endpoints=None) == link


def _tamper(bundle: Path) -> None:
    (bundle / "run.json").write_bytes(b'{"phase": "other"}\n')


def _moved(tmp_path: Path, keys: KeyPair, migration: str, phase: str) -> None:
    source = _bundle(tmp_path / "elsewhere", keys, phase, DAY1, migration=migration)
    target = tmp_path / "reports" / M / "alpha" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target)
    _fix_modes(tmp_path / "reports")


def _ephemeral(tmp_path: Path, keys: KeyPair) -> None:
    """A bundle whose statement says it was signed with a throwaway key."""
    bundle = make_bundle(tmp_path, migration=M, phase="alpha", name=f"{DAY1}-PASS")
    predicate = make_predicate(bundle, ephemeral=True)
    predicate.update(incomplete=False, promotable=True, peers=PEERS)
    _fix_modes(tmp_path / "reports")
    seal_bundle(bundle, predicate, keys.signer)


REFUSALS: dict[str, tuple[Callable[[Path, KeyPair], Any], str]] = {
    "unsigned": (lambda t, k: _bundle(t, k, "alpha", DAY1, signer=None), "not signed"),
    "untrusted key": (
        lambda t, k: _bundle(t, k, "alpha", DAY1, signer=KeyPair(t / "other").signer),
        "which is not trusted",
    ),
    "tampered file": (
        lambda t, k: _tamper(_bundle(t, k, "alpha", DAY1)),
        "run.json: sha256 mismatch",
    ),
    "simulated": (
        lambda t, k: _bundle(t, k, "alpha", DAY1, target={"kind": "simulated"}),
        "not live: target is 'simulated'",
    ),
    "partial scope": (
        lambda t, k: _bundle(t, k, "alpha", DAY1, scope="partial: -k parity"),
        "partial: scope is 'partial: -k parity', not complete",
    ),
    "incomplete": (
        lambda t, k: _bundle(t, k, "alpha", DAY1, incomplete=True),
        "incomplete: not every gate",
    ),
    "not promotable": (
        lambda t, k: _bundle(
            t, k, "alpha", DAY1, promotable=False, not_promotable_because=["A-9 not signed off"]
        ),
        "not promotable: A-9 not signed off",
    ),
    "a FAIL gate": (
        lambda t, k: _bundle(
            t,
            k,
            "alpha",
            DAY1,
            gates=[{"gate": "test_x", "item": "A-2", "verdict": "FAIL", "nodeid": "g::x"}],
        ),
        "FAIL gate: A-2 (test_x) is FAIL, not PASS or WAIVED",
    ),
    "other migration": (
        lambda t, k: _moved(t, k, "other-mig", "alpha"),
        "sealed for migration 'other-mig'",
    ),
    "other phase": (
        lambda t, k: _moved(t, k, M, "canary"),
        "sealed for phase 'canary'",
    ),
    "other endpoints": (
        lambda t, k: _bundle(
            t, k, "alpha", DAY1, peers=[{"daemon": "old", "endpoint": "unix:///x.sock"}]
        ),
        "other endpoints: judged against old=unix:///x.sock, expected new=",
    ),
    "ephemeral key": (lambda t, k: _ephemeral(t, k), "ephemeral key: signed with a throwaway key"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_each_refusal_reason_is_given(
    case: str, tmp_path: Path, reports: Path, keys: KeyPair
) -> None:
    build, expected = REFUSALS[case]
    build(tmp_path, keys)

    found = _candidates(find_link(reports, M, "alpha", keys.trusted, endpoints=ENDPOINTS))

    assert len(found) == 1
    assert found[0].bundle.name == f"{DAY1}-PASS"
    assert any(expected in reason for reason in found[0].reasons), found[0].reasons
    text = describe_refusal("alpha", found, keys.trusted)
    assert text is not None
    assert text.startswith(f"no valid alpha link: {DAY1}-PASS: ")


def test_a_bundle_older_than_the_latest_rollback_is_refused(
    tmp_path: Path, reports: Path, keys: KeyPair
) -> None:
    _bundle(tmp_path, keys, "alpha", DAY1)
    _bundle(tmp_path, keys, "rollback", DAY2, verdict="FAIL", promotable=False)
    _bundle(tmp_path, keys, "rollback", DAY3, signer=None)  # newer but unsigned: does not count

    rollback = latest_rollback(reports, M, keys.trusted)
    assert rollback is not None
    assert rollback.name == f"{DAY2}-FAIL"
    found = _candidates(
        find_link(
            reports, M, "alpha", keys.trusted, endpoints=None, not_before=rollback.finished_at
        )
    )
    assert any(f"not after {_iso(DAY2, 5)}" in r for r in found[0].reasons), found[0].reasons

    newer = _bundle(tmp_path, keys, "alpha", DAY4)
    link = find_link(
        reports, M, "alpha", keys.trusted, endpoints=None, not_before=rollback.finished_at
    )
    assert isinstance(link, Link)
    assert link.name == newer.name


def test_running_folders_and_stray_files_are_not_bundles(
    tmp_path: Path, reports: Path, keys: KeyPair
) -> None:
    good = _bundle(tmp_path, keys, "alpha", DAY1)
    phase_dir = good.parent
    (phase_dir / f"{DAY3}-running").mkdir()
    (phase_dir / f"{DAY3}-running" / "run.json").write_text("{}")
    (phase_dir / f"{DAY2}-PASS.ephemeral.pub.json").write_text("{}")
    (phase_dir / "notes.txt").write_text("x")
    _fix_modes(reports)

    link = find_link(reports, M, "alpha", keys.trusted, endpoints=None)
    assert isinstance(link, Link)
    assert link.name == good.name

    (phase_dir / f"{DAY4}-PASS").mkdir(mode=0o755)  # a newer folder that is not sealed
    os.chmod(phase_dir / f"{DAY4}-PASS", 0o755)
    link = find_link(reports, M, "alpha", keys.trusted, endpoints=None)
    assert isinstance(link, Link)
    assert link.name == good.name


def test_no_bundle_no_folder_and_no_trusted_keys(
    tmp_path: Path, reports: Path, keys: KeyPair
) -> None:
    assert find_link(reports, M, "alpha", keys.trusted, endpoints=None) == ()
    assert describe_refusal("alpha", (), keys.trusted) == "no alpha link: no alpha bundle"
    _bundle(tmp_path, keys, "alpha", DAY1)
    assert find_link(reports, M, "alpha", {}, endpoints=None) == ()
    assert "no trusted keys" in (describe_refusal("alpha", (), {}) or "")
    assert latest_rollback(reports, M, keys.trusted) is None
    with pytest.raises(ConfigError, match="plain name"):
        find_link(reports, "../etc", "alpha", keys.trusted, endpoints=None)


@pytest.mark.parametrize("mode", [0o777, 0o775])
def test_a_reports_folder_others_can_write_is_refused(
    tmp_path: Path, reports: Path, keys: KeyPair, trusted_dir: Path, mode: int
) -> None:
    _bundle(tmp_path, keys, "alpha", DAY1)
    os.chmod(reports, mode)

    with pytest.raises(ChainError, match=r"writable by group.*chmod go-w") as excinfo:
        find_link(reports, M, "alpha", keys.trusted, endpoints=None)
    assert str(reports) in str(excinfo.value)
    code = main(["status", M, "--reports", str(reports), "--trusted-keys", str(trusted_dir)])
    assert code == EXIT_FAILED


def test_a_bundle_folder_others_can_write_does_not_count(
    tmp_path: Path, reports: Path, keys: KeyPair
) -> None:
    bundle = _bundle(tmp_path, keys, "alpha", DAY1)
    os.chmod(bundle, 0o777)
    found = _candidates(find_link(reports, M, "alpha", keys.trusted, endpoints=None))
    assert found[0].reasons[0].startswith("REFUSED: statement.dsse.json: refusing to read")


# --- [chain] settings -----------------------------------------------------------------------


def test_parse_chain_table_defaults_and_values(tmp_path: Path) -> None:
    assert parse_chain_table(None, tmp_path, "c.toml") == ChainSettings(None, 6.0, ())
    settings = parse_chain_table(
        {"trusted_keys": "keys/trusted", "max_monitor_gap_h": 12, "waivable_failures": ["a.b"]},
        tmp_path,
        "c.toml",
    )
    assert settings == ChainSettings(tmp_path / "keys" / "trusted", 12.0, ("a.b",))


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"nope": 1}, "chain.nope"),
        ({"trusted_keys": 5}, "chain.trusted_keys"),
        ({"trusted_keys": ""}, "chain.trusted_keys"),
        ({"max_monitor_gap_h": "6"}, "chain.max_monitor_gap_h"),
        ({"max_monitor_gap_h": 0}, "chain.max_monitor_gap_h"),
        ({"max_monitor_gap_h": 721}, "chain.max_monitor_gap_h"),
        ({"max_monitor_gap_h": True}, "chain.max_monitor_gap_h"),
        ({"waivable_failures": "g"}, "chain.waivable_failures"),
        ({"waivable_failures": [1]}, "chain.waivable_failures"),
        ([], "chain"),
    ],
)
def test_parse_chain_table_errors_name_the_key(tmp_path: Path, table: object, key: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_chain_table(table, tmp_path, "conf/canarygate.toml")
    assert str(excinfo.value).startswith("conf/canarygate.toml: ")
    assert key in str(excinfo.value)


def test_parse_requires() -> None:
    assert parse_requires("canary=alpha, gradual=canary") == {
        "canary": "alpha",
        "gradual": "canary",
    }
    for bad in ("canary", "canary=alpha,canary=beta", "a=a", "x/y=alpha", ""):
        with pytest.raises(ConfigError):
            parse_requires(bad)


# --- status ---------------------------------------------------------------------------------


def _archive(tmp_path: Path, keys: KeyPair) -> tuple[Path, Path]:
    """alpha PASS; canary not promotable (a FAIL gate), relying on alpha."""
    alpha = _bundle(tmp_path, keys, "alpha", DAY1)
    canary = _bundle(
        tmp_path,
        keys,
        "canary",
        DAY2,
        verdict="FAIL",
        promotable=False,
        not_promotable_because=["gate C-7 is FAIL"],
        gates=[{"gate": "test_hold", "item": "C-7", "verdict": "FAIL", "nodeid": "g::h"}],
        relies_on=_relies(alpha),
    )
    return alpha, canary


def test_chain_status(tmp_path: Path, reports: Path, keys: KeyPair) -> None:
    alpha, canary = _archive(tmp_path, keys)

    statuses = chain_status(
        reports, M, ["alpha", "canary", "gradual"], {"canary": "alpha"}, keys.trusted
    )

    first, second, third = statuses
    assert (first.phase, first.latest, first.status, first.verdict) == (
        "alpha",
        alpha.name,
        "VALID",
        "PASS",
    )
    assert first.blocks == ()
    assert first.relies_on is None
    assert first.requires is None
    assert second.latest == canary.name
    assert second.verdict == "FAIL"
    assert second.signer_keyid == keys.keyid
    assert second.relies_on is not None
    assert second.relies_on.digest == _digest(alpha)
    assert "not promotable: gate C-7 is FAIL" in second.blocks
    assert third.latest is None
    assert third.blocks == ("no gradual bundle",)
    assert second.as_json()["relies_on"]["bundle"] == alpha.name


def test_status_text_fits_and_escapes(
    tmp_path: Path,
    reports: Path,
    keys: KeyPair,
    trusted_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    alpha, canary = _archive(tmp_path, keys)
    hostile = canary.parent / f"{DAY3}-\x1b[2J\x07evil\u202e"
    hostile.mkdir()
    (hostile / "run.json").write_text("{}")
    _fix_modes(reports)

    code = main(
        [
            "status",
            M,
            "--reports",
            str(reports),
            "--trusted-keys",
            str(trusted_dir),
            "--requires",
            "canary=alpha",
        ]
    )

    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert all(len(line) <= 100 for line in out.splitlines()), out
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "\u202e" not in out
    assert "\\x1b[2J\\x07evil\\u202e" in out
    lines = out.splitlines()
    alpha_line = next(line for line in lines if line.startswith("alpha "))
    assert alpha.name in alpha_line
    assert "PASS" in alpha_line
    assert keys.keyid[:8] in alpha_line
    assert alpha_line.endswith("nothing")
    canary_line = next(line for line in lines if line.startswith("canary "))
    assert "MALFORMED" in canary_line
    assert "alpha:" in canary_line
    assert "statement.dsse.json: missing" in out


def test_status_json_and_phase_order(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reports: Path,
    keys: KeyPair,
    trusted_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no gates/catalog.toml here or above: no [runbook] requires
    alpha, canary = _archive(tmp_path, keys)
    for name in ("zeta", "signoffs", "waivers", "user-reports", "gradual"):
        (reports / M / name).mkdir()
    _fix_modes(reports)
    assert list_phases(reports, M) == ["alpha", "canary", "gradual", "zeta"]

    args = ["status", M, "--reports", str(reports), "--trusted-keys", str(trusted_dir)]
    assert main([*args, "--json", "--requires", "canary=alpha"]) == EXIT_OK
    document = json.loads(capsys.readouterr().out)
    assert document["migration"] == M
    assert document["trusted_keys"] == [keys.keyid]
    assert [p["phase"] for p in document["phases"]] == ["alpha", "canary", "gradual", "zeta"]
    canary_json = document["phases"][1]
    assert canary_json["latest"] == canary.name
    assert canary_json["relies_on"]["digest"] == _digest(alpha)
    assert canary_json["status"] == "VALID"

    assert main([*args, "--json", "--phases", "canary,alpha"]) == EXIT_OK
    document = json.loads(capsys.readouterr().out)
    assert [p["phase"] for p in document["phases"]] == ["canary", "alpha"]
    assert document["phases"][0]["relies_on"] is None  # no --requires: no links


def test_status_usage_errors(
    tmp_path: Path, reports: Path, trusted_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing"
    assert main(["status", M, "--reports", str(missing)]) == EXIT_USAGE
    assert "no such directory" in capsys.readouterr().err
    assert main(["status", M, "--reports", str(reports)]) == EXIT_USAGE  # no such migration
    (reports / M).mkdir()
    os.chmod(reports / M, 0o755)
    assert main(["status", M, "--reports", str(reports), "--requires", "canary"]) == EXIT_USAGE
    assert main(["status", M, "--reports", str(reports), "--phases", "a/b"]) == EXIT_USAGE
    args = ["status", M, "--reports", str(reports), "--trusted-keys", str(tmp_path / "nokeys")]
    assert main(args) == EXIT_USAGE
    assert main(["status", M, "--reports", str(reports)]) == EXIT_OK  # empty, but readable


# --- verify --chain -------------------------------------------------------------------------


def _verify_chain(reports: Path, trusted_dir: Path, *extra: str) -> list[str]:
    return [
        "verify",
        "--chain",
        M,
        "--reports",
        str(reports),
        "--trusted-keys",
        str(trusted_dir),
        "--requires",
        "canary=alpha,gradual=canary",
        *extra,
    ]


def test_verify_chain_ok(
    tmp_path: Path,
    reports: Path,
    keys: KeyPair,
    trusted_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    alpha = _bundle(tmp_path, keys, "alpha", DAY1)
    canary = _bundle(tmp_path, keys, "canary", DAY2, relies_on=_relies(alpha))
    _bundle(tmp_path, keys, "alpha", DAY3)  # a newer alpha: canary still relied on DAY1's

    assert main(_verify_chain(reports, trusted_dir)) == 0
    out = capsys.readouterr().out
    assert f"OK     canary <- alpha: {canary.name} relies on {alpha.name}" in out

    assert main(_verify_chain(reports, trusted_dir, "--json")) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is True
    assert document["links"][0]["link"]["digest"] == _digest(alpha)

    checks = check_links(reports, M, {"canary": "alpha"}, keys.trusted)
    assert [(c.phase, c.state) for c in checks] == [("canary", "OK")]


def test_verify_chain_broken_when_the_digest_is_not_relied_on(
    tmp_path: Path,
    reports: Path,
    keys: KeyPair,
    trusted_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    alpha = _bundle(tmp_path, keys, "alpha", DAY1)
    _bundle(tmp_path, keys, "canary", DAY2, relies_on=_relies(alpha, "ab" * 32))

    assert main(_verify_chain(reports, trusted_dir)) == 1
    out = capsys.readouterr().out
    assert "BROKEN canary <- alpha" in out
    assert f"is not the one relies_on records ({'ab' * 32})" in " ".join(out.split())
    assert all(len(line) <= 100 for line in out.splitlines()), out


def test_verify_chain_broken_cases(tmp_path: Path, reports: Path, keys: KeyPair) -> None:
    alpha = _bundle(tmp_path, keys, "alpha", DAY1)
    _bundle(tmp_path, keys, "canary", DAY2)  # relies on nothing
    gradual_relies = [{"phase": "canary", "bundle": f"{DAY2}-PASS", "digest": "0" * 64}]
    _bundle(tmp_path, keys, "gradual", DAY3, relies_on=gradual_relies)
    requires = {"canary": "alpha", "gradual": "canary"}

    checks = {c.phase: c for c in check_links(reports, M, requires, keys.trusted)}
    assert checks["canary"].broken
    assert checks["canary"].reasons == ("relies_on lists no alpha bundle",)
    assert checks["gradual"].broken

    # a rollback between the alpha link and the canary run breaks the link
    shutil.rmtree(reports / M / "canary")
    _bundle(tmp_path, keys, "rollback", "20250101T120000Z", verdict="FAIL", promotable=False)
    _bundle(tmp_path, keys, "canary", DAY2, relies_on=_relies(alpha))
    checks = {c.phase: c for c in check_links(reports, M, requires, keys.trusted)}
    assert checks["canary"].broken
    assert any("invalidated by rollback" in r for r in checks["canary"].reasons)


def test_verify_chain_none_when_no_promotable_bundle(
    tmp_path: Path, reports: Path, keys: KeyPair, trusted_dir: Path
) -> None:
    _bundle(tmp_path, keys, "alpha", DAY1)
    _bundle(tmp_path, keys, "canary", DAY2, verdict="FAIL", promotable=False)
    checks = check_links(reports, M, {"canary": "alpha"}, keys.trusted)
    assert [c.state for c in checks] == ["NONE"]
    assert main(_verify_chain(reports, trusted_dir)) == 0


def test_verify_chain_usage_errors(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reports: Path,
    trusted_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no gates/catalog.toml here or above: no [runbook] requires
    (reports / M).mkdir()
    keys_args = ["--trusted-keys", str(trusted_dir)]
    assert main(["verify", "--chain", M, "--reports", str(reports), *keys_args]) == EXIT_USAGE
    assert "--requires" in capsys.readouterr().err
    both = ["verify", str(reports), *_verify_chain(reports, trusted_dir)[1:]]
    assert main(both) == EXIT_USAGE
    assert main(["verify", *keys_args]) == EXIT_USAGE  # neither BUNDLE nor --chain
    assert main(["verify", str(reports), "--requires", "a=b", *keys_args]) == EXIT_USAGE
    missing = _verify_chain(tmp_path / "nothing", trusted_dir)
    assert main(missing) == EXIT_USAGE


# --- status: time in phase, sign-offs and waivers from custody.json -------------------------


def _custody(**changes: Any) -> dict[str, Any]:
    """A custody record as a run writes it (``custody.Custody``), for a canary run."""
    record: dict[str, Any] = {
        "phase": "canary",
        "requires": "alpha",
        "relies_on": [],
        "problems": [],
        "missing_earlier": [],
        "rollback": None,
        "rehearsal": None,
        "rehearsal_problems": [],
        "timeline": [],
        "attestations": [],
        "refused": [],
        "soak": {
            "migration_start": "2024-12-30T00:00:00Z",
            "phase_start": "2024-12-31T22:05:00Z",
            "max_gap_h": 6.0,
            "monitor_gates": [],
            "runs": [],
        },
    }
    record.update(changes)
    return record


def _attestation(kind: str, subject: str, by: str, **changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "file": f"x-{kind}-{subject}-{by}.dsse.json",
        "kind": kind,
        "subject": subject,
        "by": by,
        "signed_at": "2025-01-01T12:00:00.000Z",
        "session": None,
        "text": None,
        "until": None,
        "phase": None,
        "refers": [],
        "keyid": "k",
        "digest": "d",
    }
    entry.update(changes)
    return entry


ATTESTATIONS = [
    _attestation("signoff", "P2-X3", "alice", session="session-a"),
    _attestation("signoff", "P2-X3", "bob", session="session-b"),
    _attestation("signoff", "CG-7", "bob"),
    _attestation(
        "waiver",
        "canary.exit.users-confirm",
        "alice",
        until="2999-01-01T23:59:59.999Z",
        phase="canary",
    ),
    _attestation("waiver", "canary.old", "bob", until="2025-01-01T18:00:00.000Z"),
    _attestation("waiver", "alpha.other", "bob", until="2999-01-01T23:59:59.999Z", phase="alpha"),
    _attestation("report", "session-a", "carol", session="session-a"),
]


def _custody_bundle(
    root: Path,
    keys: KeyPair,
    phase: str,
    stamp: str,
    custody: dict[str, Any] | bytes | None,
    *,
    verdict: str = "PASS",
    **changes: Any,
) -> Path:
    """:func:`_bundle`, holding ``custody`` as its ``custody.json`` (written before sealing;
    bytes as given; None: no custody.json, an older bundle)."""
    files = dict(DEFAULT_FILES)
    if custody is not None:
        data = custody if isinstance(custody, bytes) else json.dumps(custody).encode()
        files["custody.json"] = data
    return _bundle(root, keys, phase, stamp, verdict=verdict, files=files, **changes)


def _status_out(
    reports: Path, trusted_dir: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> str:
    args = ["status", M, "--reports", str(reports), "--trusted-keys", str(trusted_dir)]
    assert main([*args, "--requires", "canary=alpha", *extra]) == EXIT_OK
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return captured.out


LOOSE = "[windows] canary_hours = 1.0 (runbook: at least 48 hours)"


def test_status_shows_time_in_phase_signoffs_and_waivers(
    tmp_path: Path,
    reports: Path,
    keys: KeyPair,
    trusted_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    alpha = _custody_bundle(tmp_path, keys, "alpha", DAY1, _custody(phase="alpha"))
    canary = _custody_bundle(
        tmp_path,
        keys,
        "canary",
        DAY2,
        _custody(attestations=ATTESTATIONS),
        verdict="FAIL",
        promotable=False,
        not_promotable_because=[f"the config loosens the runbook: {LOOSE}"],
        loosened=[LOOSE],
        relies_on=_relies(alpha),
    )

    out = _status_out(reports, trusted_dir, capsys)

    assert all(len(line) <= 100 for line in out.splitlines()), out
    flat = " ".join(out.split())
    assert "custody (the latest verified bundle's custody.json):" in out
    assert f"canary ({canary.name}): in phase 26h (from 2024-12-31T22:05:00Z" in flat
    assert f"alpha ({alpha.name}): in phase 2h (from 2024-12-31T22:05:00Z" in flat
    assert "sign-offs: CG-7 x1 (bob); P2-X3 x2 (alice, bob)" in flat
    assert "waivers: canary.exit.users-confirm until 2999-01-01 (alice);" in flat
    assert "canary.old until 2025-01-01T18:00:00.000Z (bob, expired)" in flat
    assert "alpha.other" not in flat  # a waiver of another phase is not in force here
    assert f"- loosened: {LOOSE}" in flat
    assert f"not promotable: the config loosens the runbook: {LOOSE}" in flat

    document = json.loads(_status_out(reports, trusted_dir, capsys, "--json"))
    alpha_json, canary_json = document["phases"]
    assert alpha_json["signoffs"] == []
    assert alpha_json["waivers"] == []
    assert canary_json["custody_from"] == canary.name
    assert canary_json["custody"] == "read"
    assert canary_json["phase_start"] == "2024-12-31T22:05:00Z"
    assert canary_json["in_phase_s"] == 26 * 3600
    assert canary_json["signoffs"] == [
        {"item": "CG-7", "count": 1, "by": ["bob"], "sessions": []},
        {
            "item": "P2-X3",
            "count": 2,
            "by": ["alice", "bob"],
            "sessions": ["session-a", "session-b"],
        },
    ]
    assert canary_json["waivers"] == [
        {
            "gate": "canary.exit.users-confirm",
            "until": "2999-01-01T23:59:59.999Z",
            "by": "alice",
            "phase": "canary",
            "expired": False,
        },
        {
            "gate": "canary.old",
            "until": "2025-01-01T18:00:00.000Z",
            "by": "bob",
            "phase": None,
            "expired": True,
        },
    ]
    assert f"loosened: {LOOSE}" in canary_json["blocks"]


def test_chain_status_judges_waiver_expiry_at_now(
    tmp_path: Path, reports: Path, keys: KeyPair
) -> None:
    from datetime import datetime
    from datetime import timezone

    _custody_bundle(tmp_path, keys, "canary", DAY2, _custody(attestations=ATTESTATIONS))
    early = datetime(2025, 1, 1, 12, tzinfo=timezone.utc)

    (status,) = chain_status(reports, M, ["canary"], {}, keys.trusted, now=early)

    assert status.waivers is not None
    assert [w["expired"] for w in status.waivers] == [False, False]
    assert status.blocks == ()


def test_status_phase_not_started(
    tmp_path: Path,
    reports: Path,
    keys: KeyPair,
    trusted_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    soak: dict[str, Any] = {
        "migration_start": None,
        "phase_start": None,
        "max_gap_h": 6.0,
        "runs": [],
    }
    _custody_bundle(tmp_path, keys, "alpha", DAY1, _custody(phase="alpha", soak=soak))

    out = _status_out(reports, trusted_dir, capsys)
    assert f"alpha ({DAY1}-PASS): not started" in out
    assert "sign-offs: none" in out
    assert "waivers: none" in out
    (alpha_json,) = json.loads(_status_out(reports, trusted_dir, capsys, "--json"))["phases"]
    assert (alpha_json["phase_start"], alpha_json["in_phase_s"]) == (None, None)
    assert alpha_json["blocks"] == []


MALFORMED_CUSTODY = {
    "syntax": (b'{"soak": ', "custody.json unreadable: not strict JSON: "),
    "duplicate key": (
        b'{"soak": {}, "soak": {"phase_start": null}}',
        'custody.json unreadable: not strict JSON: duplicate key "soak"',
    ),
    "not an object": (b"[1, 2]", "custody.json unreadable: not a JSON object but list"),
    "attestations": (
        json.dumps(_custody(attestations={"kind": "waiver"})).encode(),
        "custody.json unreadable: attestations is not a list of objects",
    ),
    "soak": (json.dumps(_custody(soak=[])).encode(), "custody.json unreadable: soak is not"),
    "phase_start": (
        json.dumps(_custody(soak={"phase_start": "yesterday\x1b[2J"})).encode(),
        "custody.json unreadable: soak.phase_start 'yesterday\\x1b[2J' is not an ISO",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_CUSTODY))
def test_status_notes_an_unreadable_custody_json(
    case: str,
    tmp_path: Path,
    reports: Path,
    keys: KeyPair,
    trusted_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data, expected = MALFORMED_CUSTODY[case]
    bundle = _custody_bundle(tmp_path, keys, "alpha", DAY1, data)

    out = _status_out(reports, trusted_dir, capsys)
    assert expected in " ".join(out.split()), out
    assert f"alpha ({bundle.name}): custody.json unreadable (see blocked)" in out
    assert "\x1b" not in out
    assert all(len(line) <= 100 for line in out.splitlines()), out
    (alpha_json,) = json.loads(_status_out(reports, trusted_dir, capsys, "--json"))["phases"]
    assert alpha_json["status"] == "VALID"
    assert alpha_json["custody"] == "unreadable"
    assert any(b.startswith("custody.json unreadable: ") for b in alpha_json["blocks"])
    assert alpha_json["signoffs"] is None
    assert alpha_json["waivers"] is None


def test_status_custody_json_over_the_bound_is_unreadable(
    tmp_path: Path, reports: Path, keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytest_canarygate.chain as chain_module

    _custody_bundle(tmp_path, keys, "alpha", DAY1, _custody(phase="alpha"))
    monkeypatch.setattr(chain_module, "MAX_CUSTODY_BYTES", 64)

    (status,) = chain_status(reports, M, ["alpha"], {}, keys.trusted)

    assert status.custody == "unreadable"
    assert any("more than the 64 read" in b for b in status.blocks), status.blocks


def test_status_without_custody_json_still_works(
    tmp_path: Path,
    reports: Path,
    keys: KeyPair,
    trusted_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    alpha = _custody_bundle(tmp_path, keys, "alpha", DAY1, None)
    _custody_bundle(tmp_path, keys, "canary", DAY2, None, relies_on=_relies(alpha))

    out = _status_out(reports, trusted_dir, capsys)
    assert f"alpha ({alpha.name}): no custody.json (a bundle from before custody" in out
    assert "blocked:" not in out
    document = json.loads(_status_out(reports, trusted_dir, capsys, "--json"))
    for phase_json in document["phases"]:
        assert phase_json["custody"] == "absent"
        assert phase_json["phase_start"] is None
        assert phase_json["in_phase_s"] is None
        assert phase_json["signoffs"] is None
        assert phase_json["waivers"] is None
        assert phase_json["blocks"] == []


def test_status_reads_custody_only_from_a_verified_bundle(
    tmp_path: Path, reports: Path, keys: KeyPair
) -> None:
    older = _custody_bundle(tmp_path, keys, "canary", DAY1, _custody(attestations=ATTESTATIONS))
    newer = _custody_bundle(tmp_path, keys, "canary", DAY2, _custody())
    forged = _custody(attestations=[_attestation("signoff", "FORGED", "mallory")])
    (newer / "custody.json").write_text(json.dumps(forged))  # changed after sealing

    (status,) = chain_status(reports, M, ["canary"], {}, keys.trusted)

    assert (status.latest, status.status) == (newer.name, "INVALID")
    assert any("custody.json: sha256 mismatch" in b for b in status.blocks)
    assert status.custody_from == older.name  # the newest bundle that verifies
    assert status.signoffs is not None
    assert [s["item"] for s in status.signoffs] == ["CG-7", "P2-X3"]
    assert status.in_phase_s == 2 * 3600

    (untrusted,) = chain_status(reports, M, ["canary"], {}, {})
    assert (untrusted.custody_from, untrusted.custody, untrusted.signoffs) == (None, None, None)


def test_status_escapes_custody_text(
    tmp_path: Path,
    reports: Path,
    keys: KeyPair,
    trusted_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hostile = [
        _attestation("signoff", f"ITEM-{n}\x1b[31m\u202e", f"signer-{n}\x07") for n in range(30)
    ]
    hostile.append(_attestation("waiver", "g\x1b]0;x\x07", "eve\u202e", until="x" * 150))
    _custody_bundle(tmp_path, keys, "alpha", DAY1, _custody(phase="alpha", attestations=hostile))

    out = _status_out(reports, trusted_dir, capsys)

    assert all(len(line) <= 100 for line in out.splitlines()), out
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in out
    assert "ITEM-7\\x1b[31m\\u202e x1 (signer-7\\x07)" in " ".join(out.split())
    assert "g\\x1b]0;x\\x07 until" in out
