"""``canarygate signoff``, ``waive`` and ``report``: files that load as valid, and the refusals."""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path

import pytest

from pytest_canarygate import attestation_cli
from pytest_canarygate.attestation import Attestations
from pytest_canarygate.attestation import load_attestations
from pytest_canarygate.attestation import parse_signers
from pytest_canarygate.attestation_cli import parse_until
from pytest_canarygate.cli import EXIT_MALFORMED
from pytest_canarygate.cli import EXIT_OK
from pytest_canarygate.cli import EXIT_USAGE
from pytest_canarygate.cli import main
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.keys import generate_keypair
from pytest_canarygate.signing import ENVELOPE_NAME

ROOT = Path(__file__).resolve().parents[1]
MIGRATION = "mig-1"
NOW = datetime(2026, 12, 4, 20, 39, 6, 161000, tzinfo=timezone.utc)
SIGN = ["--by", "alice", "--key", "keys/alice.pem"]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with alice's key pair and a canarygate.toml naming the migration; the
    command's clock reads NOW."""
    os.chmod(tmp_path, 0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(attestation_cli, "_now", lambda: NOW)
    generate_keypair(tmp_path / "keys" / "alice.pem")
    (tmp_path / "canarygate.toml").write_text(f'[migration]\nid = "{MIGRATION}"\n')
    return tmp_path


def load(root: Path) -> Attestations:
    signers = parse_signers(
        [{"name": "alice", "key": "keys/alice.pem.pub.json", "items": "*", "waive": ["*"]}],
        root,
        "canarygate.toml",
    )
    return load_attestations(
        root / "reports", MIGRATION, signers, latest_allowed=NOW + timedelta(seconds=30)
    )


def test_signoff_writes_a_file_that_loads_as_valid(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["signoff", "--item", "P2-X3", "--session", "s1", "--text", "ok", *SIGN]) == EXIT_OK
    out = capsys.readouterr().out
    (got,) = load(here).valid
    assert (got.kind, got.subject, got.session, got.text, got.by) == (
        "signoff",
        "P2-X3",
        "s1",
        "ok",
        "alice",
    )
    assert f"wrote {Path('reports') / MIGRATION / 'signoffs' / got.path.name}" in out
    assert f"key id: {got.keyid}" in out


def test_signoff_refers_to_a_bundle_and_to_an_attestation_file(here: Path) -> None:
    bundle = here / "bundle"
    bundle.mkdir()
    (bundle / ENVELOPE_NAME).write_text("{}\n")
    other = here / "earlier.dsse.json"
    other.write_text("[]\n")
    args = ["signoff", "--item", "P2-X3", "--refers", "bundle", str(other), *SIGN]
    assert main(args) == EXIT_OK
    (got,) = load(here).valid
    assert got.refers == (
        hashlib.sha256(b"{}\n").hexdigest(),
        hashlib.sha256(b"[]\n").hexdigest(),
    )


def test_refers_to_a_folder_that_is_no_bundle_is_malformed(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (here / "empty").mkdir()
    assert main(["signoff", "--item", "P2-X3", "--refers", "empty", *SIGN]) == EXIT_MALFORMED
    assert "not a bundle" in capsys.readouterr().err


def test_waive_writes_a_waiver_until_the_end_of_the_day(here: Path) -> None:
    args = ["waive", "--gate", "canary.x", "--why", "known flake", "--until", "2026-12-10"]
    assert main([*args, "--phase", "canary", *SIGN]) == EXIT_OK
    found = load(here)
    (got,) = found.valid
    assert got.until == datetime(2026, 12, 10, 23, 59, 59, 999000, tzinfo=timezone.utc)
    assert (got.kind, got.subject, got.text, got.phase) == (
        "waiver",
        "canary.x",
        "known flake",
        "canary",
    )
    assert found.waivers("canary.x", "canary", NOW) == [got]


def test_waive_refuses_a_past_expiry(here: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["waive", "--gate", "g", "--why", "w", "--until", "2026-12-01", *SIGN]
    assert main(args) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("canarygate waive: error: until 2026-12-01T23:59:59.999Z is not after")
    assert err.count("\n") == 1


def test_report_and_its_resolution(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["report", "--session", "s1", "--text", "history lost", *SIGN]) == EXIT_OK
    (report,) = load(here).open_reports("s1")
    assert report.text == "history lost"

    monkeypatch.chdir(here / "keys")  # the resolution is filed beside the report, wherever we run
    key = ["--by", "alice", "--key", "alice.pem"]
    assert main(["report", "--resolve", str(report.path), "--text", "replayed", *key]) == EXIT_OK
    found = load(here)
    assert found.open_reports() == []
    (resolution,) = [a for a in found.valid if a.kind == "resolution"]
    assert resolution.subject == report.digest
    assert not (here / "keys" / "reports").exists()


def test_resolving_a_file_that_is_no_report_is_malformed(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (here / "x.json").write_text("{}")
    assert main(["report", "--resolve", "x.json", "--text", "t", *SIGN]) == EXIT_MALFORMED
    assert "not a user report" in capsys.readouterr().err
    assert main(["report", "--resolve", "none.json", "--text", "t", *SIGN]) == EXIT_USAGE


def test_loose_private_key_permissions_are_refused(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.chmod(here / "keys" / "alice.pem", 0o644)
    assert main(["signoff", "--item", "P2-X3", *SIGN]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("canarygate signoff: error: signing key keys/alice.pem: mode 0644")
    assert "chmod 600" in err
    assert not (here / "reports").exists()


def test_missing_migration_without_config_is_a_usage_error(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (here / "canarygate.toml").unlink()
    assert main(["report", "--session", "s1", "--text", "t", *SIGN]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "pass --migration ID" in err
    assert main(["report", "--session", "s1", "--text", "t", "--migration", "m2", *SIGN]) == 0
    assert len(list((here / "reports" / "m2" / "user-reports").iterdir())) == 1


def test_an_existing_file_is_never_overwritten(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["signoff", "--item", "P2-X3", "--text", "first", *SIGN]) == EXIT_OK
    (path,) = (here / "reports" / MIGRATION / "signoffs").iterdir()
    before = path.read_bytes()
    assert main(["signoff", "--item", "P2-X3", "--text", "second", *SIGN]) == EXIT_USAGE
    assert "already exists; an attestation is never overwritten" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_reports_option_picks_the_folder(here: Path) -> None:
    assert main(["signoff", "--item", "P2-X3", "--reports", "archive", *SIGN]) == EXIT_OK
    assert len(list((here / "archive" / MIGRATION / "signoffs").iterdir())) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-31", datetime(2026, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc)),
        ("2026-12-31T18:00Z", datetime(2026, 12, 31, 18, tzinfo=timezone.utc)),
        ("2026-12-31T20:00+02:00", datetime(2026, 12, 31, 18, tzinfo=timezone.utc)),
    ],
)
def test_parse_until(text: str, expected: datetime) -> None:
    assert parse_until(text) == expected


@pytest.mark.parametrize(("text", "message"), [("2026-12-31T18:00", "time zone"), ("soon", "ISO")])
def test_parse_until_refuses(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_until(text)


def test_subcommands_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("signoff", "waive", "report"):
        assert f"    {command} " in out
    with pytest.raises(SystemExit):
        main(["signoff", "--help"])
    assert "not checked" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["signoff", "--item", "P2-X9"],
            "--item 'P2-X9': not an item of",
        ),
        (
            ["waive", "--gate", "canary.exit.user-confirm", "--why", "w", "--until", "2999-01-01"],
            "--gate 'canary.exit.user-confirm': not a gate of",
        ),
        (
            [
                "waive", "--gate", "canary.exit.users-confirm", "--why", "w",
                "--until", "2999-01-01", "--phase", "canray",
            ],
            "--phase 'canray': not a phase of",
        ),
    ],
)  # fmt: skip
def test_an_id_the_catalog_does_not_know_is_refused(
    here: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    """With a gates/catalog.toml here, a misspelt item, gate or phase (which would never
    count) is a usage error, and nothing is written."""
    (here / "gates").mkdir()
    shutil.copy(ROOT / "gates" / "catalog.toml", here / "gates" / "catalog.toml")
    assert main([*args, *SIGN]) == EXIT_USAGE
    assert expected in capsys.readouterr().err
    assert not (here / "reports").exists()
