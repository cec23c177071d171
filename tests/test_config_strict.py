"""Config strictness: every window and threshold has a range that cannot overflow, "*" and empty
lists mean what they say, evidence URIs are checked against their kind at load, and every error
names the file and the key (the plugin turns it into one usage-error line, exit 4)."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest
from gate_repo import make_gate_repo
from gate_repo import only_run
from test_gates_units import CATALOG
from test_gates_units import Fleet
from test_gates_units import calls
from test_gates_units import judge

from pytest_canarygate.agtmux.judgement import sources_healthy
from pytest_canarygate.agtmux.pack import PACK
from pytest_canarygate.agtmux.providers.registry import INTERFACES
from pytest_canarygate.agtmux.providers.registry import make_provider
from pytest_canarygate.agtmux.providers.registry import registered_schemes
from pytest_canarygate.agtmux.runbook import PHASES
from pytest_canarygate.agtmux.settings import MAX_WINDOW_DAYS
from pytest_canarygate.agtmux.settings import AgtmuxSettings
from pytest_canarygate.agtmux.settings import Thresholds
from pytest_canarygate.agtmux.settings import Windows
from pytest_canarygate.agtmux.settings import history
from pytest_canarygate.config import MAXIMUM
from pytest_canarygate.config import TableReader
from pytest_canarygate.config import bounded
from pytest_canarygate.config import load_config
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.verdicts import Verdict

VALID = """
[migration]
id = "agtmux-v4-to-v5"
[daemons.v4]
endpoint = "unix:///run/agtmux-v4/agtmuxd.sock"
[daemons.v5]
endpoint = "unix:///run/agtmux-v5/agtmuxd.sock"
"""
TABLES = {"windows": Windows, "thresholds": Thresholds}
#: The smallest value each kind of field accepts.
SMALLEST: dict[str, Any] = {"int": 1, "float": sys.float_info.min * sys.float_info.epsilon}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "canarygate.toml"
    path.write_text(text)
    return path


def refused(tmp_path: Path, text: str) -> str:
    """The one-line error loading ``VALID + text`` raises; it names the file."""
    path = write(tmp_path, VALID + text)
    with pytest.raises(ConfigError) as info:
        load_config(path, PACK)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    return message


def extreme(cls: type[Any], end: str) -> dict[str, Any]:
    """Every field of ``cls`` at its maximum (``end="max"``) or its smallest value."""
    return {
        f.name: f.metadata[MAXIMUM] if end == "max" else SMALLEST[str(f.type)]
        for f in dataclasses.fields(cls)
    }


def settings_at(end: str) -> AgtmuxSettings:
    return AgtmuxSettings(
        windows=Windows(**extreme(Windows, end)),
        thresholds=Thresholds(**extreme(Thresholds, end)),
    )


def toml_at_maxima() -> str:
    text = ""
    for table, cls in TABLES.items():
        text += f"[{table}]\n" + "".join(f"{k} = {v!r}\n" for k, v in extreme(cls, "max").items())
    return text


# --- ranges --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [Windows, Thresholds])
def test_every_window_and_threshold_has_its_own_maximum(cls: type[Any]) -> None:
    for f in dataclasses.fields(cls):
        assert MAXIMUM in f.metadata, f"{cls.__name__}.{f.name} has no maximum"
        assert 0 < getattr(cls(), f.name) <= f.metadata[MAXIMUM]


def test_every_field_at_its_maximum_loads(tmp_path: Path) -> None:
    settings = load_config(write(tmp_path, VALID + toml_at_maxima()), PACK).pack_settings
    assert settings.windows == Windows(**extreme(Windows, "max"))
    assert settings.thresholds == Thresholds(**extreme(Thresholds, "max"))


@pytest.mark.parametrize(
    ("table", "name"),
    [(table, f.name) for table, cls in TABLES.items() for f in dataclasses.fields(cls)],
)
def test_a_value_beyond_the_maximum_names_file_key_value_and_range(
    tmp_path: Path, table: str, name: str
) -> None:
    field = next(f for f in dataclasses.fields(TABLES[table]) if f.name == name)
    maximum = field.metadata[MAXIMUM]
    over = maximum + 1 if field.type == "int" else maximum * 1.001
    message = refused(tmp_path, f"[{table}]\n{name} = {over!r}\n")
    assert f"{table}.{name} = {over!r}: expected" in message
    assert f"> 0 and <= {maximum:g}" in message
    assert refused(tmp_path, f"[{table}]\n{name} = 0\n").endswith(f"<= {maximum:g}")
    if field.type == "int":
        assert "expected an integer" in refused(tmp_path, f"[{table}]\n{name} = 1.5\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the values the issue saw crash later, or error inside gates
        ("[windows]\ngradual_days = 1e10\n", "windows.gradual_days = 10000000000.0: expected"),
        ("[windows]\nalpha_monitor_h = 1e10\n", "expected a number of hours, > 0 and <= 8784"),
        ("[thresholds]\ncoverage_lag_min = 1e10\n", "a number of minutes, > 0 and <= 1440"),
        ("[windows]\ncanary_duration_h = inf\n", "windows.canary_duration_h = inf"),
        ("[windows]\nescalate_days = nan\n", "windows.escalate_days = nan"),
        ("[thresholds]\nbreach_windows = true\n", "thresholds.breach_windows = True"),
    ],
)
def test_out_of_range_values_are_refused_at_load(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in refused(tmp_path, text)


@pytest.mark.parametrize(
    "now", [datetime(1971, 1, 1, tzinfo=timezone.utc), datetime.now(timezone.utc)]
)
def test_the_longest_history_at_the_maxima_is_computable(tmp_path: Path, now: datetime) -> None:
    settings = settings_at("max")
    assert settings.windows.longest() == timedelta(days=4 * MAX_WINDOW_DAYS)
    assert history(settings) == settings.windows.longest()
    config = load_config(write(tmp_path, VALID + toml_at_maxima()), PACK)
    since = config.history_since(now)
    assert since == now - settings.windows.longest() - timedelta(hours=1)
    # and the farthest-reaching window forward: the archive retention
    assert now + timedelta(days=settings.windows.archive_retention_days) > now


def test_bounded_refuses_a_default_outside_its_range() -> None:
    with pytest.raises(ValueError, match="outside"):
        bounded(10, maximum=5)
    with pytest.raises(ValueError, match="outside"):
        bounded(0, maximum=5)


def test_a_field_without_a_maximum_falls_back_to_the_engine_bound() -> None:
    @dataclasses.dataclass(frozen=True)
    class Plain:
        limit: float = 1.0

    assert TableReader("f.toml", {"limit": 10**10}).numbers(Plain).limit == 10**10
    with pytest.raises(
        ConfigError, match=r"f.toml: t.limit = 100000000000.0: expected a number, > 0 and <= 1e\+10"
    ):
        TableReader("f.toml", {"limit": 1e11}, "t").numbers(Plain)


@pytest.mark.parametrize("end", ["max", "min"])
@pytest.mark.parametrize("phase", PHASES)
def test_every_gate_of_every_phase_judges_settings_at_the_extremes(phase: str, end: str) -> None:
    """No gate errors (OverflowError in date arithmetic, ValueError, ZeroDivisionError...) on a
    config at the ends of the ranges: each ends in a verdict of its own."""
    settings = settings_at(end)
    gates = CATALOG.gates_for(phase)
    assert gates
    for gate in gates:
        verdict, message, _ = judge(gate.id, Fleet.healthy(phase), settings)
        assert not message.startswith("gate error"), f"{gate.id}: {message}"
        assert verdict in Verdict


# --- [sources] expected_healthy and parity fields ------------------------------------------


def test_star_expects_every_listed_source(tmp_path: Path) -> None:
    text = VALID + '[sources]\nexpected_healthy = "*"\n'
    settings = load_config(write(tmp_path, text), PACK).pack_settings
    assert settings.expected_healthy_sources is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[sources]\nexpected_healthy = []\n",
            'sources.expected_healthy = []: expected a non-empty list of strings (or "*" for '
            "every source the daemon lists)",
        ),
        ("[sources]\nexpected_healthy = ['']\n", "sources.expected_healthy = ['']"),
        ("[sources]\nexpected_healthy = 'poller'\n", "sources.expected_healthy = 'poller'"),
        ("[parity.panes]\nfields = []\n", "parity.panes.fields = []: expected a non-empty list"),
        ("[parity.sessions]\nfields = []\n", "parity.sessions.fields = []: expected a non-empty"),
        ("[parity.panes]\nignore = '*'\n", "parity.panes.ignore = '*': expected a list"),
        ("[parity.sessions]\nfields = [' ']\n", "parity.sessions.fields = [' ']"),
    ],
)
def test_lists_that_would_switch_a_check_off_are_refused(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in refused(tmp_path, text)


def test_an_empty_ignore_list_is_still_fine(tmp_path: Path) -> None:
    text = VALID + "[parity.panes]\nignore = []\n"
    assert load_config(write(tmp_path, text), PACK).pack_settings.pane_parity.ignore == ()


HEALTH = [
    ["claude_hooks", {"status": "healthy"}],
    ["claude_jsonl", {"status": "healthy"}],
    ["codex_appserver", {"status": "healthy"}],
    ["poller", {"status": "healthy"}],
]
ACTIVE = [{"source_id": "ext-hooks", "lifecycle": "active"}]


def test_star_judges_every_source_list_source_health_lists() -> None:
    judged = sources_healthy(HEALTH, ACTIVE, None)
    assert judged.verdict is Verdict.PASS
    assert judged.numbers["expected"] == [
        "claude_hooks",
        "claude_jsonl",
        "codex_appserver",
        "poller",
    ]
    assert judged.numbers["expected_every_listed"] is True
    degraded = [*HEALTH[:2], ["codex_appserver", {"status": "degraded"}], HEALTH[3]]
    failed = sources_healthy(degraded, ACTIVE, None)
    assert failed.verdict is Verdict.FAIL
    assert "source codex_appserver is degraded, not healthy" in failed.message
    # a named list ignores a kind it does not name: "*" does not
    assert sources_healthy(degraded, ACTIVE, ("poller",)).verdict is Verdict.PASS


def test_star_with_nothing_listed_proves_nothing() -> None:
    for registry in ([], ACTIVE):
        judged = sources_healthy([], registry, None)
        assert judged.verdict is Verdict.INCONCLUSIVE
        assert '"*" expects every source list_source_health lists, and it lists none' in (
            judged.message
        )
    # only the always-healthy kinds listed and no registry: nothing proves health either
    always = [HEALTH[0], HEALTH[3]]
    assert sources_healthy(always, [], None).verdict is Verdict.INCONCLUSIVE
    # a registered source that is not active still fails
    stale = [{"source_id": "ext-hooks", "lifecycle": "stale"}]
    assert sources_healthy([], stale, None).verdict is Verdict.FAIL


def test_the_source_health_gate_reads_star_as_every_listed_source() -> None:
    every = dataclasses.replace(AgtmuxSettings(), expected_healthy_sources=None)
    fleet = Fleet.healthy("canary")
    assert judge("canary.monitor.source-health", fleet, every)[0] is Verdict.PASS
    calls("v5", "list_source_health", [*HEALTH, ["extra_kind", {"status": "down"}]])(fleet)
    verdict, message, _ = judge("canary.monitor.source-health", fleet, every)
    assert verdict is Verdict.FAIL
    assert "source extra_kind is down, not healthy" in message
    empty = Fleet.healthy("canary")
    calls("v5", "list_source_health", [])(empty)
    calls("v5", "list_source_registry", [])(empty)
    assert judge("canary.monitor.source-health", empty, every)[0] is Verdict.INCONCLUSIVE


# --- evidence URIs -------------------------------------------------------------------------


def test_the_pack_says_which_schemes_read_each_kind() -> None:
    kinds = {accessor.kind for accessor in PACK.accessors.values()}
    assert set(PACK.evidence_schemes) == kinds
    for kind, schemes in PACK.evidence_schemes.items():
        assert schemes == registered_schemes(kind)
        assert kind in INTERFACES
    assert PACK.evidence_schemes["build"] == ("file",)
    assert PACK.evidence_schemes["daemon_log"] == ("file",)


@pytest.mark.parametrize(
    ("kind", "uri", "accepted"),
    [
        ("build", "unix:///run/agtmux-v5/agtmuxd.sock", "expected a file:// URI"),
        ("daemon_log", "http://127.0.0.1:9464/ops", "expected a file:// URI"),
        ("archive", "https://ops.example/archive", "expected a file:// URI"),
    ],
)
def test_an_evidence_uri_of_a_scheme_its_kind_cannot_read_is_refused(
    tmp_path: Path, kind: str, uri: str, accepted: str
) -> None:
    message = refused(tmp_path, f'[evidence]\n{kind} = "{uri}"\n')
    assert f"evidence.{kind} = {uri!r}: {accepted}" in message
    assert f"the agtmux pack reads {kind} evidence from no other scheme" in message
    # and the providers agree: the scheme refused at load has no provider
    with pytest.raises(ConfigError, match="no provider reads"):
        make_provider(kind, uri)


def test_every_scheme_the_pack_lists_loads(tmp_path: Path) -> None:
    uris = {
        "file": "file:///srv/evidence/x",
        "unix": "unix:///run/agtmux-v5/agtmuxd.sock",
        "http": "http://127.0.0.1:9464/ops",
        "https": "https://ops.example/ops",
    }
    for kind, schemes in PACK.evidence_schemes.items():
        for scheme in schemes:
            text = VALID + f'[evidence]\n{kind} = "{uris[scheme]}"\n'
            assert load_config(write(tmp_path, text), PACK).evidence[kind] == uris[scheme]


def test_a_kind_the_pack_does_not_map_accepts_any_scheme(tmp_path: Path) -> None:
    """A third party's provider (pytest_canarygate_make_provider) may serve such a kind."""
    open_pack = dataclasses.replace(
        PACK, evidence_schemes={k: v for k, v in PACK.evidence_schemes.items() if k != "build"}
    )
    text = VALID + '[evidence]\nbuild = "https://ci.example/junit"\n'
    assert load_config(write(tmp_path, text), open_pack).evidence["build"] == (
        "https://ci.example/junit"
    )
    assert "evidence.build" in refused(tmp_path, '[evidence]\nbuild = "https://ci.example/j"\n')


@pytest.mark.parametrize(
    ("uri", "secret", "shown"),
    [
        ("https://ops.example/ops?token=s3cr3t", "s3cr3t", "'https://ops.example/ops?<query>'"),
        ("http://127.0.0.1:9464/ops#s3cr3t", "s3cr3t", "'http://127.0.0.1:9464/ops#<fragment>'"),
        ("file:///srv/ledger.jsonl?s3cr3t", "s3cr3t", "'file:///srv/ledger.jsonl?<query>'"),
        ("unix:///run/v5/agtmuxd.sock?s3cr3t", "s3cr3t", "'unix:///run/v5/agtmuxd.sock?<query>'"),
        ("file://me:s3cr3t@localhost/srv/x", "s3cr3t", "'file://<credentials>@localhost/srv/x'"),
        ("https://me:s3cr3t@ops.example/o", "s3cr3t", "'https://<credentials>@ops.example/o'"),
        ("https://me@ops.example/o?a=s3cr3t", "s3cr3t", "'https://<credentials>@ops.example/o?"),
    ],
)
def test_credentials_queries_and_fragments_are_refused_unrepeated(
    tmp_path: Path, uri: str, secret: str, shown: str
) -> None:
    message = refused(tmp_path, f'[evidence]\nalerts = "{uri}"\n')
    assert "evidence.alerts: bad endpoint" in message
    assert shown in message
    assert secret not in message
    assert "in the evidence bundle and the logs" in message


def test_a_daemon_endpoint_with_a_query_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("agtmux-v5/agtmuxd.sock", "agtmux-v5/agtmuxd.sock?x=1")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=r"daemons\.v5\.endpoint: bad endpoint .*\?<query>"):
        load_config(path, PACK)


def test_a_percent_encoded_question_mark_in_a_file_path_loads(tmp_path: Path) -> None:
    text = VALID + '[evidence]\nbuild = "file:///srv/ci/why%3F/junit.xml"\n'
    assert load_config(write(tmp_path, text), PACK).evidence["build"].endswith("why%3F/junit.xml")


# --- catalog.path and reports.dir ------------------------------------------------------------


@pytest.mark.parametrize("key", ["catalog.path", "reports.dir"])
def test_a_path_that_cannot_resolve_names_its_key(tmp_path: Path, key: str) -> None:
    table, name = key.split(".")
    message = refused(tmp_path, f'[{table}]\n{name} = "a\\u0000b"\n')
    assert f"{key} = 'a\\x00b': expected a path without NUL bytes" in message
    assert f"{key} = 5: expected a non-empty string" in refused(
        tmp_path, f"[{table}]\n{name} = 5\n"
    )


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            '[catalog]\npath = "nowhere/catalog.toml"\n',
            "*canarygate.toml: catalog.path = 'nowhere/catalog.toml': the gate catalog "
            "*nowhere/catalog.toml does not exist*",
        ),
        (
            '[catalog]\npath = "gates"\n',
            "*canarygate.toml: catalog.path = 'gates': the gate catalog *gates is not a file*",
        ),
        (
            '[reports]\ndir = "blocked/reports"\n',
            "*canarygate.toml: reports.dir = 'blocked/reports': cannot create the run folder *",
        ),
    ],
    ids=["missing-catalog", "catalog-is-a-folder", "uncreatable-reports"],
)
def test_run_time_path_errors_name_the_config_key(
    pytester: pytest.Pytester, config: str, expected: str
) -> None:
    make_gate_repo(pytester, config=VALID + config)
    (pytester.path / "blocked").write_text("a file where a folder is needed\n")
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_simulated_run_with_every_setting_at_its_maximum_ends_in_verdicts(
    pytester: pytest.Pytester,
) -> None:
    """The whole run at the maxima: the history asked for (canary reads every history
    accessor, the ones that take ``since``), evidence read, gates judged, the bundle sealed.
    Every gate of every phase is judged at the maxima above."""
    make_gate_repo(pytester, config=VALID + toml_at_maxima())
    result = pytester.runpytest_subprocess("--phase=canary", "--canarygate-sim=healthy")
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output
    assert "Traceback" not in output
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    _, run = only_run(pytester.path)
    assert run["gates"]
    errors = [g for g in run["gates"] if "gate error" in json.dumps(g)]
    assert not errors, errors


def test_the_example_config_documents_every_range() -> None:
    """examples/fleet.canarygate.toml shows each window's and threshold's maximum in brackets."""
    example = Path(__file__).resolve().parents[1] / "examples" / "fleet.canarygate.toml"
    documented = {
        match["key"]: int(match["maximum"])
        for match in re.finditer(
            r"^(?P<key>\w+) = [^#\n]*#[^\n]*\[(?P<maximum>\d+)[]:]", example.read_text(), re.M
        )
    }
    expected = {
        f.name: f.metadata[MAXIMUM] for cls in TABLES.values() for f in dataclasses.fields(cls)
    }
    assert documented == expected


def test_a_scheme_refused_at_load_is_a_usage_error_unless_a_team_provider_may_claim_it(
    pytester: pytest.Pytester,
) -> None:
    make_gate_repo(pytester, config=VALID + '[evidence]\nbuild = "https://ci.example/junit"\n')
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*canarygate.toml: evidence.build = 'https://ci.example/junit': expected a file:// "
            "URI (the agtmux pack reads build evidence from no other scheme)*"
        ]
    )
    # a conftest of the team's own that builds providers: only the hook knows what it claims
    pytester.makeconftest(
        "def pytest_canarygate_make_provider(config, kind, uri, timeouts):\n    return None\n"
    )
    claimed = pytester.runpytest_subprocess(
        "--phase=alpha", "--canarygate-sim=healthy", "-k", "nothing_matches"
    )
    assert claimed.ret == pytest.ExitCode.NO_TESTS_COLLECTED, claimed.stderr.str()
