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

from pytest_canarygate.agtmux.gate_api import AgtmuxSettings
from pytest_canarygate.agtmux.gate_api import ObservedView
from pytest_canarygate.agtmux.gate_api import archive_judgement
from pytest_canarygate.agtmux.gate_api import attempt
from pytest_canarygate.agtmux.gate_api import combine
from pytest_canarygate.agtmux.gate_api import conclude
from pytest_canarygate.agtmux.gate_api import gate
from pytest_canarygate.agtmux.gate_api import no_v4_sessions
from pytest_canarygate.agtmux.gate_api import restore_dry_run_now
from pytest_canarygate.agtmux.gate_api import stable_for
from pytest_canarygate.agtmux.gate_api import v4_drained_for


@gate("cutover.migrate.v4-sessions-restarted")
def test_remaining_v4_sessions_migrated(canarygate_observed: ObservedView) -> None:
    conclude(canarygate_observed, "v4 sessions", no_v4_sessions(canarygate_observed))


@gate("cutover.verify.zero-v4-sessions")
def test_verify_zero_v4_sessions_remaining(canarygate_observed: ObservedView) -> None:
    conclude(canarygate_observed, "v4 sessions", no_v4_sessions(canarygate_observed))


@gate("cutover.final-snapshot")
def test_final_snapshot_taken_before_decommissioning(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    conclude(
        canarygate_observed,
        "final snapshot",
        restore_dry_run_now(canarygate_observed, agtmux_settings),
    )


@gate("cutover.decommission.v4-binary-archived")
def test_v4_binary_kept_for_emergency_rollback(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    conclude(
        canarygate_observed, "v4 archive", archive_judgement(canarygate_observed, agtmux_settings)
    )


@gate("cutover.exit.zero-v4-sessions")
def test_zero_active_v4_sessions(canarygate_observed: ObservedView) -> None:
    conclude(canarygate_observed, "v4 sessions", no_v4_sessions(canarygate_observed))


@gate("cutover.exit.v5-only-stable-7d")
def test_v5_only_operation_stable_7_days(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    window = timedelta(days=agtmux_settings.windows.cutover_stable_days)
    judged = combine(
        "v5-only operation not shown stable",
        {
            "v5 stable": stable_for(canarygate_observed, agtmux_settings, window),
            "v4 empty": attempt(lambda: v4_drained_for(canarygate_observed, window)),
        },
    )
    conclude(canarygate_observed, "stability", judged)


@gate("cutover.exit.v4-binary-retained")
def test_v4_binary_archived_for_rollback_window(
    canarygate_observed: ObservedView, agtmux_settings: AgtmuxSettings
) -> None:
    conclude(
        canarygate_observed, "v4 archive", archive_judgement(canarygate_observed, agtmux_settings)
    )
