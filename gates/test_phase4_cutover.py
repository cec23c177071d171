"""Phase 4, full cutover: no session left on v4, a final snapshot, the v4 binary archived.

Runbook: "Phase 4: Full Cutover". The final snapshot is the newest snapshot, whatever its trigger,
and it must pass the restore dry-run at the current projection version: what the runbook needs
before decommissioning is a snapshot of the current state that can be restored. A Manual or
Shutdown snapshot taken days earlier would be TooOld and cannot serve (daemon facts 4.4, 4.5).
"No v4 session" is judged only on a v4 that has ticked (before its first tick its answers are
empty whatever it serves); "v5-only for 7 days" needs v4 holding nothing while up for 7 days
(managed panes are never removed, so none now means none since it started).
"""

from __future__ import annotations

from datetime import timedelta

from pytest_canarygate import ObservedView
from pytest_canarygate import gate
from pytest_canarygate.agtmux.gate_support import archive_judgement
from pytest_canarygate.agtmux.gate_support import attempt
from pytest_canarygate.agtmux.gate_support import combine
from pytest_canarygate.agtmux.gate_support import conclude
from pytest_canarygate.agtmux.gate_support import no_v4_sessions
from pytest_canarygate.agtmux.gate_support import restore_dry_run_now
from pytest_canarygate.agtmux.gate_support import stable_for
from pytest_canarygate.agtmux.gate_support import v4_drained_for
from pytest_canarygate.config import CanarygateConfig


@gate("cutover.migrate.v4-sessions-restarted")
def test_remaining_v4_sessions_migrated(observed: ObservedView) -> None:
    conclude(observed, "v4 sessions", no_v4_sessions(observed))


@gate("cutover.verify.zero-v4-sessions")
def test_verify_zero_v4_sessions_remaining(observed: ObservedView) -> None:
    conclude(observed, "v4 sessions", no_v4_sessions(observed))


@gate("cutover.final-snapshot")
def test_final_snapshot_taken_before_decommissioning(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    conclude(observed, "final snapshot", restore_dry_run_now(observed, canarygate_settings))


@gate("cutover.decommission.v4-binary-archived")
def test_v4_binary_kept_for_emergency_rollback(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    conclude(observed, "v4 archive", archive_judgement(observed, canarygate_settings))


@gate("cutover.exit.zero-v4-sessions")
def test_zero_active_v4_sessions(observed: ObservedView) -> None:
    conclude(observed, "v4 sessions", no_v4_sessions(observed))


@gate("cutover.exit.v5-only-stable-7d")
def test_v5_only_operation_stable_7_days(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    window = timedelta(days=canarygate_settings.windows.cutover_stable_days)
    judged = combine(
        "v5-only operation not shown stable",
        {
            "v5 stable": stable_for(observed, canarygate_settings, window),
            "v4 empty": attempt(lambda: v4_drained_for(observed, window)),
        },
    )
    conclude(observed, "stability", judged)


@gate("cutover.exit.v4-binary-retained")
def test_v4_binary_archived_for_rollback_window(
    observed: ObservedView, canarygate_settings: CanarygateConfig
) -> None:
    conclude(observed, "v4 archive", archive_judgement(observed, canarygate_settings))
