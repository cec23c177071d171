"""Build a throwaway gate repository inside a pytester folder, and read what a run left."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pytest_canarygate.agtmux.providers import ops
from pytest_canarygate.observation import Observation

ROOT = Path(__file__).resolve().parents[1]


def make_gate_repo(pytester: pytest.Pytester, *, config: str | None = None) -> Path:
    """Copy the real gates and catalog into ``pytester.path``; optionally a canarygate.toml."""
    shutil.copytree(
        ROOT / "gates", pytester.path / "gates", ignore=shutil.ignore_patterns("__pycache__")
    )
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\ntestpaths = ["gates"]\n')
    if config is not None:
        (pytester.path / "canarygate.toml").write_text(config)
    return pytester.path


def write_gates(
    pytester: pytest.Pytester, catalog: str, module: str, *, name: str = "test_mini.py"
) -> None:
    """A hand-made gates/ folder: ``catalog`` and one gate ``module``, collected by default."""
    (pytester.path / "gates").mkdir()
    (pytester.path / "gates" / "catalog.toml").write_text(catalog)
    (pytester.path / "gates" / name).write_text(module)
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\ntestpaths = ["gates"]\n')


def one_item_catalog(*gates: tuple[str, str | None]) -> str:
    """A catalog with one alpha entry item, A-1, judged by gates given as (id, need or None)."""
    text = (
        '[runbook]\ntitle = "test"\ndocument = "runbook.md"\n'
        'phases = ["alpha", "canary", "gradual", "cutover", "rollback"]\n'
        'read_only_methods = ["list_*", "*_changed", "latency_status", "daemon.info", "ops.*"]\n'
        '[[item]]\nid = "A-1"\nsection = "S"\ntext = "a check"\nkind = "step"\n'
        'phase = "alpha"\nstage = "entry"\n'
    )
    for gate_id, need in gates:
        text += f'[[gate]]\nid = "{gate_id}"\nitem = "A-1"\ntitle = "{gate_id}"\n'
        if need:
            text += f'needs = ["{need}"]\n'
    return text


#: The ops.* method a v5 socket would answer each operations accessor with.
OPS_METHOD = {
    "snapshots": ops.SNAPSHOT_LIST,
    "supervisor_status": ops.SUPERVISOR_STATUS,
    "supervisor_events": ops.SUPERVISOR_EVENTS,
    "alert_entries": ops.ALERT_LEDGER,
    "cursor_stats": ops.CURSOR_STATS,
    "binding_stats": ops.BINDING_STATS,
    "runtime_selector": ops.RUNTIME_SELECTOR,
}


def run_dirs(root: Path) -> list[Path]:
    """Every run folder under ``root/reports``."""
    return sorted(p.parent for p in (root / "reports").glob("*/*/*/run.json"))


def only_run(root: Path) -> tuple[Path, dict[str, Any]]:
    """The single run folder a test produced, and its run.json."""
    runs = run_dirs(root)
    assert len(runs) == 1, runs
    return runs[0], json.loads((runs[0] / "run.json").read_text())


def observation(run_dir: Path) -> dict[str, Any]:
    """The observation a run took."""
    data: dict[str, Any] = Observation.load_run(run_dir).to_json()
    return data


def sim_pids(run_dir: Path) -> set[int]:
    """The pids of the daemons the run observed (from daemon.info)."""
    pids = set()
    for daemon in observation(run_dir)["daemons"].values():
        for call in daemon["calls"]:
            if call["method"] == "daemon.info" and call["result"]:
                pids.add(call["result"]["pid"])
    return pids


def process_alive(pid: int) -> bool:
    """True if ``pid`` is a live (non-zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


#: Gates that judge from the archive of signed bundles and sign-offs, which no simulator run
#: has: without one they are INCONCLUSIVE, naming what is missing (tests/test_custody_run.py
#: gives them an archive). The user-report signal and the RCA gate pass on an empty archive.
NO_ARCHIVE_INCONCLUSIVE = frozenset(
    {
        "canary.pre.alpha-signed",
        "canary.pre.rollback-rehearsed",
        "cutover.checklist.rollback-rehearsed",
        "canary.exit.users-confirm",
        "canary.expand.pace",
        "canary.duration.archive-48h",
        "canary.exit.archive-stable-48h",
        "gradual.exit.archive-7d",
        "cutover.exit.archive-7d",
        "cutover.checklist.alpha-signed",
        "cutover.checklist.canary-signed",
        "cutover.checklist.gradual-signed",
        "cutover.checklist.on-call-briefed",
        "cutover.checklist.restore-evidence-retained",
        # v4 decommissioned at cutover: its sessions when it stopped and its version are known
        # only from the archived runs that saw it running
        "cutover.migrate.v4-sessions-restarted",
        "cutover.verify.zero-v4-sessions",
        "cutover.exit.zero-v4-sessions",
        "cutover.exit.v4-binary-retained",
        "rollback.post.incident-evidence",
    }
)
