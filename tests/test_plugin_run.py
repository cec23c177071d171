"""End to end: `pytest --phase=alpha` against real simulated daemons on real sockets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gate_repo import make_gate_repo
from gate_repo import observation
from gate_repo import only_run
from gate_repo import process_alive
from gate_repo import sim_pids

from pytest_canarygate.agtmux.runbook import CATALOG
from pytest_canarygate.bundle import NODEID_LABEL
from pytest_canarygate.catalog import load_catalog

GATE_IDS = set(load_catalog(CATALOG).gates)

XDIST = pytest.mark.parametrize("dist", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])


@XDIST
def test_healthy_alpha_passes_and_says_simulated(
    pytester: pytest.Pytester, dist: list[str]
) -> None:
    make_gate_repo(pytester)
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy", *dist)
    result.stdout.fnmatch_lines(
        [
            "*canarygate: phase alpha, target SIMULATED (scenario healthy)*",
            "*phase alpha | migration simulated | target SIMULATED (scenario healthy)*",
            "*(complete phase)  PASS *",
            "*EVERY GATE OF PHASE ALPHA PASSED, but not promotable: it judged the simulator*",
            "*simulated run: never sign-off for a real migration*",
        ]
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    assert result.ret == 0
    run_dir, run = only_run(pytester.path)
    assert run_dir.name.endswith("-pass")
    assert run["verdict"] == "pass"
    assert run["scope"] == "complete"
    assert run["target"] == {"kind": "simulated", "scenario": "healthy"}
    assert {g["verdict"] for g in run["gates"]} == {"PASS"}
    # one gate instance per active tmux session for the per-session gates
    params = {g["param"] for g in run["gates"] if g["gate"] == "alpha.parity.panes"}
    assert {"session-alpha", "session-beta", "session-gamma"} <= params


COUNT_COLLECTED = """
import json, os

def pytest_collection_modifyitems(config, items):
    # before the engine keeps this phase's gates (its hook runs last)
    counts = {}
    for item in items:
        counts[item.originalname] = counts.get(item.originalname, 0) + 1
    who = os.environ.get("PYTEST_XDIST_WORKER", "controller")
    (config.rootpath / f"collected-{who}.json").write_text(json.dumps(counts))
"""


@XDIST
def test_another_phases_gate_is_not_made_once_per_session(
    pytester: pytest.Pytester, dist: list[str]
) -> None:
    """Collecting a phase costs what its own gates cost: a gate of another phase that would
    be judged once per tmux session is collected once, then left out, however large the
    fleet."""
    make_gate_repo(pytester)
    pytester.makeconftest(COUNT_COLLECTED)
    canary = pytester.runpytest_subprocess("--phase=canary", "--canarygate-sim=healthy", *dist)
    assert canary.ret == 1, canary.stdout.str()  # no signed alpha bundle to rely on
    _, run = only_run(pytester.path)
    assert "alpha.parity.panes" not in {g["gate"] for g in run["gates"]}
    assert {g["param"] for g in run["gates"]} == {None}
    collected = sorted(pytester.path.glob("collected-*.json"))
    assert len(collected) == (2 if dist else 1)  # each xdist worker collects, not the controller
    for path in collected:
        counts = json.loads(path.read_text())
        assert counts["test_list_panes_parity"] == 1, path.name
        path.unlink()
    # in its own phase, the same gate is judged once per session, as before
    pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy", *dist)
    for path in pytester.path.glob("collected-*.json"):
        counts = json.loads(path.read_text())
        assert counts["test_list_panes_parity"] >= 3, path.name


#: A per-session alpha gate, for a test of the catalog's own.
PER_SESSION_GATE = """
[[gate]]
id = "alpha.marked.per-session"
item = "P1-S4a"
title = "judged once per tmux session"
needs = ["v4:list_panes*2", "v5:list_panes*2", "v4:latency_status", "v5:latency_status"]
per = "agtmux_tmux_session"
"""

#: The class names a canary gate; its one parameter names the alpha gate, which is what the
#: instance judges (pytest puts a parameter's marks before the class's).
NAMED_BY_A_PARAMETER = """
import pytest

ALPHA = pytest.mark.canarygate_gate("alpha.marked.per-session")


@pytest.mark.canarygate_gate("canary.pre.alpha-signed")
class TestShared:
    @pytest.mark.parametrize("variant", [pytest.param("a", marks=ALPHA)])
    def test_per_session(self, canarygate_observed, agtmux_tmux_session, variant):
        assert agtmux_tmux_session.startswith("session-")
"""


def test_a_gate_named_by_a_parameters_mark_is_judged_once_per_session(
    pytester: pytest.Pytester,
) -> None:
    """Whether a test is another phase's is decided by its instances' marks: a parameter
    naming a gate of this phase keeps the fleet's instances."""
    make_gate_repo(pytester)
    catalog = pytester.path / "gates" / "catalog.toml"
    catalog.write_text(catalog.read_text() + PER_SESSION_GATE)
    (pytester.path / "gates" / "test_marked.py").write_text(NAMED_BY_A_PARAMETER)
    pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy")
    _, run = only_run(pytester.path)
    judged = [g for g in run["gates"] if g["gate"] == "alpha.marked.per-session"]
    assert {g["verdict"] for g in judged} == {"PASS"}, judged
    assert {"session-alpha", "session-beta", "session-gamma"} <= {g["param"] for g in judged}


@XDIST
def test_parity_drift_names_session_pane_and_field(
    pytester: pytest.Pytester, dist: list[str]
) -> None:
    make_gate_repo(pytester)
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=parity-drift", *dist)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    assert "NOT PROMOTABLE" in out
    assert "alpha.parity.panes[session-beta]" in out
    assert "session session-beta pane %5: evidence_mode v4='heuristic' v5='deterministic'" in out
    _, run = only_run(pytester.path)
    failed = {(g["gate"], g["param"]) for g in run["gates"] if g["verdict"] == "FAIL"}
    assert ("alpha.parity.panes", "session-beta") in failed
    assert ("alpha.exit.projection-matches", "session-beta") in failed
    # the pane missing on v5 is named as such
    missing = [g["message"] for g in run["gates"] if "<missing>" in g["message"]]
    assert missing, run["gates"]
    passed = {(g["gate"], g["param"]) for g in run["gates"] if g["verdict"] == "PASS"}
    assert ("alpha.parity.panes", "session-alpha") in passed


@XDIST
def test_rpc_calls_do_not_grow_with_gates_or_sessions(
    pytester: pytest.Pytester, dist: list[str]
) -> None:
    make_gate_repo(pytester)
    pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy", *dist)
    run_dir, run = only_run(pytester.path)
    calls = {
        name: sorted(c["method"] for c in d["calls"])
        for name, d in observation(run_dir)["daemons"].items()
    }
    # what the alpha catalog needs, once each (two readings where declared), plus daemon.info
    # at the start and the end of each daemon's observation
    parity = ["list_panes", "list_panes", "list_sessions", "list_sessions"]
    parity += ["state_changed", "state_changed"]
    assert calls["v4"] == ["daemon.info", "daemon.info", "latency_status", *parity]
    assert calls["v5"] == [
        "daemon.info",
        "daemon.info",
        "latency_status",
        *parity,
        "summary_changed",
        "summary_changed",
    ]
    assert len(run["gates"]) > sum(len(c) for c in calls.values())


def test_simulator_leaves_nothing_behind(pytester: pytest.Pytester) -> None:
    make_gate_repo(pytester)
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy", "-n", "2")
    assert result.ret == 0
    run_dir, _ = only_run(pytester.path)
    pids = sim_pids(run_dir)
    assert len(pids) == 2
    assert not [pid for pid in pids if process_alive(pid)]
    sim_dirs = set()
    for daemon in observation(run_dir)["daemons"].values():
        socket_path = Path(daemon["endpoint"].removeprefix("unix://"))
        assert not socket_path.exists()
        sim_dirs.add(socket_path.parent.parent)
    # the fleet's folder (sockets, evidence files, the HTTP server's log) is gone too
    assert len(sim_dirs) == 1
    assert not sim_dirs.pop().exists()
    evidence = observation(run_dir)["evidence"]
    http_uris = [r["uri"] for r in evidence.values() if r["uri"].startswith("http://")]
    assert http_uris, "the simulated run read some evidence over HTTP"


def test_allure_results_carry_labels_and_evidence(pytester: pytest.Pytester) -> None:
    make_gate_repo(pytester)
    pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=parity-drift")
    run_dir, _ = only_run(pytester.path)
    results_dir = run_dir / "allure-results"
    results = [json.loads(p.read_text()) for p in results_dir.glob("*-result.json")]
    assert results
    by_tag = {}
    located: set[tuple[str, str, int]] = set()
    for result in results:
        labels = {(label["name"], label["value"]) for label in result["labels"]}
        assert ("feature", "alpha") in labels
        assert ("epic", "simulated") in labels
        # allure-pytest may add tags of its own; exactly one is the gate's id
        [gate_id] = [v for n, v in labels if n == "tag" and v in GATE_IDS]
        by_tag.setdefault(gate_id, []).append(result)
        assert any(link["url"].startswith("docs/runbook/") for link in result["links"])
        # one attachment per gate: what it read (large answers as locators) and computed
        [attachment] = result.get("attachments", [])
        assert (attachment["name"], attachment["type"]) == ("evidence", "application/json")
        evidence = json.loads((results_dir / attachment["source"]).read_text())
        assert set(evidence) == {"calls", "readings", "notes", "inline_limit", "observation"}
        assert evidence["observation"] == "observation/observation.json.gz"
        for daemon, methods in evidence["calls"].items():
            for method, calls in methods.items():
                for call in calls:
                    # it locates the record; when it was read and its size are in the
                    # observation, not repeated by every gate that read it
                    assert set(call) <= {"reading", "params", "result", "ok", "error", "error_kind"}
                    if "result" in call:
                        assert len(json.dumps(call["result"], separators=(",", ":"))) <= 1024
                    elif call.get("ok", True):
                        located.add((daemon, method, call["reading"]))
    # each answer left out of an attachment is in the signed observation
    observed = observation(run_dir)
    for daemon, method, reading in located:
        assert [
            c
            for c in observed["daemons"][daemon]["calls"]
            if (c["method"], c["reading"]) == (method, reading) and c["result"] is not None
        ]
    assert located, "the simulated fleet has answers too large to copy into every gate"
    # one result per gate instance, and no fixture containers (their set-up is not evidence)
    nodeids = [
        label["value"] for r in results for label in r["labels"] if label["name"] == NODEID_LABEL
    ]
    assert len(nodeids) == len(set(nodeids)) == len(results)
    judged = json.loads((run_dir / "run.json").read_text())["gates"]
    assert set(nodeids) == {gate["nodeid"] for gate in judged}
    assert not list(results_dir.glob("*-container.json"))
    exit_gate = by_tag["alpha.exit.projection-matches"][0]
    labels = dict((label["name"], label["value"]) for label in exit_gate["labels"])
    assert labels["severity"] == "blocker"
    assert labels["story"].startswith("P1-X1: v5 projection matches v4")
    # what Allure 2 shows: suites and tags
    assert (labels["parentSuite"], labels["suite"]) == ("alpha", "exit")
    assert labels["subSuite"].startswith("P1-X1: v5 projection matches v4")
    tags = {label["value"] for label in exit_gate["labels"] if label["name"] == "tag"}
    assert {"item:P1-X1", "phase:alpha", "stage:exit"} <= tags
    # each said once per result (as a suite and a tag), and constants once per run
    assert not {"phase", "stage", "runbook_item", "framework", "language"} & set(labels)
    assert exit_gate["name"].startswith("alpha.exit.projection-matches: ")
    assert exit_gate["description"].startswith("P1-X1 (Phase 1: Internal Alpha")
    env = (results_dir / "environment.properties").read_text()
    assert "scenario=parity-drift" in env
    assert "v5.pid=" in env
    assert f"runner=pytest {pytest.__version__} on " in env
    assert (results_dir / "categories.json").is_file()
    assert (results_dir / "executor.json").is_file()


CATEGORY_OF = """
const fs = require("fs");
const [categoriesFile, ...resultFiles] = process.argv.slice(2);
const categories = JSON.parse(fs.readFileSync(categoriesFile, "utf8"));
for (const file of resultFiles) {
  const r = JSON.parse(fs.readFileSync(file, "utf8"));
  if (r.status === "passed") continue;
  const message = (r.statusDetails || {}).message || "";
  // Allure 3's own rule (plugin-allure2 categories.js): first match, RegExp(regex, "s").test
  const hit = categories.find((c) =>
    (!c.matchedStatuses || c.matchedStatuses.includes(r.status)) &&
    (!c.messageRegex || new RegExp(c.messageRegex, "s").test(message)));
  console.log(`${r.name}\\t${hit ? hit.name : "-"}`);
}
"""


def test_allure_categories_sort_failures_the_way_allure_3_reads_them(
    pytester: pytest.Pytester,
) -> None:
    make_gate_repo(pytester)
    pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=parity-drift")
    run_dir, _ = only_run(pytester.path)
    results = run_dir / "allure-results"
    script = pytester.path / "categories.js"
    script.write_text(CATEGORY_OF)
    node = pytester.run(
        "node",
        str(script),
        str(results / "categories.json"),
        *map(str, results.glob("*-result.json")),
    )
    assert node.ret == 0, node.stderr.str()
    assigned = dict(line.split("\t") for line in node.outlines if "\t" in line)
    assert assigned
    assert set(assigned.values()) == {"Parity drift"}, assigned


@pytest.mark.parametrize(
    ("scenario", "verdict_line", "code"),
    [
        (
            "holddown-24h",
            "ROLLBACK ADVISED: SIG-1 signal.hold-down-not-recovered (rollback immediately)*",
            20,
        ),
        # no signal; the incident timeline needs an archive of signed runs, which a simulated
        # run has not: the procedure is incomplete (exit 1)
        (
            "healthy",
            "NO ROLLBACK SIGNAL among 5 of 5 signals checked; procedure incomplete: PR-2",
            1,
        ),
    ],
)
def test_rollback_phase_advises_or_not(
    pytester: pytest.Pytester, scenario: str, verdict_line: str, code: int
) -> None:
    make_gate_repo(pytester)
    result = pytester.runpytest_subprocess(
        "--phase=rollback", f"--canarygate-sim={scenario}", "-n", "2"
    )
    result.stdout.fnmatch_lines([verdict_line, f"exit code {code} (*)"])
    assert result.ret == code
    _, run = only_run(pytester.path)
    assert run["decision"]["exit_code"] == code
    assert run["decision"]["decision"] == verdict_line.split(":")[0].split(" among")[0]


@XDIST
def test_long_stages_print_one_progress_line_each_with_counts(
    pytester: pytest.Pytester, dist: list[str]
) -> None:
    make_gate_repo(pytester)
    # Every stage counts as long, so each prints its line (the threshold is a second).
    pytester.makeconftest(
        "import pytest_canarygate.progress as progress\nprogress.DEFAULT_THRESHOLD_S = 0.0\n"
    )
    result = pytester.runpytest_subprocess("--phase=alpha", "--canarygate-sim=healthy", *dist)
    run_dir, run = only_run(pytester.path)
    files = sum(1 for p in run_dir.rglob("*") if p.is_file())
    result.stdout.fnmatch_lines(
        [
            "canarygate: observed v5 at unix://*: * calls (* s answering), ok",
            f"canarygate: judged {len(run['gates'])} gate instances in * s",
            f"canarygate: sealed {files:,} files (*B) in * s",
        ]
    )
    out = result.stdout.str()
    for line in ("canarygate: observed v4 at ", "canarygate: observed v5 at ", "canarygate: read "):
        assert out.count(line) == 1, line  # once per run, serial or not
    assert result.ret == 0
