"""A serial run collects its gates while the daemons are read: a phase with no gate per tmux
session does not wait for any reading to collect; one with such a gate waits for the first
readings, which its instances are made from. Under xdist the controller reads everything
before any worker collects.

The daemon here is a real process on a real socket (a test double: recorded replies) that
holds each reply until the run has collected (a flag file its conftest writes), or until a
given time has passed, and logs whether the run had collected when it answered.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gate_repo import only_run
from gate_repo import write_gates
from rpc_servers import SAMPLES
from rpc_servers import SOCKET_NAME
from rpc_servers import short_tempdir

#: Serves daemon.info and list_panes from recorded replies. The n-th request (from 0) is held
#: until FLAGS/collected exists or HOLDS[n] seconds passed (the last hold serves the rest); each
#: reply is logged with whether the run had started and ended collecting. Stops on stdin EOF.
HOLDING_DAEMON = r"""
import json, os, socket, sys, threading, time
sock_path, samples, flags, holds, log = sys.argv[1:6]
holds = [float(h) for h in holds.split(",")]
collecting, collected = os.path.join(flags, "collecting"), os.path.join(flags, "collected")
replies = {
    m: json.load(open(os.path.join(samples, m + ".json"))) for m in ("daemon.info", "list_panes")
}
lock = threading.Lock()
count = [0]
server = socket.socket(socket.AF_UNIX)
server.bind(sock_path)
os.chmod(sock_path, 0o600)
server.listen(16)

def serve(conn):
    with conn:
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        request = json.loads(data)
        with lock:
            hold_s = holds[min(count[0], len(holds) - 1)]
            count[0] += 1
        deadline = time.monotonic() + hold_s
        while not os.path.exists(collected) and time.monotonic() < deadline:
            time.sleep(0.01)
        method = request.get("method")
        unknown = {"error": {"code": -32601, "message": "method not found"}}
        reply = dict(replies.get(method) or unknown)
        reply.update(jsonrpc="2.0", id=request.get("id"))
        state = [method, os.path.exists(collecting), os.path.exists(collected)]
        with open(log, "a") as out:
            out.write(json.dumps(state) + "\n")
        conn.sendall(json.dumps(reply, sort_keys=True, separators=(",", ":")).encode() + b"\n")

def accept():
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()

threading.Thread(target=accept, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""

#: Writes FLAGS/collecting when collection starts, FLAGS/collected once it is over.
FLAG_CONFTEST = """
from pathlib import Path

def pytest_collection(session):
    Path({flags!r}, "collecting").touch()

def pytest_collection_finish(session):
    Path({flags!r}, "collected").touch()
"""

CATALOG = (
    '[runbook]\ntitle = "test"\ndocument = "runbook.md"\n'
    'phases = ["alpha", "canary", "gradual", "cutover", "rollback"]\n'
    'read_only_methods = ["list_*", "*_changed", "latency_status", "daemon.info", "ops.*"]\n'
    '[[item]]\nid = "A-1"\nsection = "S"\ntext = "a check"\nkind = "step"\n'
    'phase = "alpha"\nstage = "entry"\n'
    '[[gate]]\nid = "info.gate"\nitem = "A-1"\ntitle = "info"\nneeds = ["v5:daemon.info"]\n'
)
PER_SESSION_GATE = (
    '[[gate]]\nid = "panes.gate"\nitem = "A-1"\ntitle = "panes"\n'
    'per = "agtmux_tmux_session"\nneeds = ["v5:list_panes"]\n'
)
GATES = (
    "from pytest_canarygate import gate\n\n"
    "@gate('info.gate')\ndef test_info(canarygate_observed):\n"
    "    assert canarygate_observed is not None\n"
)
PER_SESSION_TEST = (
    "\n@gate('panes.gate')\ndef test_panes(canarygate_observed, agtmux_tmux_session):\n"
    "    assert agtmux_tmux_session\n"
)


class HoldingDaemon:
    """The holding daemon, started on a socket of its own; its flags in ``flags``."""

    def __init__(self, flags: Path, holds: str) -> None:
        self.folder = short_tempdir()
        self.socket = self.folder / SOCKET_NAME
        self.flags = flags
        self.log = flags / "replies.log"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                HOLDING_DAEMON,
                *map(str, (self.socket, SAMPLES, flags, holds, self.log)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert self.process.stdout is not None
            assert self.process.stdout.readline() == b"ready\n"
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.process.stdout.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    def replies(self) -> list[tuple[str, bool, bool]]:
        """(method, collecting had started, collecting had ended) per reply, in order."""
        return [tuple(json.loads(line)) for line in self.log.read_text().splitlines()]


@pytest.fixture
def holding_daemon(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HoldingDaemon]:
    daemon = HoldingDaemon(tmp_path, request.param)
    yield daemon
    daemon.stop()


def _repo(pytester: pytest.Pytester, daemon: HoldingDaemon, per_session: bool) -> None:
    catalog = CATALOG + (PER_SESSION_GATE if per_session else "")
    write_gates(pytester, catalog, GATES + (PER_SESSION_TEST if per_session else ""))
    pytester.makeconftest(FLAG_CONFTEST.format(flags=str(daemon.flags)))
    endpoint = f"unix://{daemon.socket}"
    (pytester.path / "canarygate.toml").write_text(
        f'[migration]\nid = "collect-test"\n[daemons.v4]\nendpoint = "{endpoint}"\n'
        f'[daemons.v5]\nendpoint = "{endpoint}"\n'
        "[timeouts]\nconnect_s = 5.0\nread_s = 60.0\n"
    )


@pytest.mark.parametrize("holding_daemon", ["30"], indirect=True)
def test_a_phase_without_per_session_gates_collects_before_any_reading(
    pytester: pytest.Pytester, holding_daemon: HoldingDaemon
) -> None:
    _repo(pytester, holding_daemon, per_session=False)
    result = pytester.runpytest_subprocess("--phase=alpha")
    # every reply was held until collection had ended: collection never waited for one
    assert holding_daemon.replies() == [
        ("daemon.info", True, True),
        ("daemon.info", True, True),  # the bracket's last reading
    ]
    assert result.ret == 0, result.stdout.str()
    _, run = only_run(pytester.path)
    assert [(g["gate"], g["verdict"]) for g in run["gates"]] == [("info.gate", "PASS")]


@pytest.mark.parametrize("holding_daemon", ["1.5,1.5,30"], indirect=True)
def test_a_phase_with_a_per_session_gate_collects_from_the_first_readings(
    pytester: pytest.Pytester, holding_daemon: HoldingDaemon
) -> None:
    _repo(pytester, holding_daemon, per_session=True)
    result = pytester.runpytest_subprocess("--phase=alpha")
    # the first readings were answered before collection started, the bracket's last one is
    # held until it ended
    assert holding_daemon.replies() == [
        ("daemon.info", False, False),
        ("list_panes", False, False),
        ("daemon.info", True, True),
    ]
    _, run = only_run(pytester.path)
    per_session = sorted(g["param"] for g in run["gates"] if g["gate"] == "panes.gate")
    assert per_session == ["session-alpha", "session-beta"], result.stdout.str()


@pytest.mark.parametrize("holding_daemon", ["1.5"], indirect=True)
def test_under_xdist_the_daemons_are_read_before_the_workers_collect(
    pytester: pytest.Pytester, holding_daemon: HoldingDaemon
) -> None:
    """Workers judge the observation the controller wrote: it is whole before they start."""
    _repo(pytester, holding_daemon, per_session=False)
    result = pytester.runpytest_subprocess("--phase=alpha", "-n", "2")
    assert [reply[2] for reply in holding_daemon.replies()] == [False, False]
    assert (holding_daemon.flags / "collected").exists()  # a worker collected, afterwards
    assert result.ret == 0, result.stdout.str()
    _, run = only_run(pytester.path)
    assert [(g["gate"], g["verdict"]) for g in run["gates"]] == [("info.gate", "PASS")]
