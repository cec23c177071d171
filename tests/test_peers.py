"""The process that served each socket (SO_PEERCRED) beside the pid the daemon reports: a
relay or proxy in front of a daemon is shown, recorded and never a sign-off."""

from __future__ import annotations

from pytest_canarygate.agtmux.pack import daemon_info_pid
from pytest_canarygate.observation import CallRecord
from pytest_canarygate.observation import DaemonObservation
from pytest_canarygate.observation import Observation
from pytest_canarygate.results import GateResult
from pytest_canarygate.results import RunOutcome
from pytest_canarygate.summary import summary_lines
from pytest_canarygate.verdicts import Verdict

AT = "2026-12-01T00:00:00.000Z"


def daemon(name: str, reported: int, served: list[int | None]) -> DaemonObservation:
    calls = [
        CallRecord(
            name,
            f"unix:///run/{name}/d.sock",
            "daemon.info",
            i + 1,
            None,
            AT,
            1.0,
            result={"pid": reported},
            peer_pid=pid,
        )
        for i, pid in enumerate(served)
    ]
    return DaemonObservation(name, f"unix:///run/{name}/d.sock", calls)


def test_peers_compare_the_kernel_pid_with_the_reported_one() -> None:
    observation = Observation(
        "alpha",
        {"kind": "live"},
        AT,
        AT,
        {
            "v4": daemon("v4", 10, [10, 10]),
            "v5": daemon("v5", 20, [99, 99]),
            "vx": daemon("vx", 30, [None]),  # the platform could not tell
        },
    )
    peers = {p["daemon"]: p for p in observation.peers(daemon_info_pid)}
    assert peers["v4"]["relayed"] is False
    assert peers["v5"] == {
        "daemon": "v5",
        "endpoint": "unix:///run/v5/d.sock",
        "peer_pids": [99],
        "reported_pid": 20,
        "relayed": True,
    }
    assert peers["vx"]["relayed"] is False
    assert peers["vx"]["peer_pids"] == []


def test_a_relayed_run_is_shown_and_never_promotable() -> None:
    outcome = RunOutcome("alpha", [GateResult("n", "g", "I", Verdict.PASS)], signed=True)
    assert outcome.promotable
    outcome.relayed = ["v5"]
    assert not outcome.promotable
    assert "a relay answered for v5" in outcome.not_promotable_because[0]
    lines = [
        text
        for text, _ in summary_lines(
            outcome,
            migration_id="m",
            target={"kind": "live"},
            observed_at=AT,
            bundle=None,
            peers=[
                {
                    "daemon": "v5",
                    "endpoint": "unix:///run/v5/d.sock",
                    "peer_pids": [99],
                    "reported_pid": 20,
                    "relayed": True,
                }
            ],
        )
    ]
    assert any(
        "RELAYED  v5: pid 99 serves unix:///run/v5/d.sock, but the daemon reports pid 20" in line
        for line in lines
    ), lines
