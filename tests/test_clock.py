"""One clock per run: evidence dated after it (plus the allowed skew) never counts, and a
history that begins with the daemon's process covers only from that start."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from test_gates_units import CATALOG
from test_gates_units import DAY
from test_gates_units import NOW
from test_gates_units import NOW_MS
from test_gates_units import Fleet
from test_gates_units import judge

from pytest_canarygate.verdicts import Verdict

YEAR = 365 * DAY


def gates_needing(phase: str, need: str) -> list[str]:
    return [g.id for g in CATALOG.gates_for(phase) if any(str(n).startswith(need) for n in g.needs)]


def future(records: tuple[object, ...], field: str) -> tuple[object, ...]:
    """The same records with the newest one's ``field`` moved a year ahead."""
    *older, newest = records
    return (*older, replace(newest, **{field: NOW_MS + YEAR}))  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("accessor", "field"),
    [
        ("snapshots", "created_at_ms"),
        ("alert_entries", "created_at_ms"),
        ("supervisor_events", "at_ms"),
    ],
)
@pytest.mark.parametrize("phase", ["alpha", "canary", "cutover"])
def test_a_record_dated_in_the_future_makes_its_gates_unobservable(
    phase: str, accessor: str, field: str
) -> None:
    fleet = Fleet.healthy(phase)
    records, start, end = fleet.evidence[accessor]
    fleet.evidence[accessor] = (future(records, field), start, end)
    judged = gates_needing(phase, f"evidence:{accessor}")
    assert judged, (phase, accessor)
    for gate_id in judged:
        verdict, message, _ = judge(gate_id, fleet)
        # UNOBSERVABLE alone; beside another source that was read, at best INCONCLUSIVE
        assert verdict in (Verdict.UNOBSERVABLE, Verdict.INCONCLUSIVE), (gate_id, message)
        assert "evidence from the future proves nothing" in message, (gate_id, message)


@pytest.mark.parametrize("accessor", ["supervisor_events", "alert_entries"])
def test_coverage_that_ends_in_the_future_is_refused(accessor: str) -> None:
    """A stale history stamped to end a year ahead must not 'cover the whole window'."""
    fleet = Fleet.healthy("alpha")
    records, start, _ = fleet.evidence[accessor]
    fleet.evidence[accessor] = (records, start, NOW_MS + YEAR)
    for gate_id in gates_needing("alpha", f"evidence:{accessor}"):
        verdict, message, _ = judge(gate_id, fleet)
        # UNOBSERVABLE alone; beside another source that was read, at best INCONCLUSIVE
        assert verdict in (Verdict.UNOBSERVABLE, Verdict.INCONCLUSIVE), (gate_id, message)
        assert "covers_to" in message, message


def test_a_timestamp_within_the_skew_still_counts() -> None:
    fleet = Fleet.healthy("alpha")
    records, start, end = fleet.evidence["snapshots"]
    *older, newest = records
    fleet.evidence["snapshots"] = (
        (*older, replace(newest, created_at_ms=NOW_MS + 5_000)),
        start,
        end,
    )
    verdict, message, _ = judge("alpha.exit.restore-dry-run", fleet)
    assert "future" not in message, message
    assert verdict is not Verdict.UNOBSERVABLE, message


def test_a_change_log_entry_in_the_future_is_refused() -> None:
    fleet = Fleet.healthy("alpha")
    changes = fleet.calls["v5"]["state_changed"]["changes"]
    changes[-1] = {**changes[-1], "timestamp": (NOW + timedelta(days=365)).isoformat()}
    verdict, message, _ = judge("alpha.projection.version-advancing", fleet)
    assert verdict is Verdict.UNOBSERVABLE, message
    assert "state_changed change" in message
    assert "future" in message


def test_a_daemon_started_a_minute_ago_cannot_show_24h_of_advancing() -> None:
    fleet = Fleet.healthy("alpha")
    start_ns = int((NOW - timedelta(minutes=1)).timestamp()) * 1_000_000_000
    fleet.calls["v5"]["daemon.info"] = {
        **fleet.calls["v5"]["daemon.info"],
        "nonce": f"9-{start_ns}",
    }
    verdict, message, _ = judge("alpha.projection.version-advancing", fleet)
    assert verdict is Verdict.INCONCLUSIVE, message
    assert "covers 1m of the 24h window" in message


def test_a_daemon_start_in_the_future_is_refused() -> None:
    fleet = Fleet.healthy("alpha")
    start_ns = int((NOW + timedelta(days=2)).timestamp()) * 1_000_000_000
    fleet.calls["v5"]["daemon.info"] = {
        **fleet.calls["v5"]["daemon.info"],
        "nonce": f"9-{start_ns}",
    }
    verdict, message, _ = judge("alpha.projection.version-advancing", fleet)
    assert verdict is Verdict.UNOBSERVABLE, message
    assert "start time in its nonce" in message


@pytest.mark.parametrize("gate_id", ["prereq.v5-deployed", "alpha.deploy.distinct-sockets"])
def test_one_process_answering_two_ways_contradicts_itself(gate_id: str) -> None:
    fleet = Fleet.healthy("alpha")
    info = fleet.calls["v5"]["daemon.info"]
    fleet.second[("v5", "daemon.info")] = {**info, "version": "9.9.9-changed"}
    verdict, message, _ = judge(gate_id, fleet)
    assert verdict is Verdict.UNOBSERVABLE, message
    assert "answered differently at the start and the end" in message
    assert "version" in message


@pytest.mark.parametrize("pid", [-7, 0, "7", True, None])
def test_a_daemon_info_pid_that_is_not_a_positive_integer_is_refused(pid: object) -> None:
    fleet = Fleet.healthy("alpha")
    fleet.calls["v5"]["daemon.info"] = {**fleet.calls["v5"]["daemon.info"], "pid": pid}
    verdict, message, _ = judge("prereq.v5-deployed", fleet)
    assert verdict is Verdict.UNOBSERVABLE, message
    assert "is not a positive integer" in message


def test_a_negative_change_log_version_is_refused() -> None:
    fleet = Fleet.healthy("alpha")
    changes = fleet.calls["v5"]["state_changed"]["changes"]
    changes[-1] = {**changes[-1], "version": -7}
    verdict, message, _ = judge("alpha.projection.version-advancing", fleet)
    assert verdict is Verdict.UNOBSERVABLE, message
    assert "state_changed" in message


@pytest.mark.parametrize("value", [-7, "7", 1.5])
def test_a_registry_heartbeat_that_is_not_epoch_milliseconds_is_refused(value: object) -> None:
    fleet = Fleet.healthy("canary")
    fleet.calls["v5"]["list_source_registry"] = [
        {"source_id": "ext-hooks", "lifecycle": "active", "last_heartbeat_ms": value}
    ]
    verdict, message, _ = judge("canary.monitor.source-health", fleet)
    assert verdict is Verdict.UNOBSERVABLE, message
    assert "last_heartbeat_ms" in message
