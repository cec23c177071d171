"""The chain of custody through real runs of the engine: a phase relies on the signed bundle of
the phase before, sign-offs and waivers come from signed files, and a loosened runbook number
makes a run no sign-off. Daemons are the simulator with its marker removed (judged LIVE), each
phase's fleet started in one socket folder so that both runs judge the same endpoints."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path

import pytest
from gate_repo import make_gate_repo
from gate_repo import run_dirs

from pytest_canarygate import clock
from pytest_canarygate.agtmux.sim import SimFleet
from pytest_canarygate.agtmux.sim import start_fleet
from pytest_canarygate.agtmux.sim.clock import ANCHOR_ENV
from pytest_canarygate.agtmux.sim.clock import CLOCK_ENV
from pytest_canarygate.cli import main as cli_main
from pytest_canarygate.keys import generate_keypair
from pytest_canarygate.observation import SIMULATOR_MARKER

CANARY_SESSIONS = ("session-alpha", "session-beta")


class Archive:
    """One migration's repository: config, keys, a socket folder and the runs made in it."""

    def __init__(self, pytester: pytest.Pytester, sockets: Path) -> None:
        self.pytester = pytester
        self.sockets = sockets
        self.root = pytester.path
        self.key = self.root / "keys" / "ci.key"
        generate_keypair(self.key)
        trusted = self.root / "keys" / "trusted"
        trusted.mkdir(mode=0o755)
        (trusted / "ci.pub.json").write_bytes(Path(f"{self.key}.pub.json").read_bytes())
        self.alice = self.root / "keys" / "alice.key"
        generate_keypair(self.alice)
        self.extra_config = ""
        make_gate_repo(pytester)

    def fleet(self, phase: str, *, live: bool = True, v4_running: bool = False) -> SimFleet:
        # healthy leaves v4 stopped (decommissioned) at cutover unless it is to run
        fleet = start_fleet(
            "healthy", self.sockets, phase=phase, stopped=() if v4_running else None
        )
        if live:
            for uri in fleet.endpoints.values():
                (Path(uri.removeprefix("unix://")).parent / SIMULATOR_MARKER).unlink()
        return fleet

    def configure(self, fleet: SimFleet, extra: str = "") -> None:
        evidence = "".join(f'{k} = "{v}"\n' for k, v in fleet.evidence.items())
        (self.root / "canarygate.toml").write_text(
            '[migration]\nid = "chain-test"\n'
            f'[daemons.v4]\nendpoint = "{fleet.endpoints["v4"]}"\n'
            f'[daemons.v5]\nendpoint = "{fleet.endpoints["v5"]}"\n'
            "[timeouts]\nconnect_s = 1.0\nread_s = 2.0\n"
            "[observation]\nversion_interval_s = 0.05\n"
            f"[evidence]\n{evidence}"
            '[chain]\ntrusted_keys = "keys/trusted"\n'
            'waivable_failures = ["canary.monitor.cas-conflicts"]\n'
            + self.extra_config
            + '[[signers]]\nname = "alice"\nkey = "keys/alice.key.pub.json"\n'
            'items = ["P2-X3", "CG-7", "PR-3"]\nwaive = ["canary.*"]\n' + extra
        )

    def run(self, phase: str, *args: str) -> tuple[pytest.RunResult, Path, dict]:
        before = set(run_dirs(self.root))
        result = self.pytester.runpytest_subprocess(
            f"--phase={phase}", f"--canarygate-key={self.key}", *args
        )
        (bundle,) = set(run_dirs(self.root)) - before
        return result, bundle, json.loads((bundle / "run.json").read_text())

    def cli(self, *args: str) -> pytest.RunResult:
        return self.pytester.run(sys.executable, "-m", "pytest_canarygate", *args)

    def sign_off(self, item: str, *extra: str) -> None:
        result = self.cli(
            "signoff", "--item", item, "--by", "alice", "--key", str(self.alice), *extra
        )
        assert result.ret == 0, result.stderr.str()


@pytest.fixture
def archive(pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory) -> Archive:
    sockets = tmp_path_factory.mktemp("s")
    sockets.chmod(0o700)
    pytester.chdir()
    return Archive(pytester, sockets)


@pytest.fixture
def alpha_bundle(archive: Archive) -> Path:
    with archive.fleet("alpha") as fleet:
        archive.configure(fleet)
        result, bundle, run = archive.run("alpha")
    assert result.ret == 0, result.stdout.str()
    assert run["promotable"] is True
    return bundle


@pytest.fixture
def rehearsed(archive: Archive, alpha_bundle: Path) -> Path:
    """The rollback dry-run, signed and passing: with the alpha bundle, a canary can start."""
    with archive.fleet("canary") as fleet:
        archive.configure(fleet)
        _, bundle, run = archive.run("rollback", "--canarygate-stage=rehearsal")
    assert {g["verdict"] for g in run["gates"]} == {"PASS"}, run["gates"]
    return bundle


def gate(run: dict, gate_id: str) -> dict:
    (found,) = [g for g in run["gates"] if g["gate"] == gate_id]
    return found


def envelope_digest(bundle: Path) -> str:
    return hashlib.sha256((bundle / "statement.dsse.json").read_bytes()).hexdigest()


def test_a_canary_with_no_alpha_bundle_is_not_promotable_and_says_why(archive: Archive) -> None:
    with archive.fleet("canary") as fleet:
        archive.configure(fleet)
        result, _, run = archive.run("canary")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert gate(run, "canary.pre.alpha-signed")["verdict"] == "INCONCLUSIVE"
    assert run["relies_on"] == []
    assert any(
        "no signed alpha bundle to rely on (canary requires one)" in r
        for r in run["not_promotable_because"]
    ), run["not_promotable_because"]


def test_a_gradual_run_with_no_canary_bundle_is_not_promotable_and_names_it(
    archive: Archive, alpha_bundle: Path
) -> None:
    """An alpha bundle is there, but gradual needs canary's: it says which one is missing."""
    with archive.fleet("gradual") as fleet:
        archive.configure(fleet)
        result, _, run = archive.run("gradual", "--canarygate-require-promotable")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert run["promotable"] is False
    assert "canary" not in {r["phase"] for r in run["relies_on"]}
    (missing,) = [r for r in run["not_promotable_because"] if "bundle to rely on" in r]
    assert missing.startswith("no signed canary bundle to rely on (gradual requires one)")
    result.stdout.fnmatch_lines(["*no signed canary bundle to rely on (gradual requires one)*"])


def test_a_canary_relies_on_the_signed_alpha_bundle(
    archive: Archive, alpha_bundle: Path, rehearsed: Path
) -> None:
    with archive.fleet("canary") as fleet:
        archive.configure(fleet)
        _, _, first = archive.run("canary")  # the canary starts: its users can confirm now
        for session in CANARY_SESSIONS:
            archive.sign_off("P2-X3", "--session", session)
        _, bundle, run = archive.run("canary")
    assert (
        "the canary has not started in the archive"
        in (gate(first, "canary.exit.users-confirm")["message"])
    )
    assert gate(run, "canary.pre.alpha-signed")["verdict"] == "PASS"
    assert gate(run, "canary.exit.users-confirm")["verdict"] == "PASS"
    assert gate(run, "canary.pre.rca-after-rollback")["verdict"] == "PASS"
    (link,) = run["relies_on"]
    assert (link["phase"], link["bundle"]) == ("alpha", alpha_bundle.name)
    assert link["digest"] == envelope_digest(alpha_bundle)
    # the statement, signed, names the same digest
    envelope = json.loads((bundle / "statement.dsse.json").read_text())
    predicate = json.loads(base64.b64decode(envelope["payload"]))["predicate"]
    assert [r["digest"] for r in predicate["relies_on"]] == [envelope_digest(alpha_bundle)]
    custody = json.loads((bundle / "custody.json").read_text())
    assert {a["session"] for a in custody["attestations"]} == set(CANARY_SESSIONS)


def test_a_sign_off_for_one_session_leaves_the_other_unconfirmed(
    archive: Archive, rehearsed: Path
) -> None:
    with archive.fleet("canary") as fleet:
        archive.configure(fleet)
        archive.run("canary")
        archive.sign_off("P2-X3", "--session", CANARY_SESSIONS[0])
        _, _, run = archive.run("canary")
    users = gate(run, "canary.exit.users-confirm")
    assert users["verdict"] == "INCONCLUSIVE"
    assert (
        f"1 of 2 canary session(s) have no signed confirmation (P2-X3): {CANARY_SESSIONS[1]}"
        in (users["message"])
    )


def test_a_simulated_alpha_bundle_never_counts(archive: Archive) -> None:
    with archive.fleet("alpha", live=False) as fleet:
        archive.configure(fleet)
        archive.run("alpha")
    with archive.fleet("canary") as fleet:
        archive.configure(fleet)
        _, _, run = archive.run("canary")
    signed = gate(run, "canary.pre.alpha-signed")
    assert signed["verdict"] == "INCONCLUSIVE"
    assert "simulated" in signed["message"]


def test_an_alpha_bundle_of_other_daemons_never_counts(
    archive: Archive, alpha_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    archive.sockets = tmp_path_factory.mktemp("other")
    archive.sockets.chmod(0o700)
    with archive.fleet("canary") as fleet:
        archive.configure(fleet)
        _, _, run = archive.run("canary")
    assert gate(run, "canary.pre.alpha-signed")["verdict"] == "INCONCLUSIVE"
    assert run["relies_on"] == []


def test_a_rollback_after_alpha_needs_a_new_alpha_bundle_and_an_rca(
    archive: Archive, alpha_bundle: Path
) -> None:
    with archive.fleet("rollback") as fleet:
        archive.configure(fleet)
        _, rollback, _ = archive.run("rollback")
    with archive.fleet("canary") as fleet:
        archive.configure(fleet)
        _, _, run = archive.run("canary")
    assert gate(run, "canary.pre.alpha-signed")["verdict"] == "INCONCLUSIVE"
    rca = gate(run, "canary.pre.rca-after-rollback")
    assert rca["verdict"] == "FAIL"
    assert rollback.name in rca["message"]
    archive.sign_off("PR-3", "--refers", str(rollback), "--text", "root cause: a bad selector")
    with archive.fleet("canary") as fleet:
        archive.configure(fleet)
        _, _, run = archive.run("canary")
    assert gate(run, "canary.pre.rca-after-rollback")["verdict"] == "PASS"


def test_a_waiver_turns_an_inconclusive_gate_into_waived_and_keeps_its_outcome(
    archive: Archive, alpha_bundle: Path
) -> None:
    waived = archive.cli(
        "waive",
        "--gate",
        "canary.exit.users-confirm",
        "--why",
        "users on leave, confirmed by phone",
        "--until",
        "2999-01-01",
        "--by",
        "alice",
        "--key",
        str(archive.alice),
        "--phase",
        "canary",
    )
    assert waived.ret == 0, waived.stderr.str()
    with archive.fleet("canary") as fleet:
        archive.configure(fleet)
        _, bundle, run = archive.run("canary")
    users = gate(run, "canary.exit.users-confirm")
    assert users["verdict"] == "WAIVED"
    assert users["message"].startswith("WAIVED by alice until 2999-01-")
    assert "its own verdict: INCONCLUSIVE" in users["message"]
    # Allure shows it as waived, with who, until when and the verdict it would have had
    results = [json.loads(p.read_text()) for p in (bundle / "allure-results").glob("*-result.json")]
    (result,) = [r for r in results if r["name"].startswith("canary.exit.users-confirm: ")]
    assert {"name": "tag", "value": "WAIVED"} in result["labels"]
    parameters = {p["name"]: p["value"].strip("'") for p in result["parameters"]}
    assert parameters["own verdict"] == "INCONCLUSIVE"
    assert parameters["waived by"].startswith("alice until 2999-01-")


@pytest.mark.parametrize("dist", [[], ["-n", "2"]], ids=["no-xdist", "xdist-2"])
def test_an_unsigned_waiver_stops_the_run_before_any_gate(
    archive: Archive, alpha_bundle: Path, dist: list[str]
) -> None:
    """Found once the observation is in: before collection under xdist, when collection
    ends in a serial run (which collects while the later readings are taken); either way
    no gate runs and the run's folder is named aborted, never like a run in progress."""
    folder = archive.root / "reports" / "chain-test" / "waivers"
    folder.mkdir(mode=0o755, exist_ok=True)
    bad = folder / "20261204T000000.000Z-waiver-x-alice.dsse.json"
    bad.write_text(
        '{"payload": "e30=", "payloadType": "application/vnd.in-toto+json", "signatures": []}'
    )
    bad.chmod(0o644)
    before = set(run_dirs(archive.root))
    with archive.fleet("canary") as fleet:
        archive.configure(fleet)
        result = archive.pytester.runpytest_subprocess(
            "--phase=canary", f"--canarygate-key={archive.key}", *dist
        )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert str(bad) in result.stderr.str()
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    new = set(run_dirs(archive.root)) - before
    assert all("gates" not in json.loads((b / "run.json").read_text()) for b in new)
    folders = [p.name for p in (archive.root / "reports" / "chain-test" / "canary").iterdir()]
    aborted = [name for name in folders if name.endswith("-aborted")]
    assert len(aborted) == 1, folders
    assert not [name for name in folders if name.endswith("-running")], folders
    # no gate ran: not one gate's result was written
    results = archive.root / "reports" / "chain-test" / "canary" / aborted[0] / "allure-results"
    assert not list(results.glob("*-result.json"))


def test_a_loosened_window_makes_the_run_no_sign_off(archive: Archive) -> None:
    with archive.fleet("alpha") as fleet:
        archive.configure(fleet, "[windows]\nalpha_monitor_h = 0.5\n")
        result, _, run = archive.run("alpha")
    assert result.ret == 0  # every gate passed; only --canarygate-require-promotable fails it
    assert run["promotable"] is False
    assert run["loosened"] == ["[windows] alpha_monitor_h = 0.5 (runbook: at least 24 hours)"]
    assert (
        "the config loosens the runbook: [windows] alpha_monitor_h = 0.5 (runbook: at least 24 "
        "hours)"
    ) in run["not_promotable_because"]


# --- the walk: alpha -> canary -> gradual -> cutover, then a rollback ----------------------

#: Stands in for the engine's wall clock in the runs a walk makes (a test double, written into
#: the walk's repository as its conftest.py): time starts at CANARYGATE_TEST_NOW_MS and runs on.
FAKE_CLOCK = """\
import os
import time
from datetime import datetime, timedelta, timezone

from pytest_canarygate import clock

_PINNED = os.environ.get("CANARYGATE_TEST_NOW_MS")
if _PINNED:
    _START, _T0 = datetime.fromtimestamp(int(_PINNED) / 1000, timezone.utc), time.monotonic()
    clock.wall_now = lambda: _START + timedelta(seconds=time.monotonic() - _T0)
"""
HOUR_MS = 3_600_000


class Walk:
    """An archive whose runs happen at chosen moments: ``at(hours)`` after the start."""

    def __init__(self, archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
        self.archive = archive
        self.monkeypatch = monkeypatch
        self.start_ms = time.time_ns() // 1_000_000 + 10 * 60_000
        (archive.root / "conftest.py").write_text(FAKE_CLOCK)

    def at(self, hours: float) -> None:
        now_ms = self.start_ms + int(hours * HOUR_MS)
        self.monkeypatch.setenv("CANARYGATE_TEST_NOW_MS", str(now_ms))
        self.monkeypatch.setenv(ANCHOR_ENV, str(now_ms))
        self.monkeypatch.setenv(CLOCK_ENV, str(now_ms))

    def sign(self, *args: str) -> None:
        """`canarygate signoff|waive ...` at the walk's time (in-process, under its clock)."""
        moment = datetime.fromtimestamp(int(os.environ["CANARYGATE_TEST_NOW_MS"]) / 1000, UTC)
        self.monkeypatch.setattr(clock, "wall_now", lambda: moment)
        assert cli_main(list(args)) == 0

    def run(
        self, phase: str, *args: str, fleet_phase: str | None = None, v4_running: bool = False
    ) -> dict:
        with self.archive.fleet(fleet_phase or phase, v4_running=v4_running) as fleet:
            self.archive.configure(fleet, "")
            _, _, run = self.archive.run(phase, *args)
        return run


def _blocking(run: dict) -> dict[str, str]:
    return {g["gate"]: g["verdict"] for g in run["gates"] if g["verdict"] not in ("PASS", "WAIVED")}


def test_the_walk_through_every_phase_and_a_rollback(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each promotion happens only when every rule holds: the phase before signed, the soak
    covered from the archive, the sign-offs signed; a rollback breaks the chain."""
    walk = Walk(archive, monkeypatch)
    # max_monitor_gap_h is ours to choose (not a runbook number): a monitor run a day. Each
    # phase's last run comes an hour past its window: a run's clock starts a moment before it
    # records its start, so a window met to the second could fall short by that moment.
    archive.extra_config = "max_monitor_gap_h = 26\n"

    walk.at(0)
    alpha = walk.run("alpha")
    assert alpha["promotable"] is True, alpha["not_promotable_because"]

    walk.at(1)
    rehearsal = walk.run("rollback", "--canarygate-stage=rehearsal", fleet_phase="canary")
    assert _blocking(rehearsal) == {}, rehearsal["gates"]
    waived = archive.cli(
        "waive", "--gate", "canary.exit.users-confirm", "--why", "session-beta's user is on "
        "leave, confirmed by phone", "--until", "2999-01-01", "--phase", "canary",
        "--by", "alice", "--key", str(archive.alice),
    )  # fmt: skip
    assert waived.ret == 0, waived.stderr.str()

    canary_runs = []
    for hours in (2, 26, 51):
        walk.at(hours)
        canary_runs.append(walk.run("canary"))
        if hours == 26:  # session-alpha's user confirms, during the canary
            walk.at(27)
            walk.sign(
                "signoff", "--item", "P2-X3", "--session", "session-alpha", "--by", "alice",
                "--key", str(archive.alice), "--text", "works as before",
            )  # fmt: skip
    first, second, last = canary_runs
    assert set(_blocking(first)) == {
        "canary.duration.archive-48h",
        "canary.exit.archive-stable-48h",
        "canary.expand.pace",
    }, first["gates"]
    assert not first["promotable"]
    assert not second["promotable"]
    soak = next(g for g in second["gates"] if g["gate"] == "canary.duration.archive-48h")
    assert soak["verdict"] == "INCONCLUSIVE"
    assert "of the 48h since the phase started" in soak["message"]
    assert last["promotable"] is True, last["not_promotable_because"]
    users = next(g for g in last["gates"] if g["gate"] == "canary.exit.users-confirm")
    assert users["verdict"] == "WAIVED"

    gradual = []
    for hours in (*range(52, 52 + 24 * 7, 24), 52 + 169):
        walk.at(hours)
        gradual.append(walk.run("gradual"))
    assert not any(run["promotable"] for run in gradual[:-1])
    assert gradual[-1]["promotable"] is True, gradual[-1]["not_promotable_because"]
    assert [r["phase"] for r in gradual[-1]["relies_on"]] == ["canary", "alpha"]

    archive.sign_off("CG-7", "--text", "on-call briefed on the rollback procedure")
    cutover = []
    for hours in (*range(222, 222 + 24 * 7, 24), 222 + 169):
        walk.at(hours)
        # v4 runs drained through the cutover, decommissioned before its last run
        cutover.append(walk.run("cutover", v4_running=hours < 222 + 169))
    assert cutover[-1]["promotable"] is True, cutover[-1]["not_promotable_because"]
    assert [r["phase"] for r in cutover[-1]["relies_on"]] == ["gradual", "canary", "alpha"]

    status = archive.cli("status", "chain-test", "--trusted-keys", "keys/trusted", "--json")
    assert status.ret == 0, status.stderr.str()
    chain = archive.cli("verify", "--chain", "chain-test", "--trusted-keys", "keys/trusted")
    assert chain.ret == 0, chain.stdout.str()

    walk.at(392)
    rollback = walk.run("rollback")
    assert rollback["decision"]["decision"] == "NO ROLLBACK SIGNAL"

    walk.at(393)
    retry = walk.run("canary")
    assert not retry["promotable"]
    assert {
        g["gate"]: g["verdict"]
        for g in retry["gates"]
        if g["gate"] in ("canary.pre.alpha-signed", "canary.pre.rca-after-rollback")
    } == {"canary.pre.alpha-signed": "INCONCLUSIVE", "canary.pre.rca-after-rollback": "FAIL"}


def test_a_rollback_bundle_that_does_not_verify_breaks_the_chain(
    archive: Archive, alpha_bundle: Path
) -> None:
    """Changing one byte of a rollback bundle must not make the rollback forgotten."""
    with archive.fleet("rollback") as fleet:
        archive.configure(fleet)
        _, rollback, _ = archive.run("rollback")
    run_file = rollback / "run.json"
    run_file.write_bytes(run_file.read_bytes() + b" ")
    with archive.fleet("canary") as fleet:
        archive.configure(fleet)
        _, _, run = archive.run("canary")
    signed = gate(run, "canary.pre.alpha-signed")
    assert signed["verdict"] == "INCONCLUSIVE"
    assert (
        f"the rollback folder holds bundle(s) that do not verify ({rollback.name})"
        in (signed["message"])
    )
    assert run["relies_on"] == []
    assert gate(run, "canary.pre.rollback-rehearsed")["verdict"] == "INCONCLUSIVE"


def test_a_sign_off_from_before_a_rollback_no_longer_counts(
    archive: Archive, alpha_bundle: Path
) -> None:
    archive.sign_off("CG-7", "--text", "briefed")
    with archive.fleet("rollback") as fleet:
        archive.configure(fleet)
        archive.run("rollback")
    with archive.fleet("cutover") as fleet:
        archive.configure(fleet)
        _, bundle, run = archive.run("cutover")
    briefed = gate(run, "cutover.checklist.on-call-briefed")
    assert briefed["verdict"] == "INCONCLUSIVE"
    assert "before the rollback" in briefed["message"]
    custody = json.loads((bundle / "custody.json").read_text())
    assert not any(a["subject"] == "CG-7" for a in custody["attestations"])


def test_custody_changed_during_the_run_leaves_the_bundle_unsealed(
    archive: Archive, alpha_bundle: Path
) -> None:
    """Whatever the gates were given must be what the archive held: a custody.json changed
    after the controller wrote it is caught when the bundle is sealed."""
    (archive.root / "conftest.py").write_text(
        "from pathlib import Path\n\n"
        "def pytest_runtest_setup(item):\n"
        "    for path in Path('reports').glob('*/*/*-running/custody.json'):\n"
        "        path.write_text(path.read_text().replace('\"rollback\": null', "
        "'\"rollback\": null ', 1))\n"
    )
    with archive.fleet("canary") as fleet:
        archive.configure(fleet)
        result, bundle, run = archive.run("canary", "-n", "2")
    assert bundle.name.endswith("-unsealed"), bundle.name
    assert run["promotable"] is False
    result.stdout.fnmatch_lines(["*BUNDLE NOT SEALED*custody.json changed during the run*"])
