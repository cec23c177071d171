"""A fleet of two hosts judged over ssh: two simulated fleets behind a real sshd on 127.0.0.1,
configured as two ``[[targets]]`` with ``ssh://`` endpoints."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_targets import evidence_uris
from gate_repo import make_gate_repo
from gate_repo import only_run
from sim_helpers import short_dir
from ssh_helpers import Sshd
from ssh_helpers import ssh_processes
from ssh_helpers import start_sshd

from pytest_canarygate.agtmux.sim import SimFleet
from pytest_canarygate.agtmux.sim import start_fleet
from pytest_canarygate.keys import generate_keypair
from pytest_canarygate.keys import load_public_key
from pytest_canarygate.verify import Status
from pytest_canarygate.verify import verify_bundle

RUN_TIMEOUT_S = 180.0
TARGETS = ("host-a", "host-b")


@pytest.fixture
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    yield from start_sshd(tmp_path_factory)


@pytest.fixture
def hosts() -> Iterator[dict[str, SimFleet]]:
    """Two simulated hosts, each its own v4 and v5 in its own folder."""
    base = short_dir()
    fleets: dict[str, SimFleet] = {}
    try:
        for name in TARGETS:
            fleets[name] = start_fleet("healthy", base / name, phase="alpha")
        yield fleets
    finally:
        for fleet in fleets.values():
            fleet.stop()
        shutil.rmtree(base, ignore_errors=True)


def fleet_config(
    sshd: Sshd,
    hosts: dict[str, SimFleet],
    *,
    paths: dict[Any, Path] | None = None,
    read_s: float = 10,
) -> str:
    """Two targets reached over ssh; the fleet-wide evidence is host-a's (read locally)."""
    text = '[migration]\nid = "fleet-ssh"\n'
    for name, fleet in hosts.items():
        text += f'[[targets]]\nname = "{name}"\n'
        for daemon in ("v4", "v5"):
            path = (paths or {}).get((name, daemon), fleet.socket_path(daemon))
            text += f'[targets.daemons.{daemon}]\nendpoint = "{sshd.uri(path)}"\n'
    text += f'[ssh]\nconfig_file = "{sshd.client_config}"\n'
    text += f"[timeouts]\nconnect_s = 15\nread_s = {read_s}\n"
    text += "[observation]\nversion_interval_s = 0.05\n"
    evidence = evidence_uris(hosts["host-a"].evidence, hosts["host-a"].endpoints["v5"])
    text += "[evidence]\n" + "".join(f'{kind} = "{uri}"\n' for kind, uri in evidence.items())
    return text


def _statement(bundle: Path) -> dict[str, Any]:
    envelope = json.loads((bundle / "statement.dsse.json").read_text())
    predicate: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))["predicate"]
    return predicate


def _by_target(run: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for gate in run["gates"]:
        found.setdefault(gate.get("target"), []).append(gate)
    return found


@pytest.mark.parametrize("dist", [[], ["-n", "2", "--dist", "loadgroup"]], ids=["serial", "xdist"])
def test_two_hosts_over_ssh_are_judged_each_and_as_a_fleet(
    pytester: pytest.Pytester, sshd: Sshd, hosts: dict[str, SimFleet], dist: list[str]
) -> None:
    key = pytester.path / "k" / "signing.key"
    keyid = generate_keypair(key)
    make_gate_repo(pytester, config=fleet_config(sshd, hosts))

    result = pytester.runpytest_subprocess(
        "--phase=alpha", f"--canarygate-key={key}", *dist, timeout=RUN_TIMEOUT_S
    )

    bundle, run = only_run(pytester.path)
    out = result.stdout.str()
    gates = _by_target(run)
    assert set(gates) == set(TARGETS), out[-3000:]
    # the same gates on both hosts, each instance named after its target
    assert sorted(g["gate"] for g in gates["host-a"]) == sorted(g["gate"] for g in gates["host-b"])
    for name in TARGETS:
        assert all(f"[{name}" in g["nodeid"] or f"-{name}" in g["nodeid"] for g in gates[name])
        assert {g["verdict"] for g in gates[name]} == {"PASS"}, [
            (g["nodeid"], g["message"]) for g in gates[name] if g["verdict"] != "PASS"
        ]
    # each host's daemons were read through our own ssh child, not called relayed
    peers = {p["daemon"]: p for p in run["peers"]}
    assert set(peers) == {f"{t}/{d}" for t in TARGETS for d in ("v4", "v5")}
    for peer in peers.values():
        assert peer["relayed"] is False, peer
        assert peer["peer_pids"] == [peer["forwarded_by"]["ssh_pid"]]
        assert peer["endpoint"].startswith("ssh://")
    for name in TARGETS:  # one ssh process per host, forwarding both of its daemons
        pids = {peers[f"{name}/{d}"]["forwarded_by"]["ssh_pid"] for d in ("v4", "v5")}
        assert len(pids) == 1, peers
    # the simulator's marker was found on the remote side: never a live sign-off
    assert run["target"]["kind"] == "simulated"
    fleet = run["fleet"]
    assert {t: v["verdict"] for t, v in fleet["targets"].items()} == dict.fromkeys(TARGETS, "pass")
    assert fleet["verdict"] == run["verdict"] == "pass"
    assert fleet["promotable"] is False  # simulated
    result.stdout.fnmatch_lines(["*targets: 2  (2 pass, 0 not)*", "*target host-a*PASS*"])
    predicate = _statement(bundle)
    assert predicate["fleet"] == fleet
    assert {g.get("target") for g in predicate["gates"]} == set(TARGETS)
    verdict = verify_bundle(bundle, {keyid: load_public_key(key.with_name("signing.key.pub.json"))})
    assert verdict.status is Status.VALID, verdict.problems
    assert ssh_processes(str(sshd.client_config)) == []


def test_an_unreachable_host_is_unobservable_while_the_other_is_judged(
    pytester: pytest.Pytester, sshd: Sshd, hosts: dict[str, SimFleet]
) -> None:
    hosts["host-b"].stop()  # its sockets are gone
    make_gate_repo(pytester, config=fleet_config(sshd, hosts))

    result = pytester.runpytest_subprocess(
        "--phase=alpha", "-n", "2", "--dist", "loadgroup", timeout=RUN_TIMEOUT_S
    )

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    bundle, run = only_run(pytester.path)
    gates = _by_target(run)
    assert {g["verdict"] for g in gates["host-a"]} == {"PASS"}, [
        (g["nodeid"], g["message"]) for g in gates["host-a"] if g["verdict"] != "PASS"
    ]
    daemon_gates = [g for g in gates["host-b"] if "host-b" in g["message"]]
    assert daemon_gates, gates["host-b"]
    for gate in gates["host-b"]:
        if "target host-b" in gate["message"]:
            assert gate["verdict"] == "UNOBSERVABLE", gate
            assert "ssh://" in gate["message"], gate
    assert any(
        g["verdict"] == "UNOBSERVABLE"
        and hosts["host-b"].socket_path("v5").as_posix() in g["message"]
        for g in gates["host-b"]
    )
    fleet = run["fleet"]
    assert fleet["targets"]["host-a"]["verdict"] == "pass"
    assert fleet["targets"]["host-b"]["verdict"] == "fail"
    assert fleet["verdict"] == "fail"
    assert fleet["promotable"] is False
    result.stdout.fnmatch_lines(["*targets: 2  (1 pass, 1 not)*", "*target host-b*FAIL*"])
    assert _statement(bundle)["fleet"] == fleet
    assert ssh_processes(str(sshd.client_config)) == []


def test_a_wrong_remote_path_makes_only_that_daemon_unobservable(
    pytester: pytest.Pytester, sshd: Sshd, hosts: dict[str, SimFleet]
) -> None:
    wrong = hosts["host-b"].socket_dir / "v5" / "nothing.sock"
    make_gate_repo(pytester, config=fleet_config(sshd, hosts, paths={("host-b", "v5"): wrong}))

    result = pytester.runpytest_subprocess("--phase=alpha", timeout=RUN_TIMEOUT_S)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    _, run = only_run(pytester.path)
    gates = _by_target(run)
    assert {g["verdict"] for g in gates["host-a"]} == {"PASS"}
    named = [g for g in gates["host-b"] if str(wrong) in g["message"]]
    assert named, gates["host-b"]
    assert {g["verdict"] for g in named} == {"UNOBSERVABLE"}, gates["host-b"]
    assert all("target host-b" in g["message"] for g in named)
    assert run["fleet"]["targets"]["host-b"]["verdict"] == "fail"


def _signal_state(pid: int) -> str:
    """The signal masks of ``pid`` as the kernel shows them (ignored, blocked, caught)."""
    with open(f"/proc/{pid}/status") as status:
        return " ".join(
            line.strip() for line in status if line.startswith(("SigIgn", "SigBlk", "SigCgt"))
        )


def test_ctrl_c_during_the_observation_leaves_no_ssh_process(
    pytester: pytest.Pytester, sshd: Sshd, hosts: dict[str, SimFleet]
) -> None:
    """A daemon that takes the request and never answers holds the observation; Ctrl-C then
    stops the run, and every ssh child with it."""
    folder = short_dir()
    folder.chmod(0o700)
    hung = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hung.bind(str(folder / "d.sock"))
    hung.listen(8)
    hung.settimeout(60)
    config = fleet_config(sshd, hosts, paths={("host-b", "v5"): folder / "d.sock"}, read_s=120)
    make_gate_repo(pytester, config=config)
    # faulthandler: should the run not stop, SIGABRT makes it show where each thread is
    python = [sys.executable, "-X", "faulthandler"]
    run = subprocess.Popen(
        [*python, "-m", "pytest", "--phase=alpha", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    conn: socket.socket | None = None
    try:
        conn, _ = hung.accept()  # a request came through the forward and waits
        assert ssh_processes(str(sshd.client_config)), "no ssh forward runs"
        signals = _signal_state(run.pid)
        run.send_signal(signal.SIGINT)
        try:
            out, _ = run.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            run.send_signal(signal.SIGABRT)
            out, _ = run.communicate(timeout=30)
            pytest.fail(f"Ctrl-C did not stop the run ({signals}):\n{out.decode()[-6000:]}")
    finally:
        # whatever failed above, leave nothing open for a later test to trip over
        if run.poll() is None:
            run.kill()
            run.wait()
        if run.stdout is not None:
            run.stdout.close()
        if conn is not None:
            conn.close()
        hung.close()
        shutil.rmtree(folder, ignore_errors=True)
    assert run.returncode == pytest.ExitCode.INTERRUPTED, out.decode()[-2000:]
    assert ssh_processes(str(sshd.client_config)) == []
    assert not list(pytester.path.glob("reports/*/*/*-running")), "a run left looking in progress"
