"""Runs against configured endpoints (target "live"): fail closed, usage errors, signing."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path

import pytest
from gate_repo import ROOT
from gate_repo import make_gate_repo
from gate_repo import one_item_catalog
from gate_repo import only_run
from gate_repo import write_gates

from pytest_canarygate.agtmux.pack import ACCESSORS
from pytest_canarygate.agtmux.pack import RPC_EVIDENCE_KINDS
from pytest_canarygate.agtmux.sim import SimFleet
from pytest_canarygate.agtmux.sim import start_fleet
from pytest_canarygate.catalog import load_catalog
from pytest_canarygate.keys import generate_keypair
from pytest_canarygate.observation import EVIDENCE_NEED
from pytest_canarygate.observation import SIMULATOR_MARKER

XDIST = pytest.mark.parametrize("dist", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])


def config_for(
    v4: str, v5: str, migration: str = "live-test", evidence: Mapping[str, str] | None = None
) -> str:
    text = (
        f'[migration]\nid = "{migration}"\n'
        f'[daemons.v4]\nendpoint = "{v4}"\n[daemons.v5]\nendpoint = "{v5}"\n'
        "[timeouts]\nconnect_s = 1.0\nread_s = 2.0\n[observation]\nversion_interval_s = 0.05\n"
    )
    if evidence:
        text += "[evidence]\n" + "".join(f'{kind} = "{uri}"\n' for kind, uri in evidence.items())
    return text


def fleet_config(fleet: SimFleet) -> str:
    """A live-style config for a started fleet: its sockets and its evidence."""
    return config_for(fleet.endpoints["v4"], fleet.endpoints["v5"], evidence=fleet.evidence)


def reads_v5(gate_id: str) -> bool:
    """True if the gate needs the v5 daemon: its methods, or evidence its socket serves when
    the config has no [evidence] table."""
    catalog = load_catalog(ROOT / "gates" / "catalog.toml")
    return any(
        need.daemon == "v5"
        or (need.daemon == EVIDENCE_NEED and ACCESSORS[need.method][0] in RPC_EVIDENCE_KINDS)
        for need in catalog.gates[gate_id].needs
    )


def as_live(fleet: SimFleet) -> SimFleet:
    """Strip the simulator's marker: to the engine the fleet is then a live one."""
    for uri in fleet.endpoints.values():
        (Path(uri.removeprefix("unix://")).parent / SIMULATOR_MARKER).unlink()
    return fleet


@pytest.fixture
def healthy_fleet() -> Iterator[SimFleet]:
    with start_fleet("healthy") as fleet:
        yield as_live(fleet)


@pytest.fixture
def v4_only() -> Iterator[SimFleet]:
    with start_fleet("healthy", daemons=("v4",)) as fleet:
        yield as_live(fleet)


@pytest.fixture
def dead_endpoint() -> Iterator[str]:
    """A socket path in a private directory that nobody serves."""
    folder = tempfile.mkdtemp(prefix="cg-dead-")
    yield f"unix://{folder}/agtmuxd.sock"
    os.rmdir(folder)


@XDIST
def test_unserved_v5_makes_v5_gates_unobservable(
    pytester: pytest.Pytester, v4_only: SimFleet, dead_endpoint: str, dist: list[str]
) -> None:
    make_gate_repo(pytester, config=config_for(v4_only.endpoints["v4"], dead_endpoint))
    result = pytester.runpytest_subprocess("--phase=alpha", *dist)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*target LIVE*", "*UNOBSERVABLE*", "*NOT PROMOTABLE*"])
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    _, run = only_run(pytester.path)
    v5_gates = [g for g in run["gates"] if reads_v5(g["gate"])]
    assert len(v5_gates) > 20
    # never PASS: each says the v5 endpoint is not there (or, for file-only evidence next to
    # it, that nothing is configured to provide it)
    assert {g["verdict"] for g in v5_gates} == {"UNOBSERVABLE"}, v5_gates
    assert all(
        dead_endpoint in g["message"] or "no provider configured" in g["message"] for g in v5_gates
    )
    daemon_only = [g for g in v5_gates if g["gate"].startswith("alpha.parity")]
    assert daemon_only
    assert all(dead_endpoint in g["message"] for g in daemon_only)
    # the per-session gates still ran, one per session v4 shows
    params = {g["param"] for g in run["gates"] if g["gate"] == "alpha.parity.panes"}
    assert params == {"session-alpha", "session-beta", "session-gamma"}


def test_nothing_reachable_still_yields_unobservable_gates(
    pytester: pytest.Pytester, dead_endpoint: str
) -> None:
    make_gate_repo(pytester, config=config_for(dead_endpoint, dead_endpoint))
    result = pytester.runpytest_subprocess("--phase=alpha")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # the cause is said once per daemon, before the list of blocked gates, and the verdict is
    # the last block on screen (after pytest's own short summary)
    result.stdout.fnmatch_lines(
        [
            "*short test summary info*",
            "*could not observe (the cause of the UNOBSERVABLE gates below):",
            f"  v4: {dead_endpoint} daemon.info: no socket at *",
            f"  v5: {dead_endpoint} daemon.info: no socket at *",
            "blocking promotion:",
            "*NOT PROMOTABLE: * gate(s) block promotion",
        ]
    )
    causes = result.stdout.str().split("could not observe")[1].split("blocking promotion:")[0]
    assert "snapshots evidence" not in causes  # same dead socket: not repeated per kind
    _, run = only_run(pytester.path)
    per_session = [g for g in run["gates"] if g["gate"] == "alpha.parity.panes"]
    assert [g["param"] for g in per_session] == [None]
    assert per_session[0]["verdict"] == "UNOBSERVABLE"
    assert "agtmux_tmux_session-unobservable" in per_session[0]["nodeid"]
    assert "PASS" not in {g["verdict"] for g in run["gates"]}


def test_untrusted_socket_directory_is_refused(
    pytester: pytest.Pytester, healthy_fleet: SimFleet
) -> None:
    v5_dir = Path(healthy_fleet.endpoints["v5"].removeprefix("unix://")).parent
    v5_dir.chmod(0o777)
    try:
        # no [evidence]: every operations kind is asked of the v5 socket, which is refused
        make_gate_repo(
            pytester,
            config=config_for(healthy_fleet.endpoints["v4"], healthy_fleet.endpoints["v5"]),
        )
        result = pytester.runpytest_subprocess("--phase=alpha")
    finally:
        v5_dir.chmod(0o700)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    _, run = only_run(pytester.path)
    v5_gates = [g for g in run["gates"] if reads_v5(g["gate"])]
    assert {g["verdict"] for g in v5_gates} == {"UNOBSERVABLE"}, v5_gates
    refused = [g for g in v5_gates if "writable by group and others (mode 0777)" in g["message"]]
    assert len(refused) > 10


def test_signed_live_run_is_promotable_and_verifies(
    pytester: pytest.Pytester, healthy_fleet: SimFleet
) -> None:
    key = pytester.path / "keys" / "signing.key"
    generate_keypair(key)
    make_gate_repo(pytester, config=fleet_config(healthy_fleet))
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-key", str(key))
    result.stdout.fnmatch_lines(["*PROMOTION MAY GO AHEAD*", "*signed by key *"])
    assert result.ret == 0
    bundle, _run = only_run(pytester.path)
    assert bundle.name.endswith("-pass")
    verify = pytester.run(
        sys.executable, "-m", "pytest_canarygate", "verify", str(bundle), "--key", f"{key}.pub.json"
    )
    assert verify.ret == 0, verify.stdout.str()
    verify.stdout.fnmatch_lines(["*promotable: yes*"])
    # the exact config the run judged with is sealed into the bundle
    assert (bundle / "canarygate.toml").read_bytes() == (
        pytester.path / "canarygate.toml"
    ).read_bytes()
    assert key.read_bytes() not in b"".join(
        p.read_bytes() for p in bundle.rglob("*") if p.is_file()
    )


def test_unsigned_live_run_says_not_signed(
    pytester: pytest.Pytester, healthy_fleet: SimFleet
) -> None:
    make_gate_repo(pytester, config=fleet_config(healthy_fleet))
    result = pytester.runpytest_subprocess("--phase=alpha")
    result.stdout.fnmatch_lines(
        ["*not promotable: the bundle is not signed*", "*NOT SIGNED - NOT PROMOTABLE*"]
    )
    bundle, _ = only_run(pytester.path)
    envelope = json.loads((bundle / "statement.dsse.json").read_text())
    assert envelope["signatures"] == []


def test_loose_private_key_is_refused_before_anything_runs(
    pytester: pytest.Pytester, healthy_fleet: SimFleet
) -> None:
    key = pytester.path / "signing.key"
    generate_keypair(key)
    key.chmod(0o644)
    make_gate_repo(pytester, config=fleet_config(healthy_fleet))
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-key", str(key))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--canarygate-key*0644*chmod 600*"])
    result.stderr.no_fnmatch_line("*PRIVATE KEY*")


@pytest.mark.parametrize(
    ("config", "args", "expected"),
    [
        (None, ["--phase=alpha"], "*no canarygate.toml in *; pass --canarygate-config=PATH*"),
        (
            "[migration]\nid = 'x'\n",
            ["--phase=alpha"],
            "*canarygate.toml: missing table [[]daemons]*",
        ),
        (
            None,
            ["--phase=beta", "--canarygate-sim=healthy"],
            "*--phase=beta: not a phase of *catalog.toml; known: alpha, canary, *",
        ),
        (
            None,
            ["--phase=alpha", "--canarygate-sim=nope"],
            "*--canarygate-sim=nope: unknown scenario 'nope'*",
        ),
        (
            None,
            ["--phase=alpha", "--canarygate-config", "missing.toml"],
            "*missing.toml does not exist*",
        ),
    ],
)
def test_usage_errors_are_one_clear_line(
    pytester: pytest.Pytester, config: str | None, args: list[str], expected: str
) -> None:
    make_gate_repo(pytester, config=config)
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    # nothing left that looks like a run in progress
    assert not list(pytester.path.glob("reports/*/*/*-running"))


def test_gates_without_a_phase_are_a_usage_error(pytester: pytest.Pytester) -> None:
    make_gate_repo(pytester)
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*gate(s) collected*but no phase given; run with --phase=*"])


@XDIST
def test_zero_selected_gates_is_not_green(pytester: pytest.Pytester, dist: list[str]) -> None:
    make_gate_repo(pytester)
    result = pytester.runpytest_subprocess(
        "--phase=alpha", "--canarygate-sim=healthy", "-k", "nothing_matches", *dist
    )
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["*ERROR: zero gates selected for phase alpha*"])
    _bundle, run = only_run(pytester.path)
    assert run["verdict"] == "empty"


def test_k_selection_is_partial_and_never_promotable(pytester: pytest.Pytester) -> None:
    make_gate_repo(pytester)
    result = pytester.runpytest_subprocess(
        "--phase=alpha", "--canarygate-sim=healthy", "-k", "session-beta"
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["*partial selection: -k 'session-beta'*", "*NOT PROMOTABLE: partial selection*"]
    )
    bundle, run = only_run(pytester.path)
    assert run["scope"] == "partial"
    assert bundle.name.endswith("-partial")


def test_stage_option_runs_one_stage(pytester: pytest.Pytester) -> None:
    make_gate_repo(pytester)
    result = pytester.runpytest_subprocess(
        "--phase=alpha", "--canarygate-sim=healthy", "--canarygate-stage=exit"
    )
    _, run = only_run(pytester.path)
    exit_gates = {
        g.id for g in load_catalog(ROOT / "gates" / "catalog.toml").gates_for("alpha", "exit")
    }
    assert {g["gate"] for g in run["gates"]} == exit_gates
    assert "alpha.exit.projection-matches" in exit_gates
    assert run["scope"] == "partial"
    assert result.ret == 0


MINI_CATALOG = one_item_catalog(("mini.gate", "v5:daemon.info"))


@pytest.mark.parametrize(
    ("body", "verdict", "fragment"),
    [
        ("pytest.skip('not today')", "FAIL", "gates never skip"),
        ("raise Inconclusive('only 3 of 200 samples')", "INCONCLUSIVE", "only 3 of 200 samples"),
        ("raise KeyError('pane_id')", "FAIL", "gate error: KeyError"),
        (
            "canarygate_observed.daemon('v5').result('no.such.method')",
            "UNOBSERVABLE",
            "reading 1 was not taken",
        ),
    ],
)
def test_every_non_pass_maps_to_one_verdict(
    pytester: pytest.Pytester, body: str, verdict: str, fragment: str
) -> None:
    mini_repo(
        pytester, "@gate('mini.gate')\ndef test_mini(canarygate_observed):\n    " + body + "\n"
    )
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    _, run = only_run(pytester.path)
    assert [g["verdict"] for g in run["gates"]] == [verdict]
    assert fragment in run["gates"][0]["message"]
    result.stdout.fnmatch_lines([f"*{verdict}*mini.gate*"])


def mini_repo(pytester: pytest.Pytester, module: str, catalog: str = MINI_CATALOG) -> None:
    header = "import os, pytest\nfrom pytest_canarygate import Inconclusive, gate\n\n"
    write_gates(pytester, catalog, header + module)


@pytest.mark.parametrize("dist", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])
@pytest.mark.parametrize(
    "marker", ["@pytest.mark.xfail(reason='known')", "@pytest.mark.xfail(strict=False)"]
)
def test_xfail_gate_fails_the_run(pytester: pytest.Pytester, marker: str, dist: list[str]) -> None:
    mini_repo(
        pytester,
        f"{marker}\n@gate('mini.gate')\ndef test_mini(canarygate_observed):\n    assert False\n",
    )
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy", *dist)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    _, run = only_run(pytester.path)
    assert [g["verdict"] for g in run["gates"]] == ["FAIL"]
    assert "gates never skip" in run["gates"][0]["message"]


TWO_GATES = one_item_catalog(("mini.gate", "v5:daemon.info"), ("mini.other", None))


def test_a_gate_that_never_ran_makes_the_run_incomplete(pytester: pytest.Pytester) -> None:
    mini_repo(
        pytester, "@gate('mini.gate')\ndef test_mini(canarygate_observed):\n    pass\n", TWO_GATES
    )
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*INCOMPLETE*gate mini.other of phase alpha never ran*"])
    bundle, run = only_run(pytester.path)
    assert bundle.name.endswith("-incomplete")
    assert run["incomplete"] == ["gate mini.other of phase alpha never ran (not collected)"]


def test_a_bundle_that_cannot_be_sealed_is_named_unsealed(pytester: pytest.Pytester) -> None:
    mini_repo(pytester, "@gate('mini.gate')\ndef test_mini(canarygate_observed):\n    pass\n")
    pytester.makeconftest(
        "import os, pytest\n"
        "from pytest_canarygate.session import SESSION_KEY\n\n"
        "@pytest.hookimpl(tryfirst=True)\n"
        "def pytest_sessionfinish(session):\n"
        "    run_dir = session.config.stash[SESSION_KEY].run_dir\n"
        "    os.mkfifo(run_dir / 'allure-results' / 'not-a-file')\n"
    )
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*BUNDLE NOT SEALED:*"])
    [bundle] = list((pytester.path / "reports").glob("*/*/*-unsealed"))
    assert not (bundle / "statement.dsse.json").exists()
    assert not list((pytester.path / "reports").glob("*/*/*-pass"))


def test_worker_dying_after_a_passed_call_is_not_a_pass(pytester: pytest.Pytester) -> None:
    mini_repo(
        pytester,
        "@pytest.fixture\ndef dies_in_teardown():\n    yield\n    os._exit(1)\n\n"
        "@gate('mini.gate')\ndef test_mini(canarygate_observed, dies_in_teardown):\n    pass\n",
    )
    result = pytester.runpytest_subprocess(
        "--phase=alpha", "--canarygate-sim=healthy", "-n", "2", "--max-worker-restart=1"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    _, run = only_run(pytester.path)
    assert [g["verdict"] for g in run["gates"]] == ["FAIL"]
    assert run["gates"][0]["gate"] == "mini.gate"


def test_path_option_after_a_space_outside_the_repo_is_refused(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    key = tmp_path_factory.mktemp("elsewhere") / "signing.key"
    generate_keypair(key)
    make_gate_repo(pytester)
    result = pytester.runpytest_subprocess(
        "--phase=alpha", "--canarygate-sim=healthy", "--canarygate-key", str(key)
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*write --canarygate-key={key} (with '=')*"])
    spelled = pytester.runpytest_subprocess(
        "--phase=alpha", "--canarygate-sim=healthy", f"--canarygate-key={key}"
    )
    assert spelled.ret == 0


@pytest.mark.parametrize("dist", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])
def test_a_non_gate_test_among_the_gates_is_a_usage_error(
    pytester: pytest.Pytester, dist: list[str]
) -> None:
    mini_repo(
        pytester,
        "@gate('mini.gate')\ndef test_mini(canarygate_observed):\n    pass\n\n"
        "def test_helper_check():\n    pass\n",
    )
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy", *dist)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    result.stdout.fnmatch_lines(["*NOT PROMOTABLE*"])
    _, run = only_run(pytester.path)
    [stray] = [g for g in run["gates"] if g["verdict"] == "FAIL"]
    assert "test_helper_check is not a gate (no @gate)" in stray["message"]
    assert stray["gate"] == stray["item"] == "(not a gate)"  # not a worker that died


def test_the_simulator_is_never_judged_live(pytester: pytest.Pytester) -> None:
    """Pasting a simulated fleet's endpoints into a config does not make it a live fleet."""
    key = pytester.path / "k" / "signing.key"
    generate_keypair(key)
    with start_fleet("healthy", phase="alpha") as fleet:
        for uri in fleet.endpoints.values():  # the launcher leaves its marker beside each socket
            assert (Path(uri.removeprefix("unix://")).parent / SIMULATOR_MARKER).is_file()
        make_gate_repo(pytester, config=fleet_config(fleet))
        result = pytester.runpytest_subprocess("--phase=alpha", f"--canarygate-key={key}")
    result.stdout.fnmatch_lines(
        [
            "*daemon(s) v4, v5 are the bundled simulator: target SIMULATED*",
            "*simulated run: never sign-off for a real migration*",
        ]
    )
    result.stdout.no_fnmatch_line("*PROMOTION MAY GO AHEAD*")
    _, run = only_run(pytester.path)
    assert run["target"]["kind"] == "simulated"


def test_require_promotable_fails_a_green_but_unpromotable_run(pytester: pytest.Pytester) -> None:
    make_gate_repo(pytester)
    plain = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy")
    assert plain.ret == 0  # every gate passed ...
    strict = pytester.runpytest_subprocess(
        "--phase=alpha", "--canarygate-sim=healthy", "--canarygate-require-promotable"
    )
    assert strict.ret == pytest.ExitCode.TESTS_FAILED  # ... but it is no sign-off
    strict.stdout.fnmatch_lines(["*not promotable: it judged the simulator*"])
    runs = sorted((pytester.path / "reports").glob("*/alpha/*/run.json"))
    run = json.loads(runs[-1].read_text())
    assert run["promotable"] is False
    assert run["verdict"] == "pass"
    assert any("judged the simulator" in why for why in run["not_promotable_because"])
