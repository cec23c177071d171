"""The observation: one reading per method per daemon, failures kept, gates fail closed."""

from __future__ import annotations

import gzip
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pytest_canarygate.agtmux.pack import BRACKET_METHOD
from pytest_canarygate.agtmux.pack import METHOD_PARAMS
from pytest_canarygate.agtmux.pack import active_tmux_sessions
from pytest_canarygate.agtmux.protocol import agent_session_keys
from pytest_canarygate.agtmux.protocol import diff_projections
from pytest_canarygate.agtmux.protocol import panes
from pytest_canarygate.agtmux.protocol import signature_problems
from pytest_canarygate.agtmux.settings import ParityConfig
from pytest_canarygate.allure_evidence import evidence_text
from pytest_canarygate.observation import LEGACY_OBSERVATION_FILE
from pytest_canarygate.observation import OBSERVATION_FILE
from pytest_canarygate.observation import CallRecord
from pytest_canarygate.observation import CurrentGateEvidence
from pytest_canarygate.observation import DaemonObservation
from pytest_canarygate.observation import EvidenceReading
from pytest_canarygate.observation import GateEvidence
from pytest_canarygate.observation import Observation
from pytest_canarygate.observation import ObservedView
from pytest_canarygate.observation import observation_path
from pytest_canarygate.observation import observe
from pytest_canarygate.observation import start_observing
from pytest_canarygate.verdicts import Unobservable

SAMPLES = Path(__file__).parent / "data" / "agtmux-samples"


class CountingDaemon:
    """A real Unix-socket JSON-RPC server answering from the samples, counting every request."""

    def __init__(self, answers: dict[str, object], *, compact: bool = False) -> None:
        #: Answer as the daemon does (keys sorted, no spaces: the id leads), else json.dumps's way.
        self.compact = compact
        self.dir = tempfile.mkdtemp(prefix="cg-obs-")
        self.path = os.path.join(self.dir, "agtmuxd.sock")
        self.answers = answers
        self.requests: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"unix://{self.path}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                request = json.loads(data)
                self.requests.append(request["method"])
                answer = self.answers.get(request["method"])
                if answer is None:
                    reply = {"error": {"code": -32601, "message": "method not found"}}
                elif answer == "garbage":
                    conn.sendall(b"not json\n")
                    continue
                else:
                    reply = {"result": answer}
                reply.update(jsonrpc="2.0", id=request["id"])
                if self.compact:
                    line = json.dumps(reply, sort_keys=True, separators=(",", ":"))
                else:
                    line = json.dumps(reply)
                conn.sendall(line.encode() + b"\n")

    def close(self) -> None:
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


def sample(name: str) -> object:
    return json.loads((SAMPLES / f"{name}.json").read_text())["result"]


@pytest.fixture
def daemon() -> Iterator[CountingDaemon]:
    server = CountingDaemon(
        {
            "daemon.info": sample("daemon.info"),
            "list_panes": sample("list_panes"),
            "list_sessions": sample("list_sessions"),
            "summary_changed": sample("summary_changed"),
        }
    )
    yield server
    server.close()


def observing_options(interval_s: float = 0.01, read_timeout: float = 2.0) -> dict[str, Any]:
    """What every test observes with, but the interval and the read timeout."""
    return {
        "phase": "alpha",
        "target": {"kind": "live"},
        "connect_timeout": 1.0,
        "read_timeout": read_timeout,
        "interval_s": interval_s,
        "method_params": METHOD_PARAMS,
        "bracket_method": BRACKET_METHOD,
    }


def run_observe(endpoints: dict[str, str], plan: dict[str, dict[str, int]]) -> Observation:
    return observe(endpoints, plan, **observing_options())


def test_each_method_read_once_plus_bracketing_daemon_info(daemon: CountingDaemon) -> None:
    plan = {"v5": {"list_panes": 1, "summary_changed": 2, "daemon.info": 1}}
    obs = run_observe({"v5": daemon.endpoint}, plan)
    assert sorted(daemon.requests) == sorted(
        ["daemon.info", "list_panes", "summary_changed", "summary_changed", "daemon.info"]
    )
    assert [c.reading for c in obs.daemons["v5"].readings("summary_changed")] == [1, 2]
    assert active_tmux_sessions(obs) == ["session-alpha", "session-beta"]


class SlowAnswers(dict[str, object]):
    """A daemon's answers, each taking a while to come."""

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        time.sleep(0.1)
        return super().get(key, default)


def test_a_records_result_size_is_its_size_in_the_observation_file(tmp_path: Path) -> None:
    answer = {"z": "\u00e9t\u00e9", "a": [1, 2.5, None, True], "m": {"k": "v"}}
    call = CallRecord("v5", "unix:///s", "list_panes", 1, None, "T1", 1.0, answer)
    fresh = CallRecord("v5", "unix:///s", "list_panes", 1, None, "T1", 1.0, answer)
    obs = Observation(
        "alpha", {"kind": "live"}, "T0", "T3", {"v5": DaemonObservation("v5", "unix:///s", [call])}
    )
    written = json.loads(gzip.decompress(obs.write(tmp_path).read_bytes()))
    [on_disk] = written["daemons"]["v5"]["calls"]
    text = json.dumps(on_disk["result"], sort_keys=True, separators=(",", ":"))
    assert call.result_bytes == len(text) == fresh.result_bytes  # primed or computed alike


def test_each_method_is_read_again_interval_after_its_own_first_reading() -> None:
    """The pause before a method's second reading counts the time the readings in between
    took; each method's two readings still start ``interval_s`` apart, never less."""
    answers = {name: sample(name) for name in ("daemon.info", "list_panes", "list_sessions")}
    server = CountingDaemon(SlowAnswers(answers))
    try:
        obs = observe(
            {"v5": server.endpoint},
            {"v5": {"list_panes": 2, "list_sessions": 2, "daemon.info": 1}},
            **observing_options(interval_s=0.35),
        )
    finally:
        server.close()
    calls = obs.daemons["v5"].calls
    assert all(c.ok for c in calls)
    assert [c.method for c in calls] == [
        "daemon.info",
        "list_panes",
        "list_sessions",
        "list_panes",
        "list_sessions",
        "daemon.info",
    ]

    def started(method: str, reading: int) -> datetime:
        [call] = [c for c in calls if (c.method, c.reading) == (method, reading)]
        return datetime.fromisoformat(call.started_at.replace("Z", "+00:00"))

    for method in ("list_panes", "list_sessions", "daemon.info"):
        # started_at is kept to the millisecond
        assert started(method, 2) - started(method, 1) >= timedelta(seconds=0.35 - 0.001)


class HeldAnswers(dict[str, object]):
    """A daemon's answers; every request for ``held`` after the first waits for ``go``."""

    def __init__(self, answers: dict[str, object], held: str) -> None:
        super().__init__(answers)
        self.held = held
        self.asked = 0
        self.go = threading.Event()

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        if key == self.held:
            self.asked += 1
            if self.asked > 1:
                self.go.wait(30)
        return super().get(key, default)


def returned_within(seconds: float, work: Callable[[], object]) -> object:
    """``work()`` run in a thread; fails when it has not returned after ``seconds`` (a guard
    against hanging the suite, not a measurement). What ``work`` raised is raised here."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(("value", work()))
        except BaseException as exc:
            outcome.append(("raised", exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"did not return within {seconds} s"
    kind, value = outcome[0]  # type: ignore[misc]
    if kind == "raised":
        raise value  # type: ignore[misc]
    return value


def test_the_first_readings_are_there_while_the_later_ones_wait() -> None:
    """A serial run parametrizes its gates from the first readings while the second ones are
    still to come; the whole observation then holds those very records."""
    answers = HeldAnswers(
        {name: sample(name) for name in ("daemon.info", "list_panes", "list_sessions")},
        held="list_panes",
    )
    server = CountingDaemon(answers)
    try:
        observing = start_observing(
            {"v5": server.endpoint},
            {"v5": {"list_panes": 2, "list_sessions": 1, "daemon.info": 1}},
            **observing_options(read_timeout=5.0),
        )
        # the second list_panes cannot be answered before `go`: this returns without it
        first = returned_within(30, observing.first_readings)
        assert isinstance(first, Observation)
        assert not answers.go.is_set()
        calls = first.daemons["v5"].calls
        assert [(c.method, c.reading) for c in calls] == [
            ("daemon.info", 1),
            ("list_panes", 1),
            ("list_sessions", 1),
        ]
        assert all(c.ok for c in calls)
        assert first.evidence == {}
        assert active_tmux_sessions(first) == ["session-alpha", "session-beta"]
        answers.go.set()
        whole = returned_within(30, observing.result)
    finally:
        answers.go.set()
        server.close()
    assert isinstance(whole, Observation)
    assert [(c.method, c.reading) for c in whole.daemons["v5"].calls] == [
        ("daemon.info", 1),
        ("list_panes", 1),
        ("list_sessions", 1),
        ("list_panes", 2),
        ("daemon.info", 2),
    ]
    assert all(a is b for a, b in zip(calls, whole.daemons["v5"].calls[:3], strict=True))
    assert whole.first_round().daemons["v5"].calls == calls
    assert whole.started_at == first.started_at


def test_a_failure_while_observing_reaches_whoever_waits(
    daemon: CountingDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Taking the observation broke (a bug, say): neither the first readings nor the whole
    observation is waited for in vain; each raises what broke."""
    import pytest_canarygate.observation as observation_module

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("reading broke")

    monkeypatch.setattr(observation_module, "_observe_daemon", broken)
    observing = start_observing(
        {"v5": daemon.endpoint}, {"v5": {"list_panes": 2}}, **observing_options()
    )
    with pytest.raises(RuntimeError, match="reading broke"):
        returned_within(30, observing.first_readings)
    with pytest.raises(RuntimeError, match="reading broke"):
        returned_within(30, observing.result)


def test_first_round_keeps_each_daemons_first_readings() -> None:
    def call(method: str, reading: int, result: object) -> CallRecord:
        return CallRecord("v5", "unix:///s", method, reading, None, "T1", 1.0, result)

    calls = [call("m", 1, "a"), call("n", 1, "b"), call("m", 2, "c"), call("n", 3, "d")]
    evidence = {"alerts": EvidenceReading("alerts", "alerts", "file:///a", "T1", 1.0, {})}
    obs = Observation(
        "alpha",
        {"kind": "live"},
        "T0",
        "T3",
        {"v5": DaemonObservation("v5", "unix:///s", calls)},
        evidence,
        12.0,
    )
    first = obs.first_round()
    assert [c.result for c in first.daemons["v5"].calls] == ["a", "b"]
    assert first.daemons["v5"].calls[0] is calls[0]
    # provider evidence is read after the first readings: a serial run has none of it yet
    assert (first.evidence, first.clock_skew_s, first.started_at) == ({}, 12.0, "T0")
    assert obs.evidence == evidence  # untouched
    assert obs.first_round() is first  # made once
    assert first.first_round() is first  # nothing later to leave out
    assert [c.result for c in obs.daemons["v5"].calls] == ["a", "b", "c", "d"]  # untouched


def test_replies_read_live_are_kept_until_written_and_reread_alike(tmp_path: Path) -> None:
    """Each reply is kept as it came until the observation is written (then dropped: it is as
    large as the answer); a second reading the client took without decoding (the same text but
    its id) is written as its own reply, and reads back as what the gates judged."""
    from pytest_canarygate.observation import _REPLY

    compact = CountingDaemon({"summary_changed": sample("summary_changed")}, compact=True)
    try:
        obs = run_observe({"v5": compact.endpoint}, {"v5": {"summary_changed": 2}})
    finally:
        compact.close()
    calls = obs.daemons["v5"].calls
    first, second = obs.daemons["v5"].readings("summary_changed")
    assert first.result is second.result  # the second one taken without decoding it
    assert first.response is not None
    assert second.response is not None
    assert first.response["id"] != second.response["id"]
    assert [c.method for c in calls if not c.ok] == ["daemon.info", "daemon.info"]  # not served
    assert all(_REPLY in c.__dict__ for c in calls if c.ok)
    text = gzip.decompress(obs.write(tmp_path).read_bytes()).decode()
    assert not [c for c in calls if _REPLY in c.__dict__]
    for call in (first, second):
        assert call.response is not None
        sent = json.dumps(call.response, sort_keys=True, separators=(",", ":"))
        assert f'"reply":{sent},"reply_bytes":{len(sent)}' in text
    loaded = Observation.load(tmp_path / OBSERVATION_FILE)
    assert [(c.result, c.response, c.reply_bytes) for c in loaded.daemons["v5"].calls] == [
        (c.result, c.response, c.reply_bytes) for c in calls
    ]


def test_an_answer_read_again_as_the_same_text_is_a_reading_of_its_own() -> None:
    server = CountingDaemon(
        {"daemon.info": sample("daemon.info"), "list_panes": sample("list_panes")}, compact=True
    )
    try:
        obs = run_observe({"v5": server.endpoint}, {"v5": {"list_panes": 3, "daemon.info": 1}})
    finally:
        server.close()
    assert server.requests.count("list_panes") == 3
    first, second, third = obs.daemons["v5"].readings("list_panes")
    assert [first.reading, second.reading, third.reading] == [1, 2, 3]
    assert first.started_at <= second.started_at <= third.started_at
    # the same text: decoded once, a separate record of each reading with its own id and time
    assert second.result is first.result
    assert third.result is first.result
    assert first.result == sample("list_panes")
    ids = [r.response["id"] for r in (first, second, third) if r.response is not None]
    assert len(set(ids)) == 3
    assert all(r.response["result"] is first.result for r in (second, third) if r.response)
    info = obs.daemons["v5"].readings("daemon.info")
    assert [r.reading for r in info] == [1, 2]
    assert info[1].result is info[0].result


def test_provider_reads_wait_for_the_first_readings_of_every_daemon(
    daemon: CountingDaemon,
) -> None:
    import contextlib

    from pytest_canarygate.pack import EvidenceAccessor

    seen: list[list[str]] = []

    def read(provider: object, since: object) -> dict[str, str]:
        seen.append(list(daemon.requests))  # what the daemon was asked so far
        return {"ok": "yes"}

    def make(kind: str, uri: str) -> Any:
        return contextlib.nullcontext(object())

    obs = observe(
        {"v5": daemon.endpoint},
        {"v5": {"list_panes": 2, "list_sessions": 1, "daemon.info": 1}},
        **observing_options(interval_s=0.3),
        evidence_plan={f"kind{i}": (EvidenceAccessor("k", read), "file:///x") for i in range(3)},
        make_provider=make,
    )
    assert len(seen) == 3
    for asked in seen:  # after the first readings, in the pause before the second
        assert sorted(asked) == ["daemon.info", "list_panes", "list_sessions"]
    assert all(r.ok and r.evidence == {"ok": "yes"} for r in obs.evidence.values())
    assert len(obs.daemons["v5"].calls) == 5


def test_a_daemon_that_is_down_or_broken_still_releases_the_provider_reads(
    tmp_path: Path,
) -> None:
    from pytest_canarygate.observation import _Countdown
    from pytest_canarygate.observation import _observe_daemon

    args = {
        "method_params": METHOD_PARAMS,
        "bracket_method": BRACKET_METHOD,
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "interval_s": 0.01,
    }
    countdown = _Countdown(2)
    assert not countdown.wait(0)
    down = _observe_daemon(
        "v5", f"unix://{tmp_path}/nothing.sock", {"list_panes": 2}, **args,
        first_round_done=countdown.one(),
    )  # fmt: skip
    assert not down.calls[0].ok
    assert not countdown.wait(0)  # one of two
    with pytest.raises(Exception, match="not-a-scheme"):
        _observe_daemon(
            "v4", "not-a-scheme://x", {"list_panes": 2}, **args, first_round_done=countdown.one()
        )
    assert countdown.wait(0)
    # each part counts once, however often it says so
    twice = _Countdown(2)
    done = twice.one()
    done()
    done()
    assert not twice.wait(0)
    assert _Countdown(0).wait(0)


def test_unserved_method_is_kept_as_a_remote_error(daemon: CountingDaemon) -> None:
    obs = run_observe({"v5": daemon.endpoint}, {"v5": {"ops.snapshot_list": 1}})
    view = ObservedView(obs, GateEvidence())
    with pytest.raises(Unobservable) as info:
        view.daemon("v5").result("ops.snapshot_list")
    assert "ops.snapshot_list" in str(info.value)
    assert daemon.endpoint in str(info.value)
    assert "-32601" in str(info.value)


def test_down_daemon_fails_every_need_without_waiting_per_method(tmp_path: Path) -> None:
    gone = tempfile.mkdtemp(prefix="cg-gone-")
    try:
        endpoint = f"unix://{gone}/agtmuxd.sock"
        obs = run_observe({"v5": endpoint}, {"v5": {"list_panes": 1, "list_sessions": 1}})
    finally:
        os.rmdir(gone)
    calls = obs.daemons["v5"].calls
    assert {c.method for c in calls} == {"daemon.info", "list_panes", "list_sessions"}
    assert all(not c.ok and c.error_kind == "transport" for c in calls)
    assert active_tmux_sessions(obs) is None
    with pytest.raises(Unobservable, match="no socket"):
        ObservedView(obs, GateEvidence()).daemon("v5").result("list_panes")


def test_malformed_answer_is_unobservable_not_a_crash() -> None:
    server = CountingDaemon({"daemon.info": sample("daemon.info"), "list_panes": [{"x": 1}]})
    try:
        obs = run_observe({"v5": server.endpoint}, {"v5": {"list_panes": 1}})
    finally:
        server.close()
    with pytest.raises(Unobservable, match="element 0 has no string 'pane_id'"):
        panes(ObservedView(obs, GateEvidence()).daemon("v5"))


def test_reading_not_taken_is_unobservable(daemon: CountingDaemon) -> None:
    obs = run_observe({"v5": daemon.endpoint}, {"v5": {"summary_changed": 1}})
    with pytest.raises(Unobservable, match="reading 2 was not taken"):
        ObservedView(obs, GateEvidence()).daemon("v5").result("summary_changed", 2)


def test_round_trip_through_disk_and_evidence_recording(
    daemon: CountingDaemon, tmp_path: Path
) -> None:
    obs = run_observe({"v5": daemon.endpoint}, {"v5": {"list_panes": 1}})
    loaded = Observation.load(obs.write(tmp_path))
    assert loaded.to_json() == obs.to_json()
    evidence = GateEvidence()
    ObservedView(loaded, evidence).daemon("v5").result("list_panes")
    assert [c.method for c in evidence.calls] == ["list_panes"]


def test_written_compressed_deterministic_and_each_answer_once(
    daemon: CountingDaemon, tmp_path: Path
) -> None:
    obs = run_observe({"v5": daemon.endpoint}, {"v5": {"list_panes": 1, "daemon.info": 1}})
    [live] = obs.daemons["v5"].readings("list_panes")
    assert live.response is not None
    # the daemon's reply, as it sent it (json.dumps's way: spaces, "result" first)
    sent = json.dumps({"result": sample("list_panes"), "jsonrpc": "2.0", "id": live.response["id"]})
    assert live.reply_bytes == len(sent.encode())
    path = obs.write(tmp_path / "a")
    assert path == tmp_path / "a" / OBSERVATION_FILE
    assert path.name == "observation.json.gz"
    assert path.read_bytes()[4:8] == b"\0\0\0\0"  # gzip with no name and no time in its header
    assert not list(path.parent.glob("*.tmp"))
    text = gzip.decompress(path.read_bytes()).decode()
    assert f'"reply":{sent},"reply_bytes":{len(sent.encode())}' in text  # kept as it came, once
    assert text.count(json.dumps(sample("list_panes")[0])) == 1
    data = json.loads(text)
    assert data["schema"] == "canarygate/observation/v3"
    [call] = [c for c in data["daemons"]["v5"]["calls"] if c["method"] == "list_panes"]
    assert "result" not in call
    assert "response" not in call
    loaded = Observation.load(path)
    [record] = loaded.daemons["v5"].readings("list_panes")
    assert record.response == live.response
    assert record.result == live.result == sample("list_panes")
    assert record.reply_bytes == live.reply_bytes  # read back, not measured again
    # the same records, the same bytes: a loaded observation written twice
    again = loaded.write(tmp_path / "b").read_bytes()
    assert again == loaded.write(tmp_path / "c").read_bytes()
    assert Observation.load(tmp_path / "b" / OBSERVATION_FILE).to_json() == loaded.to_json()


def test_an_answer_two_readings_share_is_written_as_two_copies_would_be(tmp_path: Path) -> None:
    import copy
    from dataclasses import replace

    answer = {"panes": [{"pane_id": "%1", "n": 1, "on": True, "x": 1.5, "t": "é"}]}
    first = CallRecord("v5", "unix:///s", "list_panes", 1, None, "T1", 1.0, answer, peer_pid=7)
    first = replace(first, response={"id": 1, "jsonrpc": "2.0", "result": answer})
    second = replace(first, reading=2, started_at="T2", response={"id": 2, "jsonrpc": "2.0"})
    other = copy.deepcopy(second)
    assert other.result is not first.result

    def observation(*calls: CallRecord) -> Observation:
        daemon = DaemonObservation("v5", "unix:///s", list(calls))
        return Observation("alpha", {"kind": "live"}, "T0", "T3", {"v5": daemon})

    shared = observation(first, second).write(tmp_path / "shared").read_bytes()
    copied = observation(first, other).write(tmp_path / "copied").read_bytes()
    assert shared == copied
    data = json.loads(gzip.decompress(shared))
    assert [c["result"] for c in data["daemons"]["v5"]["calls"]] == [answer, answer]
    assert [c["reading"] for c in data["daemons"]["v5"]["calls"]] == [1, 2]
    text = gzip.decompress(shared).decode()
    for call in (first, second):  # each record as one compact, key-sorted JSON text
        assert json.dumps(call.to_json(), sort_keys=True, separators=(",", ":")) in text


def test_an_observation_written_as_v2_still_loads_and_a_bad_reply_is_refused(
    daemon: CountingDaemon, tmp_path: Path
) -> None:
    """Bundles archived before v3 hold each answer as ``result`` beside its ``response``."""
    from pytest_canarygate.observation import _REPLY

    obs = run_observe({"v5": daemon.endpoint}, {"v5": {"list_panes": 1}})
    for call in obs.daemons["v5"].calls:
        del call.__dict__[_REPLY]  # written as v2 wrote every record
    text = gzip.decompress(obs.write(tmp_path / "v2").read_bytes()).decode()
    assert '"reply"' not in text
    v2 = tmp_path / "v2" / OBSERVATION_FILE
    v2.write_bytes(gzip.compress(text.replace("observation/v3", "observation/v2").encode()))
    assert Observation.load(v2).to_json() == obs.to_json()
    data = json.loads(text)
    for call in data["daemons"]["v5"]["calls"]:
        call.pop("result"), call.pop("response")
        call.update(reply=["not", "an", "object"], reply_bytes=3)
    bad = tmp_path / "bad" / OBSERVATION_FILE
    bad.parent.mkdir(parents=True)
    bad.write_bytes(gzip.compress(json.dumps(data).encode()))
    with pytest.raises(ValueError, match="reply is not a JSON-RPC object"):
        Observation.load(bad)


def test_an_observation_nested_too_deep_to_read_is_refused_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / OBSERVATION_FILE
    path.parent.mkdir()
    path.write_bytes(gzip.compress(b"[" * 200_000 + b"]" * 200_000))
    with pytest.raises(ValueError, match="not a readable observation"):
        Observation.load(path)


def test_an_observation_written_before_v2_still_loads(
    daemon: CountingDaemon, tmp_path: Path
) -> None:
    """Bundles archived before v2 hold plain observation.json, each answer twice."""
    obs = run_observe({"v5": daemon.endpoint}, {"v5": {"list_panes": 1}})
    v1 = obs.to_json()
    v1["schema"] = "canarygate/observation/v1"
    for call in v1["daemons"]["v5"]["calls"]:
        call["response"] = {**call["response"], "result": call["result"]}
    legacy = tmp_path / LEGACY_OBSERVATION_FILE
    legacy.parent.mkdir()
    legacy.write_text(json.dumps(v1, indent=1, sort_keys=True) + "\n")
    assert observation_path(tmp_path) == legacy
    loaded = Observation.load_run(tmp_path)
    assert loaded.to_json() == obs.to_json()
    [record] = loaded.daemons["v5"].readings("list_panes")
    assert record.response == obs.daemons["v5"].readings("list_panes")[0].response
    # once both exist, the current file is the observation
    obs.write(tmp_path)
    assert observation_path(tmp_path) == tmp_path / OBSERVATION_FILE


@pytest.mark.parametrize(
    "spoil",
    [
        lambda data: data[:-9],  # truncated
        lambda data: data[:-8] + bytes([data[-8] ^ 1]) + data[-7:],  # CRC no longer matches
        lambda data: data[:20] + bytes([data[20] ^ 0xFF]) + data[21:],  # a flipped byte
        lambda data: gzip.compress(b'{"schema": "something/else"}', mtime=0),
        lambda data: b"not gzip at all",
    ],
    ids=["truncated", "crc", "flipped", "other-schema", "not-gzip"],
)
def test_a_spoiled_compressed_observation_is_refused(
    daemon: CountingDaemon, tmp_path: Path, spoil: Callable[[bytes], bytes]
) -> None:
    obs = run_observe({"v5": daemon.endpoint}, {"v5": {"list_panes": 1}})
    path = obs.write(tmp_path)
    path.write_bytes(spoil(path.read_bytes()))
    with pytest.raises(ValueError, match="observation"):
        Observation.load(path)


def test_evidence_is_recorded_into_the_gate_running_now(daemon: CountingDaemon) -> None:
    obs = run_observe({"v5": daemon.endpoint}, {"v5": {"list_panes": 1, "daemon.info": 1}})
    current = CurrentGateEvidence()
    view = ObservedView(obs, current)  # one view for every gate of the run
    first, second = GateEvidence(), GateEvidence()
    current.switch(first)
    view.daemon("v5").result("list_panes")
    view.daemon("v5").result("list_panes")
    view.note("count", 1)
    current.switch(second)
    view.daemon("v5").result("daemon.info")
    current.switch(None)
    view.daemon("v5").result("list_panes")  # between gates: nobody's evidence
    assert [c.method for c in first.calls] == ["list_panes"]
    assert first.notes == [("count", 1)]
    assert [c.method for c in second.calls] == ["daemon.info"]
    assert second.notes == []


def test_diff_names_missing_records_and_fields() -> None:
    parity = ParityConfig(("evidence_mode", "presence"), ())
    v4 = {"%4": {"evidence_mode": "heuristic", "presence": "managed"}, "%9": {"presence": "x"}}
    v5 = {"%4": {"evidence_mode": "deterministic", "presence": "managed"}}
    diffs = [str(d) for d in diff_projections(v4, v5, parity, label="pane")]
    assert diffs == [
        "pane %4: evidence_mode v4='heuristic' v5='deterministic'",
        "pane %9: (record) v4='present' v5='<missing>'",
    ]


def test_agent_session_keys_cover_poller_and_deterministic_panes() -> None:
    panes_ = [
        {
            "pane_id": "%1",
            "presence": "managed",
            "title": "sess-A",
            "title_quality": "DeterministicBinding",
        },
        {"pane_id": "%2", "presence": "managed", "title": "x", "title_quality": "HeuristicTitle"},
        {"pane_id": "%3", "presence": "unmanaged"},
    ]
    assert agent_session_keys(panes_) == {"poller-%1", "sess-A", "poller-%2"}


def test_signature_problems_on_sample_panes_and_broken_ones() -> None:
    for pane in sample("list_panes"):  # type: ignore[union-attr]
        assert signature_problems(pane) == []
    broken = {
        "presence": "managed",
        "evidence_mode": "magic",
        "signature_confidence": 2,
        "signature_inputs": {"cmd_match": "yes"},
    }
    problems = signature_problems(broken)
    assert len(problems) == 3


def test_problems_name_each_cause_once(daemon: CountingDaemon) -> None:
    gone = tempfile.mkdtemp(prefix="cg-gone-")
    try:
        dead = f"unix://{gone}/agtmuxd.sock"
        obs = run_observe(
            {"v4": daemon.endpoint, "v5": dead},
            {"v4": {"ops.snapshot_list": 1}, "v5": {"list_panes": 1, "list_sessions": 1}},
        )
    finally:
        os.rmdir(gone)
    problems = obs.problems()
    assert problems[0].startswith(f"v4: {daemon.endpoint} ops.snapshot_list: error -32601")
    assert problems[1] == f"v5: {dead} daemon.info: no socket at {gone}/agtmuxd.sock"
    assert len(problems) == 2  # v5's other methods failed for the same reason: not repeated


class _NeverEncoded:
    """A value that fails the test if the attachment encodes it."""

    def __str__(self) -> str:
        raise AssertionError("encoded only to be measured")


def test_an_attachment_sizes_a_reply_kept_as_it_came_by_its_answer_not_its_padding() -> None:
    """A daemon's whitespace does not push a small answer out of the attachment; a reply too
    large to hold a small answer is only named, never encoded only to be measured."""
    from pytest_canarygate.observation import keep_reply

    small, padded = (
        {"ok": False},
        '{"id":1, "jsonrpc":"2.0",' + " " * 4000 + '"result":{"ok":false}}',
    )
    big_reply = json.dumps({"id": 2, "jsonrpc": "2.0", "result": ["x" * 70_000]})
    evidence = GateEvidence()
    for method, result, reply in (
        ("padded", small, padded),
        ("large", [_NeverEncoded()], big_reply),
    ):
        call = CallRecord("v5", "unix:///a", method, 1, None, "t", 1.0, result)
        keep_reply(call, reply + "\n")
        evidence.record(call)
    calls = json.loads(evidence_text(evidence))["calls"]["v5"]
    assert calls["padded"] == [{"reading": 1, "result": small}]
    assert calls["large"] == [{"reading": 1}]


def test_a_gates_attachment_lists_small_answers_and_names_large_ones() -> None:
    """Small answers are inline, large ones only named (reading, params): when a record was
    read and how large it was are in the observation, not repeated by every gate."""
    big = [{"pane_id": f"%{n}", "title": "x" * 40} for n in range(200)]
    evidence = GateEvidence()
    evidence.record(CallRecord("v4", "unix:///a", "daemon.info", 1, None, "t1", 1.0, {"pid": 7}))
    evidence.record(CallRecord("v4", "unix:///a", "list_panes", 2, None, "t2", 1.0, big))
    evidence.record(
        CallRecord("v4", "unix:///a", "state_changed", 1, {"since_version": 0}, "t2", 1.0, big)
    )
    evidence.record(
        CallRecord("v5", "unix:///b", "list_panes", 1, None, "t3", 0.0, None, "no socket", "x")
    )
    evidence.record_reading(EvidenceReading("build", "build", "file:///b", "t4", 1.0, {"ok": 1}))
    evidence.record_reading(EvidenceReading("log", "daemon_log", "file:///l", "t5", 1.0, big))
    evidence.notes.append(("differences", ["%3"]))
    text = evidence_text(evidence)
    assert evidence_text(evidence) == text  # made once per record, the same every time
    data = json.loads(text)
    assert data["calls"] == {
        "v4": {
            "daemon.info": [{"reading": 1, "result": {"pid": 7}}],
            "list_panes": [{"reading": 2}],
            "state_changed": [{"reading": 1, "params": {"since_version": 0}}],
        },
        "v5": {
            "list_panes": [{"reading": 1, "ok": False, "error": "no socket", "error_kind": "x"}]
        },
    }
    assert data["readings"] == [
        {"accessor": "build", "kind": "build", "uri": "file:///b", "evidence": {"ok": 1}},
        {"accessor": "log", "kind": "daemon_log", "uri": "file:///l"},
    ]
    assert data["notes"] == [{"name": "differences", "value": ["%3"]}]
    assert data["observation"] == OBSERVATION_FILE.as_posix()
    assert data["inline_limit"] == 1024
    assert len(text) < 1024  # however large the answers
    # a record made later with other content is never served an earlier record's text
    other = GateEvidence()
    other.record(CallRecord("v4", "unix:///a", "daemon.info", 1, None, "t1", 1.0, {"pid": 8}))
    [entry] = json.loads(evidence_text(other))["calls"]["v4"]["daemon.info"]
    assert entry["result"] == {"pid": 8}


def test_targets_survive_the_round_trip_through_disk(
    daemon: CountingDaemon, tmp_path: Path
) -> None:
    # xdist workers judge the file the controller wrote: without its targets they would judge
    # every gate of a [[targets]] run once, against no daemon at all.
    obs = run_observe({"v5": daemon.endpoint}, {"v5": {"list_panes": 1}})
    obs.daemons = {"host-a/v5": obs.daemons["v5"]}
    obs.targets = {"host-a": {"daemons": {"v5": "host-a/v5"}}}
    loaded = Observation.load(obs.write(tmp_path))
    assert loaded.targets == obs.targets
    assert loaded.target_names == ["host-a"]
    assert "list_panes" in [c.method for c in loaded.for_target("host-a").daemons["v5"].calls]


def test_a_pack_parameter_is_given_the_first_readings_only() -> None:
    """Parametrized alike in a serial run (from the first readings, while the later ones are
    taken) and under xdist (from the whole observation file): a parameter never sees more."""
    from pytest_canarygate.pack import GateParameter
    from pytest_canarygate.session import _parameter_values

    def call(reading: int, names: list[str]) -> CallRecord:
        return CallRecord("v5", "unix:///s", "list_panes", reading, None, "T1", 1.0, names)

    def every_name_read(obs: Observation) -> list[str]:
        return sorted({n for d in obs.daemons.values() for c in d.calls for n in c.result})

    parameter = GateParameter("tmux_session", every_name_read, "unknown", "none")
    obs = Observation(
        "alpha",
        {"kind": "live"},
        "T0",
        "T3",
        {"v5": DaemonObservation("v5", "unix:///s", [call(1, ["a", "b"]), call(2, ["b", "c"])])},
    )
    assert _parameter_values(parameter, obs) == (["a", "b"], ["a", "b"])
    assert _parameter_values(parameter, obs.first_round()) == (["a", "b"], ["a", "b"])
