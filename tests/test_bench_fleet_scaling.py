"""bench/fleet_scaling.py's pure helpers: scenario text, parsing a run's output and bundle,
ratios and the judging of each target. Nothing here runs the benchmark or measures time."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

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
