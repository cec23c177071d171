"""Benchmark: a whole `pytest --phase=alpha` run against simulated fleets of growing size.

Prints, per fleet size: gate instances judged, daemon calls and provider (evidence) reads made,
wall time of the run, time of the observation itself, and the peak memory of the pytest process.
Calls and reads must stay flat however many sessions and panes there are (exit 1 otherwise);
time and memory are reported, not asserted.

    .venv/bin/python bench/observation_scaling.py [--sessions 3 30 120] [--panes 4] [-n 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from pytest_canarygate.observation import Observation

ROOT = Path(__file__).resolve().parents[1]


def scenario(sessions: int, panes_per_session: int) -> str:
    """The healthy scenario with ``sessions`` tmux sessions, half of each one's panes managed."""
    lines = ['description = "benchmark fleet"', 'extends = "healthy"', ""]
    pane = 0
    for s in range(sessions):
        for p in range(panes_per_session):
            lines += [
                "[[fleet.panes]]",
                f'pane_id = "%{pane}"',
                f'session_id = "${s}"',
                f'session_name = "session-{s:04d}"',
                f'window_id = "@{s}"',
                'window_name = "work"',
                f'current_cmd = "{"claude" if p % 2 else "bash"}"',
                'current_path = "/home/operator/work"',
                'title = "bench"',
            ]
            if p % 2:
                lines += ['provider = "claude"', 'activity_state = "Idle"']
            lines.append("")
            pane += 1
    lines += ["[defaults]", 'latency = { status = "healthy", p95_ms = 40, sample_count = 240 }']
    return "\n".join(lines) + "\n"


def run(sessions: int, panes: int, dist: list[str]) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="cg-bench-"))
    try:
        shutil.copytree(
            ROOT / "gates", work / "gates", ignore=shutil.ignore_patterns("__pycache__")
        )
        (work / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["gates"]\n')
        scenario_file = work / "bench.toml"
        scenario_file.write_text(scenario(sessions, panes))
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "--phase=alpha",
                f"--canarygate-sim={scenario_file}",
                "-q",
                "-p",
                "no:cacheprovider",
                *dist,
            ],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        [run_json] = list((work / "reports").glob("*/*/*/run.json"))
        run_data = json.loads(run_json.read_text())
        observation = Observation.load_run(run_json.parent).to_json()
        calls = sum(len(d["calls"]) for d in observation["daemons"].values())
        reads = len(observation.get("evidence", {}))
        observed_s = (
            datetime.fromisoformat(observation["finished_at"].replace("Z", "+00:00"))
            - datetime.fromisoformat(observation["started_at"].replace("Z", "+00:00"))
        ).total_seconds()
        if done.returncode != 0:
            raise SystemExit(f"run failed ({done.returncode}):\n{done.stdout[-2000:]}")
        return {
            "sessions": sessions,
            "panes": sessions * panes,
            "gates": len(run_data["gates"]),
            "rpc_calls": calls,
            "evidence_reads": reads,
            "wall_s": wall,
            "observe_s": observed_s,
            "peak_rss_mib": max(peak_kib, before) / 1024,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sessions", type=int, nargs="+", default=[3, 30, 120])
    parser.add_argument("--panes", type=int, default=4, help="Panes per session")
    parser.add_argument("-n", dest="workers", default="0", help="xdist workers (0 = none)")
    args = parser.parse_args()
    dist = [] if args.workers == "0" else ["-n", args.workers]
    header = (
        "sessions",
        "panes",
        "gates",
        "daemon calls",
        "evidence reads",
        "run s",
        "observe s",
        "peak MiB",
    )
    print("  ".join(header))
    rows = [run(s, args.panes, dist) for s in args.sessions]
    for row in rows:
        cells = (
            row["sessions"],
            row["panes"],
            row["gates"],
            row["rpc_calls"],
            row["evidence_reads"],
            f"{row['wall_s']:.2f}",
            f"{row['observe_s']:.2f}",
            f"{row['peak_rss_mib']:.1f}",
        )
        print("  ".join(f"{cell:>{len(name)}}" for cell, name in zip(cells, header, strict=True)))
    flat = len({(row["rpc_calls"], row["evidence_reads"]) for row in rows}) == 1
    print(f"daemon calls and evidence reads per run: {'flat' if flat else 'GROW'} across sizes")
    return 0 if flat else 1


if __name__ == "__main__":
    raise SystemExit(main())
