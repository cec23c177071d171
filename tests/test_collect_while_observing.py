"""A serial run collects its gates while the daemons are read: a phase with no gate per tmux
session does not wait for any reading to collect; one with such a gate waits for the first
readings, which its instances are made from. Under xdist the controller reads everything
before any worker collects.

The daemon here is a test server on a real socket (recorded replies), answering the run's own
process, that holds each reply until the run has collected (a flag file its conftest writes),
or until a given time has passed, and logs whether the run had collected when it answered.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path

import pytest
from gate_repo import only_run
from gate_repo import write_gates
from rpc_servers import Conversation
from rpc_servers import RpcTestServer
from rpc_servers import daemon_line
from rpc_servers import load_sample

METHOD_NOT_FOUND = {"jsonrpc": "2.0", "error": {"code": -32601, "message": "method not found"}}

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
    """A test server answering daemon.info and list_panes with recorded replies. The n-th
    request (from 0) is held until ``flags/collected`` exists or ``holds[n]`` seconds passed
    (the last hold serves the rest); each reply is logged with whether the run had started
    and ended collecting."""

    def __init__(self, flags: Path, holds: Sequence[float]) -> None:
        self.flags = flags
        self.holds = holds
        self.samples = {m: load_sample(f"{m}.json") for m in ("daemon.info", "list_panes")}
        self.log: list[tuple[str, bool, bool]] = []
        self._count = itertools.count()
        self.server = RpcTestServer(self._answer)
        self.socket = self.server.path

    def _answer(self, conv: Conversation) -> None:
        conv.read_request()
        hold_s = self.holds[min(next(self._count), len(self.holds) - 1)]
        collecting, collected = self.flags / "collecting", self.flags / "collected"
        deadline = time.monotonic() + hold_s
        while not collected.exists() and time.monotonic() < deadline and not conv.stop.is_set():
            time.sleep(0.01)
        method = conv.request_method()
        reply = dict(self.samples.get(method, METHOD_NOT_FOUND), id=conv.request_id())
        self.log.append((method, collecting.exists(), collected.exists()))
        conv.send(daemon_line(reply))

    def replies(self) -> list[tuple[str, bool, bool]]:
        """(method, collecting had started, collecting had ended) per reply, in order."""
        return list(self.log)


@pytest.fixture
def holding_daemon(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HoldingDaemon]:
    daemon = HoldingDaemon(tmp_path, request.param)
    with daemon.server:
        yield daemon


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


@pytest.mark.parametrize("holding_daemon", [(30.0,)], indirect=True)
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


@pytest.mark.parametrize("holding_daemon", [(1.5, 1.5, 30.0)], indirect=True)
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


@pytest.mark.parametrize("holding_daemon", [(1.5,)], indirect=True)
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
