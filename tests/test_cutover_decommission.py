"""Cutover after the decommission, through real signed runs: a cutover run that saw v4 running
and empty is archived, then v4 is stopped (the simulator leaves its socket absent) and the
Phase 4 gates judge v4 from that archive. Daemons are the simulator with its marker removed
(judged LIVE), every fleet in one socket folder so that all runs judge the same endpoints.

The cutover checklist's archive gates (earlier phases signed, on-call briefed, ...) are waived
by a signed waiver: what is judged here is Phase 4, not the chain before it, and a cutover run
counts in the archive only once its entry gates all passed or were waived.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_custody_run import Archive

from pytest_canarygate.agtmux.sim import SimFleet
from pytest_canarygate.agtmux.sim import start_fleet
from pytest_canarygate.cli import main as cli_main
from pytest_canarygate.keys import generate_keypair
from pytest_canarygate.observation import SIMULATOR_MARKER

#: The cutover entry gates judged from the archive of earlier phases, waived here.
CHECKLIST = (
    "cutover.checklist.alpha-signed",
    "cutover.checklist.canary-signed",
    "cutover.checklist.gradual-signed",
    "cutover.checklist.on-call-briefed",
    "cutover.checklist.restore-evidence-retained",
    "cutover.checklist.rollback-rehearsed",
)
ZERO_V4 = (
    "cutover.migrate.v4-sessions-restarted",
    "cutover.verify.zero-v4-sessions",
    "cutover.exit.zero-v4-sessions",
)
DECOMMISSION = "cutover.decommission.v4-binary-archived"
RETAINED = "cutover.exit.v4-binary-retained"
STABLE = "cutover.exit.v5-only-stable-7d"
OPERATOR = '[[signers]]\nname = "bob"\nkey = "keys/bob.key.pub.json"\nitems = []\n'


class Cutover:
    """Cutover runs in one archive, v4 running or stopped, the checklist waived."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.bob = archive.root / "keys" / "bob.key"
        generate_keypair(self.bob)
        self.waived = False

    def fleet(self, scenario: str, *, v4_running: bool) -> SimFleet:
        fleet = start_fleet(
            scenario, self.archive.sockets, phase="cutover", stopped=() if v4_running else None
        )
        for uri in fleet.endpoints.values():  # judged LIVE
            (Path(uri.removeprefix("unix://")).parent / SIMULATOR_MARKER).unlink()
        return fleet

    def run(self, scenario: str = "healthy", *, v4_running: bool) -> dict[str, tuple[str, str]]:
        """One signed cutover run; gate id -> (verdict, message)."""
        with self.fleet(scenario, v4_running=v4_running) as fleet:
            self.archive.configure(fleet, OPERATOR + 'waive = ["cutover.checklist.*"]\n')
            if not self.waived:
                for gate_id in CHECKLIST:
                    assert cli_main(self._waiver(gate_id)) == 0
                self.waived = True
            _, _, run = self.archive.run("cutover")
        return {g["gate"]: (g["verdict"], g["message"]) for g in run["gates"]}

    def _waiver(self, gate_id: str) -> list[str]:
        return [
            "waive", "--gate", gate_id, "--why", "Phase 4 judged alone in this test",
            "--until", "2999-01-01", "--phase", "cutover", "--by", "bob", "--key", str(self.bob),
        ]  # fmt: skip


@pytest.fixture
def cutover(pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory) -> Cutover:
    sockets = tmp_path_factory.mktemp("s")
    sockets.chmod(0o700)
    pytester.chdir()
    return Cutover(Archive(pytester, sockets))


def test_cutover_after_the_decommission_can_pass_and_checks_the_archived_binary(
    cutover: Cutover,
) -> None:
    before = cutover.run(v4_running=True)
    # v4 still running, drained: no session left, but not decommissioned
    assert {g: before[g][0] for g in ZERO_V4} == dict.fromkeys(ZERO_V4, "PASS"), before
    assert before[DECOMMISSION][0] == "FAIL"
    assert "v4 is not decommissioned: it still answers" in before[DECOMMISSION][1]
    assert before[RETAINED][0] == "INCONCLUSIVE"
    assert {g: before[g][0] for g in CHECKLIST} == dict.fromkeys(CHECKLIST, "WAIVED")

    after = cutover.run(v4_running=False)
    for gate_id in (*ZERO_V4, DECOMMISSION, RETAINED, STABLE):
        assert after[gate_id][0] == "PASS", (gate_id, after[gate_id])
    # the runs' messages are kept only for gates that did not pass: judged again below through
    # the failure paths, against the same archive (the last run that saw v4 running: the first)

    other = cutover.run("v4-archive-other-version", v4_running=False)
    verdict, message = other[RETAINED]
    assert verdict == "FAIL", message
    assert "binary agtmux-0.0.4 is version 0.0.3, but the v4 that ran was 0.0.4" in message
    assert "recorded by" in message
    assert {g: other[g][0] for g in (*ZERO_V4, DECOMMISSION)} == dict.fromkeys(
        (*ZERO_V4, DECOMMISSION), "PASS"
    )

    short = cutover.run("v4-archive-retention-short", v4_running=False)
    verdict, message = short[RETAINED]
    assert verdict == "FAIL", message
    assert "less than 30d past the decommission (after" in message
    assert "when v4 was last seen running" in message
    assert short[DECOMMISSION][0] == "PASS"  # 30 days from its archiving: S4 holds


def test_a_v4_stopped_without_an_earlier_empty_observation_is_not_pass(cutover: Cutover) -> None:
    first = cutover.run(v4_running=False)  # no archived run of the phase has seen v4 at all
    for gate_id in ZERO_V4:
        verdict, message = first[gate_id]
        assert verdict == "INCONCLUSIVE", (gate_id, message)
        assert "no archived run of the cutover phase observed it running" in message
    assert first[DECOMMISSION][0] == "PASS"
    assert first[RETAINED][0] == "INCONCLUSIVE"
    assert "the version of the v4 that ran is not recorded" in first[RETAINED][1]

    serving = cutover.run("v4-sessions-remaining", v4_running=True)
    assert all(serving[g][0] == "FAIL" for g in ZERO_V4), serving

    stopped = cutover.run(v4_running=False)
    for gate_id in ZERO_V4:
        verdict, message = stopped[gate_id]
        assert verdict == "INCONCLUSIVE", (gate_id, message)
        assert "v4 is decommissioned (unix://" in message
        assert "found it serving sessions" in message
