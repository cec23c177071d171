"""Closing a run folder into an evidence bundle: completeness, final name, the signed statement.

Runs once, on the controller, after every worker has finished.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_canarygate.results import RunOutcome

NODEID_LABEL = "canarygate_nodeid"


def nodeids_with_results(results_dir: Path, reported: Mapping[str, str]) -> set[str]:
    """The gate nodeids whose Allure result file, as its process reported writing it
    (``{nodeid: file name}``), is in ``results_dir``."""
    present = {path.name for path in results_dir.glob("*-result.json")}
    return {nodeid for nodeid, name in reported.items() if name in present}


def incompleteness(
    expected: Iterable[str], reported: Iterable[str], with_results: set[str], *, allure: bool
) -> list[str]:
    """Why the bundle does not hold a result for every gate that should have run."""
    expected, reported = set(expected), set(reported)
    problems = [f"{nodeid}: collected but never reported" for nodeid in sorted(expected - reported)]
    if not allure:
        problems.append("allure-pytest is disabled: the bundle holds no gate results")
    else:
        problems += [
            f"{nodeid}: reported but has no result file"
            for nodeid in sorted(reported - with_results)
        ]
    return problems


def final_name(run_dir: Path, verdict: str) -> Path:
    """``<stamp>-running`` becomes ``<stamp>-<verdict>``."""
    return run_dir.with_name(run_dir.name.replace("-running", f"-{verdict}"))


def build_predicate(
    outcome: RunOutcome,
    run: dict[str, Any],
    *,
    signer_keyid: str | None,
    ephemeral: bool,
) -> dict[str, Any]:
    """The statement's predicate: what was judged, against what, with which verdicts."""
    from pytest_canarygate import __version__

    fleet = outcome.fleet_json()
    return {
        "phase": outcome.phase,
        # the --canarygate-stage the run was narrowed to (None: the whole phase); "rehearsal"
        # marks a rollback dry-run, never a rollback (chain.find_rehearsal, latest_rollback)
        "stage": run.get("stage"),
        "migration_id": run["migration_id"],
        "verdict": outcome.verdict.value,
        "scope": outcome.scope,
        "partial_reasons": outcome.partial_reasons,
        "missing_gates": outcome.missing_gates,
        "incomplete": outcome.incomplete,
        "pending_items": [p.as_json() for p in outcome.pending_items],
        "promotable": outcome.promotable,
        "not_promotable_because": outcome.not_promotable_because,
        "target": run["target"],
        "peers": run.get("peers", []),
        "facts": run.get("facts", {}),
        "config_digest": run.get("config_digest"),
        "catalog_digest": run["catalog_digest"],
        "gates": [r.as_json() for r in outcome.results],
        "counts": dict(outcome.counts),
        "started_at": run["started_at"],
        "finished_at": run["finished_at"],
        "host": platform.node(),
        "engine": f"pytest-canarygate {__version__}",
        "signer": {"keyid": signer_keyid, "ephemeral": ephemeral},
        "relies_on": outcome.relies_on,
        "chain_problems": outcome.chain_problems,
        "loosened": outcome.loosened,
        "decision": outcome.decision.as_json() if outcome.decision else None,
        # [[targets]] runs only: the verdict per target and for the fleet (the worst)
        **({"fleet": fleet} if fleet is not None else {}),
    }


def write_ephemeral_public_key(bundle: Path, public_key: dict[str, Any]) -> Path:
    """Keep an ephemeral key's public half beside (never inside) the bundle, for the demo."""
    path = bundle.with_name(bundle.name + ".ephemeral.pub.json")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(public_key, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def size_of(folder: Path) -> tuple[int, int]:
    """The number of regular files under ``folder`` and their total size in bytes."""
    files = size = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            info = os.lstat(os.path.join(root, name))
            files += 1
            size += info.st_size
    return files, size
