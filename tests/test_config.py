"""Config file validation: every mistake names the file, the key and what is accepted."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pytest_canarygate.agtmux.pack import PACK
from pytest_canarygate.agtmux.settings import DEFAULT_PANE_FIELDS
from pytest_canarygate.config import load_config
from pytest_canarygate.config import with_endpoints
from pytest_canarygate.errors import ConfigError

VALID = """
[migration]
id = "agtmux-v4-to-v5"
[daemons.v4]
endpoint = "unix:///run/agtmux-v4/agtmuxd.sock"
[daemons.v5]
endpoint = "unix:///run/agtmux-v5/agtmuxd.sock"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "canarygate.toml"
    path.write_text(text)
    return path


def test_minimal_config_gets_runbook_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID), PACK)
    assert config.migration_id == "agtmux-v4-to-v5"
    assert config.daemons["v5"].endpoint == "unix:///run/agtmux-v5/agtmuxd.sock"
    assert config.pack_settings.pane_parity.fields == DEFAULT_PANE_FIELDS
    assert "updated_at" in config.pack_settings.pane_parity.ignore
    assert config.connect_timeout_s == 2.0
    assert len(config.digest) == 64


def test_shipped_configs_are_valid() -> None:
    root = Path(__file__).resolve().parents[1]
    for path in (root / "canarygate.toml", root / "examples" / "fleet.canarygate.toml"):
        config = load_config(path, PACK)
        assert set(config.daemons) == {"v4", "v5"}


def test_example_paths_resolve_against_the_file(tmp_path: Path) -> None:
    text = VALID + '[catalog]\npath = "gates/catalog.toml"\n[reports]\ndir = "out"\n'
    config = load_config(write(tmp_path, text), PACK)
    assert config.catalog_path == (tmp_path / "gates" / "catalog.toml").resolve()
    assert config.reports_dir == (tmp_path / "out").resolve()


def test_a_published_runbook_url_is_kept_for_the_gate_links(tmp_path: Path) -> None:
    url = "https://git.example.org/ops/runbook/migration.md"
    config = load_config(write(tmp_path, VALID + f'[reports]\nrunbook_url = "{url}"\n'), PACK)
    assert config.runbook_url == url
    assert load_config(write(tmp_path, VALID), PACK).runbook_url is None


@pytest.mark.parametrize(
    "url", ["docs/runbook.md", "file:///etc/passwd", "https://x.org/r.md#top", "https://x.org/a b"]
)
def test_a_runbook_url_that_is_no_http_document_url_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match=r"reports.runbook_url = .*an http\(s\) URL"):
        load_config(write(tmp_path, VALID + f'[reports]\nrunbook_url = "{url}"\n'), PACK)


def test_star_compares_every_field_not_ignored(tmp_path: Path) -> None:
    text = VALID + '[parity.panes]\nfields = "*"\nignore = ["updated_at"]\n'
    parity = load_config(write(tmp_path, text), PACK).pack_settings.pane_parity
    assert parity.fields is None
    assert parity.compared({"pane_id", "updated_at", "title"}) == ["pane_id", "title"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[migration]\nid = 'x'\n", "missing table [daemons]"),
        (VALID.split("[daemons.v5]")[0], "missing table [daemons.v5] with an endpoint"),
        (
            VALID.replace("agtmux-v4-to-v5", "bad id/with slash"),
            "migration.id = 'bad id/with slash'",
        ),
        (
            VALID.replace("unix:///run/agtmux-v5/agtmuxd.sock", "tcp://host:1"),
            "daemons.v5.endpoint",
        ),
        (VALID + "[timeouts]\nconnect_s = -1\n", "timeouts.connect_s = -1: expected a number"),
        (VALID + "[timeouts]\nread_s = 'fast'\n", "timeouts.read_s = 'fast'"),
        (VALID + "[sources]\nexpected_healthy = [1]\n", "sources.expected_healthy = [1]"),
        (VALID + "[parity.panes]\nfields = ['a']\nignore = ['a']\n", "in both fields and ignore"),
        (VALID + "[daemons.v6]\nendpoint = 'unix:///x'\n", "unknown key 'daemons.v6'"),
        (VALID + "[surprise]\n", "unknown key 'surprise'; accepted here: migration, daemons"),
        ("[migration\n", "not valid TOML"),
        (
            VALID.replace("unix:///run/agtmux-v5/agtmuxd.sock", "https://ops.example/v5"),
            "daemons.v5.endpoint = 'https://ops.example/v5': expected unix:///",
        ),
        (VALID + "[windows]\ncanary_duration_h = inf\n", "windows.canary_duration_h = inf"),
        (VALID + "[windows]\ngradual_days = nan\n", "windows.gradual_days = nan"),
        (VALID + "[thresholds]\nmin_build_tests = 0\n", "thresholds.min_build_tests = 0"),
        (
            VALID + '[evidence]\nalerts = "http://ops.example/ops"\n',
            "plain http to ops.example could be forged",
        ),
        (
            VALID + '[evidence]\nalerts = "https://me:token@ops.example/ops"\n',
            "credentials in a URI end up in the evidence bundle",
        ),
    ],
)
def test_mistakes_name_file_key_and_value(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, PACK)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", PACK)


def test_simulated_evidence_replaces_live_evidence_uris(tmp_path: Path) -> None:
    text = (
        VALID + '[evidence]\nbuild = "file:///srv/ci/junit.xml"\nalerts = "https://ops:9100/ops"\n'
    )
    live = load_config(write(tmp_path, text), PACK)
    sim = with_endpoints(
        live,
        {"v4": "unix:///tmp/s/v4/a.sock", "v5": "unix:///tmp/s/v5/a.sock"},
        evidence={"build": "file:///tmp/s/evidence/junit.xml"},
    )
    assert sim.evidence_uri("build") == "file:///tmp/s/evidence/junit.xml"
    assert sim.evidence_uri("snapshots") == "unix:///tmp/s/v5/a.sock"
    # a live URI the simulator does not publish is dropped, never read by a simulated run
    assert sim.evidence_uri("alerts") == "unix:///tmp/s/v5/a.sock"
    assert live.evidence_uri("build") == "file:///srv/ci/junit.xml"


def test_unknown_evidence_kind_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + '[evidence]\nledger = "file:///x"\n')
    with pytest.raises(
        ConfigError, match=r"unknown key 'evidence.ledger'; accepted here: snapshots"
    ):
        load_config(path, PACK)


def test_a_config_may_name_its_pack(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID.replace('id = "', 'pack = "agtmux"\nid = "')), PACK)
    assert config.pack is PACK


def test_a_config_for_another_pack_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace('id = "', 'pack = "kvstore"\nid = "'))
    with pytest.raises(ConfigError, match=r"migration\.pack = 'kvstore': expected 'agtmux'"):
        load_config(path, PACK)


def test_pack_tables_are_unknown_to_a_pack_without_them(tmp_path: Path) -> None:
    bare = replace(PACK, settings_tables=(), parse_settings=None)
    path = write(tmp_path, VALID + "[windows]\ngradual_days = 8\n")
    with pytest.raises(ConfigError, match="unknown key 'windows'"):
        load_config(path, bare)
    assert load_config(write(tmp_path, VALID), bare).pack_settings is None
