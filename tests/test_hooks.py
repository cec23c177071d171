"""The pytest_canarygate_* hooks, implemented in a conftest as a team would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gate_repo import make_gate_repo
from gate_repo import only_run
from gate_repo import write_gates

from pytest_canarygate.agtmux.sim import SimFleet
from pytest_canarygate.agtmux.sim import start_fleet


@pytest.fixture
def fleet() -> Iterator[SimFleet]:
    with start_fleet("samples") as running:
        yield running


def config(fleet: SimFleet, evidence: str = "") -> str:
    """A live-style config: the fleet's sockets, and only the evidence given."""
    return (
        '[migration]\nid = "hooks"\n'
        f'[daemons.v4]\nendpoint = "{fleet.endpoints["v4"]}"\n'
        f'[daemons.v5]\nendpoint = "{fleet.endpoints["v5"]}"\n' + evidence
    )


XDIST = pytest.mark.parametrize("dist", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])

MAIN_CATALOG = """
[runbook]
title = "hooks"
document = "runbook.md"
phases = ["alpha", "canary", "gradual", "cutover", "rollback"]
read_only_methods = ["daemon.info"]
[[item]]
id = "B-1"
section = "S"
text = "the v5 build passes"
kind = "prerequisite"
phase = "alpha"
stage = "entry"
[[gate]]
id = "build.gate"
item = "B-1"
title = "build"
needs = ["evidence:build_result"]
"""

EXTRA_CATALOG = """
[[item]]
id = "TEAM-1"
section = "Team checks"
text = "our own check"
kind = "step"
phase = "alpha"
stage = "monitor"
[[gate]]
id = "team.gate"
item = "TEAM-1"
title = "team"
needs = ["v5:daemon.info"]
"""

CONFTEST = """
from pathlib import Path

from pytest_canarygate.agtmux.providers import BuildResultProvider, Evidence, Source
from pytest_canarygate.agtmux.providers import BuildResult


class TeamBuild(BuildResultProvider):
    def build_result(self):
        record = BuildResult(tests=700, failures=0, errors=0, skipped=0, failing=())
        return Evidence((record,), Source(self.uri, "team build api"), {"tests": 700})


def pytest_canarygate_make_provider(config, kind, uri, timeouts):
    if kind == "build" and uri.startswith("https://builds.example/"):
        print(f"HOOK: make_provider {kind} {uri}")
        return TeamBuild(uri)


def pytest_canarygate_catalog_paths(config):
    return [Path(__file__).parent / "team_catalog.toml"]


def pytest_canarygate_observation_ready(config, observation):
    print(f"HOOK: observation_ready {sorted(observation.evidence)}")


def pytest_canarygate_run_finished(config, outcome, bundle, summary):
    print(f"HOOK: run_finished {outcome.verdict} {bundle.name} {summary['counts']}")
"""

GATES = """
from pytest_canarygate import gate


@gate("build.gate")
def test_build(canarygate_observed):
    build = canarygate_observed.evidence("build_result").one()
    assert build.tests == 700 and build.failures == 0


@gate("team.gate")
def test_team(canarygate_observed):
    assert canarygate_observed.daemon("v5").result("daemon.info")["version"]
"""


BUILD_GATE_ONLY = GATES.split('@gate("team.gate")')[0]


@XDIST
def test_team_provider_catalog_and_run_hooks(
    pytester: pytest.Pytester, fleet: SimFleet, dist: list[str]
) -> None:
    write_gates(pytester, MAIN_CATALOG, GATES, name="test_gates.py")
    (pytester.path / "team_catalog.toml").write_text(EXTRA_CATALOG)
    pytester.makeconftest(CONFTEST)
    (pytester.path / "canarygate.toml").write_text(
        config(fleet, '[evidence]\nbuild = "https://builds.example/agtmux-v5/latest"\n')
    )
    result = pytester.runpytest_subprocess("--phase=alpha", "-s", *dist)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*HOOK: make_provider build https://builds.example/agtmux-v5/latest*",
            "*HOOK: observation_ready [[]'build_result'[]]*",
            "*HOOK: run_finished pass *-pass {'PASS': 2}*",
        ]
    )
    assert result.stdout.str().count("HOOK: run_finished") == 1
    _, run = only_run(pytester.path)
    assert {g["gate"] for g in run["gates"]} == {"build.gate", "team.gate"}
    assert len(run["catalogs"]) == 2


def test_unclaimed_uri_falls_back_to_the_builtin_providers(
    pytester: pytest.Pytester, fleet: SimFleet
) -> None:
    write_gates(pytester, MAIN_CATALOG, BUILD_GATE_ONLY, name="test_gates.py")
    (pytester.path / "canarygate.toml").write_text(
        config(fleet, '[evidence]\nbuild = "file:///nonexistent/junit.xml"\n')
    )
    result = pytester.runpytest_subprocess("--phase=alpha")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    _, run = only_run(pytester.path)
    [gate] = run["gates"]
    assert gate["verdict"] == "UNOBSERVABLE"
    assert "/nonexistent/junit.xml" in gate["message"]


def test_build_evidence_without_a_configured_provider_is_unobservable(
    pytester: pytest.Pytester, fleet: SimFleet
) -> None:
    write_gates(pytester, MAIN_CATALOG, BUILD_GATE_ONLY, name="test_gates.py")
    (pytester.path / "canarygate.toml").write_text(config(fleet))
    result = pytester.runpytest_subprocess("--phase=alpha")
    _, run = only_run(pytester.path)
    [gate] = run["gates"]
    assert gate["verdict"] == "UNOBSERVABLE"
    assert "no provider configured for 'build' evidence: set [evidence] build" in gate["message"]
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_provider_that_crashes_makes_its_gates_unobservable(
    pytester: pytest.Pytester, fleet: SimFleet
) -> None:
    write_gates(pytester, MAIN_CATALOG, BUILD_GATE_ONLY, name="test_gates.py")
    pytester.makeconftest(
        "def pytest_canarygate_make_provider(config, kind, uri, timeouts):\n"
        "    raise RuntimeError('the team provider has a bug')\n"
    )
    (pytester.path / "canarygate.toml").write_text(
        config(fleet, '[evidence]\nbuild = "https://builds.example/x"\n')
    )
    result = pytester.runpytest_subprocess("--phase=alpha")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    _, run = only_run(pytester.path)
    [gate] = run["gates"]
    assert gate["verdict"] == "UNOBSERVABLE"
    assert "provider failed: RuntimeError: the team provider has a bug" in gate["message"]


def test_run_finished_cannot_change_the_run_it_is_told_about(pytester: pytest.Pytester) -> None:
    """The hook gets copies: changing every verdict in them changes neither the summary printed
    after it, nor the exit status, nor the sealed bundle."""
    make_gate_repo(pytester)
    pytester.makeconftest(
        """
        from pytest_canarygate.verdicts import Verdict

        def pytest_canarygate_run_finished(config, outcome, bundle, summary):
            print(f"HOOK: run_finished {len(outcome.results)} results {summary['verdict']}")
            for result in outcome.results:
                result.verdict = Verdict.FAIL
                result.message = "changed by a hook"
            outcome.results.append(outcome.results[0])
            outcome.incomplete.append("changed by a hook")
            summary["gates"].clear()
        """
    )
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy", "-s")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    bundle, run = only_run(pytester.path)
    gates = len(run["gates"])
    result.stdout.fnmatch_lines(
        [
            f"*HOOK: run_finished {gates} results pass*",
            f"*gates: {gates} run (complete phase)  PASS {gates}*",
        ]
    )
    assert result.stdout.str().count("HOOK: run_finished") == 1
    result.stdout.no_fnmatch_line("*changed by a hook*")
    result.stdout.no_fnmatch_line("*FAIL [0-9]*")
    assert bundle.name.endswith("-pass")
    assert run["verdict"] == "pass"
    assert {g["verdict"] for g in run["gates"]} == {"PASS"}
    assert "changed by a hook" not in (bundle / "junit.xml").read_text()
