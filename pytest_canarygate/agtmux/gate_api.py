"""The gate-authoring API of the agtmux pack: everything a gate module imports, from one place.

Gate modules in ``gates/`` import only from here. It gathers the engine's gate surface (the
``@gate`` marker, verdict exceptions, the observed view) and the pack's protocol views, evidence
records, judgements and helpers.
"""

from __future__ import annotations

from pytest_canarygate import GateFailed
from pytest_canarygate import Inconclusive
from pytest_canarygate import ObservedView
from pytest_canarygate import Unobservable
from pytest_canarygate import Verdict
from pytest_canarygate import gate
from pytest_canarygate.agtmux.decommission import v4_binary_retained
from pytest_canarygate.agtmux.decommission import v4_decommissioned
from pytest_canarygate.agtmux.decommission import v4_sessions_gone
from pytest_canarygate.agtmux.decommission import v5_only_for
from pytest_canarygate.agtmux.gate_support import alerts_from
from pytest_canarygate.agtmux.gate_support import archive_judgement
from pytest_canarygate.agtmux.gate_support import attempt
from pytest_canarygate.agtmux.gate_support import canary_expansion
from pytest_canarygate.agtmux.gate_support import combine
from pytest_canarygate.agtmux.gate_support import conclude
from pytest_canarygate.agtmux.gate_support import daemon_info
from pytest_canarygate.agtmux.gate_support import daemon_sources
from pytest_canarygate.agtmux.gate_support import daemon_uptime
from pytest_canarygate.agtmux.gate_support import either
from pytest_canarygate.agtmux.gate_support import evidence_absent
from pytest_canarygate.agtmux.gate_support import evidence_of
from pytest_canarygate.agtmux.gate_support import evidence_part
from pytest_canarygate.agtmux.gate_support import from_history
from pytest_canarygate.agtmux.gate_support import history_part
from pytest_canarygate.agtmux.gate_support import hold_downs
from pytest_canarygate.agtmux.gate_support import max_lag
from pytest_canarygate.agtmux.gate_support import monitoring_window
from pytest_canarygate.agtmux.gate_support import no_v4_sessions
from pytest_canarygate.agtmux.gate_support import one_of
from pytest_canarygate.agtmux.gate_support import phase_for
from pytest_canarygate.agtmux.gate_support import projection_version
from pytest_canarygate.agtmux.gate_support import ready
from pytest_canarygate.agtmux.gate_support import restore_dry_run_now
from pytest_canarygate.agtmux.gate_support import restore_evidence_in_archive
from pytest_canarygate.agtmux.gate_support import sessions_of
from pytest_canarygate.agtmux.gate_support import snapshot_recorded
from pytest_canarygate.agtmux.gate_support import soak_from_archive
from pytest_canarygate.agtmux.gate_support import stable_for
from pytest_canarygate.agtmux.gate_support import startup_order_shown
from pytest_canarygate.agtmux.gate_support import supervisor_history
from pytest_canarygate.agtmux.gate_support import time_in_phase
from pytest_canarygate.agtmux.gate_support import v4_drained_for
from pytest_canarygate.agtmux.gate_support import view_ready
from pytest_canarygate.agtmux.judgement import LATENCY_ALERT_SOURCES
from pytest_canarygate.agtmux.judgement import SLO_LOG_KINDS
from pytest_canarygate.agtmux.judgement import Judgement
from pytest_canarygate.agtmux.judgement import active_session_keys
from pytest_canarygate.agtmux.judgement import alerts_from_sources
from pytest_canarygate.agtmux.judgement import backup_snapshot
from pytest_canarygate.agtmux.judgement import breach_in_progress
from pytest_canarygate.agtmux.judgement import build_passes
from pytest_canarygate.agtmux.judgement import build_verified
from pytest_canarygate.agtmux.judgement import canary_activity
from pytest_canarygate.agtmux.judgement import canary_sessions_in_use
from pytest_canarygate.agtmux.judgement import canary_sessions_on
from pytest_canarygate.agtmux.judgement import canary_usage
from pytest_canarygate.agtmux.judgement import cas_conflicts
from pytest_canarygate.agtmux.judgement import cursor_full_resyncs
from pytest_canarygate.agtmux.judgement import cursor_streaks
from pytest_canarygate.agtmux.judgement import escalate_persisting
from pytest_canarygate.agtmux.judgement import failure_budget_from_events
from pytest_canarygate.agtmux.judgement import format_duration
from pytest_canarygate.agtmux.judgement import full_resync_counters_on_canary
from pytest_canarygate.agtmux.judgement import full_resyncs_on_canary
from pytest_canarygate.agtmux.judgement import hold_down_from_events
from pytest_canarygate.agtmux.judgement import hold_down_not_recovered
from pytest_canarygate.agtmux.judgement import hold_down_proxy
from pytest_canarygate.agtmux.judgement import hold_down_state
from pytest_canarygate.agtmux.judgement import jitter_from_events
from pytest_canarygate.agtmux.judgement import jitter_matches_contract
from pytest_canarygate.agtmux.judgement import latency_breach_signal
from pytest_canarygate.agtmux.judgement import latency_log_events
from pytest_canarygate.agtmux.judgement import latency_slo
from pytest_canarygate.agtmux.judgement import new_sessions_on_v5
from pytest_canarygate.agtmux.judgement import no_events_in_window
from pytest_canarygate.agtmux.judgement import parity_in_readings
from pytest_canarygate.agtmux.judgement import periodic_snapshot_fresh
from pytest_canarygate.agtmux.judgement import projection_advancing
from pytest_canarygate.agtmux.judgement import restart_policy_matches_contract
from pytest_canarygate.agtmux.judgement import restart_rate_regression
from pytest_canarygate.agtmux.judgement import routed_counts
from pytest_canarygate.agtmux.judgement import selector_matches_phase
from pytest_canarygate.agtmux.judgement import sessions_served_by
from pytest_canarygate.agtmux.judgement import sources_stayed_active
from pytest_canarygate.agtmux.judgement import split_history
from pytest_canarygate.agtmux.judgement import startup_order_matches
from pytest_canarygate.agtmux.judgement import supervisor_ready
from pytest_canarygate.agtmux.judgement import sustained_breaches
from pytest_canarygate.agtmux.judgement import unresolved_escalates_in_window
from pytest_canarygate.agtmux.judgement import v4_sessions_continue
from pytest_canarygate.agtmux.judgement import v5_release
from pytest_canarygate.agtmux.judgement import window_coverage
from pytest_canarygate.agtmux.judgement import window_end
from pytest_canarygate.agtmux.judgement.fleet import panes_as_served
from pytest_canarygate.agtmux.judgement.fleet import sessions_back_on
from pytest_canarygate.agtmux.pack import NO_TMUX_SESSION
from pytest_canarygate.agtmux.protocol import SIGNATURE_FIELDS
from pytest_canarygate.agtmux.protocol import Change
from pytest_canarygate.agtmux.protocol import Difference
from pytest_canarygate.agtmux.protocol import Record
from pytest_canarygate.agtmux.protocol import agent_session_keys
from pytest_canarygate.agtmux.protocol import agent_session_keys_indexed
from pytest_canarygate.agtmux.protocol import agent_sessions
from pytest_canarygate.agtmux.protocol import by_key
from pytest_canarygate.agtmux.protocol import compare_projections
from pytest_canarygate.agtmux.protocol import diff_projections
from pytest_canarygate.agtmux.protocol import failure_message
from pytest_canarygate.agtmux.protocol import live_panes
from pytest_canarygate.agtmux.protocol import pane_index
from pytest_canarygate.agtmux.protocol import panes
from pytest_canarygate.agtmux.protocol import panes_of_session
from pytest_canarygate.agtmux.protocol import session_index
from pytest_canarygate.agtmux.protocol import signature_problems
from pytest_canarygate.agtmux.protocol import state_changes
from pytest_canarygate.agtmux.providers import AlertEntry
from pytest_canarygate.agtmux.providers import BindingStats
from pytest_canarygate.agtmux.providers import BuildResult
from pytest_canarygate.agtmux.providers import CursorStats
from pytest_canarygate.agtmux.providers import LogEvent
from pytest_canarygate.agtmux.providers import RuntimeSelector
from pytest_canarygate.agtmux.providers import Severity
from pytest_canarygate.agtmux.providers import SnapshotMetadata
from pytest_canarygate.agtmux.providers import SupervisorEvent
from pytest_canarygate.agtmux.providers import SupervisorStatus
from pytest_canarygate.agtmux.records import datetime_to_ms
from pytest_canarygate.agtmux.rehearsal import canary_panes_served
from pytest_canarygate.agtmux.rehearsal import daemon_up
from pytest_canarygate.agtmux.rehearsal import selector_switchable
from pytest_canarygate.agtmux.rehearsal import selector_writable
from pytest_canarygate.agtmux.rehearsal import v4_takes_canary_back
from pytest_canarygate.agtmux.rehearsal import v5_snapshot_possible
from pytest_canarygate.agtmux.settings import AgtmuxSettings
from pytest_canarygate.agtmux.settings import ParityConfig
from pytest_canarygate.custody import CustodyView
from pytest_canarygate.endpoints import parse_endpoint
from pytest_canarygate.observation import DaemonView

__all__ = [
    "LATENCY_ALERT_SOURCES",
    "NO_TMUX_SESSION",
    "SIGNATURE_FIELDS",
    "SLO_LOG_KINDS",
    "AgtmuxSettings",
    "AlertEntry",
    "BindingStats",
    "BuildResult",
    "Change",
    "CursorStats",
    "CustodyView",
    "DaemonView",
    "Difference",
    "GateFailed",
    "Inconclusive",
    "Judgement",
    "LogEvent",
    "ObservedView",
    "ParityConfig",
    "Record",
    "RuntimeSelector",
    "Severity",
    "SnapshotMetadata",
    "SupervisorEvent",
    "SupervisorStatus",
    "Unobservable",
    "Verdict",
    "active_session_keys",
    "agent_session_keys",
    "agent_session_keys_indexed",
    "agent_sessions",
    "alerts_from",
    "alerts_from_sources",
    "archive_judgement",
    "attempt",
    "backup_snapshot",
    "breach_in_progress",
    "build_passes",
    "build_verified",
    "by_key",
    "canary_activity",
    "canary_expansion",
    "canary_panes_served",
    "canary_sessions_in_use",
    "canary_sessions_on",
    "canary_usage",
    "cas_conflicts",
    "combine",
    "compare_projections",
    "conclude",
    "cursor_full_resyncs",
    "cursor_streaks",
    "daemon_info",
    "daemon_sources",
    "daemon_up",
    "daemon_uptime",
    "datetime_to_ms",
    "diff_projections",
    "either",
    "escalate_persisting",
    "evidence_absent",
    "evidence_of",
    "evidence_part",
    "failure_budget_from_events",
    "failure_message",
    "format_duration",
    "from_history",
    "full_resync_counters_on_canary",
    "full_resyncs_on_canary",
    "gate",
    "history_part",
    "hold_down_from_events",
    "hold_down_not_recovered",
    "hold_down_proxy",
    "hold_down_state",
    "hold_downs",
    "jitter_from_events",
    "jitter_matches_contract",
    "latency_breach_signal",
    "latency_log_events",
    "latency_slo",
    "live_panes",
    "max_lag",
    "monitoring_window",
    "new_sessions_on_v5",
    "no_events_in_window",
    "no_v4_sessions",
    "one_of",
    "pane_index",
    "panes",
    "panes_as_served",
    "panes_of_session",
    "parity_in_readings",
    "parse_endpoint",
    "periodic_snapshot_fresh",
    "phase_for",
    "projection_advancing",
    "projection_version",
    "ready",
    "restart_policy_matches_contract",
    "restart_rate_regression",
    "restore_dry_run_now",
    "restore_evidence_in_archive",
    "routed_counts",
    "selector_matches_phase",
    "selector_switchable",
    "selector_writable",
    "session_index",
    "sessions_back_on",
    "sessions_of",
    "sessions_served_by",
    "signature_problems",
    "snapshot_recorded",
    "soak_from_archive",
    "sources_stayed_active",
    "split_history",
    "stable_for",
    "startup_order_matches",
    "startup_order_shown",
    "state_changes",
    "supervisor_history",
    "supervisor_ready",
    "sustained_breaches",
    "time_in_phase",
    "unresolved_escalates_in_window",
    "v4_binary_retained",
    "v4_decommissioned",
    "v4_drained_for",
    "v4_sessions_continue",
    "v4_sessions_gone",
    "v4_takes_canary_back",
    "v5_only_for",
    "v5_release",
    "v5_snapshot_possible",
    "view_ready",
    "window_coverage",
    "window_end",
]
