"""bench/fleet_scaling.py's helpers: scenario and config text, starting and stopping the fleet,
the warm-up, parsing a run's output and bundle, ratios and the judging of each target. Some tests
start a real simulated fleet or a tiny pytest run; none runs the benchmark or judges a time."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from types import SimpleNamespace
from typing import Any

import pytest
from rpc_servers import short_tempdir

from pytest_canarygate.agtmux.pack import PACK
from pytest_canarygate.config import load_config
from pytest_canarygate.keys import load_public_key
from pytest_canarygate.keys import load_signer

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

BENCH = Path(__file__).resolve().parents[1] / "bench" / "fleet_scaling.py"


@pytest.fixture(scope="module")
def fs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fleet_scaling", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


def gate_run(fs: ModuleType, **fields: Any) -> Any:
    values: dict[str, Any] = {
        "name": "alpha 1000x10 serial",
        "kind": "gates",
        "phase": "alpha",
        "sessions": 1000,
        "panes": 10_000,
        "completed": True,
        "wall_s": 4.0,
        "gates": 3022,
        "daemon_calls": 20,
        "provider_reads": 7,
        "fleet_command": "canarygate sim --scenario fleet.toml --phase alpha",
    }
    values.update(fields)
    return fs.Run(**values)


def floor_run(fs: ModuleType, **fields: Any) -> Any:
    values: dict[str, Any] = {
        "name": "floor alpha",
        "kind": "floor",
        "phase": "alpha",
        "completed": True,
        "wall_s": 3.2,
        "gates": 3022,
    }
    values.update(fields)
    return fs.Run(**values)


def test_the_generated_scenario_is_toml_naming_the_fleet(fs: ModuleType) -> None:
    document = tomllib.loads(fs.generated_scenario(1000, 10))
    assert document["extends"] == "healthy"
    assert document["fleet"]["generate"] == {"sessions": 1000, "panes_per_session": 10}


#: What ``canarygate sim`` prints, as its ``run`` writes it (the socket folder shortened).
SIM_OUTPUT = """\
v4  unix:///tmp/cg-sim-x/v4/agtmuxd.sock  pid 101
v5  unix:///tmp/cg-sim-x/v5/agtmuxd.sock  pid 102
operations over HTTP  http://127.0.0.1:40493/ops  pid 103
[evidence]
snapshots = "unix:///tmp/cg-sim-x/v5/agtmuxd.sock"
alerts = "http://127.0.0.1:40493/ops"
selector = "file:///tmp/cg-sim-x/evidence/runtime.toml"
simulated fleet ready (scenario fleet.toml, phase alpha); Ctrl-C to stop
"""


def test_the_fleet_output_gives_endpoints_and_evidence_once_ready(fs: ModuleType) -> None:
    info = fs.parse_fleet_output(SIM_OUTPUT)
    assert info.endpoints == {
        "v4": "unix:///tmp/cg-sim-x/v4/agtmuxd.sock",
        "v5": "unix:///tmp/cg-sim-x/v5/agtmuxd.sock",
    }
    assert info.evidence == {
        "snapshots": "unix:///tmp/cg-sim-x/v5/agtmuxd.sock",
        "alerts": "http://127.0.0.1:40493/ops",
        "selector": "file:///tmp/cg-sim-x/evidence/runtime.toml",
    }
    not_ready = SIM_OUTPUT.rsplit("simulated fleet ready", 1)[0]
    assert fs.parse_fleet_output(not_ready) is None
    assert fs.parse_fleet_output("") is None


@pytest.mark.parametrize(
    "output",
    [
        SIM_OUTPUT.replace('alerts = "http://127.0.0.1:40493/ops"', "alerts = http://x"),
        SIM_OUTPUT.replace('alerts = "http://127.0.0.1:40493/ops"', 'alerts = ""'),
        SIM_OUTPUT.replace('alerts = "http://127.0.0.1:40493/ops"', "alerts = 3"),
        "[evidence]\nsimulated fleet ready (scenario x); Ctrl-C to stop\n",
    ],
    ids=["unquoted", "empty", "not-a-string", "no-daemon"],
)
def test_fleet_output_the_bench_cannot_read_is_refused(fs: ModuleType, output: str) -> None:
    with pytest.raises(ValueError):
        fs.parse_fleet_output(output)


def test_the_config_names_the_fleet_and_the_project_accepts_it(
    fs: ModuleType, tmp_path: Path
) -> None:
    path = tmp_path / "canarygate.toml"
    path.write_text(fs.config_text("fleet-scaling-bench", fs.parse_fleet_output(SIM_OUTPUT)))
    config = load_config(path, PACK)
    assert config.migration_id == "fleet-scaling-bench"
    assert {name: d.endpoint for name, d in config.daemons.items()} == {
        "v4": "unix:///tmp/cg-sim-x/v4/agtmuxd.sock",
        "v5": "unix:///tmp/cg-sim-x/v5/agtmuxd.sock",
    }
    assert dict(config.evidence) == {
        "snapshots": "unix:///tmp/cg-sim-x/v5/agtmuxd.sock",
        "alerts": "http://127.0.0.1:40493/ops",
        "selector": "file:///tmp/cg-sim-x/evidence/runtime.toml",
    }
    assert not config.targets


def test_the_signing_key_is_private_and_its_public_half_matches(
    fs: ModuleType, tmp_path: Path
) -> None:
    private, public = fs.make_signing_key(tmp_path)
    assert private.parent == tmp_path / "keys"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert load_signer(private).public_key.keyid == load_public_key(public).keyid


def test_children_write_byte_code_and_run_this_checkout(
    fs: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = fs.child_env()
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPATH"].split(os.pathsep) == [str(fs.ROOT), "/elsewhere"]


def test_a_real_fleet_is_read_and_stopped_when_the_block_ends(
    fs: ModuleType, tmp_path: Path
) -> None:
    with fs.running_fleet(fs.fleet_argv("healthy", "alpha"), tmp_path, 120) as fleet:
        assert set(fleet.info.endpoints) == {"v4", "v5"}
        sockets = [Path(uri.removeprefix("unix://")) for uri in fleet.info.endpoints.values()]
        assert all(stat.S_ISSOCK(path.stat().st_mode) for path in sockets)
        assert fleet.info.evidence  # the simulated v5 serves the operations evidence
        path = tmp_path / "canarygate.toml"
        path.write_text(fs.config_text("fleet-scaling-bench", fleet.info))
        assert set(load_config(path, PACK).evidence) == set(fleet.info.evidence)
        assert fleet.process.poll() is None
    assert fleet.process.returncode is not None
    assert not any(path.exists() for path in sockets)  # canarygate sim stopped its daemons
    assert "simulated fleet stopped" in fleet.output.read_text()


def test_a_real_fleet_is_stopped_when_the_block_fails(fs: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="the run failed"):
        with fs.running_fleet(fs.fleet_argv("healthy", "alpha"), tmp_path, 120) as fleet:
            raise RuntimeError("the run failed")
    assert fleet.process.returncode is not None
    sockets = [Path(uri.removeprefix("unix://")) for uri in fleet.info.endpoints.values()]
    assert not any(path.exists() for path in sockets)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _pid_of(pid_file: Path) -> int:
    return int(pid_file.read_text())


def test_a_fleet_that_exits_before_it_is_ready_is_an_error_with_its_output(
    fs: ModuleType, tmp_path: Path
) -> None:
    argv = [sys.executable, "-c", "print('v4 daemon failed \\x1b[2J'); raise SystemExit(3)"]
    with pytest.raises(fs.FleetError, match="exited 3") as caught:
        fs.start_fleet(argv, tmp_path, 120)
    assert "v4 daemon failed \\x1b[2J" in caught.value.tail  # escaped


def _never_ready(pid_file: Path) -> list[str]:
    script = (
        "import os, pathlib, time\n"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\n"
        "print('starting', flush=True)\n"
        "time.sleep(600)\n"
    )
    return [sys.executable, "-c", script]


def test_a_fleet_that_is_never_ready_is_stopped(fs: ModuleType, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with pytest.raises(fs.FleetError, match="not ready") as caught:
        fs.start_fleet(_never_ready(pid_file), tmp_path, 1.0)
    assert "starting" in caught.value.tail
    assert _gone(_pid_of(pid_file))


def test_an_interrupt_while_the_fleet_starts_stops_it(
    fs: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pid"

    def sleep(seconds: float) -> None:
        if pid_file.exists() and "starting" in (tmp_path / ".fleet-output.txt").read_text():
            monkeypatch.setattr(fs, "time", time)  # stop() sleeps for real
            raise KeyboardInterrupt
        time.sleep(seconds)

    fake = SimpleNamespace(perf_counter=time.perf_counter, monotonic=time.monotonic, sleep=sleep)
    monkeypatch.setattr(fs, "time", fake)
    with pytest.raises(KeyboardInterrupt):
        fs.start_fleet(_never_ready(pid_file), tmp_path, 120)
    assert _gone(_pid_of(pid_file))


def test_the_warm_up_reports_a_run_that_fails(fs: ModuleType, tmp_path: Path) -> None:
    run = fs.Run(name="r", kind="floor", phase="alpha")
    assert fs.warm_up(run, [sys.executable, "-c", "pass"], tmp_path, 120, ok=(0,))
    assert run.warmup_s is not None
    assert not run.problem
    failing = [sys.executable, "-c", "print('boom'); raise SystemExit(4)"]
    assert not fs.warm_up(run, failing, tmp_path, 120, ok=(0, 1))
    assert run.problem == "the warm-up run exited 4"
    assert "boom" in run.tail


def test_the_floor_is_measured_after_a_warm_up_that_leaves_byte_code(
    fs: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    run = fs.measure_floor("alpha", 3, tmp_path / "floor", 300)
    assert run.completed, run.tail  # 3 results: the warm-up's were removed
    assert run.warmup_s is not None
    assert any((tmp_path / "floor" / "__pycache__").glob("test_floor*.pyc"))


def test_the_gate_instances_expected_follow_the_catalog(fs: ModuleType) -> None:
    assert fs.expected_gates("alpha", 1000) == 3022  # issue 12's figure
    assert fs.expected_gates("alpha", 100) == 322
    assert fs.expected_gates("canary", 1000) == fs.expected_gates("canary", 3)


def test_the_floor_module_holds_one_test_parametrized_n_times(fs: ModuleType) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(fs.floor_module(7), "test_floor.py", "exec"), namespace)
    [mark] = namespace["test_trivial"].pytestmark
    assert mark.name == "parametrize"
    assert list(mark.args[1]) == list(range(7))


@pytest.mark.parametrize(
    ("output", "seconds"),
    [
        ("canarygate: sealed 4,012 files (12.3 MB) in 1.2 s\n", 1.2),
        ("x\ncanarygate: sealed 1 file in 3 s\n...\ncanarygate: sealed 2 files in 0.5 s\n", 0.5),
        ("canarygate: judged 3,022 gate instances in 2.1 s\n", None),
        ("", None),
    ],
)
def test_the_seal_time_comes_from_the_runs_sealed_line(
    fs: ModuleType, output: str, seconds: float | None
) -> None:
    assert fs.sealed_seconds(output) == seconds


def test_a_runs_tail_is_escaped(fs: ModuleType) -> None:
    text = fs.tail("ok\nline \x1b[2J\u202e end")
    assert text == "ok\nline \\x1b[2J\\u202e end"


def test_the_observation_is_read_plain_or_gzipped(fs: ModuleType, tmp_path: Path) -> None:
    document = {"daemons": {}, "started_at": "2026-01-01T00:00:00Z"}
    plain = tmp_path / "plain"
    (plain / "observation").mkdir(parents=True)
    (plain / "observation" / "observation.json").write_text(json.dumps(document))
    packed = tmp_path / "packed"
    (packed / "observation").mkdir(parents=True)
    with gzip.open(packed / "observation" / "observation.json.gz", "wt") as stream:
        stream.write(json.dumps(document))
    assert fs.load_observation(plain) == document
    assert fs.load_observation(packed) == document
    assert fs.load_observation(tmp_path) is None


def test_calls_reads_and_the_slowest_daemon_come_from_the_observation(
    fs: ModuleType, tmp_path: Path
) -> None:
    observation = {
        "started_at": "2026-01-01T00:00:00.000Z",
        "finished_at": "2026-01-01T00:00:01.500Z",
        "daemons": {
            "v4": {"calls": [{"elapsed_ms": 100}, {"elapsed_ms": 50}]},
            "v5": {"calls": [{"elapsed_ms": 300}]},
        },
        "evidence": {"alert_entries": {}, "cursor_stats": {}},
    }
    (tmp_path / "observation").mkdir()
    (tmp_path / "observation" / "observation.json").write_text(json.dumps(observation))
    run = fs.Run(name="r", kind="gates", phase="alpha")
    fs.read_observation(run, tmp_path)
    assert (run.daemon_calls, run.provider_reads) == (3, 2)
    assert run.observe_s == pytest.approx(1.5)
    assert run.slowest_daemon == "v5"
    assert run.slowest_daemon_s == pytest.approx(0.3)


def test_a_bundle_without_observation_is_a_problem_not_zero_calls(
    fs: ModuleType, tmp_path: Path
) -> None:
    run = fs.Run(name="r", kind="gates", phase="alpha")
    fs.read_observation(run, tmp_path)
    assert run.problem
    assert run.daemon_calls is None


def test_the_ratio_needs_both_runs_complete(fs: ModuleType) -> None:
    run, floor = gate_run(fs, wall_s=4.0), floor_run(fs, wall_s=3.2)
    assert fs.ratio(run, floor) == pytest.approx(1.25)
    assert fs.ratio(gate_run(fs, completed=False), floor) is None
    assert fs.ratio(run, floor_run(fs, completed=False)) is None
    assert fs.ratio(run, None) is None


@pytest.mark.parametrize(("wall_s", "status"), [(4.0, "met"), (4.01, "MISSED")])
def test_the_floor_ratio_target(fs: ModuleType, wall_s: float, status: str) -> None:
    target = fs.floor_ratio_target("alpha", gate_run(fs, wall_s=wall_s), floor_run(fs))
    assert target.status == status
    assert "<= 1.25" in target.target


def test_a_run_that_did_not_complete_is_not_measured_never_met(fs: ModuleType) -> None:
    failed = gate_run(fs, completed=False, wall_s=0.1)
    assert fs.floor_ratio_target("alpha", failed, floor_run(fs)).status == "NOT MEASURED"
    parallel = fs.parallel_target("alpha", failed, gate_run(fs), floor_run(fs), 2)
    assert parallel.status == "NOT MEASURED"


@pytest.mark.parametrize(("parallel_s", "status"), [(3.0, "met"), (4.0, "met"), (4.5, "MISSED")])
def test_the_parallel_target(fs: ModuleType, parallel_s: float, status: str) -> None:
    target = fs.parallel_target(
        "alpha", gate_run(fs, wall_s=4.0), gate_run(fs, wall_s=parallel_s), floor_run(fs), 2
    )
    assert target.status == status


def test_calls_and_reads_must_match_on_a_smaller_fleet(fs: ModuleType) -> None:
    big = gate_run(fs)
    assert fs.flat_counts_target("alpha", big, gate_run(fs, gates=322)).status == "met"
    grown = gate_run(fs, gates=322, daemon_calls=12)
    assert fs.flat_counts_target("alpha", big, grown).status == "MISSED"
    more_reads = gate_run(fs, gates=322, provider_reads=6)
    assert fs.flat_counts_target("alpha", big, more_reads).status == "MISSED"


def test_calls_compared_at_the_same_gate_count_show_nothing(fs: ModuleType) -> None:
    target = fs.flat_counts_target("canary", gate_run(fs, gates=30), gate_run(fs, gates=30))
    assert target.status == "NOT MEASURED"
    assert "same gate count" in target.figure


def test_the_observe_target_needs_a_fleet_of_its_size(fs: ModuleType) -> None:
    small = gate_run(fs, panes=400, slowest_daemon="v5", slowest_daemon_s=0.01)
    assert fs.observe_target([small]).status == "NOT MEASURED"
    slow = gate_run(fs, slowest_daemon="v5", slowest_daemon_s=0.51)
    assert fs.observe_target([slow]).status == "MISSED"
    quick = gate_run(fs, slowest_daemon="v4", slowest_daemon_s=0.2)
    assert fs.observe_target([quick]).status == "met"
    assert fs.observe_target([quick, slow]).status == "MISSED"  # the worst run counts


def test_the_seal_and_verify_target_adds_both(fs: ModuleType) -> None:
    run = gate_run(fs, seal_s=0.5, verify_s=0.5)
    assert fs.seal_verify_target([run]).status == "met"
    assert fs.seal_verify_target([gate_run(fs, seal_s=0.5, verify_s=0.51)]).status == "MISSED"
    assert fs.seal_verify_target([gate_run(fs, seal_s=None, verify_s=0.1)]).status == (
        "NOT MEASURED"
    )
    assert fs.seal_verify_target([gate_run(fs, gates=40, seal_s=0, verify_s=0)]).status == (
        "NOT MEASURED"
    )


def test_the_memory_target_takes_the_heaviest_run(fs: ModuleType) -> None:
    light = gate_run(fs, peak_kib=100_000)
    heavy = gate_run(fs, peak_kib=300_000)  # 307.2 MB
    assert fs.memory_target([light]).status == "met"
    assert fs.memory_target([light, heavy]).status == "MISSED"
    assert fs.memory_target([]).status == "NOT MEASURED"
    assert fs.memory_target([light, gate_run(fs, peak_kib=None)]).status == "NOT MEASURED"


def test_the_bundle_target(fs: ModuleType) -> None:
    assert fs.bundle_target([gate_run(fs, bundle_bytes=15_000_000, bundle_files=9)]).met
    large = gate_run(fs, bundle_bytes=15_000_001, bundle_files=9)
    assert fs.bundle_target([large]).status == "MISSED"
    few_gates = gate_run(fs, gates=40, bundle_bytes=1, bundle_files=1)
    assert fs.bundle_target([few_gates]).status == "NOT MEASURED"


def test_the_report_shows_a_run_that_did_not_complete_and_its_escaped_tail(
    fs: ModuleType,
) -> None:
    results = fs.Results(workers=2)
    results.serial["alpha"] = gate_run(fs)
    results.floors["alpha"] = floor_run(fs)
    results.parallel["alpha"] = gate_run(
        fs, name="alpha 1000x10 -n 2", completed=False, problem="pytest exited 4", tail="boom"
    )
    text = fs.report(results, fs.targets(results))
    assert "DID NOT COMPLETE" in text
    assert "each measured run (floor and gates) follows one unmeasured warm-up run" in text
    assert (
        "outside its measured time, with `canarygate sim --scenario fleet.toml --phase alpha`"
        in (text)
    )
    assert "alpha 1000x10 -n 2 did not complete: pytest exited 4\nboom" in text
    assert "target alpha: (c) -n 2 no slower than (b): " in text
    lines = [line for line in text.splitlines() if line.startswith("target ")]
    assert all(line.endswith((": met", ": MISSED", ": NOT MEASURED")) for line in lines)
    assert len(lines) == 7


@pytest.mark.parametrize(
    ("text", "kib"),
    [
        ("51234\n", 51234),
        ("Command exited with non-zero status 1\n88000\n", 88000),
        ("Command terminated by signal 9\n", None),
        ("", None),
    ],
)
def test_the_peak_is_the_last_line_gnu_time_wrote(
    fs: ModuleType, text: str, kib: int | None
) -> None:
    assert fs.peak_from_time(text) == kib


def test_the_bundle_is_sized_whole_and_by_top_level_entry(fs: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "allure-results").mkdir()
    (tmp_path / "allure-results" / "a.json").write_bytes(b"x" * 300)
    (tmp_path / "allure-results" / "b.json").write_bytes(b"x" * 200)
    (tmp_path / "run.json").write_bytes(b"x" * 100)
    (tmp_path / "empty").mkdir()
    assert fs.bundle_size(tmp_path) == (600, 3)
    assert list(fs.bundle_parts(tmp_path).items()) == [("allure-results", 500), ("run.json", 100)]


def test_the_plain_read_asks_each_daemon_for_what_the_phase_needs_once(fs: ModuleType) -> None:
    endpoints = {"v4": "unix:///run/a/v4.sock", "v5": "unix:///run/a/v5.sock"}
    calls = fs.answers_plan("canary", endpoints)
    assert set(calls) == {"/run/a/v4.sock", "/run/a/v5.sock"}
    v5 = dict((method, params) for method, params in calls["/run/a/v5.sock"])
    assert v5["state_changed"] == {"since_version": 0}  # the pack's params, as a run sends
    assert v5["list_panes"] is None
    assert "daemon.info" in v5  # a gate's need, not the bracket
    assert all(len(methods) == len(set(m for m, _ in methods)) for methods in calls.values())
    assert "evidence" not in calls


@pytest.mark.parametrize(
    ("endpoints", "error"),
    [
        ({"v4": "ssh://host/v4.sock", "v5": "unix:///v5.sock"}, ValueError),
        ({"v5": "unix:///v5.sock"}, KeyError),
    ],
)
def test_the_plain_read_needs_every_daemon_on_a_local_socket(
    fs: ModuleType, endpoints: dict[str, str], error: type[Exception]
) -> None:
    with pytest.raises(error):
        fs.answers_plan("canary", endpoints)


def test_the_floor_after_a_plain_read_reads_a_real_fleet(fs: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "fleet").mkdir()
    with fs.running_fleet(fs.fleet_argv("healthy", "canary"), tmp_path / "fleet", 120) as fleet:
        calls = fs.answers_plan("canary", fleet.info.endpoints)
        # a daemon that is down is not read further, as a run reads nothing from it
        down = {**calls, str(tmp_path / "down.sock"): [["list_panes", None]]}
        conftest = fs.reading_conftest(down)
        run = fs.measure_floor("canary", 3, tmp_path / "floor", 300, conftest=conftest, name="fa")
    assert run.completed, run.tail
    assert (run.name, run.kind) == ("fa", "reference")
    # the same conftest, the fleet gone: the run reads nothing, and says so
    gone = fs.measure_floor("canary", 3, tmp_path / "gone", 300, conftest=conftest)
    assert not gone.completed
    assert gone.problem == "the warm-up run exited 4"
    assert "no daemon could be reached" in gone.tail


def test_the_floor_after_a_plain_read_refuses_an_error_reply(
    fs: ModuleType, tmp_path: Path
) -> None:
    # a daemon that answers every request with a JSON-RPC error: no result to decode
    folder = short_tempdir()
    sock_path = folder / "d.sock"
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen()\n"
            "print('ready', flush=True)\n"
            "while True:\n"
            "    c, _ = s.accept(); c.recv(65536)\n"
            '    c.sendall(b\'{"jsonrpc":"2.0","id":1,"error":{"code":-32601,'
            '"message":"method not found"}}\\n\'); c.close()\n',
            str(sock_path),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == b"ready\n"
        conftest = fs.reading_conftest({str(sock_path): [["list_panes", None]]})
        run = fs.measure_floor("canary", 2, tmp_path / "floor", 300, conftest=conftest)
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()
        shutil.rmtree(folder, ignore_errors=True)
    assert not run.completed
    assert "read 0 answers of 1" in run.tail
    assert "list_panes: {'code': -32601, 'message': 'method not found'}" in run.tail


def test_a_reference_that_did_not_complete_leaves_the_exit_status_alone(fs: ModuleType) -> None:
    results = fs.Results(workers=2)
    results.serial["alpha"] = gate_run(fs)
    results.floors["alpha"] = floor_run(fs)
    results.floors_reading["alpha"] = floor_run(fs, kind="reference", completed=False)
    assert fs.exit_status(results) == 0
    results.floors["alpha"] = floor_run(fs, completed=False)
    assert fs.exit_status(results) == 1


def test_the_floor_under_xdist_is_a_reference(fs: ModuleType, tmp_path: Path) -> None:
    run = fs.measure_floor("alpha", 4, tmp_path / "floor", 300, workers=2)
    assert run.completed, run.tail
    assert (run.name, run.kind, run.workers) == ("floor alpha -n 2", "reference", 2)


def test_the_references_put_the_targets_in_proportion_never_judge_them(fs: ModuleType) -> None:
    serial, floor = gate_run(fs, wall_s=4.8), floor_run(fs, wall_s=3.2)
    reading = floor_run(fs, name="floor+answers alpha", kind="reference", wall_s=4.0)
    target = fs.floor_ratio_target("alpha", serial, floor, reading)
    assert target.status == "MISSED"
    assert "took 4.00 s, 1.25 x the floor; (b) is 1.20 x it" in target.context
    assert fs.floor_ratio_target("alpha", serial, floor).context == ""
    unfinished = floor_run(fs, kind="reference", completed=False)
    assert fs.floor_ratio_target("alpha", serial, floor, unfinished).context == ""

    xdist_floor = floor_run(fs, name="floor alpha -n 2", kind="reference", wall_s=6.4)
    parallel = fs.parallel_target("alpha", serial, gate_run(fs, wall_s=5.76), floor, 2, xdist_floor)
    assert parallel.status == "MISSED"
    assert "under -n 2 took 6.40 s, 2.00 x its serial run; (c) is 0.90 x it" in parallel.context

    lines = fs.target_lines([target, parallel])
    assert lines[1] == f"  {target.context}"
    assert lines[3] == f"  {parallel.context}"


def test_the_report_lists_the_references_after_the_floor(fs: ModuleType) -> None:
    results = fs.Results(workers=2)
    results.serial["alpha"] = gate_run(fs)
    results.floors["alpha"] = floor_run(fs)
    results.floors_parallel["alpha"] = floor_run(
        fs, name="floor alpha -n 2", kind="reference", workers=2, wall_s=6.4
    )
    results.floors_reading["alpha"] = floor_run(
        fs, name="floor+answers alpha", kind="reference", wall_s=3.6
    )
    names = [run.name for run in results.all_runs()]
    assert names == [
        "floor alpha",
        "floor alpha -n 2",
        "floor+answers alpha",
        "alpha 1000x10 serial",
    ]
    rows = fs.table(results).splitlines()
    cells = rows[2].split()
    assert cells[:4] == ["floor", "alpha", "-n", "2"]
    assert (cells[6], cells[8]) == ("6.40", "2.00")  # wall s, and /floor
    assert rows[1].split()[6] == "-"  # the floor over itself: not shown
