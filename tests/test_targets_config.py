"""``[[targets]]``, ``[ssh]`` and ``ssh://`` endpoints as the config reads them: strict, every
mistake named with its file and key; hostile URIs refused before anything reaches ssh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_canarygate.agtmux.pack import PACK
from pytest_canarygate.config import SshConfig
from pytest_canarygate.config import parse_config
from pytest_canarygate.endpoints import parse_endpoint
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.results import GateResult
from pytest_canarygate.results import RunOutcome
from pytest_canarygate.ssh_forward import ssh_argv
from pytest_canarygate.tomlfile import tomllib
from pytest_canarygate.verdicts import Verdict

SOURCE = "fleet.toml"


def _parse(text: str, base: Path = Path("/etc/cg")) -> Any:
    return parse_config(tomllib.loads(text), source=SOURCE, base_dir=base, pack=PACK)


def _target(
    name: str, v4: str = "ssh://ops@h1/run/v4/d.sock", v5: str = "unix:///run/v5/d.sock"
) -> str:
    return (
        f'[[targets]]\nname = "{name}"\n[targets.daemons.v4]\nendpoint = "{v4}"\n'
        f'[targets.daemons.v5]\nendpoint = "{v5}"\n'
    )


HEAD = '[migration]\nid = "m"\n'


def test_targets_are_read_in_order_with_their_own_daemons(tmp_path: Path) -> None:
    (tmp_path / "ssh").mkdir()
    (tmp_path / "ssh" / "config").write_text("Host *\n")
    config = _parse(
        HEAD
        + _target("build-01")
        + _target("build-02", v5="ssh://h2:2222/run/v5/d.sock")
        + '[ssh]\nconfig_file = "ssh/config"\noptions = ["ServerAliveInterval=5"]\n',
        tmp_path,
    )
    assert [t.name for t in config.targets] == ["build-01", "build-02"]
    assert config.targets[1].daemons["v5"].endpoint == "ssh://h2:2222/run/v5/d.sock"
    assert config.daemons == {}
    assert config.ssh == SshConfig(tmp_path / "ssh" / "config", ("ServerAliveInterval=5",))


def test_without_targets_the_config_is_as_before() -> None:
    config = _parse(
        HEAD + '[daemons.v4]\nendpoint = "unix:///a/v4.sock"\n'
        '[daemons.v5]\nendpoint = "unix:///a/v5.sock"\n'
    )
    assert config.targets == ()
    assert set(config.daemons) == {"v4", "v5"}
    assert config.ssh == SshConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            _target("a")
            + '[daemons.v4]\nendpoint = "unix:///a"\n[daemons.v5]\nendpoint = "unix:///b"\n',
            "fleet.toml: both [daemons] and [[targets]] are given",
        ),
        (_target("a") + _target("a"), "targets[1].name = 'a': expected a name no other"),
        (_target("Build_01"), "targets[0].name = 'Build_01': expected lower-case letters"),
        (_target("-x"), "targets[0].name = '-x'"),
        (
            _target("a").replace('name = "a"\n', 'name = "a"\nhost = "x"\n'),
            "unknown key 'targets[0].host'",
        ),
        ('[[targets]]\nname = "a"\n', "missing table [targets[0].daemons]"),
        (
            _target("a").replace("[targets.daemons.v5]", "[targets.daemons.v6]"),
            "unknown key 'targets[0].daemons.v6'",
        ),
        (_target("a", v4="http://127.0.0.1/x"), "targets[0].daemons.v4.endpoint"),
        (_target("a") + "[ssh]\nport = 22\n", "unknown key 'ssh.port'"),
        (_target("a") + '[ssh]\nconfig_file = "nowhere"\n', "ssh.config_file = 'nowhere'"),
        (
            _target("a") + '[ssh]\noptions = ["-oProxyCommand=sh"]\n',
            "ssh.options = '-oProxyCommand=sh'",
        ),
        (_target("a") + '[ssh]\noptions = ["A=b\\nc"]\n', "ssh.options"),
    ],
)
def test_config_mistakes_name_the_file_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _parse(HEAD + text)
    assert message in str(caught.value)
    assert str(caught.value).startswith(SOURCE)


def test_an_empty_targets_array_is_refused() -> None:
    with pytest.raises(ConfigError, match="expected a non-empty array of \\[\\[targets\\]\\]"):
        _parse("targets = []\n" + HEAD)


def test_ssh_endpoints_belong_to_targets_only() -> None:
    with pytest.raises(ConfigError, match=r"daemons.v4.endpoint.*belong to a \[\[targets\]\]"):
        _parse(
            HEAD + '[daemons.v4]\nendpoint = "ssh://h/a.sock"\n'
            '[daemons.v5]\nendpoint = "unix:///a/v5.sock"\n'
        )


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("ssh://-oProxyCommand=touch@x/a.sock", "user '-oProxyCommand=touch'"),
        ("ssh://-oProxyCommand=x/a.sock", "host '-oProxyCommand=x'"),
        ("ssh://ops:hunter2@h/a.sock", "credentials"),
        ("ssh://h/a.sock?x=1", "query"),
        ("ssh://h/a.sock#frag", "fragment"),
        ("ssh://h", "no socket path"),
        ("ssh:h/a.sock", "ssh://[user@]host[:port]/absolute/path"),
        ("ssh://h/run/../etc/a.sock", "no '..'"),
        ("ssh://h/a;rm -rf ~", "must be absolute and plain"),
        ("ssh://h/a$(id).sock", "must be absolute and plain"),
        ("ssh://h/a:b.sock", "must be absolute and plain"),
        ("ssh://h:99999/a.sock", "port '99999'"),
        ("ssh://h:-1/a.sock", "port '-1'"),
        ("ssh://h /a.sock", "host 'h '"),
        ("ssh://h/run/", "names a directory"),
        ("ssh://[zz]/a.sock", "not an IPv6 address"),
        ("ssh://h%2f/a.sock", "host 'h%2f'"),
        ("ssh://h/" + "a" * 120, "AF_UNIX"),
    ],
)
def test_hostile_ssh_uris_are_refused_without_repeating_secrets(uri: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_endpoint(uri, strict=True)
    assert why in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_an_ssh_uri_becomes_an_argv_that_cannot_smuggle_options() -> None:
    ep = parse_endpoint("ssh://ops@[::1]:2222/run/v5/d.sock", strict=True)
    assert (ep.user, ep.host, ep.port, ep.path) == ("ops", "::1", 2222, "/run/v5/d.sock")
    argv = ssh_argv(ep, SshConfig(Path("/cfg"), ("ServerAliveInterval=5",)), 2.5)
    assert argv[:9] == [
        "ssh", "-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none",
        "-o", "ConnectTimeout=3",
    ]  # fmt: skip
    assert argv[9:] == ["-F", "/cfg", "-o", "ServerAliveInterval=5", "-p", "2222", "-l", "ops"]


def test_the_fleet_verdict_is_the_worst_and_each_target_has_its_own() -> None:
    results = [
        GateResult("g[a]", "g", "I-1", Verdict.PASS, target="a"),
        GateResult("g[b]", "g", "I-1", Verdict.UNOBSERVABLE, "target b: down", target="b"),
    ]
    outcome = RunOutcome("alpha", results, targets=["a", "b"], signed=True)
    fleet = outcome.fleet_json()
    assert fleet is not None
    assert fleet["verdict"] == "fail"
    assert fleet["promotable"] is False
    assert fleet["targets"]["a"]["verdict"] == "pass"
    assert fleet["targets"]["a"]["promotable"] is True
    assert fleet["targets"]["b"]["verdict"] == "fail"
    assert any("g[b]" in why for why in fleet["targets"]["b"]["not_promotable_because"])
    assert results[1].as_json()["target"] == "b"
    # a target not one gate judged keeps the fleet from passing
    alone = RunOutcome("alpha", results[:1], targets=["a", "b"], signed=True)
    assert alone.verdict.value == "incomplete"
    assert not alone.promotable
    assert "no gate of target b ran" in alone.not_promotable_because
    # without targets nothing changes: no fleet, no target key
    plain = RunOutcome("alpha", [GateResult("g", "g", "I-1", Verdict.PASS)])
    assert plain.fleet_json() is None
    assert "target" not in plain.results[0].as_json()
