"""Cutover after the decommission: v4 stopped, zero v4 sessions once it is gone, the archived
binary's version and its retention past the decommission, what a run records of v4, and the
simulator leaving a daemon stopped."""

from __future__ import annotations

import socket
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest

from pytest_canarygate.agtmux.decommission import daemon_presence
from pytest_canarygate.agtmux.decommission import run_facts_v4
from pytest_canarygate.agtmux.decommission import v4_sightings
from pytest_canarygate.agtmux.judgement.fleet import ANSWERING
from pytest_canarygate.agtmux.judgement.fleet import STOPPED
from pytest_canarygate.agtmux.judgement.fleet import UNREADABLE
from pytest_canarygate.agtmux.judgement.fleet import Sighting
from pytest_canarygate.agtmux.judgement.fleet import archive_past_decommission
from pytest_canarygate.agtmux.judgement.fleet import daemon_stopped
from pytest_canarygate.agtmux.judgement.fleet import zero_sessions_decommissioned
from pytest_canarygate.agtmux.records import ArchiveManifest
from pytest_canarygate.agtmux.records import RecordError
from pytest_canarygate.agtmux.records import datetime_to_ms
from pytest_canarygate.agtmux.records import parse_archive_manifest
from pytest_canarygate.agtmux.sim import start_fleet
from pytest_canarygate.custody import Custody
from pytest_canarygate.custody import CustodyView
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.errors import EndpointError
from pytest_canarygate.observation import CallRecord
from pytest_canarygate.observation import DaemonObservation
from pytest_canarygate.observation import GateEvidence
from pytest_canarygate.observation import Observation
from pytest_canarygate.observation import ObservedView
from pytest_canarygate.observation import _error_kind
from pytest_canarygate.rpc import RpcClient
from pytest_canarygate.verdicts import Verdict

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
SHA = "ab" * 32


def manifest(
    *,
    version: str | None = "0.0.4",
    archived: timedelta = DAY,
    until: timedelta = 31 * DAY,
    present: bool = True,
    actual: str | None = SHA,
) -> ArchiveManifest:
    return ArchiveManifest(
        binary="agtmux-0.0.4",
        sha256=SHA,
        archived_at_ms=datetime_to_ms(NOW - archived),
        retain_until_ms=datetime_to_ms(NOW + until),
        present=present,
        actual_sha256=actual,
        version=version,
    )


def judge(m: ArchiveManifest, **kwargs: Any) -> Any:
    args: dict[str, Any] = {
        "ran_version": "0.0.4",
        "ran_seen": "recorded by run-1",
        "decommissioned_after": NOW - 2 * HOUR,
        "decommissioned_by": NOW,
        "now": NOW,
        "retention": 30 * DAY,
    }
    return archive_past_decommission(m, **(args | kwargs))


# --- v4 stopped ---------------------------------------------------------------------------


def test_a_stopped_v4_passes_one_that_answers_fails_one_that_cannot_be_told_is_unobservable() -> (
    None
):
    stopped = daemon_stopped(STOPPED, "unix:///run/v4.sock daemon.info: no socket at /run/v4.sock")
    assert stopped.verdict is Verdict.PASS
    assert "v4 is stopped: unix:///run/v4.sock" in stopped.message
    answering = daemon_stopped(ANSWERING, "unix:///run/v4.sock: daemon.info pid 7, version 0.0.4")
    assert answering.verdict is Verdict.FAIL
    assert "still answers (unix:///run/v4.sock: daemon.info pid 7" in answering.message
    hung = daemon_stopped(UNREADABLE, "read timed out (timeout)")
    assert hung.verdict is Verdict.UNOBSERVABLE
    assert "read timed out" in hung.message


# --- zero sessions once v4 is gone ----------------------------------------------------------


def sighting(hours_ago: float, state: str, empty: bool | None = None, name: str = "") -> Sighting:
    at = NOW - timedelta(hours=hours_ago)
    return Sighting(name or f"run-{hours_ago}", at, state, empty, "0.0.4")


def test_zero_sessions_pass_only_after_the_last_running_observation_showed_v4_empty() -> None:
    sightings = [
        sighting(30, ANSWERING, False),  # it held sessions then, was emptied later
        sighting(6, ANSWERING, True, "run-empty"),
        sighting(1, STOPPED),
    ]
    judged = zero_sessions_decommissioned("no socket at /run/v4.sock", sightings)
    assert judged.verdict is Verdict.PASS
    assert "zero v4 sessions: v4 is decommissioned (no socket at /run/v4.sock)" in judged.message
    assert "the last observation of it running (run-empty, at 2026-12-04T06:00Z)" in judged.message


@pytest.mark.parametrize(
    ("sightings", "fragment"),
    [
        ([], "no archived run of the cutover phase observed it running"),
        ([sighting(3, STOPPED), sighting(1, STOPPED)], "no archived run of the cutover phase"),
        ([sighting(6, ANSWERING, True), sighting(2, ANSWERING, False)], "found it serving"),
        ([sighting(6, ANSWERING, True), sighting(2, UNREADABLE)], "could not read it"),
        ([sighting(6, ANSWERING, True), sighting(2, ANSWERING, None)], "did not judge its"),
    ],
    ids=["never-seen", "only-stopped", "last-serving", "last-unreadable", "last-not-ready"],
)
def test_a_v4_gone_without_an_earlier_empty_observation_is_inconclusive(
    sightings: list[Sighting], fragment: str
) -> None:
    judged = zero_sessions_decommissioned("no socket at /run/v4.sock", sightings)
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert fragment in judged.message
    assert "start v4 again and run the cutover gates once" in judged.message


def custody_with(runs: list[dict[str, Any]]) -> CustodyView:
    return CustodyView(Custody(phase="cutover", soak={"runs": runs}), NOW)


def run(bundle: str, started: str, v4: Any) -> dict[str, Any]:
    return {"bundle": bundle, "started_at": started, "facts": {"v4": v4}}


def test_sightings_are_read_from_the_runs_facts_and_malformed_ones_count_as_unreadable() -> None:
    view = custody_with(
        [
            run("b", "2026-12-04T08:00:00+00:00", {"state": "stopped", "empty": None}),
            run("a", "2026-12-04T07:00:00+00:00", {"state": "answering", "empty": True}),
            {"bundle": "old", "started_at": "2026-12-04T06:00:00+00:00", "facts": {}},
            run("c", "2026-12-04T09:00:00+00:00", {"state": "answering", "empty": "yes"}),
            run("d", "2026-12-04T10:00:00+00:00", ["answering"]),
            run("e", "2026-12-04T11:00:00+00:00", {"state": "asleep"}),
        ]
    )
    found = [(s.bundle, s.state, s.empty) for s in v4_sightings(view)]
    assert found == [
        ("a", ANSWERING, True),
        ("b", STOPPED, None),
        ("c", UNREADABLE, None),
        ("d", UNREADABLE, None),
        ("e", UNREADABLE, None),
    ]
    # a malformed record after the empty one leaves the sessions at the stop unknown
    judged = zero_sessions_decommissioned("gone", v4_sightings(view))
    assert judged.verdict is Verdict.INCONCLUSIVE


# --- the archived binary past the decommission ---------------------------------------------


def test_the_archived_binary_of_the_version_that_ran_retained_30d_past_the_stop_passes() -> None:
    judged = judge(manifest())
    assert judged.verdict is Verdict.PASS
    assert "version 0.0.4 (the v4 that ran: recorded by run-1) intact" in judged.message
    assert ">= 30d past the decommission (v4 first seen stopped 2026-12-04T12:00Z)" in (
        judged.message
    )


@pytest.mark.parametrize(
    ("m", "kwargs", "fragment"),
    [
        (manifest(version="0.0.3"), {}, "is version 0.0.3, but the v4 that ran was 0.0.4"),
        (manifest(present=False, actual=None), {}, "is not beside its manifest"),
        (manifest(actual="cd" * 32), {}, "differs from the manifest's"),
        (manifest(until=-HOUR), {}, "before now"),
        (
            manifest(until=29 * DAY),
            {},
            "retained until 2027-01-02T12:00Z, less than 30d past the decommission (after "
            "2026-12-04T10:00Z",
        ),
    ],
    ids=["other-version", "deleted", "changed", "expired", "short"],
)
def test_the_archived_binary_fails(
    m: ArchiveManifest, kwargs: dict[str, Any], fragment: str
) -> None:
    judged = judge(m, **kwargs)
    assert judged.verdict is Verdict.FAIL
    assert fragment in judged.message


@pytest.mark.parametrize(
    ("m", "kwargs", "fragment"),
    [
        (manifest(version=None), {}, 'does not say its version (add "version")'),
        (manifest(), {"ran_version": None}, "the version of the v4 that ran is not recorded"),
        (
            manifest(),
            {"decommissioned_after": None, "decommissioned_by": None},
            "v4 is not decommissioned yet, so 30d past its decommission is not fixed",
        ),
        # it reaches 30 days past the last sighting running, not past the first stopped one
        (
            manifest(until=30 * DAY - HOUR),
            {},
            "30d past the decommission is shown only if v4 stopped after 2026-12-04T10:00Z "
            "before 2026-12-04T11:00Z",
        ),
        (
            manifest(until=29 * DAY),
            {"decommissioned_after": None},
            "shown only if v4 stopped before",
        ),
    ],
    ids=["no-version", "ran-unknown", "still-running", "between", "start-unknown"],
)
def test_the_archived_binary_not_shown(
    m: ArchiveManifest, kwargs: dict[str, Any], fragment: str
) -> None:
    judged = judge(m, **kwargs)
    assert judged.verdict is Verdict.INCONCLUSIVE
    assert fragment in judged.message


def test_a_failure_is_said_beside_what_is_unknown() -> None:
    judged = judge(manifest(version="0.0.3"), decommissioned_by=None, decommissioned_after=None)
    assert judged.verdict is Verdict.FAIL
    assert "0.0.3" in judged.message
    assert "not decommissioned yet" in judged.message


def test_the_manifest_version_is_optional_but_never_empty() -> None:
    base = {"binary": "agtmux-v4", "sha256": SHA, "archived_at_ms": 1, "retain_until_ms": 2}
    assert parse_archive_manifest(base).version is None
    assert parse_archive_manifest(base | {"version": "0.0.4"}).version == "0.0.4"
    with pytest.raises(RecordError, match="version"):
        parse_archive_manifest(base | {"version": " "})
    with pytest.raises(RecordError, match="version"):
        parse_archive_manifest(base | {"version": 4})


# --- what the observation shows at v4's endpoint --------------------------------------------


def observation_of(uri: str, *, timeout: float = 0.5) -> Observation:
    calls = []
    client = RpcClient(uri, connect_timeout=timeout, read_timeout=timeout)
    for method in ("daemon.info", "list_sessions", "list_panes", "latency_status"):
        try:
            exchange = client.exchange(method)
        except EndpointError as exc:  # kept as the observation keeps it
            record = CallRecord(
                "v4", uri, method, 1, None, "", 0.0, error=str(exc), error_kind=_error_kind(exc)
            )
        else:
            record = CallRecord(
                "v4", uri, method, 1, None, "", 0.0, result=exchange.response.get("result")
            )
        calls.append(record)
    now = NOW.isoformat().replace("+00:00", "Z")
    return Observation("cutover", {}, now, now, {"v4": DaemonObservation("v4", uri, calls)})


def test_no_socket_and_a_stale_socket_are_stopped_and_recorded_so(tmp_path: Path) -> None:
    folder = tmp_path / "v4"
    folder.mkdir(mode=0o700)
    path = folder / "agtmuxd.sock"
    observed = ObservedView(observation_of(f"unix://{path}"), GateEvidence())
    state, detail = daemon_presence(observed)
    assert (state, f"no socket at {path}" in detail) == (STOPPED, True)
    assert run_facts_v4(observed.observation) == {"state": STOPPED, "empty": None, "version": None}
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # a socket file nobody listens on: a daemon killed without cleanup
    stale.close()
    observed = ObservedView(observation_of(f"unix://{path}"), GateEvidence())
    state, detail = daemon_presence(observed)
    assert (state, "connection refused at" in detail) == (STOPPED, True)
    assert path.exists()  # judged without changing anything


def test_a_socket_that_accepts_but_never_answers_is_not_stopped(tmp_path: Path) -> None:
    folder = tmp_path / "v4"
    folder.mkdir(mode=0o700)
    path = folder / "agtmuxd.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as hung:
        hung.bind(str(path))
        hung.listen(8)
        observed = ObservedView(observation_of(f"unix://{path}", timeout=0.2), GateEvidence())
    state, detail = daemon_presence(observed)
    assert state == UNREADABLE, detail
    assert daemon_stopped(state, detail).verdict is Verdict.UNOBSERVABLE


def test_the_simulator_leaves_v4_stopped_at_cutover_and_runs_it_on_request() -> None:
    with start_fleet("healthy", phase="cutover", daemons=("v4",)) as fleet:
        path = fleet.socket_path("v4")
        assert not path.exists()
        assert "v4" not in fleet.pids
        facts = run_facts_v4(observation_of(fleet.endpoints["v4"]))
        assert facts["state"] == STOPPED
    with start_fleet("healthy", phase="cutover", daemons=("v4",), stopped=()) as fleet:
        facts = run_facts_v4(observation_of(fleet.endpoints["v4"], timeout=2.0))
        assert facts == {"state": ANSWERING, "empty": True, "version": "0.0.4"}
    with start_fleet("healthy", phase="gradual", daemons=("v4",)) as fleet:
        assert fleet.socket_path("v4").exists()
    with pytest.raises(ConfigError, match="cannot leave 'v5' stopped"):
        start_fleet("healthy", phase="cutover", daemons=("v4",), stopped=("v5",))
