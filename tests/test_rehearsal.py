"""The rollback rehearsal (``--phase=rollback --canarygate-stage=rehearsal``): its judgements, its
catalog entries, its place in the chain of custody (:func:`find_rehearsal`; never a rollback for
:func:`latest_rollback`), and real runs of the engine against the simulator made LIVE, signed,
each fleet started in one socket folder so that every run judges the same endpoints."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from bundle_helpers import KeyPair
from bundle_helpers import make_bundle
from bundle_helpers import make_predicate
from gate_repo import make_gate_repo
from gate_repo import run_dirs

from pytest_canarygate.agtmux.gate_api import canary_panes_served
from pytest_canarygate.agtmux.gate_api import selector_writable
from pytest_canarygate.agtmux.records import RuntimeSelector
from pytest_canarygate.agtmux.sim import SimFleet
from pytest_canarygate.agtmux.sim import start_fleet
from pytest_canarygate.catalog import OPT_IN_STAGES
from pytest_canarygate.catalog import STAGES
from pytest_canarygate.catalog import load_catalog
from pytest_canarygate.chain import Candidate
from pytest_canarygate.chain import Link
from pytest_canarygate.chain import find_link
from pytest_canarygate.chain import find_rehearsal
from pytest_canarygate.chain import latest_rollback
from pytest_canarygate.keys import generate_keypair
from pytest_canarygate.keys import load_trusted_keys
from pytest_canarygate.observation import SIMULATOR_MARKER
from pytest_canarygate.signing import seal_bundle
from pytest_canarygate.verdicts import Verdict

ROOT = Path(__file__).resolve().parents[1]
CATALOG = load_catalog(ROOT / "gates" / "catalog.toml")
RUNBOOK = ROOT / "docs" / "runbook" / "migration-canary-rollback.md"
REHEARSAL = "rehearsal"
STAGE_ONLY = ["--canarygate-stage=rehearsal"]
GATES = {
    "RB-R1": "rollback.rehearsal.selector-writable",
    "RB-R2": "rollback.rehearsal.v4-serves-canary",
    "RB-R3": "rollback.rehearsal.v4-sources-active",
    "RB-R4": "rollback.rehearsal.v5-snapshot-possible",
}
CANARY_SESSIONS = ("session-alpha", "session-beta")


# --- the selector file: writable by the operator running the check ------------------------


@pytest.fixture
def selector_file(tmp_path: Path) -> Path:
    folder = tmp_path / "selector"
    folder.mkdir(mode=0o755)
    path = folder / "runtime.toml"
    path.write_text('[runtime]\ndefault_daemon = "v4"\nv5_enabled = false\n')
    path.chmod(0o644)
    return path


def test_a_selector_file_the_operator_may_write_passes(selector_file: Path) -> None:
    judged = selector_writable(selector_file.as_uri())
    assert judged.verdict is Verdict.PASS, judged.message
    assert "nothing was written" in judged.message
    assert judged.numbers["mode"] == "0644"
    assert selector_file.read_text().startswith("[runtime]")


def test_a_read_only_selector_file_fails_even_for_root(selector_file: Path) -> None:
    selector_file.chmod(0o444)
    judged = selector_writable(selector_file.as_uri())
    assert judged.verdict is Verdict.FAIL, judged.message
    assert "0444" in judged.message
    # as root os.access ignores the mode; the mode still says no one may write the file
    as_root = selector_writable(selector_file.as_uri(), uid=0, access=lambda path, mode: True)
    assert as_root.verdict is Verdict.FAIL
    assert "runs as root" in as_root.message


def test_os_access_refusing_fails_and_names_the_operator(selector_file: Path) -> None:
    calls: list[tuple[str, int]] = []

    def refuse(path: str, mode: int) -> bool:
        calls.append((path, mode))
        return False

    judged = selector_writable(selector_file.as_uri(), access=refuse, uid=1234)
    assert judged.verdict is Verdict.FAIL
    assert "not writable by uid 1234" in judged.message
    assert calls == [(str(selector_file), os.W_OK)]


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("unix:///run/agtmux/v5.sock", "can only check a local selector file"),
        ("https://ops.example.com/selector", "can only check a local selector file"),
        (None, "can only check a local selector file"),
        ("file:///nonexistent/selector/runtime.toml", "cannot be examined"),
    ],
)
def test_a_selector_that_is_not_a_local_file_is_unobservable(
    uri: str | None, fragment: str
) -> None:
    judged = selector_writable(uri)
    assert judged.verdict is Verdict.UNOBSERVABLE
    assert fragment in judged.message


def test_a_selector_path_that_is_a_folder_fails(selector_file: Path) -> None:
    judged = selector_writable(selector_file.parent.as_uri())
    assert judged.verdict is Verdict.FAIL
    assert "not a regular file" in judged.message


# --- v4 serving every canary session's panes -----------------------------------------------


def pane(pane_id: str, session: str, *, managed: bool = True) -> dict[str, Any]:
    if not managed:
        return {"pane_id": pane_id, "presence": "unmanaged", "session_name": session}
    return {
        "pane_id": pane_id,
        "presence": "managed",
        "session_name": session,
        "evidence_mode": "heuristic",
        "signature_confidence": 0.86,
        "signature_inputs": {"provider_hint": True},
    }


FLEET = [
    pane("%0", "session-alpha", managed=False),
    pane("%1", "session-alpha"),
    pane("%3", "session-beta"),
    pane("%7", "session-gamma"),
]
SELECTOR = RuntimeSelector("v4", True, CANARY_SESSIONS)


def test_v4_serving_every_canary_pane_passes() -> None:
    judged = canary_panes_served(SELECTOR, FLEET, FLEET)
    assert judged.verdict is Verdict.PASS, judged.message
    assert judged.numbers["v4_managed_panes"] == {"session-alpha": 1, "session-beta": 1}


@pytest.mark.parametrize(
    ("v4", "fragment"),
    [
        ([p for p in FLEET if p["pane_id"] != "%1"], "pane %1 is on v5, not on v4"),
        ([p for p in FLEET if p["session_name"] != "session-beta"], "session-beta is not on v4"),
        (
            [
                pane("%1", "session-alpha", managed=False) if p["pane_id"] == "%1" else p
                for p in FLEET
            ],
            "pane %1 is managed on v5, unmanaged on v4",
        ),
        (
            [{**p, "signature_confidence": 7} if p["pane_id"] == "%3" else p for p in FLEET],
            "v4 pane %3: signature_confidence 7 outside 0.0-1.0",
        ),
    ],
)
def test_v4_not_serving_a_canary_pane_fails(v4: list[dict[str, Any]], fragment: str) -> None:
    judged = canary_panes_served(SELECTOR, v4, FLEET)
    assert judged.verdict is Verdict.FAIL
    assert fragment in judged.message


def test_no_canary_session_named_is_inconclusive() -> None:
    judged = canary_panes_served(RuntimeSelector("v4", False, ()), FLEET, FLEET)
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert "names no canary session" in judged.message


# --- the catalog ----------------------------------------------------------------------------


def test_rehearsal_is_a_stage_that_only_runs_when_asked_for() -> None:
    assert REHEARSAL in STAGES
    assert REHEARSAL in OPT_IN_STAGES
    rehearsal = [g.id for g in CATALOG.gates_for("rollback", REHEARSAL)]
    assert rehearsal == list(GATES.values())
    assert not set(rehearsal) & {g.id for g in CATALOG.gates_for("rollback")}
    for phase in CATALOG.phases:
        assert not any(g.stage == REHEARSAL for g in CATALOG.gates_for(phase))
    # the other stages still narrow a run as before
    assert CATALOG.gates_for("rollback", "exit") == [
        g for g in CATALOG.gates_for("rollback") if g.stage == "exit"
    ]


def test_rehearsal_items_quote_the_rollback_procedure() -> None:
    runbook = RUNBOOK.read_text().replace("**", "").lower()
    prefix = "Rollback procedure tested (dry-run): "
    assert prefix.strip(": ").lower() in runbook
    for item_id, gate_id in GATES.items():
        item = CATALOG.items[item_id]
        assert (item.phase, item.stage, item.pending) == ("rollback", REHEARSAL, None)
        assert item.section in ("Rollback Procedure", "Post-Rollback")
        assert [g.id for g in CATALOG.gates_of_item(item_id)] == [gate_id]
        assert CATALOG.gates[gate_id].phases == ("rollback",)
        assert item.text.startswith(prefix)
        for part in item.text.removeprefix(prefix).rstrip(".").split(": "):
            assert part.lower() in runbook, f"{item_id}: {part!r} is not the runbook's"


# --- the chain: find_rehearsal and latest_rollback ----------------------------------------

M = "mig-r"
PEERS = [
    {"daemon": "v4", "endpoint": "unix:///run/v4/agtmuxd.sock", "version": "0.0.4"},
    {"daemon": "v5", "endpoint": "unix:///run/v5/agtmuxd.sock", "version": "0.1.0"},
]
ENDPOINTS = {p["daemon"]: p["endpoint"] for p in PEERS}
PASSING = [
    {"gate": gate_id, "item": item, "verdict": "PASS", "nodeid": f"gates/r.py::{item}"}
    for item, gate_id in GATES.items()
]


def _fix_modes(root: Path) -> None:
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)


def _bundle(root: Path, keys: KeyPair, day: int, verdict: str, **changes: Any) -> Path:
    """A sealed rollback bundle finished on 2025-01-<day>; a passing rehearsal unless
    ``changes`` say otherwise."""
    stamp = f"202501{day:02d}T000000Z"
    bundle = make_bundle(root, migration=M, phase="rollback", name=f"{stamp}-{verdict}")
    predicate = make_predicate(bundle, gates=PASSING)
    predicate.update(
        stage=REHEARSAL,
        scope="partial",
        partial_reasons=STAGE_ONLY,
        missing_gates=[],
        incomplete=[],
        promotable=False,
        not_promotable_because=["only part of the phase was judged (--canarygate-stage=...)"],
        peers=PEERS,
        started_at=f"2025-01-{day:02d}T00:00:00Z",
        finished_at=f"2025-01-{day:02d}T00:05:00Z",
    )
    predicate.update(changes)
    _fix_modes(root / "reports")
    seal_bundle(bundle, predicate, keys.signer)
    return bundle


@pytest.fixture
def keys(tmp_path: Path) -> KeyPair:
    return KeyPair(tmp_path / "keys")


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    path = tmp_path / "reports"
    path.mkdir(mode=0o755)
    return path


def _refused(found: Link | tuple[Candidate, ...]) -> dict[str, tuple[str, ...]]:
    assert not isinstance(found, Link), found
    return {c.bundle.name: c.reasons for c in found}


def test_the_newest_passing_rehearsal_is_found(
    tmp_path: Path, reports: Path, keys: KeyPair
) -> None:
    _bundle(tmp_path, keys, 1, "PARTIAL")
    newest = _bundle(tmp_path, keys, 2, "PARTIAL")
    found = find_rehearsal(reports, M, keys.trusted, endpoints=ENDPOINTS)
    assert isinstance(found, Link)
    assert (found.phase, found.name) == ("rollback", newest.name)
    other = {**ENDPOINTS, "v4": "unix:///elsewhere/v4.sock"}
    refused = _refused(find_rehearsal(reports, M, keys.trusted, endpoints=other))
    assert all("other endpoints" in r[0] for r in refused.values()), refused
    late = _refused(
        find_rehearsal(reports, M, keys.trusted, endpoints=None, not_before="2025-01-03T00:00:00Z")
    )
    assert all(any("not after" in x for x in r) for r in late.values()), late
    assert find_rehearsal(reports, M, {}, endpoints=None) == ()


@pytest.mark.parametrize(
    ("verdict", "changes", "reason"),
    [
        ("PASS", {"stage": None, "scope": "complete", "partial_reasons": []}, "not a rehearsal"),
        ("PARTIAL", {"stage": "exit", "partial_reasons": ["--canarygate-stage=exit"]}, "not a"),
        ("PARTIAL", {"partial_reasons": [*STAGE_ONLY, "-k 'selector'"]}, "narrowed"),
        ("PARTIAL", {"missing_gates": [GATES["RB-R4"]]}, "missing gates: rollback.rehearsal.v5"),
        ("INCOMPLETE", {"incomplete": ["gate x never reported"]}, "incomplete"),
        (
            "FAIL",
            {"gates": [*PASSING[:3], {**PASSING[3], "verdict": "UNOBSERVABLE"}]},
            "UNOBSERVABLE gate: RB-R4",
        ),
        ("PARTIAL", {"gates": []}, "no gates"),
        ("PARTIAL", {"target": {"kind": "simulated", "scenario": "healthy"}}, "not live"),
        ("PARTIAL", {"signer": {"ephemeral": True}}, "ephemeral key"),
    ],
)
def test_a_rollback_bundle_that_is_not_a_passing_rehearsal_is_refused(
    tmp_path: Path,
    reports: Path,
    keys: KeyPair,
    verdict: str,
    changes: dict[str, Any],
    reason: str,
) -> None:
    bundle = _bundle(tmp_path, keys, 1, verdict, **changes)
    refused = _refused(find_rehearsal(reports, M, keys.trusted, endpoints=ENDPOINTS))
    assert any(reason in r for r in refused[bundle.name]), refused


def test_latest_rollback_ignores_rehearsals(tmp_path: Path, reports: Path, keys: KeyPair) -> None:
    alpha = make_bundle(tmp_path, migration=M, phase="alpha", name="20250102T000000Z-PASS")
    predicate = make_predicate(alpha)
    predicate.update(
        incomplete=[], promotable=True, peers=PEERS, finished_at="2025-01-02T00:05:00Z"
    )
    _fix_modes(reports)
    seal_bundle(alpha, predicate, keys.signer)
    _bundle(tmp_path, keys, 3, "PARTIAL")  # a rehearsal after alpha: nothing was rolled back
    assert latest_rollback(reports, M, keys.trusted) is None
    assert isinstance(find_link(reports, M, "alpha", keys.trusted, endpoints=ENDPOINTS), Link)
    real = _bundle(
        tmp_path, keys, 1, "PASS", stage=None, scope="complete", partial_reasons=[]
    )  # a real rollback before alpha
    _bundle(tmp_path, keys, 4, "PARTIAL")  # and a newer rehearsal
    rollback = latest_rollback(reports, M, keys.trusted)
    assert rollback is not None
    assert rollback.name == real.name
    rehearsal = find_rehearsal(reports, M, keys.trusted, endpoints=ENDPOINTS)
    assert isinstance(rehearsal, Link)
    assert rehearsal.name == "20250104T000000Z-PARTIAL"


# --- real runs against the simulator, made LIVE --------------------------------------------


class Repo:
    """A gate repository with a signing key, a trusted key folder and a socket folder."""

    def __init__(self, pytester: pytest.Pytester, sockets: Path) -> None:
        self.pytester = pytester
        self.sockets = sockets
        self.root = pytester.path
        self.key = self.root / "keys" / "ci.key"
        generate_keypair(self.key)
        self.trusted_dir = self.root / "keys" / "trusted"
        self.trusted_dir.mkdir(mode=0o755)
        shutil.copy(f"{self.key}.pub.json", self.trusted_dir / "ci.pub.json")
        make_gate_repo(pytester)
        self.endpoints: dict[str, str] = {}
        self.result: pytest.RunResult | None = None

    def fleet(self, scenario: str = "healthy", phase: str = "canary") -> SimFleet:
        """A live fleet; by default the canary's (its selector names the canary sessions)."""
        fleet = start_fleet(scenario, self.sockets, phase=phase)
        for uri in fleet.endpoints.values():
            (Path(uri.removeprefix("unix://")).parent / SIMULATOR_MARKER).unlink()
        return fleet

    def configure(self, fleet: SimFleet, **evidence: str) -> None:
        uris = {**fleet.evidence, **evidence}
        (self.root / "canarygate.toml").write_text(
            '[migration]\nid = "rehearsal-test"\n'
            f'[daemons.v4]\nendpoint = "{fleet.endpoints["v4"]}"\n'
            f'[daemons.v5]\nendpoint = "{fleet.endpoints["v5"]}"\n'
            "[timeouts]\nconnect_s = 1.0\nread_s = 2.0\n"
            "[observation]\nversion_interval_s = 0.05\n"
            "[evidence]\n"
            + "".join(f'{k} = "{v}"\n' for k, v in uris.items())
            + '[chain]\ntrusted_keys = "keys/trusted"\n'
        )

    def run(self, *args: str) -> tuple[pytest.RunResult, Path, dict[str, Any]]:
        before = set(run_dirs(self.root))
        result = self.pytester.runpytest_subprocess(
            "--phase=rollback", f"--canarygate-key={self.key}", *args
        )
        (bundle,) = set(run_dirs(self.root)) - before
        return result, bundle, json.loads((bundle / "run.json").read_text())

    def rehearse(self, scenario: str = "healthy", **evidence: str) -> tuple[Path, dict[str, Any]]:
        with self.fleet(scenario) as fleet:
            self.configure(fleet, **evidence)
            self.endpoints = dict(fleet.endpoints)
            result, bundle, run = self.run(f"--canarygate-stage={REHEARSAL}")
        assert run["stage"] == REHEARSAL, result.stdout.str()
        self.result = result
        return bundle, run

    def find(self) -> Link | tuple[Candidate, ...]:
        trusted = dict(load_trusted_keys(self.trusted_dir))
        return find_rehearsal(
            self.root / "reports", "rehearsal-test", trusted, endpoints=self.endpoints
        )

    def latest_rollback(self) -> Link | None:
        trusted = dict(load_trusted_keys(self.trusted_dir))
        return latest_rollback(self.root / "reports", "rehearsal-test", trusted)


@pytest.fixture
def repo(pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory) -> Repo:
    sockets = tmp_path_factory.mktemp("s")
    sockets.chmod(0o700)
    pytester.chdir()
    return Repo(pytester, sockets)


def verdicts(run: dict[str, Any]) -> dict[str, str]:
    return {g["gate"]: g["verdict"] for g in run["gates"]}


def message(run: dict[str, Any], gate_id: str) -> str:
    (found,) = [g["message"] for g in run["gates"] if g["gate"] == gate_id]
    return str(found)


def test_a_healthy_live_rehearsal_passes_and_is_found(repo: Repo) -> None:
    bundle, run = repo.rehearse()
    assert verdicts(run) == dict.fromkeys(GATES.values(), "PASS"), run["gates"]
    assert repo.result is not None
    assert repo.result.ret == pytest.ExitCode.OK, repo.result.stdout.str()
    assert (run["verdict"], run["scope"]) == ("partial", "partial")
    assert (run["partial_reasons"], run["missing_gates"], run["incomplete"]) == (STAGE_ONLY, [], [])
    envelope = json.loads((bundle / "statement.dsse.json").read_text())
    predicate = json.loads(base64.b64decode(envelope["payload"]))["predicate"]
    assert predicate["stage"] == REHEARSAL
    found = repo.find()
    assert isinstance(found, Link), found
    assert found.name == bundle.name
    # a rehearsal rolled nothing back
    assert repo.latest_rollback() is None


def _scenario(repo: Repo, name: str, body: str) -> str:
    path = repo.sockets.parent / f"{name}.toml"
    path.write_text(f'extends = "healthy"\ndescription = "{name}"\n{body}')
    return str(path)


def _refused_rehearsal(repo: Repo, run: dict[str, Any], gate_id: str, verdict: str) -> str:
    got = verdicts(run)
    assert got[gate_id] == verdict, run["gates"]
    assert run["verdict"] == "fail"
    found = repo.find()
    assert not isinstance(found, Link)
    assert any(f"({gate_id}) is {verdict}" in r for r in found[0].reasons), found
    return message(run, gate_id)


def test_v4_not_serving_a_canary_panes_never_passes(repo: Repo) -> None:
    scenario = _scenario(repo, "v4-misses-a-pane", '[daemons.v4]\nremove_panes = ["%1"]\n')
    _, run = repo.rehearse(scenario)
    text = _refused_rehearsal(repo, run, GATES["RB-R2"], "FAIL")
    assert "canary session session-alpha: pane %1 is on v5, not on v4" in text


def test_a_stale_v4_source_never_passes(repo: Repo) -> None:
    scenario = _scenario(
        repo,
        "v4-stale-source",
        '[[daemons.v4.registry]]\nsource_id = "ext-poller"\nsource_kind = "poller"\n'
        'lifecycle = "stale"\nheartbeat_age_ms = 95000\n',
    )
    _, run = repo.rehearse(scenario)
    text = _refused_rehearsal(repo, run, GATES["RB-R3"], "FAIL")
    assert "stale" in text


def test_a_selector_file_the_operator_cannot_write_never_passes(
    repo: Repo, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("selector")
    folder.chmod(0o755)
    copy = folder / "runtime.toml"

    def read_only_copy(fleet: SimFleet) -> str:
        shutil.copy2(fleet.evidence["selector"].removeprefix("file://"), copy)
        copy.chmod(0o444)
        return copy.as_uri()

    with repo.fleet() as fleet:
        repo.configure(fleet, selector=read_only_copy(fleet))
        repo.endpoints = dict(fleet.endpoints)
        _, _, run = repo.run(f"--canarygate-stage={REHEARSAL}")
    assert stat.S_IMODE(copy.stat().st_mode) == 0o444  # checked, never changed
    text = _refused_rehearsal(repo, run, GATES["RB-R1"], "FAIL")
    assert f"runtime selector file {copy}" in text
    assert "0444" in text


def test_a_selector_that_is_not_a_file_never_passes(repo: Repo) -> None:
    with repo.fleet() as fleet:
        v5 = fleet.endpoints["v5"]
    _, run = repo.rehearse(selector=v5)
    text = _refused_rehearsal(repo, run, GATES["RB-R1"], "UNOBSERVABLE")
    assert re.search(r"read from unix://\S+, not a file:// URI", text), text
    assert "can only check a local selector file" in text


def test_a_plain_rollback_run_does_not_run_the_rehearsal(repo: Repo) -> None:
    with repo.fleet(phase="rollback") as fleet:
        repo.configure(fleet)
        _, bundle, run = repo.run()
    assert run["stage"] is None
    ran = set(verdicts(run))
    assert ran, run
    assert not {g for g in ran if g.startswith("rollback.rehearsal.")}
    assert not [m for m in run["missing_gates"] if m.startswith("rollback.rehearsal.")]
    rollback = repo.latest_rollback()
    assert rollback is not None
    assert rollback.name == bundle.name
