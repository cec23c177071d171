"""File providers (``file://``), the daemon log and JUnit parsers, and the provider registry."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from datetime import timezone
from pathlib import Path

import pytest

from pytest_canarygate.agtmux.providers import AlertLedgerProvider
from pytest_canarygate.agtmux.providers import Kind
from pytest_canarygate.agtmux.providers import Severity
from pytest_canarygate.agtmux.providers import Timeouts
from pytest_canarygate.agtmux.providers import make_provider
from pytest_canarygate.agtmux.providers import registered_schemes
from pytest_canarygate.agtmux.providers.daemon_log import LOG_KINDS
from pytest_canarygate.agtmux.providers.daemon_log import classify
from pytest_canarygate.agtmux.providers.daemon_log import parse_timestamp
from pytest_canarygate.agtmux.providers.rpc import RpcOpsProvider
from pytest_canarygate.agtmux.records import RecordError
from pytest_canarygate.agtmux.records import parse_runtime_selector
from pytest_canarygate.errors import ConfigError
from pytest_canarygate.errors import EvidenceMissing
from pytest_canarygate.errors import ProtocolError
from pytest_canarygate.errors import TransportError
from pytest_canarygate.errors import UntrustedEndpointError

OPS = Path(__file__).parent / "data" / "ops"
T0 = datetime(2026, 11, 25, tzinfo=timezone.utc)
T0_MS = 1_795_564_800_000
H = 3_600_000


def uri(path: Path) -> str:
    return path.resolve().as_uri()


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return uri(path)


def jsonl(*records: object) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def alert(
    n: int, severity: str = "Warn", created: int = T0_MS, resolved: int | None = None
) -> dict[str, object]:
    return {
        "alert_id": f"alert-{n}",
        "severity": severity,
        "source": "latency_window",
        "message": "slow",
        "created_at_ms": created,
        "resolved_at_ms": resolved,
        "resolve_policy": "AutoResolve",
    }


# --- snapshots ---------------------------------------------------------------------------


def test_snapshot_directory_lists_every_json_file_oldest_first() -> None:
    evidence = make_provider("snapshots", uri(OPS / "snapshots")).snapshots()
    assert [s.snapshot_id for s in evidence.records] == ["snap-1", "snap-2", "snap-3"]
    latest = evidence.records[-1]
    assert (latest.projection_version, latest.trigger, latest.pane_count) == (120, "Manual", 7)
    assert latest.created_at == datetime(2026, 11, 25, 23, 55, tzinfo=timezone.utc)
    assert isinstance(evidence.raw, dict)
    assert sorted(evidence.raw) == ["snap-1.json", "snap-2.json", "snap-3.json"]
    assert evidence.covers_from is None
    assert evidence.source.uri == uri(OPS / "snapshots")


def test_empty_snapshot_directory_is_evidence_of_no_snapshot(tmp_path: Path) -> None:
    assert make_provider("snapshots", uri(tmp_path)).snapshots().records == ()


def test_missing_snapshot_directory_is_missing_evidence(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(EvidenceMissing, match=f"no such directory: {missing}") as info:
        make_provider("snapshots", uri(missing)).snapshots()
    assert uri(missing) in str(info.value)


def test_snapshot_file_with_a_bad_key_names_file_and_key(tmp_path: Path) -> None:
    good = json.loads((OPS / "snapshots" / "snap-1.json").read_text())
    write(tmp_path / "snap-1.json", json.dumps(good))
    write(tmp_path / "snap-9.json", json.dumps({**good, "trigger": "Hourly"}))
    with pytest.raises(ProtocolError) as info:
        make_provider("snapshots", uri(tmp_path)).snapshots()
    message = str(info.value)
    assert "snap-9.json" in message
    assert "trigger: expected one of Periodic, Shutdown, Manual, got string 'Hourly'" in message


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "is not JSON"),
        ('{"snapshot_id": "snap-1"}', "created_at_ms: missing"),
        ("[]", "expected an object"),
        ('{"snapshot_id": "s", "created_at_ms": -1}', "created_at_ms: expected an integer >= 0"),
    ],
)
def test_malformed_snapshot_files(tmp_path: Path, content: str, problem: str) -> None:
    write(tmp_path / "snap-1.json", content)
    with pytest.raises(ProtocolError, match=problem):
        make_provider("snapshots", uri(tmp_path)).snapshots()


# --- supervisor --------------------------------------------------------------------------


def test_supervisor_status_file() -> None:
    evidence = make_provider("supervisor", uri(OPS / "supervisor")).supervisor_status()
    status = evidence.one()
    assert status.state.name == "Ready"
    assert status.policy.holddown_ms == 300_000
    assert status.startup_order == ("Sources", "Gateway", "Daemon", "Ui")
    assert [g.stage for g in status.dependency_gates] == ["Sources", "Gateway", "Daemon", "Ui"]
    assert all(g.all_ready for g in status.dependency_gates)
    assert (evidence.covers_from, evidence.covers_to) == (
        T0,
        datetime(2026, 11, 26, tzinfo=timezone.utc),
    )
    assert evidence.source.detail.endswith("status.json")


def test_supervisor_events_file_with_header_and_checkpoints() -> None:
    provider = make_provider("supervisor", uri(OPS / "supervisor"))
    evidence = provider.supervisor_events()
    assert [e.kind for e in evidence.records] == ["failure", "restart", "success"] * 2
    assert evidence.records[1].after_ms == 1000
    assert evidence.covers_from == T0  # header
    assert evidence.covers_to == datetime(2026, 11, 26, tzinfo=timezone.utc)  # last checkpoint
    later = provider.supervisor_events(since=datetime(2026, 11, 25, 12, tzinfo=timezone.utc))
    assert len(later.records) == 3
    assert later.covers_from == T0  # filtering does not change what the history covers


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"Restarting": {"attempt": 2, "next_restart_ms": 5}}, ("Restarting", 2, 5, None)),
        ({"HoldDown": {"until_ms": 9}}, ("HoldDown", None, None, 9)),
    ],
)
def test_supervisor_states(tmp_path: Path, state: object, expected: tuple[object, ...]) -> None:
    status = json.loads((OPS / "supervisor" / "status.json").read_text())
    write(tmp_path / "status.json", json.dumps({**status, "state": state}))
    got = make_provider("supervisor", uri(tmp_path)).supervisor_status().one().state
    assert (got.name, got.attempt, got.next_restart_ms, got.until_ms) == expected


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"state": "Running"}, 'state: expected "Ready", {"Restarting"'),
        ({"state": {"HoldDown": {}}}, "state.HoldDown.until_ms: missing"),
        ({"policy": {"multiplier": 2.0}}, "policy.initial_backoff_ms: missing"),
        (
            {"dependency_gate": {"Gateway": {"all_ready": True, "unready": ["poller"]}}},
            "dependency_gate.Gateway: all_ready contradicts the unready list",
        ),
        ({"covers_from_ms": T0_MS + 48 * H}, "covers_from_ms: later than as_of_ms"),
        ({"startup_order": ["Sources", 3]}, r"startup_order\[1\]: expected a string"),
    ],
)
def test_malformed_supervisor_status(
    tmp_path: Path, change: dict[str, object], problem: str
) -> None:
    status = json.loads((OPS / "supervisor" / "status.json").read_text())
    write(tmp_path / "status.json", json.dumps({**status, **change}))
    with pytest.raises(ProtocolError, match=problem) as info:
        make_provider("supervisor", uri(tmp_path)).supervisor_status()
    assert "status.json" in str(info.value)


def test_supervisor_directory_without_status_is_not_served(tmp_path: Path) -> None:
    write(tmp_path / "events.jsonl", "")
    provider = make_provider("supervisor", uri(tmp_path))
    with pytest.raises(EvidenceMissing, match=r"status\.json: no such file"):
        provider.supervisor_status()
    events = provider.supervisor_events()
    assert events.records == ()
    assert events.covers_from is None  # an empty log proves no span


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (
            '{"at_ms": 1, "kind": "failure"}\n{"at_ms": 2, "kind": "crash"}\n',
            "line 2: kind: expected one of",
        ),
        ('{"at_ms": 1, "kind": "hold_down"}\n', "line 1: until_ms: missing"),
        ('{"at_ms": 1, "kind": "restart", "attempt": 0}\n', "line 1: after_ms: missing"),
        ('\n\n{"at_ms": 1, "kind": "success"}\nnot json\n', "line 4: not JSON"),
        (
            '{"at_ms": 1, "kind": "success"}\n{"header": {"covers_from_ms": 0}}\n',
            "line 2: header: only allowed",
        ),
        ('{"header": {"since": 0}}\n', "line 1: header.covers_from_ms: missing"),
        ('{"checkpoint": {"at_ms": "x"}}\n', "line 1: checkpoint.at_ms: expected an integer"),
    ],
)
def test_malformed_supervisor_events_name_the_line(
    tmp_path: Path, lines: str, problem: str
) -> None:
    write(tmp_path / "events.jsonl", lines)
    with pytest.raises(ProtocolError, match=problem) as info:
        make_provider("supervisor", uri(tmp_path)).supervisor_events()
    assert "events.jsonl" in str(info.value)


# --- alert ledger ------------------------------------------------------------------------


def test_alert_ledger_file_keeps_the_latest_line_per_alert() -> None:
    evidence = make_provider("alerts", uri(OPS / "alerts.jsonl")).alert_entries()
    by_id = {e.alert_id: e for e in evidence.records}
    assert list(by_id) == ["alert-1", "alert-2", "alert-3"]
    assert by_id["alert-2"].resolved_at_ms == T0_MS + 5 * H + 600_000
    assert by_id["alert-3"].severity is Severity.DEGRADED
    assert by_id["alert-3"].resolve_policy == "ManualAck"
    assert evidence.covers_from == T0
    assert evidence.covers_to == datetime(2026, 11, 26, tzinfo=timezone.utc)
    assert isinstance(evidence.raw, str)
    assert evidence.raw_text().startswith('{"header"')


def test_alert_ledger_since_keeps_open_and_later_resolved_entries() -> None:
    since = datetime(2026, 11, 25, 6, tzinfo=timezone.utc)
    evidence = make_provider("alerts", uri(OPS / "alerts.jsonl")).alert_entries(since)
    # alert-1 and alert-3 are unresolved; alert-2 was resolved before 06:00
    assert [e.alert_id for e in evidence.records] == ["alert-1", "alert-3"]


def test_alert_ledger_without_header_is_covered_from_its_first_line(tmp_path: Path) -> None:
    # The first line is a resolution of an older alert: coverage starts when it was written.
    path = tmp_path / "ledger.jsonl"
    write(
        path, jsonl(alert(1, created=T0_MS - 10 * H, resolved=T0_MS), alert(2, created=T0_MS + H))
    )
    evidence = make_provider("alerts", uri(path)).alert_entries()
    assert evidence.covers_from == T0
    assert evidence.covers_to == datetime(2026, 11, 25, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("records", "problem"),
    [
        (
            [alert(1), alert(2, severity="Critical")],
            "line 2: severity: expected one of Info, Warn, Degraded, Escalate, got string "
            "'Critical'",
        ),
        ([alert(1, resolved=T0_MS - 1)], "line 1: resolved_at_ms: earlier than created_at_ms"),
        ([{**alert(1), "resolve_policy": "Never"}], "line 1: resolve_policy"),
        ([{**alert(1), "created_at_ms": 1.5}], "line 1: created_at_ms: expected an integer"),
        ([{**alert(1), "message": None}], "line 1: message: expected a value, got null"),
        ([["alert-1"]], "line 1: expected an object, got array"),
    ],
)
def test_malformed_alert_ledger_names_file_and_line(
    tmp_path: Path, records: list[object], problem: str
) -> None:
    path = tmp_path / "ledger.jsonl"
    write(path, jsonl(*records))
    with pytest.raises(ProtocolError) as info:
        make_provider("alerts", uri(path)).alert_entries()
    assert problem in str(info.value)
    assert uri(path) in str(info.value)


def test_missing_alert_ledger_is_not_served(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    with pytest.raises(EvidenceMissing, match=f"no such file: {path}"):
        make_provider("alerts", uri(path)).alert_entries()


def test_a_directory_where_a_ledger_file_belongs_is_a_transport_error(tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="is a directory"):
        make_provider("alerts", uri(tmp_path)).alert_entries()


def test_ledger_that_is_not_utf8_is_a_protocol_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b'{"alert_id": "\xff"}\n')
    with pytest.raises(ProtocolError, match="is not UTF-8"):
        make_provider("alerts", uri(path)).alert_entries()


# --- cursor and binding stats ------------------------------------------------------------


def test_cursor_and_binding_stats_files() -> None:
    cursor = make_provider("cursor", uri(OPS / "cursor.json")).cursor_stats()
    assert cursor.one().fetched == cursor.one().committed == 18231
    assert cursor.covers_from == T0
    binding = make_provider("binding", uri(OPS / "binding.json")).binding_stats()
    assert binding.one().cas_conflicts == 0
    assert binding.covers_to == datetime(2026, 11, 26, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("kind", "document", "problem"),
    [
        (
            "binding",
            {"cas_conflicts": 2, "last_conflict_at_ms": None, "covers_from_ms": 0, "as_of_ms": 1},
            "last_conflict_at_ms: required when cas_conflicts > 0",
        ),
        (
            "binding",
            {"cas_conflicts": True, "covers_from_ms": 0, "as_of_ms": 1},
            "cas_conflicts: expected an integer >= 0, got boolean True",
        ),
        ("cursor", {"fetched": 1}, "committed: missing"),
    ],
)
def test_malformed_stats_name_the_key(
    tmp_path: Path, kind: str, document: object, problem: str
) -> None:
    target = write(tmp_path / f"{kind}.json", json.dumps(document))
    provider = make_provider(kind, target)
    with pytest.raises(ProtocolError) as info:
        getattr(provider, f"{kind}_stats")()
    assert problem in str(info.value)


# --- runtime selector TOML ---------------------------------------------------------------


def test_runtime_selector_toml() -> None:
    evidence = make_provider("selector", uri(OPS / "runtime.toml")).runtime_selector()
    selector = evidence.one()
    assert selector.default_daemon == "v4"
    assert selector.v5_enabled is True
    assert selector.v5_canary_sessions == ("session-alpha", "session-beta")
    assert isinstance(evidence.raw, str)
    assert "[runtime]" in evidence.raw


def test_runtime_selector_changed_at_is_the_file_modification_time(tmp_path: Path) -> None:
    """When the routing last changed is the file's mtime; a key in the table is not believed."""
    target = write(
        tmp_path / "r.toml",
        '[runtime]\ndefault_daemon = "v4"\nv5_enabled = true\nchanged_at_ms = 1\n',
    )
    mtime_ns = 1_795_000_000_123 * 1_000_000
    os.utime(tmp_path / "r.toml", ns=(mtime_ns, mtime_ns))
    selector = make_provider("selector", target).runtime_selector().one()
    assert selector.changed_at_ms == 1_795_000_000_123


def test_runtime_selector_changed_at_from_an_ops_answer() -> None:
    answer = {"default_daemon": "v4", "v5_enabled": False, "changed_at_ms": 1_795_000_000_000}
    assert parse_runtime_selector(answer).changed_at_ms == 1_795_000_000_000
    assert parse_runtime_selector({**answer, "changed_at_ms": None}).changed_at_ms is None
    assert parse_runtime_selector({"default_daemon": "v4", "v5_enabled": False}).changed_at is None
    with pytest.raises(RecordError, match="changed_at_ms: expected an integer >= 0"):
        parse_runtime_selector({**answer, "changed_at_ms": "yesterday"})


def test_runtime_selector_canary_sessions_default_to_none(tmp_path: Path) -> None:
    target = write(tmp_path / "r.toml", '[runtime]\ndefault_daemon = "v4"\nv5_enabled = false\n')
    assert make_provider("selector", target).runtime_selector().one().v5_canary_sessions == ()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[runtime]\ndefault_daemon = "v6"\nv5_enabled = true\n',
            "runtime.default_daemon: expected one of v4, v5, got string 'v6'",
        ),
        ('[runtime]\ndefault_daemon = "v4"\n', "runtime.v5_enabled: missing"),
        (
            '[runtime]\ndefault_daemon = "v4"\nv5_enabled = "yes"\n',
            "runtime.v5_enabled: expected true or false",
        ),
        (
            '[runtime]\ndefault_daemon = "v4"\nv5_enabled = true\nv5_canary_sessions = ["a", 2]\n',
            "runtime.v5_canary_sessions[1]: expected a string",
        ),
        ('[selector]\ndefault_daemon = "v4"\n', "has no [runtime] table"),
        ('runtime = "v4"\n', "runtime: expected an object"),
        ('[runtime\ndefault_daemon = "v4"\n', "is not TOML"),
    ],
)
def test_malformed_runtime_selector_names_the_key(tmp_path: Path, text: str, problem: str) -> None:
    target = write(tmp_path / "runtime.toml", text)
    with pytest.raises(ProtocolError) as info:
        make_provider("selector", target).runtime_selector()
    assert problem in str(info.value)
    assert target in str(info.value)


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    target = write(
        tmp_path / "runtime.toml", '[runtime]\ndefault_daemon = "v4"\nv5_enabled = tru\n'
    )
    with pytest.raises(ProtocolError, match="line 3"):
        make_provider("selector", target).runtime_selector()


# --- daemon log --------------------------------------------------------------------------

REAL_LINES = [
    (
        "WARN",
        "codex app-server: failure budget exhausted, hold-down 300s",
        "hold_down",
        {"seconds": 300},
    ),
    (
        "DEBUG",
        "codex app-server: hold-down active, 42s remaining",
        "hold_down_active",
        {"seconds": 42},
    ),
    ("INFO", "codex app-server reconnected", "reconnected", {}),
    (
        "INFO",
        "codex app-server: reconnect failed, retry in 4000ms",
        "reconnect_failed",
        {"retry_ms": 4000},
    ),
    ("INFO", "codex app-server process exited, attempting reconnect", "process_exited", {}),
    (
        "WARN",
        "SLO breach: p95=3224ms, consecutive=2",
        "slo_breach",
        {"p95_ms": 3224, "consecutive": 2},
    ),
    (
        "ERROR",
        "SLO DEGRADED: p95=3224ms, consecutive=10",
        "slo_degraded",
        {"p95_ms": 3224, "consecutive": 10},
    ),
    ("ERROR", "cursor recovery: full resync (streak exceeded)", "full_resync", {}),
    ("INFO", "cursor recovery: retry from committed=4090", "cursor_retry", {"committed": 4090}),
    (
        "WARN",
        "cursor watermark advance_fetched error: non-monotonic",
        "cursor_advance_error",
        {"detail": "non-monotonic"},
    ),
    ("WARN", "cursor watermark advance_fetched error", "cursor_advance_error", {}),
    ("WARN", "cursor watermark commit error: ahead", "cursor_commit_error", {"detail": "ahead"}),
    ("WARN", "source stale: 12345", "source_stale", {"source_id": "12345"}),
    (
        "WARN",
        "poll tick failed: tmux list-panes failed",
        "poll_tick_failed",
        {"detail": "tmux list-panes failed"},
    ),
    ("INFO", "received SIGTERM, shutting down", "other", {}),
    ("WARN", "codex app-server handshake timed out", "other", {}),
]


def ansi_line(ts: str, level: str, target: str, message: str) -> str:
    color = {"TRACE": 35, "DEBUG": 34, "INFO": 32, "WARN": 33, "ERROR": 31}[level]
    return (
        f"\x1b[2m{ts}\x1b[0m \x1b[{color}m{level:>5}\x1b[0m "
        f"\x1b[2m{target}\x1b[0m\x1b[2m:\x1b[0m {message}\n"
    )


@pytest.mark.parametrize(("level", "message", "kind", "values"), REAL_LINES)
def test_every_real_log_line_is_classified(
    tmp_path: Path, level: str, message: str, kind: str, values: dict[str, object]
) -> None:
    target = write(
        tmp_path / "daemon.log",
        ansi_line("2026-11-25T02:00:18.001908Z", level, "agtmux::poll_loop", message),
    )
    (event,) = make_provider("daemon_log", target).log_events().records
    assert (event.level, event.target, event.message) == (level, "agtmux::poll_loop", message)
    assert event.kind == kind
    assert dict(event.values) == values


def test_every_log_kind_has_a_real_line() -> None:
    assert {kind for _, _, kind, _ in REAL_LINES} == {*LOG_KINDS, "other"}


def test_realistic_daemon_log_fixture() -> None:
    evidence = make_provider("daemon_log", uri(OPS / "daemon.log")).log_events()
    kinds = [e.kind for e in evidence.records]
    assert kinds.count("hold_down") == 1
    assert kinds.count("process_exited") == 6
    assert kinds.count("full_resync") == 1
    assert set(LOG_KINDS) <= set(kinds)
    assert evidence.covers_from == datetime(2026, 11, 25, 0, 0, 0, 12345, tzinfo=timezone.utc)
    assert evidence.covers_to == datetime(2026, 11, 26, 0, 0, 0, 100001, tzinfo=timezone.utc)
    assert all("\x1b" not in e.message for e in evidence.records)
    assert "\x1b[33m" in evidence.raw_text()  # the raw text is kept as read


def test_log_since_filters_events_but_not_coverage() -> None:
    since = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)
    evidence = make_provider("daemon_log", uri(OPS / "daemon.log")).log_events(since)
    assert all(e.at >= since for e in evidence.records)
    assert "hold_down" not in [e.kind for e in evidence.records]
    assert evidence.covers_from == datetime(2026, 11, 25, 0, 0, 0, 12345, tzinfo=timezone.utc)


def test_plain_log_without_colours_and_continuation_lines(tmp_path: Path) -> None:
    target = write(
        tmp_path / "daemon.log",
        "2026-11-25T10:00:00.000000001Z  WARN agtmux::poll_loop: poll tick failed: boom\n"
        "  caused by: tmux exited 1\n"
        "\n"
        "2026-11-25T12:00:00+02:00 ERROR agtmux::poll_loop: "
        "SLO DEGRADED: p95=4000ms, consecutive=3\n",
    )
    first, second = make_provider("daemon_log", target).log_events().records
    assert first.kind == "poll_tick_failed"
    assert first.message == "poll tick failed: boom\n  caused by: tmux exited 1"
    assert first.line == 1
    assert second.at == datetime(2026, 11, 25, 10, tzinfo=timezone.utc)  # +02:00 -> UTC
    assert (second.kind, second.line) == ("slo_degraded", 4)


def test_span_context_before_the_target_is_skipped(tmp_path: Path) -> None:
    target = write(
        tmp_path / "d.log",
        "2026-11-25T10:00:00Z  WARN tick{n=4}: agtmux::poll_loop: source stale: poller\n",
    )
    (event,) = make_provider("daemon_log", target).log_events().records
    assert (event.target, event.kind, dict(event.values)) == (
        "agtmux::poll_loop",
        "source_stale",
        {"source_id": "poller"},
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"not": "a log"}\n', "line 1: not a daemon log line"),
        ("\n\n2026-13-45T10:00:00Z  INFO agtmux: hi\n", "line 3:"),
        ("2026-11-25T10:00:00  INFO agtmux: no offset\n", "line 1: not an RFC 3339 timestamp"),
    ],
)
def test_malformed_log_names_the_line(tmp_path: Path, text: str, problem: str) -> None:
    target = write(tmp_path / "daemon.log", text)
    with pytest.raises(ProtocolError, match=problem) as info:
        make_provider("daemon_log", target).log_events()
    assert target in str(info.value)


def test_empty_log_covers_nothing(tmp_path: Path) -> None:
    evidence = make_provider("daemon_log", write(tmp_path / "d.log", "")).log_events()
    assert (evidence.records, evidence.covers_from, evidence.covers_to) == ((), None, None)


def test_classify_and_parse_timestamp_helpers() -> None:
    assert classify("  SLO breach: p95=3001ms, consecutive=1  ") == (
        "slo_breach",
        {"p95_ms": 3001, "consecutive": 1},
    )
    assert classify("SLO breach: p95=٣ms, consecutive=1") == ("other", {})  # ASCII digits only
    assert parse_timestamp("2026-11-25T10:00:00.123456789Z") == datetime(
        2026, 11, 25, 10, 0, 0, 123456, tzinfo=timezone.utc
    )
    assert parse_timestamp("2026-11-25T10:00:00-0130") == datetime(
        2026, 11, 25, 11, 30, tzinfo=timezone.utc
    )
    for utc in ("Z", "z", "+00:00", "-00:00", "+0000", "-0000"):
        when = parse_timestamp(f"2026-11-25t10:00:00.5{utc}")
        assert when == datetime(2026, 11, 25, 10, 0, 0, 500000, tzinfo=timezone.utc)
        assert when.tzinfo is timezone.utc
    for bad, message in (
        ("2026-13-25T10:00:00Z", "month must be in 1..12"),
        ("2026-11-25T10:00:60+00:00", "second must be in 0..59"),
        ("2026-11-25 10:00:00Z", "not an RFC 3339 timestamp with a UTC offset"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_timestamp(bad)


# --- JUnit XML ---------------------------------------------------------------------------


def test_junit_totals_and_failing_names() -> None:
    evidence = make_provider("build", uri(OPS / "junit.xml")).build_result()
    result = evidence.one()
    assert (result.tests, result.failures, result.errors, result.skipped) == (6, 1, 1, 1)
    assert result.passed == 3
    assert result.failing == (
        "agtmux-daemon-v5::supervisor::tests::hold_down_after_budget",
        "agtmux-gateway::cursor_hardening::tests::rewind_too_far",
    )


def test_junit_single_testsuite_root(tmp_path: Path) -> None:
    target = write(
        tmp_path / "j.xml",
        '<testsuite tests="99"><testcase name="a"/><testcase name="b"/></testsuite>',
    )
    result = make_provider("build", target).build_result().one()
    assert (result.tests, result.passed) == (2, 2)  # counted, not read from the attribute


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><testsuites/>',
            "DOCTYPE/ENTITY declarations are refused",
        ),
        # An entity declaration outside a DTD is no declaration at all: just not XML.
        ('<!ENTITY x SYSTEM "file:///etc/passwd"><testsuites/>', "not well-formed XML"),
        ("<testsuites>\n<testcase name='a'>\n</testsuites>", "line 3: not well-formed XML"),
        ("<html><body/></html>", "<html>: root element is neither"),
    ],
)
def test_malformed_or_dangerous_junit(tmp_path: Path, text: str, problem: str) -> None:
    target = write(tmp_path / "junit.xml", text)
    with pytest.raises(ProtocolError, match=problem):
        make_provider("build", target).build_result()


def test_junit_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_bytes("<testsuites/>".encode("utf-16"))
    with pytest.raises(ProtocolError, match="not UTF-8"):
        make_provider("build", uri(path)).build_result()


# --- v4 binary archive ---------------------------------------------------------------------


def archive(tmp_path: Path, content: bytes | None = b"\x7fELF v4", **manifest: object) -> str:
    """A manifest beside (optionally) the binary it names; returns the manifest's URI."""
    if content is not None:
        (tmp_path / "agtmux-v4").write_bytes(content)
    fields: dict[str, object] = {
        "binary": "agtmux-v4",
        "sha256": hashlib.sha256(content or b"").hexdigest().upper(),
        "archived_at_ms": T0_MS,
        "retain_until_ms": T0_MS + 30 * 24 * H,
        **manifest,
    }
    return write(tmp_path / "manifest.json", json.dumps(fields))


def test_archive_manifest_checks_the_binary_beside_it(tmp_path: Path) -> None:
    evidence = make_provider("archive", archive(tmp_path)).archive_manifest()
    manifest = evidence.one()
    assert manifest.present
    assert manifest.intact
    assert manifest.sha256 == hashlib.sha256(b"\x7fELF v4").hexdigest()  # normalised
    assert manifest.size_bytes == 7
    assert manifest.archived_at == T0
    assert evidence.source.uri == uri(tmp_path / "manifest.json")
    assert isinstance(evidence.raw, dict)
    assert evidence.covers_from is None


def test_archive_with_the_binary_gone_or_changed_is_a_finding(tmp_path: Path) -> None:
    gone = make_provider("archive", archive(tmp_path, content=None)).archive_manifest().one()
    assert (gone.present, gone.actual_sha256, gone.intact) == (False, None, False)
    (tmp_path / "agtmux-v4").write_bytes(b"tampered")
    changed = make_provider("archive", uri(tmp_path / "manifest.json")).archive_manifest().one()
    assert changed.present
    assert not changed.intact
    assert changed.actual_sha256 == hashlib.sha256(b"tampered").hexdigest()


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [
        ({"binary": "../agtmux-v4"}, "binary: expected a file name beside the manifest"),
        ({"binary": "."}, "binary: expected a file name"),
        ({"sha256": "abc"}, "sha256: expected 64 hexadecimal digits"),
        ({"sha256": "g" * 64}, "sha256: expected 64 hexadecimal digits"),
        ({"archived_at_ms": "yesterday"}, "archived_at_ms: expected an integer >= 0"),
        ({"retain_until_ms": T0_MS - 1}, "retain_until_ms: earlier than archived_at_ms"),
        ({"retain_until_ms": None}, "retain_until_ms: expected a value"),
    ],
)
def test_malformed_archive_manifest_names_the_key(
    tmp_path: Path, manifest: dict[str, object], problem: str
) -> None:
    with pytest.raises(ProtocolError, match=problem):
        make_provider("archive", archive(tmp_path, **manifest)).archive_manifest()


def test_archive_missing_or_unreadable(tmp_path: Path) -> None:
    with pytest.raises(EvidenceMissing, match="no such file"):
        make_provider("archive", uri(tmp_path / "nope.json")).archive_manifest()
    target = archive(tmp_path, content=None)
    (tmp_path / "agtmux-v4").mkdir()
    with pytest.raises(TransportError, match="is a directory, expected the archived binary"):
        make_provider("archive", target).archive_manifest()
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ProtocolError, match="is not JSON"):
        make_provider("archive", target).archive_manifest()


def test_archive_is_file_only() -> None:
    assert registered_schemes("archive") == ("file",)
    with pytest.raises(ConfigError, match="accepted: file://"):
        make_provider("archive", "https://artifacts.example/v4/manifest.json")


# --- registry ----------------------------------------------------------------------------


def test_make_provider_chooses_by_scheme() -> None:
    assert isinstance(make_provider(Kind.ALERTS, uri(OPS / "alerts.jsonl")), AlertLedgerProvider)
    rpc = make_provider("alerts", "unix:///run/agtmux-v5/agtmuxd.sock")
    assert isinstance(rpc, RpcOpsProvider)
    assert registered_schemes("daemon_log") == ("file",)
    assert registered_schemes("alerts") == ("file", "http", "https", "unix")


@pytest.mark.parametrize(
    ("kind", "target", "problem"),
    [
        ("ledger", "file:///x", "unknown evidence kind 'ledger'"),
        (
            "daemon_log",
            "unix:///run/a/agtmuxd.sock",
            "no provider reads 'daemon_log' evidence from unix://",
        ),
        ("build", "https://ci.example/junit.xml", "accepted: file://"),
        ("alerts", "file:relative/ledger.jsonl", "is not absolute"),
        ("alerts", "ftp://host/x", "unknown scheme 'ftp'"),
    ],
)
def test_make_provider_config_errors(kind: str, target: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        make_provider(kind, target)


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), True, "2"])
def test_timeouts_must_be_finite_and_positive(bad: object) -> None:
    with pytest.raises(ConfigError, match="timeout must be a positive number"):
        Timeouts(connect=bad)  # type: ignore[arg-type]


def test_a_fifo_where_a_file_should_be_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "runtime.toml"
    os.mkfifo(fifo)
    with pytest.raises(UntrustedEndpointError, match=r"is a named pipe .*, not a regular file"):
        make_provider("selector", fifo.as_uri()).runtime_selector()


def test_an_oversized_evidence_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_canarygate.agtmux.providers import files

    monkeypatch.setattr(files, "MAX_FILE_BYTES", 16)
    build = tmp_path / "junit.xml"
    build.write_text("<testsuites>" + " " * 64 + "</testsuites>")
    with pytest.raises(ProtocolError, match="more than the 16 read as evidence"):
        make_provider("build", build.as_uri()).build_result()
