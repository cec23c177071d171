"""Pure judgements the gates call: evidence in, a :class:`Judgement` out, never an exception.

Fail closed: PASS only on positive evidence. A violation found is FAIL even when the history is
incomplete; no violation in a history that does not cover the whole window is INCONCLUSIVE and
the message gives the span covered; an answer of unknown shape is UNOBSERVABLE. Windows and
thresholds are parameters whose defaults are the runbook's numbers. Every ``now`` and history
bound is an aware datetime (naive ones raise ValueError: that is a programming error).

One module per concern: :mod:`.core` (the Judgement types, formats, :func:`enforce`),
:mod:`.history` (windows of events and alerts, hold-downs, restart counts), :mod:`.snapshots`,
:mod:`.supervisor` (the contract), :mod:`.health` (latency, sources, cursor and CAS counters,
uptime, build), :mod:`.release` (v5's version, the build evidence against the deployment) and
:mod:`.fleet` (selector, sessions across daemons, the v4 archive). Import
from this package; the names below are its public API.
"""

from __future__ import annotations

from pytest_canarygate.agtmux.judgement.core import Coverage
from pytest_canarygate.agtmux.judgement.core import Covered
from pytest_canarygate.agtmux.judgement.core import Judgement
from pytest_canarygate.agtmux.judgement.core import RestoreDryRun
from pytest_canarygate.agtmux.judgement.core import TimedEvent
from pytest_canarygate.agtmux.judgement.core import enforce
from pytest_canarygate.agtmux.judgement.core import format_duration
from pytest_canarygate.agtmux.judgement.core import format_time
from pytest_canarygate.agtmux.judgement.fleet import Pane
from pytest_canarygate.agtmux.judgement.fleet import active_session_keys
from pytest_canarygate.agtmux.judgement.fleet import archive_retained
from pytest_canarygate.agtmux.judgement.fleet import canary_activity
from pytest_canarygate.agtmux.judgement.fleet import canary_sessions_on
from pytest_canarygate.agtmux.judgement.fleet import canary_usage
from pytest_canarygate.agtmux.judgement.fleet import drained_for
from pytest_canarygate.agtmux.judgement.fleet import new_sessions_on_v5
from pytest_canarygate.agtmux.judgement.fleet import parity_in_readings
from pytest_canarygate.agtmux.judgement.fleet import phase_running_for
from pytest_canarygate.agtmux.judgement.fleet import routed_counts
from pytest_canarygate.agtmux.judgement.fleet import selector_matches_phase
from pytest_canarygate.agtmux.judgement.fleet import sessions_served_by
from pytest_canarygate.agtmux.judgement.fleet import split_history
from pytest_canarygate.agtmux.judgement.fleet import v4_sessions_continue
from pytest_canarygate.agtmux.judgement.fleet import zero_sessions
from pytest_canarygate.agtmux.judgement.health import ALWAYS_HEALTHY
from pytest_canarygate.agtmux.judgement.health import LIFECYCLES
from pytest_canarygate.agtmux.judgement.health import SLO_EVALUATION_WINDOW
from pytest_canarygate.agtmux.judgement.health import SLO_LOG_KINDS
from pytest_canarygate.agtmux.judgement.health import SOURCE_STATUSES
from pytest_canarygate.agtmux.judgement.health import breach_in_progress
from pytest_canarygate.agtmux.judgement.health import breach_runs
from pytest_canarygate.agtmux.judgement.health import build_passes
from pytest_canarygate.agtmux.judgement.health import cas_conflicts
from pytest_canarygate.agtmux.judgement.health import cursor_full_resyncs
from pytest_canarygate.agtmux.judgement.health import cursor_streaks
from pytest_canarygate.agtmux.judgement.health import daemon_ready
from pytest_canarygate.agtmux.judgement.health import full_resync_counters_on_canary
from pytest_canarygate.agtmux.judgement.health import latency_breach_signal
from pytest_canarygate.agtmux.judgement.health import latency_log_events
from pytest_canarygate.agtmux.judgement.health import latency_slo
from pytest_canarygate.agtmux.judgement.health import projection_advancing
from pytest_canarygate.agtmux.judgement.health import sources_healthy
from pytest_canarygate.agtmux.judgement.health import sources_stayed_active
from pytest_canarygate.agtmux.judgement.health import sustained_breaches
from pytest_canarygate.agtmux.judgement.health import uptime_at_least
from pytest_canarygate.agtmux.judgement.history import DEFAULT_MAX_LAG
from pytest_canarygate.agtmux.judgement.history import HOLD_DOWN_KINDS
from pytest_canarygate.agtmux.judgement.history import LATENCY_ALERT_SOURCES
from pytest_canarygate.agtmux.judgement.history import RECOVERY_KINDS
from pytest_canarygate.agtmux.judgement.history import RESTART_KINDS
from pytest_canarygate.agtmux.judgement.history import alerts_at_or_above
from pytest_canarygate.agtmux.judgement.history import alerts_from_sources
from pytest_canarygate.agtmux.judgement.history import canary_sessions_in_use
from pytest_canarygate.agtmux.judgement.history import count_events
from pytest_canarygate.agtmux.judgement.history import escalate_persisting
from pytest_canarygate.agtmux.judgement.history import full_resyncs_on_canary
from pytest_canarygate.agtmux.judgement.history import hold_down_not_recovered
from pytest_canarygate.agtmux.judgement.history import hold_down_proxy
from pytest_canarygate.agtmux.judgement.history import hold_down_state
from pytest_canarygate.agtmux.judgement.history import hold_downs_in_window
from pytest_canarygate.agtmux.judgement.history import no_events_in_window
from pytest_canarygate.agtmux.judgement.history import on_canary
from pytest_canarygate.agtmux.judgement.history import restart_rate_regression
from pytest_canarygate.agtmux.judgement.history import selector_serves_canary
from pytest_canarygate.agtmux.judgement.history import unresolved_escalates_in_window
from pytest_canarygate.agtmux.judgement.history import window_coverage
from pytest_canarygate.agtmux.judgement.history import window_end
from pytest_canarygate.agtmux.judgement.release import VERIFY_CHECKS
from pytest_canarygate.agtmux.judgement.release import build_verified
from pytest_canarygate.agtmux.judgement.release import v5_release
from pytest_canarygate.agtmux.judgement.snapshots import SNAPSHOT_ID
from pytest_canarygate.agtmux.judgement.snapshots import backup_snapshot
from pytest_canarygate.agtmux.judgement.snapshots import newest_snapshot_recorded
from pytest_canarygate.agtmux.judgement.snapshots import periodic_snapshot_fresh
from pytest_canarygate.agtmux.judgement.snapshots import restore_dry_run
from pytest_canarygate.agtmux.judgement.snapshots import restore_dry_run_latest
from pytest_canarygate.agtmux.judgement.snapshots import snapshot_at_current_state
from pytest_canarygate.agtmux.judgement.supervisor import RUNBOOK_RESTART_POLICY
from pytest_canarygate.agtmux.judgement.supervisor import RUNBOOK_STARTUP_ORDER
from pytest_canarygate.agtmux.judgement.supervisor import failure_budget_from_events
from pytest_canarygate.agtmux.judgement.supervisor import hold_down_from_events
from pytest_canarygate.agtmux.judgement.supervisor import jitter_from_events
from pytest_canarygate.agtmux.judgement.supervisor import jitter_matches_contract
from pytest_canarygate.agtmux.judgement.supervisor import restart_policy_matches_contract
from pytest_canarygate.agtmux.judgement.supervisor import scheduled_backoff_ms
from pytest_canarygate.agtmux.judgement.supervisor import startup_order_matches
from pytest_canarygate.agtmux.judgement.supervisor import startup_sequence
from pytest_canarygate.agtmux.judgement.supervisor import supervisor_ready

__all__ = [
    "ALWAYS_HEALTHY",
    "DEFAULT_MAX_LAG",
    "HOLD_DOWN_KINDS",
    "LATENCY_ALERT_SOURCES",
    "LIFECYCLES",
    "RECOVERY_KINDS",
    "RESTART_KINDS",
    "RUNBOOK_RESTART_POLICY",
    "RUNBOOK_STARTUP_ORDER",
    "SLO_EVALUATION_WINDOW",
    "SLO_LOG_KINDS",
    "SNAPSHOT_ID",
    "SOURCE_STATUSES",
    "VERIFY_CHECKS",
    "Coverage",
    "Covered",
    "Judgement",
    "Pane",
    "RestoreDryRun",
    "TimedEvent",
    "active_session_keys",
    "alerts_at_or_above",
    "alerts_from_sources",
    "archive_retained",
    "backup_snapshot",
    "breach_in_progress",
    "breach_runs",
    "build_passes",
    "build_verified",
    "canary_activity",
    "canary_sessions_in_use",
    "canary_sessions_on",
    "canary_usage",
    "cas_conflicts",
    "count_events",
    "cursor_full_resyncs",
    "cursor_streaks",
    "daemon_ready",
    "drained_for",
    "enforce",
    "escalate_persisting",
    "failure_budget_from_events",
    "format_duration",
    "format_time",
    "full_resync_counters_on_canary",
    "full_resyncs_on_canary",
    "hold_down_from_events",
    "hold_down_not_recovered",
    "hold_down_proxy",
    "hold_down_state",
    "hold_downs_in_window",
    "jitter_from_events",
    "jitter_matches_contract",
    "latency_breach_signal",
    "latency_log_events",
    "latency_slo",
    "new_sessions_on_v5",
    "newest_snapshot_recorded",
    "no_events_in_window",
    "on_canary",
    "parity_in_readings",
    "periodic_snapshot_fresh",
    "phase_running_for",
    "projection_advancing",
    "restart_policy_matches_contract",
    "restart_rate_regression",
    "restore_dry_run",
    "restore_dry_run_latest",
    "routed_counts",
    "scheduled_backoff_ms",
    "selector_matches_phase",
    "selector_serves_canary",
    "sessions_served_by",
    "snapshot_at_current_state",
    "sources_healthy",
    "sources_stayed_active",
    "split_history",
    "startup_order_matches",
    "startup_sequence",
    "supervisor_ready",
    "sustained_breaches",
    "unresolved_escalates_in_window",
    "uptime_at_least",
    "v4_sessions_continue",
    "v5_release",
    "window_coverage",
    "window_end",
    "zero_sessions",
]
