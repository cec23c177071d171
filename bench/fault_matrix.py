"""Benchmark: the whole fault matrix. Every fault, on every phase, on every endpoint the phase's
gates read, crossed with the gates that read it; plus faults on the evidence endpoints (the
``ops.*`` methods of the v5 socket, and evidence files).

Each run starts a healthy simulated fleet for its phase, puts a hostile relay
(tests/relays.py) in front of each daemon socket (no simulator marker beside it: the run is
judged LIVE), faults some answers or files, and runs ``pytest --phase=<phase>`` on a copy of the
gates. Several faults share one run when no gate reads two of them, so that every gate is
reached by at most one fault; a fault on ``daemon.info`` (read first: a daemon that does not
answer it is not asked anything else) and a fault of a whole endpoint run alone. A gate that
reads a faulted answer or file and still PASSes is a *false PASS*.

Prints: faults tried, gate instances exercised, ``false PASS: N`` on its own line, the
worst-case wall time and peak memory (ru_maxrss of the pytest run and its children, from
wait4) of one run, anything else that went wrong (a run over its timeout, an unsealed bundle,
a run exiting 0, a message that names neither the endpoint nor the method, a benign fault that
changed a verdict), then each false PASS. Exit 0 when there is nothing to report.

    .venv/bin/python bench/fault_matrix.py [--phases alpha canary] [--faults garbage nan]
        [--jobs 2] [--run-timeout 120] [--plan]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fault_targets import Finding  # noqa: E402
from fault_targets import Target  # noqa: E402
from fault_targets import catalog  # noqa: E402
from fault_targets import config_text  # noqa: E402
from fault_targets import evidence_uris  # noqa: E402
from fault_targets import judge  # noqa: E402
from fault_targets import phase_gates  # noqa: E402
from fault_targets import sealed  # noqa: E402
from gate_repo import NO_ARCHIVE_INCONCLUSIVE  # noqa: E402
from relays import ENDPOINT_FAULTS  # noqa: E402
from relays import FaultSpec  # noqa: E402
from relays import Relay  # noqa: E402
from relays import dumps_dup_keys  # noqa: E402
from relays import move_to_future  # noqa: E402
from relays import non_finite  # noqa: E402
from relays import out_of_range  # noqa: E402
from relays import shift_time  # noqa: E402

from pytest_canarygate.agtmux.runbook import PHASES  # noqa: E402
from pytest_canarygate.agtmux.sim import SimFleet  # noqa: E402
from pytest_canarygate.agtmux.sim import start_fleet  # noqa: E402

#: Faults of one method's answers, tried on every daemon method a phase's gates read.
WIRE_FAULTS = (
    "hang",
    "slow",
    "midclose",
    "garbage",
    "wrong-shape",
    "huge",
    "rpc-error",
    "wrong-id",
    "changes",
    "dup-keys",
    "dup-records",
    "future",
    "out-of-range",
    "nan",
)
#: Answers with records that have an identity (pane id, session key, alert id, ...).
RECORD_METHODS = frozenset(
    {
        "list_panes",
        "list_sessions",
        "list_source_health",
        "list_source_registry",
        "ops.snapshot_list",
        "ops.alert_ledger",
    }
)
#: Answers without a timestamp or without an integer: ``future`` / generic ``out-of-range``
#: would change nothing there.
UNDATED_METHODS = frozenset({"latency_status", "summary_changed"})
INTLESS_METHODS = frozenset({"list_panes", "list_sessions", "list_source_health"})
LATENCY_VALUES = (
    ("consecutive_breaches", '"5"'),
    ("consecutive_breaches", "5.0"),
    ("consecutive_breaches", "null"),
    ("consecutive_breaches", "-3"),
    ("p95_ms", "-5"),
    ("sample_count", "-7"),
)
GENERIC_VALUES = (("*", "-7"), ("*", '"7"'))
#: Faults of an evidence file (``other-uid`` only when running as root).
FILE_FAULTS = (
    "missing",
    "garbage",
    "fifo",
    "world-writable",
    "symlink-tmp",
    "other-uid",
    "dup-keys",
    "future",
    "nan",
    "out-of-range",
    "junit-padded",
    "junit-hidden-failure",
    "binary-fifo",
    "binary-devzero",
)
JSON_FILE_KINDS = ("binding", "archive")
OTHER_UID = 65534
GARBAGE = b"\x00\xff\xfe<garbage>{not: json]]\n"


@dataclass(frozen=True)
class Placement:
    """One fault on one target."""

    target: Target
    fault: str
    param: Any = None

    @property
    def label(self) -> str:
        if self.param is None:
            return self.fault
        return f"{self.fault}({self.param[0]}={self.param[1]})"

    @property
    def spec(self) -> FaultSpec:
        return self.fault if self.param is None else (self.fault, list(self.param))

    @property
    def solo(self) -> bool:
        return self.target[1] in ("*", "daemon.info")


@dataclass
class PlannedRun:
    phase: str
    placements: list[Placement]
    benign: str | None = None  # "baseline" or "bytewise": no fault that changes an answer

    def describe(self) -> str:
        if self.benign:
            return f"{self.phase}: {self.benign}"
        faults = ", ".join(f"{p.label} on {p.target[0]}:{p.target[1]}" for p in self.placements)
        return f"{self.phase}: {faults}"


@dataclass
class RunReport:
    run: PlannedRun
    wall_s: float = 0.0
    maxrss_kib: int = 0
    returncode: int | None = None
    timed_out: bool = False
    bundle: str | None = None
    sealed: bool = False
    leftovers: list[str] = field(default_factory=list)
    verdicts: dict[tuple[str, str | None], str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    applied: set[Placement] = field(default_factory=set)
    error: str | None = None


# --- planning ---------------------------------------------------------------------------------


def readings(phase: str) -> dict[Target, int]:
    """How many times each daemon method is read in ``phase`` (daemon.info: the bracket, 2)."""
    counts: dict[Target, int] = {("v4", "daemon.info"): 2, ("v5", "daemon.info"): 2}
    for gate in catalog().gates_for(phase):
        for need in gate.needs:
            key = (need.daemon, need.method)
            counts[key] = max(counts.get(key, 1), need.readings)
    return counts


def wire_placements(target: Target, times: int, faults: set[str]) -> Iterator[Placement]:
    method = target[1]
    for fault in WIRE_FAULTS:
        if fault not in faults:
            continue
        if fault == "changes" and times < 2:
            continue
        if fault == "dup-records" and method not in RECORD_METHODS:
            continue
        if fault == "future" and method in UNDATED_METHODS:
            continue
        if fault == "out-of-range":
            if method == "latency_status":
                yield from (Placement(target, fault, v) for v in LATENCY_VALUES)
            elif method not in INTLESS_METHODS:
                yield from (Placement(target, fault, v) for v in GENERIC_VALUES)
            continue
        yield Placement(target, fault)


def file_placements(kind: str, faults: set[str]) -> Iterator[Placement]:
    for fault in FILE_FAULTS:
        if fault not in faults:
            continue
        if fault == "other-uid" and os.geteuid() != 0:
            continue
        if fault in ("dup-keys", "nan", "out-of-range") and kind not in JSON_FILE_KINDS:
            continue
        if fault == "future" and kind not in (*JSON_FILE_KINDS, "daemon_log"):
            continue
        if fault.startswith("junit-") and kind != "build":
            continue
        if fault.startswith("binary-") and kind != "archive":
            continue
        yield Placement(("file", kind), fault)


def plan(phases: list[str], faults: set[str]) -> list[PlannedRun]:
    """Every placement of every phase, packed into runs in which no gate reads two of them."""
    runs: list[PlannedRun] = []
    for phase in phases:
        gates = phase_gates(catalog(), phase)
        runs.append(PlannedRun(phase, [], benign="baseline"))
        runs.append(PlannedRun(phase, [], benign="bytewise"))
        times = readings(phase)
        read = sorted({t for reads in gates.values() for t in reads})
        together: dict[Target, set[Target]] = defaultdict(set)
        for reads in gates.values():
            for t in reads:
                together[t] |= reads
        todo: list[Placement] = []
        for daemon in ("v4", "v5"):
            if any(t[0] == daemon for t in read):
                todo += [Placement((daemon, "*"), f) for f in ENDPOINT_FAULTS if f in faults]
        for target in read:
            if target[0] == "file":
                todo += file_placements(target[1], faults)
            else:
                todo += wire_placements(target, times.get(target, 1), faults)
        runs += [PlannedRun(phase, [p]) for p in todo if p.solo]
        queues: dict[Target, list[Placement]] = defaultdict(list)
        for placement in todo:
            if not placement.solo:
                queues[placement.target].append(placement)
        while any(queues.values()):
            # the targets with the most placements left first, so that all drain together
            order = sorted(
                (t for t, q in queues.items() if q),
                key=lambda t: (-len(queues[t]), -len(together[t]), t),
            )
            chosen: list[Placement] = []
            used: set[Target] = set()
            for t in order:
                if any(t in together[u] for u in used):
                    continue
                chosen.append(queues[t].pop(0))
                used.add(t)
            runs.append(PlannedRun(phase, chosen))
    return runs


# --- evidence files ---------------------------------------------------------------------------


def file_path(fleet: SimFleet, kind: str) -> Path:
    return Path(fleet.evidence[kind].removeprefix("file://"))


def make_faulty_file(fleet: SimFleet, kind: str, fault: str, work: Path) -> tuple[str, list[str]]:
    """Create the faulted evidence of ``kind`` under ``work`` (or in /tmp for the faults about
    where it lies); return its URI and the paths a message may name it by."""
    original = file_path(fleet, kind)
    folder = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=work))
    os.chmod(folder, 0o700)
    if kind == "archive":  # the manifest and the archived binary beside it
        shutil.copytree(original.parent, folder, dirs_exist_ok=True)
    else:
        shutil.copy2(original, folder / original.name)
    path = folder / original.name
    names = [str(path), path.as_uri()]
    data = original.read_bytes()
    if fault == "missing":
        path.unlink()
    elif fault == "garbage":
        path.write_bytes(GARBAGE)
    elif fault == "fifo":
        path.unlink()
        os.mkfifo(path, 0o600)
    elif fault == "world-writable":
        open_folder = Path(tempfile.mkdtemp(prefix="cg-ww-"))
        os.chmod(open_folder, 0o777)
        if kind == "archive":
            shutil.copytree(folder, open_folder, dirs_exist_ok=True)
        path = open_folder / original.name
        path.write_bytes(data)
        os.chmod(path, 0o666)
        names = [str(path), path.as_uri()]
    elif fault == "symlink-tmp":
        handle, name = tempfile.mkstemp(prefix=f"cg-evil-{kind}-", dir="/tmp")
        os.close(handle)
        real = Path(name)
        real.write_bytes(data)
        path.unlink()
        path.symlink_to(real)
        names += [str(real)]
    elif fault == "other-uid":
        os.chown(path, OTHER_UID, OTHER_UID)
    elif fault in ("dup-keys", "future", "nan", "out-of-range"):
        path.write_bytes(mutated(kind, fault, data))
    elif fault == "junit-padded":
        path.write_bytes(junit_padded(data))
    elif fault == "junit-hidden-failure":
        path.write_bytes(junit_hidden_failure(data))
    elif fault in ("binary-fifo", "binary-devzero"):
        manifest = json.loads(data)
        binary = folder / manifest["binary"]
        binary.unlink()
        if fault == "binary-fifo":
            os.mkfifo(binary, 0o600)
        else:
            binary.symlink_to("/dev/zero")
        names += [str(binary)]
    else:
        raise ValueError(f"unknown file fault {fault}")
    return path.as_uri(), names


def mutated(kind: str, fault: str, data: bytes) -> bytes:
    if kind == "daemon_log":  # fault == "future": every line's time a year ahead
        text = data.decode()
        stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
        return stamp.sub(lambda m: shift_time(m[0]) or m[0], text).encode()
    value = json.loads(data)
    if fault == "dup-keys":
        return dumps_dup_keys(value)[0].encode() + b"\n"
    if fault == "future":
        move_to_future(value)
    elif fault == "nan":
        value = non_finite(value)[0]
    elif fault == "out-of-range":
        out_of_range(value, "*", "-7")
    return json.dumps(value).encode() + b"\n"


def junit_padded(data: bytes) -> bytes:
    """Ten distinct test cases, the first one repeated 500 times: 510 cases, 10 tests."""
    text = data.decode()
    cases = re.findall(r"<testcase\b[^>]*/>", text)[:10]
    body = "\n".join([cases[0]] * 500 + cases)
    return (
        "<?xml version='1.0' encoding='utf-8'?>\n"
        f'<testsuites name="nextest-run" tests="{len(cases) + 500}" failures="0" errors="0">\n'
        f'<testsuite name="agtmux-core-v5" tests="{len(cases) + 500}" failures="0">\n'
        f"{body}\n</testsuite>\n</testsuites>\n"
    ).encode()


def junit_hidden_failure(data: bytes) -> bytes:
    """Two failures the counters do not mention: one namespaced, one nested a level deeper."""
    text = data.decode()
    cases = list(re.finditer(r"<testcase\b([^>]*)/>", text))
    first, second = cases[0], cases[1]
    hidden = f'<testcase{first[1]}><x:failure xmlns:x="urn:hidden" message="boom"/></testcase>'
    nested = f'<testcase{second[1]}><system-out><failure message="deep"/></system-out></testcase>'
    return (
        text[: first.start()]
        + hidden
        + text[first.end() : second.start()]
        + nested
        + text[second.end() :]
    ).encode()


# --- running ----------------------------------------------------------------------------------


def run_pytest(work: Path, phase: str, timeout: float) -> tuple[int | None, bool, float, int]:
    """Run the gates; (returncode or None, timed out, wall s, ru_maxrss KiB of the run)."""
    log = (work / "pytest.log").open("wb")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            f"--phase={phase}",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
        ],
        cwd=work,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    timed_out = False
    deadline = started + timeout
    status = None
    usage = None
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
    finally:
        proc.returncode = 0 if status is None else os.waitstatus_to_exitcode(status)
        log.close()
    wall = time.perf_counter() - started
    return (
        (None if timed_out else proc.returncode),
        timed_out,
        wall,
        usage.ru_maxrss if usage else 0,
    )


class FleetPool:
    """One healthy fleet per worker thread, reused by its runs of one phase for at most
    ``max_age`` seconds (the simulator's files end when it starts: well within the 5 minutes a
    history may lag behind "now")."""

    def __init__(self, max_age: float = 60.0) -> None:
        self.max_age = max_age
        self.local = threading.local()
        self.lock = threading.Lock()
        self.fleets: list[SimFleet] = []

    def get(self, phase: str) -> SimFleet:
        cached: tuple[str, float, SimFleet] | None = getattr(self.local, "cached", None)
        if cached is not None:
            cached_phase, born, fleet = cached
            if cached_phase == phase and time.monotonic() - born < self.max_age:
                return fleet
            fleet.stop()
        fleet = start_fleet("healthy", phase=phase, stopped=())  # v4 runs, even at cutover
        self.local.cached = (phase, time.monotonic(), fleet)
        with self.lock:
            self.fleets.append(fleet)
        return fleet

    def close(self) -> None:
        for fleet in self.fleets:
            fleet.stop()


@dataclass
class Setup:
    """What one run reads through: its relays, the faulted files and the config."""

    relays: dict[str, Relay] = field(default_factory=dict)
    where: dict[Target, list[str]] = field(default_factory=dict)
    outside: list[Path] = field(default_factory=list)  # made in /tmp itself


def _tmp_entries() -> set[Path]:
    return {*Path("/tmp").glob("cg-ww-*"), *Path("/tmp").glob("cg-evil-*")}


def prepare(run: PlannedRun, fleet: SimFleet, work: Path, setup: Setup) -> None:
    """Start the relays, make the faulted files, copy the gates and write the config."""
    wire: dict[str, dict[str, FaultSpec]] = {"v4": {}, "v5": {}}
    if run.benign == "bytewise":
        wire = {"v4": {"*": "bytewise"}, "v5": {"*": "bytewise"}}
    endpoint: dict[str, str] = {}
    files: dict[str, str] = {}
    for placement in run.placements:
        daemon, method = placement.target
        if daemon == "file":
            before = _tmp_entries()
            try:
                uri, names = make_faulty_file(fleet, method, placement.fault, work)
            finally:
                setup.outside += sorted(_tmp_entries() - before)
            files[method] = uri
            setup.where[placement.target] = names
        elif method == "*":
            endpoint[daemon] = placement.fault
        else:
            wire[daemon][method] = placement.spec
    for name in ("v4", "v5"):
        relay = Relay(fleet.endpoints[name], wire[name], endpoint_fault=endpoint.get(name))
        setup.relays[name] = relay.start()
    for placement in run.placements:
        if placement.target[0] in setup.relays:
            setup.where[placement.target] = [setup.relays[placement.target[0]].uri]
    v4, v5 = setup.relays["v4"].uri, setup.relays["v5"].uri
    evidence = evidence_uris(fleet.evidence, v5, files)
    shutil.copytree(ROOT / "gates", work / "gates", ignore=shutil.ignore_patterns("__pycache__"))
    (work / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["gates"]\n')
    config = config_text(v4, v5, evidence, connect_s=2.0, read_s=5.0)
    (work / "canarygate.toml").write_text(config)


def execute(run: PlannedRun, timeout: float, pool: FleetPool) -> RunReport:
    report = RunReport(run)
    work = Path(tempfile.mkdtemp(prefix="cg-fm-"))
    setup = Setup()
    try:
        prepare(run, pool.get(run.phase), work, setup)
        report.returncode, report.timed_out, report.wall_s, report.maxrss_kib = run_pytest(
            work, run.phase, timeout
        )
        for relay in setup.relays.values():
            relay.stop()
        applied = {n: r.applied() for n, r in setup.relays.items() if r.endpoint_fault is None}
        for placement in run.placements:
            daemon, method = placement.target
            if daemon == "file" or method == "*" or method in applied.get(daemon, ()):
                report.applied.add(placement)
        report.leftovers = [p.name for p in (work / "reports").glob("*/*/*") if p.is_dir()]
        bundles = [p.parent for p in (work / "reports").glob("*/*/*/run.json")]
        if len(bundles) == 1:
            bundle = bundles[0]
            report.bundle = bundle.name
            report.sealed = sealed(bundle)
            data = json.loads((bundle / "run.json").read_text())
            report.verdicts = {(g["gate"], g.get("param")): g["verdict"] for g in data["gates"]}
            faults = {p.target: (p.label, setup.where.get(p.target, [])) for p in run.placements}
            report.findings = judge(data, run.phase, faults)
        else:
            report.error = f"{len(bundles)} bundles with a run.json: {report.leftovers}"
    except Exception as exc:  # a harness failure: reported, never counted as a pass
        report.error = f"{type(exc).__name__}: {exc}"
    finally:
        for relay in setup.relays.values():
            relay.stop()
        for path in setup.outside:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    return report


# --- report -----------------------------------------------------------------------------------


def summarize(reports: list[RunReport], elapsed: float) -> int:
    placements = [p for r in reports for p in r.run.placements]
    applied = [(r, p) for r in reports for p in r.run.placements if p in r.applied]
    exercised = [
        f
        for r in reports
        for f in r.findings
        if any(p.target == f.target and p in r.applied for p in r.run.placements)
    ]
    false_passes = [f for f in exercised if f.false_pass]
    unnamed = [f for f in exercised if not f.named and not f.false_pass]
    faulted_runs = [r for r in reports if r.run.placements]
    exit_zero = [r for r in faulted_runs if r.applied and r.returncode == 0]
    timed_out = [r for r in reports if r.timed_out]
    unsealed = [r for r in reports if not r.sealed]
    errors = [r for r in reports if r.error]
    baseline = {r.run.phase: r for r in reports if r.run.benign == "baseline"}
    benign_changes = []
    for r in reports:
        if r.run.benign == "bytewise" and r.run.phase in baseline:
            base = baseline[r.run.phase].verdicts
            benign_changes += [
                f"{r.run.phase} {gate}[{param}]: {base.get((gate, param))} -> {verdict}"
                for (gate, param), verdict in sorted(r.verdicts.items(), key=str)
                if base.get((gate, param)) != verdict
            ]
    collateral = []  # gates no fault reached whose verdict still moved off the baseline
    for r in faulted_runs:
        base_run = baseline.get(r.run.phase)
        if base_run is None or any(p.target[1] in ("*", "daemon.info") for p in r.run.placements):
            continue  # a daemon that does not answer daemon.info is asked nothing else
        reached = {(f.gate, f.param) for f in r.findings}
        collateral += [
            f"{r.run.describe()}: {gate}[{param}] {base_run.verdicts.get((gate, param))} -> {v}"
            for (gate, param), v in sorted(r.verdicts.items(), key=str)
            if (gate, param) not in reached and base_run.verdicts.get((gate, param)) != v
        ]
    kinds = sorted({p.label.split("(")[0] for p in placements})
    kinds_applied = sorted({p.label.split("(")[0] for _, p in applied})
    phases = sorted({r.run.phase for r in reports}, key=PHASES.index)
    print(f"phases: {', '.join(phases)}; runs: {len(reports)} in {elapsed:.0f} s")
    print(
        f"faults tried: {len(kinds_applied)} kinds ({', '.join(kinds_applied)}); "
        f"{len(applied)} of {len(placements)} placements changed what the engine read"
    )
    not_applied = sorted(
        {
            f"{r.run.phase} {p.label} on {p.target[0]}:{p.target[1]}"
            for r in reports
            for p in r.run.placements
            if p not in r.applied
        }
    )
    if set(kinds) - set(kinds_applied):
        print(f"  never applied: {', '.join(sorted(set(kinds) - set(kinds_applied)))}")
    distinct = {(f.phase, f.fault, f.target, f.gate) for f in exercised}
    print(
        f"gate instances exercised: {len(exercised)} "
        f"({len(distinct)} distinct gate x fault x endpoint x phase)"
    )
    print(f"false PASS: {len(false_passes)}")
    slowest = max(reports, key=lambda r: r.wall_s)
    print(
        f"worst-case wall time per run: {slowest.wall_s:.1f} s ({slowest.run.describe()})"
        + (" [killed at the timeout]" if slowest.timed_out else "")
    )
    biggest = max(reports, key=lambda r: r.maxrss_kib)
    print(
        f"worst-case peak memory: {biggest.maxrss_kib / 1024:.1f} MiB ru_maxrss "
        f"({biggest.run.describe()})"
    )
    per_fault: dict[str, Counter[str]] = defaultdict(Counter)
    for f in exercised:
        per_fault[f.fault.split("(")[0]]["instances"] += 1
        per_fault[f.fault.split("(")[0]]["false PASS"] += f.false_pass
    print("per fault: gate instances exercised / false PASS")
    for fault in sorted(per_fault):
        counts = per_fault[fault]
        print(f"  {fault:<22} {counts['instances']:>5} / {counts['false PASS']}")
    problems = 0
    for title, items in (
        ("runs killed at the global timeout", [r.run.describe() for r in timed_out]),
        (
            "bundles not sealed",
            [f"{r.run.describe()}: {r.bundle or r.leftovers}" for r in unsealed],
        ),
        ("runs exiting 0 under an applied fault", [r.run.describe() for r in exit_zero]),
        ("harness errors", [f"{r.run.describe()}: {r.error}" for r in errors]),
        ("messages naming neither the endpoint nor the method", [f.line() for f in unnamed]),
        ("verdicts changed by a benign fault (bytewise vs baseline)", benign_changes),
    ):
        print(f"{title}: {len(items)}")
        for item in items:
            print(f"  - {item}")
        problems += len(items)
    base_not_pass = sorted(
        f"{phase} {gate}[{param}] {verdict}"
        for phase, r in baseline.items()
        for (gate, param), verdict in r.verdicts.items()
        if verdict != "PASS" and gate not in NO_ARCHIVE_INCONCLUSIVE
    )
    print(
        "baseline gates not PASS (transparent relay, healthy fleet; the gates that need an "
        f"archive of signed bundles aside): {len(base_not_pass)}"
    )
    for item in base_not_pass:
        print(f"  - {item}")
    print(
        "verdicts of gates no fault reached that still differ from the baseline "
        f"(informational): {len(collateral)}"
    )
    for item in collateral[:20]:
        print(f"  - {item}")
    if not_applied:
        print(f"placements that changed nothing (not counted): {len(not_applied)}")
        for item in not_applied:
            print(f"  - {item}")
    print(f"false PASSes ({len(false_passes)}):")
    for f in sorted(false_passes, key=lambda f: (PHASES.index(f.phase), f.gate, f.fault)):
        print(f"  - {f.line()}")
    return 1 if false_passes or problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--phases", nargs="+", default=list(PHASES), choices=PHASES)
    every = sorted({*WIRE_FAULTS, *ENDPOINT_FAULTS, *FILE_FAULTS})
    parser.add_argument("--faults", nargs="+", default=every, choices=every)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time")
    parser.add_argument("--run-timeout", type=float, default=120.0, help="seconds per run")
    parser.add_argument("--plan", action="store_true", help="print the runs and stop")
    args = parser.parse_args()
    runs = plan(args.phases, set(args.faults))
    if args.plan:
        for run in runs:
            print(run.describe())
        print(f"{len(runs)} runs, {sum(len(r.placements) for r in runs)} placements")
        return 0
    print(
        f"fault matrix: {len(runs)} runs, jobs {args.jobs}, timeout {args.run_timeout:g} s per run",
        flush=True,
    )
    started = time.perf_counter()
    done = 0
    lock = threading.Lock()

    def one(run: PlannedRun) -> RunReport:
        nonlocal done
        report = execute(run, args.run_timeout, fleets)
        with lock:
            done += 1
            passes = sum(
                f.false_pass
                for f in report.findings
                if any(p.target == f.target and p in report.applied for p in run.placements)
            )
            flag = f"  FALSE PASS x{passes}" if passes else ""
            print(
                f"[{done}/{len(runs)}] {report.wall_s:5.1f} s rc={report.returncode} "
                f"{run.describe()}{flag}",
                file=sys.stderr,
                flush=True,
            )
        return report

    fleets = FleetPool()
    try:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            reports = list(pool.map(one, runs))
    finally:
        fleets.close()
    return summarize(reports, time.perf_counter() - started)


if __name__ == "__main__":
    raise SystemExit(main())
