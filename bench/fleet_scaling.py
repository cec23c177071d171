"""Benchmark: gating a simulated 1,000-session x 10-pane fleet, side by side with the floor.

One invocation runs, for each phase:

(a) the floor: plain ``pytest`` + ``allure-pytest`` (``--alluredir``) over one trivial test
    parametrized as many times as (b) has gate instances (``-p no:canarygate``);
(b) ``pytest --phase=PHASE`` over a copy of ``gates/``, serial, judging a fleet that is already
    running, as an operator's run does: before the run, outside its measured time, the bench
    starts the fleet with ``canarygate sim --scenario fleet.toml --phase PHASE``, waits for its
    "ready" line, and writes the run's ``canarygate.toml`` naming the endpoints and the
    ``[evidence]`` table it printed; the run signs with a key (mode 0600) made in its folder.
    The fleet is stopped after the run, always (also on a timeout, Ctrl-C or SIGTERM);
(c) the same with ``-n WORKERS``;
and once more (b) on a smaller fleet, to show daemon calls and reads do not grow with it.

Two reference runs put (b) and (c) in proportion; they are printed beside the targets, never
judged against them:

* the floor under ``-n WORKERS``: what xdist alone costs these many tests;
* ``floor+answers``: the floor after a ``conftest.py`` reads, from (b)'s running fleet and
  before collection, each daemon answer the phase's gates need, once, the plainest way (a
  socket, ``json.loads``, a thread per daemon; no check, gate or seal): a run that reads what
  the gates need and does nothing else with it. (b)'s ``fleet MB`` includes serving it.


Every run is measured warm: the children run without ``PYTHONDONTWRITEBYTECODE`` (which would
make each run recompile, and re-rewrite the assertions of, every module it imports), and each
measured run, floor and gates alike, follows one unmeasured warm-up run of the same command in
the same folder (against the same fleet), so byte code caches exist as they would for an
installed package. A run must judge exactly the gate instances the catalog gives the phase
(gates once, plus per-session gates once per tmux session of the fleet).

Per run it prints wall time, per-gate cost (wall / gate instances), gate instances, daemon calls
and provider reads (from the bundle's observation), observation time (started_at to
finished_at, and the summed ``elapsed_ms`` of the slowest daemon's calls), seal time (the run's
``canarygate: sealed ...`` line; where the run printed none, a copy of its bundle re-sealed here),
verify time (``canarygate verify BUNDLE --key PUB`` as its own process, with the public half of
the run's key; also ``verify_bundle`` alone, in this process), bundle size, and peak memory: the
``ru_maxrss`` GNU time (``/usr/bin/time -f %M``) reports for the run, i.e. its largest single
process among pytest and the children it reaped (xdist workers); the fleet's start time and
peak are printed apart (not part of the run). Then the ratios (b)/(a) and (c)/(a), and each
target of issue 12 with its figure and ``met``, ``MISSED`` or ``NOT MEASURED``. Missed targets
do not change the exit status: 0 when every run but the references completed, 1 when one
could not (its output's tail printed, escaped).

The runs use the code of this checkout (it is put first on the children's ``PYTHONPATH``)::

    umask 022 && .venv/bin/python bench/fleet_scaling.py
    .venv/bin/python bench/fleet_scaling.py --sessions 30 --small-sessions 3 --phases alpha
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from pathlib import Path
from typing import IO
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pytest_canarygate.textsafe import visible  # noqa: E402

MB = 1_000_000
#: Targets of issue 12 (2-core machine).
MAX_FLOOR_RATIO = 1.25
MAX_OBSERVE_DAEMON_S = 0.5
OBSERVE_TARGET_PANES = 10_000
MAX_SEAL_VERIFY_S = 1.0
SEAL_VERIFY_TARGET_GATES = 3_000
MAX_PEAK_MB = 300.0
MAX_BUNDLE_MB = 15.0
BUNDLE_TARGET_GATES = 3_000
_SEALED_LINE = re.compile(r"canarygate: sealed .* in ([0-9]+(?:\.[0-9]+)?) s\b")
_TAIL_CHARS = 3000
#: Seconds ``canarygate sim`` is given to print its ready line (at most the run's timeout).
FLEET_START_TIMEOUT_S = 300.0
_FLEET_READY = "simulated fleet ready"
_FLEET_DAEMON_LINE = re.compile(r"^([A-Za-z0-9_-]+)\s+(unix://\S+)\s+pid [0-9]+$")
_FLEET_EVIDENCE_LINE = re.compile(r'^([A-Za-z0-9_-]+) = (".*")$')
#: ``[migration] id`` of the config the bench writes (names the reports folder).
MIGRATION_ID = "fleet-scaling-bench"
#: The run's signing key, in its folder (the public half beside it, ``.pub.json``).
KEY_PATH = Path("keys") / "bench.key"
#: Seconds a run, or the fleet, is given to stop on SIGINT before SIGTERM.
STOP_GRACE_S = 60.0
#: GNU time, which reports the peak of a child started from its own small process. Without
#: it, wait4's figure includes this script's memory: a child's ru_maxrss counts the memory it
#: had before exec, a copy of its parent's.
TIME_BIN = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
PEAK_HOW = (
    "ru_maxrss of each run as GNU time (/usr/bin/time -f %M) reports it"
    if TIME_BIN
    else "ru_maxrss from wait4 of each run (no /usr/bin/time: may include this script's own memory)"
)


@dataclass
class Run:
    """One measured run (floor or gates) and every figure taken from it."""

    name: str
    kind: str  # "floor" or "gates"
    phase: str
    workers: int = 0
    sessions: int = 0
    panes: int = 0
    folder: str = ""
    returncode: int | None = None
    completed: bool = False
    problem: str = ""
    tail: str = ""
    wall_s: float = 0.0
    #: wall time of the unmeasured warm-up run before the measured one
    warmup_s: float | None = None
    peak_kib: int | None = None
    #: gate instances the catalog gives the phase on this fleet (None for the floor)
    expected_gates: int | None = None
    #: how the fleet was started (gates runs), outside the measured time
    fleet_command: str = ""
    #: seconds from starting ``canarygate sim`` to its ready line (not in ``wall_s``)
    fleet_start_s: float | None = None
    #: peak resident memory of the fleet's largest process (``canarygate sim`` or a daemon)
    fleet_peak_kib: int | None = None
    gates: int = 0
    verdict: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    daemon_calls: int | None = None
    provider_reads: int | None = None
    observe_s: float | None = None
    slowest_daemon: str = ""
    slowest_daemon_s: float | None = None
    seal_s: float | None = None
    seal_source: str = ""
    verify_s: float | None = None
    verify_inproc_s: float | None = None
    bundle: str = ""
    bundle_bytes: int | None = None
    bundle_files: int | None = None
    #: bytes per top-level entry of the bundle (``allure-results``, ``observation``, ...)
    bundle_parts: dict[str, int] = field(default_factory=dict)

    @property
    def per_gate_ms(self) -> float | None:
        """Wall time per gate instance (test, for the floor), in ms."""
        return 1000 * self.wall_s / self.gates if self.gates else None

    @property
    def peak_mb(self) -> float | None:
        """Peak resident memory in MB (10^6 bytes), None when not measured."""
        return None if self.peak_kib is None else self.peak_kib * 1024 / MB

    @property
    def fleet_peak_mb(self) -> float | None:
        """The fleet's peak resident memory in MB, None when not measured."""
        return None if self.fleet_peak_kib is None else self.fleet_peak_kib * 1024 / MB

    @property
    def bundle_kb_per_gate(self) -> float | None:
        """Bundle bytes per gate instance, in kB."""
        if self.bundle_bytes is None or not self.gates:
            return None
        return self.bundle_bytes / self.gates / 1000


@dataclass
class Target:
    """One target of the issue: its wording, the figure measured, and whether it was met."""

    name: str
    target: str
    figure: str
    met: bool | None  # None: not measured (counts as not met)
    #: a reference run's figure that puts this one in proportion (never changes ``met``)
    context: str = ""

    @property
    def status(self) -> str:
        """``met``, ``MISSED`` or ``NOT MEASURED``."""
        return {True: "met", False: "MISSED", None: "NOT MEASURED"}[self.met]


# ------------------------------------------------------------------------------ scenarios


def generated_scenario(sessions: int, panes_per_session: int) -> str:
    """The healthy scenario with a generated fleet (the simulator's ``[fleet.generate]``)."""
    return (
        f'description = "benchmark fleet {sessions} x {panes_per_session}"\n'
        'extends = "healthy"\n\n'
        "[fleet.generate]\n"
        f"sessions = {sessions}\n"
        f"panes_per_session = {panes_per_session}\n"
    )


def floor_module(tests: int) -> str:
    """A test module of one trivial test parametrized ``tests`` times."""
    return (
        "import pytest\n\n\n"
        f'@pytest.mark.parametrize("i", range({tests}))\n'
        "def test_trivial(i):\n"
        "    assert i >= 0\n"
    )


# ------------------------------------------------------------------------------ processes


def child_env() -> dict[str, str]:
    """The environment of every child: this checkout's code first, and byte code written (no
    ``PYTHONDONTWRITEBYTECODE``), so a warm-up run leaves the caches an installed package has."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def spawn_timed(
    argv: Sequence[str], cwd: Path, out: IO[bytes], peak_path: Path
) -> subprocess.Popen[bytes]:
    """Start ``argv`` under GNU time (its peak memory written to ``peak_path``), output and
    errors to ``out``, in a process group of its own: killed whole on a timeout, and Ctrl-C
    reaches this script only, which then stops the child itself."""
    timed = [TIME_BIN, "-f", "%M", "-o", str(peak_path), *argv] if TIME_BIN else list(argv)
    return subprocess.Popen(
        timed,
        cwd=cwd,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def run_measured(
    argv: Sequence[str], cwd: Path, timeout_s: float
) -> tuple[int | None, float, int | None, str]:
    """Run ``argv``; return (exit status or None on timeout, wall s, peak KiB or None, output).

    The peak is the ``ru_maxrss`` of the child and the descendants it reaped (their largest
    single process), as GNU time reports it (see :data:`PEAK_HOW`)."""
    out_path = cwd / ".bench-output.txt"
    peak_path = cwd / ".bench-peak.txt"
    # What was written and removed before (the warm-up's thousands of files) reaches the disk
    # first: else the measured run pays for it, creating its own files while the file system
    # commits the earlier ones, by a second or more and not the same each time.
    os.sync()
    with out_path.open("wb") as out:
        started = time.perf_counter()
        process = spawn_timed(argv, cwd, out, peak_path)
        status = _wait(process, timeout_s)
        wall = time.perf_counter() - started
    if status is None:
        _, _, usage = os.wait4(process.pid, 0)
        returncode = None
    else:
        returncode, usage = status
    peak_kib: int | None = usage.ru_maxrss
    if TIME_BIN:
        peak_kib = peak_from_time(peak_path.read_text() if peak_path.exists() else "")
        peak_path.unlink(missing_ok=True)
    output = out_path.read_bytes().decode("utf-8", "replace")
    out_path.unlink()
    return returncode, wall, peak_kib, output


def peak_from_time(text: str) -> int | None:
    """The ``%M`` figure (KiB) GNU time wrote: its last line (a line naming a non-zero exit
    status may come first); None when there is none."""
    lines = text.strip().splitlines()
    return int(lines[-1]) if lines and lines[-1].isdigit() else None


def _wait(
    process: subprocess.Popen[bytes], timeout_s: float
) -> tuple[int, resource.struct_rusage] | None:
    """Reap ``process`` within ``timeout_s``; past it, stop its process group and return None.
    Interrupted (Ctrl-C reaches this script only: the run has a session of its own) or
    terminated, stop the run before giving up."""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() <= deadline:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                process.returncode = os.waitstatus_to_exitcode(status)
                return process.returncode, usage
            time.sleep(0.02)
    except BaseException:  # Ctrl-C, or SIGTERM (see main)
        stop(process)
        raise
    stop(process)
    return None


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a run's (or the fleet's) process group: SIGINT first, so that pytest ends as on
    Ctrl-C and ``canarygate sim`` stops its daemons, then SIGTERM, then SIGKILL. The caller
    reaps it."""
    for sig, grace_s in ((signal.SIGINT, STOP_GRACE_S), (signal.SIGTERM, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                return
            time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def tail(output: str) -> str:
    """The end of a run's output, escaped (its text may come from anywhere)."""
    return visible(output[-_TAIL_CHARS:], keep_newlines=True)


# ------------------------------------------------------------------------------ the fleet


@dataclass
class FleetInfo:
    """What ``canarygate sim`` printed: each daemon's endpoint and the ``[evidence]`` table."""

    endpoints: dict[str, str]
    evidence: dict[str, str]


class FleetError(Exception):
    """The fleet did not start (it has been stopped); ``tail`` is its output, escaped."""

    def __init__(self, message: str, tail_text: str = "") -> None:
        super().__init__(message)
        self.tail = tail_text


@dataclass
class Fleet:
    """A running ``canarygate sim`` (in a process group of its own) and what it printed."""

    process: subprocess.Popen[bytes]
    output: Path
    peak_path: Path
    info: FleetInfo | None = None
    ready_s: float | None = None
    peak_kib: int | None = None


def fleet_argv(scenario: Path | str, phase: str) -> list[str]:
    """``canarygate sim`` serving ``scenario`` with ``phase``'s phase-dependent facts."""
    return [
        sys.executable,
        "-m",
        "pytest_canarygate",
        "sim",
        "--scenario",
        str(scenario),
        "--phase",
        phase,
    ]


def parse_fleet_output(text: str) -> FleetInfo | None:
    """The endpoints and ``[evidence]`` table ``canarygate sim`` printed, once its ready line is
    out; None before. ValueError when it is ready but named no daemon, or printed an evidence
    line that is not ``kind = "URI"``."""
    lines = text.splitlines()
    ready = [i for i, line in enumerate(lines) if line.startswith(_FLEET_READY)]
    if not ready:
        return None
    endpoints: dict[str, str] = {}
    evidence: dict[str, str] = {}
    in_evidence = False
    for line in lines[: ready[0]]:
        if line == "[evidence]":
            in_evidence = True
            continue
        if in_evidence:
            found = _FLEET_EVIDENCE_LINE.match(line)
            value = json.loads(found.group(2)) if found else None
            if found is None or not isinstance(value, str) or not value:
                raise ValueError(f"canarygate sim printed an evidence line {visible(line)!r}")
            evidence[found.group(1)] = value
        elif daemon := _FLEET_DAEMON_LINE.match(line):
            endpoints[daemon.group(1)] = daemon.group(2)
    if not endpoints:
        raise ValueError("canarygate sim is ready but printed no daemon endpoint")
    return FleetInfo(endpoints, evidence)


def config_text(migration_id: str, fleet: FleetInfo) -> str:
    """The run's ``canarygate.toml``: the fleet's daemons and its ``[evidence]`` table."""
    lines = [
        "# Written by bench/fleet_scaling.py for the fleet `canarygate sim` started.",
        "[migration]",
        f"id = {json.dumps(migration_id)}",
    ]
    for name, endpoint in fleet.endpoints.items():
        lines += ["", f"[daemons.{json.dumps(name)}]", f"endpoint = {json.dumps(endpoint)}"]
    if fleet.evidence:
        lines += ["", "[evidence]"]
        lines += [f"{json.dumps(kind)} = {json.dumps(uri)}" for kind, uri in fleet.evidence.items()]
    return "\n".join(lines) + "\n"


def make_signing_key(work: Path) -> tuple[Path, Path]:
    """A new Ed25519 key pair in ``work`` (private mode 0600): the run signs with it, verify
    trusts its public half. Returns (private, public)."""
    from pytest_canarygate.keys import default_public_path
    from pytest_canarygate.keys import generate_keypair

    private = work / KEY_PATH
    generate_keypair(private)
    return private, default_public_path(private)


def start_fleet(argv: Sequence[str], work: Path, timeout_s: float) -> Fleet:
    """Start ``argv`` (a ``canarygate sim``) in a process group of its own, output to a file
    in ``work``, and wait for its ready line. A fleet that exits, prints what cannot be read or
    is not ready within ``timeout_s`` (or an interrupt while waiting) is stopped first, then
    FleetError (or the interrupt) is raised."""
    output = work / ".fleet-output.txt"
    peak_path = work / ".fleet-peak.txt"
    with output.open("wb") as stream:
        started = time.perf_counter()
        process = spawn_timed(argv, work, stream, peak_path)
    fleet = Fleet(process, output, peak_path)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            text = output.read_bytes().decode("utf-8", "replace")
            try:
                fleet.info = parse_fleet_output(text)
            except ValueError as exc:
                raise FleetError(str(exc), tail(text)) from None
            if fleet.info is not None:
                fleet.ready_s = time.perf_counter() - started
                return fleet
            if process.poll() is not None:
                raise FleetError(f"canarygate sim exited {process.returncode}", tail(text))
            if time.monotonic() > deadline:
                raise FleetError(f"canarygate sim was not ready in {timeout_s:g} s", tail(text))
            time.sleep(0.02)
    except BaseException:
        stop_fleet(fleet)
        raise


def stop_fleet(fleet: Fleet) -> None:
    """Stop the fleet (SIGINT, as Ctrl-C would, then SIGTERM, then SIGKILL), reap it and read
    its peak memory. Idempotent."""
    if fleet.process.poll() is None:
        stop(fleet.process)
        fleet.process.wait()
    if TIME_BIN and fleet.peak_path.exists():
        fleet.peak_kib = peak_from_time(fleet.peak_path.read_text())


@contextlib.contextmanager
def running_fleet(argv: Sequence[str], work: Path, timeout_s: float) -> Iterator[Fleet]:
    """A started fleet (see :func:`start_fleet`), stopped when the block ends, however."""
    fleet = start_fleet(argv, work, timeout_s)
    try:
        yield fleet
    finally:
        stop_fleet(fleet)


def expected_gates(phase: str, sessions: int) -> int:
    """Gate instances the catalog of this checkout gives ``phase`` on a fleet of ``sessions``
    tmux sessions: each gate once, a per-session gate once per session."""
    from pytest_canarygate.catalog import load_catalogs

    catalog = load_catalogs([ROOT / "gates" / "catalog.toml"])
    return sum(sessions if gate.per else 1 for gate in catalog.gates_for(phase))


def warm_up(run: Run, argv: Sequence[str], work: Path, timeout_s: float, ok: Iterable[int]) -> bool:
    """One unmeasured run of ``argv`` in ``work``, so byte code caches exist for the measured
    one; False (the run's problem and tail set) when it did not end with a status in ``ok``."""
    returncode, run.warmup_s, _, output = run_measured(argv, work, timeout_s)
    if returncode is None or returncode not in tuple(ok):
        exited = "timed out" if returncode is None else f"exited {returncode}"
        run.problem = f"the warm-up run {exited}"
        run.tail = tail(output)
        return False
    return True


# ------------------------------------------------------------------------------ measurements


def measure_floor(
    phase: str,
    tests: int,
    work: Path,
    timeout_s: float,
    *,
    workers: int = 0,
    conftest: str | None = None,
    name: str = "",
) -> Run:
    """(a): plain pytest + allure-pytest over ``tests`` trivial tests; with ``workers``, under
    ``-n workers``; with ``conftest``, that ``conftest.py`` beside them (see
    :func:`reading_conftest`)."""
    mode = f" -n {workers}" if workers else ""
    run = Run(
        name=name or f"floor {phase}{mode}",
        kind="floor" if not (workers or conftest) else "reference",
        phase=phase,
        workers=workers,
        gates=tests,
        folder=str(work),
    )
    work.mkdir(parents=True)
    (work / "test_floor.py").write_text(floor_module(tests))
    if conftest is not None:
        (work / "conftest.py").write_text(conftest)
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:canarygate",
        "-p",
        "no:canarygate_agtmux",
        "-p",
        "no:cacheprovider",
        "-q",
        f"--alluredir={work / 'allure-results'}",
        *(["-n", str(workers)] if workers else []),
        "test_floor.py",
    ]
    warmed = warm_up(run, argv, work, timeout_s, ok=(0,))
    shutil.rmtree(work / "allure-results", ignore_errors=True)
    if not warmed:
        return run
    returncode, run.wall_s, run.peak_kib, output = run_measured(argv, work, timeout_s)
    run.returncode = returncode
    results = list((work / "allure-results").glob("*-result.json"))
    if returncode != 0:
        run.problem = "timed out" if returncode is None else f"pytest exited {returncode}"
    elif len(results) != tests:
        run.problem = f"allure wrote {len(results)} results for {tests} tests"
    run.completed = not run.problem
    run.tail = "" if run.completed else tail(output)
    run.verdict = "passed" if run.completed else "failed"
    return run


def answers_plan(phase: str, endpoints: Mapping[str, str]) -> dict[str, list[list[Any]]]:
    """``{socket path: [[method, params or None], ...]}``: each daemon method the catalog's
    ``phase`` gates need, once (no second reading, no bracket), with the pack's params."""
    from pytest_canarygate.agtmux.pack import METHOD_PARAMS
    from pytest_canarygate.catalog import load_catalogs
    from pytest_canarygate.catalog import needs_of
    from pytest_canarygate.observation import EVIDENCE_NEED

    catalog = load_catalogs([ROOT / "gates" / "catalog.toml"])
    plan = needs_of(catalog.gates_for(phase))
    plan.pop(EVIDENCE_NEED, None)
    calls: dict[str, list[list[Any]]] = {}
    for daemon, methods in plan.items():
        uri = endpoints[daemon]
        if not uri.startswith("unix://"):
            raise ValueError(f"daemon {daemon}: {uri!r} is not a unix:// endpoint")
        calls[uri.removeprefix("unix://")] = [
            [method, dict(METHOD_PARAMS[method]) if method in METHOD_PARAMS else None]
            for method in methods
        ]
    return calls


def reading_conftest(calls: Mapping[str, Sequence[Sequence[Any]]]) -> str:
    """A ``conftest.py`` that reads, before collection, each answer of ``calls`` (see
    :func:`answers_plan`) the plainest way there is: one JSON-RPC request per connection,
    the reply to EOF, ``json.loads``, a thread per daemon; no check, gate or seal. A daemon
    that cannot be reached is not read further (as a run does: it has nothing to decode); a
    reply without a result, or no answer read at all, ends the run with a usage error."""
    return f"""\
import json
import socket
import threading

import pytest

CALLS = json.loads({json.dumps(json.dumps(calls))})
ANSWERS = []
PROBLEMS = []


def _read(path, calls):
    for method, params in calls:
        request = {{"jsonrpc": "2.0", "id": 1, "method": method}}
        if params is not None:
            request["params"] = params
        with socket.socket(socket.AF_UNIX) as sock:
            try:
                sock.connect(path)
            except (FileNotFoundError, ConnectionRefusedError):
                return  # down: every other call would fail the same way
            sock.sendall(json.dumps(request).encode() + b"\\n")
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(1 << 20):
                chunks.append(chunk)
        reply = json.loads(b"".join(chunks))
        if "result" in reply:
            ANSWERS.append(reply["result"])
        else:
            PROBLEMS.append(f"{{path}} {{method}}: {{reply.get('error')}}")


def pytest_sessionstart(session):
    threads = [threading.Thread(target=_read, args=item) for item in CALLS.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if PROBLEMS or not ANSWERS:
        expected = sum(len(calls) for calls in CALLS.values())
        cause = PROBLEMS[0] if PROBLEMS else "no daemon could be reached"
        raise pytest.UsageError(f"read {{len(ANSWERS)}} answers of {{expected}}: {{cause}}")
"""


def measure_gates(
    phase: str,
    sessions: int,
    panes_per_session: int,
    workers: int,
    work: Path,
    *,
    timeout_s: float,
    then: Callable[[Run, FleetInfo], None] | None = None,
) -> Run:
    """(b) or (c): a phase judged over a simulated fleet started beforehand, then its bundle
    verified. The fleet's start is not in the measured time; it is stopped after the run.
    ``then(run, fleet)`` is called after a measured run that judged its gates, the fleet
    still running."""
    mode = f"-n {workers}" if workers else "serial"
    run = Run(
        name=f"{phase} {sessions}x{panes_per_session} {mode}",
        kind="gates",
        phase=phase,
        workers=workers,
        sessions=sessions,
        panes=sessions * panes_per_session,
        folder=str(work),
    )
    work.mkdir(parents=True)
    shutil.copytree(ROOT / "gates", work / "gates", ignore=shutil.ignore_patterns("__pycache__"))
    (work / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["gates"]\n')
    scenario = work / "fleet.toml"
    scenario.write_text(generated_scenario(sessions, panes_per_session))
    run.expected_gates = expected_gates(phase, sessions)
    private, public = make_signing_key(work)
    argv = [
        sys.executable,
        "-m",
        "pytest",
        f"--phase={phase}",
        f"--canarygate-key={private}",
        "-q",
        "-p",
        "no:cacheprovider",
        *(["-n", str(workers)] if workers else []),
    ]
    command = ["canarygate", "sim", "--scenario", scenario.name, "--phase", phase]
    run.fleet_command = shlex.join(command)
    fleet: Fleet | None = None
    warmed, returncode, output = False, None, ""
    try:
        with running_fleet(
            fleet_argv(scenario, phase), work, min(timeout_s, FLEET_START_TIMEOUT_S)
        ) as fleet:
            run.fleet_start_s = fleet.ready_s
            assert fleet.info is not None
            (work / "canarygate.toml").write_text(config_text(MIGRATION_ID, fleet.info))
            warmed = warm_up(run, argv, work, timeout_s, ok=(0, 1))
            shutil.rmtree(work / "reports", ignore_errors=True)  # the measured run's bundle alone
            if warmed:
                returncode, run.wall_s, run.peak_kib, output = run_measured(argv, work, timeout_s)
                if then is not None and returncode in (0, 1):
                    then(run, fleet.info)
    except FleetError as exc:
        run.problem = f"the fleet did not start: {exc}"
        run.tail = exc.tail
        return run
    finally:
        run.fleet_peak_kib = fleet.peak_kib if fleet is not None else None
    if not warmed:
        return run
    run.returncode = returncode
    bundles = [p for p in (work / "reports").glob(f"*/{phase}/*") if p.is_dir()]
    if returncode is None:
        run.problem = "timed out"
    elif returncode not in (0, 1):  # 1: gates judged, some not PASS; anything else: no verdict
        run.problem = f"pytest exited {returncode}"
    elif len(bundles) != 1:
        run.problem = f"{len(bundles)} bundles written, expected 1"
    if run.problem:
        run.tail = tail(output)
        return run
    [bundle] = bundles
    run.bundle = str(bundle)
    try:
        read_run_file(run, bundle)
        read_observation(run, bundle)
        run.bundle_bytes, run.bundle_files = bundle_size(bundle)
        run.bundle_parts = bundle_parts(bundle)
        run.seal_s = sealed_seconds(output)
        if run.seal_s is not None:
            run.seal_source = "the run's progress line"
        else:
            run.seal_s = reseal_seconds(bundle, work / "reseal")
            run.seal_source = "not reported by the run; a copy re-sealed by the bench"
        verify(run, bundle, public, timeout_s)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # a bundle the bench cannot read
        run.problem = f"reading the bundle: {type(exc).__name__}: {exc}"
    if not run.problem and run.gates != run.expected_gates:
        run.problem = (
            f"judged {run.gates:,} gate instances; the catalog gives {phase} "
            f"{run.expected_gates:,} on a fleet of {sessions:,} tmux sessions"
        )
    run.completed = not run.problem
    if not run.completed:
        run.tail = tail(output)
    return run


def read_run_file(run: Run, bundle: Path) -> None:
    """Gate instances, verdict and counts from the bundle's ``run.json``."""
    data = json.loads((bundle / "run.json").read_text())
    run.gates = len(data.get("gates") or [])
    run.verdict = visible(str(data.get("verdict")))
    run.counts = {str(k): int(v) for k, v in (data.get("counts") or {}).items()}


def load_observation(bundle: Path) -> dict[str, Any] | None:
    """The bundle's observation, from ``observation.json`` or ``observation.json.gz``."""
    plain = bundle / "observation" / "observation.json"
    packed = bundle / "observation" / "observation.json.gz"
    if plain.is_file():
        document = json.loads(plain.read_bytes())
    elif packed.is_file():
        with gzip.open(packed, "rb") as stream:
            document = json.loads(stream.read())
    else:
        return None
    return document if isinstance(document, dict) else None


def read_observation(run: Run, bundle: Path) -> None:
    """Daemon calls, provider reads, observation time and the slowest daemon's call time."""
    observation = load_observation(bundle)
    if observation is None:
        run.problem = "the bundle holds no observation"
        return
    daemons = observation.get("daemons") or {}
    per_daemon = {
        name: [call for call in daemon.get("calls") or [] if isinstance(call, dict)]
        for name, daemon in daemons.items()
        if isinstance(daemon, dict)
    }
    run.daemon_calls = sum(len(calls) for calls in per_daemon.values())
    run.provider_reads = len(observation.get("evidence") or {})
    run.observe_s = seconds_between(observation.get("started_at"), observation.get("finished_at"))
    call_seconds = {
        name: sum(float(call.get("elapsed_ms") or 0) for call in calls) / 1000
        for name, calls in per_daemon.items()
    }
    if call_seconds:
        slowest = max(call_seconds, key=lambda name: call_seconds[name])
        run.slowest_daemon = visible(str(slowest))
        run.slowest_daemon_s = call_seconds[slowest]


def seconds_between(started: Any, finished: Any) -> float | None:
    """Seconds from one RFC 3339 time to another, or None when either is missing."""
    if not (isinstance(started, str) and isinstance(finished, str)):
        return None
    start = datetime.fromisoformat(started.replace("Z", "+00:00"))
    end = datetime.fromisoformat(finished.replace("Z", "+00:00"))
    return (end - start).total_seconds()


def bundle_size(bundle: Path) -> tuple[int, int]:
    """Total bytes and number of files in ``bundle``."""
    sizes = [path.lstat().st_size for path in bundle.rglob("*") if path.is_file()]
    return sum(sizes), len(sizes)


def bundle_parts(bundle: Path) -> dict[str, int]:
    """Bytes under each top-level entry of ``bundle``, largest first."""
    parts: dict[str, int] = {}
    for path in bundle.rglob("*"):
        if path.is_file():
            top = path.relative_to(bundle).parts[0]
            parts[top] = parts.get(top, 0) + path.lstat().st_size
    return dict(sorted(parts.items(), key=lambda item: -item[1]))


def sealed_seconds(output: str) -> float | None:
    """Seconds of the run's ``canarygate: sealed ... in N s`` line, if it printed one."""
    found = _SEALED_LINE.findall(output)
    return float(found[-1]) if found else None


def reseal_seconds(bundle: Path, work: Path) -> float:
    """Time to seal a copy of ``bundle`` (envelope removed) with a fresh ephemeral key."""
    from pytest_canarygate.keys import ephemeral_signer
    from pytest_canarygate.signing import ENVELOPE_NAME
    from pytest_canarygate.signing import seal_bundle

    statement = json.loads((bundle / ENVELOPE_NAME).read_text())
    predicate = json.loads(base64.b64decode(statement["payload"]))["predicate"]
    copy = work / bundle.name
    shutil.copytree(bundle, copy)
    (copy / ENVELOPE_NAME).unlink()
    signer = ephemeral_signer()
    predicate["signer"] = {**predicate["signer"], "keyid": signer.public_key.keyid}
    started = time.perf_counter()
    seal_bundle(copy, predicate, signer)
    elapsed = time.perf_counter() - started
    shutil.rmtree(work)
    return elapsed


def verify(run: Run, bundle: Path, public: Path, timeout_s: float) -> None:
    """Time ``canarygate verify BUNDLE --key PUB`` with the public half of the run's key."""
    argv = [sys.executable, "-m", "pytest_canarygate", "verify", str(bundle), "--key", str(public)]
    returncode, run.verify_s, _, output = run_measured(argv, bundle.parents[3], timeout_s)
    if returncode != 0:
        run.problem = f"canarygate verify exited {returncode}: {visible(output[-500:])}"
        return
    run.verify_inproc_s = verify_in_process_seconds(bundle, public)


def verify_in_process_seconds(bundle: Path, public: Path) -> float:
    """Time :func:`~pytest_canarygate.verify.verify_bundle` alone, without the command's start
    (interpreter, imports, parser); a bundle that does not verify raises ValueError."""
    from pytest_canarygate.keys import load_public_key
    from pytest_canarygate.verify import verify_bundle

    key = load_public_key(public)
    started = time.perf_counter()
    result = verify_bundle(bundle, {key.keyid: key})
    elapsed = time.perf_counter() - started
    if not result.ok:
        raise ValueError(f"verify_bundle: {result.status}: {result.problems[:3]}")
    return elapsed


# ------------------------------------------------------------------------------ judging


@dataclass
class Results:
    """Every run of one invocation, by phase."""

    workers: int
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)
    floors: dict[str, Run] = field(default_factory=dict)
    serial: dict[str, Run] = field(default_factory=dict)
    parallel: dict[str, Run] = field(default_factory=dict)
    small: dict[str, Run] = field(default_factory=dict)
    #: references, not targets: the floor under ``-n workers``, and the floor after a plain
    #: read of the answers the phase's gates need (what no gate run can go below)
    floors_parallel: dict[str, Run] = field(default_factory=dict)
    floors_reading: dict[str, Run] = field(default_factory=dict)

    def _groups(self) -> tuple[dict[str, Run], ...]:
        return (
            self.floors,
            self.floors_parallel,
            self.floors_reading,
            self.serial,
            self.parallel,
            self.small,
        )

    def all_runs(self) -> list[Run]:
        """Every run, in the order printed."""
        groups = self._groups()
        return [group[phase] for phase in self.phases() for group in groups if phase in group]

    def phases(self) -> list[str]:
        """The phases run, in order."""
        return list(dict.fromkeys(phase for group in self._groups() for phase in group))

    def full_fleet(self) -> list[Run]:
        """The completed gate runs on the big fleet, serial and parallel."""
        return [r for r in (*self.serial.values(), *self.parallel.values()) if r.completed]


def ratio(run: Run | None, floor: Run | None) -> float | None:
    """``run``'s wall time over the floor's, when both completed."""
    if run is None or floor is None or not (run.completed and floor.completed):
        return None
    return run.wall_s / floor.wall_s if floor.wall_s > 0 else None


def at_most(value: float | None, limit: float) -> bool | None:
    """Whether ``value`` is within ``limit``; None when it was not measured."""
    return None if value is None else value <= limit


def fmt(value: float | None, digits: int = 2) -> str:
    """A figure with thousands separators, or ``-`` when it was not measured."""
    return "-" if value is None else f"{value:,.{digits}f}"


def floor_ratio_target(
    phase: str, serial: Run | None, floor: Run | None, reading: Run | None = None
) -> Target:
    """(b)/(a) within :data:`MAX_FLOOR_RATIO`; in proportion to ``reading``, the floor after a
    plain read of the answers the gates need, when it completed."""
    value = ratio(serial, floor)
    walls = f"{fmt(serial.wall_s if serial else None)} s / {fmt(floor.wall_s if floor else None)} s"
    context = ""
    if reading is not None and ratio(reading, floor) is not None:
        context = (
            f"reference: the floor after one plain read of the answers the gates need (socket "
            f"and json.loads; no check, gate or seal) took {fmt(reading.wall_s)} s, "
            f"{fmt(ratio(reading, floor))} x the floor; (b) is {fmt(ratio(serial, reading))} x it"
        )
    return Target(
        f"{phase}: (b) serial / (a) floor",
        f"<= {MAX_FLOOR_RATIO}",
        f"{fmt(value)} ({walls})",
        at_most(value, MAX_FLOOR_RATIO),
        context,
    )


def parallel_target(
    phase: str,
    serial: Run | None,
    parallel: Run | None,
    floor: Run | None,
    workers: int,
    floor_parallel: Run | None = None,
) -> Target:
    """(c) no slower than (b); in proportion to ``floor_parallel``, the floor under the same
    ``-n``, when it completed."""
    figure = (
        f"{fmt(parallel.wall_s if parallel else None)} s vs "
        f"{fmt(serial.wall_s if serial else None)} s; (c)/(a) {fmt(ratio(parallel, floor))}"
    )
    met = None
    if serial is not None and parallel is not None and serial.completed and parallel.completed:
        met = parallel.wall_s <= serial.wall_s
    context = ""
    if floor_parallel is not None and ratio(floor_parallel, floor) is not None:
        context = (
            f"reference: the floor itself under -n {workers} took {fmt(floor_parallel.wall_s)} s, "
            f"{fmt(ratio(floor_parallel, floor))} x its serial run; "
            f"(c) is {fmt(ratio(parallel, floor_parallel))} x it"
        )
    return Target(
        f"{phase}: (c) -n {workers} no slower than (b)", "(c) <= (b)", figure, met, context
    )


def flat_counts_target(phase: str, big: Run | None, small: Run | None) -> Target:
    """Daemon calls and provider reads the same on the big fleet as on the small one (which
    must have fewer gate instances, or the comparison shows nothing)."""
    name = f"{phase}: daemon calls and reads independent of the gates"
    if big is None or small is None or not (big.completed and small.completed):
        return Target(name, "equal on both fleets", "-", None)
    figure = (
        f"{big.daemon_calls} calls, {big.provider_reads} reads for {big.gates:,} gates; "
        f"{small.daemon_calls}, {small.provider_reads} for {small.gates:,}"
    )
    if big.gates == small.gates:
        figure += " (the same gate count on both fleets: nothing shown)"
        return Target(name, "equal on both fleets", figure, None)
    if big.daemon_calls is None:
        return Target(name, "equal on both fleets", figure, None)
    same = (big.daemon_calls, big.provider_reads) == (small.daemon_calls, small.provider_reads)
    return Target(name, "equal on both fleets", figure, same)


def observe_target(runs: Sequence[Run]) -> Target:
    """The slowest daemon's summed call time, on a fleet of at least the target's panes."""
    name = f"observing a {OBSERVE_TARGET_PANES:,}-pane daemon"
    measured = [r for r in runs if r.slowest_daemon_s is not None]
    if not measured:
        return Target(name, f"<= {MAX_OBSERVE_DAEMON_S} s", "-", None)
    worst = max(measured, key=lambda r: r.slowest_daemon_s or 0.0)
    figure = (
        f"{fmt(worst.slowest_daemon_s)} s ({worst.slowest_daemon}'s calls, "
        f"{worst.panes:,} panes, {worst.name})"
    )
    big_enough = worst.panes >= OBSERVE_TARGET_PANES
    met = at_most(worst.slowest_daemon_s, MAX_OBSERVE_DAEMON_S) if big_enough else None
    return Target(name, f"<= {MAX_OBSERVE_DAEMON_S} s", figure, met)


def seal_verify_target(runs: Sequence[Run]) -> Target:
    """Seal plus verify time of the worst bundle of at least the target's gates."""
    name = f"seal + verify of a {SEAL_VERIFY_TARGET_GATES:,}-gate bundle"
    measured = [r for r in runs if r.seal_s is not None and r.verify_s is not None]
    if not measured:
        return Target(name, f"<= {MAX_SEAL_VERIFY_S} s", "-", None)
    worst = max(measured, key=lambda r: (r.seal_s or 0.0) + (r.verify_s or 0.0))
    total = (worst.seal_s or 0.0) + (worst.verify_s or 0.0)
    figure = (
        f"{fmt(total)} s (seal {fmt(worst.seal_s)} + verify {fmt(worst.verify_s)}; "
        f"{worst.gates:,} gates, {worst.name})"
    )
    big_enough = worst.gates >= SEAL_VERIFY_TARGET_GATES
    return Target(
        name,
        f"<= {MAX_SEAL_VERIFY_S} s",
        figure,
        at_most(total, MAX_SEAL_VERIFY_S) if big_enough else None,
    )


def memory_target(runs: Sequence[Run]) -> Target:
    """The largest peak resident memory of the gate runs."""
    name = "peak memory (largest process of a run)"
    if not runs:
        return Target(name, f"<= {MAX_PEAK_MB:.0f} MB", "-", None)
    unmeasured = [r.name for r in runs if r.peak_kib is None]
    if unmeasured:
        return Target(name, f"<= {MAX_PEAK_MB:.0f} MB", f"no figure for {unmeasured}", None)
    worst = max(runs, key=lambda r: r.peak_kib or 0)
    figure = f"{fmt(worst.peak_mb, 1)} MB ({worst.name})"
    return Target(name, f"<= {MAX_PEAK_MB:.0f} MB", figure, at_most(worst.peak_mb, MAX_PEAK_MB))


def bundle_target(runs: Sequence[Run]) -> Target:
    """The largest bundle, of at least the target's gates."""
    name = f"bundle for {BUNDLE_TARGET_GATES:,} gates"
    measured = [r for r in runs if r.bundle_bytes is not None]
    if not measured:
        return Target(name, f"<= {MAX_BUNDLE_MB:.0f} MB", "-", None)
    worst = max(measured, key=lambda r: r.bundle_bytes or 0)
    size_mb = (worst.bundle_bytes or 0) / MB
    figure = (
        f"{fmt(size_mb)} MB in {worst.bundle_files:,} files ({worst.gates:,} gates, "
        f"{fmt(worst.bundle_kb_per_gate, 1)} kB per gate, {worst.name})"
    )
    big_enough = worst.gates >= BUNDLE_TARGET_GATES
    met = at_most(size_mb, MAX_BUNDLE_MB) if big_enough else None
    return Target(name, f"<= {MAX_BUNDLE_MB:.0f} MB", figure, met)


def targets(results: Results) -> list[Target]:
    """Every target of the issue, judged from the runs; a figure from a run that did not
    complete, or from a fleet smaller than the target names, is NOT MEASURED."""
    found: list[Target] = []
    for phase in results.phases():
        serial, floor = results.serial.get(phase), results.floors.get(phase)
        found.append(floor_ratio_target(phase, serial, floor, results.floors_reading.get(phase)))
        parallel = results.parallel.get(phase)
        found.append(
            parallel_target(
                phase,
                serial,
                parallel,
                floor,
                results.workers,
                results.floors_parallel.get(phase),
            )
        )
        found.append(flat_counts_target(phase, serial, results.small.get(phase)))
    runs = results.full_fleet()
    found += [
        observe_target(runs),
        seal_verify_target(runs),
        memory_target(runs),
        bundle_target(runs),
    ]
    return found


# ------------------------------------------------------------------------------ printing

COLUMNS: tuple[tuple[str, Callable[[Run, Run | None], str]], ...] = (
    ("run", lambda r, fl: r.name),
    ("verdict", lambda r, fl: r.verdict or "-"),
    ("gates", lambda r, fl: f"{r.gates:,}"),
    ("wall s", lambda r, fl: fmt(r.wall_s)),
    ("ms/gate", lambda r, fl: fmt(r.per_gate_ms)),
    ("/floor", lambda r, fl: fmt(ratio(r, fl)) if r.kind != "floor" else "-"),
    ("calls", lambda r, fl: "-" if r.daemon_calls is None else str(r.daemon_calls)),
    ("reads", lambda r, fl: "-" if r.provider_reads is None else str(r.provider_reads)),
    ("observe s", lambda r, fl: fmt(r.observe_s)),
    ("daemon s", lambda r, fl: fmt(r.slowest_daemon_s)),
    ("seal s", lambda r, fl: fmt(r.seal_s) + ("*" if r.seal_source.startswith("not") else "")),
    ("verify s", lambda r, fl: fmt(r.verify_s)),
    ("in-proc s", lambda r, fl: fmt(r.verify_inproc_s)),
    ("bundle MB", lambda r, fl: fmt(None if r.bundle_bytes is None else r.bundle_bytes / MB)),
    ("files", lambda r, fl: "-" if r.bundle_files is None else f"{r.bundle_files:,}"),
    ("kB/gate", lambda r, fl: fmt(r.bundle_kb_per_gate, 1)),
    ("peak MB", lambda r, fl: fmt(r.peak_mb, 1)),
    ("fleet s", lambda r, fl: fmt(r.fleet_start_s)),
    ("fleet MB", lambda r, fl: fmt(r.fleet_peak_mb, 1)),
)


def table(results: Results) -> str:
    """The runs as an aligned table, one row each."""
    rows = [[name for name, _ in COLUMNS]]
    for run in results.all_runs():
        rows.append([cell(run, results.floors.get(run.phase)) for _, cell in COLUMNS])
        if not run.completed:
            rows[-1][1] = "DID NOT COMPLETE"
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(
            text.ljust(width) if i == 0 else text.rjust(width)
            for i, (text, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def target_lines(found: Iterable[Target]) -> list[str]:
    """One line per target: its name, figure, target and status."""
    lines = []
    for t in found:
        lines.append(f"target {t.name}: {t.figure}; target {t.target}: {t.status}")
        if t.context:
            lines.append(f"  {t.context}")
    return lines


def report(results: Results, found: Sequence[Target]) -> str:
    """The whole printed report: how the runs were made, table, notes, target lines, tails of
    failed runs."""
    commands = ", ".join(
        dict.fromkeys(r.fleet_command for r in results.all_runs() if r.fleet_command)
    )
    lines = [
        "every run measured warm: the children run without PYTHONDONTWRITEBYTECODE, and each "
        "measured run (floor and gates) follows one unmeasured warm-up run of the same command "
        "in the same folder",
        "every gates run judges a fleet already running: started before it, outside its "
        f"measured time, with `{commands or '-'}`; the run reads the endpoints and [evidence] "
        "it printed from its canarygate.toml and signs with a key (mode 0600) in its folder; "
        "the fleet is stopped after the run",
        "",
        table(results),
        "",
    ]
    load = ", ".join(f"{x:.1f}" for x in results.load_average)
    lines += [
        f"load average at the end: {load} on {os.cpu_count()} cores (other work on the machine "
        "slows every figure)",
        "seal s: from the run's 'canarygate: sealed' line; with *: the run printed none (a "
        "stage under a second prints none), so a copy of its bundle was re-sealed here",
        "verify s: the canarygate verify command (start, imports and all); in-proc s: "
        "verify_bundle alone, in this process",
        f"peak MB: {PEAK_HOW}: the largest single process of the run (the pytest controller "
        "or an xdist worker; the fleet is not part of the run)",
        "fleet s: from starting canarygate sim to its ready line (not in wall s); fleet MB: "
        "the fleet's largest process (canarygate sim or a simulated daemon; a serial run's "
        "fleet also served the floor+answers reference)",
        "daemon s: summed elapsed_ms of the calls to the slowest daemon; observe s: the "
        "observation's started_at to finished_at",
        "",
        *target_lines(found),
    ]
    biggest = max(results.full_fleet(), key=lambda r: r.bundle_bytes or 0, default=None)
    if biggest is not None and biggest.bundle_parts:
        parts = ", ".join(
            f"{visible(name)} {size / MB:,.2f} MB" for name, size in biggest.bundle_parts.items()
        )
        lines += ["", f"largest bundle ({biggest.name}) by entry: {parts}"]
    for run in results.all_runs():
        if not run.completed:
            lines += ["", f"{run.name} did not complete: {visible(run.problem)}", run.tail]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=1000, help="tmux sessions of the fleet")
    parser.add_argument("--panes-per-session", type=int, default=10)
    parser.add_argument(
        "--small-sessions",
        type=int,
        default=100,
        help="sessions of the smaller fleet that shows calls and reads stay flat",
    )
    parser.add_argument("--phases", nargs="+", default=["alpha", "canary"])
    parser.add_argument("--workers", type=int, default=2, help="xdist workers of run (c)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    parser.add_argument("--json", metavar="FILE", help="write every figure as JSON to FILE")
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds before a run is killed"
    )
    args = parser.parse_args(argv)
    if min(args.sessions, args.panes_per_session, args.small_sessions, args.workers) < 1:
        parser.error("--sessions, --panes-per-session, --small-sessions and --workers: at least 1")
    return args


def note(message: str) -> None:
    """A line of progress on stderr, while the runs go."""
    print(f"fleet_scaling: {message}", file=sys.stderr, flush=True)


def measure_all(args: argparse.Namespace, root: Path) -> Results:
    """Run (b), (c), (a), the references and the smaller fleet for every phase."""
    results = Results(workers=args.workers)
    options = {"timeout_s": args.timeout}
    pps = args.panes_per_session

    def measured(group: dict[str, Run], run: Run) -> None:
        group[run.phase] = run
        note(f"{run.name}: {run.wall_s:.1f} s" + ("" if run.completed else " (did not complete)"))

    for phase in args.phases:

        def reading_floor(run: Run, fleet: FleetInfo, phase: str = phase) -> None:
            # While (b)'s fleet still runs: as many trivial tests as (b) must judge.
            name = f"floor+answers {phase}"
            try:
                conftest = reading_conftest(answers_plan(phase, fleet.endpoints))
                reference = measure_floor(
                    phase,
                    run.expected_gates or 1,
                    root / f"{phase}-floor-reading",
                    args.timeout,
                    conftest=conftest,
                    name=name,
                )
            except Exception as exc:  # a reference never costs (b) its figures
                reference = Run(name=name, kind="reference", phase=phase)
                reference.problem = f"no plain read of the fleet: {type(exc).__name__}: {exc}"
            measured(results.floors_reading, reference)

        measured(
            results.serial,
            measure_gates(
                phase,
                args.sessions,
                pps,
                0,
                root / f"{phase}-n0",
                then=reading_floor,
                **options,
            ),
        )
        measured(
            results.parallel,
            measure_gates(
                phase,
                args.sessions,
                pps,
                args.workers,
                root / f"{phase}-n{args.workers}",
                **options,
            ),
        )
        gates = results.serial[phase].gates or results.parallel[phase].gates
        if gates:
            measured(
                results.floors, measure_floor(phase, gates, root / f"{phase}-floor", args.timeout)
            )
            measured(
                results.floors_parallel,
                measure_floor(
                    phase,
                    gates,
                    root / f"{phase}-floor-n{args.workers}",
                    args.timeout,
                    workers=args.workers,
                ),
            )
        measured(
            results.small,
            measure_gates(phase, args.small_sessions, pps, 0, root / f"{phase}-small", **options),
        )
    return results


def exit_status(results: Results) -> int:
    """0 when every run but the references completed, else 1."""
    judged = [r for r in results.all_runs() if r.kind != "reference"]
    return 0 if all(r.completed for r in judged) else 1


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every measurement, print the report; 0 when every run but the references
    completed, else 1."""
    args = parse_args(argv)
    # A shell starting this script in the background ignores SIGINT, and an ignored signal stays
    # ignored across exec: a handler here gives the runs back the default, so SIGINT stops them.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # SIGTERM ends this script as Ctrl-C does, through the code that stops a run and its fleet.
    signal.signal(signal.SIGTERM, _terminated)
    root = Path(tempfile.mkdtemp(prefix="cg-fleet-"))
    try:
        results = measure_all(args, root)
    finally:
        if args.keep:
            note(f"kept the runs in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    results.load_average = os.getloadavg()
    found = targets(results)
    print(report(results, found))
    if args.json:
        document = {
            "runs": [
                {
                    **asdict(r),
                    "per_gate_ms": r.per_gate_ms,
                    "peak_mb": r.peak_mb,
                    "fleet_peak_mb": r.fleet_peak_mb,
                }
                for r in results.all_runs()
            ],
            "targets": [{**asdict(t), "status": t.status} for t in found],
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return exit_status(results)


if __name__ == "__main__":
    raise SystemExit(main())
