"""The fault matrix, a representative subset: hostile relays (tests/relays.py) in front of a
healthy simulated fleet, no simulator marker beside them, so every run is judged LIVE.

Each fault is tried at least once on a method it applies to. Then no gate that reads the
faulted method may PASS, each such gate's message names the endpoint or the method, the run
exits non-zero and its bundle is sealed. A hang fails the test through the subprocess timeout,
never by blocking the suite. The whole matrix, every fault on every phase, is
bench/fault_matrix.py. The cases in KNOWN_FALSE_PASSES fail today (a false PASS, or a message
that names neither the endpoint nor the method): strict xfails, so that a fix shows up as XPASS
(then drop the entry).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from fault_targets import Target
from fault_targets import config_text
from fault_targets import evidence_uris
from fault_targets import judge
from fault_targets import sealed
from gate_repo import make_gate_repo
from gate_repo import only_run
from relays import FaultSpec
from relays import Relay

from pytest_canarygate.agtmux.sim import SimFleet
from pytest_canarygate.agtmux.sim import start_fleet
from pytest_canarygate.keys import generate_keypair

#: A run under a fault ends well within this; past it the test fails instead of hanging.
RUN_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Case:
    fault: str
    phase: str
    daemon: str
    method: str = "*"  # "*": the whole endpoint (missing, refused)
    param: Any = None

    @property
    def spec(self) -> FaultSpec:
        return self.fault if self.param is None else (self.fault, self.param)

    @property
    def id(self) -> str:
        suffix = f"={self.param[0]}:{self.param[1]}" if self.param else ""
        return f"{self.fault}{suffix}-{self.daemon}-{self.method}-{self.phase}"


CASES = [
    Case("missing", "alpha", "v5"),
    Case("refused", "gradual", "v4"),
    Case("hang", "canary", "v5", "latency_status"),
    Case("slow", "cutover", "v4", "list_sessions"),
    Case("midclose", "alpha", "v5", "list_panes"),
    Case("garbage", "alpha", "v5", "ops.supervisor_status"),
    Case("wrong-shape", "gradual", "v5", "ops.runtime_selector"),
    Case("huge", "rollback", "v4", "list_panes"),
    Case("rpc-error", "cutover", "v5", "ops.snapshot_list"),
    Case("wrong-id", "alpha", "v5", "list_sessions"),
    Case("changes", "alpha", "v5", "summary_changed"),
    Case("changes", "canary", "v5", "daemon.info"),
    Case("dup-keys", "canary", "v5", "latency_status"),
    Case("dup-keys", "canary", "v5", "ops.alert_ledger"),
    Case("dup-records", "alpha", "v5", "list_panes"),
    Case("dup-records", "canary", "v5", "ops.alert_ledger"),
    Case("future", "alpha", "v5", "state_changed"),
    # bench/fault_matrix.py also tries consecutive_breaches 5.0, null and -3, sample_count -7
    Case("out-of-range", "canary", "v5", "latency_status", ("consecutive_breaches", '"5"')),
    Case("out-of-range", "canary", "v5", "latency_status", ("p95_ms", "-5")),
    Case("nan", "canary", "v5", "ops.cursor_stats"),
    # false PASSes found by bench/fault_matrix.py, one case per kind of defect
    Case("future", "alpha", "v5", "list_panes"),
    Case("future", "canary", "v5", "list_source_registry"),
    Case("out-of-range", "canary", "v5", "daemon.info", ("pid", "-7")),
]

#: Cases that fail an assertion today: strict xfail, so a fix shows as XPASS (then drop the
#: entry). Empty: bench/fault_matrix.py finds no false PASS.
KNOWN_FALSE_PASSES: dict[str, str] = {}


def _param(case: Case) -> Any:
    why = KNOWN_FALSE_PASSES.get(case.id)
    marks = [pytest.mark.xfail(reason=f"issue 8: {why}", strict=True)] if why else []
    return pytest.param(case, id=case.id, marks=marks)


@dataclass
class Relayed:
    """A healthy fleet of one phase with a relay in front of each daemon."""

    fleet: SimFleet
    relays: dict[str, Relay]

    def config(self) -> str:
        evidence = evidence_uris(self.fleet.evidence, self.relays["v5"].uri)
        return config_text(
            self.relays["v4"].uri, self.relays["v5"].uri, evidence, connect_s=2.0, read_s=5.0
        )


@pytest.fixture
def relayed_fleet() -> Iterator[Any]:
    """``start(phase, faults={daemon: {method: fault}}, endpoint_faults={daemon: fault})``;
    everything it started is stopped at the end of the test."""
    started: list[Any] = []

    def start(
        phase: str,
        faults: Mapping[str, Mapping[str, FaultSpec]] | None = None,
        endpoint_faults: Mapping[str, str] | None = None,
    ) -> Relayed:
        fleet = start_fleet("healthy", phase=phase, stopped=())  # v4 runs, even at cutover
        started.append(fleet)
        relays = {}
        for name in ("v4", "v5"):
            relay = Relay(
                fleet.endpoints[name],
                (faults or {}).get(name),
                endpoint_fault=(endpoint_faults or {}).get(name),
            )
            started.append(relay)
            relays[name] = relay.start()
        return Relayed(fleet, relays)

    yield start
    for thing in reversed(started):
        thing.stop()


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_no_gate_reading_a_faulted_answer_passes(
    pytester: pytest.Pytester, relayed_fleet: Any, case: Case
) -> None:
    if case.method == "*":
        relayed = relayed_fleet(case.phase, endpoint_faults={case.daemon: case.fault})
    else:
        relayed = relayed_fleet(case.phase, faults={case.daemon: {case.method: case.spec}})
    relay = relayed.relays[case.daemon]
    make_gate_repo(pytester, config=relayed.config())

    result = pytester.runpytest_subprocess(f"--phase={case.phase}", timeout=RUN_TIMEOUT_S)

    bundle, run = only_run(pytester.path)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()[-3000:]
    assert sealed(bundle), bundle.name
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    relay.stop()
    if case.method != "*":  # the fault really changed what the engine was answered
        assert case.method in relay.applied(), relay.log()
    target: Target = (case.daemon, case.method)
    findings = judge(run, case.phase, {target: (case.id, [relay.uri])})
    assert findings, f"no gate of {case.phase} reads {target}"
    passed = [f.line() for f in findings if f.false_pass]
    assert not passed, "\n".join(passed)
    unnamed = [f.line() for f in findings if not f.named]
    assert not unnamed, "\n".join(unnamed)


def test_a_transparent_relay_is_shown_and_never_promotable(
    pytester: pytest.Pytester, relayed_fleet: Any
) -> None:
    """The answers are the daemon's own, so every gate passes; but the kernel says another
    process serves the socket than the one the daemon reports, and a signed run says so."""
    relayed = relayed_fleet("alpha")
    key = pytester.path / "keys" / "signing.key"
    generate_keypair(key)
    make_gate_repo(pytester, config=relayed.config())

    result = pytester.runpytest_subprocess(
        "--phase=alpha", f"--canarygate-key={key}", timeout=RUN_TIMEOUT_S
    )

    bundle, run = only_run(pytester.path)
    fleet, relays = relayed.fleet, relayed.relays
    result.stdout.fnmatch_lines(
        [
            f"*RELAYED  v4: pid {relays['v4'].pid} serves {relays['v4'].uri}, but the daemon "
            f"reports pid {fleet.pids['v4']}*",
            f"*RELAYED  v5: pid {relays['v5'].pid} serves {relays['v5'].uri}, but the daemon "
            f"reports pid {fleet.pids['v5']}*",
        ]
    )
    result.stdout.no_fnmatch_line("*PROMOTION MAY GO AHEAD*")
    assert {g["verdict"] for g in run["gates"]} == {"PASS"}, run["gates"]
    peers = {p["daemon"]: p for p in run["peers"]}
    for name in ("v4", "v5"):
        assert peers[name]["relayed"] is True
        assert peers[name]["peer_pids"] == [relays[name].pid]
        assert peers[name]["reported_pid"] == fleet.pids[name]
    assert run["promotable"] is False
    assert any("relay" in why for why in run["not_promotable_because"]), run
    assert sealed(bundle)
    # the signed statement records it too
    envelope = json.loads((bundle / "statement.dsse.json").read_text())
    predicate = json.loads(base64.b64decode(envelope["payload"]))["predicate"]
    assert predicate["promotable"] is False
    assert [p["daemon"] for p in predicate["peers"] if p["relayed"]] == ["v4", "v5"]


@pytest.mark.xfail(
    strict=True,
    reason="issue 8 item 9: the relay check compares SO_PEERCRED with the pid the answer "
    "reports, so a relay that rewrites daemon.info's pid (and its nonce) to its own is not "
    "seen: a signed run through two such relays says PROMOTION MAY GO AHEAD",
)
def test_a_relay_claiming_the_daemons_pid_is_still_shown(
    pytester: pytest.Pytester, relayed_fleet: Any
) -> None:
    relayed = relayed_fleet(
        "alpha",
        faults={"v4": {"daemon.info": "impersonate"}, "v5": {"daemon.info": "impersonate"}},
    )
    key = pytester.path / "keys" / "signing.key"
    generate_keypair(key)
    make_gate_repo(pytester, config=relayed.config())

    result = pytester.runpytest_subprocess(
        "--phase=alpha", f"--canarygate-key={key}", timeout=RUN_TIMEOUT_S
    )

    bundle, run = only_run(pytester.path)
    assert sealed(bundle)
    for relay in relayed.relays.values():
        relay.stop()
        assert "daemon.info" in relay.applied()
    result.stdout.no_fnmatch_line("*PROMOTION MAY GO AHEAD*")
    assert run["promotable"] is False
    assert [p["daemon"] for p in run["peers"] if p["relayed"]] == ["v4", "v5"]


def test_an_answer_sent_byte_by_byte_is_judged_as_sent_at_once(
    pytester: pytest.Pytester, relayed_fleet: Any
) -> None:
    """One write per byte, done well within the timeouts: the framing reads to EOF, so the
    gates judge exactly what the daemon said (all PASS on the healthy fleet)."""
    methods = ("daemon.info", "list_panes", "list_sessions", "state_changed", "summary_changed")
    relayed = relayed_fleet(
        "alpha",
        faults={"v5": dict.fromkeys(methods, "bytewise"), "v4": {"list_panes": "bytewise"}},
    )
    make_gate_repo(pytester, config=relayed.config())

    result = pytester.runpytest_subprocess("--phase=alpha", timeout=RUN_TIMEOUT_S)

    bundle, run = only_run(pytester.path)
    assert {g["verdict"] for g in run["gates"]} == {"PASS"}, run["gates"]
    assert result.ret == pytest.ExitCode.OK
    assert sealed(bundle)
    relays = relayed.relays
    for relay in relays.values():
        relay.stop()
    served = {(e["method"], e["fault"]) for e in relays["v5"].log()}
    assert {(m, "bytewise") for m in methods} <= served
