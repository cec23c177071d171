"""Bookkeeping of the fault matrix, shared by tests/test_fault_matrix.py and
bench/fault_matrix.py: what each gate reads (its *targets*), which gates a fault reaches, the
config of a run through relays, and how a run's verdicts are judged.

A target is ``(daemon, method)`` for what a daemon socket answers (``("v5",
"ops.alert_ledger")`` for operations evidence served by the v5 socket), ``(daemon, "*")`` for a
whole endpoint, or ``("file", kind)`` for evidence read from a file.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate_repo import OPS_METHOD

from pytest_canarygate.agtmux.pack import ACCESSORS
from pytest_canarygate.agtmux.pack import RPC_EVIDENCE_KINDS
from pytest_canarygate.catalog import Catalog
from pytest_canarygate.catalog import GateSpec
from pytest_canarygate.catalog import load_catalog
from pytest_canarygate.observation import EVIDENCE_NEED

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "gates" / "catalog.toml"
Target = tuple[str, str]
#: Evidence kinds the matrix reads from files (the simulator publishes these as files).
FILE_KINDS = ("binding", "selector", "daemon_log", "build", "archive")
#: The endings of a sealed bundle's folder (a run verdict), as opposed to -running/-unsealed.
SEALED_SUFFIXES = ("-pass", "-fail", "-partial", "-incomplete", "-empty")


def catalog() -> Catalog:
    return load_catalog(CATALOG)


def gate_targets(gate: GateSpec) -> set[Target]:
    """Everything the gate reads, as targets. Operations evidence that the v5 socket can serve
    is the v5 ``ops.*`` method; a kind the matrix can also read from a file is that file too
    (one of the two is configured in a run)."""
    targets: set[Target] = set()
    for need in gate.needs:
        if need.daemon != EVIDENCE_NEED:
            targets.add((need.daemon, need.method))
            continue
        kind = ACCESSORS[need.method].kind
        if kind in RPC_EVIDENCE_KINDS and need.method in OPS_METHOD:
            targets.add(("v5", OPS_METHOD[need.method]))
        if kind in FILE_KINDS:
            targets.add(("file", kind))
    return targets


def reaches(gate_reads: Collection[Target], faulted: Target) -> bool:
    """True if a fault on ``faulted`` reaches a gate reading ``gate_reads``."""
    daemon, method = faulted
    if method == "*":
        return any(d == daemon for d, _ in gate_reads)
    return faulted in gate_reads


def phase_gates(cat: Catalog, phase: str) -> dict[str, set[Target]]:
    """The gates of ``phase`` and their targets."""
    return {g.id: gate_targets(g) for g in cat.gates_for(phase)}


def affected(gates: Mapping[str, set[Target]], faulted: Target) -> set[str]:
    """The gate ids a fault on ``faulted`` reaches."""
    return {gate for gate, reads in gates.items() if reaches(reads, faulted)}


def evidence_uris(
    fleet_evidence: Mapping[str, str],
    v5_uri: str,
    files: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Where each kind of evidence is read in a matrix run: ``files`` (faulted copies) first,
    then the v5 socket (through its relay) for every kind it serves, then the fleet's own."""
    out = dict(fleet_evidence)
    for kind in RPC_EVIDENCE_KINDS:
        out[kind] = v5_uri
    out.update(files or {})
    return out


def config_text(
    v4: str,
    v5: str,
    evidence: Mapping[str, str],
    *,
    migration: str = "fault-matrix",
    connect_s: float = 1.0,
    read_s: float = 2.0,
) -> str:
    """A live config: the two daemon endpoints (relays), timeouts, and the evidence URIs."""
    text = (
        f'[migration]\nid = "{migration}"\n'
        f'[daemons.v4]\nendpoint = "{v4}"\n[daemons.v5]\nendpoint = "{v5}"\n'
        f"[timeouts]\nconnect_s = {connect_s}\nread_s = {read_s}\n"
        "[observation]\nversion_interval_s = 0.05\n"
    )
    text += "[evidence]\n" + "".join(f'{kind} = "{uri}"\n' for kind, uri in evidence.items())
    return text


def names_it(message: str, target: Target, where: Iterable[str]) -> bool:
    """True if ``message`` names the faulted endpoint (any of ``where``: URIs, paths) or the
    method."""
    if any(w and w in message for w in where):
        return True
    method = target[1]
    return method != "*" and method in message


@dataclass(frozen=True)
class Finding:
    """One gate instance a fault reached, and what the run made of it."""

    phase: str
    fault: str
    target: Target
    gate: str
    param: str | None
    verdict: str
    message: str
    named: bool

    @property
    def false_pass(self) -> bool:
        return self.verdict == "PASS"

    def line(self) -> str:
        daemon, method = self.target
        where = f"{daemon}:{method}"
        gate = self.gate + (f"[{self.param}]" if self.param else "")
        return f"{gate} | fault {self.fault} on {where} | phase {self.phase} | {self.message}"


def judge(
    run: Mapping[str, Any],
    phase: str,
    faults: Mapping[Target, tuple[str, Collection[str]]],
) -> list[Finding]:
    """Every gate instance of ``run`` (its run.json) that one of ``faults`` reached:
    ``{target: (fault label, [URIs or paths that name its endpoint])}``."""
    gates = phase_gates(catalog(), phase)
    found = []
    for result in run["gates"]:
        reads = gates.get(result["gate"], set())
        for target, (label, where) in faults.items():
            if reaches(reads, target):
                message = str(result.get("message") or "")
                found.append(
                    Finding(
                        phase,
                        label,
                        target,
                        result["gate"],
                        result.get("param"),
                        result["verdict"],
                        message,
                        names_it(message, target, where),
                    )
                )
    return found


def run_json(bundle: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((bundle / "run.json").read_text())
    return data


def sealed(bundle: Path) -> bool:
    """The bundle folder is named after a run verdict and carries its signed statement."""
    return bundle.name.endswith(SEALED_SUFFIXES) and (bundle / "statement.dsse.json").is_file()
